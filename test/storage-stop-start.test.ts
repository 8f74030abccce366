/**
 * Each storage node stoppable on its own, in a running deployment: `remora storage stop|start
 * <id>` (real CLI processes) reach the deployment through its control endpoint. A stopped node:
 * connections refused, its heartbeat goes stale, front-door reads fall back to another copy and
 * writes avoid it. Restarted: same address, it serves its files again, its record is fresh.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestDeployment } from './helpers/deployment.js';
import { dropDatabases, testConfig, testPgUrl, uniquePrefix } from './helpers/pg.js';
import { runCli } from './helpers/cli.js';
import { md5, objectRecords } from './helpers/rebalance.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { readDeploymentState } from '../src/deployment/context.js';
import { defaultStorageNodes } from '../src/config/config.js';
import { systemClock } from '../src/core/clock.js';
import { isRemoraError } from '../src/core/errors.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { storageStatus } from '../src/storage/storage-admin.js';

const LAG_MS = 1500;
let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;
/** The node test 1 stopped. */
let stopped = '';
const dcOf = (id: string) => d.config.storage.nodes.find((n) => n.id === id)!.datacenter;

before(async () => {
  const base = testConfig();
  const nodes = defaultStorageNodes(4, ['dc1', 'dc2']);
  ({ d, cleanup } = await startTestDeployment(
    {
      ...base,
      storage: { nodes, heartbeatIntervalMs: 200 },
      picker: { ...base.picker, lagMs: LAG_MS },
    },
    { writeState: true },
  ));
  // What the CLI children load: the same PostgreSQL, databases and nodes.
  fs.writeFileSync(
    path.join(d.config.stateDir, 'config.json'),
    JSON.stringify({
      postgres: { url: d.config.postgres.url, databasePrefix: d.config.postgres.databasePrefix },
      storage: { nodes },
      picker: { lagMs: LAG_MS },
    }),
  );
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  owner = a.account.uuid;
  alice = d.client(a.token);
  await alice.mkdirp('/alice/stor/s');
});
after(async () => {
  alice.close();
  await cleanup();
});

async function recordState(id: string): Promise<string> {
  const [s] = await storageStatus(d.tier, [{ id, datacenter: '' }], systemClock, LAG_MS);
  return s!.record;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(50);
  }
}

async function sharksOf(name: string): Promise<string[]> {
  const r = (await objectRecords(d)).find((v) => v.key.endsWith(`/stor/s/${name}`));
  assert.ok(r, `record of ${name}`);
  return r.sharks.map((s) => s.manta_storage_id);
}

test('remora storage stop / start: a stopped node is avoided and read around, then serves its files again', async () => {
  const bodies = new Map<string, Buffer>();
  for (let i = 0; i < 12; i++) {
    const b = crypto.randomBytes(1000 + i * 100);
    bodies.set(`o${i}`, b);
    await alice.put(`/alice/stor/s/o${i}`, b, { copies: 2 });
  }
  const records = await objectRecords(d);
  const victim = records[0]!.sharks[0]!.manta_storage_id;
  stopped = victim;
  const onVictim = records.filter((r) => r.sharks.some((s) => s.manta_storage_id === victim));
  const url = d.nodes.get(victim)!.url;

  const stop = await runCli(d.config.stateDir, ['storage', 'stop', victim]);
  assert.equal(stop.status, 0, stop.stderr);
  assert.match(stop.stdout, new RegExp(`"${victim.replace(/\./g, '\\.')}": stopped`));
  assert.equal(d.nodes.has(victim), false, 'the node is stopped in the running deployment');
  assert.equal(d.heartbeats.has(victim), false, 'and its heartbeat');
  assert.deepEqual(readDeploymentState(d.config)!.storageNodes[victim], {
    url,
    datacenter: d.config.storage.nodes.find((n) => n.id === victim)!.datacenter,
    root: path.join(d.config.stateDir, 'storage', victim),
    running: false,
  });
  await assert.rejects(d.storage.head(url, owner, onVictim[0]!.objectId), (e) =>
    isRemoraError(e, 'StorageNodeUnreachable'),
  );

  // Before its record goes stale, a write that picks it finds it dead and goes elsewhere.
  for (let i = 0; i < 6; i++) {
    await alice.put(`/alice/stor/s/early${i}`, crypto.randomBytes(500), { copies: 2 });
    assert.ok(!(await sharksOf(`early${i}`)).includes(victim), `early${i} avoided ${victim}`);
  }
  // Its heartbeat stopped: the record goes stale after the picker lag; the others stay fresh.
  await until(`${victim}'s record is stale`, async () => (await recordState(victim)) === 'stale');
  for (const n of d.config.storage.nodes)
    if (n.id !== victim) assert.equal(await recordState(n.id), 'fresh', n.id);
  for (let i = 0; i < 6; i++) {
    await alice.put(`/alice/stor/s/late${i}`, crypto.randomBytes(500), { copies: 2 });
    assert.ok(!(await sharksOf(`late${i}`)).includes(victim), `late${i} avoided ${victim}`);
  }
  // Reads of objects with a copy there fall back to the other copy.
  assert.ok(onVictim.length > 0);
  for (const r of onVictim) {
    const name = r.key.split('/').pop()!;
    assert.ok((await alice.get(`/alice/stor/s/${name}`)).equals(bodies.get(name)!), name);
  }

  const start = await runCli(d.config.stateDir, ['storage', 'start', victim]);
  assert.equal(start.status, 0, start.stderr);
  assert.match(start.stdout, /running at http:\/\/127\.0\.0\.1:\d+, heartbeat beating/);
  assert.equal(d.nodes.get(victim)?.url, url, 'the same address');
  assert.equal(readDeploymentState(d.config)!.storageNodes[victim]!.running, true);
  for (const r of onVictim) {
    const got = await d.storage.get(url, r.creator || r.owner, r.objectId);
    const chunks: Buffer[] = [];
    for await (const c of got.stream) chunks.push(c as Buffer);
    assert.equal(md5(Buffer.concat(chunks)), r.contentMD5, `${r.key}: its copy is served again`);
  }
  await until(`${victim}'s record is fresh again`, async () => (await recordState(victim)) === 'fresh');
});

