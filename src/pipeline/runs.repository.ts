/**
 * Remora's own run history, in the control database under schema `remora_pipeline`
 * (graphile-worker 0.17 deletes finished jobs, so history cannot live in its tables;
 * DEPENDENCY-NOTES.md). One function per statement, client first.
 */
import { migrate, type MigrationList } from '../metadata/migrations.js';
import type { Queryable } from '../metadata/moray.repository.js';
import type { RunReport, Verdict } from '../core/run-report.js';

export const SCHEMA = 'remora_pipeline';

export type RunState = 'waiting' | 'running' | 'succeeded' | 'invalid' | 'failed' | 'blocked';
export const ACTIVE_STATES: readonly RunState[] = ['waiting', 'running'];

export interface RunRow {
  id: number;
  job: string;
  partitionKey: string;
  day: string;
  seq: number;
  state: RunState;
  verdict: Verdict | null;
  trigger: string;
  waitingOn: string | null;
  /** The upstream outputs the run started from (fixed at start, so every task sees the same). */
  inputs: unknown;
  report: RunReport | null;
  output: unknown;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  deadlineAt: Date;
  alertedAt: Date | null;
}

/** The executor's tables (src/metadata/migrations.ts): add a version at the end, never edit a released one. */
export const pipelineMigrations: MigrationList = {
  schema: 'pipeline',
  migrations: [
    {
      version: 1,
      name: 'baseline',
      up: [
        `CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`,
        `CREATE TABLE IF NOT EXISTS ${SCHEMA}.runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    day DATE NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    verdict TEXT,
    trigger TEXT NOT NULL,
    waiting_on TEXT,
    inputs JSONB,
    report JSONB,
    output JSONB,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    deadline_at TIMESTAMPTZ NOT NULL,
    alerted_at TIMESTAMPTZ,
    UNIQUE (job, partition_key, seq)
  )`,
        // At most one waiting/running run per (job, partition): a rerun or a second scheduler
        // can never start the same partition twice at once.
        `CREATE UNIQUE INDEX IF NOT EXISTS runs_one_active ON ${SCHEMA}.runs (job, partition_key)
    WHERE state IN ('waiting', 'running')`,
        `CREATE INDEX IF NOT EXISTS runs_day ON ${SCHEMA}.runs (day)`,
        `CREATE INDEX IF NOT EXISTS runs_state ON ${SCHEMA}.runs (state)`,
        `CREATE TABLE IF NOT EXISTS ${SCHEMA}.tasks (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES ${SCHEMA}.runs(id) ON DELETE CASCADE,
    task_key TEXT NOT NULL,
    params JSONB,
    state TEXT NOT NULL DEFAULT 'queued',
    winning_attempt BIGINT,
    output JSONB,
    report JSONB,
    error TEXT,
    UNIQUE (run_id, task_key)
  )`,
        `CREATE TABLE IF NOT EXISTS ${SCHEMA}.attempts (
    id BIGSERIAL PRIMARY KEY,
    task_id BIGINT NOT NULL REFERENCES ${SCHEMA}.tasks(id) ON DELETE CASCADE,
    engine_attempt INTEGER NOT NULL,
    worker TEXT NOT NULL,
    engine_worker TEXT,
    state TEXT NOT NULL DEFAULT 'running',
    output_prefix TEXT NOT NULL DEFAULT '',
    error TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
  )`,
        `CREATE INDEX IF NOT EXISTS attempts_running ON ${SCHEMA}.attempts (state, heartbeat_at)`,
        // The pointer: which run's output downstream stages read, switched in one statement at commit.
        `CREATE TABLE IF NOT EXISTS ${SCHEMA}.outputs (
    job TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    run_id BIGINT NOT NULL,
    verdict TEXT NOT NULL,
    output JSONB,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job, partition_key)
  )`,
        `CREATE TABLE IF NOT EXISTS ${SCHEMA}.alerts (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT,
    job TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
  )`,
      ],
    },
  ],
};

export async function migratePipeline(db: Queryable): Promise<void> {
  await migrate(db, pipelineMigrations);
}

const RUN_COLUMNS = `id, job, partition_key, to_char(day, 'YYYY-MM-DD') AS day, seq, state, verdict, trigger,
  waiting_on, inputs, report, output, error, created_at, started_at, finished_at, deadline_at, alerted_at`;

