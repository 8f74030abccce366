/**
 * The metadata side of moving one object (DESIGN.md invariants 2 and 3; mako_rebalance.js
 * pullMorayObjects / updateMorayObjects, MANTA-REFERENCE §3.5):
 *
 *  - `analyze` (pure) compares the live records of an objectId with the plan. A planned key whose
 *    record is gone or now names another objectId (an overwrite) is dropped and counted. A planned
 *    key whose `_etag` changed but still names the old copy is dropped and counted too, and it
 *    blocks the object: tombstoning the old copy would leave that record one copy short (mola did
 *    exactly that). `retry` re-plans such objects from live records. A key the plan never saw (a
 *    link made after the snapshot) is adopted, guarded by the `_etag` just read. A record naming
 *    both the old and the new node would end up with two copies on one node: the object is skipped.
 *    Then, judged on the live records, record by record: the move must not leave any record with
 *    fewer datacenters than it has (`ObjectAlreadyInDatacenter`: retry re-plans), and every record
 *    must end naming the same copies, those already moved included (else `EtagConflict`: retry
 *    re-plans from live records, where the planner makes them agree or says why it cannot).
 *  - `updateRecords` rewrites `sharks` (old → new) with a conditional put per record; on a
 *    conflict it re-reads: our own earlier write (a resumed object) counts as done.
 */
import { withBackoff, type BackoffPolicy } from '../../core/retry.js';
import { isRemoraError } from '../../core/errors.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { MantaObjectValue, MantaValue, MorayRow, Shark } from '../../metadata/types.js';
import type { ObjectRow } from './rebalance.repository.js';
import { copySet, dcCount, replaceShark } from './rebalance.types.js';

export type LiveRow = MorayRow<MantaValue> & { shard: string };

export interface Analysis {
  /** Live records to rewrite, with the `_etag` that guards each write. */
  targets: LiveRow[];
  /** Planned keys dropped: gone, overwritten, or changed since the plan. */
  skippedKeys: number;
  /** Why the object must not move now (a reason and a detail), if so. */
  stop?: {
    reason: 'EtagConflict' | 'ObjectAlreadyOnDestShark' | 'ObjectAlreadyInDatacenter';
    detail: string;
  };
}

export function names(v: MantaValue, shark: Shark | null): boolean {
  return (
    !!shark && v.type === 'object' && v.sharks.some((s) => s.manta_storage_id === shark.manta_storage_id)
  );
}

export function analyze(row: ObjectRow, live: readonly LiveRow[]): Analysis {
  const planned = new Map(row.keys.map((k) => [k.key, k]));
  const out: Analysis = { targets: [], skippedKeys: 0 };
  const seen = new Set<string>();
  const settled: LiveRow[] = [];
  for (const r of live) {
    if (r.value.type !== 'object' || r.value.objectId !== row.objectId) continue;
    seen.add(r.key);
    if (!names(r.value, row.oldShark)) {
      settled.push(r); // already moved (by us before a crash, or earlier for the other records)
      continue;
    }
    // Never two copies on one node: the run-time check, whatever the plan saw.
    if (names(r.value, row.newShark)) {
      out.stop = {
        reason: 'ObjectAlreadyOnDestShark',
        detail: `${r.key} already lists ${row.newShark!.manta_storage_id}`,
      };
      continue;
    }
    const p = planned.get(r.key);
    if (!p || p.morayEtag === r.etag) out.targets.push(r);
    else {
      out.skippedKeys++;
      out.stop ??= {
        reason: 'EtagConflict',
        detail: `${r.key} changed since the plan and still names the old copy`,
      };
    }
  }
  for (const k of planned.keys()) if (!seen.has(k)) out.skippedKeys++;
  const namesAny = live.some((r) => r.value.type === 'object' && r.value.objectId === row.objectId);
  if (!out.stop && !namesAny)
    out.stop = { reason: 'EtagConflict', detail: 'every planned record was overwritten or deleted' };
  if (!out.stop && out.targets.length > 0) {
    const stop = perRecord(row, out.targets, settled);
    if (stop) out.stop = stop;
  }
  return out;
}

