/**
 * Progress of rebalance jobs in Remora's control database: one function per statement.
 *
 *   rebalance_jobs      one row per plan: its parameters, the snapshot instants it read, the
 *                       destination table printed before anything moved
 *   rebalance_objects   one row per objectId (the Rust rebalancer's `evacuateobjects`): state,
 *                       reason, the planned keys with their `_etag`s, old and new shark, claim
 *                       lease, and the datacenters its records had before (`verify` checks them)
 *
 * Job states (`rebalance_jobs.state`):
 *   draft     a plan stored by `plan --dry-run` (or by `plan` before its commit): not runnable, not
 *             active, not the default job, not read by `verify`; `plan --commit <id>` stores it
 *             unchanged, so the plan an operator checked is the plan that runs
 *   planned   committed: runnable (`run`, `retry`), active until every object is complete
 *
 * One active job per evacuated node: `commitDraft` checks and commits under an advisory lock, so
 * two `plan`s started at once cannot both pass the check.
 */
import type pg from 'pg';
import { migrate, type MigrationList } from '../../metadata/migrations.js';
import type { Queryable } from '../../metadata/moray.repository.js';
import type { Shark } from '../../metadata/types.js';
import type { ObjectState, PlannedKey } from './rebalance.types.js';

/** Rebalance progress tables (src/metadata/migrations.ts): add a version at the end, never edit a released one. */
export const rebalanceMigrations: MigrationList = {
  schema: 'rebalance',
  migrations: [
    {
      version: 1,
      name: 'baseline',
      up: [
        `CREATE TABLE IF NOT EXISTS rebalance_jobs (
    id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    params JSONB NOT NULL,
    summary JSONB NOT NULL
  )`,
        `CREATE TABLE IF NOT EXISTS rebalance_objects (
    job_id TEXT NOT NULL REFERENCES rebalance_jobs (id) ON DELETE CASCADE,
    object_id TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    bytes BIGINT NOT NULL,
    md5 TEXT NOT NULL,
    copy_owner TEXT NOT NULL,
    cause TEXT,
    old_shark JSONB,
    new_shark JSONB,
    dest TEXT,
    keys JSONB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    skipped_keys INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    claimed_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, object_id)
  )`,
        'CREATE INDEX IF NOT EXISTS rebalance_objects_state_idx ON rebalance_objects (job_id, state, dest)',
      ],
    },
    {
      version: 2,
      name: 'dcs_before: datacenters of the records before the move (per-record rule, verify)',
      up: ['ALTER TABLE rebalance_objects ADD COLUMN IF NOT EXISTS dcs_before INTEGER'],
    },
    {
      version: 3,
      name: 'job state: a dry run is a stored draft that `plan --commit` stores unchanged',
      up: ["ALTER TABLE rebalance_jobs ADD COLUMN IF NOT EXISTS state TEXT NOT NULL DEFAULT 'planned'"],
    },
    {
      version: 4,
      name:
        'claim index: claimable objects of a state in object order (a claim costs the same late in a big job); ' +
        'it replaces the (job_id, state, dest) index, so a state change still updates two indexes',
      up: [
        'CREATE INDEX IF NOT EXISTS rebalance_objects_claim_idx ON rebalance_objects (job_id, state, object_id)',
        'DROP INDEX IF EXISTS rebalance_objects_state_idx',
      ],
    },
  ],
};

export async function migrateRebalance(db: Queryable): Promise<void> {
  await migrate(db, rebalanceMigrations);
}

export type JobState = 'draft' | 'planned';

export interface JobRow {
  id: string;
  state: JobState;
  createdAt: Date;
  params: Record<string, unknown>;
  summary: Record<string, unknown>;
}

export async function insertJob(
  db: Queryable,
  id: string,
  params: Record<string, unknown>,
  summary: Record<string, unknown>,
  state: JobState = 'planned',
): Promise<void> {
  await db.query('INSERT INTO rebalance_jobs (id, params, summary, state) VALUES ($1, $2, $3, $4)', [
    id,
    JSON.stringify(params),
    JSON.stringify(summary),
    state,
  ]);
}

