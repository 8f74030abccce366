/**
 * The guards of a move, each proven by acting between the runner's steps (`onStep`) on a real
 * deployment of four nodes over two datacenters (issue 17's shape: evacuating node 1 leaves one
 * node in dc1). Each object below exercises one guard; every one of them was also checked by
 * planting the bug it guards against (issue 17, "Tests that would catch what today's tests miss"):
 *
 *   o1  the update is blocked (a record changed, still naming the old copy)  → old copy kept
 *   o2  the update fails (the metadata tier errors)                          → old copy kept
 *   o3  a link made during the move (re-read before the tombstone)            → old copy kept;
 *       retry moves the link onto the same copy as its object (not the other dc2 node)
 *   o4  a link made after the plan                                            → adopted, moved
 *   o5  a record naming the old and the new node                              → never given it twice
 *   o6  a same-size wrong copy already on the destination at retry            → replaced (MD5)
 *   o7  a malformed live record referencing the object                        → error, no crash
 * After every step: no record names a node twice or has fewer datacenters, no copy is lost.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
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
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { isRemoraError } from '../src/core/errors.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import type { NodeDirectory } from '../src/storage/node-directory.js';
import { planJob, type PlanResult, replanForRetry } from '../src/jobs/rebalance/rebalance.service.js';
import { runJob, type RunStep, type RunTotals } from '../src/jobs/rebalance/rebalance.run.js';
import { jobStatus, progressLine, verifyEvacuated } from '../src/jobs/rebalance/rebalance.status.js';
import { FaultyNetwork, type TransferFault } from './helpers/faulty-network.js';
import type { MantaObjectValue, Shark, StorageRecordValue } from '../src/metadata/types.js';

const A1 = FOUR_NODES[0]!.id; // dc1, evacuated
const A2 = FOUR_NODES[2]!.id; // dc1, the only destination that keeps two datacenters
const PICKER = { maxFillPct: 90, lagMs: 60_000 };
const NAMES = ['o1', 'o2', 'o3', 'o4', 'o5', 'o6', 'o7'] as const;
type Name = (typeof NAMES)[number];

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;
let nodes: NodeDirectory;
const nodeUrl = (id: string) => nodes.url(id);
const baseline = new Map<string, number>();
/** Violations seen after any step, with the step. */
const violations: string[] = [];
const obj = new Map<Name, { path: string; key: string; objectId: string; body: Buffer }>();
let plan: PlanResult;
let run1: RunTotals;
let retried: RunTotals;

const key = (p: string) => p.replace('/alice/', `/${owner}/`);
const byId = (id: string) => [...obj].find(([, o]) => o.objectId === id)?.[0];

async function recordOf(p: string): Promise<{ value: MantaObjectValue; etag: string }> {
  const r = await d.tier.getObject<MantaObjectValue>('manta', key(p));
  assert.ok(r, p);
  return r;
}

async function check(step: string): Promise<void> {
  for (const v of await durabilityViolations(d, baseline)) violations.push(`${step}: ${v}`);
}

/** Put an object until its copies include node 1 (the picker chooses; overwriting re-picks). */
async function putOnA1(p: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const body = crypto.randomBytes(2000 + crypto.randomInt(20_000));
    await alice.put(p, body);
    const r = await recordOf(p);
    if (r.value.sharks.some((s) => s.manta_storage_id === A1)) {
      obj.set(path.basename(p) as Name, { path: p, key: key(p), objectId: r.value.objectId, body });
      return;
    }
  }
  assert.fail(`${p} never landed on ${A1}`);
}

/** A BEFORE UPDATE trigger that makes every update of one key fail (a metadata tier error). */
async function failUpdatesOf(k: string, on: boolean): Promise<void> {
  assert.match(k, /^[\w/.-]+$/);
  const pool = d.tier.shard(d.tier.ring.locate(k).shard).pool;
  if (!on) {
    await pool.query('DROP TRIGGER IF EXISTS remora_test_fail ON manta');
    return;
  }
  await pool.query(`CREATE OR REPLACE FUNCTION remora_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'injected metadata failure'; END $$`);
  await pool.query(
    `CREATE TRIGGER remora_test_fail BEFORE UPDATE ON manta FOR EACH ROW
       WHEN (OLD._key = '${k}') EXECUTE FUNCTION remora_test_fail()`,
  );
}

/** A malformed live record (not JSON) that references an objectId through its index column. */
async function insertMalformed(k: string, objectId: string | null, value: string): Promise<void> {
  const pool = d.tier.shard(d.tier.ring.locate(k).shard).pool;
  await pool.query(
    `INSERT INTO manta (_key, _value, _etag, _mtime, objectid, type) VALUES ($1, $2, 'BADBAD00', 0, $3, 'object')`,
    [k, value, objectId],
  );
}

