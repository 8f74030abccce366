/**
 * The audit's rules, each with its source (docs/audit.md):
 *
 *   what is checked   every `manta` row of type `object` in the day's snapshot of every index
 *                     shard, and every node its `sharks` names (links give repeated rows, as the
 *                     original's map emitted one line per record and shark; mola
 *                     lib/audit_row_transformer.js, MANTA-REFERENCE §3.3)
 *   present           the node's listing holds a file `/manta/<uuid>/<objectId>` (the original
 *                     matched on objectId and storage id only, not on the owner directory)
 *   ignored           listing lines under `/manta/tombstone/`, and owners that are not UUIDs
 *                     (nginx_temp, rebalance_tmp, …): src/dumps/mako.ts drops them at ingest
 *   excepted          keys under `/<uuid>/uploads/`: committed multipart parts legitimately have
 *                     no file (MANTA-3410)
 *   like with like    every snapshot read is older than every listing it is compared with
 *                     (DESIGN.md invariant 5; mola lib/common.js findMorayMakoObjects searched
 *                     moray dumps backwards from the earliest mako dump). A copy written after
 *                     the snapshot has no record in it, so it is never checked; a copy named by
 *                     the snapshot was on its node before the listing started.
 *   deep sample       copy (objectId, node) is re-hashed on day d when
 *                     h(objectId@node) mod cycle = d mod cycle (h: the first 32 bits of the MD5 of
 *                     the text, d: days since 1970): every copy once per `cycle` days, about
 *                     1/cycle of a node's copies each day (Ceph's deep scrub interval)
 */
import { DAY_MS, dayStartMs } from '../../core/days.js';
import { RemoraError } from '../../core/errors.js';

/** Problem kinds (docs/audit.md "Problems"). */
export type ProblemKind = 'missing' | 'corrupt' | 'no-listing';

export interface Problem {
  kind: ProblemKind;
  objectId: string;
  /** manta_storage_id of the copy. */
  node: string;
  /** The record's key and the shard that holds it. */
  key: string;
  shard: string;
  /** The copy's directory on the node: the record's creator, else its owner (§1.8). */
  owner?: string;
  /** corrupt: the record's contentMD5 and what the node computed. */
  expectedMd5?: string;
  actualMd5?: string;
  bytes?: number;
}

/** Default deep-audit cycle: every copy is re-hashed once in this many days. */
export const DEFAULT_DEEP_CYCLE_DAYS = 30;

/** Keys excepted from the audit (MANTA-3410): `/<uuid>/uploads/…`. DuckDB regex, same as UPLOADS_RE. */
export const UPLOADS_KEY_SQL_RE =
  '^/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/uploads/';
export const UPLOADS_RE = new RegExp(UPLOADS_KEY_SQL_RE);

/** The day's slot in the deep-audit cycle. */
export function deepSlot(day: string, cycleDays: number): number {
  return Math.floor(dayStartMs(day) / DAY_MS) % cycleDays;
}

/**
 * Invariant 5: every snapshot older than every listing. Throws InputsOutOfOrder naming the pair
 * that breaks it and what to rerun.
 */
export function checkLikeWithLike(
  day: string,
  snapshots: readonly { shard: string; snapshotTime: string }[],
  listings: readonly { node: string; startedAt: string }[],
): void {
  for (const s of snapshots)
    for (const l of listings)
      if (!(Date.parse(s.snapshotTime) < Date.parse(l.startedAt)))
        throw new RemoraError(
          'InputsOutOfOrder',
          `audit ${day}: the snapshot of ${s.shard} (${s.snapshotTime}) is not older than the listing of ` +
            `${l.node} (started ${l.startedAt}); comparing them would report copies written in between ` +
            `as missing (DESIGN.md invariant 5). Rerun the manifests of ${day} (\`remora rerun manifests ` +
            `--date ${day} --downstream\`)`,
          { details: { shard: s.shard, node: l.node } },
        );
}
