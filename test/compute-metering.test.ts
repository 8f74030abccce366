/**
 * Compute metering (docs/metering-compute.md): the reader on hand-written records (the §9.2
 * example, the quirks of the original and Remora's decisions, bad input), then the hourly job
 * through the executor on real PostgreSQL over SYNTHETIC agent logs (`workload --compute`'s
 * generator), compared with a ground truth computed here from the raw meter records; a rerun
 * of the day's hours writes byte-identical files; too many malformed lines make an hour invalid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReportBuilder } from '../src/core/run-report.js';
import { dayOf } from '../src/core/days.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { driveDays, rerun, scheduleDay } from '../src/pipeline/operations.js';
import { latestRunsBetween } from '../src/pipeline/operations.js';
import { AgentLogReader } from '../src/jobs/compute-metering/compute-metering.reader.js';
import {
  agentLogPrefix,
  jobsRecord,
  operatorLatestPath,
  operatorReportPath,
  userReportPath,
  type PhaseMap,
} from '../src/jobs/compute-metering/compute-metering.rules.js';
import { computeMeteringJob } from '../src/jobs/compute-metering/compute-metering.job.js';
import { putLatest } from '../src/jobs/usage-delivery/usage-delivery.js';
import { generateComputeMeterLogs, writeComputeWorkload } from '../src/workload/compute-meter.js';
import { openTestPipeline } from './helpers/pipeline.js';

const HOUR = { start: Date.parse('2014-03-04T17:00:00Z'), end: Date.parse('2014-03-04T18:00:00Z') };
const OWNER = 'fce1674a-6b89-4070-aa16-ea0a09007745';
const JOB = 'c7c1782e-3929-4417-a24a-ab7ee8815fc1';

/** A meter record like §9.2's, with only the fields that matter here. */
function rec(o: {
  event?: string;
  task?: string;
  phase?: number | null;
  cumul: [number, number];
  delta?: [number, number];
  inB?: number;
  outB?: number;
  dIn?: number;
  dOut?: number;
  physcap?: number;
  disk?: number;
  time?: string;
}): string {
  const m = (t: [number, number], i: number, out: number, disk?: number) => ({
    hrtimestamp: t,
    memory: { snaptime: 1, data: { rss: 1, physcap: o.physcap ?? 2147483648 } },
    vnic0: { snaptime: 1, data: { ierrors: 0, rbytes64: i, obytes64: out } },
    ...(disk === undefined ? {} : { config_disk: disk }),
  });
  return JSON.stringify({
    name: 'MarlinAgent',
    hostname: 'RA10146',
    pid: 5123,
    level: 30,
    hrtimestamp: [2594811, 123456789],
    metricsCumul: m(o.cumul, o.inB ?? 0, o.outB ?? 0, o.disk ?? 16),
    ...(o.delta ? { metricsDelta: m(o.delta, o.dIn ?? 0, o.dOut ?? 0) } : {}),
    jobId: JOB,
    owner: OWNER,
    ...(o.phase === null ? {} : { phase: o.phase ?? 1 }),
    taskId: o.task ?? '5e214f3d-4027-4dd3-bd90-9c08c637ac56',
    event: o.event ?? 'TaskDone',
    computeAudit: true,
    serverUuid: '44454c4c-3200-1042-804b-c2c04f575231',
    mantaComputeId: '1.cn.us-east.joyent.us',
    msg: '',
    time: o.time ?? '2014-03-04T17:04:12.345Z',
    v: 0,
  });
}

/** The §9.2 pair: a first checkpoint (cumulative only) and the TaskDone with a delta. */
const CHECKPOINT = rec({
  event: 'TaskCheckpoint',
  cumul: [287, 412000000],
  inB: 42045952,
  outB: 1027072,
  time: '2014-03-04T17:00:00.000Z',
});
const DONE = rec({
  cumul: [412, 734000001],
  delta: [125, 322000001],
  inB: 52531712,
  outB: 1289216,
  dIn: 10485760,
  dOut: 262144,
});

function read(lines: string[]) {
  const report = new ReportBuilder();
  const reader = new AgentLogReader(report, '/test.log', HOUR);
  for (const l of lines) reader.line(l);
  const phases: PhaseMap = new Map();
  reader.addTo(phases);
  return {
    jobs: Object.fromEntries([...phases].map(([o, j]) => [o, jobsRecord(j)])),
    report: report.finish(),
  };
}

