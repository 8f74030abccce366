/**
 * The daily usage summary (src/jobs/usage-summary/): the billing rules on hand values, then the
 * job through the executor on real PostgreSQL after the day's 24 request-metering hours (the
 * real job, over audit lines written as muskie did), 24 compute-metering hours (the real job,
 * over `workload --compute`'s synthetic agent logs) and a storage report (a stand-in job
 * publishing a storage file of the original's shape: snapshot → unpack → storage metering is
 * covered by test/pipeline-metering.test.ts, and the whole chain by test/demo.test.ts).
 * The ground truth is computed here, independently, from the stored hourly and daily operator
 * files; a rerun is byte-identical; an invalid hour keeps the summary waiting and, past its
 * deadline, it runs degraded naming the hour.
 */
import { test } from 'node:test';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config/config.js';
import { pipelineSettings, reportRetentionFor } from '../src/pipeline/settings.js';
import { testConfig } from './helpers/pg.js';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/core/clock.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { MUSKIE_LOG_ROOT } from '../src/frontdoor/audit-log.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { driveDays, latestRunsBetween, rerun, scheduleDay } from '../src/pipeline/operations.js';
import { checkLateInputs } from '../src/pipeline/late-inputs.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import { computeMeteringJob } from '../src/jobs/compute-metering/compute-metering.job.js';
import { operatorReportPath as computePath } from '../src/jobs/compute-metering/compute-metering.rules.js';
import { requestMeteringJob } from '../src/jobs/request-metering/request-metering.job.js';
import { operatorReportPath as requestPath } from '../src/jobs/request-metering/request-metering.rules.js';
import { operatorReportPath as storagePath } from '../src/jobs/storage-metering/storage-metering.rules.js';
import { summaryOptionsFrom, usageSummaryJob } from '../src/jobs/usage-summary/usage-summary.job.js';
import {
  billingTier,
  DAILY_TEXT_LATEST,
  operatorSummaryPath,
  operatorTextPath,
  phaseGBSeconds,
  storageGBHours,
  userSummaryPath,
} from '../src/jobs/usage-summary/usage-summary.rules.js';
import { writeComputeWorkload } from '../src/workload/compute-meter.js';
import { openTestPipeline, type TestPipeline } from './helpers/pipeline.js';

const DAY = '2024-05-06';
const OPS = ['DELETE', 'GET', 'HEAD', 'LIST', 'OPTIONS', 'POST', 'PUT'] as const;

test('billing rules: the first covering tier, unknown levels as 0, beyond the table the largest; GB-hours rounded up', () => {
  assert.deepEqual(billingTier(1024, 32), { memory: 1024, beyond: false });
  assert.deepEqual(billingTier(1025, 1), { memory: 2048, beyond: false });
  assert.deepEqual(billingTier(512, 100), { memory: 4096, beyond: false }, 'disk picks the tier too');
  assert.deepEqual(billingTier(undefined, undefined), { memory: 1024, beyond: false });
  assert.deepEqual(billingTier(65536, 1), { memory: 32768, beyond: true });
  assert.equal(phaseGBSeconds(10n, 4096), 40n);
  assert.equal(storageGBHours(0n), 0n);
  assert.equal(storageGBHours(1n), 1n, 'one byte for a day is one (rounded up) GB-hour');
  assert.equal(storageGBHours(1n << 30n), 24n);
  assert.equal(storageGBHours((1n << 30n) + 1n), 25n);
});

/** A stand-in for storage-metering: publishes the storage file the test wrote (original shape). */
function storageStandIn(body: () => string): JobDefinition {
  return {
    name: 'storage-metering',
    description: 'test stand-in: publishes a storage report',
    partition: 'day',
    inputs: {},
    deadlineMs: 3_600_000,
    split: () => Promise.resolve([{ key: 'all' }]),
    runTask: (ctx) => Promise.resolve({ report: ctx.report.finish() }),
    commit: async (ctx) => {
      const path = `${ctx.runPrefix}h00.json`;
      await ctx.services.store.put(path, body());
      await ctx.services.store.put(storagePath(ctx.partition.day), body());
      return { output: { path, published: storagePath(ctx.partition.day), accounts: 3 } };
    },
  };
}

/** Deterministic pseudo-random numbers for the workload. */
function lcg(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % n;
  };
}

