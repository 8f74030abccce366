/**
 * A worker process: claims tasks through graphile-worker and runs them. Stateless — any
 * number of them, on any machines that reach the control database and the object store.
 *
 * One attempt:
 *   1. the task must still be queued and its run running (else: nothing to do);
 *   2. insert an attempt row (worker, engine worker id, engine attempt number), which names
 *      the attempt's own output prefix;
 *   3. run the job's task function with a timeout; heartbeat the attempt meanwhile;
 *   4. success: the attempt completes its task only if it is still running — not declared
 *      lost — and the task still queued, in one statement (completeAttempt, the fence); else it
 *      is fenced: its result is discarded (the job's `discard` removes what it wrote) and it
 *      ends with AttemptFenced, recorded on the attempt;
 *      failure: rethrow so the engine retries with backoff, and on the last allowed attempt
 *      mark the task failed (which fails the run).
 *
 * A lost attempt that keeps running (docs/pipeline.md): an attempt is declared lost when its
 * heartbeat is late by more than staleAfterMs, by whichever process reaps first, and its task is
 * released to another attempt at once; its own process may only learn it at its next heartbeat,
 * or never (stalled). So nothing may depend on it stopping. What keeps it harmless: it cannot
 * complete its task (the fence above), and no job switches a shared pointer in a task — a task
 * writes under names of its own, and the run's commit (the coordinator, once, after every task
 * has its one winner) switches the pointer (unpack's source manifest, src/dumps/source-commit.ts).
 * Aborting its signal when the process finds out only saves work.
 */
import os from 'node:os';
import crypto from 'node:crypto';
import type { JobHelpers } from 'graphile-worker';
import { isRemoraError, isRetryable, RemoraError, toRemoraError } from '../core/errors.js';
import { type EngineRunner, startEngineWorker, type TaskPayload } from './engine.js';
import { attemptPrefix, partitionOfRun } from './inputs.js';
import type { JobDefinition, TaskContext, TaskResult, UpstreamOutput } from './job.js';
import { ReportBuilder } from '../core/run-report.js';
import type { PipelineRuntime } from './runtime.js';
import { getRun } from './runs.repository.js';
import {
  completeAttempt,
  failTask,
  fenceOf,
  finishAttempt,
  getTask,
  heartbeatAttempts,
  orphanedEngineLocks,
  reapLostAttempts,
  unlockTaskJobs,
  recordFencedAttempt,
  setAttemptPrefix,
  returnEngineAttempt,
  startAttemptIfIdle,
} from './tasks.repository.js';

/** How long a worker waits before starting its job engine again after it stopped by itself. */
const RESTART_DELAY_MS = 1000;

/** Default per-attempt timeout: tasks are meant to take seconds to minutes (RFD 16 problem 6). */
export const DEFAULT_TASK_TIMEOUT_MS = 30 * 60_000;