async function deleteRaw(k: string): Promise<void> {
  await d.tier.shard(d.tier.ring.locate(k).shard).pool.query('DELETE FROM manta WHERE _key = $1', [k]);
}

function corruptAll(): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      const bad = Buffer.from(chunk);
      bad[0] = bad[0]! ^ 0xff;
      cb(null, bad);
    },
  });
}

before(async () => {
  ({ d, cleanup } = await startTestDeployment({
    storage: { nodes: FOUR_NODES, heartbeatIntervalMs: 300 },
  }));
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  owner = a.account.uuid;
  alice = d.client(a.token);
  nodes = await nodeDirectory(d);
  await alice.mkdirp('/alice/stor/g');
  await alice.mkdirp('/alice/stor/links');
  for (const n of NAMES) await putOnA1(`/alice/stor/g/${n}`);
  await disableWrites(d.tier, A1);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  plan = await planJob(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    { evacuate: A1, ...PICKER, lastWriteMarginMs: 0 },
  );
  await check('planned');
});

after(async () => {
  alice.close();
  await cleanup();
});

test('plan: every object on node 1 goes to the other dc1 node (per record: two datacenters kept)', async () => {
  assert.equal(plan.counts.unprocessed, NAMES.length, JSON.stringify(plan.counts));
  const r = await d.tier.control.query<{ object_id: string; dest: string; dcs_before: number }>(
    'SELECT object_id, dest, dcs_before FROM rebalance_objects WHERE job_id = $1',
    [plan.jobId],
  );
  for (const row of r.rows) {
    assert.equal(row.dest, A2, `${byId(row.object_id)}`);
    assert.equal(row.dcs_before, 2);
  }
});

test('run: every guard holds, acting between the steps', async () => {
  const o = (n: Name) => obj.get(n)!;
  // After the plan, before the run: a link to o4 (adopted); a link to o5 whose record also names
  // node 3 (the destination), with the bytes really there; a malformed record referencing o7.
  await alice.link('/alice/stor/links/l4', o('o4').path);
  await alice.link('/alice/stor/links/l5', o('o5').path);
  const l5 = await recordOf('/alice/stor/links/l5');
  await d.storage.put(nodeUrl(A2)!, owner, l5.value.objectId, o('o5').body, {
    contentMD5: md5(o('o5').body),
  });
  const a2: Shark = { manta_storage_id: A2, datacenter: 'dc1' };
  await d.tier.putObject(
    'manta',
    key('/alice/stor/links/l5'),
    { ...l5.value, sharks: [...l5.value.sharks, a2] },
    { etag: l5.etag },
  );
  await insertMalformed(`/${owner}/stor/g/o7-broken`, o('o7').objectId, '{"type":"object", not json');
  await check('before the run');

  const fault: TransferFault = ({ objectId }) => (objectId === o('o6').objectId ? corruptAll() : undefined);
  const onStep = async (step: RunStep, ids: string[]) => {
    for (const id of ids) {
      const n = byId(id);
      if (step === 'copied' && n === 'o1') {
        // o1's record changes (still naming the old copy) between the read and the update.
        const r = await recordOf(o('o1').path);
        await d.tier.putObject(
          'manta',
          o('o1').key,
          { ...r.value, headers: { ...r.value.headers, 'm-touched': 'yes' } },
          { etag: r.etag },
        );
      }
      if (step === 'copied' && n === 'o2') await failUpdatesOf(o('o2').key, true);
      if (step === 'updated' && n === 'o2') await failUpdatesOf(o('o2').key, false);
      // A link made between the read and the update copies the record still naming node 1.
      if (step === 'copied' && n === 'o3') await alice.link('/alice/stor/links/l3', o('o3').path);
    }
    await check(`after ${step} of ${ids.map(byId).join(',')}`);
  };
  // The destinations pull through a network that corrupts every read of o6.
  const net = await FaultyNetwork.start([...d.nodes.keys()], nodeUrl, fault);
  try {
    run1 = await runJob(
      { tier: d.tier, storage: d.storage, nodeUrl: net.nodeUrl },
      { jobId: plan.jobId, concurrency: 2, batchSize: 1, leaseMs: 5000, onStep },
    );
  } finally {
    await net.close();
  }
  await failUpdatesOf(o('o2').key, false);
  assert.deepEqual(violations, []);
  assert.deepEqual(
    run1.outcomes,
    {
      complete: 1,
      'skipped:EtagConflict': 2,
      'error:MetadataUpdateFailed': 1,
      'skipped:ObjectAlreadyOnDestShark': 1,
      'skipped:MD5Mismatch': 1,
      'error:BadMorayObject': 1,
    },
    JSON.stringify(run1),
  );
});

