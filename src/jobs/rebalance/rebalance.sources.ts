/** Where to pull an object's bytes from (MANTA-REFERENCE §3.5 pullObject; §6.3 task `source`). */
import type { Shark } from '../../metadata/types.js';
import type { LiveRow } from './rebalance.metadata.js';

/**
 * The old copy first (mako_rebalance pulled from `oldShark`; the evacuated node keeps serving
 * reads), then every other copy any live record lists, never the destination itself.
 */
export function unionSharksOf(old: Shark, live: readonly LiveRow[], dest: Shark): Shark[] {
  const out = new Map<string, Shark>([[old.manta_storage_id, old]]);
  for (const r of live)
    if (r.value.type === 'object')
      for (const s of r.value.sharks) if (!out.has(s.manta_storage_id)) out.set(s.manta_storage_id, s);
  out.delete(dest.manta_storage_id);
  return [...out.values()];
}
