/**
 * A worker process: claims tasks through graphile-worker and runs them. Stateless — any
 * number of them, on any machines that reach the control database and the object store.
 *
 * One attempt:
 *   1. the task must still be queued and its run running (else: nothing to do);
 *   2. insert an attempt row (worker, engine worker id, engine attempt number), which names
 *      the attempt's own output prefix;
 *   3. run the job's task function with a timeout; heartbeat the attempt meanwhile;
 *   4. success: the first attempt to complete the task wins (later duplicates are ignored);
 *      failure: rethrow so the engine retries with backoff, and on the last allowed attempt
 *      mark the task failed (which fails the run).
 */
import os from 'node:os';
import crypto from 'node:crypto';
import type { JobHelpers } from 'graphile-worker';
import { isRemoraError, isRetryable, RemoraError, toRemoraError } from '../core/errors.js';
import { type EngineRunner, EngineUtils, startEngineWorker, type TaskPayload } from './engine.js';
import { attemptPrefix, partitionOfRun } from './inputs.js';
import type { TaskResult, UpstreamOutput } from './job.js';
import { ReportBuilder } from '../core/run-report.js';
import type { PipelineRuntime } from './runtime.js';
import { getRun } from './runs.repository.js';
import {
  completeTask,
  failTask,
  finishAttempt,
  getTask,
  heartbeatAttempts,
  orphanedEngineLocks,
  reapLostAttempts,
  setAttemptPrefix,
  startAttempt,
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
  private engine: EngineUtils | undefined;
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
    // another attempt's now, so these stop — a task's side effects (unpack's commit) must not land
    // after its retry's.
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
    const workers = [
      ...new Set([...lost.map((l) => l.engineWorker), ...orphans.map((o) => o.engineWorker)]),
    ].filter((w): w is string => !!w);
    if (workers.length === 0) return;
    this.engine ??= await EngineUtils.open(this.rt.controlUrl, this.rt.services.log);
    await this.engine.forceUnlock(workers);
    this.rt.services.log(`released tasks of stopped worker(s) ${workers.join(', ')}`);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    await this.runner?.stop();
    this.runner = undefined;
    await this.engine?.close();
    this.engine = undefined;
  }

  private async handle(payload: TaskPayload, helpers: JobHelpers): Promise<void> {
    const db = this.rt.control;
    const task = await getTask(db, payload.taskId);
    if (!task || task.state !== 'queued') return;
    const run = await getRun(db, task.runId);
    if (!run || run.state !== 'running' || !this.rt.graph.has(run.job)) return;
    const job = this.rt.graph.get(run.job);
    const attemptId = await startAttempt(db, {
      taskId: task.id,
      engineAttempt: helpers.job.attempts,
      worker: this.name,
      engineWorker: helpers.job.locked_by,
    });
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
    try {
      await setAttemptPrefix(db, attemptId, prefix);
      const result = await Promise.race<TaskResult>([
        job.runTask({
          services: this.rt.services,
          partition: partitionOfRun(this.rt.graph, run),
          runId: run.id,
          upstream: (run.inputs as UpstreamOutput[] | null) ?? [],
          task: { key: task.key, params: task.params },
          attemptId,
          outputPrefix: prefix,
          signal: abort.signal,
          report: new ReportBuilder(),
        }),
        new Promise<never>((_, reject) => {
          abort.signal.addEventListener('abort', () => reject(abort.signal.reason as Error));
        }),
      ]);
      await finishAttempt(db, attemptId, 'succeeded');
      await completeTask(db, { taskId: task.id, attemptId, output: result.output, report: result.report });
      this.rt.metrics.tasks.inc({ job: run.job, outcome: 'succeeded' });
    } catch (err) {
      const message = toRemoraError(err).message;
      await finishAttempt(db, attemptId, 'failed', message);
      this.rt.metrics.tasks.inc({ job: run.job, outcome: 'failed' });
      // The catalog says which errors another attempt could fix; a RemoraError that is not
      // retryable (bad input, a stale unpack, a usage error) fails the task now instead of
      // being tried max_attempts times. Errors from elsewhere are not classified: retried.
      const final = isRemoraError(err) && !isRetryable(err);
      if (final || helpers.job.attempts >= helpers.job.max_attempts) {
        await failTask(
          db,
          task.id,
          final
            ? `attempt ${helpers.job.attempts}: ${message} (${toRemoraError(err).code} is not retryable)`
            : `attempt ${helpers.job.attempts}/${helpers.job.max_attempts}: ${message}`,
        );
      }
      if (final) return; // the engine's job is done: the task failed in our tables
      throw err;
    } finally {
      clearTimeout(timer);
      helpers.abortSignal.removeEventListener('abort', onShutdown);
      this.active.delete(attemptId);
      this.rt.metrics.taskDuration.observe({ job: run.job }, (Date.now() - t0) / 1000);
    }
  }
}
