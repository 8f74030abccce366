import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { driveDays, backfill, planRerun, rerun, scheduleDay } from '../src/pipeline/operations.js';
import { runsBetween, alertsForRun } from '../src/pipeline/runs.repository.js';
import { openTestPipeline, type TestPipeline } from './helpers/pipeline.js';
import { readText } from './helpers/pipeline-jobs.js';

const SHARDS = ['2.moray.remora.local', '3.moray.remora.local'] as const;
let tp: TestPipeline;
const hooks: unknown[] = [];
let hookServer: http.Server;

before(async () => {
  hookServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hooks.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
  const port = (hookServer.address() as AddressInfo).port;
  tp = await openTestPipeline({
    settings: {
      alertWebhook: `http://127.0.0.1:${port}/hook`,
      thresholds: { maxMalformedShare: 0.2, minRecordsForShare: 5 },
    },
  });
  await tp.startWorker();
});
after(async () => {
  await tp.close();
  await new Promise((r) => hookServer.close(r));
});

async function seed(
  day: string,
  lines: string[][] = [
    ['1', '2', '3'],
    ['10', '20'],
  ],
) {
  for (const [i, s] of SHARDS.entries())
    await tp.store.put(`/test/in/${day}/${s}.txt`, (lines[i] ?? []).join('\n'));
}

async function executions(job: string, day: string): Promise<string[]> {
  return tp.store.list(`/test/executions/${job}/${day}/`);
}

test('a day runs extract → sum → publish and commits one pointer per partition', async () => {
  const day = '2024-01-01';
  await seed(day);
  await scheduleDay(tp.rt, day, 'test');
  const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 20_000 });
  assert.deepEqual(runs.map((r) => `${r.job}:${r.state}:${r.verdict}`).sort(), [
    'extract:succeeded:ok',
    'extract:succeeded:ok',
    'publish:succeeded:ok',
    'sum:succeeded:ok',
  ]);
  assert.deepEqual(JSON.parse((await readText(tp.store, `/test/out/${day}/total.json`))!), {
    total: 36,
    parts: 4,
  });
  const sum = runs.find((r) => r.job === 'sum')!;
  assert.equal(sum.report?.counters.recordsScanned, 5, 'the merged report adds the 4 tasks');
  assert.ok((sum.report?.durations.wall ?? -1) >= 0);
});

test('a late input makes the job wait (not fail), alerts at the deadline, then runs', async () => {
  const day = '2024-02-01';
  await tp.store.put(`/test/in/${day}/${SHARDS[0]}.txt`, '5');
  tp.rt.settings.jobs.extract = { deadlineMs: 300 };
  try {
    await scheduleDay(tp.rt, day, 'test');
  } finally {
    delete tp.rt.settings.jobs.extract;
  }
  await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 800 });
  const mid = await runsBetween(tp.rt.control, day, day);
  const late = mid.find((r) => r.partitionKey.endsWith(SHARDS[1]))!;
  assert.equal(late.state, 'waiting');
  assert.match(late.waitingOn ?? '', /test input/);
  assert.equal(
    mid.find((r) => r.job === 'sum')!.state,
    'waiting',
    'downstream waits too, never reads another day',
  );
  const alerts = await alertsForRun(tp.rt.control, late.id);
  assert.equal(alerts.length, 1);
  assert.equal(alerts[0]!.kind, 'deadline');
  assert.ok(
    hooks.some((h) => (h as { runId: number }).runId === late.id),
    'webhook called',
  );
  assert.match(
    await tp.rt.metrics.registry.metrics(),
    /remora_pipeline_alerts_total\{job="extract",kind="deadline"\} 1/,
  );

  await tp.store.put(`/test/in/${day}/${SHARDS[1]}.txt`, '7');
  const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 20_000 });
  assert.ok(runs.every((r) => r.state === 'succeeded'));
  assert.equal(
    (JSON.parse((await readText(tp.store, `/test/out/${day}/total.json`))!) as { total: number }).total,
    12,
  );
  assert.equal((await alertsForRun(tp.rt.control, late.id)).length, 1, 'one alert, not one per tick');
});