/** Jobs naming `node` as evacuated that are still active: planning, or any object not complete. */
export async function activeJobsFor(db: Queryable, node: string): Promise<{ id: string; open: number }[]> {
  const r = await db.query<{ id: string; open: string }>(
    `SELECT j.id, (SELECT count(*) FROM rebalance_objects o WHERE o.job_id = j.id AND o.state <> 'complete') AS open
       FROM rebalance_jobs j
      WHERE j.params->>'evacuate' = $1 AND j.state <> 'draft'
        AND (NOT (j.summary ? 'objects')
             OR EXISTS (SELECT 1 FROM rebalance_objects o WHERE o.job_id = j.id AND o.state <> 'complete'))
      ORDER BY j.created_at, j.id`,
    [node],
  );
  return r.rows.map((x) => ({ id: x.id, open: Number(x.open) }));
}

/**
 * Commit a draft (state draft → planned), refusing (unless `force`) when another active job
 * evacuates the same node. The check and the commit run in one transaction under an advisory lock:
 * two plans at once cannot both pass. Returns the active jobs found (empty when none) and whether
 * the draft was committed (false: refused, or it was not a draft any more).
 */
export async function commitDraft(
  pool: pg.Pool,
  id: string,
  evacuate: string | undefined,
  force: boolean,
  summary: Record<string, unknown>,
): Promise<{ active: { id: string; open: number }[]; committed: boolean }> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("SELECT pg_advisory_xact_lock(hashtext('remora.rebalance.plan'))");
    const active = evacuate ? (await activeJobsFor(client, evacuate)).filter((a) => a.id !== id) : [];
    let committed = false;
    if (active.length === 0 || force) {
      const r = await client.query(
        "UPDATE rebalance_jobs SET state = 'planned', summary = $2 WHERE id = $1 AND state = 'draft'",
        [id, JSON.stringify(summary)],
      );
      committed = (r.rowCount ?? 0) === 1;
    }
    await client.query('COMMIT');
    return { active, committed };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

/** Drop a job and its objects (a plan that failed half-way). */
export async function deleteJob(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM rebalance_jobs WHERE id = $1', [id]);
}

/** Drop drafts older than `maxAgeMs` (a dry run of a large node stores one row per object). */
export async function purgeDrafts(db: Queryable, maxAgeMs: number): Promise<number> {
  const r = await db.query(
    `DELETE FROM rebalance_jobs WHERE state = 'draft'
        AND created_at < now() - make_interval(secs => $1::float8 / 1000)`,
    [maxAgeMs],
  );
  return r.rowCount ?? 0;
}

export async function updateJobSummary(
  db: Queryable,
  id: string,
  summary: Record<string, unknown>,
): Promise<void> {
  await db.query('UPDATE rebalance_jobs SET summary = $2 WHERE id = $1', [id, JSON.stringify(summary)]);
}

interface RawJobRow {
  id: string;
  state: JobState;
  created_at: Date;
  params: JobRow['params'];
  summary: JobRow['summary'];
}

function toJobRow(row: RawJobRow): JobRow {
  return {
    id: row.id,
    state: row.state,
    createdAt: row.created_at,
    params: row.params,
    summary: row.summary,
  };
}

/** One job (a draft too), or the newest committed one when `id` is undefined. */
export async function readJob(db: Queryable, id?: string): Promise<JobRow | undefined> {
  const r = await db.query<RawJobRow>(
    id === undefined
      ? "SELECT * FROM rebalance_jobs WHERE state <> 'draft' ORDER BY created_at DESC, id DESC LIMIT 1"
      : 'SELECT * FROM rebalance_jobs WHERE id = $1',
    id === undefined ? [] : [id],
  );
  const row = r.rows[0];
  return row && toJobRow(row);
}

export interface ObjectRow {
  objectId: string;
  state: ObjectState;
  reason: string | null;
  detail: string | null;
  bytes: number;
  md5: string;
  copyOwner: string;
  cause: string | null;
  oldShark: Shark | null;
  newShark: Shark | null;
  keys: PlannedKey[];
  attempts: number;
  /** Datacenters of the records before the move (NULL: planned before this was recorded). */
  dcsBefore: number | null;
}

