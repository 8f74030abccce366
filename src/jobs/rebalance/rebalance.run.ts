/**
 * The mover: one process drives every destination (unlike mako_rebalance.js, run by hand on each
 * destination, serially). Per claim batch:
 *
 *   1. claim objects (state → assigned, with a lease)            rebalance_objects
 *   2. read every live record of their objectIds, all shards     analyze(): drop changed keys
 *   3. each destination pulls its copies, in batches, N in flight  size and MD5 checked before rename
 *   4. conditional update of every record (old → new shark)      one moray batch, else per record
 *   5. re-read: no live record may still name the old copy        (a link made during the move)
 *   6. MOVE the old copies to /tombstone/<day>/, one request per node  failure → post_processing
 *   6b. re-read once more: a record naming the old copy now         → restore it (a link that raced 5)
 *   7. record outcomes (complete / post_processing / skipped / error)
 *
 * A runner runs DEFAULT_CLAIM_LOOPS of these claim → move loops at once, as that many runners on
 * one job would (claims are per-object leases, disjoint between loops): each does every step
 * above for its own batch, in order; their copies share the `concurrency` copy slots (the pull
 * lanes), so one batch's metadata steps (1, 2, 4–7) run while the other's copies are in flight.
 *
 * Step 2 judges every live record of the objectId on its own (rebalance.metadata.ts analyze): no
 * record may end with fewer datacenters or one node twice, and all must end naming the same
 * copies. A record that cannot be read (malformed `_value`) blocks its object (`error
 * BadMorayObject`): nobody can tell whether it names the old copy. Tests act between the steps
 * through `onStep` (a link, an overwrite, a failing metadata tier) to prove each guard.
 *
 * How a crash at each step converges (DESIGN.md invariant 2): every step is re-derived from the
 * live state on the next claim, not from a local journal. A lease that is not renewed expires and
 * the object is claimed again. Crash in 3: the node kept no partial file; the copy is redone (or
 * found complete by HEAD with the right MD5). Crash in 4: records already rewritten name the new
 * copy, not the old, so they count as done and only the rest are written. Crash in 5–7: the
 * records are clean, the MOVE is repeated, an absent old copy counts as moved. A copy lands only
 * at `/<owner>/<objectId>` on the one planned node, and a record never gets the new node twice, so
 * no step can leave two copies on one node.
 */
import { ReportBuilder, type RunReport } from '../../core/run-report.js';
import { eachLimit, Slots } from '../../core/concurrency.js';
import { ByteThrottle } from '../../storage/throttle.js';
import os from 'node:os';
import { type Clock, systemClock } from '../../core/clock.js';
import { toRemoraError } from '../../core/errors.js';
import { dayOf } from '../../core/days.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { StorageClient } from '../../storage/storage-client.js';
import { analyze, type LiveRow, names, updateRecords } from './rebalance.metadata.js';
import { readLive } from './rebalance.live.js';
import {
  countHeldElsewhere,
  claimObjects,
  type ObjectRow,
  type Outcome,
  recordOutcomes,
  renewClaims,
} from './rebalance.repository.js';
import {
  copyObjects,
  type CopyRequest,
  destinationHasCopy,
  type NodeUrl,
  pullLanes,
  type Transfer,
} from './rebalance.transfer.js';
import { unionSharksOf } from './rebalance.sources.js';
import type { Shark } from '../../metadata/types.js';
import type { CopyPath } from '../../storage/storage-paths.js';
import type { TombstoneBatchResult } from '../../storage/tombstone-handlers.js';