test('the control endpoint: the operator token only, unknown nodes refused, stop and start idempotent', async () => {
  const victim = d.config.storage.nodes[1]!.id;
  const controlUrl = readDeploymentState(d.config)!.controlUrl!;
  for (const auth of [undefined, 'Token not-the-operator-token', `Internal ${d.internalToken}`]) {
    const res = await fetch(`${controlUrl}/storage/${victim}/stop`, {
      method: 'POST',
      headers: auth ? { authorization: auth } : {},
    });
    assert.equal(res.status, 401, `${auth}`);
    assert.equal(((await res.json()) as { code: string }).code, 'Unauthorized');
  }
  assert.ok(d.nodes.has(victim), 'a refused request stopped nothing');
  const bad = await runCli(d.config.stateDir, ['storage', 'stop', 'nope.stor.dc9.remora.local']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /UsageError: unknown storage node "nope\.stor\.dc9\.remora\.local"/);
  const viaHttp = await fetch(`${controlUrl}/storage/nope/stop`, {
    method: 'POST',
    headers: { authorization: `Token ${d.operatorToken}` },
  });
  assert.equal(viaHttp.status, 400);

  const node = d.nodes.get(victim)!;
  assert.equal(await d.startNode(victim), node, 'starting a running node changes nothing');
  await Promise.all([d.stopNode(victim), d.stopNode(victim)]);
  assert.equal(d.nodes.has(victim), false);
  const [a, b] = await Promise.all([d.startNode(victim), d.startNode(victim)]);
  assert.equal(a, b, 'two concurrent starts start it once');
  assert.equal(a.url, node.url);
  const list = (await (
    await fetch(`${controlUrl}/storage`, { headers: { authorization: `Token ${d.operatorToken}` } })
  ).json()) as { id: string; state: string; heartbeat: boolean }[];
  assert.deepEqual(
    list.map((n) => [n.id, n.state, n.heartbeat]),
    d.config.storage.nodes.map((n) => [n.id, 'running', true]),
  );
});

test('a paused heartbeat: the node serves, its record goes stale, writes avoid it; resumed, fresh again', async () => {
  // A node in the other datacenter than test 1's victim, which the front door may still suspect.
  const victim = d.config.storage.nodes.find((n) => n.datacenter !== dcOf(stopped))!.id;
  await d.pauseHeartbeat(victim);
  assert.ok(d.nodes.has(victim) && !d.heartbeats.has(victim));
  await until(`${victim}'s record is stale`, async () => (await recordState(victim)) === 'stale');
  for (let i = 0; i < 6; i++) {
    await alice.put(`/alice/stor/s/paused${i}`, crypto.randomBytes(300), { copies: 2 });
    assert.ok(!(await sharksOf(`paused${i}`)).includes(victim));
  }
  await d.resumeHeartbeat(victim);
  assert.equal(await recordState(victim), 'fresh', 'the resumed heartbeat beat at once');
});

test('against a real `remora up --detach`: stop (deployment.json says so), start on the same address, down', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-stopstart-'));
  const prefix = uniquePrefix();
  const env = { REMORA_PG_URL: testPgUrl() };
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: prefix }, storage: { nodes: defaultStorageNodes(2) } }),
  );
  const id = '2.stor.dc2.remora.local';
  try {
    const up = await runCli(stateDir, ['up', '--detach'], { env });
    assert.equal(up.status, 0, up.stderr);
    const before = JSON.parse(fs.readFileSync(path.join(stateDir, 'deployment.json'), 'utf8')) as {
      storageNodes: Record<string, { url: string }>;
    };
    const stop = await runCli(stateDir, ['storage', 'stop', id], { env });
    assert.equal(stop.status, 0, stop.stderr);
    const after = JSON.parse(fs.readFileSync(path.join(stateDir, 'deployment.json'), 'utf8')) as {
      storageNodes: Record<string, { url: string; running: boolean }>;
    };
    assert.deepEqual(
      [after.storageNodes[id]!.url, after.storageNodes[id]!.running],
      [before.storageNodes[id]!.url, false],
    );
    await assert.rejects(fetch(`${before.storageNodes[id]!.url}/manifest`), 'the node refuses connections');
    const start = await runCli(stateDir, ['storage', 'start', id], { env });
    assert.equal(start.status, 0, start.stderr);
    assert.match(start.stdout, new RegExp(before.storageNodes[id]!.url.replace(/\./g, '\\.')));
    const res = await fetch(`${before.storageNodes[id]!.url}/manifest`);
    assert.equal(res.status, 401, 'it answers again (and still wants the internal credential)');
  } finally {
    const down = await runCli(stateDir, ['down'], { env });
    assert.equal(down.status, 0, down.stderr);
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
