/**
 * Tasks and attempts of runs (schema `remora_pipeline`). One function per statement.
 *
 * Task states:    queued → succeeded | failed (attempts exhausted)
 * Attempt states: running → succeeded | failed (threw or timed out; or fenced: its task was
 *                 completed by another attempt) | lost (its worker stopped heartbeating; the engine
 *                 job is unlocked and claimed again elsewhere). A lost attempt never becomes
 *                 succeeded: completeAttempt is the fence (docs/pipeline.md "A lost attempt that
 *                 keeps running").
 */
import type { Queryable } from '../metadata/moray.repository.js';
import type { RunReport } from '../core/run-report.js';
import { SCHEMA } from './runs.repository.js';
import { ENGINE_SCHEMA, TASK_JOB_KEY_PREFIX } from './engine.js';

export interface TaskRow {
  id: number;
  runId: number;
  key: string;
  params: unknown;
  state: 'queued' | 'succeeded' | 'failed';
  winningAttempt: number | null;
  output: unknown;
  report: RunReport | null;
  error: string | null;
}

interface RawTask {
  id: string;
  run_id: string;
  task_key: string;
  params: unknown;
  state: TaskRow['state'];
  winning_attempt: string | null;
  output: unknown;
  report: RunReport | null;
  error: string | null;
}

const toTask = (r: RawTask): TaskRow => ({
  id: Number(r.id),
  runId: Number(r.run_id),
  key: r.task_key,
  params: r.params,
  state: r.state,
  winningAttempt: r.winning_attempt === null ? null : Number(r.winning_attempt),
  output: r.output,
  report: r.report,
  error: r.error,
});

/** Insert a run's tasks (idempotent on (run, key)); returns every task of the run. */
export async function insertTasks(
  db: Queryable,
  runId: number,
  specs: { key: string; params: unknown }[],
): Promise<TaskRow[]> {
  await db.query(
    `INSERT INTO ${SCHEMA}.tasks (run_id, task_key, params)
     SELECT $1, k, p FROM unnest($2::text[], $3::jsonb[]) AS t(k, p)
     ON CONFLICT (run_id, task_key) DO NOTHING`,
    [runId, specs.map((s) => s.key), specs.map((s) => JSON.stringify(s.params ?? null))],
  );
  return tasksOfRun(db, runId);
}

export async function tasksOfRun(db: Queryable, runId: number): Promise<TaskRow[]> {
  const r = await db.query<RawTask>(`SELECT * FROM ${SCHEMA}.tasks WHERE run_id = $1 ORDER BY task_key`, [
    runId,
  ]);
  return r.rows.map(toTask);
}

export async function getTask(db: Queryable, id: number): Promise<TaskRow | undefined> {
  const r = await db.query<RawTask>(`SELECT * FROM ${SCHEMA}.tasks WHERE id = $1`, [id]);
  return r.rows[0] ? toTask(r.rows[0]) : undefined;
}

/**
 * Task counts per state of each given run, and the records its finished tasks processed (each
 * task's key counter, as the runs grid counts a run: records scanned, or processed when it scans none).
 */
export async function taskProgress(
  db: Queryable,
  runIds: number[],
): Promise<Map<number, { total: number; succeeded: number; failed: number; records: number }>> {
  const r = await db.query<{
    run_id: string;
    total: string;
    succeeded: string;
    failed: string;
    records: string;
  }>(
    `SELECT run_id, count(*) AS total, count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       coalesce(sum(coalesce(nullif((report->'counters'->>'recordsScanned')::numeric, 0),
         (report->'counters'->>'processed')::numeric, 0)) FILTER (WHERE state = 'succeeded'), 0) AS records
     FROM ${SCHEMA}.tasks WHERE run_id = ANY($1) GROUP BY run_id`,
    [runIds],
  );
  return new Map(
    r.rows.map((x) => [
      Number(x.run_id),
      {
        total: Number(x.total),
        succeeded: Number(x.succeeded),
        failed: Number(x.failed),
        records: Number(x.records),
      },
    ]),
  );
}

