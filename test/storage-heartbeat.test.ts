import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openTestTier, testConfig, testPgUrl } from './helpers/pg.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import type { RemoraConfig } from '../src/config/config.js';
import { ManualClock } from '../src/core/clock.js';
import { type StorageRecordValue, WRITES_DISABLED_TIMESTAMP } from '../src/metadata/types.js';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';
import { Heartbeat } from '../src/storage/heartbeat.js';
import { disableWrites, enableWrites, storageStatus } from '../src/storage/storage-admin.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const OBJ = 'a0000000-0000-4000-8000-000000000001';
const clock = new ManualClock(Date.parse('2024-03-01T12:00:00Z'));
let tier: MetadataTier;
let config: RemoraConfig;
let cleanup: () => Promise<void>;
let node: StorageNode;
const client = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN });
const heartbeats: Heartbeat[] = [];

before(async () => {
  ({ tier, config, cleanup } = await openTestTier(testConfig(), clock));
  const n = config.storage.nodes[0]!;
  node = await StorageNode.start({
    root: path.join(config.stateDir, 'nodes', n.id),
    id: n.id,
    datacenter: n.datacenter,
    capacityMB: 10,
    internalToken: TEST_INTERNAL_TOKEN,
  });
});

after(async () => {
  for (const hb of heartbeats) await hb.stop();
  client.close();
  await node.close();
  await cleanup();
});

function startHeartbeat(intervalMs = 3_600_000): Heartbeat {
  const hb = Heartbeat.start({
    tier,
    id: node.id,
    datacenter: node.datacenter,
    capacity: node.capacity,
    intervalMs,
    clock,
    hostname: 'test-host',
  });
  heartbeats.push(hb);
  return hb;
}

async function record(): Promise<StorageRecordValue | undefined> {
  return (await tier.getObject<StorageRecordValue>('manta_storage', node.id))?.value;
}

test('heartbeat: first beat at once, minnow-shaped record, capacity follows writes', async () => {
  const hb = startHeartbeat();
  await hb.idle();
  const r = await record();
  assert.ok(r);
  assert.deepEqual(r, {
    manta_storage_id: node.id,
    datacenter: node.datacenter,
    hostname: 'test-host',
    availableMB: 10,
    percentUsed: 0,
    timestamp: clock.now(),
    filesystem: '/manta',
  });
  await client.put(node.url, OWNER, OBJ, Buffer.alloc(2 * 1024 * 1024 + 1, 7));
  clock.advance(5000);
  await hb.beat();
  const r2 = await record();
  assert.equal(r2?.availableMB, 7, 'floor((10 MiB - 2 MiB - 1) / 1 MiB)');
  assert.equal(r2?.percentUsed, 21, 'ceil(used / total × 100)');
  assert.equal(r2?.timestamp, clock.now());
  await hb.stop();
});

test('heartbeat: the timer keeps beating at its interval and stop() ends it', async () => {
  const hb = startHeartbeat(20);
  await hb.idle();
  clock.advance(1000);
  const want = clock.now();
  const deadline = Date.now() + 3000;
  while ((await record())?.timestamp !== want) {
    assert.ok(Date.now() < deadline, 'a later beat wrote the advanced clock');
    await new Promise((r) => setTimeout(r, 10));
  }
  await hb.stop();
  clock.advance(1000);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal((await record())?.timestamp, want, 'no beat after stop()');
});

test('disable-writes: stale at once, stays stale across beats and a restarted heartbeat; enable-writes: fresh', async () => {
  const hb = startHeartbeat();
  await hb.idle();
  assert.equal(await disableWrites(tier, node.id, 'evacuating'), true);
  assert.equal((await record())?.timestamp, WRITES_DISABLED_TIMESTAMP, 'effective before the next beat');

  clock.advance(5000);
  await hb.beat();
  assert.equal((await record())?.timestamp, WRITES_DISABLED_TIMESTAMP, 'the heartbeat honours the setting');
  await hb.stop();

  // A restart: a new heartbeat on the same database reads the persisted setting.
  const restarted = startHeartbeat();
  await restarted.idle();
  const r = await record();
  assert.equal(r?.timestamp, WRITES_DISABLED_TIMESTAMP);
  assert.equal(r?.availableMB, 7, 'capacity is still reported while disabled');
  const [status] = await storageStatus(tier, [node], clock, config.picker.lagMs);
  assert.equal(status?.writesEnabled, false);
  assert.equal(status?.record, 'disabled');
  assert.equal(status?.warning, undefined);

  await enableWrites(tier, node.id);
  const [pending] = await storageStatus(tier, [node], clock, config.picker.lagMs);
  assert.match(pending?.warning ?? '', /next heartbeat/);
  clock.advance(5000);
  await restarted.beat();
  assert.equal((await record())?.timestamp, clock.now());
  const [fresh] = await storageStatus(tier, [node], clock, config.picker.lagMs);
  assert.equal(fresh?.record, 'fresh');
  assert.equal(fresh?.heartbeatAgeMs, 0);
  clock.advance(config.picker.lagMs + 1);
  const [late] = await storageStatus(tier, [node], clock, config.picker.lagMs);
  assert.equal(late?.record, 'stale');
  await restarted.stop();
});

test('disable-writes on a node that never beat: first beat is already stale', async () => {
  const other = config.storage.nodes[1]!;
  assert.equal(await disableWrites(tier, other.id), false);
  const hb = Heartbeat.start({
    tier,
    id: other.id,
    datacenter: other.datacenter,
    capacity: node.capacity,
    intervalMs: 3_600_000,
    clock,
  });
  heartbeats.push(hb);
  await hb.idle();
  const r = await tier.getObject<StorageRecordValue>('manta_storage', other.id);
  assert.equal(r?.value.timestamp, WRITES_DISABLED_TIMESTAMP);
  await hb.stop();
  await enableWrites(tier, other.id);
});

function cli(...args: string[]) {
  // The CLI connects through config: same server, same database prefix as this test's tier.
  fs.writeFileSync(
    path.join(config.stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: config.postgres.databasePrefix } }),
  );
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/main/cli.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, REMORA_PG_URL: testPgUrl(), REMORA_STATE_DIR: config.stateDir },
  });
}

test('CLI: storage disable-writes / show --json / enable-writes / unknown id / --help', () => {
  const id = node.id;
  const off = cli('storage', 'disable-writes', id, '--reason', 'test');
  assert.equal(off.status, 0, off.stderr);
  assert.match(off.stdout, /writes disabled; wrote a stale manta_storage record/);

  const show = cli('--json', 'storage', 'show', id);
  assert.equal(show.status, 0, show.stderr);
  const parsed = JSON.parse(show.stdout) as { id: string; writesEnabled: boolean; record: string }[];
  assert.equal(parsed.length, 1);
  assert.equal(parsed[0]?.writesEnabled, false);
  assert.equal(parsed[0]?.record, 'disabled');

  const table = cli('storage', 'show');
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`${id.replace(/\./g, '\\.')}\\s+dc1\\s+disabled\\s+disabled`));

  const on = cli('storage', 'enable-writes', id);
  assert.equal(on.status, 0, on.stderr);
  assert.match(on.stdout, /writes enabled/);

  const bad = cli('storage', 'disable-writes', 'nope.stor');
  assert.match(bad.stderr, /UsageError: unknown storage node "nope\.stor"; known ids: 1\.stor\.dc1/);

  const help = cli('storage', 'disable-writes', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /manta-mako-adm disable-writes/);
});

test('CLI: an error exits with the catalog exit code', () => {
  const bad = cli('storage', 'disable-writes', 'nope.stor');
  assert.equal(bad.status, 2);
});
