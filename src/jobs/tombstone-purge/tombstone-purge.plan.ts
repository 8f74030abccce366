/**
 * The purge decision for one node: its tombstone days in, the days to remove out. Pure (the run
 * day and the retention are inputs), tested with tables of cases (test/tombstone-purge.test.ts).
 */
import type { TombstoneDayUsage } from '../../storage/storage-client.js';
import { purgeCutoff, purgeDayOf } from './tombstone-purge.rules.js';

export interface PurgePlan {
  /** Days up to and including this one are removed. */
  cutoff: string;
  purge: TombstoneDayUsage[];
  keep: TombstoneDayUsage[];
  /** The day whose run removes the oldest directory kept; undefined when none is kept. */
  nextPurgeDay?: string;
}

export function planPurge(
  days: readonly TombstoneDayUsage[],
  runDay: string,
  retentionDays: number,
): PurgePlan {
  const cutoff = purgeCutoff(runDay, retentionDays);
  const sorted = [...days].sort((a, b) => a.day.localeCompare(b.day));
  const purge = sorted.filter((d) => d.day <= cutoff);
  const keep = sorted.filter((d) => d.day > cutoff);
  const oldest = keep[0];
  return { cutoff, purge, keep, ...(oldest ? { nextPurgeDay: purgeDayOf(oldest.day, retentionDays) } : {}) };
}
