/**
 * Repair's crash table (docs/audit.md "Repair"), on real parts: a missing copy and a corrupt one,
 * repaired by a Repairer that "crashes" (throws) after the copy, then one that crashes after the
 * records are updated, then a clean run, then a rerun. Each run re-derives everything from the
 * live records and the nodes: the copy made before the first crash is reused (the destination is
 * seeded by the objectId: no orphan copy anywhere), the corrupt copy left in place by the second
 * crash is quarantined by the next run as stale, and the last run changes nothing. Per record:
 * as many copies and datacenters as before, each read back through its node with its MD5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { systemClock } from '../src/core/clock.js';
import { dayOf } from '../src/core/days.js';
import { ReportBuilder } from '../src/core/run-report.js';
import { Repairer } from '../src/jobs/audit/audit.repair.js';
import type { Problem } from '../src/jobs/audit/audit.rules.js';
import { dcCount } from '../src/jobs/rebalance/rebalance.types.js';
import type { RunStep } from '../src/jobs/rebalance/rebalance.run.js';
import { MANTA_BUCKET } from '../src/metadata/buckets.js';
import { listAll } from '../src/metadata/moray.repository.js';
import type { MantaObjectValue, MantaValue } from '../src/metadata/types.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { runWorkload } from '../src/workload/driver.js';
import { DEFAULT_SPEC } from '../src/workload/generator.js';
import { startTestDeployment } from './helpers/deployment.js';

type Rec = { key: string; shard: string; value: MantaObjectValue };

async function records(d: Deployment): Promise<Rec[]> {
  const out: Rec[] = [];
  for (const s of d.tier.indexShards)
    for (const r of await listAll<MantaValue>(s.pool, MANTA_BUCKET))
      if (r.value.type === 'object') out.push({ key: r.key, shard: s.name, value: r.value });
  return out;
}

/** Nodes holding a file of the objectId in place (not in tombstone or quarantine). */
function holders(d: Deployment, owner: string, objectId: string): string[] {
  return [...d.nodes]
    .filter(([, n]) => fs.existsSync(path.join(n.root, owner, objectId)))
    .map(([id]) => id)
    .sort();
}

const owner = (v: MantaObjectValue) => v.creator || v.owner;