export class PipelineWorker {
  readonly name = `${os.hostname()}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;
  private runner: EngineRunner | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  /** Attempts this process is running, each with the controller that stops it. */
  private readonly active = new Map<number, AbortController>();
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly rt: PipelineRuntime) {}

  async start(): Promise<void> {
    this.stopping = false;
    await this.startRunner();
    this.heartbeat = setInterval(() => {
      this.beat().catch((err: Error) => this.rt.services.log(`heartbeat failed: ${err.message}`));
    }, this.rt.settings.heartbeatMs);
  }

  /**
   * Start the engine's runner. It ends by itself when it cannot record a job's end (PostgreSQL
   * gone, engine.ts): then another is started, every RESTART_DELAY_MS until one starts, so a
   * worker process outlives a PostgreSQL restart.
   */
  private async startRunner(): Promise<void> {
    const runner = await startEngineWorker({
      connectionString: this.rt.controlUrl,
      concurrency: this.rt.settings.concurrency,
      pollIntervalMs: this.rt.settings.workerPollIntervalMs,
      log: this.rt.services.log,
      handle: (payload, helpers) => this.handle(payload, helpers),
    });
    if (this.stopping) {
      await runner.stop();
      return;
    }
    this.runner = runner;
    runner.promise.then(
      () => this.runnerEnded(runner, undefined),
      (err: unknown) => this.runnerEnded(runner, err),
    );
  }

  private runnerEnded(runner: EngineRunner, err: unknown): void {
    if (this.stopping || this.runner !== runner) return;
    this.runner = undefined;
    const why = err === undefined ? '' : `: ${toRemoraError(err).message}`;
    this.rt.services.log(`job engine stopped by itself${why}; starting it again`);
    const retry = () => {
      this.restartTimer = undefined;
      if (this.stopping) return;
      this.startRunner().catch((e: unknown) => {
        this.rt.services.log(`job engine did not start: ${toRemoraError(e).message}; trying again`);
        this.restartTimer = setTimeout(retry, RESTART_DELAY_MS);
      });
    };
    this.restartTimer = setTimeout(retry, RESTART_DELAY_MS);
  }

  /** Heartbeat our attempts, and release tasks of workers that stopped (so `remora worker` alone recovers). */
  private async beat(): Promise<void> {
    const gone = await heartbeatAttempts(this.rt.control, [...this.active.keys()]);
    const lost = await reapLostAttempts(this.rt.control, this.rt.settings.staleAfterMs);
    // Our own attempts declared lost (this process stalled past staleAfterMs): their tasks are
    // another attempt's now, so these stop. That saves work only: a lost attempt that goes on
    // anyway is fenced (see the header).
    for (const id of [...gone, ...lost.map((l) => l.attemptId)])
      this.active
        .get(id)
        ?.abort(
          new RemoraError(
            'AttemptLost',
            `attempt ${id} was declared lost; its task was released to another attempt`,
          ),
        );
    const orphans = await orphanedEngineLocks(this.rt.control, this.rt.settings.staleAfterMs);
    const released = [...lost, ...orphans].filter((x) => x.engineWorker);
    if (released.length === 0) return;
    await unlockTaskJobs(this.rt.control, released);
    this.rt.services.log(
      `released task(s) ${released.map((x) => `${x.taskId} (held by ${x.engineWorker})`).join(', ')} of stopped workers`,
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    await this.runner?.stop();
    this.runner = undefined;
  }

  /** Let the job remove what an attempt whose result is never committed wrote (best effort). */
  private async discard(job: JobDefinition, ctx: TaskContext, output: unknown): Promise<void> {
    if (!job.discard) return;
    try {
      await job.discard(ctx, output);
    } catch (err) {
      this.rt.services.log(
        `${job.name}: could not remove what attempt ${ctx.attemptId} wrote: ${toRemoraError(err).message}`,
      );
    }
  }

  /** The AttemptFenced an attempt whose completion was refused ends with: why, and who has its task. */
  private async fenced(attemptId: number): Promise<RemoraError> {
    const f = await fenceOf(this.rt.control, attemptId);
    const why =
      f.attemptState === 'lost'
        ? `attempt ${attemptId} finished after it was declared lost (no heartbeat for more than ` +
          `${this.rt.settings.staleAfterMs} ms: its process stalled or was cut off)`
        : `attempt ${attemptId} finished after another attempt completed its task`;
    const owner =
      f.winningAttempt !== null
        ? `attempt ${f.winningAttempt} completed the task`
        : 'its task went to another attempt';
    return new RemoraError(
      'AttemptFenced',
      `${why}; ${owner}. Its result is discarded: it committed nothing`,
      {
        details: { attemptId, winningAttempt: f.winningAttempt },
      },
    );
  }

  private async handle(payload: TaskPayload, helpers: JobHelpers): Promise<void> {
    const db = this.rt.control;
    const task = await getTask(db, payload.taskId);
    if (!task || task.state !== 'queued') return;
    const run = await getRun(db, task.runId);
    if (!run || run.state !== 'running' || !this.rt.graph.has(run.job)) return;
    const job = this.rt.graph.get(run.job);
    const attemptId = await startAttemptIfIdle(
      db,
      {
        taskId: task.id,
        engineAttempt: helpers.job.attempts,
        worker: this.name,
        engineWorker: helpers.job.locked_by,
      },
      this.rt.settings.staleAfterMs,
    );
    // Thrown: the engine tries the job again after its backoff, by when the running attempt has
    // completed the task (nothing to do then) or been declared lost. The claim gives back the
    // engine attempt it counted, so it never uses up the task's last one.
    if (attemptId === undefined) {
      await returnEngineAttempt(db, String(helpers.job.id), helpers.job.locked_by);
      throw new RemoraError(
        'TaskBusy',
        `task ${task.id} (${run.job} ${run.partitionKey} ${task.key}) is being run by another attempt; not started twice`,
      );
    }
    const abort = new AbortController();
    this.active.set(attemptId, abort);
    const prefix = attemptPrefix(run.job, run.partitionKey, run.id, attemptId);
    const t0 = Date.now();
    const timeoutMs = job.taskTimeoutMs ?? DEFAULT_TASK_TIMEOUT_MS;
    const onShutdown = () => abort.abort(new RemoraError('WorkerShutdown', 'worker shutting down'));
    helpers.abortSignal.addEventListener('abort', onShutdown);
    const timer = setTimeout(
      () => abort.abort(new RemoraError('TaskTimeout', `attempt timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    const ctx: TaskContext = {
      services: this.rt.services,
      partition: partitionOfRun(this.rt.graph, run),
      runId: run.id,
      upstream: (run.inputs as UpstreamOutput[] | null) ?? [],
      task: { key: task.key, params: task.params },
      attemptId,
      outputPrefix: prefix,
      signal: abort.signal,
      report: new ReportBuilder(),
    };
    let running: Promise<TaskResult> | undefined;
    let result: TaskResult | undefined;
    try {
      await setAttemptPrefix(db, attemptId, prefix);
      running = job.runTask(ctx);
      result = await Promise.race<TaskResult>([
        running,
        new Promise<never>((_, reject) => {
          abort.signal.addEventListener('abort', () => reject(abort.signal.reason as Error));
        }),
      ]);
      // The fence: only an attempt still running (not declared lost) completes its task.
      if (
        !(await completeAttempt(db, {
          taskId: task.id,
          attemptId,
          output: result.output,
          report: result.report,
        }))
      ) {
        await this.discard(job, ctx, result.output);
        throw await this.fenced(attemptId);
      }
      this.rt.metrics.tasks.inc({ job: run.job, outcome: 'succeeded' });
    } catch (err) {
      const e = toRemoraError(err);
      const message = e.message;
      if (isRemoraError(err, 'AttemptFenced')) {
        await recordFencedAttempt(db, attemptId, `${e.code}: ${message}`);
        this.rt.metrics.tasks.inc({ job: run.job, outcome: 'fenced' });
        this.rt.services.log(`${run.job} ${run.partitionKey} task ${task.key}: ${e.code}: ${message}`);
      } else {
        await finishAttempt(db, attemptId, 'failed', message);
        this.rt.metrics.tasks.inc({ job: run.job, outcome: 'failed' });
      }
      // Cut short (lost, timed out, shutting down) while the task function goes on: whatever it
      // still returns is never committed.
      if (!result && abort.signal.aborted && running)
        running.then(
          (r) => this.discard(job, ctx, r.output),
          () => {},
        );
      // The catalog says which errors another attempt could fix; a RemoraError that is not
      // retryable (bad input, a stale unpack, a usage error) fails the task now instead of
      // being tried max_attempts times. Errors from elsewhere are not classified: retried.
      // (AttemptFenced is retryable: the task belongs to another attempt, or, when this was the
      // last one allowed, no other will come and the task fails here.)
      const final = isRemoraError(err) && !isRetryable(err);
      if (final || helpers.job.attempts >= helpers.job.max_attempts) {
        await failTask(
          db,
          task.id,
          final
            ? `attempt ${helpers.job.attempts}: ${message} (${e.code} is not retryable)`
            : `attempt ${helpers.job.attempts}/${helpers.job.max_attempts}: ${message}`,
        );
      }
      if (final) return; // the engine's job is done: the task failed in our tables
      // Thrown, not returned: the engine's failJob only touches a job this runner still holds,
      // whereas completing one deletes it whoever holds it (a fenced attempt's job may be its
      // retry's now).
      throw err;
    } finally {
      clearTimeout(timer);
      helpers.abortSignal.removeEventListener('abort', onShutdown);
      this.active.delete(attemptId);
      this.rt.metrics.taskDuration.observe({ job: run.job }, (Date.now() - t0) / 1000);
    }
  }
}