export type NewObjectRow = Omit<ObjectRow, 'attempts' | 'dcsBefore'> & { dcsBefore?: number | null };

/** Insert planned objects (one statement per batch: arrays unnested server-side). */
export async function insertObjects(db: Queryable, jobId: string, rows: NewObjectRow[]): Promise<void> {
  if (rows.length === 0) return;
  const col = <T>(f: (r: NewObjectRow) => T) => rows.map(f);
  await db.query(
    `INSERT INTO rebalance_objects
       (job_id, object_id, state, reason, detail, bytes, md5, copy_owner, cause, old_shark, new_shark, dest, keys,
        dcs_before)
     SELECT $1, o, s, r, d, b, m, c, ca, os::jsonb, ns::jsonb, ns::jsonb->>'manta_storage_id', k::jsonb, dc
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[],
                 $9::text[], $10::text[], $11::text[], $12::text[], $13::int[])
          AS t(o, s, r, d, b, m, c, ca, os, ns, k, dc)
     ON CONFLICT (job_id, object_id) DO NOTHING`,
    [
      jobId,
      col((r) => r.objectId),
      col((r) => r.state),
      col((r) => r.reason),
      col((r) => r.detail),
      col((r) => r.bytes),
      col((r) => r.md5),
      col((r) => r.copyOwner),
      col((r) => r.cause),
      col((r) => (r.oldShark ? JSON.stringify(r.oldShark) : null)),
      col((r) => (r.newShark ? JSON.stringify(r.newShark) : null)),
      col((r) => JSON.stringify(r.keys)),
      col((r) => r.dcsBefore ?? null),
    ],
  );
}

interface RawObjectRow {
  object_id: string;
  state: ObjectState;
  reason: string | null;
  detail: string | null;
  bytes: string;
  md5: string;
  copy_owner: string;
  cause: string | null;
  old_shark: Shark | null;
  new_shark: Shark | null;
  keys: PlannedKey[];
  attempts: number;
  dcs_before: number | null;
}

function toObjectRow(r: RawObjectRow): ObjectRow {
  return {
    objectId: r.object_id,
    state: r.state,
    reason: r.reason,
    detail: r.detail,
    bytes: Number(r.bytes),
    md5: r.md5,
    copyOwner: r.copy_owner,
    cause: r.cause,
    oldShark: r.old_shark,
    newShark: r.new_shark,
    keys: r.keys,
    attempts: r.attempts,
    dcsBefore: r.dcs_before,
  };
}

export interface ClaimQuery {
  jobId: string;
  runner: string;
  /** Only objects going to this destination (`run --node`). */
  dest?: string;
  limit: number;
  /**
   * Bytes of a claim: objects past the first `minObjects` are taken only while the claim's bytes
   * (in object order) stay within this (none: `limit` alone), so a claim of big objects is done,
   * and its outcomes recorded, as soon as one of small objects.
   */
  maxBytes?: number;
  /** Objects a claim takes whatever their bytes (default 1), e.g. one per copy slot. */
  minObjects?: number;
  /** An `assigned` claim older than this belongs to a dead runner and is claimable again. */
  leaseMs: number;
  /** `post_processing` objects last tried before this instant are claimable (one tombstone retry per run). */
  runStartedAt: Date;
}

/**
 * Claim up to `limit` objects (and `maxBytes`, past `minObjects`) for `runner`: unprocessed
 * objects, objects whose claim expired (a crashed runner's), and objects owed their tombstone
 * MOVE (`post_processing`) last tried before this run started (so a run retries each once).
 * SKIP LOCKED lets several runners (one per destination, or several for one) share a job.
 */