export interface RunOptions {
  jobId: string;
  /** Only objects bound for this destination (`run --node`). */
  dest?: string;
  /** Objects copied at once (default 8; the Rust agent's recommended workers × per-assignment, scaled down). */
  concurrency?: number;
  maxBytesPerSecond?: number;
  /** An unrenewed claim is taken over after this long (default 30 s). */
  leaseMs?: number;
  /**
   * Objects per claim, fixed. Default: sized by time (nextClaimSize): DEFAULT_BATCH_PER_SLOT ×
   * concurrency, growing up to MAX_BATCH_PER_SLOT × concurrency while a claim batch takes less
   * than `batchTargetMs`.
   */
  batchSize?: number;
  /** How long a claim batch may take before its outcomes are recorded (default DEFAULT_BATCH_TARGET_MS). */
  batchTargetMs?: number;
  /** Bytes per claim past one object per copy slot (default DEFAULT_BATCH_BYTES). */
  batchBytes?: number;
  /**
   * Claim loops run at once (default DEFAULT_CLAIM_LOOPS): each claims its own batch and does
   * every step of the move for it, in order, as separate runners would; their copies share the
   * `concurrency` copy slots, so one batch's metadata steps overlap another's copies.
   */
  claimLoops?: number;
  /** Stop claiming new work when aborted (SIGINT): claimed objects finish first. */
  signal?: AbortSignal;
  /**
   * Called after each step of a claim batch with the objectIds still in play (a seam for tests,
   * which make links, overwrites or metadata failures between the steps). Awaited.
   */
  onStep?: (step: RunStep, objectIds: string[]) => Promise<void>;
  /** Called with each claim batch's outcomes once recorded, and the claimed rows (the run log, metrics). */
  onOutcomes?: (outs: { outcome: Outcome; row: ObjectRow }[]) => void;
}

/** The points between steps where `onStep` runs (see the header). */
export type RunStep = 'read' | 'copied' | 'updated' | 'tombstoned';

export interface RunDeps {
  tier: MetadataTier;
  storage: StorageClient;
  nodeUrl: NodeUrl;
  /** Re-read node addresses before each claim batch (storage/node-directory.ts refresh). */
  refreshNodes?: () => Promise<void>;
  clock?: Clock;
}

export interface RunTotals {
  claimed: number;
  /** Objects per `state` or `state:reason`. */
  outcomes: Record<string, number>;
  /**
   * The run's report, in the shape every stage uses (core/run-report.ts): objects claimed as
   * records scanned, completed as processed, skips and errors as events by reason with examples.
   */
  report: RunReport;
}

export const DEFAULT_CONCURRENCY = 8;
/**
 * A claim batch: at first up to 8 objects per copy slot, and past one per slot at most 1 GiB, so
 * a batch of big objects has its outcomes recorded as often as one of small ones (progress, the
 * ETA and the work a crashed runner redoes are counted in batches: 64 objects of 1 GiB took ~9
 * minutes here, now 8 take ~70 s). Then sized by time (nextClaimSize): while a batch takes less
 * than DEFAULT_BATCH_TARGET_MS, the next holds as many objects as fit in that time at its pace
 * (at most MAX_BATCH_PER_SLOT per slot, and still at most 1 GiB), so small objects go in big batches (their per-batch metadata
 * work, round trips and commits spread over more objects: docs/rebalance.md) while outcomes are
 * still recorded every ~2 s; a slow or throttled run keeps the first size. With several claim
 * loops each claims its share of these sizes (at least `concurrency`), so the objects a runner
 * holds at once stay what one loop held, and sizes its next claim from its own last batch.
 */
export const DEFAULT_BATCH_PER_SLOT = 8;
export const MAX_BATCH_PER_SLOT = 64;
export const DEFAULT_BATCH_TARGET_MS = 2000;
export const DEFAULT_BATCH_BYTES = 1024 * 1024 * 1024;

/**
 * The object count of the next claim, from how long the last one took (claim to outcomes
 * recorded): as many as fit in `targetMs` at the last batch's pace, at most `max`, never fewer
 * than `base`. A batch that took no measurable time (a clock that did not move) counts as fast.
 */
export function nextClaimSize(p: {
  base: number;
  max: number;
  /** Objects the last claim got, and how long they took. */
  objects: number;
  elapsedMs: number;
  targetMs: number;
}): number {
  const fit = p.elapsedMs > 0 ? Math.floor((p.targetMs * p.objects) / p.elapsedMs) : p.max;
  return Math.max(p.base, Math.min(p.max, fit));
}
export const DEFAULT_LEASE_MS = 30_000;
/**
 * Two claim loops per runner: while one batch's metadata steps run (claim, live read, update,
 * re-read, tombstone, outcomes), the other batch's copies keep the copy slots busy
 * (docs/rebalance.md, "Two claim loops").
 */
