/**
 * What an operator does with the pipeline: schedule a day, rerun a job (alone or with
 * everything downstream, with a dry run), backfill a range, drive days to completion,
 * and retention. The CLI and the scheduler are thin surfaces over these.
 */
import type pg from 'pg';
import type { Coordinator } from './coordinator.js';
import { partitionOfRun, runPrefix } from './inputs.js';
import { parsePartition, partitionDueMs, partitionsFor } from './partitions.js';
import { addDays, daysBetween } from '../core/days.js';
import type { PipelineRuntime } from './runtime.js';
import {
  ACTIVE_STATES,
  createRun,
  deleteRunsBefore,
  finishedRunsBefore,
  latestRuns,
  runsBetween,
  type RunRow,
} from './runs.repository.js';
import { jobEnabled } from './settings.js';

export interface PlannedRun {
  job: string;
  partitionKey: string;
  day: string;
  /** run: a new run will be created; active: one is already waiting/running; disabled: switched off. */
  action: 'run' | 'active' | 'disabled';
}

async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

function create(
  rt: PipelineRuntime,
  job: string,
  partitionKey: string,
  day: string,
  trigger: string,
  mode: 'once' | 'again',
  db?: pg.PoolClient,
) {
  const now = rt.services.clock.now();
  // The deadline counts from when the partition is due (an hour: its end), not from creation.
  const due = partitionDueMs(parsePartition(rt.graph.get(job).partition, partitionKey));
  const deadlineMs =
    (rt.settings.jobs[job]?.deadlineMs ?? rt.graph.get(job).deadlineMs) + Math.max(0, due - now);
  const r = { job, partitionKey, day, trigger, deadlineMs, now };
  return db ? createRun(db, r, mode) : inTransaction(rt.control, (c) => createRun(c, r, mode));
}

/**
 * Create the runs of one day for every enabled job, unless that partition already had a run
 * (so a day scheduled twice, or backfilled over, runs once). Returns the ids created.
 */
export async function scheduleDay(rt: PipelineRuntime, day: string, trigger: string): Promise<number[]> {
  // One transaction for the day's runs (with 24 hourly partitions per hourly job, one per run
  // cost a commit each).
  return inTransaction(rt.control, async (c) => {
    const ids: number[] = [];
    for (const name of rt.graph.names()) {
      if (!jobEnabled(rt.settings, name)) continue;
      for (const p of partitionsFor(rt.graph.get(name), day, rt.topology)) {
        const id = await create(rt, name, p.key, day, trigger, 'once', c);
        if (id !== undefined) ids.push(id);
      }
    }
    return ids;
  });
}

/** What `rerun <job> --date D [--downstream]` would do, in the order it would run. */
export async function planRerun(
  rt: PipelineRuntime,
  job: string,
  day: string,
  downstream: boolean,
): Promise<PlannedRun[]> {
  const names = downstream ? rt.graph.closure(job) : [rt.graph.get(job).name];
  const out: PlannedRun[] = [];
  for (const name of names) {
    const parts = partitionsFor(rt.graph.get(name), day, rt.topology);
    const latest = new Map(
      (
        await latestRuns(
          rt.control,
          name,
          parts.map((p) => p.key),
        )
      ).map((r) => [r.partitionKey, r]),
    );
    for (const p of parts) {
      const active = ACTIVE_STATES.includes(latest.get(p.key)?.state ?? 'succeeded');
      const action = !jobEnabled(rt.settings, name) ? 'disabled' : active ? 'active' : 'run';
      out.push({ job: name, partitionKey: p.key, day, action });
    }
  }
  return out;
}

export async function rerun(
  rt: PipelineRuntime,
  job: string,
  day: string,
  opts: { downstream: boolean; dryRun: boolean },
): Promise<PlannedRun[]> {
  const plan = await planRerun(rt, job, day, opts.downstream);
  if (opts.dryRun) return plan;
  for (const p of plan) {
    if (p.action === 'run') await create(rt, p.job, p.partitionKey, day, 'rerun', 'again');
  }
  return plan;
}

/** Schedule every day of a range, oldest first; days already run are not run again. */
export async function backfill(
  rt: PipelineRuntime,
  from: string,
  to: string,
): Promise<{ day: string; created: number }[]> {
  const out = [];
  for (const day of daysBetween(from, to))
    out.push({ day, created: (await scheduleDay(rt, day, 'backfill')).length });
  return out;
}

