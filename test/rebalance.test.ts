/**
 * Evacuating storage nodes on a real deployment (PostgreSQL shards, loopback storage nodes, front
 * door): links across shards and namespaces move together; an overwrite during the move, a
 * corrupted transfer and a source node dying mid-run never lose a copy.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { startTestDeployment } from './helpers/deployment.js';
import {
  md5,
  nodeDirectory,
  objectRecords,
  pastLastWrite,
  snapshotAndUnpack,
  storeOf,
} from './helpers/rebalance.js';
import type { Deployment } from '../src/deployment/deployment.js';
import type { NodeDirectory } from '../src/storage/node-directory.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { isRemoraError } from '../src/core/errors.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import { planJob } from '../src/jobs/rebalance/rebalance.service.js';
import { runJob } from '../src/jobs/rebalance/rebalance.run.js';
import { replanForRetry } from '../src/jobs/rebalance/rebalance.service.js';
import { jobStatus, verifyEvacuated } from '../src/jobs/rebalance/rebalance.status.js';
import { FaultyNetwork, type TransferFault } from './helpers/faulty-network.js';
import type { MantaObjectValue } from '../src/metadata/types.js';

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;
let nodeUrl: (id: string) => string | undefined;
let nodes: NodeDirectory;
/** path → bytes every key must read back. */
const expected = new Map<string, Buffer>();

const key = (p: string) => p.replace('/alice/', `/${owner}/`);
const PICKER = { maxFillPct: 90, lagMs: 60_000 };

before(async () => {
  ({ d, cleanup } = await startTestDeployment());
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  owner = a.account.uuid;
  alice = d.client(a.token);
  nodes = await nodeDirectory(d);
  nodeUrl = (id) => nodes.url(id);
  const sizes = [0, 1, 1000, 40_000, 300_000, 1_200_000];
  for (const dir of ['a', 'b/c', 'links', 'e']) await alice.mkdirp(`/alice/stor/${dir}`);
  for (let i = 0; i < 30; i++) {
    const body = crypto.randomBytes(sizes[i % sizes.length]!);
    const p = `/alice/stor/${i % 2 ? 'a' : 'b/c'}/o${i}`;
    await alice.put(p, body);
    expected.set(p, body);
    if (i % 3 === 0) {
      // Links in other directories (so on other shards) and in another namespace.
      await alice.link(`/alice/stor/links/l${i}`, p);
      await alice.link(`/alice/public/p${i}`, p);
      expected.set(`/alice/stor/links/l${i}`, body);
      expected.set(`/alice/public/p${i}`, body);
    }
  }
});
after(async () => {
  alice.close();
  await cleanup();
});

/** The node holding the most copies among running ones, excluding some. */
async function busiestNode(except: string[] = []): Promise<string> {
  const n = new Map<string, number>();
  for (const v of await objectRecords(d))
    for (const s of v.sharks)
      if (!except.includes(s.manta_storage_id))
        n.set(s.manta_storage_id, (n.get(s.manta_storage_id) ?? 0) + 1);
  return [...n].sort((a, b) => b[1] - a[1])[0]![0];
}

/** objectId → copies and datacenters, from the live records. */
async function durability(): Promise<Map<string, { copies: number; dcs: number }>> {
  const out = new Map<string, { copies: number; dcs: number }>();
  for (const v of await objectRecords(d))
    out.set(v.objectId, { copies: v.sharks.length, dcs: new Set(v.sharks.map((s) => s.datacenter)).size });
  return out;
}

async function readsAll(): Promise<void> {
  for (const [p, body] of expected) assert.equal(md5(await alice.get(p)), md5(body), `read ${p}`);
}

async function plan(evacuate: string, lastWriteMarginMs = 0) {
  return planJob(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    { evacuate, ...PICKER, lastWriteMarginMs },
  );
}

async function freshPlan(evacuate: string) {
  await disableWrites(d.tier, evacuate);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  return plan(evacuate);
}