function auditLine(owner: string, op: (typeof OPS)[number], status: number, len: number): string {
  const method = op === 'LIST' ? 'GET' : op;
  return JSON.stringify({
    name: 'audit',
    audit: true,
    level: 30,
    billable_operation: op,
    reqHeaderLength: 100,
    resHeaderLength: 200,
    req: {
      method,
      url: `/x/stor/o${len}`,
      headers: method === 'PUT' ? { 'content-length': String(len) } : {},
      owner,
    },
    res: { statusCode: status, headers: method === 'GET' ? { 'content-length': String(len) } : {} },
  });
}

/** An operator file's line, as the test reads it. */
interface Line {
  owner: string;
  storage?: Record<string, { bytes: string }>;
  requests?: { type: Record<string, string>; bandwidth: { in: string; out: string } };
  jobs?: Record<string, Record<string, Phase>>;
}
interface Phase {
  memory?: string;
  disk?: string;
  seconds: string;
  bandwidth: { in: string; out: string };
}

interface Truth {
  storageGBHours: bigint;
  in: bigint;
  out: bigint;
  requests: Record<string, bigint>;
  gbs: bigint;
  cin: bigint;
  cout: bigint;
}

/** The summary from the stored operator files, by the §3.6 rules, written out again here. */
async function groundTruth(tp: TestPipeline): Promise<Map<string, Truth>> {
  const t = new Map<string, Truth>();
  const of = (o: string) =>
    t.get(o) ??
    t
      .set(o, {
        storageGBHours: 0n,
        in: 0n,
        out: 0n,
        requests: Object.fromEntries(OPS.map((op) => [op, 0n])),
        gbs: 0n,
        cin: 0n,
        cout: 0n,
      })
      .get(o)!;
  const lines = async (p: string) =>
    (await tp.store.head(p))
      ? (await readObjectText(tp.store, p))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Line)
      : [];
  for (const l of await lines(storagePath(DAY))) {
    let bytes = 0n;
    for (const ns of Object.values(l.storage!)) bytes += BigInt(ns.bytes);
    of(l.owner).storageGBHours = (bytes * 24n + (1n << 30n) - 1n) / (1n << 30n);
  }
  const tiers = [1024, 2048, 4096, 8192, 16384, 32768];
  const disks = [32, 64, 128, 256, 512, 1024];
  for (let h = 0; h < 24; h++) {
    for (const l of await lines(requestPath(`${DAY}T${String(h).padStart(2, '0')}`))) {
      const r = l.requests!;
      const u = of(l.owner);
      for (const op of OPS) u.requests[op]! += BigInt(r.type[op]!);
      u.in += BigInt(r.bandwidth.in);
      u.out += BigInt(r.bandwidth.out);
    }
    for (const l of await lines(computePath(DAY, h))) {
      const u = of(l.owner);
      for (const phases of Object.values(l.jobs!))
        for (const p of Object.values(phases)) {
          const mem = Number(p.memory ?? 0);
          const disk = Number(p.disk ?? 0);
          const i = tiers.findIndex((m, k) => m >= mem && disks[k]! >= disk);
          const tier = tiers[i === -1 ? tiers.length - 1 : i]!;
          u.gbs += (BigInt(p.seconds) * BigInt(tier)) / 1024n;
          u.cin += BigInt(p.bandwidth.in);
          u.cout += BigInt(p.bandwidth.out);
        }
    }
  }
  return t;
}

