/**
 * Step 6 of the mover (src/jobs/rebalance/rebalance.run.ts) with the batched tombstone request:
 * one claim batch's old copies go to the tombstone in one request per node; a copy the node
 * could not move (a directory in the way of its tombstone) is owed its MOVE (`post_processing`,
 * records clean, the copy in place) exactly as a failed single MOVE was, and the next run moves
 * it; a late link (step 6b) in the same batch still gets its copy restored from the tombstone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { dayOf } from '../src/core/days.js';
import { runJob } from '../src/jobs/rebalance/rebalance.run.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { FOUR_NODES, planEvacuation, withFourNodesAndAlice } from './helpers/rebalance.js';

const A1 = FOUR_NODES[0]!.id;

test(
  'batched tombstones: a copy that did not move is owed (post_processing), a late link is restored, the rest complete',
  { timeout: 180_000 },
  async () => {
    await withFourNodesAndAlice('b', async ({ d, alice, key }) => {
      const onA1: { value: MantaObjectValue; body: Buffer }[] = [];
      for (let i = 0; i < 80 && onA1.length < 6; i++) {
        const body = crypto.randomBytes(3000);
        await alice.put(`/alice/stor/b/o${i}`, body);
        const r = (await d.tier.getObject<MantaObjectValue>('manta', key(`/alice/stor/b/o${i}`)))!;
        if (r.value.sharks.some((s) => s.manta_storage_id === A1)) onA1.push({ value: r.value, body });
      }
      assert.ok(onA1.length >= 4, `only ${onA1.length} objects landed on ${A1}`);
      alice.close();
      const { jobId, nodeUrl } = await planEvacuation(d, A1);
      const root = d.nodes.get(A1)!.root;
      const day = dayOf(new Date());
      const copyOf = (v: MantaObjectValue) => path.join(root, v.creator || v.owner, v.objectId);
      const tombOf = (v: MantaObjectValue) => path.join(root, 'tombstone', day, v.objectId);
      const [blocked, linked] = [onA1[0]!, onA1[1]!];
      // A directory where the blocked copy's tombstone would go: its rename fails on the node.
      fs.mkdirSync(path.join(tombOf(blocked.value), 'in-the-way'), { recursive: true });
      const linkKey = key('/alice/stor/b/late-link');
      let batches = 0;
      const totals = await runJob(
        { tier: d.tier, storage: d.storage, nodeUrl },
        {
          jobId: jobId,
          concurrency: 2,
          batchSize: 64,
          onStep: async (step) => {
            if (step !== 'tombstoned') return;
            batches++;
            await d.tier.putObject(
              'manta',
              linkKey,
              { ...linked.value, key: linkKey, name: 'late-link' },
              { etag: null },
            );
          },
        },
      );
      assert.equal(batches, 1, 'one claim batch');
      const n = onA1.length;
      assert.deepEqual(
        totals.outcomes,
        { complete: n - 2, post_processing: 1, 'skipped:EtagConflict': 1 },
        JSON.stringify(totals),
      );
      const owed = await d.tier.control.query<{ detail: string }>(
        `SELECT detail FROM rebalance_objects WHERE job_id = $1 AND state = 'post_processing'`,
        [jobId],
      );
      assert.match(owed.rows[0]?.detail ?? '', /^tombstone MOVE failed: .*EISDIR/);
      // The copy that did not move is in place, its bytes intact; no record names it any more.
      assert.ok(fs.readFileSync(copyOf(blocked.value)).equals(blocked.body));
      const rec = (await d.tier.getObject<MantaObjectValue>('manta', blocked.value.key))!;
      assert.ok(!rec.value.sharks.some((s) => s.manta_storage_id === A1), 'records are clean');
      // The late link's copy is back in place, byte for byte.
      assert.ok(fs.readFileSync(copyOf(linked.value)).equals(linked.body), 'restored');
      assert.equal(fs.existsSync(tombOf(linked.value)), false);
      // Every other copy went to today's tombstone in the batch.
      for (const o of onA1.slice(2)) {
        assert.equal(fs.existsSync(copyOf(o.value)), false, o.value.objectId);
        assert.ok(fs.readFileSync(tombOf(o.value)).equals(o.body), o.value.objectId);
      }

      // The way cleared, the next run repeats the owed MOVE.
      fs.rmSync(tombOf(blocked.value), { recursive: true });
      const again = await runJob({ tier: d.tier, storage: d.storage, nodeUrl }, { jobId: jobId });
      assert.deepEqual(again.outcomes, { complete: 1 }, JSON.stringify(again));
      assert.equal(fs.existsSync(copyOf(blocked.value)), false);
      assert.ok(fs.readFileSync(tombOf(blocked.value)).equals(blocked.body));
    });
  },
);