async function assertOldCopyKept(n: Name): Promise<void> {
  const o = obj.get(n)!;
  const r = await recordOf(o.path);
  assert.ok(
    r.value.sharks.some((s) => s.manta_storage_id === A1),
    `${n} still names ${A1}`,
  );
  const file = path.join(d.nodes.get(A1)!.root, owner, o.objectId);
  assert.ok(fs.existsSync(file), `${n}: the old copy is not tombstoned while a record names it`);
  assert.equal(md5(fs.readFileSync(file)), r.value.contentMD5);
  assert.equal(md5(await alice.get(o.path)), md5(o.body));
}

test('the old copy is never tombstoned before the records are updated: blocked or failed update keeps it', async () => {
  await assertOldCopyKept('o1');
  await assertOldCopyKept('o2');
});

test('a link made during the move (between the read and the update): the re-read keeps the old copy it names', async () => {
  const l3 = await recordOf('/alice/stor/links/l3');
  assert.ok(l3.value.sharks.some((s) => s.manta_storage_id === A1));
  const file = path.join(d.nodes.get(A1)!.root, owner, l3.value.objectId);
  assert.ok(fs.existsSync(file), 'the copy the link names is still in place');
  assert.equal(md5(await alice.get('/alice/stor/links/l3')), md5(obj.get('o3')!.body));
});

test('a link made after the plan is adopted: it moves with its object in the same run', async () => {
  const o4 = await recordOf(obj.get('o4')!.path);
  const l4 = await recordOf('/alice/stor/links/l4');
  const ids = (v: MantaObjectValue) => v.sharks.map((s) => s.manta_storage_id).sort();
  assert.ok(!ids(o4.value).includes(A1) && ids(o4.value).includes(A2), ids(o4.value).join(','));
  assert.deepEqual(ids(l4.value), ids(o4.value), 'the link names the same copies as its object');
});

test('a record naming the old and the new node is never given the new node twice', async () => {
  const l5 = await recordOf('/alice/stor/links/l5');
  const ids = l5.value.sharks.map((s) => s.manta_storage_id);
  assert.equal(new Set(ids).size, ids.length, ids.join(','));
  assert.ok(ids.includes(A1) && ids.includes(A2), 'left as it was');
});

test('one active job per evacuated node: a second plan is refused, a dry run names the active job', async () => {
  const deps = { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl };
  const jobs = async () =>
    Number(
      (await d.tier.control.query<{ n: string }>('SELECT count(*) AS n FROM rebalance_jobs')).rows[0]!.n,
    );
  const n = await jobs();
  await assert.rejects(
    planJob(deps, { evacuate: A1, ...PICKER, lastWriteMarginMs: 0 }),
    (e) => isRemoraError(e, 'UsageError') && e.message.includes(plan.jobId) && /--force/.test(e.message),
  );
  assert.equal(await jobs(), n, 'nothing stored');
  const dry = await planJob(deps, { evacuate: A1, ...PICKER, lastWriteMarginMs: 0, dryRun: true });
  assert.deepEqual(dry.activeJobs, [plan.jobId]);
  await assert.rejects(
    planJob(deps, { evacuate: 'nosuch.stor.remora.local', ...PICKER }),
    (e) => isRemoraError(e, 'UsageError') && /unknown storage node/.test(e.message),
  );
});

test('retry: the link made during the move lands on the same copy as its object; a same-size wrong copy on the destination is replaced', async () => {
  const o = (n: Name) => obj.get(n)!;
  await alice.delete('/alice/stor/links/l5'); // o5 then has one record: it can move
  await deleteRaw(`/${owner}/stor/g/o7-broken`);
  // A wrong copy of o6, of the right size, already on the destination (a resumed object).
  const wrong = Buffer.from(o('o6').body);
  wrong[0] = wrong[0]! ^ 0xff;
  await d.storage.put(nodeUrl(A2)!, owner, o('o6').objectId, wrong);
  const rp = await replanForRetry(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    plan.jobId,
    PICKER,
  );
  assert.equal(rp.counts.unprocessed, 6, JSON.stringify(rp.counts));
  retried = await runJob(
    { tier: d.tier, storage: d.storage, nodeUrl },
    {
      jobId: plan.jobId,
      concurrency: 2,
      batchSize: 1,
      leaseMs: 5000,
      onStep: async (step, ids) => check(`retry: after ${step} of ${ids.map(byId).join(',')}`),
    },
  );
  assert.deepEqual(violations, []);
  assert.deepEqual(retried.outcomes, { complete: 6 }, JSON.stringify(retried));
  const s = await jobStatus(d.tier, plan.jobId);
  assert.equal(s.done.objects, s.total.objects);
  // Issue 17's history: the link's copy goes where its object's went, not to the other dc2 node.
  const o3 = await recordOf(o('o3').path);
  const l3 = await recordOf('/alice/stor/links/l3');
  const set = (v: MantaObjectValue) =>
    v.sharks
      .map((x) => x.manta_storage_id)
      .sort()
      .join(',');
  assert.equal(set(l3.value), set(o3.value));
  assert.equal(new Set(l3.value.sharks.map((x) => x.datacenter)).size, 2, 'the link keeps two datacenters');
  const o6 = await recordOf(o('o6').path);
  assert.ok(o6.value.sharks.some((x) => x.manta_storage_id === A2));
  assert.equal(
    md5(fs.readFileSync(path.join(d.nodes.get(A2)!.root, owner, o('o6').objectId))),
    o6.value.contentMD5,
    'the copy on the destination has the right bytes',
  );
  assert.deepEqual(await disagreements(d), []);
  for (const n of NAMES) assert.equal(md5(await alice.get(o(n).path)), md5(o(n).body), n);
});

