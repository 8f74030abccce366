/**
 * The tombstone purge's rules, each with its source (docs/gc.md "Tombstone purge"):
 *
 *   retention  a tombstone directory `YYYY-MM-DD` is removed by the purge run of day
 *              YYYY-MM-DD + retention, i.e. kept for `retention` daily runs: with one directory
 *              a day that is the original's "newest N directories" (mako/v1 bin/mako_gc.sh
 *              `ls | sort | head -n -N`, N = STORAGE_MAX_TOMBSTONE_DIRECTORIES, default 21,
 *              hard-coded 21 before MANTA-2948). Counting days instead of directories keeps the
 *              promise an operator relies on for a restore (a copy can be put back for 21 days)
 *              when GC skipped days or ran twice in one.
 *   reference  the run's own day (its partition), not the clock: a backfilled or re-run day
 *              never removes more than that day's run would have.
 */
import { addDays } from '../../core/days.js';

/** Days a tombstone directory is kept (mako's STORAGE_MAX_TOMBSTONE_DIRECTORIES default). */
export const DEFAULT_TOMBSTONE_RETENTION_DAYS = 21;

/** The newest tombstone day the purge run of `runDay` removes. */
export function purgeCutoff(runDay: string, retentionDays: number): string {
  if (!Number.isInteger(retentionDays) || retentionDays < 1)
    throw new RangeError(`retentionDays must be an integer ≥ 1 (got ${retentionDays})`);
  return addDays(runDay, -retentionDays);
}

/** The day whose purge run removes a tombstone directory of `day`. */
export function purgeDayOf(day: string, retentionDays: number): string {
  return addDays(day, retentionDays);
}
