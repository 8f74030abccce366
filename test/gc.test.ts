/**
 * The gc job end to end on real parts: a workload through the front door (overwrites, deletes,
 * snaplinks), then snapshot → unpack → gc with a grace of 0. Afterwards every live record's
 * copies are in place on every node it names, every copy no live record names is in tombstone,
 * the delete log is empty; a second run for the same day moves nothing more.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { DAY_MS, dayOf } from '../src/core/days.js';
import { ManualClock } from '../src/core/clock.js';
import { snapshotShard } from '../src/dumps/snapshot.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { gcJob, gcOutput } from '../src/jobs/gc/gc.job.js';
import { snapshotJob } from '../src/jobs/snapshot/snapshot.job.js';
import { unpackJob } from '../src/jobs/unpack/unpack.job.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { withDailyPipeline } from '../src/jobs/catalog.js';
import { DELETE_LOG_BUCKET, MANTA_BUCKET } from '../src/metadata/buckets.js';
import { countRows, listAll } from '../src/metadata/moray.repository.js';
import type { MantaValue } from '../src/metadata/types.js';
import { driveDays, rerun, scheduleDay } from '../src/pipeline/operations.js';
import { runWorkload } from '../src/workload/driver.js';
import { DEFAULT_SPEC } from '../src/workload/generator.js';
import { startTestDeployment } from './helpers/deployment.js';
import { FAST } from './helpers/pipeline.js';

/** Every copy file on every node: `node/owner/objectId`, and tombstoned objectIds per node. */
function filesOnNodes(nodes: Map<string, { root: string }>) {
  const copies = new Set<string>();
  const tombstoned = new Set<string>();
  for (const [id, n] of nodes) {
    for (const owner of fs.readdirSync(n.root)) {
      const dir = path.join(n.root, owner);
      if (!fs.statSync(dir).isDirectory()) continue;
      if (owner === 'tombstone') {
        for (const day of fs.readdirSync(dir))
          for (const oid of fs.readdirSync(path.join(dir, day))) tombstoned.add(`${id}/${oid}`);
      } else if (/^[0-9a-f-]{36}$/.test(owner)) {
        for (const oid of fs.readdirSync(dir)) copies.add(`${id}/${owner}/${oid}`);
      }
    }
  }
  return { copies, tombstoned };
}

