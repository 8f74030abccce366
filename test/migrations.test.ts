/**
 * Versioned migrations (src/metadata/migrations.ts): applied once each, in order, by one of
 * several processes starting at once; a database from a newer Remora refused; the real
 * lists are well-formed and re-running them applies nothing.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isRemoraError } from '../src/core/errors.js';
import { controlMigrations } from '../src/metadata/control.repository.js';
import { appliedVersions, migrate, type MigrationList } from '../src/metadata/migrations.js';
import { pipelineMigrations } from '../src/pipeline/runs.repository.js';
import { rebalanceMigrations } from '../src/jobs/rebalance/rebalance.repository.js';
import { dropDatabases, testPgUrl, uniquePrefix } from './helpers/pg.js';

const prefix = uniquePrefix();
const admin = new pg.Pool({ connectionString: testPgUrl(), max: 1 });
after(async () => {
  await admin.end();
  await dropDatabases(prefix);
});

async function freshDb(name: string): Promise<pg.Pool> {
  const db = `${prefix}_${name}`;
  await admin.query(`CREATE DATABASE ${db}`);
  const url = new URL(testPgUrl());
  url.pathname = `/${db}`;
  return new pg.Pool({ connectionString: url.toString(), max: 8 });
}

const list = (n: number): MigrationList => ({
  schema: 'demo',
  migrations: [
    { version: 1, name: 'table', up: ['CREATE TABLE t (a INTEGER)'] },
    { version: 2, name: 'column', up: ['ALTER TABLE t ADD COLUMN b TEXT'] },
    { version: 3, name: 'row', up: ["INSERT INTO t VALUES (1, 'x')"] },
  ].slice(0, n),
});

test('each version once, in order; five processes starting at once apply it once', async () => {
  const db = await freshDb('race');
  try {
    assert.deepEqual(await migrate(db, list(1)), [1]);
    const results = await Promise.all(Array.from({ length: 5 }, () => migrate(db, list(3))));
    assert.deepEqual(results.flat().sort(), [2, 3], 'versions 2 and 3 applied once between them');
    assert.deepEqual(await appliedVersions(db, 'demo'), [1, 2, 3]);
    const rows = await db.query('SELECT a, b FROM t');
    assert.deepEqual(rows.rows, [{ a: 1, b: 'x' }], 'the row migration ran exactly once');
    assert.deepEqual(await migrate(db, list(3)), []);
  } finally {
    await db.end();
  }
});

test('a failing migration leaves neither its changes nor its version row', async () => {
  const db = await freshDb('fail');
  try {
    const bad: MigrationList = {
      schema: 'demo',
      migrations: [{ version: 1, name: 'half', up: ['CREATE TABLE u (a INTEGER)', 'SELECT nonsense()'] }],
    };
    await assert.rejects(migrate(db, bad));
    assert.deepEqual(await appliedVersions(db, 'demo'), []);
    const t = await db.query<{ r: string | null }>("SELECT to_regclass('u') AS r");
    assert.equal(t.rows[0]!.r, null);
  } finally {
    await db.end();
  }
});

test('a database migrated by a newer Remora is refused; a list out of order is refused', async () => {
  const db = await freshDb('newer');
  try {
    await migrate(db, list(3));
    await assert.rejects(
      migrate(db, list(2)),
      (e) =>
        isRemoraError(e) &&
        e.code === 'StaleState' &&
        /version 3, newer than this Remora knows \(2\)/.test(e.message),
    );
    await assert.rejects(
      migrate(db, { schema: 'x', migrations: [{ version: 2, name: 'gap', up: [] }] }),
      (e) => isRemoraError(e) && e.code === 'Internal',
    );
  } finally {
    await db.end();
  }
});

test('the real lists apply to an empty database, then to one created before versioning, without change', async () => {
  const db = await freshDb('real');
  try {
    const all = (l: MigrationList) => l.migrations.map((m) => m.version);
    for (const l of [controlMigrations, pipelineMigrations, rebalanceMigrations]) {
      assert.deepEqual(await migrate(db, l), all(l), l.schema);
      assert.deepEqual(await migrate(db, l), [], `${l.schema} again`);
    }
    // A database from before versioning: the tables exist, no version rows. The baseline adopts it
    // (and later versions, written to be re-runnable, apply again without change).
    await db.query('DELETE FROM remora_migrations');
    for (const l of [controlMigrations, pipelineMigrations, rebalanceMigrations])
      assert.deepEqual(await migrate(db, l), all(l), `${l.schema} adopted`);
  } finally {
    await db.end();
  }
});
