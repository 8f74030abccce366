/**
 * Garbage collection's constants and paths, each with its source (docs/gc.md).
 *
 *   grace      a delete record's copies are only tombstoned once it is older than this
 *              (mola lib/garbage_collector.js: 2 days, `gc.js -g`)
 *   tombstone  `/manta/tombstone/YYYY-MM-DD/<objectId>` on the node holding the copy
 *              (mako/v1 bin/mako_gc.sh: the day's directory, `date +%Y-%m-%d` when it runs,
 *              then `mv`): the day the copy moves
 *   retention  the tombstone purge's (src/jobs/tombstone-purge/tombstone-purge.rules.ts)
 */

import { DAY_MS } from '../../core/days.js';

/** mola's default grace period: 2 days. */
export const DEFAULT_GRACE_MS = 2 * DAY_MS;

/**
 * Where a copy lives on its node: `/manta/<creator || owner>/<objectId>` (MANTA-REFERENCE
 * §1.8). The original's GC used `owner` (§3.1) and so missed copies whose creator was another
 * account (a cross-account snaplink's source); Remora uses the path the copy really has.
 */
export function copyPath(owner: string, creator: string | undefined, objectId: string): string {
  return `/manta/${creator || owner}/${objectId}`;
}

/** The tombstone path of a copy moved on `day` (YYYY-MM-DD). */
export function tombstonePath(day: string, objectId: string): string {
  return `/manta/tombstone/${day}/${objectId}`;
}
