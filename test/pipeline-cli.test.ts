/**
 * Every pipeline entry point of the CLI as a real process (`node --import tsx src/main/cli.ts`
 * with `--state-dir` of a temp dir whose config.json names the test PostgreSQL): `worker`,
 * `pipeline run`, `run show`, `rerun`, `backfill`, and `scheduler` with an injected clock over
 * several simulated days (daily trigger, catch-up, retention, clean stop on SIGTERM).
 *
 * The real daily jobs run (snapshot → unpack → storage-metering on three shards with a small
 * workload). Past days read dumps stored for them beforehand (the fixture), as manatee's.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isAlive } from '../src/deployment/context.js';
import { runPrefix } from '../src/pipeline/inputs.js';
import type { RunRow } from '../src/pipeline/runs.repository.js';
import { attemptsOfRun } from '../src/pipeline/tasks.repository.js';
import { operatorReportPath } from '../src/jobs/storage-metering/storage-metering.rules.js';
import { openCliFixture, type CliFixture } from './helpers/pipeline-cli.js';

/** The day `pipeline run` and `rerun` use. */
const P = '2024-04-01';
/** Backfilled before the scheduler starts: the "old days" with runs. */
const BACKFILL = ['2024-05-06', '2024-05-07'];
/** The scheduler's first simulated day, and the days it must catch up (no runs, in its window). */
const D0 = '2024-05-10';
const MISSED = ['2024-05-08', '2024-05-09'];
// snapshot ×3 shards, unpack ×3, storage-metering ×1, gc ×1, tombstone-purge ×6 nodes = 14,
// + compute-metering ×24 hours + request-metering ×24 hours + access-logs ×24 hours = 86,
// + manifests ×6 nodes + audit ×1 + repair ×1 = 94, + usage-summary ×1 (the day) = 95
const JOBS_PER_DAY = 95;

let f: CliFixture;

before(async () => {
  f = await openCliFixture({
    dumpDays: [P, ...BACKFILL, ...MISSED],
    pipeline: { catchUpDays: 3, retentionDays: 3 },
  });
});
after(async () => f?.close());

const states = (runs: RunRow[]) => runs.map((r) => `${r.job}:${r.state}`).join(', ');
const allSucceeded = (runs: RunRow[]) =>
  runs.length === JOBS_PER_DAY && runs.every((r) => r.state === 'succeeded');

test('pipeline run --no-worker: a separate `remora worker` process runs every task; SIGTERM stops it with 0', async () => {
  const worker = f.start(['worker', '--concurrency', '2']);
  await worker.waitForLog(/worker started/);
  const r = await f.run(['pipeline', 'run', '--date', P, '--no-worker', '--timeout', '60']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /storage usage 2024-04-01/);
  assert.match(r.stdout, /alice\s+stor/);

  const runs = await f.runs(P);
  assert.ok(allSucceeded(runs), states(runs));
  assert.ok(runs.every((x) => x.trigger === 'manual' && x.seq === 1));
  const workers = new Set<string>();
  for (const run of runs) for (const a of await attemptsOfRun(f.tier.control, run.id)) workers.add(a.worker);
  assert.deepEqual(
    [...workers].map((w) => w.split(':')[1]),
    [String(worker.child.pid)],
    'every attempt ran in the worker process',
  );
  const report = await f.store.head(operatorReportPath(P));
  assert.ok(report && report.bytes > 0, 'the operator usage file is published');

  const w = await worker.stop('SIGTERM');
  assert.deepEqual([w.code, w.signal], [0, null], w.stderr);
  assert.match(w.stderr, /SIGTERM: stopping/);
  assert.equal(isAlive(worker.child.pid!), false);
});