export const DEFAULT_CLAIM_LOOPS = 2;

export async function runJob(deps: RunDeps, opts: RunOptions): Promise<RunTotals> {
  const runner = `${os.hostname()}:${process.pid}:${Date.now().toString(36)}`;
  const concurrency = Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY);
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const loops = Math.max(1, opts.claimLoops ?? DEFAULT_CLAIM_LOOPS);
  const t: Transfer = {
    storage: deps.storage,
    nodeUrl: deps.nodeUrl,
    // Both loops' pull requests draw from one set of lanes: `concurrency` copies in flight in all.
    pullSlots: new Slots(pullLanes(concurrency)),
    ...(opts.maxBytesPerSecond
      ? { throttle: new ByteThrottle({ bytesPerSecond: opts.maxBytesPerSecond }) }
      : {}),
  };
  const db = deps.tier.control;
  const runStartedAt = (await db.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
  const report = new ReportBuilder();
  const totals: Omit<RunTotals, 'report'> = { claimed: 0, outcomes: {} };
  const renew = setInterval(() => void renewClaims(db, opts.jobId, runner).catch(() => {}), leaseMs / 3);
  const clock = deps.clock ?? systemClock;
  // Objects held at once over all loops stay what one loop held: each loop claims its share.
  const base =
    opts.batchSize ?? Math.max(concurrency, Math.ceil((concurrency * DEFAULT_BATCH_PER_SLOT) / loops));
  const max = opts.batchSize ?? Math.max(base, Math.ceil((concurrency * MAX_BATCH_PER_SLOT) / loops));
  // The first error of any loop: no loop claims again; batches in hand finish, then it is thrown.
  let failure: { error: unknown } | undefined;
  const claimLoop = async (claimed: () => void) => {
    let limit = base;
    while (!opts.signal?.aborted && failure === undefined) {
      const started = clock.now();
      const rows = await claimObjects(db, {
        jobId: opts.jobId,
        runner,
        limit,
        maxBytes: opts.batchBytes ?? DEFAULT_BATCH_BYTES,
        minObjects: concurrency,
        leaseMs,
        runStartedAt,
        ...(opts.dest ? { dest: opts.dest } : {}),
      });
      claimed();
      if (rows.length === 0) {
        // A crashed runner's claims become claimable when their lease runs out: wait for them.
        // (This runner's other loop holds its claims as this runner: they are not waited for.)
        if ((await countHeldElsewhere(db, opts.jobId, runner, opts.dest)) === 0) break;
        await new Promise((r) => setTimeout(r, Math.min(1000, leaseMs / 2)));
        continue;
      }
      totals.claimed += rows.length;
      report.count('recordsScanned', rows.length);
      await deps.refreshNodes?.();
      const outs = await moveObjects(deps, t, rows, {
        concurrency,
        ...(opts.onStep ? { onStep: opts.onStep } : {}),
      });
      await recordOutcomes(db, opts.jobId, runner, outs);
      limit = nextClaimSize({
        base,
        max,
        objects: rows.length,
        elapsedMs: clock.now() - started,
        targetMs: opts.batchTargetMs ?? DEFAULT_BATCH_TARGET_MS,
      });
      opts.onOutcomes?.(outs.map((o, i) => ({ outcome: o, row: rows[i]! })));
      for (const o of outs) {
        const k = o.reason ? `${o.state}:${o.reason}` : o.state;
        totals.outcomes[k] = (totals.outcomes[k] ?? 0) + 1;
        reportOutcome(report, o);
      }
    }
  };
  try {
    // Each loop starts once the one before it has claimed, so their copies take turns rather
    // than starting (and then waiting on the metadata) in step.
    const running: Promise<void>[] = [];
    let before: Promise<void> = Promise.resolve();
    for (let i = 0; i < loops; i++) {
      let claimed!: () => void;
      const hasClaimed = new Promise<void>((resolve) => (claimed = resolve));
      const after = before;
      running.push(
        (async () => {
          try {
            await after;
            await claimLoop(claimed);
          } catch (error) {
            failure ??= { error };
          } finally {
            claimed();
          }
        })(),
      );
      before = hasClaimed;
    }
    await Promise.all(running);
  } finally {
    clearInterval(renew);
  }
  if (failure) throw failure.error;
  return { ...totals, report: report.finish() };
}