export async function startAttempt(
  db: Queryable,
  a: { taskId: number; engineAttempt: number; worker: string; engineWorker: string | null },
): Promise<number> {
  const r = await db.query<{ id: string }>(
    `INSERT INTO ${SCHEMA}.attempts (task_id, engine_attempt, worker, engine_worker) VALUES ($1, $2, $3, $4) RETURNING id`,
    [a.taskId, a.engineAttempt, a.worker, a.engineWorker],
  );
  return Number(r.rows[0]!.id);
}

/**
 * Give back the engine attempt a claim counted (graphile-worker counts one at each claim), while
 * `engineWorker` still holds the job: for a claim that started nothing (TaskBusy).
 */
export async function returnEngineAttempt(
  db: Queryable,
  engineJobId: string,
  engineWorker: string | null,
): Promise<void> {
  await db.query(
    `UPDATE ${ENGINE_SCHEMA}._private_jobs SET attempts = greatest(attempts - 1, 0)
      WHERE id = $1::bigint AND locked_by = $2`,
    [engineJobId, engineWorker],
  );
}

/**
 * startAttempt, unless another attempt of the task is running with a heartbeat younger than
 * `staleMs` (undefined then). An engine job can be claimed while its task runs: a fenced attempt's
 * end is recorded by the engine as a failure of the job its retry now holds when both ran in one
 * engine worker (graphile's failJob matches the worker, not the attempt), which unlocks it.
 */
export async function startAttemptIfIdle(
  db: Queryable,
  a: { taskId: number; engineAttempt: number; worker: string; engineWorker: string | null },
  staleMs: number,
): Promise<number | undefined> {
  const r = await db.query<{ id: string }>(
    `INSERT INTO ${SCHEMA}.attempts (task_id, engine_attempt, worker, engine_worker)
     SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.attempts
       WHERE task_id = $1 AND state = 'running' AND heartbeat_at >= now() - ($5 * interval '1 millisecond'))
     RETURNING id`,
    [a.taskId, a.engineAttempt, a.worker, a.engineWorker, staleMs],
  );
  return r.rows[0] ? Number(r.rows[0].id) : undefined;
}

export async function setAttemptPrefix(db: Queryable, attemptId: number, prefix: string): Promise<void> {
  await db.query(`UPDATE ${SCHEMA}.attempts SET output_prefix = $2 WHERE id = $1`, [attemptId, prefix]);
}

export async function finishAttempt(
  db: Queryable,
  attemptId: number,
  state: 'succeeded' | 'failed',
  error?: string,
): Promise<void> {
  await db.query(
    `UPDATE ${SCHEMA}.attempts SET state = $2, error = $3, finished_at = now() WHERE id = $1 AND state = 'running'`,
    [attemptId, state, error ?? null],
  );
}

/**
 * The fence (docs/pipeline.md "A lost attempt that keeps running"): an attempt completes its task
 * only while it is still `running` — not declared lost — and the task still `queued`, in one
 * statement. The task row is locked first, so two attempts completing at once are ordered, and
 * the attempt row's `state = 'running'` is re-checked under its lock, so a reap that declares the
 * attempt lost and this completion are ordered too: whichever commits first, the other finds
 * nothing to change. False: fenced (the attempt's result must be discarded).
 */
export async function completeAttempt(
  db: Queryable,
  t: { taskId: number; attemptId: number; output: unknown; report: RunReport },
): Promise<boolean> {
  const r = await db.query(
    `WITH t AS (SELECT id FROM ${SCHEMA}.tasks WHERE id = $1 AND state = 'queued' FOR UPDATE),
     a AS (UPDATE ${SCHEMA}.attempts SET state = 'succeeded', finished_at = now()
           WHERE id = $2 AND state = 'running' AND EXISTS (SELECT 1 FROM t) RETURNING id)
     UPDATE ${SCHEMA}.tasks SET state = 'succeeded', winning_attempt = $2, output = $3, report = $4
     WHERE id IN (SELECT id FROM t) AND EXISTS (SELECT 1 FROM a)`,
    [t.taskId, t.attemptId, JSON.stringify(t.output ?? null), JSON.stringify(t.report)],
  );
  return (r.rowCount ?? 0) > 0;
}