test('run show, then rerun --downstream: the dry run prints exactly what the rerun creates', async () => {
  const metering = (await f.runs(P)).find((r) => r.job === 'storage-metering')!;
  const show = await f.run(['run', 'show', String(metering.id)]);
  assert.equal(show.code, 0, show.stderr);
  const detail = JSON.parse(show.stdout) as {
    run: RunRow;
    tasks: unknown[];
    attempts: { state: string }[];
  };
  assert.equal(detail.run.id, metering.id);
  assert.equal(detail.run.verdict, 'ok');
  assert.equal(detail.run.report?.counters.accounts, 3);
  assert.ok(detail.tasks.length >= 1);
  assert.ok(detail.attempts.every((a) => a.state === 'succeeded'));
  const missing = await f.run(['run', 'show', '999999']);
  assert.equal(missing.code, 2, 'an unknown run is a usage error');

  const before = await f.runs(P);
  const dry = await f.run(['rerun', 'unpack', '--date', P, '--downstream', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  const planned = dry.stdout.split('\n').filter((l) => l.includes('would run'));
  assert.deepEqual(planned.map((l) => l.trim().split(/\s+/)[0]).sort(), [
    'audit',
    'gc',
    'repair',
    'storage-metering',
    'unpack',
    'unpack',
    'unpack',
    'usage-summary',
  ]);
  assert.equal((await f.runs(P)).length, before.length, 'a dry run creates nothing');

  const re = await f.run(['rerun', 'unpack', '--date', P, '--downstream']);
  assert.equal(re.code, 0, re.stderr);
  const after = await f.runs(P);
  const created = after.filter((r) => !before.some((b) => b.id === r.id));
  assert.deepEqual(created.map((r) => `${r.job}:${r.seq}:${r.trigger}:${r.state}`).sort(), [
    'audit:2:rerun:succeeded',
    'gc:2:rerun:succeeded',
    'repair:2:rerun:succeeded',
    'storage-metering:2:rerun:succeeded',
    'unpack:2:rerun:succeeded',
    'unpack:2:rerun:succeeded',
    'unpack:2:rerun:succeeded',
    'usage-summary:2:rerun:succeeded',
  ]);
});

test('backfill, then `remora scheduler` on a sped-up clock over three days: trigger, catch-up, retention, clean stop', async () => {
  // backfill: each day once, oldest first.
  const b = await f.run(['backfill', '--from', BACKFILL[0]!, '--to', BACKFILL[1]!]);
  assert.equal(b.code, 0, b.stderr);
  const lines = b.stderr.split('\n').filter((l) => / backfill \d/.test(l));
  assert.deepEqual(
    lines.map((l) => l.slice(l.indexOf('backfill'))),
    BACKFILL.map((d) => `backfill ${d}: ${JOBS_PER_DAY} run(s) created`),
  );
  const old = await f.runs(BACKFILL[0]!, BACKFILL[1]);
  assert.equal(old.length, 2 * JOBS_PER_DAY);
  assert.ok(
    old.every((r) => r.state === 'succeeded' && r.trigger === 'backfill'),
    states(old),
  );
  const oldMetering = old.filter((r) => r.job === 'storage-metering');
  for (const r of oldMetering)
    assert.ok((await f.store.list(runPrefix(r.job, r.partitionKey, r.id))).length > 0, 'per-run outputs');

  // What the first retention (at D0, 3 days) must remove: every run before 05-07.
  const expiredAtD0 = (await f.runs('2000-01-01', BACKFILL[0])).length;

  // The scheduler: a simulated day every 16 s, starting at D0's midnight; catch-up window 3 days
  // (05-07 has runs, 05-08 and 05-09 have none), retention 3 days. A day's work takes ~0.5 s
  // here (D0 ~1.5 s with the two caught-up days), plus the 24 hourly compute-metering runs
  // (empty hours: two transitions each, 1–5 s of coordinator work a day on a loaded machine;
  // at 8 s a day the caught-up days' snapshots fell outside their simulated day): the margin
  // keeps a day's snapshot within its simulated day, and its metering done before the next
  // day's unpack replaces the unpacked chunks (today's snapshots are stamped by PostgreSQL's
  // real clock, so every simulated "today" unpacks into the same real day).
  const t0 = Date.now();
  const s = f.start(['scheduler'], {
    REMORA_CLOCK_START: `${D0}T00:00:00Z`,
    REMORA_CLOCK_SPEED: '5400',
  });
  await s.waitForLog(/scheduler started/);
  const D2 = '2024-05-12';
  await s.waitForLog(new RegExp(`daily trigger: ${JOBS_PER_DAY} run\\(s\\) for 2024-05-12`), 60_000);
  await s.until('day 2024-05-12 complete', async () => allSucceeded(await f.runs(D2)), 60_000);
  const stopped = await s.stop('SIGTERM');
  const elapsed = Date.now() - t0;
  assert.deepEqual([stopped.code, stopped.signal], [0, null], stopped.stderr);
  assert.equal(isAlive(s.child.pid!), false, 'the scheduler process is gone');
  const log = stopped.stderr;
  assert.doesNotMatch(log, /scheduler step failed|retention failed/);

  // Catch-up: the two missed days, oldest first, loudly.
  assert.match(log, /CATCH-UP: 2 missed day\(s\) with no runs: 2024-05-08, 2024-05-09/);
  const committed = (day: string) =>
    Number(new RegExp(`storage-metering ${day}: run (\\d+) committed`).exec(log)?.[1] ?? NaN);
  assert.ok(
    committed(MISSED[0]!) < committed(MISSED[1]!),
    `missed days created oldest first: ${log
      .split('\n')
      .filter((l) => /(storage-metering|unpack|snapshot) 2024-05-0[89]/.test(l))
      .join(' | ')}`,
  );
  assert.ok(committed(MISSED[1]!) < committed(D0), 'caught up before today');

  // The daily trigger fired once for each simulated day, in order. D2 is complete only after
  // 05-13's trigger: its last hourly run (compute-metering 23:00) is due at 05-13 00:15.
  const triggers = [...log.matchAll(/daily trigger: (\d+) run\(s\) for (\S+)/g)].map(
    (m) => `${m[2]}:${m[1]}`,
  );
  // (The scheduler may have triggered a later day too by the time D2 is complete: the first
  // four are the ones checked.)
  assert.deepEqual(
    triggers.slice(0, 4),
    ['2024-05-10', '2024-05-11', '2024-05-12', '2024-05-13'].map((d) => `${d}:${JOBS_PER_DAY}`),
  );

  // Kept: 05-10 .. 05-12 (05-09, caught up, went with 05-13's retention), every run succeeded.
  const kept = await f.runs(D0, D2);
  for (const day of [D0, '2024-05-11', D2]) {
    const runs = kept.filter((r) => r.day === day);
    assert.ok(allSucceeded(runs), `${day}: ${states(runs)}`);
    assert.ok(runs.every((r) => r.trigger === 'daily'));
    const m = runs.find((r) => r.job === 'storage-metering')!;
    assert.ok(await f.store.head(`${runPrefix(m.job, m.partitionKey, m.id)}h00.json`), `${day} run output`);
    // Durations are real time, not the sped-up clock's.
    const wall = m.report?.durations.wall ?? -1;
    assert.ok(wall >= 0 && wall < elapsed, `${day} wall ${wall} ms`);
  }

  // Retention (3 days): at 05-10 every day before 05-07, at 05-11 05-07, at 05-12 05-08, at
  // 05-13 05-09.
  const removed = [...log.matchAll(/retention: removed (\d+) run\(s\) older than 3 days/g)].map((m) =>
    Number(m[1]),
  );
  assert.deepEqual(removed, [expiredAtD0, JOBS_PER_DAY, JOBS_PER_DAY, JOBS_PER_DAY]);
  assert.deepEqual(await f.runs(P, MISSED[1]), [], 'runs older than retention are gone');
  for (const r of oldMetering)
    assert.deepEqual(await f.store.list(runPrefix(r.job, r.partitionKey, r.id)), [], 'and their outputs');
  const pointers = await f.tier.control.query<{ n: string }>(
    `SELECT count(*) AS n FROM remora_pipeline.outputs WHERE partition_key < $1::text`,
    [D0],
  );
  assert.equal(pointers.rows[0]!.n, '0', 'and their pointers');
  const orphans = await f.tier.control.query<{ n: string }>(
    `SELECT count(*) AS n FROM remora_pipeline.tasks t WHERE NOT EXISTS
       (SELECT 1 FROM remora_pipeline.runs r WHERE r.id = t.run_id)`,
  );
  assert.equal(orphans.rows[0]!.n, '0');
  // Published reports are not per-run outputs: they stay.
  assert.ok(await f.store.head(operatorReportPath(BACKFILL[0]!)));
});
