/**
 * Claims sized by time (rebalance.run.ts nextClaimSize): a run's first claim takes
 * DEFAULT_BATCH_PER_SLOT objects per copy slot; each next claim takes as many as the last batch's
 * pace fits in the target time (claim to outcomes recorded), at most MAX_BATCH_PER_SLOT per slot
 * and never fewer than the first. Small fast objects then go in big batches; a slow or throttled
 * run keeps batches whose outcomes are recorded about as often as before. The run's own time comes
 * from the clock it is given, so the test sets each batch's pace without timing anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { ManualClock } from '../src/core/clock.js';
import {
  DEFAULT_BATCH_PER_SLOT,
  MAX_BATCH_PER_SLOT,
  nextClaimSize,
  runJob,
} from '../src/jobs/rebalance/rebalance.run.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { FOUR_NODES, planEvacuation, withFourNodesAndAlice } from './helpers/rebalance.js';

const A1 = FOUR_NODES[0]!.id;

test('nextClaimSize: what fits in the target time at the last pace, between the first size and the cap', () => {
  const p = { base: 64, max: 512, targetMs: 2000 };
  // 64 objects in 250 ms: 512 fit in 2 s.
  assert.equal(nextClaimSize({ ...p, objects: 64, elapsedMs: 250 }), 512);
  // 64 in 500 ms: 256 fit.
  assert.equal(nextClaimSize({ ...p, objects: 64, elapsedMs: 500 }), 256);
  // Faster still: the cap.
  assert.equal(nextClaimSize({ ...p, objects: 64, elapsedMs: 10 }), 512);
  // A batch slower than the target (big or throttled objects): the first size, not fewer.
  assert.equal(nextClaimSize({ ...p, objects: 64, elapsedMs: 8000 }), 64);
  // The last claim of a job (fewer objects than asked): its pace still counts.
  assert.equal(nextClaimSize({ ...p, objects: 10, elapsedMs: 100 }), 200);
  // A clock that did not move: as fast as allowed.
  assert.equal(nextClaimSize({ ...p, objects: 64, elapsedMs: 0 }), 512);
});

test(
  'a run claims the first size while batches are slow, and more once a batch is fast',
  { timeout: 180_000 },
  async () => {
    await withFourNodesAndAlice('cs', async ({ d, alice, key }) => {
      const concurrency = 1;
      const base = concurrency * DEFAULT_BATCH_PER_SLOT;
      // Placement is random over every node: write until A1 holds enough copies for a slow batch,
      // a second batch, and a third bigger than the first size.
      const want = 2 * base + base + 2;
      let onA1 = 0;
      for (let i = 0; onA1 < want; i++) {
        assert.ok(i < 200, `only ${onA1} objects landed on ${A1}`);
        await alice.put(`/alice/stor/cs/o${i}`, crypto.randomBytes(512));
        const r = (await d.tier.getObject<MantaObjectValue>('manta', key(`/alice/stor/cs/o${i}`)))!;
        if (r.value.sharks.some((s) => s.manta_storage_id === A1)) onA1++;
      }
      alice.close();
      const { jobId, nodeUrl } = await planEvacuation(d, A1);
      const clock = new ManualClock(Date.now());
      const sizes: number[] = [];
      // The first batch takes 1 s per object (8 s for 8: slower than the 2 s target), every
      // later one 10 ms per object.
      const msPerObject = () => (sizes.length === 0 ? 1000 : 10);
      const totals = await runJob(
        { tier: d.tier, storage: d.storage, nodeUrl, clock },
        {
          jobId,
          concurrency,
          // One claim loop: this test follows one loop's sizes, batch after batch (with two, each
          // loop sizes its own claims the same way, from half the sizes: rebalance-two-loops.test.ts).
          claimLoops: 1,
          batchTargetMs: 2000,
          onStep: (step, ids) => {
            if (step === 'copied') clock.advance(ids.length * msPerObject());
            return Promise.resolve();
          },
          onOutcomes: (outs) => void sizes.push(outs.length),
        },
      );
      assert.equal(totals.outcomes.complete, onA1, JSON.stringify(totals));
      // Batch 1 was slow: batch 2 keeps the first size. Batch 2 was fast (8 in 80 ms: 200 fit in
      // 2 s, capped at 64 per slot): batch 3 takes every object left.
      assert.deepEqual(sizes, [base, base, onA1 - 2 * base]);
      assert.ok(onA1 - 2 * base > base && onA1 - 2 * base <= concurrency * MAX_BATCH_PER_SLOT);
    });
  },
);