test(
  'repair converges after a crash at each step, and a rerun changes nothing',
  { timeout: 180_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment();
    try {
      await runWorkload(d.tier, d.frontdoorUrl, {
        ...DEFAULT_SPEC,
        seed: 21,
        objects: 12,
        linkRate: 0.3,
        overwriteRate: 0,
        deleteRate: 0,
        maxObjectBytes: 16 * 1024,
      });
      const before = await records(d);
      const byObject = new Map<string, Rec[]>();
      for (const r of before)
        if (r.value.contentLength > 0 && r.value.sharks.length >= 2)
          byObject.set(r.value.objectId, [...(byObject.get(r.value.objectId) ?? []), r]);
      const [a, b] = [...byObject.keys()].sort();
      assert.ok(a && b, 'two objects with two copies');
      const va = byObject.get(a)![0]!.value;
      const vb = byObject.get(b)![0]!.value;
      const missingNode = va.sharks[0]!.manta_storage_id;
      const corruptNode = vb.sharks[0]!.manta_storage_id;
      fs.rmSync(path.join(d.nodes.get(missingNode)!.root, owner(va), a));
      const corruptFile = path.join(d.nodes.get(corruptNode)!.root, owner(vb), b);
      const bytes = fs.readFileSync(corruptFile);
      bytes[0] = bytes[0]! ^ 0xff;
      fs.writeFileSync(corruptFile, bytes);

      const problem = (r: Rec, kind: Problem['kind'], node: string): Problem => ({
        kind,
        objectId: r.value.objectId,
        node,
        key: r.key,
        shard: r.shard,
        owner: owner(r.value),
      });
      const problems = [
        ...byObject.get(a)!.map((r) => problem(r, 'missing', missingNode)),
        ...byObject.get(b)!.map((r) => problem(r, 'corrupt', corruptNode)),
      ];
      const run = async (crashAt?: RunStep) => {
        const report = new ReportBuilder();
        const repairer = new Repairer(
          {
            tier: d.tier,
            storage: d.storage,
            nodeUrl: (id) => d.nodes.get(id)?.url,
            clock: systemClock,
            report,
            ...(crashAt
              ? {
                  onStep: (step: RunStep) =>
                    step === crashAt ? Promise.reject(new Error(`crash at ${step}`)) : Promise.resolve(),
                }
              : {}),
          },
          { dryRun: false, lagMs: d.config.picker.lagMs, maxFillPct: d.config.picker.maxUtilizationPct },
        );
        await repairer.repairGroup(problems);
        return {
          ...repairer.finish(),
          counters: report.finish().counters as Record<string, number | undefined>,
        };
      };

      // 1. Crash after the copy: the records are unchanged, a verified copy sits on the destination.
      await assert.rejects(run('copied'), /crash at copied/);
      assert.deepEqual(await records(d), before, 'no record changed');
      const afterCopy = holders(d, owner(va), a);
      assert.equal(afterCopy.length, va.sharks.length, `a's copies: ${afterCopy.join(', ')}`);
      assert.ok(!afterCopy.includes(missingNode));

      // 2. Crash after the update: records name the new copies; the corrupt copy is still in place.
      await assert.rejects(run('updated'), /crash at updated/);
      assert.ok(fs.existsSync(corruptFile), 'not quarantined yet');
      assert.deepEqual(holders(d, owner(va), a), afterCopy, 'the destination of the first try was reused');

      // 3. The next run: both problems are stale now; the corrupt copy no record names goes to quarantine.
      const third = await run();
      assert.equal(third.counters.copiesStale, 2);
      assert.equal(third.counters.copiesRepaired ?? 0, 0);
      assert.equal(third.counters.copiesQuarantined, 1);
      assert.ok(!fs.existsSync(corruptFile));
      const q = path.join(d.nodes.get(corruptNode)!.root, 'quarantine', dayOf(Date.now()), b);
      assert.deepEqual(fs.readFileSync(q), bytes, 'quarantined byte for byte');

      // Per record: full durability and spread, one copy per node, every copy reads back right.
      const now = new Map((await records(d)).map((r) => [`${r.shard}:${r.key}`, r]));
      for (const r of before) {
        const x = now.get(`${r.shard}:${r.key}`)!;
        assert.equal(x.value.sharks.length, r.value.sharks.length, r.key);
        assert.ok(dcCount(x.value.sharks) >= dcCount(r.value.sharks), r.key);
        assert.equal(new Set(x.value.sharks.map((s) => s.manta_storage_id)).size, x.value.sharks.length);
        for (const s of x.value.sharks) {
          const res = await fetch(
            `${d.nodes.get(s.manta_storage_id)!.url}/${owner(x.value)}/${x.value.objectId}`,
          );
          assert.equal(res.status, 200, `${r.key} on ${s.manta_storage_id}`);
          const md5 = crypto
            .createHash('md5')
            .update(Buffer.from(await res.arrayBuffer()))
            .digest('base64');
          assert.equal(md5, x.value.contentMD5, `${r.key} on ${s.manta_storage_id}`);
        }
      }
      for (const id of [a, b]) {
        const v = [...now.values()].find((r) => r.value.objectId === id)!.value;
        assert.deepEqual(
          holders(d, owner(v), id),
          v.sharks.map((s) => s.manta_storage_id).sort(),
          `${id}: no orphan copy on any node`,
        );
      }

      // 4. A rerun: nothing to do.
      const fourth = await run();
      assert.equal(fourth.counters.copiesStale, 2);
      assert.equal(fourth.counters.copiesRepaired ?? 0, 0);
      assert.equal(fourth.counters.copiesQuarantined ?? 0, 0);
      assert.deepEqual(fourth.lost, []);
      assert.equal(fourth.left, 0);
      console.log(
        `repair crash test: a ${a} (missing on ${missingNode}), b ${b} (corrupt on ${corruptNode}); ` +
          `after the copy crash a's copies on ${afterCopy.join(', ')}; third run: ${JSON.stringify(third.counters)}`,
      );
    } finally {
      await cleanup();
    }
  },
);
