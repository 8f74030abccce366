/**
 * The tombstone purge: the pure plan as a table of cases, then the `tombstone-purge` job through
 * the executor on real loopback storage nodes and real PostgreSQL: one run per node per day; a
 * node holding old days gets them removed (files and bytes in its report), a node that does not
 * answer fails its own run with a retryable error while the others succeed, a node with no
 * address is a warning; a day that has not begun waits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ManualClock } from '../src/core/clock.js';
import { addDays, dayStartMs } from '../src/core/days.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { latestRuns } from '../src/pipeline/runs.repository.js';
import { attemptsOfRun } from '../src/pipeline/tasks.repository.js';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { planPurge } from '../src/jobs/tombstone-purge/tombstone-purge.plan.js';
import { purgeCutoff } from '../src/jobs/tombstone-purge/tombstone-purge.rules.js';
import { tombstonePurgeJob, tombstonePurgeOutput } from '../src/jobs/tombstone-purge/tombstone-purge.job.js';
import { openTestTier, testConfig } from './helpers/pg.js';
import { FAST } from './helpers/pipeline.js';
import { freePort } from './helpers/net.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

const u = (day: string, files = 1, bytes = 10) => ({ day, files, bytes });

test('plan: days up to run day − retention go, the rest stay; the next purge day is the oldest kept + retention', () => {
  const cases: {
    name: string;
    days: ReturnType<typeof u>[];
    run: string;
    retention: number;
    purge: string[];
    next?: string;
  }[] = [
    { name: 'nothing in tombstone', days: [], run: '2024-03-22', retention: 21, purge: [] },
    {
      name: 'exactly retention days old goes (kept for 21 runs: 03-01 … 03-21)',
      days: [u('2024-03-01'), u('2024-03-02')],
      run: '2024-03-22',
      retention: 21,
      purge: ['2024-03-01'],
      next: '2024-03-23',
    },
    {
      name: 'one day younger stays',
      days: [u('2024-03-02')],
      run: '2024-03-22',
      retention: 21,
      purge: [],
      next: '2024-03-23',
    },
    {
      name: 'gaps and unsorted input; across a month and a leap day',
      days: [u('2024-03-01'), u('2024-02-10'), u('2024-02-29'), u('2024-01-31')],
      run: '2024-03-21',
      retention: 21,
      purge: ['2024-01-31', '2024-02-10', '2024-02-29'],
      next: '2024-03-22',
    },
    {
      name: "retention 1: only the run day's own directory stays",
      days: [u('2024-03-21'), u('2024-03-22')],
      run: '2024-03-22',
      retention: 1,
      purge: ['2024-03-21'],
      next: '2024-03-23',
    },
    {
      name: 'a day after the run day (a node clock ahead) is never purged',
      days: [u('2024-03-25')],
      run: '2024-03-22',
      retention: 1,
      purge: [],
      next: '2024-03-26',
    },
  ];
  for (const c of cases) {
    const p = planPurge(c.days, c.run, c.retention);
    assert.deepEqual(
      p.purge.map((d) => d.day),
      c.purge,
      c.name,
    );
    assert.equal(p.keep.length + p.purge.length, c.days.length, c.name);
    assert.equal(p.nextPurgeDay, c.next, c.name);
    assert.equal(p.cutoff, addDays(c.run, -c.retention), c.name);
  }
  assert.throws(() => purgeCutoff('2024-03-22', 0), RangeError);
  assert.throws(() => purgeCutoff('2024-03-22', 1.5), RangeError);
});

test(
  'tombstone-purge through the executor: old days removed per node, a dead node fails only its own run',
  { timeout: 120_000 },
  async () => {
    const D = '2024-06-30';
    const base = testConfig();
    const [n1, n2] = await Promise.all(
      ['1', '2'].map(async (i) => {
        return StorageNode.start({
          root: path.join(base.stateDir, `node${i}`),
          id: `${i}.stor.dc${i}.remora.local`,
          datacenter: `dc${i}`,
          internalToken: TEST_INTERNAL_TOKEN,
        });
      }),
    );
    const deadUrl = `http://127.0.0.1:${await freePort()}`;
    const config = {
      ...base,
      storage: {
        ...base.storage,
        nodes: [
          { id: n1!.id, datacenter: 'dc1', url: n1!.url },
          { id: n2!.id, datacenter: 'dc2', url: n2!.url },
          { id: '3.stor.dc3.remora.local', datacenter: 'dc3', url: deadUrl },
          // Configured, but neither a url nor a heartbeat record: address unknown.
          { id: '4.stor.dc1.remora.local', datacenter: 'dc1' },
        ],
      },
    };
    const { tier, cleanup } = await openTestTier(config);
    const client = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN, timeoutMs: 5000 });
    try {
      // Node 1: tombstone days 5, 4, 3, 2 and 0 days before D; node 2: none.
      const owner = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
      let n = 0;
      for (const back of [5, 5, 4, 3, 2, 0]) {
        const oid = `c0000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
        await client.put(n1!.url, owner, oid, Buffer.alloc(100 * n, 1));
        assert.equal(await client.tombstone(n1!.url, owner, oid, addDays(D, -back)), 'moved');
      }
      const clock = new ManualClock(dayStartMs(D) + 3_600_000);
      const job = tombstonePurgeJob({ retentionDays: 3, maxAttempts: 2 });
      const runs = await withPipelineSession(
        config,
        tier,
        { jobs: () => [job], settings: FAST, clock, internalToken: TEST_INTERNAL_TOKEN, log: () => {} },
        async (rt, c) => {
          assert.equal((await scheduleDay(rt, D, 'test')).length, 4, 'one run per configured node');
          const done = await driveDays(rt, c, [D], { timeoutMs: 60_000 });
          // The next day has not begun on the injected clock: its runs wait for it.
          await scheduleDay(rt, addDays(D, 1), 'test');
          await c.tick();
          const next = await latestRuns(
            rt.control,
            'tombstone-purge',
            config.storage.nodes.map((x) => `${addDays(D, 1)}/node=${x.id}`),
          );
          assert.ok(
            next.every((r) => r.state === 'waiting' && /the day has begun/.test(r.waitingOn ?? '')),
            next.map((r) => `${r.state} ${r.waitingOn}`).join('\n'),
          );
          return done;
        },
      );
      const by = new Map(runs.map((r) => [r.partitionKey.slice(D.length + '/node='.length), r]));
      const r1 = by.get(n1!.id)!;
      assert.equal(r1.state, 'succeeded', r1.error ?? '');
      assert.equal(r1.verdict, 'ok');
      const c1 = r1.report!.counters;
      // Days D−5 (two copies: 100 + 200 bytes), D−4 (300), D−3 (400): cutoff D−3.
      assert.deepEqual(
        [c1.tombstoneDaysPurged, c1.filesFreed, c1.bytesFreed, c1.tombstoneDaysKept],
        [3, 4, 1000, 2],
      );
      const out1 = tombstonePurgeOutput.parse(r1.output);
      assert.deepEqual(
        out1.kept.map((d) => d.day),
        [addDays(D, -2), D],
      );
      assert.equal(out1.nextPurgeDay, addDays(D, 1), 'D−2 goes with the run of D+1');
      assert.deepEqual(fs.readdirSync(path.join(n1!.root, 'tombstone')).sort(), [addDays(D, -2), D]);

      const r2 = by.get(n2!.id)!;
      assert.equal(r2.state, 'succeeded', r2.error ?? '');
      assert.equal(r2.report!.counters.tombstoneDaysPurged ?? 0, 0);

      const r3 = by.get('3.stor.dc3.remora.local')!;
      assert.equal(r3.state, 'failed', 'a node that does not answer fails its run');
      const attempts = await attemptsOfRun(tier.control, r3.id);
      assert.equal(attempts.length, 2, 'retried (StorageNodeUnreachable is retryable), then failed');
      for (const a of attempts)
        assert.match(a.error ?? '', /storage node http:\/\/127.0.0.1:\d+ \(GET\): connect ECONNREFUSED/);

      const r4 = by.get('4.stor.dc1.remora.local')!;
      assert.equal(r4.state, 'succeeded');
      assert.equal(r4.verdict, 'degraded');
      assert.equal(r4.report!.events['warning:node-address-unknown']?.count, 1);
      assert.equal(tombstonePurgeOutput.parse(r4.output).reached, false);
    } finally {
      client.close();
      await n1!.close();
      await n2!.close();
      await cleanup();
    }
  },
);