test('the day summary equals a ground truth from the stored reports; accounts get theirs; a rerun is byte-identical; an invalid hour waits, then degrades', async () => {
  let storage = '';
  const tp = await openTestPipeline({
    jobs: [
      storageStandIn(() => storage),
      requestMeteringJob({ malformedLimit: '10', reportRetentionDays: 90 }),
      computeMeteringJob({ settleMinutes: 15, objectsPerTask: 4, reportRetentionDays: 90 }),
      usageSummaryJob({ settleMinutes: 30, reportRetentionDays: 90 }),
    ],
  });
  const clock = new ManualClock(Date.parse(`${DAY}T12:00:00Z`));
  tp.rt.services.clock = clock;
  try {
    const tier = tp.rt.services.tier;
    const alice = (await createAccount(tier, { login: 'alice' }, clock.now())).account;
    const bob = (await createAccount(tier, { login: 'bob', reports: false }, clock.now())).account;
    const ghost = '00000000-0000-4000-8000-00000000dead';
    const owners = [alice.uuid, bob.uuid, ghost];
    const ns = (b: bigint) => ({ directories: '1', keys: '2', objects: '2', bytes: b.toString() });
    storage = [
      {
        owner: alice.uuid,
        storage: { stor: ns(3n << 30n), public: ns(12345n), jobs: ns(0n), reports: ns(0n) },
      },
      { owner: bob.uuid, storage: { stor: ns(77n), public: ns(0n), jobs: ns(0n), reports: ns(0n) } },
    ]
      .map((l) => JSON.stringify(l))
      .join('\n')
      .concat('\n');
    const rnd = lcg(7);
    for (const h of [1, 5, 6, 13, 23]) {
      const lines = Array.from({ length: 60 }, () =>
        auditLine(owners[rnd(3)]!, OPS[rnd(7)]!, [200, 201, 204, 404, 500][rnd(5)]!, rnd(100_000)),
      );
      await tp.store.put(
        `${MUSKIE_LOG_ROOT}/2024/05/06/${String(h).padStart(2, '0')}/fd-a.log`,
        `${lines.join('\n')}\n`,
      );
    }
    await writeComputeWorkload(tp.store, {
      seed: 3,
      owners,
      from: Date.parse(`${DAY}T09:00:00Z`),
      hours: 3,
      jobs: 8,
      nodes: 2,
    });

    // Today: the summary is not due, and driving the day does not wait for it.
    await scheduleDay(tp.rt, DAY, 'test');
    await tp.startWorker();
    const midday = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 60_000 });
    assert.ok(!midday.some((r) => r.job === 'usage-summary'), 'a summary of today is not waited for');
    assert.equal(await tp.store.head(operatorSummaryPath(DAY)), undefined);

    clock.set(Date.parse('2024-05-07T01:00:00Z'));
    const runs = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 120_000 });
    assert.equal(runs.length, 1 + 24 + 24 + 1);
    assert.ok(
      runs.every((r) => r.state === 'succeeded'),
      JSON.stringify(
        runs.filter((r) => r.state !== 'succeeded').map((r) => [r.job, r.partitionKey, r.state]),
      ),
    );
    const summaryRun = runs.find((r) => r.job === 'usage-summary')!;
    // Degraded only by the owner with no account (as the metering runs are); nothing missing.
    assert.deepEqual(summaryRun.report!.verdictReasons, ['warning event unknown-owner (1)']);
    assert.equal(summaryRun.report!.events['warning:missing-input'], undefined);

    const truth = await groundTruth(tp);
    assert.ok([...truth.values()].some((u) => u.gbs > 0n) && [...truth.values()].some((u) => u.in > 0n));
    const body = await readObjectText(tp.store, operatorSummaryPath(DAY));
    const got = body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    assert.deepEqual(
      got.map((l) => l.owner),
      [...truth.keys()].sort(),
    );
    for (const l of got) {
      const u = truth.get(l.owner)!;
      assert.deepEqual(
        l,
        {
          owner: l.owner,
          storageGBHours: u.storageGBHours.toString(),
          bandwidthBytes: { in: u.in.toString(), out: u.out.toString() },
          requests: Object.fromEntries(OPS.map((op) => [op, u.requests[op]!.toString()])),
          computeGBSeconds: u.gbs.toString(),
          computeBandwidthBytes: { in: u.cin.toString(), out: u.cout.toString() },
          date: `${DAY}T00:00:00.000Z`,
        },
        l.owner,
      );
    }
    assert.equal(truth.get(alice.uuid)!.storageGBHours, 73n, '3 GiB + 12345 B for 24 h, rounded up');

    // Alice (reports on) gets hers without owner, and latest; bob (off) none; the ghost is a warning.
    const mine = JSON.parse(await readObjectText(tp.store, userSummaryPath('alice', DAY))) as Record<
      string,
      unknown
    >;
    const { owner: _o, ...expected } = got.find((l) => l.owner === alice.uuid)!;
    assert.deepEqual(mine, expected);
    assert.equal(
      await readObjectText(tp.store, '/alice/reports/usage/summary/latest'),
      await readObjectText(tp.store, userSummaryPath('alice', DAY)),
    );
    assert.equal(await tp.store.head(userSummaryPath('bob', DAY)), undefined);
    assert.equal(summaryRun.report!.events['warning:unknown-owner']?.count, 1);
    const text = await readObjectText(tp.store, operatorTextPath(DAY));
    assert.match(text, /^usage summary 2024-05-06\n/);
    assert.match(text, new RegExp(`\\nalice +73 `));
    assert.equal(await readObjectText(tp.store, DAILY_TEXT_LATEST), text);

    // A rerun of the summary: byte-identical files.
    const files = [operatorSummaryPath(DAY), operatorTextPath(DAY), userSummaryPath('alice', DAY)];
    const before = await Promise.all(files.map((f) => readObjectText(tp.store, f)));
    await rerun(tp.rt, 'usage-summary', DAY, { downstream: false, dryRun: false });
    const again = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 60_000 });
    assert.equal(again.find((r) => r.job === 'usage-summary')!.seq, 2);
    assert.deepEqual(await Promise.all(files.map((f) => readObjectText(tp.store, f))), before);

    // Hour 13 becomes invalid (its log is rewritten with too many malformed lines) and is rerun
    // with everything downstream: the summary waits for it instead of inventing it…
    await tp.store.put(
      `${MUSKIE_LOG_ROOT}/2024/05/06/13/fd-a.log`,
      `${auditLine(alice.uuid, 'GET', 200, 5)}\n${Array<string>(11).fill('{"cut":').join('\n')}\n`,
    );
    await rerun(tp.rt, 'request-metering', DAY, { downstream: true, dryRun: false });
    const waiting = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 4_000 });
    assert.equal(
      waiting.find((r) => r.partitionKey === `${DAY}T13` && r.job === 'request-metering')!.state,
      'invalid',
    );
    const s3 = waiting.find((r) => r.job === 'usage-summary')!;
    assert.equal(s3.state, 'waiting', 'an invalid hour does not block the summary: it waits');
    const runsNow = await latestRunsBetween(tp.rt, DAY, DAY);
    assert.match(
      runsNow.find((r) => r.id === s3.id)!.waitingOn ?? '',
      /request-metering 2024-05-06T13 \(run \d+ invalid\)/,
    );
    assert.deepEqual(
      await readObjectText(tp.store, operatorSummaryPath(DAY)),
      before[0],
      'nothing published meanwhile',
    );

    // …and past its deadline runs degraded, naming the hour in the report and in the file.
    clock.advance(31 * 3_600_000);
    const late = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 60_000 });
    const s4 = late.find((r) => r.job === 'usage-summary')!;
    assert.deepEqual([s4.state, s4.verdict], ['succeeded', 'degraded']);
    assert.deepEqual(s4.report!.events['warning:missing-input']?.examples[0], {
      missing: 1,
      inputs: [`request-metering ${DAY}T13`],
    });
    const degraded = (await readObjectText(tp.store, operatorSummaryPath(DAY)))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { owner: string; missing?: string[]; requests: Record<string, string> });
    assert.ok(degraded.every((l) => l.missing?.join() === `request-metering ${DAY}T13`));
    assert.match(
      await readObjectText(tp.store, operatorTextPath(DAY)),
      /INCOMPLETE: missing request-metering 2024-05-06T13/,
    );
    // The hour's requests are not in it: the totals are those of the other hours only.
    const truth2 = await groundTruth(tp); // hour 13's published file is still the earlier run's
    const h13 = (await readObjectText(tp.store, requestPath(`${DAY}T13`))).trim().split('\n');
    const getsIn13 = new Map(
      h13.map((l) => {
        const r = JSON.parse(l) as { owner: string; requests: { type: Record<string, string> } };
        return [r.owner, BigInt(r.requests.type.GET!)];
      }),
    );
    for (const l of degraded)
      assert.equal(
        BigInt(l.requests.GET!),
        truth2.get(l.owner)!.requests.GET! - (getsIn13.get(l.owner) ?? 0n),
        l.owner,
      );

    // While hour 13 stays invalid, the degraded summary is not rerun (its older pointer is no news).
    assert.ok(!(await checkLateInputs(tp.rt)).some((r) => r.job === 'usage-summary'));

    // Hour 13 fixed (its log replaced by a good one) and rerun: the late-input check sees the
    // new commit and reruns the summary, complete again, with an alert.
    await tp.store.put(
      `${MUSKIE_LOG_ROOT}/2024/05/06/13/fd-a.log`,
      `${auditLine(alice.uuid, 'GET', 200, 5)}\n`,
    );
    await rerun(tp.rt, 'request-metering', DAY, { downstream: false, dryRun: false });
    await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 60_000 });
    const reruns = await checkLateInputs(tp.rt);
    assert.deepEqual(
      reruns.map((l) => [l.job, l.partitionKey]),
      [['usage-summary', DAY]],
    );
    const fixed = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 60_000 });
    const s5 = fixed.find((r) => r.job === 'usage-summary')!;
    assert.equal(s5.trigger, 'late-input');
    assert.equal(s5.report!.events['warning:missing-input'], undefined);
    assert.doesNotMatch(await readObjectText(tp.store, operatorSummaryPath(DAY)), /missing/);
  } finally {
    await tp.close();
  }
});

