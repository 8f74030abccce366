/**
 * Randomized evacuations (issue 17 part 1): on four nodes over two datacenters, seeded histories
 * of links, overwrites and deletes made between the runner's steps (`onStep`), during the first
 * run and the first retry. After every step: no record names one node twice, no record has fewer
 * datacenters than when first seen, no copy is lost (every live record's copies are on disk with
 * the record's MD5). At the end of each history: the records of each objectId name the same
 * copies, every object is done, `verify` says SAFE, every key reads back its bytes.
 *
 * Seeds: REMORA_REBALANCE_SEEDS=1,2,3,… (default 1–4; seeds 1–8 pass in about 50 s). A failure names the seed and the step.
 * The first test is the history, fixed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDeployment } from './helpers/deployment.js';
import {
  disagreements,
  durabilityViolations,
  FOUR_NODES,
  md5,
  nodeDirectory,
  pastLastWrite,
  snapshotAndUnpack,
  storeOf,
} from './helpers/rebalance.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { SeededRandom } from '../src/core/clock.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { disableWrites, enableWrites } from '../src/storage/storage-admin.js';
import type { NodeDirectory } from '../src/storage/node-directory.js';
import { planJob, replanForRetry } from '../src/jobs/rebalance/rebalance.service.js';
import { runJob, type RunStep } from '../src/jobs/rebalance/rebalance.run.js';
import { jobStatus, verifyEvacuated } from '../src/jobs/rebalance/rebalance.status.js';
import type { MantaObjectValue } from '../src/metadata/types.js';

const SEEDS = (process.env.REMORA_REBALANCE_SEEDS ?? '1,2,3,4').split(',').map(Number);
const PICKER = { maxFillPct: 90, lagMs: 60_000 };
const [N1, N2, N3, N4] = FOUR_NODES.map((n) => n.id) as [string, string, string, string];

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;
let nodes: NodeDirectory;
const nodeUrl = (id: string) => nodes.url(id);
/** key@objectId → datacenters when first seen. */
const baseline = new Map<string, number>();
/** path → the bytes it must read back. */
const expected = new Map<string, Buffer>();

const key = (p: string) => p.replace('/alice/', `/${owner}/`);

before(async () => {
  // The front door's placement is seeded too; only the interleaving of concurrent work varies.
  ({ d, cleanup } = await startTestDeployment(
    { storage: { nodes: FOUR_NODES, heartbeatIntervalMs: 300 } },
    { random: new SeededRandom(17) },
  ));
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  owner = a.account.uuid;
  alice = d.client(a.token);
  nodes = await nodeDirectory(d);
  for (const dir of ['/alice/stor/h', '/alice/stor/r/links', '/alice/public/r/links'])
    await alice.mkdirp(dir);
});

after(async () => {
  alice.close();
  await cleanup();
});

async function recordOf(p: string): Promise<MantaObjectValue | undefined> {
  return (await d.tier.getObject<MantaObjectValue>('manta', key(p)))?.value;
}

async function assertSteady(label: string): Promise<void> {
  assert.deepEqual(await durabilityViolations(d, baseline), [], label);
}

/** Disable writes on `evac`, snapshot after its last write, plan. */
async function planEvacuation(evac: string): Promise<string> {
  await disableWrites(d.tier, evac);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  const p = await planJob(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    { evacuate: evac, ...PICKER, lastWriteMarginMs: 0 },
  );
  return p.jobId;
}

async function reenable(evac: string): Promise<void> {
  await enableWrites(d.tier, evac);
  await d.heartbeats.get(evac)!.beat();
}

test("issue 17's history: a link made during the move, then retry: the link keeps two datacenters and agrees with its object", async () => {
  // An object with a copy on node 1 (dc1) and one in dc2.
  let body = Buffer.alloc(0);
  let v: MantaObjectValue | undefined;
  for (let i = 0; i < 40 && !v?.sharks.some((s) => s.manta_storage_id === N1); i++) {
    body = Buffer.from(`history ${i} ${'x'.repeat(5000)}`);
    await alice.put('/alice/stor/h/obj', body, { copies: 2 });
    v = await recordOf('/alice/stor/h/obj');
  }
  assert.ok(
    v?.sharks.some((s) => s.manta_storage_id === N1),
    'placed on node 1',
  );
  const jobId = await planEvacuation(N1);
  const t1 = await runJob(
    { tier: d.tier, storage: d.storage, nodeUrl },
    {
      jobId,
      concurrency: 1,
      onStep: async (step) => {
        if (step === 'copied') await alice.link('/alice/stor/h/link', '/alice/stor/h/obj');
        await assertSteady(`history, after ${step}`);
      },
    },
  );
  assert.deepEqual(t1.outcomes, { 'skipped:EtagConflict': 1 }, 'the link still names the old copy');
  const mid = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, N1);
  assert.equal(mid.safe, false, mid.verdict);
  assert.equal(mid.problems.recordsDisagree?.count, 1, mid.verdict);

  await replanForRetry({ tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl }, jobId, PICKER);
  await runJob({ tier: d.tier, storage: d.storage, nodeUrl }, { jobId, concurrency: 1 });
  const o = (await recordOf('/alice/stor/h/obj'))!;
  const l = (await recordOf('/alice/stor/h/link'))!;
  const ids = (x: MantaObjectValue) =>
    x.sharks
      .map((s) => s.manta_storage_id)
      .sort()
      .join(',');
  assert.equal(ids(l), ids(o), 'the records of one objectId name the same copies');
  assert.ok(ids(o).includes(N3), `moved to the other dc1 node: ${ids(o)}`);
  assert.equal(new Set(l.sharks.map((s) => s.datacenter)).size, 2, 'the link keeps two datacenters');
  await assertSteady('history, after retry');
  const ok = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, N1);
  assert.equal(ok.safe, true, ok.verdict);
  assert.equal(md5(await alice.get('/alice/stor/h/link')), md5(body));

  // What the old rule did: the link's copy on the other dc2 node. verify must now say NOT SAFE.
  const other = l.sharks.find((s) => s.datacenter === 'dc2')!.manta_storage_id === N2 ? N4 : N2;
  await d.storage.put(nodeUrl(other)!, owner, l.objectId, body);
  const row = (await d.tier.getObject<MantaObjectValue>('manta', key('/alice/stor/h/link')))!;
  const bad = row.value.sharks.map((s) =>
    s.datacenter === 'dc1' ? { manta_storage_id: other, datacenter: 'dc2' } : s,
  );
  await d.tier.putObject(
    'manta',
    key('/alice/stor/h/link'),
    { ...row.value, sharks: bad },
    { etag: row.etag },
  );
  const caught = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, N1);
  assert.equal(caught.safe, false, caught.verdict);
  assert.equal(caught.problems.fewerDatacenters?.count, 1, caught.verdict);
  assert.equal(caught.problems.recordsDisagree?.count, 1, caught.verdict);
  await d.tier.putObject('manta', key('/alice/stor/h/link'), { ...row.value });
  await fs.promises.rm(path.join(d.nodes.get(other)!.root, owner, l.objectId));
  await reenable(N1);
});

