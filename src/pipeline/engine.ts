/**
 * The adapter over the job engine (graphile-worker 0.17.3; DESIGN.md "Scale-out": "a task is
 * claimed, heartbeated and retried through an existing PostgreSQL-backed job engine, not a
 * queue of our own").
 *
 * Why graphile-worker over pg-boss (both run on Node 20 here, DEPENDENCY-NOTES.md):
 *   - jobs are added by a SQL function (`add_job`), so a run's tasks are enqueued in the SAME
 *     transaction that moves the run to `running` — no window where a run is running with no
 *     queued work, or work is queued for a run that never started;
 *   - LISTEN/NOTIFY wake-ups: measured 1.5–2.1k jobs/s vs pg-boss's ~1k (polling-bound);
 *   - exponential backoff (exp(min(attempts,10)) s) and max_attempts built in.
 * What it lacks we add in our tables: run history (it deletes finished jobs) and liveness — a
 * SIGKILLed worker's job stays locked for 4 hours (resetLockedAt), so Remora heartbeats each
 * attempt and unlocks the job of each attempt whose heartbeats stop, only that one
 * (tasks.repository.ts unlockTaskJobs: its `forceUnlockWorkers` releases every job of a worker).
 */
import { Logger, makeWorkerUtils, run, type Runner, type JobHelpers } from 'graphile-worker';
import type { Queryable } from '../metadata/moray.repository.js';
import { openPool, type ServerPool } from '../metadata/pg-connection.js';

/** graphile-worker's own schema in the control database, beside `remora_pipeline`. */
export const ENGINE_SCHEMA = 'remora_graphile_worker';
/** The one engine task identifier: its payload names a row of remora_pipeline.tasks. */
export const TASK_IDENTIFIER = 'remora_pipeline_task';

/** An engine job's key is this prefix and the id of its row in remora_pipeline.tasks. */
export const TASK_JOB_KEY_PREFIX = 'remora-task-';

export interface TaskPayload {
  taskId: number;
}

function quietLogger(log: (line: string) => void): Logger {
  return new Logger(() => (level, message) => {
    if ((level as string) === 'error') log(`job engine: ${message}`);
  });
}

/**
 * The engine's connections: a pool of ours (metadata/pg-connection.ts), not one graphile-worker
 * makes. Its pools drop their error listeners on release and end without waiting, so PostgreSQL
 * going away just after a worker or a coordinator closed them was an uncaught 'error' that ended
 * the process (found by the chaos day). Ours listens on every client for its whole life, and
 * whoever opened it waits for its end.
 */
function enginePool(connectionString: string, max: number): ServerPool {
  return openPool(connectionString, { max, label: 'job engine' });
}

/** Create or upgrade the engine's schema. */
export async function migrateEngine(connectionString: string, log: (line: string) => void): Promise<void> {
  const pool = enginePool(connectionString, 2);
  try {
    const utils = await makeWorkerUtils({ pgPool: pool, schema: ENGINE_SCHEMA, logger: quietLogger(log) });
    try {
      await utils.migrate();
    } finally {
      await utils.release();
    }
  } finally {
    await pool.end();
  }
}

/**
 * Enqueue one task inside the caller's transaction. The job key makes a repeated enqueue of
 * the same task replace the waiting job instead of adding a second one.
 */
export async function enqueueTask(tx: Queryable, taskId: number, maxAttempts: number): Promise<void> {
  await tx.query(`SELECT ${ENGINE_SCHEMA}.add_job($1, $2::json, max_attempts => $3::int, job_key => $4)`, [
    TASK_IDENTIFIER,
    JSON.stringify({ taskId } satisfies TaskPayload),
    maxAttempts,
    `${TASK_JOB_KEY_PREFIX}${taskId}`,
  ]);
}

export interface EngineWorkerOptions {
  connectionString: string;
  concurrency: number;
  /** Poll interval for jobs whose run_at is in the future (retries); new jobs arrive by NOTIFY. */
  pollIntervalMs: number;
  log: (line: string) => void;
  handle: (payload: TaskPayload, helpers: JobHelpers) => Promise<void>;
}

/** A running engine worker (graphile-worker's runner and its connections). */
export interface EngineRunner {
  /** Settles once the runner has stopped and its connections are closed: after stop(), or by itself. */
  promise: Promise<void>;
  /** Stop claiming, let the tasks in flight finish, close the connections. */
  stop(): Promise<void>;
}

/** graphile-worker's default pool size for a runner. */
const RUNNER_POOL_SIZE = 10;

/** Start claiming tasks. The caller owns signals: we never let the engine install handlers. */
export async function startEngineWorker(o: EngineWorkerOptions): Promise<EngineRunner> {
  const pool = enginePool(o.connectionString, Math.max(RUNNER_POOL_SIZE, o.concurrency + 2));
  let runner: Runner;
  try {
    runner = await run({
      pgPool: pool,
      schema: ENGINE_SCHEMA,
      concurrency: o.concurrency,
      pollInterval: o.pollIntervalMs,
      noHandleSignals: true,
      logger: quietLogger(o.log),
      // Batched (even with no delay), a completeJob/failJob that cannot reach PostgreSQL is
      // handled: logged, and this runner shuts down (PipelineWorker starts another). Unbatched,
      // 0.17.3 leaves that promise unhandled, and the process dies with a raw stack trace: a task
      // that ended while PostgreSQL restarted killed its `remora worker` (found by the chaos day).
      // The job it could not record stays locked; the reaper releases it (tasks.repository.ts).
      preset: { worker: { completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
      taskList: {
        [TASK_IDENTIFIER]: async (payload, helpers) => o.handle(payload as TaskPayload, helpers),
      },
    });
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  let ended: Promise<void> | undefined;
  const endPool = () => (ended ??= pool.end().catch(() => {}));
  const promise = runner.promise.finally(endPool);
  // Whoever holds the runner may look at `promise` late: a rejection is not unhandled meanwhile.
  promise.catch(() => {});
  return {
    promise,
    stop: async () => {
      await runner.stop();
      await endPool();
    },
  };
}