/** One object's outcome in the run report: a skip is a warning, an error an error, by reason. */
function reportOutcome(report: ReportBuilder, o: Outcome): void {
  if (o.state === 'complete') report.count('processed');
  else if (o.state === 'skipped') report.count('skipped');
  const example = { objectId: o.objectId, ...(o.detail ? { detail: o.detail } : {}) };
  if (o.state === 'skipped') report.event(`skipped:${o.reason ?? 'unknown'}`, 'warning', example);
  else if (o.state === 'error') report.event(`error:${o.reason ?? 'unknown'}`, 'error', example);
  if (o.skippedKeys > 0) report.count('skippedKeys', o.skippedKeys);
}

interface Work {
  row: ObjectRow;
  targets: LiveRow[];
  skippedKeys: number;
  out?: Outcome;
}

/**
 * How the old copies leave their nodes (step 6) and come back if a late link names them (6b).
 * Rebalance: GC's tombstone tree, one batched request per node. Repair (src/jobs/audit/
 * audit.repair.ts): the quarantine tree, one MOVE per copy (gc.apply.ts moveCopy), no put-back.
 */
export interface RetireOldCopies {
  /** The tree the copies go to, for messages: `tombstone` or `quarantine`. */
  tree: string;
  /** Move `copies` off `node` into `<tree>/<day>/`; one answer per copy, in order (throw: none). */
  move(node: string, url: string, day: string, copies: CopyPath[]): Promise<TombstoneBatchResult[]>;
  /** Put a moved copy back in place (step 6b); undefined: the tree is not restorable. */
  putBack?(url: string, owner: string, objectId: string, day: string): Promise<string>;
}

/** Rebalance's step 6: the node's batched tombstone MOVE. */
export const tombstoneOldCopies = (storage: StorageClient): RetireOldCopies => ({
  tree: 'tombstone',
  move: (_node, url, day, copies) => storage.tombstoneBatch(url, day, copies),
  putBack: (url, owner, objectId, day) => storage.restore(url, owner, objectId, day),
});

/** What moveObjects needs besides the objects (rebalance's batch, or repair's). */
export interface MoveOptions {
  concurrency: number;
  onStep?: RunOptions['onStep'];
  /** Where an object's bytes may come from; default: the old copy, then every copy the records list. */
  sources?: (row: ObjectRow, live: readonly LiveRow[]) => Shark[];
  /** Step 6; default: tombstone (rebalance). */
  retire?: RetireOldCopies;
}

/**
 * Steps 2–6b of the header for a set of objects, each moving one copy (`oldShark` → `newShark`):
 * read the live records, judge them (analyze), copy and verify, update every record with the
 * `_etag` read, re-read, move the old copies off (retire), re-read once more. Shared by
 * rebalance (per claim batch) and repair (per round of problems); the outcome per object, in order.
 */