/** A run; with `fault`, the destinations pull every copy through a FaultyNetwork that applies it. */
async function run(jobId: string, fault?: TransferFault, concurrency = 4) {
  const net = fault ? await FaultyNetwork.start([...d.nodes.keys()], nodeUrl, fault) : undefined;
  try {
    return await runJob(
      { tier: d.tier, storage: d.storage, nodeUrl: net?.nodeUrl ?? nodeUrl },
      { jobId, concurrency, leaseMs: 2000 },
    );
  } finally {
    await net?.close();
  }
}

/** A transform that runs `first` before letting the first chunk through. */
function before1(first: (chunk: Buffer) => Promise<Buffer>): Transform {
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      if (done) return cb(null, chunk);
      done = true;
      first(chunk).then((c) => cb(null, c), cb);
    },
  });
}

async function recordOf(p: string): Promise<MantaObjectValue> {
  const r = await d.tier.getObject<MantaObjectValue>('manta', key(p));
  assert.ok(r, p);
  return r.value;
}

test('evacuate: stale snapshot refused; links move together; overwrite and corruption lose nothing; verify', async () => {
  const evac = await busiestNode();
  await snapshotAndUnpack(d);
  // A margin of ten minutes makes "right after" independent of how long the snapshot took on a
  // loaded machine (with a margin of 0 it must be within 1 s of the last write).
  await assert.rejects(
    plan(evac, 600_000),
    (e) => isRemoraError(e, 'SnapshotTooOld'),
    'a snapshot right after the last write is refused',
  );

  const before = await durability();
  const p = await freshPlan(evac);
  assert.ok(p.objects >= 5, `objects on ${evac}: ${p.objects}`);
  const dests = p.destinations.filter((x) => x.role === 'destination').map((x) => x.manta_storage_id);
  assert.ok(!dests.includes(evac));
  assert.equal(p.destinations.find((x) => x.manta_storage_id === evac)?.role, 'evacuated');
  const line = JSON.parse(
    (await fs.promises.readFile(storeOf(d).localPath(p.instructionFiles[0]!), 'utf8')).split('\n')[0]!,
  ) as Record<string, unknown>;
  for (const f of ['key', 'morayEtag', 'newShark', 'oldShark', 'md5', 'objectId', 'owner', 'etag'])
    assert.ok(f in line, `instruction field ${f}`);

  // Faults, chosen among objects on the node with bytes: a single-key object overwritten during its
  // copy; a linked object with one link overwritten; one transfer corrupted once; one always corrupted.
  const onNode = [...expected.keys()].filter((k) => !k.includes('/links/') && !k.includes('/public/'));
  const recs = await Promise.all(onNode.map(async (k) => ({ k, v: await recordOf(k) })));
  const movable = recs.filter(
    (r) => r.v.sharks.some((s) => s.manta_storage_id === evac) && r.v.contentLength > 0,
  );
  const single = movable.find(
    (r) => !expected.has(`/alice/stor/links/l${r.k.split('/o')[1]}`) || Number(r.k.split('/o')[1]) % 3 !== 0,
  );
  const linked = movable.find((r) => Number(r.k.split('/o')[1]) % 3 === 0);
  const others = movable.filter((r) => r !== single && r !== linked);
  assert.ok(single && linked && others.length >= 2, 'workload covers every fault');
  const corruptOnce = others[0]!;
  const corruptAlways = others[1]!;
  const linkNo = linked.k.split('/o')[1]!;
  const fault: TransferFault = ({ objectId, attempt }) => {
    if (objectId === single.v.objectId && attempt === 0)
      return before1(async (c) => {
        const body = Buffer.from('overwritten during the move');
        await alice.put(single.k, body);
        expected.set(single.k, body);
        return c;
      });
    if (objectId === linked.v.objectId && attempt === 0)
      return before1(async (c) => {
        const body = Buffer.from('link overwritten during the move');
        await alice.put(`/alice/public/p${linkNo}`, body);
        expected.set(`/alice/public/p${linkNo}`, body);
        return c;
      });
    if ((objectId === corruptOnce.v.objectId && attempt === 0) || objectId === corruptAlways.v.objectId)
      return before1((c) => {
        const bad = Buffer.from(c);
        bad[0] = bad[0]! ^ 0xff;
        return Promise.resolve(bad);
      });
    return undefined;
  };
  const totals = await run(p.jobId, fault);
  if (process.env.REMORA_DEBUG) console.log(totals, p.counts);
  assert.equal(totals.outcomes['skipped:EtagConflict'], 1, JSON.stringify(totals));
  assert.equal(totals.outcomes['skipped:MD5Mismatch'], 1, JSON.stringify(totals));

  const s = await jobStatus(d.tier, p.jobId);
  assert.ok(s.skippedKeys >= 2, `dropped keys counted: ${s.skippedKeys}`);
  // The always-corrupted object: never committed anywhere, still on the old node.
  const ca = await recordOf(corruptAlways.k);
  assert.ok(ca.sharks.some((x) => x.manta_storage_id === evac));
  for (const [id, n] of d.nodes)
    if (!corruptAlways.v.sharks.some((x) => x.manta_storage_id === id))
      assert.ok(!fs.existsSync(path.join(n.root, owner, ca.objectId)), `no corrupt copy on ${id}`);
  const co = await recordOf(corruptOnce.k);
  const dest = co.sharks.find(
    (x) => !corruptOnce.v.sharks.some((y) => y.manta_storage_id === x.manta_storage_id),
  )!;
  assert.equal(
    md5(fs.readFileSync(path.join(d.nodes.get(dest.manta_storage_id)!.root, owner, co.objectId))),
    co.contentMD5,
  );

  const v1 = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, evac);
  assert.equal(v1.safe, false, 'a live record still names the node');

  // retry re-plans from live records and runs without the fault.
  await replanForRetry({ tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl }, p.jobId, PICKER);
  await run(p.jobId);

  await d.stopNode(evac);
  try {
    await readsAll();
    const after = await durability();
    for (const [id, b] of before) {
      const a = after.get(id);
      if (!a) continue; // overwritten during the test
      assert.deepEqual(a, b, `copies and datacenters of ${id}`);
    }
    for (const r of await objectRecords(d)) {
      assert.ok(!r.sharks.some((x) => x.manta_storage_id === evac), `${r.key} still names ${evac}`);
      assert.equal(
        new Set(r.sharks.map((x) => x.manta_storage_id)).size,
        r.sharks.length,
        'never two copies on one node',
      );
    }
    const v2 = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, evac);
    assert.equal(v2.safe, true, v2.verdict);
    assert.match(v2.verdict, /^SAFE TO REMOVE/);
  } finally {
    await d.startNode(evac);
  }
});