test('an invalid upstream blocks downstream; a bad record alone only degrades', async () => {
  const day = '2024-03-01';
  await seed(day, [
    ['1', 'x', '2', '3', '4', '5', '6'],
    ['oops', 'bad', 'worse', '1', 'no', 'nope'],
  ]);
  await scheduleDay(tp.rt, day, 'test');
  const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 20_000 });
  const byKey = new Map(runs.map((r) => [r.partitionKey.split('=')[1] ?? r.job, r]));
  assert.equal(byKey.get(SHARDS[0])!.verdict, 'degraded', '1 of 7 malformed: under the 20% threshold');
  assert.equal(byKey.get(SHARDS[1])!.state, 'invalid', '5 of 6 malformed: systematic');
  const ev = byKey.get(SHARDS[1])!.report!.events['error:malformed-line']!;
  assert.equal(ev.count, 5);
  assert.deepEqual(ev.examples.slice(0, 2), ['oops', 'bad']);
  assert.equal(byKey.get('sum')!.state, 'blocked');
  assert.equal(byKey.get('publish')!.state, 'blocked');
  assert.deepEqual(await executions('sum', day), [], 'downstream never ran');
  assert.equal(await readText(tp.store, `/test/out/${day}/total.json`), undefined);
});

test('rerun --downstream --dry-run lists exactly what would run, and the rerun runs it', async () => {
  const day = '2024-04-01';
  await seed(day);
  await scheduleDay(tp.rt, day, 'test');
  await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 20_000 });
  const plan = await planRerun(tp.rt, 'sum', day, true);
  assert.deepEqual(
    plan.map((p) => `${p.job} ${p.partitionKey} ${p.action}`),
    [`sum ${day} run`, `publish ${day} run`],
  );
  const dry = await rerun(tp.rt, 'extract', day, { downstream: true, dryRun: true });
  assert.deepEqual(
    dry.map((p) => `${p.job} ${p.partitionKey}`),
    [
      `extract ${day}/shard=${SHARDS[0]}`,
      `extract ${day}/shard=${SHARDS[1]}`,
      `sum ${day}`,
      `publish ${day}`,
    ],
  );
  const before = await runsBetween(tp.rt.control, day, day);
  assert.equal(before.length, 4, 'a dry run creates nothing');
  await rerun(tp.rt, 'sum', day, { downstream: true, dryRun: false });
  const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 20_000 });
  const all = await runsBetween(tp.rt.control, day, day);
  assert.deepEqual(
    all
      .filter((r) => r.seq === 2)
      .map((r) => r.job)
      .sort(),
    ['publish', 'sum'],
  );
  assert.ok(runs.every((r) => r.state === 'succeeded'));
  assert.equal((await executions('extract', day)).length, 2, 'extract (2 shards) ran once');
  assert.equal((await executions('sum', day)).length, 8, 'sum ran twice × 4 tasks');
});

test('a backfill of 3 days runs each day once, even when asked twice', async () => {
  const days = ['2024-05-01', '2024-05-02', '2024-05-03'];
  for (const d of days) await seed(d);
  const first = await backfill(tp.rt, days[0]!, days[2]!);
  assert.deepEqual(
    first.map((f) => `${f.day}:${f.created}`),
    days.map((d) => `${d}:4`),
  );
  const second = await backfill(tp.rt, days[0]!, days[2]!);
  assert.ok(second.every((s) => s.created === 0));
  await driveDays(tp.rt, tp.coordinator, days, { timeoutMs: 30_000 });
  for (const d of days) {
    const runs = await runsBetween(tp.rt.control, d, d);
    assert.equal(runs.length, 4);
    assert.ok(runs.every((r) => r.state === 'succeeded' && r.seq === 1));
    assert.equal((await executions('sum', d)).length, 4);
    assert.equal((await executions('publish', d)).length, 1);
  }
});