/** The latest run of every (job, partition) of a range of days. */
export async function latestRunsBetween(rt: PipelineRuntime, from: string, to: string): Promise<RunRow[]> {
  const latest = new Map<string, RunRow>();
  for (const r of await runsBetween(rt.control, from, to)) latest.set(`${r.job}|${r.partitionKey}`, r);
  return [...latest.values()];
}

export interface DriveOptions {
  /** Called (and awaited) after each tick with the latest runs of the days. */
  onProgress?: (runs: RunRow[]) => void | Promise<void>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A waiting run whose external input is not due yet (`dueAt` in the future on the services'
 * clock: an hour of today that has not ended) — nobody can expect it to finish now.
 */
async function notDueYet(rt: PipelineRuntime, run: RunRow): Promise<boolean> {
  if (run.state !== 'waiting' || !rt.graph.has(run.job)) return false;
  const job = rt.graph.get(run.job);
  if (!job.inputs.external?.length) return false;
  const partition = partitionOfRun(rt.graph, run);
  for (const input of job.inputs.external) {
    const r = await input.exists({ services: rt.services, partition });
    if (!r.ready && r.dueAt !== undefined && r.dueAt > rt.services.clock.now()) return true;
  }
  return false;
}

/** The latest runs of a range of days, without those whose input is not due yet. */
export async function latestDueRunsBetween(rt: PipelineRuntime, from: string, to: string): Promise<RunRow[]> {
  const out: RunRow[] = [];
  for (const r of await latestRunsBetween(rt, from, to)) if (!(await notDueYet(rt, r))) out.push(r);
  return out;
}

/**
 * Tick until every latest run of the given days is finished (succeeded, invalid, failed or
 * blocked). Returns those runs. Runs waiting on a missing input keep it waiting (and alert
 * at their deadline); `timeoutMs` bounds how long the caller is prepared to wait. Runs whose
 * input is not due yet (the hours of today still to come) are left waiting, not waited for and
 * not returned.
 */
export async function driveDays(
  rt: PipelineRuntime,
  coordinator: Coordinator,
  days: string[],
  o: DriveOptions = {},
): Promise<RunRow[]> {
  const from = days.reduce((a, b) => (a < b ? a : b));
  const to = days.reduce((a, b) => (a > b ? a : b));
  const deadline = o.timeoutMs === undefined ? Infinity : Date.now() + o.timeoutMs;
  for (;;) {
    await coordinator.tick();
    const runs = (await latestDueRunsBetween(rt, from, to)).filter((r) => days.includes(r.day));
    await o.onProgress?.(runs);
    if (runs.every((r) => !ACTIVE_STATES.includes(r.state))) return runs;
    if (Date.now() > deadline || o.signal?.aborted) return runs;
    await new Promise((resolve) => setTimeout(resolve, rt.settings.tickIntervalMs));
  }
}

/**
 * Retention: remove the run history and per-run outputs (everything under each run's
 * `runPrefix`: its attempts' partial outputs and its run-scoped output) of days older than
 * `retentionDays` before `today`. Outputs go first and the rows after, so a retention cut short
 * (a crash, a failing store) leaves rows that the next one finds again, never orphaned files.
 * Published outputs (reports at the original's paths) are not per-run and are not touched.
 * Returns the runs removed.
 */
export async function applyRetention(rt: PipelineRuntime, today: string): Promise<number> {
  const before = addDays(today, -rt.settings.retentionDays);
  const runs = await finishedRunsBefore(rt.control, before);
  for (const r of runs) await removePrefix(rt, runPrefix(r.job, r.partitionKey, r.id));
  const ids = runs.map((r) => r.id);
  const removed = (await deleteRunsBefore(rt.control, before, ids)).length;
  for (const name of rt.graph.names()) {
    const job = rt.graph.get(name);
    const n = job.retain ? await job.retain({ services: rt.services, before }) : 0;
    if (n > 0) rt.services.log(`retention: ${name} removed ${n} object(s) of days before ${before}`);
  }
  return removed;
}

async function removePrefix(rt: PipelineRuntime, prefix: string): Promise<void> {
  for (const p of await rt.services.store.list(prefix)) await rt.services.store.delete(p);
}
