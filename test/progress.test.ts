/**
 * Progress of long work: the rate/ETA arithmetic (core/progress.ts) by tables on a manual clock,
 * the log's structured fields, the demo's run order, and `remora workload` as a process against a
 * deployment: its progress lines, as JSON lines with REMORA_LOG_FORMAT=json, carry done, total,
 * rate, bytes and ETA, at most one every 2 s plus a final one, and stdout stays the summary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ManualClock } from '../src/core/clock.js';
import { formatEta, ProgressMeter, progressReading } from '../src/core/progress.js';
import { formatLogLine } from '../src/cli/log.js';
import { inRunOrder } from '../src/deployment/demo.js';
import type { RunRow } from '../src/pipeline/runs.repository.js';
import { DEFAULT_SPEC, generateWorkload } from '../src/workload/generator.js';
import { workloadOperationCount } from '../src/workload/driver.js';
import { startTestDeployment } from './helpers/deployment.js';
import { runCli } from './helpers/cli.js';

test('progressReading: rate since the start, ETA rounded up, 0 when done, unknown without a total or a rate', () => {
  const cases: [string, [number, number, number | null, number], { rate: number; eta: number | null }][] = [
    ['half way in 10 s', [0, 50, 100, 10_000], { rate: 5, eta: 10 }],
    ['units done before the start do not count', [40, 50, 100, 10_000], { rate: 1, eta: 50 }],
    ['the ETA is rounded up', [0, 3, 10, 1_000], { rate: 3, eta: 3 }],
    ['done: ETA 0', [0, 100, 100, 4_000], { rate: 25, eta: 0 }],
    ['past the total (a count that grew): ETA 0', [0, 120, 100, 4_000], { rate: 30, eta: 0 }],
    ['nothing done yet: no rate, no ETA', [0, 0, 100, 5_000], { rate: 0, eta: null }],
    ['no time elapsed: no rate, no ETA', [0, 5, 100, 0], { rate: 0, eta: null }],
    ['no total: a rate, no ETA', [0, 30, null, 3_000], { rate: 10, eta: null }],
    ['an empty total is done', [0, 0, 0, 0], { rate: 0, eta: 0 }],
  ];
  for (const [name, [startDone, done, total, elapsed], want] of cases) {
    const r = progressReading(startDone, done, total, elapsed);
    assert.deepEqual({ rate: r.rate, eta: r.etaSeconds }, want, name);
    assert.deepEqual([r.done, r.total, r.elapsedMs], [done, total, elapsed], name);
  }
});

test('ProgressMeter.due: the first reading, then at most every 2 s, and the final one exactly once', () => {
  const clock = new ManualClock(1_000_000);
  const m = new ProgressMeter(clock, 10);
  // [ms since the start, done, a line due?]
  const steps: [number, number, boolean][] = [
    [0, 0, true],
    [500, 1, false],
    [1_999, 2, false],
    [2_000, 3, true],
    [2_100, 4, false],
    [3_000, 5, false],
    [4_000, 6, true],
    [4_001, 10, true], // done: the final line at once
    [4_002, 10, false], // and only once
    [9_000, 10, false],
  ];
  for (const [at, done, due] of steps) {
    clock.set(1_000_000 + at);
    const r = m.due(done);
    assert.equal(r !== undefined, due, `at ${at} ms, done ${done}`);
    if (r) assert.equal(r.done, done);
  }
  clock.set(1_004_000);
  assert.deepEqual(
    { rate: m.read(6).rate, eta: m.read(6).etaSeconds },
    { rate: 1.5, eta: 3 },
    '6 of 10 in 4 s: 1.5/s, 4 left take 3 s',
  );
  assert.equal(m.read(8, 20).etaSeconds, 6, 'a total that grows (a run whose tasks became known)');
});

test('formatEta', () => {
  const cases: [number | null, string][] = [
    [null, '?'],
    [0, '0s'],
    [59, '59s'],
    [60, '1m00s'],
    [65, '1m05s'],
    [3_600, '1h00m00s'],
    [3_725, '1h02m05s'],
  ];
  for (const [s, want] of cases) assert.equal(formatEta(s), want, String(s));
});

test('log lines: fields become JSON keys (never over time, level, pid, msg); the text form is the message', () => {
  const at = new Date('2024-05-10T01:02:03.004Z');
  const json = JSON.parse(
    formatLogLine('json', 'workload: 3/10', at, 42, { done: 3, total: 10, msg: 'not this', pid: 1 }),
  ) as Record<string, unknown>;
  assert.deepEqual(json, {
    time: '2024-05-10T01:02:03.004Z',
    level: 'info',
    pid: 42,
    msg: 'workload: 3/10',
    done: 3,
    total: 10,
  });
  assert.deepEqual(Object.keys(json).slice(0, 4), ['time', 'level', 'pid', 'msg'], 'the line keys first');
  assert.equal(
    formatLogLine('text', 'workload: 3/10', at, 42, { done: 3 }),
    `${at.toISOString()} workload: 3/10\n`,
  );
});

test('the demo lists runs in the order they ran: started, then ended, then id; never started last', () => {
  const t = (s: number | null) => (s === null ? null : new Date(Date.UTC(2024, 4, 10, 0, 0, s)));
  const run = (id: number, job: string, started: number | null, finished: number | null) =>
    ({ id, job, startedAt: t(started), finishedAt: t(finished) }) as RunRow;
  const runs = [
    run(1, 'audit', 30, 31), // by name it would come first
    run(2, 'gc', 20, 25),
    run(3, 'snapshot', 1, 5),
    run(4, 'unpack', 6, 12),
    run(5, 'unpack', 6, 10), // started with run 4, ended first
    run(6, 'storage-metering', 13, 14),
    run(7, 'manifests', 6, 10), // same start and end as run 5: by id
    run(8, 'usage-delivery', null, 16), // blocked: never started, placed by its end
    run(9, 'access-logs', null, null), // still waiting: last
    run(10, 'compute-metering', null, null),
  ];
  const order = (rs: RunRow[]) => inRunOrder(rs).map((r) => r.id);
  assert.deepEqual(order(runs), [3, 5, 7, 4, 6, 8, 2, 1, 9, 10]);
  // Whatever order they arrive in (the pipeline lists them by job name).
  const byName = [...runs].sort((a, b) => a.job.localeCompare(b.job));
  assert.deepEqual(order(byName), [3, 5, 7, 4, 6, 8, 2, 1, 9, 10]);
  assert.deepEqual(order([...runs].reverse()), [3, 5, 7, 4, 6, 8, 2, 1, 9, 10]);
  assert.equal(byName[0]!.id, 9, 'the input is not sorted in place (access-logs first by name)');
});

test('workloadOperationCount: the operations the workload reports, without generating the objects', () => {
  for (const spec of [
    { ...DEFAULT_SPEC, seed: 1, objects: 50 },
    { ...DEFAULT_SPEC, seed: 9, accounts: 7, objects: 0 },
    { ...DEFAULT_SPEC, seed: 3, accounts: 1, objects: 333 },
  ]) {
    const all = [...generateWorkload(spec)].filter((op) => op.op !== 'account').length;
    assert.equal(workloadOperationCount(spec), all, JSON.stringify(spec));
  }
});

test('remora workload: progress lines with rate, bytes and ETA (JSON lines), at most every 2 s, and a final one', async () => {
  const { d, cleanup } = await startTestDeployment({}, { writeState: true });
  try {
    const { config } = d;
    fs.writeFileSync(
      path.join(config.stateDir, 'config.json'),
      JSON.stringify({
        postgres: { url: config.postgres.url, databasePrefix: config.postgres.databasePrefix },
      }),
    );
    const spec = { ...DEFAULT_SPEC, seed: 11, accounts: 2, objects: 200, maxObjectBytes: 2048 };
    const started = Date.now();
    const r = await runCli(
      config.stateDir,
      ['workload', '--seed', '11', '--accounts', '2', '--objects', '200', '--max-object-bytes', '2048'],
      { env: { REMORA_LOG_FORMAT: 'json' }, timeoutMs: 120_000 },
    );
    const elapsedS = (Date.now() - started) / 1000;
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as {
      puts: number;
      overwrites: number;
      bytes: number;
      failures: unknown[];
    };
    assert.deepEqual(summary.failures, []);
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith('workload: '));
    const total = workloadOperationCount(spec);
    assert.ok(lines.length >= 2, r.stderr);
    assert.ok(
      lines.length <= 2 + elapsedS / 2,
      `at most a line every 2 s, not one per op: ${lines.length} in ${elapsedS} s`,
    );
    for (const l of lines) {
      assert.equal(l.total, total);
      assert.equal(typeof l.rate, 'number');
      assert.equal(typeof l.bytes, 'number');
      assert.ok(l.etaSeconds === null || typeof l.etaSeconds === 'number', JSON.stringify(l));
      assert.match(
        String(l.msg),
        /^workload: \d+\/\d+ ops, [\d.]+ ops\/s, [\d.]+ (B|KiB|MiB) put, ETA (\?|\d)/,
      );
    }
    const dones = lines.map((l) => Number(l.done));
    assert.deepEqual(
      dones,
      [...dones].sort((a, b) => a - b),
      'done only grows',
    );
    const last = lines.at(-1)!;
    assert.equal(last.done, total, 'the final line');
    assert.equal(last.etaSeconds, 0);
    assert.equal(last.bytes, summary.bytes, 'the bytes the summary counts');
    assert.ok(Number(last.rate) > 0, JSON.stringify(last));
    // The rate is the operations over the time they took (the command ran at least that long).
    assert.ok(
      total / Number(last.rate) <= elapsedS + 1,
      `${total} ops at ${String(last.rate)}/s within ${elapsedS} s`,
    );
    // A line in between (the run lasts longer than 2 s on any machine this runs on) has an ETA.
    if (lines.length > 2) assert.equal(typeof lines[1]!.etaSeconds, 'number', JSON.stringify(lines[1]));
  } finally {
    await cleanup();
  }
});