test('reader: the §9.2 task in one log; disk kept although the last record had a delta (the original lost it)', () => {
  const { jobs, report } = read([CHECKPOINT, DONE]);
  assert.deepEqual(jobs, {
    [OWNER]: {
      [JOB]: {
        '1': {
          memory: '2048',
          disk: '16',
          seconds: '413',
          ntasks: '1',
          bandwidth: { in: '52531712', out: '1289216' },
        },
      },
    },
  });
  assert.equal(report.verdict, 'ok');
  assert.equal(report.counters.meterRecords, 2);
});

test('reader: the §9.2 task split over two hours: 287 s then 125 s, ntasks 1 in each, disk in both', () => {
  const h1 = read([CHECKPOINT]).jobs[OWNER]![JOB]!['1']!;
  const h2 = read([DONE]).jobs[OWNER]![JOB]!['1']!;
  assert.deepEqual([h1.seconds, h1.ntasks, h1.disk, h1.bandwidth.in], ['287', '1', '16', '42045952']);
  assert.deepEqual([h2.seconds, h2.ntasks, h2.disk, h2.bandwidth.in], ['125', '1', '16', '10485760']);
});

test('reader: the 1 s minimum applies per task, half-up rounding per task (the original: per phase per log)', () => {
  const cases: { name: string; tasks: [number, number][]; seconds: string }[] = [
    {
      name: 'three tasks of 0.2 s: 3 s (the original billed 1)',
      tasks: [
        [0, 2e8],
        [0, 2e8],
        [0, 2e8],
      ],
      seconds: '3',
    },
    { name: 'a task of 0 s is billed 1 s', tasks: [[0, 0]], seconds: '1' },
    { name: '1.5 s rounds up to 2', tasks: [[1, 5e8]], seconds: '2' },
    { name: '2.499999999 s rounds down to 2', tasks: [[2, 499999999]], seconds: '2' },
    {
      name: 'two tasks of 1.4 s: 1 + 1 (not round(2.8) = 3)',
      tasks: [
        [1, 4e8],
        [1, 4e8],
      ],
      seconds: '2',
    },
  ];
  for (const c of cases) {
    const lines = c.tasks.map((t, i) => rec({ task: `task-${i}`, cumul: t }));
    const p = read(lines).jobs[OWNER]![JOB]!['1']!;
    assert.equal(p.seconds, c.seconds, c.name);
    assert.equal(p.ntasks, String(c.tasks.length), c.name);
  }
});

test('reader: lines that are not meter records, bad records and a phase with no index', () => {
  const { jobs, report } = read([
    '[ Mar  4 17:00:00 Executing start method ("/opt/smartdc/marlin/agent/sbin/agent") ]',
    '',
    '{"name":"MarlinAgent","level":30,"msg":"agent status","time":"2014-03-04T17:00:01.000Z","v":0}',
    '{"name":"MarlinAgent", "computeAudit": true, "event": "TaskDone", truncated',
    JSON.stringify({ computeAudit: true, event: 'AgentStart', time: '2014-03-04T17:00:00.000Z' }),
    JSON.stringify({
      computeAudit: true,
      event: 'TaskStart',
      owner: OWNER,
      jobId: JOB,
      taskId: 'x',
      phase: 0,
    }),
    JSON.stringify({
      computeAudit: true,
      event: 'TaskDone',
      owner: OWNER,
      jobId: JOB,
      taskId: 'y',
      phase: 0,
    }),
    rec({ task: 'no-phase', phase: null, cumul: [3, 0], time: '2014-03-04T19:00:00.000Z' }),
  ]);
  assert.deepEqual(Object.keys(jobs[OWNER]![JOB]!), ['-']);
  const c = report.counters;
  assert.deepEqual(
    [
      c.recordsScanned,
      c.nonJsonLines,
      c.otherLogRecords,
      c.malformed,
      c.meterRecords,
      c.agentRestarts,
      c.otherMeterRecords,
      c.processed,
      c.recordsOutsideHour,
    ],
    [8, 2, 1, 2, 4, 1, 1, 1, 1],
  );
  assert.equal(report.events['error:malformed-line']?.count, 1);
  assert.match(
    JSON.stringify(report.events['error:bad-meter-record']?.examples),
    /no metricsDelta or metricsCumul/,
  );
  assert.equal(report.verdict, 'degraded');
});