test('verify: SAFE when done; unreadable records are events; unreachable and address-unknown copies are NOT SAFE; unknown node refused', async () => {
  const deps = () => ({ tier: d.tier, storage: d.storage, nodes });
  const ok = await verifyEvacuated(deps(), A1);
  assert.equal(ok.safe, true, ok.verdict);
  assert.match(ok.verdict, /^SAFE TO REMOVE/);
  assert.equal(ok.planned, NAMES.length);
  assert.ok(ok.copiesChecked >= NAMES.length * 2, `${ok.copiesChecked}`);

  // A malformed record of a moved object: an event, the verdict stands. One that mentions the node: NOT SAFE.
  await insertMalformed(`/${owner}/stor/g/bad1`, obj.get('o4')!.objectId, '{"type":"object", "sharks": [');
  const withBad = await verifyEvacuated(deps(), A1);
  assert.equal(withBad.safe, true, withBad.verdict);
  assert.equal(withBad.events.malformed?.count, 1);
  await insertMalformed(`/${owner}/stor/g/bad2`, null, `{"sharks":[{"manta_storage_id":"${A1}"`);
  const naming = await verifyEvacuated(deps(), A1);
  assert.equal(naming.safe, false);
  assert.equal(naming.problems.unreadableNaming?.count, 1, naming.verdict);
  await deleteRaw(`/${owner}/stor/g/bad1`);
  await deleteRaw(`/${owner}/stor/g/bad2`);

  // The destination down: its copies are unreachable, not missing.
  await d.stopNode(A2);
  try {
    const down = await verifyEvacuated(deps(), A1);
    assert.equal(down.safe, false);
    assert.ok((down.problems.unreachable?.count ?? 0) >= NAMES.length, down.verdict);
    assert.equal(down.problems.missing, undefined, down.verdict);
    assert.match(down.verdict, /^NOT SAFE.*unreachable/);
    assert.doesNotMatch(down.verdict, /missing/);
    // Its heartbeat record without a URL (and none configured): "address unknown".
    const rec = (await d.tier.getObject<StorageRecordValue>('manta_storage', A2))!;
    const { url: _url, ...noUrl } = rec.value;
    await d.tier.putObject('manta_storage', A2, { ...noUrl });
    const stripped = await nodeDirectory(d);
    const unknown = await verifyEvacuated({ ...deps(), nodes: stripped }, A1);
    assert.equal(unknown.safe, false);
    assert.ok((unknown.problems.addressUnknown?.count ?? 0) >= NAMES.length, unknown.verdict);
    assert.match(unknown.problems.addressUnknown!.examples[0]!, /address unknown/);
    const st = await jobStatus(d.tier, plan.jobId, stripped);
    assert.deepEqual(st.addressUnknown, [A2]);
    assert.match(progressLine(st), new RegExp(`address unknown: ${A2.replace(/\./g, '\\.')}`));
  } finally {
    await d.startNode(A2);
    await d.heartbeats.get(A2)!.idle();
  }
  nodes = await nodeDirectory(d);
  assert.equal((await verifyEvacuated(deps(), A1)).safe, true);
  await assert.rejects(
    verifyEvacuated(deps(), 'nosuch.stor.remora.local'),
    (e) => isRemoraError(e, 'UsageError') && /unknown storage node/.test(e.message),
  );
});

test('a run says what it did in the shared report shape: skips and errors as events by reason', () => {
  const r = run1.report;
  assert.equal(r.counters.recordsScanned, run1.claimed);
  const events = Object.values(r.events);
  for (const [k, n] of Object.entries(run1.outcomes)) {
    if (k === 'complete') assert.equal(r.counters.processed, n);
    else {
      const e = events.find((x) => x.kind === k);
      assert.ok(e, `event ${k} in ${JSON.stringify(Object.keys(r.events))}`);
      assert.equal(e.count, n);
      assert.ok(e.examples.length > 0);
    }
  }
  assert.equal(r.verdict, events.some((e) => e.severity !== 'info') ? 'degraded' : 'ok');
});