test('the scheduler catches up missed days oldest first, and says so', async () => {
  const { Scheduler } = await import('../src/pipeline/scheduler.js');
  const { runMatrix } = await import('../src/pipeline/views.js');
  const s = new Scheduler(tp.rt, tp.coordinator);
  tp.rt.settings.catchUpDays = 3;
  const missed = await s.catchUp('2024-07-10');
  assert.deepEqual(missed, ['2024-07-07', '2024-07-08', '2024-07-09']);
  assert.ok(tp.logs.some((l) => l.startsWith('CATCH-UP: 3 missed day(s)')));
  const created = await runsBetween(tp.rt.control, '2024-07-07', '2024-07-09');
  assert.deepEqual([...new Set(created.map((r) => r.day))], missed, 'created oldest first');
  assert.deepEqual(await s.catchUp('2024-07-10'), [], 'scheduled days are not missed any more');
  const m = await runMatrix(tp.rt, '2024-07-09', 2);
  assert.equal(m.cells.get('2024-07-09')?.get('extract'), 'waiting');
});

test('a pipeline that never ran has no missed days: catch-up starts at the first run', async () => {
  const { Scheduler } = await import('../src/pipeline/scheduler.js');
  const fresh = await openTestPipeline();
  try {
    fresh.rt.settings.catchUpDays = 5;
    const s = new Scheduler(fresh.rt, fresh.coordinator);
    assert.deepEqual(await s.catchUp('2024-09-10'), []);
    assert.ok(fresh.logs.some((l) => l.startsWith('no run history')));
    await scheduleDay(fresh.rt, '2024-09-08', 'test');
    // The first run is on the 8th: the 9th is missed, the 5th–7th are before the pipeline existed.
    assert.deepEqual(await s.catchUp('2024-09-10'), ['2024-09-09']);
  } finally {
    await fresh.close();
  }
});

test('a scheduler step triggers every day the clock passed since the last step, oldest first', async () => {
  const { Scheduler } = await import('../src/pipeline/scheduler.js');
  const { ManualClock } = await import('../src/core/clock.js');
  const { DAY_MS } = await import('../src/core/days.js');
  const clock = new ManualClock(Date.parse('2024-08-01T06:00:00Z'));
  const rt = {
    ...tp.rt,
    services: { ...tp.rt.services, clock },
    settings: { ...tp.rt.settings, catchUpDays: 3, retentionDays: 10_000 },
  };
  const s = new Scheduler(rt, tp.coordinator);
  await s.step();
  clock.advance(DAY_MS / 2); // same day: nothing new
  await s.step();
  clock.advance(3 * DAY_MS); // 2024-08-04T18:00, as if the process had been suspended
  await s.step();
  clock.advance(5 * DAY_MS); // 2024-08-09: four days passed, only three (catchUpDays) are run
  await s.step();
  const runs = await runsBetween(tp.rt.control, '2024-08-01', '2024-08-09');
  const firstOfDay = new Map<string, { id: number; trigger: string }>();
  for (const r of [...runs].sort((a, b) => a.id - b.id)) if (!firstOfDay.has(r.day)) firstOfDay.set(r.day, r);
  assert.deepEqual(
    [...firstOfDay].map(([day, r]) => `${day}:${r.trigger}`),
    [
      '2024-08-01:daily',
      '2024-08-02:catch-up',
      '2024-08-03:catch-up',
      '2024-08-04:daily',
      '2024-08-06:catch-up',
      '2024-08-07:catch-up',
      '2024-08-08:catch-up',
      '2024-08-09:daily',
    ],
    'each day once, created oldest first',
  );
  assert.equal(runs.filter((r) => r.job === 'sum').length, 8);
  assert.ok(
    tp.logs.some((l) =>
      l.startsWith(
        'CATCH-UP: 2 day(s) passed since the last trigger: 2024-08-02, 2024-08-03 — scheduling oldest',
      ),
    ),
  );
  assert.ok(
    tp.logs.some((l) => l.includes('2024-08-08 — scheduling the last 3 (catchUpDays), oldest first')),
  );
});

test('a job name in pipeline.jobs that no job has is refused at start', async () => {
  const { isRemoraError } = await import('../src/core/errors.js');
  await assert.rejects(
    openTestPipeline({ settings: { jobs: { 'storage-meterin': { enabled: false } } } }),
    (e) =>
      isRemoraError(e, 'InvalidConfig') &&
      /pipeline\.jobs names no such job: storage-meterin/.test(e.message),
  );
});