test(
  'gc: unreferenced copies to tombstone, referenced ones untouched, delete log emptied; a rerun moves nothing',
  { timeout: 240_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment();
    try {
      const w = await runWorkload(d.tier, d.frontdoorUrl, {
        ...DEFAULT_SPEC,
        seed: 11,
        objects: 120,
        overwriteRate: 0.15,
        deleteRate: 0.15,
        linkRate: 0.15,
        maxObjectBytes: 64 * 1024,
      });
      assert.ok(w.overwrites + w.deletes > 10, JSON.stringify(w));
      const live = (
        await Promise.all(d.tier.indexShards.map((s) => listAll<MantaValue>(s.pool, MANTA_BUCKET)))
      ).flat();
      const referenced = new Set<string>();
      for (const r of live)
        if (r.value.type === 'object')
          for (const s of r.value.sharks)
            referenced.add(`${s.manta_storage_id}/${r.value.creator || r.value.owner}/${r.value.objectId}`);
      const before = filesOnNodes(d.nodes);
      const garbage = [...before.copies].filter((c) => !referenced.has(c));
      assert.ok(garbage.length > 5, `the workload left garbage: ${garbage.length}`);
      const deleteLog = async () => {
        let n = 0;
        for (const s of d.tier.indexShards) n += await countRows(s.pool, DELETE_LOG_BUCKET);
        return n;
      };
      assert.ok((await deleteLog()) > 0);
      // Delete records the scan cannot hand over as typed fields: judged from their raw text.
      const owner = live[0]!.value.owner;
      const oid = (n: number) => `d0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
      const odd: [string, string][] = [
        [oid(1), '{nope'],
        [oid(2), JSON.stringify({ objectId: oid(2), owner, creator: 5, type: 'object', sharks: [] })],
        [oid(3), JSON.stringify({ objectId: oid(3), owner, type: 'object', sharks: [{ url: 'http://x' }] })],
        // No creator, no contentLength, no copies: well-formed, a zero-byte record to remove.
        [oid(4), JSON.stringify({ objectId: oid(4), owner, type: 'object', sharks: [] })],
      ];
      const shard = d.tier.indexShards[0]!;
      for (const [o, v] of odd)
        await shard.pool.query(
          `INSERT INTO manta_delete_log (_key, _value, _etag, _mtime, objectid) VALUES ($1, $2, '00000000', $3, $4)`,
          [`/${o}/${Date.now() - 1000}`, v, Date.now() - 1000, o],
        );

      const day = dayOf(Date.now());
      const settings = { ...FAST, jobs: { gc: { enabled: true, graceDays: 0 } } };
      const { first, second } = await withDailyPipeline(
        d.config,
        d.tier,
        { log: () => {}, settings, internalToken: d.internalToken },
        async (rt, c) => {
          await scheduleDay(rt, day, 'test');
          const runs = await driveDays(rt, c, [day], { timeoutMs: 180_000 });
          assert.ok(
            runs.every((r) => r.state === 'succeeded'),
            runs.map((r) => `${r.job}:${r.state}:${r.error ?? ''}`).join('\n'),
          );
          const gc1 = runs.find((r) => r.job === 'gc')!;
          await rerun(rt, 'gc', day, { downstream: false, dryRun: false });
          const again = await driveDays(rt, c, [day], { timeoutMs: 60_000 });
          return { first: gc1, second: again.find((r) => r.job === 'gc')! };
        },
      );

      const after = filesOnNodes(d.nodes);
      for (const c of referenced) assert.ok(after.copies.has(c), `referenced copy ${c} is in place`);
      for (const c of garbage) {
        const [node, , oid] = c.split('/');
        assert.ok(!after.copies.has(c), `garbage ${c} left its place`);
        assert.ok(after.tombstoned.has(`${node}/${oid}`), `garbage ${c} is in tombstone`);
      }
      const left: string[] = [];
      for (const s of d.tier.indexShards)
        for (const r of (await s.pool.query<{ _key: string }>('SELECT _key FROM manta_delete_log')).rows)
          left.push(r._key.split('/')[1]!);
      assert.deepEqual(
        left.sort(),
        [oid(1), oid(2), oid(3)],
        'every delete record was cleaned up but the malformed',
      );

      const c1 = first.report!.counters;
      assert.equal(c1.copiesTombstoned, garbage.length, JSON.stringify(c1));
      assert.equal(c1.malformed, 3);
      assert.ok((c1.zeroByte ?? 0) >= 1);
      assert.equal(first.verdict, 'degraded', JSON.stringify(first.report?.verdictReasons));
      const bad = first.report!.events['error:malformed-delete-record']!;
      assert.deepEqual(bad.examples.map((e) => (e as { detail: string }).detail).sort(), [
        '_value is not JSON',
        '_value.creator is not a string',
        'a shark without manta_storage_id',
      ]);
      const c2 = second.report!.counters;
      assert.equal(second.state, 'succeeded');
      assert.equal(c2.copiesTombstoned ?? 0, 0, 'the rerun moved nothing');
      assert.equal(c2.copiesAlreadyGone, garbage.length, 'and reports those copies as already done');
      assert.equal(c2.deleteRecordsRemoved ?? 0, 0);
    } finally {
      await cleanup();
    }
  },
);

test(
  'gc of a past day: copies go to the tombstone of the day they move, with the backlog in the output',
  { timeout: 240_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment();
    try {
      const w = await runWorkload(d.tier, d.frontdoorUrl, {
        ...DEFAULT_SPEC,
        seed: 12,
        objects: 60,
        overwriteRate: 0.2,
        deleteRate: 0.2,
        linkRate: 0.1,
        maxObjectBytes: 4096,
      });
      assert.ok(w.overwrites + w.deletes > 5, JSON.stringify(w));
      // Today's dumps, taken now and stored as manatee would have; the pipeline then runs this
      // day five days later (a backfill, a catch-up): its snapshot job uses the stored dumps.
      const store = new LocalObjectStore(path.join(d.config.stateDir, 'objects'));
      for (const s of d.tier.shards.values()) await snapshotShard(s, store);
      const day = dayOf(Date.now());
      const later = new ManualClock(Date.now() + 5 * DAY_MS);
      const run = await withPipelineSession(
        d.config,
        d.tier,
        {
          jobs: () => [snapshotJob, unpackJob({ partitions: 2 }), gcJob()],
          settings: FAST,
          store,
          clock: later,
          internalToken: d.internalToken,
          log: () => {},
        },
        async (rt, c) => {
          await scheduleDay(rt, day, 'test');
          const runs = await driveDays(rt, c, [day], { timeoutMs: 120_000 });
          assert.ok(
            runs.every((r) => r.state === 'succeeded'),
            runs.map((r) => `${r.job}:${r.state}:${r.error ?? ''}`).join('\n'),
          );
          return runs.find((r) => r.job === 'gc')!;
        },
      );
      const moved = run.report!.counters.copiesTombstoned ?? 0;
      assert.ok(moved > 0, JSON.stringify(run.report!.counters));
      const dirs = new Set<string>();
      for (const n of d.nodes.values()) {
        const t = path.join(n.root, 'tombstone');
        for (const dd of fs.readdirSync(t)) if (fs.readdirSync(path.join(t, dd)).length > 0) dirs.add(dd);
      }
      assert.deepEqual([...dirs], [dayOf(later.now())], "the day the copies moved, not the run's day");
      const out = gcOutput.parse(run.output);
      assert.equal(out.dryRun, false);
      assert.deepEqual(out.backlog?.eligibleNotMoved, { records: 0, copies: 0, bytes: 0 });
      assert.equal(out.backlog?.waitingForGrace.records, 0, 'five days: past the 2-day grace');
      assert.equal(out.decidedAt, later.now());
    } finally {
      await cleanup();
    }
  },
);
