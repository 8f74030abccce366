/**
 * Every bad input the CLI can be given, run as a real process: the named error on stderr, the
 * exit code from the error catalog, no stack trace, and nothing created (no databases, no runs,
 * no directories).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { dropDatabases, testPgUrl, uniquePrefix } from './helpers/pg.js';
import { freePort } from './helpers/net.js';
import { addDays, dayOf } from '../src/core/days.js';
import { ERROR_CATALOG } from '../src/core/errors.js';
import { startEmbeddedPostgres } from '../src/metadata/postgres-server.js';
import {
  parseDay,
  parseDayRange,
  parseNonNegativeInt,
  parsePastDay,
  parsePort,
  parsePositiveInt,
  parsePositiveNumber,
} from '../src/cli/cli-support.js';
import { isRemoraError } from '../src/core/errors.js';

const CLI = ['--import', 'tsx', 'src/main/cli.ts'];

/** The environment a child gets: the test run's PostgreSQL unless `env` says otherwise. */
function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env, REMORA_PG_URL: testPgUrl() };
  delete out.REMORA_CONFIG;
  delete out.REMORA_STATE_DIR;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

function cli(stateDir: string, args: string[], env: Record<string, string | undefined> = {}) {
  return spawnSync(process.execPath, [...CLI, '--state-dir', stateDir, ...args], {
    encoding: 'utf8',
    env: childEnv(env),
    timeout: 120_000,
  });
}

/** As `cli`, without blocking, so a few can run side by side. */
function cliAsync(
  stateDir: string,
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<ReturnType<typeof cli>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, '--state-dir', stateDir, ...args], {
      env: childEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (status, signal) =>
      resolve({ status, signal, stdout, stderr, pid: child.pid ?? 0, output: [null, stdout, stderr] }),
    );
  });
}