test('reader: tasks of one phase that disagree on memory: the larger, and a warning', () => {
  const { jobs, report } = read([
    rec({ task: 'a', cumul: [5, 0], physcap: 1024 * 1048576 }),
    rec({ task: 'b', cumul: [5, 0], physcap: 4096 * 1048576 }),
  ]);
  assert.equal(jobs[OWNER]![JOB]!['1']!.memory, '4096');
  assert.equal(report.events['warning:phase-resources-disagree']?.count, 1);
});

test('putLatest: a rerun of an older period does not move latest back', async () => {
  const tp = await openTestPipeline({ jobs: [] });
  try {
    assert.equal(await putLatest(tp.store, '/x/latest', 'h05\n', '2024-05-01T05'), true);
    assert.equal(await putLatest(tp.store, '/x/latest', 'h03\n', '2024-05-01T03'), false);
    assert.equal(await readObjectText(tp.store, '/x/latest'), 'h05\n');
    assert.equal(await putLatest(tp.store, '/x/latest', 'h05b\n', '2024-05-01T05'), true);
    assert.equal(await readObjectText(tp.store, '/x/latest'), 'h05b\n');
  } finally {
    await tp.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Ground truth: an independent reading of the raw meter records (no Remora code).

interface RawMetrics {
  hrtimestamp: [number, number];
  memory: { data: { physcap: number } };
  vnic0: { data: { rbytes64: number; obytes64: number } };
  config_disk?: number;
}
interface RawRecord {
  computeAudit?: boolean;
  event?: string;
  owner: string;
  jobId: string;
  taskId: string;
  phase: number;
  metricsCumul: RawMetrics;
  metricsDelta?: RawMetrics;
}

type Truth = Record<string, Record<string, Record<string, Record<string, unknown>>>>;

function groundTruth(logs: { path: string; lines: string[] }[], hourPrefix: string): Truth {
  const tasks = new Map<
    string,
    {
      owner: string;
      job: string;
      phase: string;
      ns: bigint;
      in: bigint;
      out: bigint;
      mem: number;
      disk: number;
    }
  >();
  for (const log of logs.filter((l) => l.path.startsWith(hourPrefix))) {
    for (const line of log.lines) {
      if (line[0] !== '{') continue;
      let r: RawRecord;
      try {
        r = JSON.parse(line) as RawRecord;
      } catch {
        continue;
      }
      if (r.computeAudit !== true || (r.event !== 'TaskCheckpoint' && r.event !== 'TaskDone')) continue;
      const m = r.metricsDelta ?? r.metricsCumul;
      const key = `${log.path}|${r.owner}|${r.jobId}|${r.taskId}|${r.phase}`;
      const t = tasks.get(key) ?? {
        owner: r.owner,
        job: r.jobId,
        phase: String(r.phase),
        ns: 0n,
        in: 0n,
        out: 0n,
        mem: 0,
        disk: 0,
      };
      t.ns += BigInt(m.hrtimestamp[0]) * 1_000_000_000n + BigInt(m.hrtimestamp[1]);
      t.in += BigInt(m.vnic0.data.rbytes64);
      t.out += BigInt(m.vnic0.data.obytes64);
      t.mem = m.memory.data.physcap / 1048576;
      t.disk = r.metricsCumul.config_disk!;
      tasks.set(key, t);
    }
  }
  const out: Truth = {};
  for (const t of tasks.values()) {
    const p = (((out[t.owner] ??= {})[t.job] ??= {})[t.phase] ??= {
      memory: t.mem,
      disk: t.disk,
      seconds: 0n,
      ntasks: 0n,
      in: 0n,
      out: 0n,
    });
    const whole = t.ns / 1_000_000_000n + (t.ns % 1_000_000_000n >= 500_000_000n ? 1n : 0n);
    p.seconds = (p.seconds as bigint) + (whole < 1n ? 1n : whole);
    p.ntasks = (p.ntasks as bigint) + 1n;
    p.in = (p.in as bigint) + t.in;
    p.out = (p.out as bigint) + t.out;
  }
  for (const jobs of Object.values(out))
    for (const phases of Object.values(jobs))
      for (const [k, p] of Object.entries(phases))
        phases[k] = {
          memory: String(p.memory),
          disk: String(p.disk),
          seconds: String(p.seconds),
          ntasks: String(p.ntasks),
          bandwidth: { in: String(p.in), out: String(p.out) },
        };
  return out;
}

const DAY = '2024-05-01';
const FROM = Date.parse(`${DAY}T10:00:00Z`);

test('the hourly job equals the ground truth from the raw records; a rerun is byte-identical; hours with no logs write nothing', async () => {
  const tp = await openTestPipeline({
    jobs: [computeMeteringJob({ settleMinutes: 15, objectsPerTask: 2, reportRetentionDays: 90 })],
  });
  try {
    const tier = tp.rt.services.tier;
    const now = Date.now();
    const alice = (await createAccount(tier, { login: 'alice' }, now)).account;
    const bob = (await createAccount(tier, { login: 'bob', reports: false }, now)).account;
    const ghost = '00000000-0000-4000-8000-00000000dead'; // an owner with no account
    const spec = {
      seed: 11,
      owners: [alice.uuid, bob.uuid, ghost],
      from: FROM,
      hours: 3,
      jobs: 12,
      nodes: 3,
    };
    const logs = generateComputeMeterLogs(spec);
    const written = await writeComputeWorkload(tp.store, spec);
    assert.deepEqual(
      written.logs,
      logs.map((l) => l.path),
    );

    // The generator's promises: a task in two hours, checkpoints 5 minutes apart, sub-second tasks.
    const hoursOfTask = new Map<string, Set<string>>();
    for (const l of logs)
      for (const line of l.lines) {
        const m = /"taskId":"([^"]+)","event":"Task(?:Checkpoint|Done)"/.exec(line);
        if (m)
          (hoursOfTask.get(m[1]!) ?? hoursOfTask.set(m[1]!, new Set()).get(m[1]!)!).add(l.path.slice(0, -12));
      }
    assert.ok(
      [...hoursOfTask.values()].some((h) => h.size >= 2),
      'a task spans two hours',
    );

    await scheduleDay(tp.rt, DAY, 'test');
    await tp.startWorker();
    const runs = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 120_000 });
    assert.equal(runs.length, 24);
    assert.ok(
      runs.every((r) => r.state === 'succeeded' && r.verdict !== 'invalid'),
      JSON.stringify(runs.map((r) => [r.partitionKey, r.state, r.verdict])),
    );

    const files = new Map<string, string>();
    for (let h = 0; h < 24; h++) {
      if (h < 10 || h > 12) {
        assert.equal(
          await tp.store.head(operatorReportPath(DAY, h)),
          undefined,
          `hour ${h}: no logs, no file`,
        );
        const run = runs.find((r) => r.partitionKey === `${DAY}T${String(h).padStart(2, '0')}`)!;
        assert.equal(run.report!.events['info:no-agent-logs']?.count, 1);
        continue;
      }
      const body = await readObjectText(tp.store, operatorReportPath(DAY, h));
      files.set(operatorReportPath(DAY, h), body);
      const got = Object.fromEntries(
        body
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { owner: string; jobs: unknown })
          .map((r) => [r.owner, r.jobs]),
      );
      const truth = groundTruth(logs, agentLogPrefix(DAY, h));
      assert.deepEqual(got, truth, `hour ${h}`);
      assert.ok(body.length > 0, `hour ${h} has usage`);
    }
    // Account copies: alice (reports on) gets hers, without owner, with the date; bob (off) none.
    for (let h = 10; h <= 12; h++) {
      const truth = groundTruth(logs, agentLogPrefix(DAY, h));
      const path = userReportPath('alice', DAY, h);
      if (truth[alice.uuid]) {
        const body = await readObjectText(tp.store, path);
        files.set(path, body);
        assert.deepEqual(JSON.parse(body), { jobs: truth[alice.uuid], date: `${DAY}T${h}:00:00.000Z` });
      }
      assert.equal(await tp.store.head(userReportPath('bob', DAY, h)), undefined);
    }
    const hour11 = runs.find((r) => r.partitionKey === `${DAY}T11`)!;
    assert.ok(
      hour11.report!.events['warning:unknown-owner'] || !groundTruth(logs, agentLogPrefix(DAY, 11))[ghost],
    );
    assert.equal(hour11.report!.counters.agentLogs, 3);
    assert.equal(
      await readObjectText(tp.store, operatorLatestPath()),
      files.get(operatorReportPath(DAY, 12)),
      'latest is the newest metered hour',
    );

    // Rerun every hour: the same files, byte for byte.
    await rerun(tp.rt, 'compute-metering', DAY, { downstream: false, dryRun: false });
    const again = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 120_000 });
    assert.ok(again.every((r) => r.seq === 2 && r.state === 'succeeded'));
    for (const [path, body] of files) assert.equal(await readObjectText(tp.store, path), body, path);
  } finally {
    await tp.close();
  }
});