export async function claimObjects(db: Queryable, q: ClaimQuery): Promise<ObjectRow[]> {
  // One ordered index range per claimable state (rebalance_objects_claim_idx), each at most
  // `limit` rows: a claim costs the same at the start and at the end of a job of a million
  // objects. (One scan with the three states OR-ed walked the primary key past every object
  // already done: 950 ms per claim half-way through 500,000 objects.) Rows locked by a range but
  // not picked are released when the claim's transaction ends.
  const r = await db.query<RawObjectRow>(
    `WITH unprocessed AS (
       SELECT job_id, object_id, bytes FROM rebalance_objects
        WHERE job_id = $1 AND state = 'unprocessed' AND ($3::text IS NULL OR dest = $3)
        ORDER BY object_id LIMIT $6 FOR UPDATE SKIP LOCKED),
     expired AS (
       SELECT job_id, object_id, bytes FROM rebalance_objects
        WHERE job_id = $1 AND state = 'assigned' AND ($3::text IS NULL OR dest = $3)
          AND claimed_at < now() - make_interval(secs => $4::float8 / 1000)
        ORDER BY object_id LIMIT $6 FOR UPDATE SKIP LOCKED),
     owed AS (
       SELECT job_id, object_id, bytes FROM rebalance_objects
        WHERE job_id = $1 AND state = 'post_processing' AND ($3::text IS NULL OR dest = $3)
          AND claimed_at < $5
        ORDER BY object_id LIMIT $6 FOR UPDATE SKIP LOCKED),
     first AS (
       SELECT * FROM (
         SELECT * FROM unprocessed UNION ALL SELECT * FROM expired UNION ALL SELECT * FROM owed) c
        ORDER BY object_id LIMIT $6),
     picked AS (
       SELECT job_id, object_id FROM (
         SELECT job_id, object_id, row_number() OVER w AS n, sum(bytes) OVER w AS running
           FROM first WINDOW w AS (ORDER BY object_id)) x
        WHERE $7::bigint IS NULL OR n <= $8 OR running <= $7)
     UPDATE rebalance_objects o
        SET state = 'assigned', claimed_by = $2, claimed_at = now(), updated_at = now(),
            attempts = o.attempts + 1
       FROM picked
      WHERE o.job_id = picked.job_id AND o.object_id = picked.object_id
      RETURNING o.*`,
    [
      q.jobId,
      q.runner,
      q.dest ?? null,
      q.leaseMs,
      q.runStartedAt,
      q.limit,
      q.maxBytes ?? null,
      Math.max(1, q.minObjects ?? 1),
    ],
  );
  return r.rows
    .map(toObjectRow)
    .sort((a, b) => (a.objectId < b.objectId ? -1 : a.objectId > b.objectId ? 1 : 0));
}