export async function moveObjects(
  deps: RunDeps,
  t: Transfer,
  rows: ObjectRow[],
  o: MoveOptions,
): Promise<Outcome[]> {
  const { concurrency, onStep } = o;
  const retire = o.retire ?? tombstoneOldCopies(deps.storage);
  const step = async (name: RunStep, ws: Work[]) => {
    if (onStep)
      await onStep(
        name,
        ws.filter((w) => !w.out).map((w) => w.row.objectId),
      );
  };
  const live = await readLive(
    deps.tier,
    rows.map((r) => r.objectId),
  );
  const work: Work[] = rows.map((row) => {
    const rowsLive = live.rows.get(row.objectId) ?? [];
    const a = analyze(row, rowsLive);
    const w: Work = { row, targets: a.targets, skippedKeys: a.skippedKeys };
    const bad = live.malformed.get(row.objectId)?.[0];
    if (!row.oldShark || !row.newShark) w.out = fail(w, 'error', 'InternalError', 'no old or new shark');
    else if (bad)
      w.out = fail(w, 'error', 'BadMorayObject', `${bad.key} on ${bad.shard} cannot be read: ${bad.why}`);
    else if (a.stop) w.out = fail(w, 'skipped', a.stop.reason, a.stop.detail);
    return w;
  });
  await step('read', work);
  const moving = () => work.filter((w) => !w.out && w.targets.length > 0);
  const copying: { w: Work; req: CopyRequest }[] = [];
  await eachLimit(moving(), concurrency, async (w) => {
    const liveRows = live.rows.get(w.row.objectId) ?? [];
    const req: CopyRequest = {
      objectId: w.row.objectId,
      copyOwner: w.row.copyOwner,
      md5: w.row.md5,
      bytes: w.row.bytes,
      sources: o.sources
        ? o.sources(w.row, liveRows)
        : unionSharksOf(w.row.oldShark!, liveRows, w.row.newShark!),
      dest: w.row.newShark!,
    };
    if (w.row.attempts > 1 && (await destinationHasCopy(t, req))) return;
    copying.push({ w, req });
  });
  const copied = await copyObjects(
    t,
    copying.map((c) => c.req),
    concurrency,
  );
  for (const [i, r] of copied.entries()) {
    const w = copying[i]!.w;
    if (!r.ok) w.out = fail(w, 'skipped', r.reason, r.detail);
  }
  await step('copied', work);
  await updateAll(deps.tier, moving());
  await step('updated', work);
  // One tombstone day for the batch: the restore below must look where the MOVE put the copy.
  const day = dayOf(new Date((deps.clock ?? systemClock).now()));
  await tombstoneAll(
    deps,
    work.filter((w) => !w.out),
    concurrency,
    day,
    retire,
  );
  if (onStep)
    await onStep(
      'tombstoned',
      work.map((w) => w.row.objectId),
    );
  await restoreIfStillNamed(deps, work, concurrency, day, retire);
  return work.map((w) => w.out!);
}

/**
 * 6b. A link whose write raced the re-read of step 5 (it copied its source's record before the
 * update of step 4) names the copy just tombstoned: read once more and put such a copy back
 * (a restore never overwrites a copy in place). The object is then skipped, as in step 5, and
 * `retry` re-plans it from the live records.
 */
async function restoreIfStillNamed(
  deps: RunDeps,
  work: Work[],
  concurrency: number,
  day: string,
  retire: RetireOldCopies,
): Promise<void> {
  const moved = work.filter((w) => w.out?.state === 'complete');
  if (moved.length === 0) return;
  const live = await readLive(
    deps.tier,
    moved.map((w) => w.row.objectId),
  );
  await eachLimit(moved, concurrency, async (w) => {
    const late = namingOldCopy(live, w);
    if (!late) return;
    const old = w.row.oldShark!;
    const url = deps.nodeUrl(old.manta_storage_id);
    if (!retire.putBack) {
      // Repair's quarantine: the copy was missing or corrupt, so the late record named no good
      // copy there before either; the next audit reports it and the next repair restores it.
      w.out = fail(
        w,
        'skipped',
        'EtagConflict',
        `${late.key} (made during the move) names the bad copy, now in /${retire.tree}/${day}/ on ` +
          `${old.manta_storage_id}: the next audit and repair handle that record`,
      );
      return;
    }
    try {
      if (!url) throw new Error(`${old.manta_storage_id}: address unknown`);
      const r = await retire.putBack(url, w.row.copyOwner, w.row.objectId, day);
      w.out = fail(
        w,
        'skipped',
        'EtagConflict',
        `${late.key} (made during the tombstone) names the old copy: restored from tombstone ${day} (${r})`,
      );
    } catch (err) {
      w.out = fail(
        w,
        'error',
        'InternalError',
        `${late.key} names the old copy, tombstoned at /tombstone/${day}/${w.row.objectId} on ` +
          `${old.manta_storage_id}, and the restore failed: ${(err as Error).message} — restore it ` +
          '(remora gc restore) before that tombstone is purged',
      );
    }
  });
}

