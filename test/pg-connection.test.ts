/**
 * PostgreSQL that cannot be reached, refuses the login, or goes away under a running command:
 * a named error with the server and the reason, and never a process killed by an unhandled
 * 'error' event.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { openTestTier, testPgUrl } from './helpers/pg.js';
import { MetadataTier } from '../src/metadata/metadata-tier.js';
import { connectionFailure, isRemoraError, toRemoraError } from '../src/core/errors.js';
import { describeServer } from '../src/metadata/pg-connection.js';
import { freePort } from './helpers/net.js';

let tier: MetadataTier;
let cleanup: () => Promise<void>;

before(async () => {
  ({ tier, cleanup } = await openTestTier());
});
after(async () => cleanup());

/** Terminate one backend from another connection, as a restart or an operator would. */
async function terminate(pid: number): Promise<void> {
  const admin = new pg.Client({ connectionString: testPgUrl() });
  await admin.connect();
  try {
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.end();
  }
}

/**
 * Run `fn` and fail if anything reached 'uncaughtException' meanwhile (what an 'error' event
 * with no listener becomes). Recorded here, because node:test attributes such an error to the
 * hook that opened the socket (here `before`), which has finished, and does not fail the test.
 */
async function noUncaught(fn: () => Promise<void>): Promise<void> {
  const uncaught: unknown[] = [];
  const record = (e: unknown) => uncaught.push(e);
  process.on('uncaughtException', record);
  try {
    await fn();
  } finally {
    process.off('uncaughtException', record);
  }
  assert.deepEqual(uncaught.map(String), [], 'nothing escaped as an uncaught exception');
}

/** The test tier's configuration pointing at another URL (nothing is created on a failed open). */
function withUrl(url: URL | string): MetadataTier['config'] {
  return { ...tier.config, postgres: { ...tier.config.postgres, url: String(url) } };
}

test('a connection lost under a checked-out client does not kill the process', async () => {
  // Before: node-postgres emitted 'error' on the checked-out client with no listener, and the
  // process died with a raw stack trace (what crashed `remora rerun`).
  await noUncaught(async () => {
    const client = await tier.control.connect();
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await terminate(rows[0]!.pid);
      await new Promise((r) => setTimeout(r, 300)); // the FATAL message arrives between queries
      await assert.rejects(client.query('SELECT 1'), /not queryable|terminat/);
    } finally {
      client.release(true);
    }
  });
  // The pool carries on with a new connection.
  assert.equal((await tier.control.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one, 1);
});

test('a transaction whose connection is terminated fails with ShardUnavailable naming the shard', async () => {
  const shard = tier.indexShards[0]!;
  await noUncaught(() =>
    assert.rejects(
      tier.inTransaction(shard, async (tx) => {
        const { rows } = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        await terminate(rows[0]!.pid);
        await new Promise((r) => setTimeout(r, 300));
        await tx.query('SELECT 1');
      }),
      (e) =>
        isRemoraError(e, 'ShardUnavailable') &&
        e.message.startsWith(`shard ${shard.name}: `) &&
        /not queryable|terminat/.test(e.message),
    ),
  );
  // And the shard works again afterwards.
  assert.equal(await tier.getObject('manta', '/nobody/stor/x'), undefined);
});

test('refused, unknown host, wrong password, missing database: ShardUnavailable with the server and the reason', async () => {
  const good = new URL(testPgUrl());
  const refused = new URL(good);
  refused.port = String(await freePort());
  const unknownHost = new URL(good);
  unknownHost.hostname = 'no-such-host.invalid';
  const badPassword = new URL(good);
  badPassword.password = 'definitely-wrong';
  const cases: [URL, RegExp][] = [
    [refused, new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${refused.port}/postgres .*connection refused`)],
    [unknownHost, /PostgreSQL at no-such-host\.invalid:\d+\/postgres .*unknown host/],
    [badPassword, /PostgreSQL at 127\.0\.0\.1:\d+\/postgres \(user \w+\): login refused \(wrong password\)/],
  ];
  for (const [url, re] of cases) {
    await assert.rejects(MetadataTier.open(withUrl(url), String(url)), (e) => {
      assert.ok(isRemoraError(e, 'ShardUnavailable'), `${String(url)}: ${String(e)}`);
      assert.match(e.message, re);
      assert.doesNotMatch(e.message, /definitely-wrong/, 'the password is never printed');
      return true;
    });
  }
  const noDb = new URL(good);
  noDb.pathname = '/no_such_database_here';
  await assert.rejects(
    MetadataTier.open(withUrl(noDb), String(noDb)),
    (e) => isRemoraError(e, 'ShardUnavailable') && /no_such_database_here.*does not exist/.test(e.message),
  );
});

test('connectionFailure: which errors mean "cannot use the server" and which are one statement failing', () => {
  const sqlstate = (code: string, message: string) =>
    Object.assign(new Error(message), { code, severity: 'FATAL' });
  assert.match(connectionFailure(sqlstate('57P01', 'terminating connection'))!, /shutting down/);
  assert.match(connectionFailure(sqlstate('28P01', 'password authentication failed'))!, /login refused/);
  assert.match(connectionFailure(sqlstate('08006', 'connection failure'))!, /connection failure/);
  assert.equal(connectionFailure(sqlstate('23505', 'duplicate key')), undefined);
  assert.equal(connectionFailure(sqlstate('22P02', 'invalid input syntax')), undefined);
  assert.match(connectionFailure(new Error('Connection terminated unexpectedly'))!, /terminated/);
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  assert.match(connectionFailure(refused)!, /connection refused/);
  // A bare socket error is a PostgreSQL one only where the caller knows the socket was.
  assert.equal(connectionFailure(refused, { socket: false }), undefined);
  assert.equal(toRemoraError(refused).code, 'Internal');
  assert.equal(toRemoraError(new Error('Connection terminated unexpectedly')).code, 'ShardUnavailable');
  assert.equal(toRemoraError(sqlstate('57P01', 'terminating connection')).code, 'ShardUnavailable');
  assert.equal(toRemoraError(sqlstate('23505', 'duplicate key')).code, 'Internal');
});

test('describeServer never shows the password', () => {
  assert.equal(
    describeServer('postgres://remora:s3cret@db.example.com:6432/remora_control'),
    'PostgreSQL at db.example.com:6432/remora_control (user remora)',
  );
  assert.equal(describeServer('postgresql://db/x'), 'PostgreSQL at db:5432/x');
});
