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
import { dayOf } from '../src/core/days.js';
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
      assert.equal(await deleteLog(), 0, 'every delete record was cleaned up');

      const c1 = first.report!.counters;
      assert.equal(c1.copiesTombstoned, garbage.length, JSON.stringify(c1));
      assert.equal(c1.malformed, 0);
      assert.equal(first.verdict, 'ok', JSON.stringify(first.report?.verdictReasons));
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