/** A live record of the object that still names the copy being moved off, if any. */
function namingOldCopy(live: Awaited<ReturnType<typeof readLive>>, w: Work) {
  return (live.rows.get(w.row.objectId) ?? []).find((r) => names(r.value, w.row.oldShark));
}

function fail(w: Work, state: 'skipped' | 'error', reason: string, detail: string): Outcome {
  return { objectId: w.row.objectId, state, reason, detail, skippedKeys: w.skippedKeys };
}

async function updateAll(tier: MetadataTier, ready: Work[]): Promise<void> {
  if (ready.length === 0) return;
  try {
    const results = await updateRecords(tier, ready);
    for (const [i, r] of results.entries()) {
      const w = ready[i]!;
      w.skippedKeys += r.skippedKeys;
      if (r.blocked) w.out = fail(w, 'skipped', 'EtagConflict', r.blocked);
      // Every record changed under us (overwritten, deleted): the new copy is cruft, the old one stays.
      else if (r.skippedKeys === w.targets.length)
        w.out = fail(w, 'skipped', 'EtagConflict', 'every record changed during the move');
    }
  } catch (err) {
    const e = toRemoraError(err);
    for (const w of ready) w.out = fail(w, 'error', 'MetadataUpdateFailed', `${e.code}: ${e.message}`);
  }
}

/**
 * Re-read, then tombstone the old copies no live record names any more: one batched request per
 * old node for the whole claim batch (storage-client.ts tombstoneBatch), nodes `concurrency` at
 * a time. A copy the node answers 'moved' or 'absent' is done; one it answers 'error' for, or
 * every copy of a request that failed, is owed its MOVE (`post_processing`), exactly as a failed
 * single MOVE was: its records are clean and the next run repeats it.
 */
async function tombstoneAll(
  deps: RunDeps,
  ready: Work[],
  concurrency: number,
  day: string,
  retire: RetireOldCopies,
): Promise<void> {
  if (ready.length === 0) return;
  const live = await readLive(
    deps.tier,
    ready.map((w) => w.row.objectId),
  );
  const byNode = new Map<string, Work[]>();
  for (const w of ready) {
    const bad = live.malformed.get(w.row.objectId)?.[0];
    if (bad) {
      w.out = fail(w, 'error', 'BadMorayObject', `${bad.key} became unreadable during the move: ${bad.why}`);
      continue;
    }
    const still = namingOldCopy(live, w);
    if (still) {
      w.out = fail(
        w,
        'skipped',
        'EtagConflict',
        `${still.key} (made during the move) still names the old copy`,
      );
      continue;
    }
    const node = w.row.oldShark!.manta_storage_id;
    byNode.set(node, [...(byNode.get(node) ?? []), w]);
  }
  const done = (w: Work): Outcome => ({
    objectId: w.row.objectId,
    state: 'complete',
    skippedKeys: w.skippedKeys,
  });
  // The original's "ECONNREFUSED on the remote MOVE": records are clean; the MOVE is owed.
  const owed = (w: Work, why: string): Outcome => ({
    ...done(w),
    state: 'post_processing',
    detail: `${retire.tree} MOVE failed: ${why}`,
  });
  await eachLimit([...byNode], concurrency, async ([node, ws]) => {
    const url = deps.nodeUrl(node);
    let results: Awaited<ReturnType<StorageClient['tombstoneBatch']>>;
    try {
      if (!url) throw new Error(`${node}: address unknown`);
      const copies = ws.map((w) => ({ owner: w.row.copyOwner, objectId: w.row.objectId }));
      results = await retire.move(node, url, day, copies);
    } catch (err) {
      for (const w of ws) w.out = owed(w, (err as Error).message);
      return;
    }
    for (const [i, r] of results.entries()) {
      const w = ws[i]!;
      w.out = r.result === 'error' ? owed(w, `${node}: ${r.code}: ${r.message}`) : done(w);
    }
  });
}