/** `remora: <Code>: …` on stderr, the catalog's exit code, and no stack trace. */
function assertRefused(
  r: ReturnType<typeof cli>,
  code: keyof typeof ERROR_CATALOG,
  message: RegExp,
  what: string,
): void {
  assert.equal(r.status, ERROR_CATALOG[code].exit, `${what}: exit code\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^remora: ${code}: `, 'm'), what);
  assert.match(r.stderr, message, what);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: no stack trace`);
}

async function databasesWithPrefix(prefix: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: testPgUrl() });
  await c.connect();
  try {
    const r = await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [
      `${prefix}\\_%`,
    ]);
    return r.rows.map((x) => x.datname);
  } finally {
    await c.end();
  }
}

/** A state directory whose config.json points at fresh databases of the test server. */
function stateDirWithPrefix(): { stateDir: string; prefix: string } {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-cli-input-'));
  const prefix = uniquePrefix();
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: prefix } }),
  );
  return { stateDir, prefix };
}

test('the flag parsers: what they accept, and a UsageError naming the flag for the rest', () => {
  const refuses = (f: () => unknown, flag: string) =>
    assert.throws(f, (e) => isRemoraError(e, 'UsageError') && e.message.startsWith(`${flag}: `));
  assert.equal(parsePositiveInt('12', '--n'), 12);
  for (const v of ['0', '-5', 'abc', '1e3', '0x10', '2.5', ' 5', '', '99999999999999999999'])
    refuses(() => parsePositiveInt(v, '--n'), '--n');
  refuses(() => parsePositiveInt('8', '--days', 7), '--days');
  assert.equal(parseNonNegativeInt('0', '--seed'), 0);
  refuses(() => parseNonNegativeInt('-1', '--seed'), '--seed');
  assert.equal(parsePositiveNumber('2.5', '--timeout'), 2.5);
  for (const v of ['0', '-1', 'Infinity', 'NaN', '1e3', '.5'])
    refuses(() => parsePositiveNumber(v, '--timeout'), '--timeout');
  refuses(() => parsePositiveNumber('100.5', '--max-fill', 100), '--max-fill');
  assert.equal(parsePort('0', '--p'), 0);
  refuses(() => parsePort('65536', '--p'), '--p');
  assert.equal(parseDay('2024-02-29', '--date'), '2024-02-29');
  for (const v of ['2026-02-30', '2026-13-45', '2026-1-5', 'today', '2026-02-28T00:00:00Z'])
    refuses(() => parseDay(v, '--date'), '--date');
  assert.equal(parsePastDay('2026-03-01', '--date', '2026-03-01'), '2026-03-01', 'today is not the future');
  refuses(() => parsePastDay('2026-03-02', '--date', '2026-03-01'), '--date');
  assert.deepEqual(parseDayRange('2026-02-01', '2026-02-01', undefined, '2026-03-01'), {
    from: '2026-02-01',
    to: '2026-02-01',
  });
  assert.throws(
    () => parseDayRange('2026-02-02', '2026-02-01', undefined, '2026-03-01'),
    (e) => isRemoraError(e, 'UsageError') && /--from 2026-02-02 is after --to 2026-02-01/.test(e.message),
  );
});

test('bad dates and flags: UsageError naming the flag, exit 2, nothing created', async () => {
  const { stateDir, prefix } = stateDirWithPrefix();
  const today = dayOf(Date.now());
  const future = addDays(today, 2); // two days, so a midnight between here and the child changes nothing
  const cases: [string[], RegExp][] = [
    [['pipeline', 'run', '--date', '2026-02-30'], /--date: not a calendar day \(YYYY-MM-DD\): 2026-02-30/],
    [['pipeline', 'run', '--date', '2026-13-45'], /--date: not a calendar day/],
    [['pipeline', 'run', '--date', future], new RegExp(`--date: ${future} is in the future`)],
    [['pipeline', 'run', '--timeout', '-1'], /--timeout: expected a number > 0, got "-1"/],
    [['rerun', 'snapshot', '--date', future], /--date: .* is in the future/],
    [
      ['backfill', '--from', '2026-03-10', '--to', '2026-03-01'],
      /--from 2026-03-10 is after --to 2026-03-01/,
    ],
    [['backfill', '--from', '2026-02-29', '--to', '2026-03-01'], /--from: not a calendar day/],
    [['backfill', '--from', today, '--to', future], /--to: .* is in the future/],
    [['runs', '--days', 'abc'], /--days: expected an integer from 1 to 3660, got "abc"/],
    [['runs', '--days', '-5'], /--days: expected an integer from 1 to 3660, got "-5"/],
    [['run', 'show', 'abc'], /run show <id>: expected a positive integer, got "abc"/],
    [['worker', '--concurrency', '0'], /--concurrency: expected a positive integer, got "0"/],
    [['rebalance', 'run', '--concurrency', '0'], /--concurrency: expected a positive integer/],
    [['rebalance', 'plan', '--max-fill', '150'], /--max-fill: expected a number > 0 and ≤ 100/],
    [['unpack', 'dump.gz', '--partitions', '0'], /--partitions: expected an integer from 1 to 9999/],
    [['snapshot', '--shard', '../etc'], /--shard: unknown shard "..\/etc"/],
    [['workload', '--objects', 'many'], /--objects: expected a non-negative integer, got "many"/],
  ];
  try {
    for (let i = 0; i < cases.length; i += 2) {
      const batch = cases.slice(i, i + 2);
      const results = await Promise.all(batch.map(([args]) => cliAsync(stateDir, args)));
      batch.forEach(([args, message], j) => {
        assertRefused(results[j]!, 'UsageError', message, args.join(' '));
        assert.equal(results[j]!.stdout, '', `${args.join(' ')}: nothing on stdout`);
      });
    }
    assert.deepEqual(fs.readdirSync(stateDir), ['config.json'], 'no directory or file created');
    assert.deepEqual(await databasesWithPrefix(prefix), [], 'no database created');
  } finally {
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('run show <id> of a run that does not exist: UsageError, and no run is created', async () => {
  const { stateDir, prefix } = stateDirWithPrefix();
  try {
    const r = cli(stateDir, ['run', 'show', '424242']);
    assertRefused(r, 'UsageError', /no run 424242/, 'run show 424242');
    const c = new pg.Client({ connectionString: new URL(`/${prefix}_control`, testPgUrl()).toString() });
    await c.connect();
    try {
      const runs = await c.query<{ n: string }>('SELECT count(*) AS n FROM remora_pipeline.runs');
      assert.equal(runs.rows[0]?.n, '0');
    } finally {
      await c.end();
    }
  } finally {
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a mistyped --state-dir: NoDeployment naming the directory, exit 5, no cluster created', () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-cli-typo-'));
  const typo = path.join(parent, 'stat');
  const today = dayOf(Date.now());
  try {
    for (const args of [
      ['snapshot'],
      ['pipeline', 'run', '--date', today],
      ['accounts', 'list'],
      ['workload', '--bulk'],
    ]) {
      // No external PostgreSQL: before, this initialised a new embedded cluster in `typo`.
      const r = cli(typo, args, { REMORA_PG_URL: undefined });
      assertRefused(
        r,
        'NoDeployment',
        new RegExp(`no deployment in state directory ${typo}: .*remora --state-dir ${typo} up`),
        args.join(' '),
      );
      assert.equal(fs.existsSync(typo), false, `${args.join(' ')}: ${typo} not created`);
    }
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

test('a configuration the schema refuses: InvalidConfig with the key, exit 2, nothing created', async () => {
  const { stateDir, prefix } = stateDirWithPrefix();
  const write = (c: unknown) => fs.writeFileSync(path.join(stateDir, 'config.json'), JSON.stringify(c));
  try {
    write({ postgres: { databasePrefix: prefix }, frontdoor: { defaultCopies: 'two' } });
    assertRefused(
      cli(stateDir, ['accounts', 'list']),
      'InvalidConfig',
      /frontdoor\.defaultCopies: .*expected number, received string/,
      'defaultCopies: "two"',
    );
    write({
      postgres: { databasePrefix: prefix },
      storage: { nodes: [{ id: '../../evil', datacenter: 'dc1' }] },
    });
    assertRefused(
      cli(stateDir, ['storage', 'show']),
      'InvalidConfig',
      /storage\.nodes\[0\]\.id: must be a DNS-like name/,
      'node id ../../evil',
    );
    write({ postgres: { databasePrefix: prefix }, pipeline: { jobs: { unpack: { enabeld: false } } } });
    assertRefused(
      cli(stateDir, ['runs']),
      'InvalidConfig',
      /pipeline\.jobs\.unpack\.enabeld: unknown key/,
      'a mistyped per-job key',
    );
    const missing = path.join(stateDir, 'remora.json');
    assertRefused(
      cli(stateDir, ['runs'], { REMORA_CONFIG: missing }),
      'InvalidConfig',
      new RegExp(`REMORA_CONFIG names ${missing}, which does not exist`),
      'REMORA_CONFIG missing',
    );
    assert.deepEqual(fs.readdirSync(stateDir), ['config.json']);
    assert.equal(fs.existsSync(path.resolve(stateDir, '..', 'evil')), false);
    assert.deepEqual(await databasesWithPrefix(prefix), []);
  } finally {
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('REMORA_PG_URL refused, with a wrong password or malformed: a named error with the host, no stack', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-cli-pgurl-'));
  try {
    const refused = new URL(testPgUrl());
    refused.port = String(await freePort());
    assertRefused(
      cli(stateDir, ['runs'], { REMORA_PG_URL: refused.toString() }),
      'ShardUnavailable',
      new RegExp(`PostgreSQL at 127\\.0\\.0\\.1:${refused.port}/postgres .*: connection refused`),
      'refused',
    );
    const badPassword = new URL(testPgUrl());
    badPassword.password = 'not-the-password';
    const r = cli(stateDir, ['accounts', 'list'], { REMORA_PG_URL: badPassword.toString() });
    assertRefused(
      r,
      'ShardUnavailable',
      /PostgreSQL at 127\.0\.0\.1:\d+\/postgres .*login refused/,
      'password',
    );
    assert.doesNotMatch(r.stderr, /not-the-password/);
    const malformed = cli(stateDir, ['runs'], { REMORA_PG_URL: 'pg://user:hunter2@' });
    assertRefused(
      malformed,
      'InvalidConfig',
      /postgres\.url \(from REMORA_PG_URL\): must be a PostgreSQL URL/,
      'malformed',
    );
    assert.doesNotMatch(malformed.stderr, /hunter2/);
    assert.deepEqual(fs.readdirSync(stateDir), []);
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('PostgreSQL lost under a running command: ShardUnavailable, exit 6, no stack trace', async () => {
  // A private server this test may stop; the command waits on runs that no worker takes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-cli-pglost-'));
  const server = await startEmbeddedPostgres(path.join(dir, 'data'), await freePort());
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir);
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: 'lost' } }),
  );
  const child = spawn(
    process.execPath,
    [...CLI, '--state-dir', stateDir, 'pipeline', 'run', '--no-worker', '--timeout', '120'],
    { env: childEnv({ REMORA_PG_URL: server.url }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 600 && !/started run/.test(stderr) && child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(stderr, /started run/, 'the command got going');
    await server.stop();
    const code = await exited;
    assert.equal(code, ERROR_CATALOG.ShardUnavailable.exit, stderr);
    assert.match(stderr, /^remora: ShardUnavailable: /m);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    assert.doesNotMatch(stderr, /Unhandled 'error' event|node:events/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
