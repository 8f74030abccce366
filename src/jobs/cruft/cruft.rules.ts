/**
 * Cruft's rules (DESIGN.md invariant 4; MANTA-REFERENCE §3.4; docs/audit.md "Cruft"):
 *
 *   old           a file is a candidate only if its mtime (whole seconds) is at or before the
 *                 earliest snapshot of the index shards read minus a margin (mola's
 *                 `filterTimestamp = floor(earliestMorayDump/1000) - tooNewSeconds`, default 2
 *                 days, `-x`; rows with `mtime > filterTimestamp` were dropped, so the boundary
 *                 second is kept as in the original): a file newer than that may be an upload
 *                 whose record is not in any snapshot yet ("time 1": on mako, not yet in moray)
 *   unreferenced  no `manta` row of type object and no `manta_delete_log` row of any index shard
 *                 names its objectId (mola lib/cruft_row_transformer.js: both tables, every shard)
 *   ignored       tombstone paths, temp directories and non-UUID owners (src/dumps/mako.ts drops
 *                 them at ingest, as the original's map did)
 *   re-checked    before it moves, every candidate's objectId is looked up in live metadata on
 *                 every index shard, both tables, in batches (bin/cruft_verify_and_link.js,
 *                 MAX_OBJECTS_TO_CHECK 100); a hit refuses that candidate (the original stopped
 *                 the whole job: here the others go on, and the refusal is counted with an example)
 *   moved         to `/manta/tombstone/<day>/<objectId>` on its node through GC's path
 *                 (gc.apply.ts moveCopy), so the tombstone retention applies; never deleted
 *   accounted     every file of a node's listing is counted (files, bytes) in exactly one class,
 *                 first match wins (issue 13: with `rebalance verify`, an operator sees a node whole):
 *                   live        a live `manta` object row names its objectId (after an evacuation:
 *                               0, or only old copies no live record lists on this node any more,
 *                               counted apart as `notNamedHere`)
 *                   gcPending   only `manta_delete_log` rows name it: copies of earlier deletes and
 *                               overwrites. They are GC's (invariant 4): cruft never moves them, GC
 *                               tombstones them once the newest delete record of the objectId is
 *                               past its grace (the earliest date is printed); a file no readable
 *                               delete record lists on this node is counted apart (`notNamedHere`:
 *                               GC does not move it; once GC removed the records, cruft can)
 *                   tooNew      no record names it and it is newer than the cutoff
 *                   cruft       no record names it and it is old: the candidates above
 *                 Tombstones, temp directories and non-UUID owners are not in the listing's files
 *                 (the listing's `lines` count them).
 */
import { DAY_MS } from '../../core/days.js';

/** mola's default `tooNewSeconds`: 2 days. */
export const DEFAULT_CRUFT_MARGIN_DAYS = 2;

/** Files with an mtime (epoch seconds) at or before this are old enough to be cruft. */
export function cruftCutoffSeconds(
  earliestSnapshotMs: number,
  marginMs: number = DEFAULT_CRUFT_MARGIN_DAYS * DAY_MS,
): number {
  return Math.floor(earliestSnapshotMs / 1000) - Math.floor(marginMs / 1000);
}
