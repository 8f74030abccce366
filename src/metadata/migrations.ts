/**
 * Versioned migrations for Remora's own tables (not moray's buckets, which the metadata tier
 * creates as moray does). Each schema has one ordered list of migrations; the versions applied
 * are recorded in `remora_migrations`, so a new job adds a migration at the end of its list
 * instead of another `CREATE … IF NOT EXISTS` that can never change a column.
 *
 *   schema      a name for one list (`control`, `pipeline`, `rebalance`, …)
 *   version     1, 2, 3, … in order; never renumbered, never edited once released
 *   baseline    version 1 of each list uses IF NOT EXISTS, so databases created before
 *               versioning adopt it without change
 *
 * Concurrency: two processes starting at once take a transaction-scoped advisory lock per
 * schema; the second sees the versions the first applied. Each migration runs in its own
 * transaction with its version row, so a crash leaves either both or neither.
 *
 * A database already at a version this code does not know (migrated by a newer Remora) is
 * refused rather than used by code that does not know its columns.
 */
import type pg from 'pg';
import { RemoraError } from '../core/errors.js';

export interface Migration {
  version: number;
  /** What it does, in a few words (kept in the table for operators). */
  name: string;
  /** Statements run in order, in one transaction. */
  up: readonly string[];
}

export interface MigrationList {
  schema: string;
  migrations: readonly Migration[];
}

const TABLE = 'remora_migrations';

/** A pool, or a client not already in a transaction. */
type Db = pg.Pool | pg.ClientBase;

async function withClient<T>(db: Db, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  if (!('totalCount' in db)) return fn(db);
  const c = await db.connect();
  try {
    return await fn(c);
  } finally {
    c.release();
  }
}

/** Apply the list's migrations not applied yet, oldest first; returns the versions applied now. */
export async function migrate(db: Db, list: MigrationList): Promise<number[]> {
  checkList(list);
  return withClient(db, async (c) => {
    await c
      .query(
        `CREATE TABLE IF NOT EXISTS ${TABLE} (
      schema_name TEXT NOT NULL,
      version INTEGER NOT NULL,
      name TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      PRIMARY KEY (schema_name, version)
    )`,
      )
      .catch(async (err: unknown) => {
        // Two first-ever starts may race on the CREATE; the loser finds the table there.
        if (!(await tableExists(c))) throw err;
      });
    const applied: number[] = [];
    for (;;) {
      await c.query('BEGIN');
      try {
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${TABLE}:${list.schema}`]);
        const r = await c.query<{ v: number | null }>(
          `SELECT max(version) AS v FROM ${TABLE} WHERE schema_name = $1`,
          [list.schema],
        );
        const current = r.rows[0]?.v ?? 0;
        const known = list.migrations.at(-1)?.version ?? 0;
        if (current > known)
          throw new RemoraError(
            'StaleState',
            `the ${list.schema} tables are at version ${current}, newer than this Remora knows (${known}): ` +
              'run the newer version, or restore a matching database',
          );
        const next = list.migrations.find((m) => m.version === current + 1);
        if (!next) {
          await c.query('COMMIT');
          return applied;
        }
        for (const sql of next.up) await c.query(sql);
        await c.query(`INSERT INTO ${TABLE} (schema_name, version, name) VALUES ($1, $2, $3)`, [
          list.schema,
          next.version,
          next.name,
        ]);
        await c.query('COMMIT');
        applied.push(next.version);
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    }
  });
}

async function tableExists(c: pg.ClientBase): Promise<boolean> {
  const r = await c.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [TABLE]);
  return r.rows[0]?.t != null;
}

/** Versions 1, 2, 3, … with no gap or repeat: a list out of order is a programming error. */
function checkList(list: MigrationList): void {
  list.migrations.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new RemoraError(
        'Internal',
        `migrations of ${list.schema}: entry ${i} has version ${m.version}, expected ${i + 1}`,
      );
  });
}

/** The versions applied to a schema, oldest first (for `status` output and tests). */
export async function appliedVersions(db: Db, schema: string): Promise<number[]> {
  return withClient(db, async (c) => {
    if (!(await tableExists(c))) return [];
    const r = await c.query<{ version: number }>(
      `SELECT version FROM ${TABLE} WHERE schema_name = $1 ORDER BY version`,
      [schema],
    );
    return r.rows.map((x) => x.version);
  });
}