test('retention per report kind: pipeline.jobs.<job>.reportRetentionDays (default 90), every account pruned by the delivering run, counted', async () => {
  const base = testConfig();
  const write = (c: unknown) => fs.writeFileSync(path.join(base.stateDir, 'config.json'), JSON.stringify(c));
  write({ pipeline: { jobs: { gc: { reportRetentionDays: 0 } } } });
  assert.throws(() => loadConfig({}, { stateDir: base.stateDir }), /reportRetentionDays/);
  write({
    pipeline: {
      reportRetentionDays: 30,
      jobs: { 'usage-summary': { reportRetentionDays: 2 }, 'access-logs': { reportRetentionDays: 7 } },
    },
  });
  const loaded = loadConfig({}, { stateDir: base.stateDir });
  const settings = pipelineSettings(loaded);
  assert.deepEqual(
    ['usage-summary', 'access-logs', 'storage-metering', 'request-metering', 'compute-metering'].map((j) =>
      reportRetentionFor(settings, j),
    ),
    [2, 7, 30, 30, 30],
  );
  assert.equal(reportRetentionFor(pipelineSettings(testConfig()), 'usage-summary'), 90, 'the default');
  assert.equal(summaryOptionsFrom(settings).reportRetentionDays, 2);

  const tp = await openTestPipeline({
    jobs: [
      storageStandIn(() => ''),
      requestMeteringJob({ malformedLimit: '10', reportRetentionDays: 90 }),
      computeMeteringJob({ settleMinutes: 15, objectsPerTask: 4, reportRetentionDays: 90 }),
      usageSummaryJob(summaryOptionsFrom(settings)),
    ],
  });
  tp.rt.services.clock = new ManualClock(Date.parse('2024-05-07T02:00:00Z'));
  try {
    const tier = tp.rt.services.tier;
    const alice = (await createAccount(tier, { login: 'alice' }, 0)).account;
    await createAccount(tier, { login: 'bob', reports: false }, 0);
    // One request for alice, so the day has a line to deliver.
    await tp.store.put(
      `${MUSKIE_LOG_ROOT}/2024/05/06/03/fd-a.log`,
      `${auditLine(alice.uuid, 'GET', 200, 9)}\n`,
    );
    const old = [
      userSummaryPath('alice', '2024-05-01'),
      userSummaryPath('alice', '2024-05-03'),
      userSummaryPath('bob', '2024-05-02'), // reports off: pruned all the same
    ];
    const kept = [
      userSummaryPath('alice', '2024-05-04'), // DAY - 2: kept
      '/alice/reports/usage/summary/latest',
      '/alice/reports/usage/request/2024/05/01/00/h00.json', // another kind, its own retention
    ];
    for (const p of [...old, ...kept]) await tp.store.put(p, '{}\n');
    await scheduleDay(tp.rt, DAY, 'test');
    await tp.startWorker();
    const runs = await driveDays(tp.rt, tp.coordinator, [DAY], { timeoutMs: 120_000 });
    const s = runs.find((r) => r.job === 'usage-summary')!;
    assert.equal(s.state, 'succeeded');
    assert.equal(s.report!.counters.reportsPruned, 3);
    for (const p of old) assert.equal(await tp.store.head(p), undefined, p);
    for (const p of kept) assert.ok(await tp.store.head(p), p);
    assert.ok(await tp.store.head(userSummaryPath('alice', DAY)));
  } finally {
    await tp.close();
  }
});
