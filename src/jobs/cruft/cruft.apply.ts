/**
 * Applying cruft (cruft.rules.ts "re-checked", "moved"), idempotently:
 *
 *   1. re-check: the candidates' objectIds, in batches, on every index shard, in `manta` and in
 *      `manta_delete_log` (indexed `objectid` lookups). A hit refuses that candidate: counted,
 *      with an example naming the record (the original stopped everything; invariant 4 only
 *      needs the candidate to stay).
 *   2. move each confirmed file to `/manta/tombstone/<day>/<objectId>` on its node with GC's
 *      moveCopy: the same MOVE, the same per-node throttle, the same counters
 *      (copiesTombstoned.<node>, bytesTombstoned.<node>); a file already gone (an earlier attempt)
 *      is "already gone"; an unreachable node keeps its files for the next run.
 *
 * A plan (`remora cruft plan`) does step 1 for real and counts what step 2 would move.
 *
 * What a crash leaves: after 1 nothing changed (redone); during 2 some files in tombstone, the
 * rest not (moved ones are "already gone" next time, and the next scan no longer lists them).
 */
import { eachLimit } from '../../core/concurrency.js';
import type { ReportBuilder } from '../../core/run-report.js';
import { DELETE_LOG_BUCKET } from '../../metadata/buckets.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import { findRowsIn } from '../../metadata/moray.repository.js';
import { moveCopy, type GcApplyDeps } from '../gc/gc.apply.js';
import type { CruftCandidate } from './cruft.scan.js';

/** ObjectIds looked up at once (mola's MAX_OBJECTS_TO_CHECK was 100; one indexed ANY per shard). */
const RECHECK_BATCH = 500;
const MOVES_IN_PARALLEL = 8;

export interface CruftApplyDeps extends Omit<GcApplyDeps, 'tier' | 'dryRun'> {
  tier: Pick<MetadataTier, 'findByObjectIds' | 'deleteManyOnShard' | 'indexShards'>;
  dryRun?: boolean;
}

/** Every record (live or delete log, any index shard) naming each objectId: `key on shard` per id. */
async function referencesNow(tier: CruftApplyDeps['tier'], ids: string[]): Promise<Map<string, string>> {
  const hit = new Map<string, string>();
  for (const [id, rows] of await tier.findByObjectIds(ids))
    if (rows.length > 0) hit.set(id, `${rows[0]!.key} on ${rows[0]!.shard} (manta)`);
  await Promise.all(
    tier.indexShards.map(async (s) => {
      for (const row of await findRowsIn<{ objectId?: string }>(s.pool, DELETE_LOG_BUCKET, 'objectId', ids)) {
        const id = row.value.objectId ?? row.key.split('/')[1] ?? '';
        if (!hit.has(id)) hit.set(id, `${row.key} on ${s.name} (manta_delete_log)`);
      }
    }),
  );
  return hit;
}

/** Re-check, then move (or count, for a plan). Returns the candidates confirmed as cruft. */
export async function applyCruft(
  candidates: readonly CruftCandidate[],
  deps: CruftApplyDeps,
): Promise<CruftCandidate[]> {
  const r: ReportBuilder = deps.report;
  const confirmed: CruftCandidate[] = [];
  for (let i = 0; i < candidates.length; i += RECHECK_BATCH) {
    if (deps.signal?.aborted) return confirmed;
    const batch = candidates.slice(i, i + RECHECK_BATCH);
    const hits = await referencesNow(deps.tier, [...new Set(batch.map((c) => c.objectId))]);
    for (const c of batch) {
      const ref = hits.get(c.objectId);
      if (ref === undefined) confirmed.push(c);
      else
        r.count('refusedReferencedNow').event('refused-referenced-now', 'warning', {
          node: c.node,
          objectId: c.objectId,
          reference: ref,
        });
    }
  }
  for (const c of confirmed)
    r.count('cruftFiles')
      .count(`cruftFiles.${c.node}`)
      .count('cruftBytes', c.bytes)
      .count(`cruftBytes.${c.node}`, c.bytes);
  if (deps.dryRun) return confirmed;
  await eachLimit([...confirmed], MOVES_IN_PARALLEL, async (c) => {
    if (deps.signal?.aborted) return;
    await moveCopy({ node: c.node, owner: c.owner, objectId: c.objectId }, c.bytes, {
      ...deps,
      dryRun: false,
    });
  });
  return confirmed;
}