/** Objects another runner holds (unexpired claims): a run waits for them rather than ending early. */
export async function countHeldElsewhere(
  db: Queryable,
  jobId: string,
  runner: string,
  dest?: string,
): Promise<number> {
  const r = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM rebalance_objects
      WHERE job_id = $1 AND state = 'assigned' AND claimed_by <> $2 AND ($3::text IS NULL OR dest = $3)`,
    [jobId, runner, dest ?? null],
  );
  return Number(r.rows[0]!.n);
}

/** Keep this runner's claims alive while it works on them. */
export async function renewClaims(db: Queryable, jobId: string, runner: string): Promise<void> {
  await db.query(
    `UPDATE rebalance_objects SET claimed_at = now() WHERE job_id = $1 AND claimed_by = $2 AND state = 'assigned'`,
    [jobId, runner],
  );
}

export interface Outcome {
  objectId: string;
  state: Exclude<ObjectState, 'unprocessed' | 'assigned'>;
  reason?: string;
  detail?: string;
  skippedKeys: number;
}

/** Record the outcome of claimed objects; a claim taken over by another runner is left to it. */
export async function recordOutcomes(
  db: Queryable,
  jobId: string,
  runner: string,
  outs: Outcome[],
): Promise<void> {
  if (outs.length === 0) return;
  await db.query(
    `UPDATE rebalance_objects o
        SET state = v.s, reason = v.r, detail = v.d, skipped_keys = o.skipped_keys + v.k,
            claimed_at = now(), updated_at = now()
       FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::int[]) AS v(id, s, r, d, k)
      WHERE o.job_id = $1 AND o.object_id = v.id AND o.claimed_by = $2 AND o.state = 'assigned'`,
    [
      jobId,
      runner,
      outs.map((o) => o.objectId),
      outs.map((o) => o.state),
      outs.map((o) => o.reason ?? null),
      outs.map((o) => (o.detail ?? '').slice(0, 500) || null),
      outs.map((o) => o.skippedKeys),
    ],
  );
}

/** Objects to re-run (`retry`): skipped and errored ones, optionally of one reason. */
export async function retryCandidates(db: Queryable, jobId: string, reason?: string): Promise<ObjectRow[]> {
  const r = await db.query<RawObjectRow>(
    `SELECT * FROM rebalance_objects WHERE job_id = $1 AND state IN ('skipped', 'error')
       AND ($2::text IS NULL OR reason = $2) ORDER BY object_id`,
    [jobId, reason ?? null],
  );
  return r.rows.map(toObjectRow);
}

/** Re-plan one object for `retry`: new keys, destination and state. */
export async function replanObject(db: Queryable, jobId: string, row: NewObjectRow): Promise<void> {
  await db.query(
    `UPDATE rebalance_objects
        SET state = $3, reason = $4, detail = $5, keys = $6, old_shark = $7, new_shark = $8,
            dest = $8::jsonb->>'manta_storage_id', claimed_by = NULL, claimed_at = NULL, updated_at = now(),
            dcs_before = COALESCE(dcs_before, $9)
      WHERE job_id = $1 AND object_id = $2 AND state IN ('skipped', 'error')`,
    [
      jobId,
      row.objectId,
      row.state,
      row.reason,
      row.detail,
      JSON.stringify(row.keys),
      row.oldShark ? JSON.stringify(row.oldShark) : null,
      row.newShark ? JSON.stringify(row.newShark) : null,
      row.dcsBefore ?? null,
    ],
  );
}

export interface StateCount {
  state: ObjectState;
  reason: string | null;
  objects: number;
  bytes: number;
  skippedKeys: number;
}

export async function countByState(db: Queryable, jobId: string): Promise<StateCount[]> {
  const r = await db.query<{
    state: ObjectState;
    reason: string | null;
    n: string;
    b: string | null;
    k: string | null;
  }>(
    `SELECT state, reason, count(*) AS n, sum(bytes) AS b, sum(skipped_keys) AS k
       FROM rebalance_objects WHERE job_id = $1 GROUP BY state, reason ORDER BY state, reason`,
    [jobId],
  );
  return r.rows.map((x) => ({
    state: x.state,
    reason: x.reason,
    objects: Number(x.n),
    bytes: Number(x.b ?? 0),
    skippedKeys: Number(x.k ?? 0),
  }));
}

/** Completions in the last `windowMs` (objects, bytes) and the first one's instant: the rate and ETA. */
export async function recentCompletions(
  db: Queryable,
  jobId: string,
  windowMs: number,
): Promise<{ objects: number; bytes: number; first: Date | null }> {
  const r = await db.query<{ n: string; b: string | null; first: Date | null }>(
    `SELECT count(*) AS n, sum(bytes) AS b, min(updated_at) AS first FROM rebalance_objects
      WHERE job_id = $1 AND state IN ('complete', 'post_processing')
        AND updated_at > now() - make_interval(secs => $2::float8 / 1000)`,
    [jobId, windowMs],
  );
  const row = r.rows[0]!;
  return { objects: Number(row.n), bytes: Number(row.b ?? 0), first: row.first };
}

export interface PlannedOffNode {
  jobId: string;
  objectId: string;
  state: ObjectState;
  bytes: number;
  md5: string;
  copyOwner: string;
  newShark: Shark | null;
  dcsBefore: number | null;
}

/** Objects the jobs that evacuated `node` planned (any state; for verify), in pages. */
export async function objectsOffNode(
  db: Queryable,
  node: string,
  after: string,
  limit: number,
): Promise<PlannedOffNode[]> {
  const r = await db.query<{
    job_id: string;
    object_id: string;
    state: ObjectState;
    bytes: string;
    md5: string;
    copy_owner: string;
    new_shark: Shark | null;
    dcs_before: number | null;
  }>(
    `SELECT DISTINCT ON (object_id) job_id, object_id, state, bytes, md5, copy_owner, new_shark, dcs_before
       FROM rebalance_objects o
      WHERE object_id > $2
        AND job_id NOT IN (SELECT id FROM rebalance_jobs WHERE state = 'draft')
        AND (old_shark->>'manta_storage_id' = $1
             OR job_id IN (SELECT id FROM rebalance_jobs WHERE params->>'evacuate' = $1))
      ORDER BY object_id, updated_at DESC
      LIMIT $3`,
    [node, after, limit],
  );
  return r.rows.map((x) => ({
    jobId: x.job_id,
    objectId: x.object_id,
    state: x.state,
    bytes: Number(x.bytes),
    md5: x.md5,
    copyOwner: x.copy_owner,
    newShark: x.new_shark,
    dcsBefore: x.dcs_before,
  }));
}

/** The destinations a job names. */
export async function jobNodes(db: Queryable, jobId: string): Promise<string[]> {
  const r = await db.query<{ dest: string }>(
    'SELECT DISTINCT dest FROM rebalance_objects WHERE job_id = $1 AND dest IS NOT NULL ORDER BY dest',
    [jobId],
  );
  return r.rows.map((x) => x.dest);
}

/** Whether any job evacuated `node` (verify knows a node a job names, even once it is gone). */
export async function nodeWasEvacuated(db: Queryable, node: string): Promise<boolean> {
  const r = await db.query(
    "SELECT 1 FROM rebalance_jobs WHERE params->>'evacuate' = $1 AND state <> 'draft' LIMIT 1",
    [node],
  );
  return (r.rowCount ?? 0) > 0;
}

/** The planned moves of a job in pages by objectId (the instruction files are written from these). */
export async function plannedMoves(
  db: Queryable,
  jobId: string,
  after: string,
  limit: number,
): Promise<ObjectRow[]> {
  const r = await db.query<RawObjectRow>(
    `SELECT * FROM rebalance_objects
      WHERE job_id = $1 AND new_shark IS NOT NULL AND object_id > $2
      ORDER BY object_id LIMIT $3`,
    [jobId, after, limit],
  );
  return r.rows.map(toObjectRow);
}

export interface ObjectListing extends ObjectRow {
  skippedKeys: number;
  updatedAt: Date;
}

/** One page of a job's objects by objectId, optionally of one state and/or reason (`status --objects`). */
export async function listObjects(
  db: Queryable,
  jobId: string,
  q: { state?: string; reason?: string; after: string; limit: number },
): Promise<ObjectListing[]> {
  const r = await db.query<RawObjectRow & { skipped_keys: number; updated_at: Date }>(
    `SELECT * FROM rebalance_objects
      WHERE job_id = $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR reason = $3)
        AND object_id > $4
      ORDER BY object_id LIMIT $5`,
    [jobId, q.state ?? null, q.reason ?? null, q.after, q.limit],
  );
  return r.rows.map((x) => ({ ...toObjectRow(x), skippedKeys: x.skipped_keys, updatedAt: x.updated_at }));
}

export interface JobListing extends JobRow {
  /** Objects per object state. */
  byState: Record<string, number>;
}

/** Every job and draft, newest first, with its objects counted by state (`rebalance jobs`). */
export async function listJobs(db: Queryable): Promise<JobListing[]> {
  const r = await db.query<RawJobRow & { by_state: Record<string, string> | null }>(
    `SELECT j.*, (SELECT jsonb_object_agg(state, n) FROM
                    (SELECT state, count(*) AS n FROM rebalance_objects o WHERE o.job_id = j.id GROUP BY state) c
                 ) AS by_state
       FROM rebalance_jobs j ORDER BY j.created_at DESC, j.id DESC`,
  );
  return r.rows.map((x) => ({
    ...toJobRow(x),
    byState: Object.fromEntries(Object.entries(x.by_state ?? {}).map(([k, v]) => [k, Number(v)])),
  }));
}
