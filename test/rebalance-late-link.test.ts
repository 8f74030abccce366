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
import { createAccount } from '../src/frontdoor/accounts.js';
import { planJob } from '../src/jobs/rebalance/rebalance.service.js';
import { runJob } from '../src/jobs/rebalance/rebalance.run.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import { startTestDeployment } from './helpers/deployment.js';
import { FOUR_NODES, nodeDirectory, pastLastWrite, snapshotAndUnpack, storeOf } from './helpers/rebalance.js';

const A1 = FOUR_NODES[0]!.id;

test(
  'a link written after the last re-read names the tombstoned copy: the runner restores it',
  { timeout: 120_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment({
      storage: { nodes: FOUR_NODES, heartbeatIntervalMs: 300 },
    });
    try {
      const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
      const alice = d.client(a.token);
      const key = (p: string) => p.replace('/alice/', `/${a.account.uuid}/`);
      await alice.mkdirp('/alice/stor/g');
      let before: MantaObjectValue | undefined;
      const body = crypto.randomBytes(5000);
      for (let i = 0; i < 40 && !before; i++) {
        await alice.put('/alice/stor/g/o', body);
        const r = (await d.tier.getObject<MantaObjectValue>('manta', key('/alice/stor/g/o')))!;
        if (r.value.sharks.some((s) => s.manta_storage_id === A1)) before = r.value;
      }
      assert.ok(before, `the object never landed on ${A1}`);
      alice.close();
      await disableWrites(d.tier, A1);
      await pastLastWrite();
      await snapshotAndUnpack(d);
      const nodes = await nodeDirectory(d);
      const nodeUrl = (id: string) => nodes.url(id);
      const plan = await planJob(
        { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
        { evacuate: A1, maxFillPct: 90, lagMs: 60_000, lastWriteMarginMs: 0 },
      );
      const linkKey = key('/alice/stor/g/late-link');
      const totals = await runJob(
        { tier: d.tier, storage: d.storage, nodeUrl },
        {
          jobId: plan.jobId,
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
    } finally {
      await cleanup();
    }
  },
);