test('source node killed mid-run: copies come from another copy; tombstones owed, then done', async () => {
  const evac = await busiestNode();
  const p = await freshPlan(evac);
  assert.ok(p.objects >= 3);
  const sources: string[] = [];
  let n = 0;
  const fault: TransferFault = ({ source }) => {
    sources.push(source.manta_storage_id);
    if (++n !== 2) return undefined;
    return before1(async (c) => {
      await d.stopNode(evac);
      return c;
    });
  };
  await run(p.jobId, fault, 1);
  const s = await jobStatus(d.tier, p.jobId);
  assert.equal(s.left.objects, 0);
  assert.equal(
    (s.byState.skipped?.objects ?? 0) + (s.byState.error?.objects ?? 0),
    0,
    JSON.stringify(s.reasons),
  );
  assert.ok(
    sources.some((x) => x !== evac),
    'fell back to another copy',
  );
  assert.ok(
    (s.byState.post_processing?.objects ?? 0) > 0,
    'old copies on the dead node are owed a tombstone',
  );
  await readsAll();
  const v = await verifyEvacuated({ tier: d.tier, storage: d.storage, nodes }, evac);
  assert.equal(v.safe, true, v.verdict);
  await d.startNode(evac);
  await run(p.jobId);
  const s2 = await jobStatus(d.tier, p.jobId);
  assert.equal(s2.byState.post_processing?.objects ?? 0, 0);
  const tomb = path.join(d.nodes.get(evac)!.root, 'tombstone');
  const tombstoned = fs.readdirSync(tomb).flatMap((day) => fs.readdirSync(path.join(tomb, day)));
  assert.ok(
    tombstoned.length >= s2.byState.complete!.objects - 1,
    'old copies tombstoned once the node is back',
  );
});