/** Why an attempt's completion was fenced: the attempt's state now, and the task's winner, if any. */
export async function fenceOf(
  db: Queryable,
  attemptId: number,
): Promise<{ attemptState: string; winningAttempt: number | null }> {
  const r = await db.query<{ state: string; winning_attempt: string | null }>(
    `SELECT a.state, t.winning_attempt FROM ${SCHEMA}.attempts a JOIN ${SCHEMA}.tasks t ON t.id = a.task_id
     WHERE a.id = $1`,
    [attemptId],
  );
  const x = r.rows[0];
  return {
    attemptState: x?.state ?? 'unknown',
    winningAttempt: x?.winning_attempt == null ? null : Number(x.winning_attempt),
  };
}

/**
 * Record a fenced attempt's end: a lost one stays `lost`, its error extended with why its result
 * was discarded; a running one (its task completed by another attempt) becomes `failed`.
 */
export async function recordFencedAttempt(db: Queryable, attemptId: number, error: string): Promise<void> {
  await db.query(
    `UPDATE ${SCHEMA}.attempts SET
       state = CASE WHEN state = 'running' THEN 'failed' ELSE state END,
       error = CASE WHEN state = 'lost' AND error IS NOT NULL THEN error || '; then ' || $2 ELSE $2 END,
       finished_at = coalesce(finished_at, now())
     WHERE id = $1 AND state IN ('running', 'lost')`,
    [attemptId, error],
  );
}

/** The attempts of a run declared lost (each fenced off: whatever it still does commits nothing). */
export async function lostAttemptsOfRun(
  db: Queryable,
  runId: number,
): Promise<{ id: number; taskKey: string; worker: string; startedAt: Date }[]> {
  const r = await db.query<{ id: string; task_key: string; worker: string; started_at: Date }>(
    `SELECT a.id, t.task_key, a.worker, a.started_at FROM ${SCHEMA}.attempts a
       JOIN ${SCHEMA}.tasks t ON t.id = a.task_id
      WHERE t.run_id = $1 AND a.state = 'lost' ORDER BY a.id`,
    [runId],
  );
  return r.rows.map((x) => ({
    id: Number(x.id),
    taskKey: x.task_key,
    worker: x.worker,
    startedAt: x.started_at,
  }));
}

export async function failTask(db: Queryable, taskId: number, error: string): Promise<void> {
  await db.query(
    `UPDATE ${SCHEMA}.tasks SET state = 'failed', error = $2 WHERE id = $1 AND state = 'queued'`,
    [taskId, error],
  );
}

/**
 * Heartbeat every attempt a worker process is running. Returns those that are no longer running
 * in the table: declared lost (their heartbeat lapsed) while this process still runs them.
 */
export async function heartbeatAttempts(db: Queryable, attemptIds: number[]): Promise<number[]> {
  if (attemptIds.length === 0) return [];
  const r = await db.query<{ id: string }>(
    `UPDATE ${SCHEMA}.attempts SET heartbeat_at = now() WHERE id = ANY($1) AND state = 'running' RETURNING id`,
    [attemptIds],
  );
  const alive = new Set(r.rows.map((x) => Number(x.id)));
  return attemptIds.filter((id) => !alive.has(id));
}

/** Mark attempts whose worker stopped heartbeating as lost; returns their tasks and engine workers, to unlock. */
export async function reapLostAttempts(
  db: Queryable,
  staleMs: number,
): Promise<{ attemptId: number; taskId: number; engineWorker: string | null }[]> {
  const r = await db.query<{ id: string; task_id: string; engine_worker: string | null }>(
    `UPDATE ${SCHEMA}.attempts SET state = 'lost', finished_at = now(),
       error = 'worker stopped heartbeating (killed or hung); task released to other workers'
     WHERE state = 'running' AND heartbeat_at < now() - ($1 * interval '1 millisecond')
     RETURNING id, task_id, engine_worker`,
    [staleMs],
  );
  return r.rows.map((x) => ({
    attemptId: Number(x.id),
    taskId: Number(x.task_id),
    engineWorker: x.engine_worker,
  }));
}