/** One seeded history. */
async function history(seed: number): Promise<void> {
  const rng = new SeededRandom(seed);
  const label = (s: string) => `seed ${seed}: ${s}`;
  let n = 0;
  const bytes = () => {
    const size = rng.pick([0, 1, 700, 5000, 40_000]);
    return Buffer.from(Array.from({ length: size }, () => rng.int(256)));
  };
  const put = async (p: string) => {
    const body = bytes();
    await alice.put(p, body, { copies: rng.pick([1, 2, 2, 2, 3]) });
    expected.set(p, body);
  };
  for (let i = 0; i < 10; i++) {
    const p = `/alice/stor/r/s${seed}-o${i}`;
    await put(p);
    if (rng.next() < 0.3) {
      const l = `/alice/public/r/s${seed}-l${n++}`;
      await alice.link(l, p);
      expected.set(l, expected.get(p)!);
    }
  }
  await assertSteady(label('created'));
  const evac = rng.pick([N1, N2, N3, N4]);
  const jobId = await planEvacuation(evac);

  /** Keys whose record names one of `ids` (the objects in play), else any live key. */
  const pickKey = async (ids: string[]): Promise<string | undefined> => {
    const live = [...expected.keys()];
    const inPlay: string[] = [];
    for (const p of live) {
      const v = await recordOf(p);
      if (v && ids.includes(v.objectId)) inPlay.push(p);
    }
    const from = inPlay.length > 0 && rng.next() < 0.8 ? inPlay : live;
    return from.length > 0 ? rng.pick(from) : undefined;
  };
  const done: Record<string, number> = {};
  const act = async (ids: string[]) => {
    const what = rng.pick(['link', 'link', 'overwrite', 'delete', 'nothing']);
    const p = await pickKey(ids);
    if (!p || what === 'nothing') return;
    done[what] = (done[what] ?? 0) + 1;
    if (what === 'link') {
      const l = `/alice/${rng.next() < 0.5 ? 'public' : 'stor'}/r/${rng.next() < 0.5 ? 'links/' : ''}s${seed}-l${n++}`;
      await alice.link(l, p);
      expected.set(l, expected.get(p)!);
    } else if (what === 'overwrite') await put(p);
    else {
      await alice.delete(p);
      expected.delete(p);
    }
  };
  const onStep = (acting: boolean) => async (step: RunStep, ids: string[]) => {
    if (acting && step !== 'tombstoned' && rng.next() < 0.6) await act(ids);
    await assertSteady(label(`after ${step}`));
  };
  const deps = { tier: d.tier, storage: d.storage, nodeUrl };
  const first = await runJob(deps, { jobId, concurrency: 2, batchSize: 3, onStep: onStep(true) });
  let retries = 0;
  for (let attempt = 1; attempt <= 4; attempt++) {
    const s = await jobStatus(d.tier, jobId);
    if (s.done.objects === s.total.objects) break;
    retries++;
    await replanForRetry({ ...deps, store: storeOf(d) }, jobId, PICKER);
    await runJob(deps, { jobId, concurrency: 2, batchSize: 3, onStep: onStep(attempt === 1) });
  }
  const s = await jobStatus(d.tier, jobId);
  if (process.env.REMORA_DEBUG)
    console.log(
      label(
        `evacuated ${evac}: ${s.total.objects} objects, first run ${JSON.stringify(first.outcomes)}, ` +
          `${retries} retries, actions ${JSON.stringify(done)}`,
      ),
    );
  assert.ok(Object.keys(done).length > 0, label('the history acted during the moves'));
  assert.equal(s.done.objects, s.total.objects, label(`not done: ${JSON.stringify(s.reasons)}`));
  assert.deepEqual(await disagreements(d), [], label('the records of each objectId agree'));
  const v = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, evac);
  assert.equal(v.safe, true, label(v.verdict));
  for (const [p, body] of expected) assert.equal(md5(await alice.get(p)), md5(body), label(`read ${p}`));
  await reenable(evac);
}

for (const seed of SEEDS)
  test(`randomized evacuation, seed ${seed}: links, overwrites and deletes during moves and retries`, () =>
    history(seed));