test('an hour whose agent logs are more than 1% malformed lines is invalid; other hours are not affected', async () => {
  const tp = await openTestPipeline({
    jobs: [computeMeteringJob({ settleMinutes: 0, objectsPerTask: 32, reportRetentionDays: 90 })],
  });
  try {
    const good = Array.from({ length: 200 }, (_, i) =>
      rec({ task: `t${i}`, cumul: [i, 0], time: `${DAY}T20:10:00.000Z` }),
    );
    const bad = [...good, ...Array.from({ length: 5 }, () => '{"computeAudit": true, "event": "TaskDo')];
    await tp.store.put(`${agentLogPrefix(DAY, 20)}RA1.log`, `${bad.join('\n')}\n`);
    await tp.store.put(`${agentLogPrefix(DAY, 21)}RA1.log`, `${good.join('\n')}\n`);
    await scheduleDay(tp.rt, DAY, 'test');
    await tp.startWorker();
    await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 120_000 });
    const runs = await latestRunsBetween(tp.rt, DAY, DAY);
    const h20 = runs.find((r) => r.partitionKey === `${DAY}T20`)!;
    const h21 = runs.find((r) => r.partitionKey === `${DAY}T21`)!;
    assert.equal(h20.state, 'invalid');
    assert.equal(h20.report!.counters.malformed, 5);
    assert.equal(h20.report!.events['error:malformed-line']?.examples.length, 5);
    assert.equal(
      await tp.store.head(operatorReportPath(DAY, 20)),
      undefined,
      'an invalid hour publishes nothing',
    );
    assert.equal(h21.state, 'succeeded');
    assert.equal(
      (
        JSON.parse(await readObjectText(tp.store, operatorReportPath(DAY, 21))) as {
          jobs: Record<string, Record<string, { ntasks: string }>>;
        }
      ).jobs[JOB]!['1']!.ntasks,
      '200',
    );
  } finally {
    await tp.close();
  }
});

test('today: driveDays runs the hours that are due and does not wait for the hours still to come', async () => {
  const tp = await openTestPipeline({
    jobs: [computeMeteringJob({ settleMinutes: 15, objectsPerTask: 32, reportRetentionDays: 90 })],
  });
  try {
    const today = dayOf(Date.now());
    const dueHours = (at: number) =>
      Array.from({ length: 24 }, (_, h) => h).filter(
        (h) => Date.parse(`${today}T00:00:00Z`) + (h + 1) * 3_600_000 + 15 * 60_000 <= at,
      ).length;
    await scheduleDay(tp.rt, today, 'test');
    await tp.startWorker();
    const before = dueHours(Date.now());
    const runs = await driveDays(tp.rt, tp.coordinator, [today], { timeoutMs: 60_000 });
    const after = dueHours(Date.now());
    assert.ok(runs.length >= before && runs.length <= after, `${runs.length} runs, ${before}..${after} due`);
    assert.ok(runs.every((r) => r.state === 'succeeded'));
    const all = await latestRunsBetween(tp.rt, today, today);
    assert.equal(all.length, 24);
    assert.equal(all.filter((r) => r.state === 'waiting').length, 24 - runs.length);
  } finally {
    await tp.close();
  }
});
