/**
 * A gc run's backlog (`remora gc status` "as of the latest run"): the delete records it could not
 * act on yet (waiting for grace, with copies, bytes and the oldest; not provable yet; malformed)
 * and the copies it meant to move but could not (a node down, an address unknown). Each task
 * computes its own; the commit adds them.
 */
import { z } from 'zod';
import type { RecordDecision, Verdict } from './gc.plan.js';

export const backlogSchema = z.object({
  waitingForGrace: z.object({
    records: z.number(),
    copies: z.number(),
    bytes: z.number(),
    /** `_mtime` of the oldest one (ms). */
    oldestMs: z.number().optional(),
  }),
  notProvableYet: z.object({ records: z.number(), oldestMs: z.number().optional() }),
  eligibleNotMoved: z.object({ records: z.number(), copies: z.number(), bytes: z.number() }),
  malformed: z.number(),
});
export type GcBacklog = z.output<typeof backlogSchema>;

export function emptyBacklog(): GcBacklog {
  return {
    waitingForGrace: { records: 0, copies: 0, bytes: 0 },
    notProvableYet: { records: 0 },
    eligibleNotMoved: { records: 0, copies: 0, bytes: 0 },
    malformed: 0,
  };
}

const minOf = (a: number | undefined, b: number | undefined) =>
  a === undefined ? b : b === undefined ? a : Math.min(a, b);

/** Add backlog `b` into `a` (counts add, the oldest instant is the smaller). */
export function addBacklog(a: GcBacklog, b: GcBacklog): GcBacklog {
  const w = minOf(a.waitingForGrace.oldestMs, b.waitingForGrace.oldestMs);
  const n = minOf(a.notProvableYet.oldestMs, b.notProvableYet.oldestMs);
  return {
    waitingForGrace: {
      records: a.waitingForGrace.records + b.waitingForGrace.records,
      copies: a.waitingForGrace.copies + b.waitingForGrace.copies,
      bytes: a.waitingForGrace.bytes + b.waitingForGrace.bytes,
      ...(w === undefined ? {} : { oldestMs: w }),
    },
    notProvableYet: {
      records: a.notProvableYet.records + b.notProvableYet.records,
      ...(n === undefined ? {} : { oldestMs: n }),
    },
    eligibleNotMoved: {
      records: a.eligibleNotMoved.records + b.eligibleNotMoved.records,
      copies: a.eligibleNotMoved.copies + b.eligibleNotMoved.copies,
      bytes: a.eligibleNotMoved.bytes + b.eligibleNotMoved.bytes,
    },
    malformed: a.malformed + b.malformed,
  };
}

/** Add one decided record to backlog `b` (in place): what it leaves for a later run, if anything. */
export function addToBacklog(
  b: GcBacklog,
  verdict: Verdict,
  mtime: number,
  copies: number,
  contentLength: number | undefined,
): void {
  addRecordsToBacklog(b, verdict, {
    records: 1,
    copies,
    bytes: copies * (contentLength ?? 0),
    oldestMs: mtime,
  });
}

/** Add `n.records` decided records of one verdict, with their copies, bytes and oldest mtime, to `b`. */
export function addRecordsToBacklog(
  b: GcBacklog,
  verdict: Verdict,
  n: { records: number; copies: number; bytes: number; oldestMs: number },
): void {
  if (verdict === 'waiting-grace') {
    b.waitingForGrace.records += n.records;
    b.waitingForGrace.copies += n.copies;
    b.waitingForGrace.bytes += n.bytes;
    b.waitingForGrace.oldestMs = minOf(b.waitingForGrace.oldestMs, n.oldestMs);
  } else if (verdict === 'not-provable') {
    b.notProvableYet.records += n.records;
    b.notProvableYet.oldestMs = minOf(b.notProvableYet.oldestMs, n.oldestMs);
  } else if (verdict === 'malformed') b.malformed += n.records;
}

/** The backlog of a task's decisions (before apply: what apply leaves is added to it). */
export function backlogOf(decisions: readonly RecordDecision[]): GcBacklog {
  const b = emptyBacklog();
  for (const d of decisions) addToBacklog(b, d.verdict, d.record.mtime, d.copies, d.contentLength);
  return b;
}