/**
 * The rules on each live record (DESIGN.md invariant 2): no record ends with fewer datacenters
 * than it has, and every record of the objectId ends naming the same copies.
 */
function perRecord(row: ObjectRow, targets: LiveRow[], settled: LiveRow[]): Analysis['stop'] {
  const after = new Map<string, string>();
  for (const t of targets) {
    const v = t.value as MantaObjectValue;
    const moved = replaceShark(v.sharks, row.oldShark!, row.newShark!);
    if (dcCount(moved) < dcCount(v.sharks))
      return {
        reason: 'ObjectAlreadyInDatacenter',
        detail: `${t.key}: ${row.newShark!.manta_storage_id} would leave it ${dcCount(moved)} datacenter(s), it has ${dcCount(v.sharks)}`,
      };
    after.set(t.key, copySet(moved));
  }
  for (const s of settled) after.set(s.key, copySet((s.value as MantaObjectValue).sharks));
  const sets = [...new Set(after.values())];
  if (sets.length > 1) {
    const ex = sets.slice(0, 2).map((c) => `${[...after].find(([, x]) => x === c)![0]} → ${c}`);
    return { reason: 'EtagConflict', detail: `the records would not agree after the move: ${ex.join('; ')}` };
  }
  return undefined;
}

/** Metadata errors are retried with backoff (the original's "InternalError from moray: re-run"). */
export const METADATA_RETRY: BackoffPolicy = { attempts: 4, baseDelayMs: 100 };

function replaced(v: MantaObjectValue, oldShark: Shark, newShark: Shark): MantaObjectValue {
  return { ...v, sharks: replaceShark(v.sharks, oldShark, newShark) };
}

export interface UpdateResult {
  objectId: string;
  skippedKeys: number;
  blocked?: string;
}

/**
 * Rewrite every target of several objects. First one conditional UPDATE per shard for the whole
 * claim batch (MetadataTier.replaceManyIfEtag: the common case costs one statement per shard);
 * when that conflicts, record by record, where a conflict is judged on a fresh read.
 */
export async function updateRecords(
  tier: MetadataTier,
  items: { row: ObjectRow; targets: LiveRow[] }[],
  policy: BackoffPolicy = METADATA_RETRY,
): Promise<UpdateResult[]> {
  const ops = items.flatMap(({ row, targets }) =>
    targets.map((t) => ({
      key: t.key,
      value: replaced(t.value as MantaObjectValue, row.oldShark!, row.newShark!) as unknown as Record<
        string,
        unknown
      >,
      etag: t.etag,
    })),
  );
  try {
    if (ops.length > 0) await withBackoff(() => tier.replaceManyIfEtag('manta', ops), policy);
    return items.map(({ row }) => ({ objectId: row.objectId, skippedKeys: 0 }));
  } catch (err) {
    if (!isRemoraError(err, 'EtagConflict')) throw err;
  }
  const out: UpdateResult[] = [];
  for (const { row, targets } of items) {
    const r: UpdateResult = { objectId: row.objectId, skippedKeys: 0 };
    for (const t of targets) {
      const v = await updateOne(tier, row, t, policy);
      if (v === 'dropped') r.skippedKeys++;
      if (v === 'blocked') r.blocked = `${t.key} changed during the move and still names the old copy`;
    }
    out.push(r);
  }
  return out;
}

async function updateOne(
  tier: MetadataTier,
  row: ObjectRow,
  t: LiveRow,
  policy: BackoffPolicy,
): Promise<'updated' | 'dropped' | 'blocked'> {
  try {
    const value = replaced(t.value as MantaObjectValue, row.oldShark!, row.newShark!);
    await withBackoff(
      () => tier.putObject('manta', t.key, value as unknown as Record<string, unknown>, { etag: t.etag }),
      policy,
    );
    return 'updated';
  } catch (err) {
    if (!isRemoraError(err, 'EtagConflict')) throw err;
  }
  const cur = await withBackoff(() => tier.getObject<MantaValue>('manta', t.key), policy);
  if (!cur || cur.value.type !== 'object' || cur.value.objectId !== row.objectId) return 'dropped';
  return names(cur.value, row.oldShark) ? 'blocked' : 'updated';
}
