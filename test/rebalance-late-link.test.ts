/**
 * Step 6b of the mover (src/jobs/rebalance/rebalance.run.ts): a link whose record was written
 * after the re-read that precedes the tombstone (it copied its source's record before the update)
 * names the copy just tombstoned. The runner reads once more and puts that copy back, so the
 * link's bytes are where its record says, and the object is skipped for `retry`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runJob } from '../src/jobs/rebalance/rebalance.run.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { FOUR_NODES, planEvacuation, withFourNodesAndAlice } from './helpers/rebalance.js';

const A1 = FOUR_NODES[0]!.id;

test(
  'a link written after the last re-read names the tombstoned copy: the runner restores it',
  { timeout: 120_000 },
  async () => {
    await withFourNodesAndAlice('g', async ({ d, alice, key }) => {
      let before: MantaObjectValue | undefined;
      const body = crypto.randomBytes(5000);
      for (let i = 0; i < 40 && !before; i++) {
        await alice.put('/alice/stor/g/o', body);
        const r = (await d.tier.getObject<MantaObjectValue>('manta', key('/alice/stor/g/o')))!;
        if (r.value.sharks.some((s) => s.manta_storage_id === A1)) before = r.value;
      }
      assert.ok(before, `the object never landed on ${A1}`);
      alice.close();
      const { jobId, nodeUrl } = await planEvacuation(d, A1);
      const linkKey = key('/alice/stor/g/late-link');
      const totals = await runJob(
        { tier: d.tier, storage: d.storage, nodeUrl },
        {
          jobId: jobId,
          concurrency: 1,
          onStep: async (step) => {
            // The link's record copies the source's record as it was before the update.
            if (step === 'tombstoned')
              await d.tier.putObject(
                'manta',
                linkKey,
                { ...before, key: linkKey, name: 'late-link' },
                { etag: null },
              );
          },
        },
      );
      assert.deepEqual(totals.outcomes, { 'skipped:EtagConflict': 1 }, JSON.stringify(totals));
      const detail = Object.values(totals.report.events)[0]?.examples[0] as { detail?: string };
      assert.match(detail.detail ?? '', /restored from tombstone .* \(restored\)/);
      // The copy the link names is back in place, byte for byte.
      const root = d.nodes.get(A1)!.root;
      const file = path.join(root, before.creator || before.owner, before.objectId);
      assert.ok(fs.existsSync(file), 'the old copy is back at its place');
      assert.ok(fs.readFileSync(file).equals(body));
    });
  },
);
