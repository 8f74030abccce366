/**
 * `remora workload --compute` as a real process (`node --import tsx src/main/cli.ts`) on a state
 * directory whose config.json names the test PostgreSQL: it uploads SYNTHETIC agent logs for the
 * accounts, the same seed gives the same bytes, and the hourly compute-metering job (in this
 * process) meters exactly those logs. Bad inputs: a named error, a non-zero exit, nothing written.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type RemoraConfig } from '../src/config/config.js';
import { ERROR_CATALOG } from '../src/core/errors.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { MetadataTier } from '../src/metadata/metadata-tier.js';
import { LocalObjectStore, readObjectText } from '../src/objectstore/object-store.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { computeMeteringJob } from '../src/jobs/compute-metering/compute-metering.job.js';
import {
  MARLIN_AGENT_LOG_ROOT,
  operatorReportPath,
} from '../src/jobs/compute-metering/compute-metering.rules.js';
import { dropDatabases, testConfig, testPgUrl } from './helpers/pg.js';
import { FAST } from './helpers/pipeline.js';
import { CliProcess, type CliResult } from './helpers/pipeline-cli.js';

let config: RemoraConfig;
let tier: MetadataTier;
let store: LocalObjectStore;

const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('REMORA_') || k === 'REMORA_TEST_PG_URL'),
);
const remora = (...args: string[]): Promise<CliResult> =>
  new CliProcess(['--state-dir', config.stateDir, ...args], env).exited;

function refused(r: CliResult, what: RegExp): void {
  assert.equal(r.code, ERROR_CATALOG.UsageError.exit, r.stderr);
  assert.match(r.stderr, /remora: UsageError: /);
  assert.match(r.stderr, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(r.stdout, '');
}

const logFiles = () => {
  const root = path.join(config.stateDir, 'objects', MARLIN_AGENT_LOG_ROOT);
  return fs.existsSync(root)
    ? (fs.readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.log')).sort()
    : [];
};

before(async () => {
  const base = testConfig();
  fs.writeFileSync(
    path.join(base.stateDir, 'config.json'),
    JSON.stringify({ postgres: { url: testPgUrl(), databasePrefix: base.postgres.databasePrefix } }),
  );
  config = loadConfig({}, { stateDir: base.stateDir });
  tier = await MetadataTier.open(config, testPgUrl());
  store = new LocalObjectStore(path.join(config.stateDir, 'objects'));
});
after(async () => {
  await tier?.close();
  await dropDatabases(config.postgres.databasePrefix);
  fs.rmSync(config.stateDir, { recursive: true, force: true });
});

test('workload --compute refuses bad flags and a deployment with no accounts, writing nothing', async () => {
  const cases: [string[], RegExp][] = [
    [['--from', '2024-13-01T10'], /--from: not an hour \(YYYY-MM-DDTHH, UTC\): 2024-13-01T10/],
    [['--from', '2024-05-01 10'], /--from: not an hour/],
    [['--from', '2999-01-01T00'], /reaches into an hour that has not ended/],
    [['--hours', '0'], /--hours: expected an integer from 1 to 744, got "0"/],
    [['--compute-jobs', 'lots'], /--compute-jobs: expected an integer from 1 to 100000, got "lots"/],
    [['--bulk'], /--compute and --bulk are different workloads/],
    [
      ['--from', '2024-05-01T10'],
      /no accounts to own compute jobs: run `remora workload` or `remora accounts create/,
    ],
  ];
  const results = await Promise.all(cases.map(([args]) => remora('workload', '--compute', ...args)));
  results.forEach((r, i) => refused(r, cases[i]![1]));
  assert.deepEqual(logFiles(), []);
});

test('workload --compute writes synthetic agent logs (same seed, same bytes) that the hourly job meters', async () => {
  const help = await remora('workload', '--help');
  assert.match(help.stdout, /--compute\s+instead: SYNTHETIC marlin-agent meter records/);
  const alice = (await createAccount(tier, { login: 'alice' }, Date.now())).account;
  const bob = (await createAccount(tier, { login: 'bob' }, Date.now())).account;

  const r = await remora('workload', '--compute', '--seed', '4', '--from', '2024-05-01T22', '--hours', '2');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { logs: string[]; lines: number; synthetic: boolean };
  assert.equal(out.synthetic, true);
  const files = logFiles();
  assert.deepEqual(
    files.map((f) => f.slice(0, 14)).filter((v, i, a) => a.indexOf(v) === i),
    ['2024/05/01/22/', '2024/05/01/23/'],
  );
  assert.deepEqual(
    out.logs,
    files.map((f) => `${MARLIN_AGENT_LOG_ROOT}/${f}`),
  );
  const bytes = files.map((f) =>
    fs.readFileSync(path.join(config.stateDir, 'objects', MARLIN_AGENT_LOG_ROOT, f)),
  );
  const again = await remora(
    'workload',
    '--compute',
    '--seed',
    '4',
    '--from',
    '2024-05-01T22',
    '--hours',
    '2',
  );
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    logFiles().map((f) => fs.readFileSync(path.join(config.stateDir, 'objects', MARLIN_AGENT_LOG_ROOT, f))),
    bytes,
    'the same seed writes the same logs',
  );

  // The job reads them as it reads real marlin-agent logs.
  const day = '2024-05-01';
  await withPipelineSession(
    config,
    tier,
    {
      jobs: () => [computeMeteringJob({ settleMinutes: 15, objectsPerTask: 32, reportRetentionDays: 90 })],
      settings: FAST,
      log: () => {},
    },
    async (rt, c) => {
      await scheduleDay(rt, day, 'test');
      const runs = await driveDays(rt, c, [day], { timeoutMs: 120_000 });
      assert.ok(
        runs.every((x) => x.state === 'succeeded'),
        JSON.stringify(runs.map((x) => [x.partitionKey, x.state])),
      );
      for (const h of [22, 23]) {
        const run = runs.find((x) => x.partitionKey === `${day}T${h}`)!;
        assert.equal(run.report!.counters.malformed, 0);
        assert.equal(run.report!.counters.agentLogs, 3);
        const owners = (await readObjectText(store, operatorReportPath(day, h)))
          .trim()
          .split('\n')
          .map((l) => (JSON.parse(l) as { owner: string }).owner);
        assert.ok(
          owners.length > 0 && owners.every((o) => o === alice.uuid || o === bob.uuid),
          `hour ${h}: ${owners.join(',')}`,
        );
      }
    },
  );
});