interface RawRun {
  id: string;
  job: string;
  partition_key: string;
  day: string;
  seq: number;
  state: RunState;
  verdict: Verdict | null;
  trigger: string;
  waiting_on: string | null;
  inputs: unknown;
  report: RunReport | null;
  output: unknown;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  deadline_at: Date;
  alerted_at: Date | null;
}

function toRun(r: RawRun): RunRow {
  return {
    id: Number(r.id),
    job: r.job,
    partitionKey: r.partition_key,
    day: r.day,
    seq: r.seq,
    state: r.state,
    verdict: r.verdict,
    trigger: r.trigger,
    waitingOn: r.waiting_on,
    inputs: r.inputs,
    report: r.report,
    output: r.output,
    error: r.error,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    deadlineAt: r.deadline_at,
    alertedAt: r.alerted_at,
  };
}

/**
 * Create a run for (job, partition). mode `once`: only if the partition has never had a run
 * (schedule, catch-up, backfill: each day runs once). mode `again`: unless one is already
 * waiting/running (rerun). Returns the new run id, or undefined when nothing was created.
 * Serialized per partition by an advisory lock so concurrent callers agree on seq.
 */
export async function createRun(
  db: Queryable,
  r: { job: string; partitionKey: string; day: string; trigger: string; deadlineMs: number; now: number },
  mode: 'once' | 'again',
): Promise<number | undefined> {
  await db.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${r.job}|${r.partitionKey}`]);
  const blocker = mode === 'once' ? '' : ` AND state IN ('waiting', 'running')`;
  const res = await db.query<{ id: string }>(
    `INSERT INTO ${SCHEMA}.runs (job, partition_key, day, seq, state, trigger, created_at, deadline_at)
     SELECT $1, $2, $3::date,
       COALESCE((SELECT max(seq) FROM ${SCHEMA}.runs WHERE job = $1 AND partition_key = $2), 0) + 1,
       'waiting', $4, to_timestamp($5 / 1000.0), to_timestamp(($5 + $6) / 1000.0)
     WHERE NOT EXISTS (SELECT 1 FROM ${SCHEMA}.runs WHERE job = $1 AND partition_key = $2${blocker})
     RETURNING id`,
    [r.job, r.partitionKey, r.day, r.trigger, r.now, r.deadlineMs],
  );
  const id = res.rows[0]?.id;
  return id === undefined ? undefined : Number(id);
}

export async function getRun(db: Queryable, id: number): Promise<RunRow | undefined> {
  const r = await db.query<RawRun>(`SELECT ${RUN_COLUMNS} FROM ${SCHEMA}.runs WHERE id = $1`, [id]);
  return r.rows[0] ? toRun(r.rows[0]) : undefined;
}

export async function runsInState(db: Queryable, states: readonly RunState[]): Promise<RunRow[]> {
  const r = await db.query<RawRun>(
    `SELECT ${RUN_COLUMNS} FROM ${SCHEMA}.runs WHERE state = ANY($1) ORDER BY day, id`,
    [states],
  );
  return r.rows.map(toRun);
}

/** The latest run (highest seq) of each given partition of a job. */
export async function latestRuns(db: Queryable, job: string, partitionKeys: string[]): Promise<RunRow[]> {
  const r = await db.query<RawRun>(
    `SELECT DISTINCT ON (partition_key) ${RUN_COLUMNS} FROM ${SCHEMA}.runs
     WHERE job = $1 AND partition_key = ANY($2) ORDER BY partition_key, seq DESC`,
    [job, partitionKeys],
  );
  return r.rows.map(toRun);
}

export async function runsBetween(db: Queryable, fromDay: string, toDay: string): Promise<RunRow[]> {
  const r = await db.query<RawRun>(
    `SELECT ${RUN_COLUMNS} FROM ${SCHEMA}.runs WHERE day BETWEEN $1::date AND $2::date ORDER BY day, job, partition_key, seq`,
    [fromDay, toDay],
  );
  return r.rows.map(toRun);
}

/** The oldest day any run is recorded for, or undefined when the pipeline has never run. */
export async function firstRunDay(db: Queryable): Promise<string | undefined> {
  const r = await db.query<{ d: string | null }>(
    `SELECT to_char(min(day), 'YYYY-MM-DD') AS d FROM ${SCHEMA}.runs`,
  );
  return r.rows[0]?.d ?? undefined;
}

/** Move a run from one of `from` to `to`, setting fields; false when another actor moved it first. */
export async function transitionRun(
  db: Queryable,
  id: number,
  from: readonly RunState[],
  to: RunState,
  set: {
    verdict?: Verdict;
    report?: RunReport;
    output?: unknown;
    inputs?: unknown;
    error?: string;
    started?: boolean;
    finished?: boolean;
  } = {},
): Promise<boolean> {
  const r = await db.query(
    `UPDATE ${SCHEMA}.runs SET state = $3,
       verdict = COALESCE($4, verdict), report = COALESCE($5::jsonb, report), output = COALESCE($6::jsonb, output),
       error = COALESCE($7, error), waiting_on = NULL, inputs = COALESCE($10::jsonb, inputs),
       started_at = CASE WHEN $8 THEN now() ELSE started_at END,
       finished_at = CASE WHEN $9 THEN now() ELSE finished_at END
     WHERE id = $1 AND state = ANY($2)`,
    [
      id,
      from,
      to,
      set.verdict ?? null,
      set.report ? JSON.stringify(set.report) : null,
      set.output === undefined ? null : JSON.stringify(set.output),
      set.error ?? null,
      set.started ?? false,
      set.finished ?? false,
      set.inputs === undefined ? null : JSON.stringify(set.inputs),
    ],
  );
  return (r.rowCount ?? 0) > 0;
}

export async function setWaitingOn(db: Queryable, id: number, waitingOn: string): Promise<void> {
  await db.query(`UPDATE ${SCHEMA}.runs SET waiting_on = $2 WHERE id = $1`, [id, waitingOn]);
}

/** Mark the deadline alert raised; true only for the caller that raised it first. */
export async function markAlerted(db: Queryable, id: number): Promise<boolean> {
  const r = await db.query(
    `UPDATE ${SCHEMA}.runs SET alerted_at = now() WHERE id = $1 AND alerted_at IS NULL`,
    [id],
  );
  return (r.rowCount ?? 0) > 0;
}

export async function insertAlert(
  db: Queryable,
  a: { runId: number; job: string; partitionKey: string; kind: string; message: string },
): Promise<void> {
  await db.query(
    `INSERT INTO ${SCHEMA}.alerts (run_id, job, partition_key, kind, message) VALUES ($1, $2, $3, $4, $5)`,
    [a.runId, a.job, a.partitionKey, a.kind, a.message],
  );
}

export async function alertsForRun(
  db: Queryable,
  runId: number,
): Promise<{ kind: string; message: string }[]> {
  const r = await db.query<{ kind: string; message: string }>(
    `SELECT kind, message FROM ${SCHEMA}.alerts WHERE run_id = $1 ORDER BY id`,
    [runId],
  );
  return r.rows;
}

/** Switch the pointer of (job, partition) to a run: the commit. */
export async function switchPointer(
  db: Queryable,
  p: { job: string; partitionKey: string; runId: number; verdict: Verdict; output: unknown },
): Promise<void> {
  await db.query(
    `INSERT INTO ${SCHEMA}.outputs (job, partition_key, run_id, verdict, output) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (job, partition_key) DO UPDATE SET run_id = EXCLUDED.run_id, verdict = EXCLUDED.verdict,
       output = EXCLUDED.output, committed_at = now()`,
    [p.job, p.partitionKey, p.runId, p.verdict, JSON.stringify(p.output ?? null)],
  );
}

export async function readPointer(
  db: Queryable,
  job: string,
  partitionKey: string,
): Promise<{ runId: number; verdict: Verdict; output: unknown } | undefined> {
  const r = await db.query<{ run_id: string; verdict: Verdict; output: unknown }>(
    `SELECT run_id, verdict, output FROM ${SCHEMA}.outputs WHERE job = $1 AND partition_key = $2`,
    [job, partitionKey],
  );
  const row = r.rows[0];
  return row ? { runId: Number(row.run_id), verdict: row.verdict, output: row.output } : undefined;
}

/** The latest partition key (e.g. day) whose run of `job` committed, if any. */
export async function latestPointerKey(db: Queryable, job: string): Promise<string | undefined> {
  const r = await db.query<{ partition_key: string }>(
    `SELECT partition_key FROM ${SCHEMA}.outputs WHERE job = $1 ORDER BY partition_key DESC LIMIT 1`,
    [job],
  );
  return r.rows[0]?.partition_key;
}

/**
 * Retention, step 1: the finished runs of days before `beforeDay` (waiting and running runs
 * are kept whatever their day). The caller removes their outputs, then `deleteRunsBefore`.
 */
export async function finishedRunsBefore(
  db: Queryable,
  beforeDay: string,
): Promise<{ id: number; job: string; partitionKey: string }[]> {
  const r = await db.query<{ id: string; job: string; partition_key: string }>(
    `SELECT id, job, partition_key FROM ${SCHEMA}.runs
     WHERE day < $1::date AND state NOT IN ('waiting', 'running') ORDER BY day, id`,
    [beforeDay],
  );
  return r.rows.map((x) => ({ id: Number(x.id), job: x.job, partitionKey: x.partition_key }));
}

/**
 * Retention, step 2: forget the given runs (still only finished runs of days before
 * `beforeDay`), with their tasks and attempts (cascade), the pointers to them and their
 * alerts, in one statement. Returns the ids deleted.
 */
export async function deleteRunsBefore(db: Queryable, beforeDay: string, ids: number[]): Promise<number[]> {
  const r = await db.query<{ id: string }>(
    `WITH gone AS (
       DELETE FROM ${SCHEMA}.runs WHERE id = ANY($1::bigint[]) AND day < $2::date
         AND state NOT IN ('waiting', 'running')
       RETURNING id
     ), pointers AS (
       DELETE FROM ${SCHEMA}.outputs o USING gone WHERE o.run_id = gone.id
     ), alerts AS (
       DELETE FROM ${SCHEMA}.alerts a USING gone WHERE a.run_id = gone.id
     )
     SELECT id FROM gone ORDER BY id`,
    [ids, beforeDay],
  );
  return r.rows.map((x) => Number(x.id));
}

/** One row of the runs grid: the latest run of a (job, partition) with what a cell shows. */
export interface GridRunRow {
  id: number;
  job: string;
  partitionKey: string;
  day: string;
  state: RunState;
  verdict: Verdict | null;
  /** The key counter: records scanned, or processed when the job scans none. */
  records: number;
  malformed: number;
  durationMs: number | null;
}

/**
 * The latest run (highest seq) of every (job, partition) of a range of days, without the
 * reports' bulk (only the counters a cell shows): the dashboard's grid reads a page of days.
 */
export async function latestGridRows(
  db: Queryable,
  fromDay: string,
  toDay: string,
  job?: string,
): Promise<GridRunRow[]> {
  const r = await db.query<{
    id: string;
    job: string;
    partition_key: string;
    day: string;
    state: RunState;
    verdict: Verdict | null;
    scanned: string | null;
    processed: string | null;
    malformed: string | null;
    duration_ms: string | null;
  }>(
    `SELECT DISTINCT ON (job, partition_key) id, job, partition_key, to_char(day, 'YYYY-MM-DD') AS day, state,
       verdict, report->'counters'->>'recordsScanned' AS scanned, report->'counters'->>'processed' AS processed,
       report->'counters'->>'malformed' AS malformed,
       (extract(epoch FROM (finished_at - started_at)) * 1000)::bigint AS duration_ms
     FROM ${SCHEMA}.runs WHERE day BETWEEN $1::date AND $2::date AND ($3::text IS NULL OR job = $3)
     ORDER BY job, partition_key, seq DESC`,
    [fromDay, toDay, job ?? null],
  );
  return r.rows.map((x) => ({
    id: Number(x.id),
    job: x.job,
    partitionKey: x.partition_key,
    day: x.day,
    state: x.state,
    verdict: x.verdict,
    records: Number(x.scanned ?? 0) || Number(x.processed ?? 0),
    malformed: Number(x.malformed ?? 0),
    durationMs: x.duration_ms === null ? null : Number(x.duration_ms),
  }));
}