/**
 * Release the engine jobs of these tasks, each only while the engine worker named with it holds
 * it; returns how many were released. Only these: one engine worker (a process's pool) holds the
 * jobs of every attempt it runs, and graphile-worker's forceUnlockWorkers released them all, so
 * a live attempt beside a lost one had its job claimed again and its task run twice at once
 * (fenced, but the work done twice).
 */
export async function unlockTaskJobs(
  db: Queryable,
  held: readonly { taskId: number; engineWorker: string | null }[],
): Promise<number> {
  const h = held.filter((x): x is { taskId: number; engineWorker: string } => !!x.engineWorker);
  if (h.length === 0) return 0;
  const r = await db.query(
    `UPDATE ${ENGINE_SCHEMA}._private_jobs AS j SET locked_at = NULL, locked_by = NULL
       FROM unnest($1::text[], $2::text[]) AS h(key, worker)
      WHERE j.key = h.key AND j.locked_by = h.worker`,
    [h.map((x) => `${TASK_JOB_KEY_PREFIX}${x.taskId}`), h.map((x) => x.engineWorker)],
  );
  return r.rowCount ?? 0;
}

/**
 * Engine jobs locked for longer than `staleMs` while their task has no running attempt: the
 * worker that claimed one stopped before it recorded an attempt (killed, or PostgreSQL went away
 * between the claim and the insert), or after it ended the attempt but before the engine
 * recorded the job's end. No attempt heartbeat covers them, and graphile-worker itself unlocks
 * them only after 4 hours: the chaos day saw a run wait on one after a PostgreSQL restart.
 * Returns each such job's task and the engine worker holding it (to force-unlock).
 */
export async function orphanedEngineLocks(
  db: Queryable,
  staleMs: number,
): Promise<{ taskId: number; engineWorker: string }[]> {
  const r = await db.query<{ task_id: string; locked_by: string }>(
    `SELECT t.id AS task_id, j.locked_by FROM ${ENGINE_SCHEMA}.jobs j
       JOIN ${SCHEMA}.tasks t ON j.key = $2 || t.id
      WHERE j.locked_by IS NOT NULL AND j.locked_at < now() - ($1 * interval '1 millisecond')
        AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.attempts a WHERE a.task_id = t.id AND a.state = 'running')`,
    [staleMs, TASK_JOB_KEY_PREFIX],
  );
  return r.rows.map((x) => ({ taskId: Number(x.task_id), engineWorker: x.locked_by }));
}

export interface AttemptRow {
  id: number;
  taskKey: string;
  engineAttempt: number;
  worker: string;
  state: string;
  outputPrefix: string;
  error: string | null;
  startedAt: Date;
  finishedAt: Date | null;
}

export async function attemptsOfRun(db: Queryable, runId: number): Promise<AttemptRow[]> {
  const r = await db.query<{
    id: string;
    task_key: string;
    engine_attempt: number;
    worker: string;
    state: string;
    output_prefix: string;
    error: string | null;
    started_at: Date;
    finished_at: Date | null;
  }>(
    `SELECT a.id, t.task_key, a.engine_attempt, a.worker, a.state, a.output_prefix, a.error, a.started_at, a.finished_at
     FROM ${SCHEMA}.attempts a JOIN ${SCHEMA}.tasks t ON t.id = a.task_id WHERE t.run_id = $1 ORDER BY a.id`,
    [runId],
  );
  return r.rows.map((x) => ({
    id: Number(x.id),
    taskKey: x.task_key,
    engineAttempt: x.engine_attempt,
    worker: x.worker,
    state: x.state,
    outputPrefix: x.output_prefix,
    error: x.error,
    startedAt: x.started_at,
    finishedAt: x.finished_at,
  }));
}
