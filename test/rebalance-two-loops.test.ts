/**
 * Two claim loops per runner (rebalance.run.ts runJob, DEFAULT_CLAIM_LOOPS): while one claim
 * batch runs its metadata steps, the other's copies are in flight, and every step of each batch
 * still runs in order for that batch alone. Proven here on a real deployment: batch 1 is held
 * after its update until batch 2 has copied (so the loops really overlap: with one loop the gate
 * times out); a link made during each batch's move keeps its old copy (each loop re-reads); every
 * object has exactly one outcome and one claim (the loops claim disjoint objects), and every
 * moved object is on its destination with its MD5 and gone from the evacuated node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runJob, type RunStep } from '../src/jobs/rebalance/rebalance.run.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import {
  durabilityViolations,
  FOUR_NODES,
  md5,
  planEvacuation,
  withFourNodesAndAlice,
} from './helpers/rebalance.js';

const A1 = FOUR_NODES[0]!.id;

test(
  'two claim loops: batch 2 copies while batch 1 is between its update and its tombstone; each object moved once, none lost',
  { timeout: 180_000 },
  async () => {
    await withFourNodesAndAlice('tl', async ({ d, alice, key }) => {
      const onA1 = new Map<string, { value: MantaObjectValue; body: Buffer }>();
      for (let i = 0; i < 200 && onA1.size < 16; i++) {
        const body = crypto.randomBytes(2000);
        await alice.put(`/alice/stor/tl/o${i}`, body);
        const r = (await d.tier.getObject<MantaObjectValue>('manta', key(`/alice/stor/tl/o${i}`)))!;
        if (r.value.sharks.some((s) => s.manta_storage_id === A1))
          onA1.set(r.value.objectId, { value: r.value, body });
      }
      assert.ok(onA1.size >= 12, `only ${onA1.size} objects landed on ${A1}`);
      alice.close();
      const { jobId, nodeUrl } = await planEvacuation(d, A1);
      const baseline = new Map<string, number>();
      assert.deepEqual(await durabilityViolations(d, baseline), []);

      // Each claim batch is numbered at its first step; events record (batch, step) in order.
      const batchOf = new Map<string, number>();
      let batches = 0;
      const events: string[] = [];
      let secondCopied!: () => void;
      const batch2Copied = new Promise<void>((resolve) => (secondCopied = resolve));
      let gateTimedOut = false;
      const linked = new Set<string>();
      let links = 0;
      const onStep = async (step: RunStep, ids: string[]) => {
        if (step === 'read') {
          batches++;
          for (const id of ids) batchOf.set(id, batches);
        }
        const b = ids.map((id) => batchOf.get(id)).find((n) => n !== undefined) ?? 0;
        events.push(`${b}:${step}`);
        if (step === 'copied' && b >= 2) secondCopied();
        // A link made during the move (between the read and the update) of the batch's first
        // object still in play: its re-read must keep the old copy it names.
        if (step === 'copied' && ids.length > 0) {
          const o = onA1.get(ids[0]!)!;
          const linkKey = key(`/alice/stor/tl/link-${++links}`);
          await d.tier.putObject(
            'manta',
            linkKey,
            { ...o.value, key: linkKey, name: `link-${links}` },
            { etag: null },
          );
          linked.add(o.value.objectId);
        }
        // Hold batch 1 after its update until batch 2 has copied (or 20 s: the loops did not overlap).
        if (step === 'updated' && b === 1) {
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            batch2Copied,
            new Promise<void>((r) => {
              timer = setTimeout(() => {
                gateTimedOut = true;
                r();
              }, 20_000);
            }),
          ]);
          clearTimeout(timer);
        }
      };
      const outcomes: string[] = [];
      const details = new Map<string, string>();
      const totals = await runJob(
        { tier: d.tier, storage: d.storage, nodeUrl },
        {
          jobId,
          concurrency: 2,
          batchSize: 4,
          onStep,
          onOutcomes: (outs) => {
            for (const { outcome } of outs) {
              outcomes.push(outcome.objectId);
              details.set(outcome.objectId, outcome.detail ?? '');
            }
          },
        },
      );
      // Exactly one outcome and one claim per object: no object moved twice.
      const n = onA1.size;
      assert.equal(
        outcomes.length,
        new Set(outcomes).size,
        `an object had two outcomes: ${outcomes.join(',')}`,
      );
      assert.deepEqual([...outcomes].sort(), [...onA1.keys()].sort());
      assert.equal(totals.claimed, n);
      const rows = await d.tier.control.query<{ object_id: string; state: string; attempts: number }>(
        `SELECT object_id, state, attempts FROM rebalance_objects WHERE job_id = $1`,
        [jobId],
      );
      assert.equal(rows.rows.length, n);
      for (const r of rows.rows) assert.equal(r.attempts, 1, `${r.object_id} claimed ${r.attempts} times`);
      assert.equal(gateTimedOut, false, `batch 2 never copied while batch 1 waited: ${events.join(' ')}`);
      const at = (e: string) => events.indexOf(e);
      assert.ok(at('2:copied') >= 0 && at('2:copied') < at('1:tombstoned'), events.join(' '));
      assert.ok(batches >= 3, `${batches} batches`);

      assert.deepEqual(
        totals.outcomes,
        { complete: n - linked.size, 'skipped:EtagConflict': linked.size },
        JSON.stringify(totals),
      );

      // Nothing lost: every copy a live record names is on its node with the record's MD5.
      assert.deepEqual(await durabilityViolations(d, baseline), []);
      const root = (id: string) => d.nodes.get(id)!.root;
      for (const [objectId, o] of onA1) {
        const owner = o.value.creator || o.value.owner;
        const onOld = path.join(root(A1), owner, objectId);
        const rec = (await d.tier.getObject<MantaObjectValue>('manta', o.value.key))!.value;
        if (linked.has(objectId)) {
          // Kept by the re-read of step 5, before any MOVE (not tombstoned, then put back by 6b).
          assert.match(details.get(objectId)!, /\(made during the move\) still names the old copy/, objectId);
          // Skipped: the old copy stays, byte for byte, for the link that names it.
          assert.ok(fs.readFileSync(onOld).equals(o.body), objectId);
          continue;
        }
        assert.equal(fs.existsSync(onOld), false, `${objectId} left on ${A1}`);
        assert.ok(
          !rec.sharks.some((s) => s.manta_storage_id === A1),
          `${objectId}: record still names ${A1}`,
        );
        for (const s of rec.sharks) {
          const file = path.join(root(s.manta_storage_id), owner, objectId);
          assert.equal(
            md5(fs.readFileSync(file)),
            o.value.contentMD5,
            `${objectId} on ${s.manta_storage_id}`,
          );
        }
      }
    });
  },
);
