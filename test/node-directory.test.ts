/**
 * The storage-node directory: a node's URL from configuration, else from its heartbeat record,
 * never from the bundled deployment's state file; a known node without either is "address
 * unknown". Real PostgreSQL, a real storage node and its real heartbeat, no deployment.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openTestTier } from './helpers/pg.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import type { RemoraConfig, StorageNodeConfig } from '../src/config/config.js';
import type { StorageRecordValue } from '../src/metadata/types.js';
import { StorageNode } from '../src/storage/storage-node.js';
import { Heartbeat } from '../src/storage/heartbeat.js';
import { ADDRESS_UNKNOWN, NodeDirectory } from '../src/storage/node-directory.js';
import { deploymentStatePath } from '../src/deployment/context.js';

let tier: MetadataTier;
let config: RemoraConfig;
let cleanup: () => Promise<void>;
const running: StorageNode[] = [];
const beats: Heartbeat[] = [];

before(async () => {
  ({ tier, config, cleanup } = await openTestTier());
});

after(async () => {
  for (const h of beats) await h.stop();
  for (const n of running) await n.close();
  await cleanup();
});

/** A node outside any deployment, announcing its URL in its heartbeat. */
async function startNode(id: string, datacenter: string): Promise<StorageNode> {
  const n = await StorageNode.start({
    id,
    datacenter,
    root: path.join(config.stateDir, 'nodes', id),
    internalToken: 'node-directory-test',
  });
  running.push(n);
  const hb = Heartbeat.start({
    tier,
    id,
    datacenter,
    capacity: n.capacity,
    url: n.url,
    intervalMs: 3_600_000,
  });
  beats.push(hb);
  await hb.idle();
  return n;
}

test('directory: heartbeat URL, configured URL wins, address unknown, unknown node, never deployment.json', async () => {
  const far = await startNode('far.stor.dc9.example.com', 'dc9');
  const overridden = await startNode('over.stor.dc9.example.com', 'dc9');
  assert.equal(
    (await tier.getObject<StorageRecordValue>('manta_storage', far.id))?.value.url,
    far.url,
    'the heartbeat record carries the URL',
  );
  // A stale-looking deployment state file of a live process (this one) naming other addresses.
  fs.writeFileSync(
    deploymentStatePath(config),
    JSON.stringify({
      pid: process.pid,
      startedAt: new Date().toISOString(),
      postgresUrl: 'postgres://nowhere',
      frontdoorUrl: 'http://127.0.0.1:9',
      storageNodes: {
        [far.id]: { url: 'http://127.0.0.1:9', datacenter: 'dc9', root: '/x' },
        'state.stor.dc1.example.com': { url: 'http://127.0.0.1:9', datacenter: 'dc1', root: '/x' },
      },
      operatorToken: 'x',
    }),
  );
  const configured: StorageNodeConfig[] = [
    { id: overridden.id, datacenter: 'dc9', url: 'http://10.0.0.7:8080' },
    { id: 'quiet.stor.dc1.example.com', datacenter: 'dc1' },
  ];
  const dir = await NodeDirectory.load(configured, tier);
  assert.equal(dir.url(far.id), far.url, 'from the heartbeat record, not the state file');
  assert.equal(dir.entry(far.id)?.source, 'heartbeat');
  assert.equal(dir.url(overridden.id), 'http://10.0.0.7:8080', 'configuration wins');
  assert.equal(dir.entry(overridden.id)?.source, 'config');
  assert.equal(dir.has('quiet.stor.dc1.example.com'), true, 'configured, never beat: known');
  assert.equal(dir.url('quiet.stor.dc1.example.com'), undefined);
  assert.equal(dir.describe('quiet.stor.dc1.example.com'), ADDRESS_UNKNOWN);
  assert.equal(dir.has('state.stor.dc1.example.com'), false, 'the state file is not a source');
  assert.equal(dir.has('nosuch.stor.example.com'), false);
  assert.equal(dir.describe('nosuch.stor.example.com'), 'unknown node');
  assert.deepEqual(
    dir.list().map((e) => e.id),
    [far.id, overridden.id, 'quiet.stor.dc1.example.com'],
  );

  // The node comes back on another port: its next heartbeat announces it, reload() picks it up.
  await beats.shift()!.stop();
  await far.close();
  running.splice(running.indexOf(far), 1);
  const back = await startNode(far.id, 'dc9');
  assert.notEqual(back.url, far.url);
  assert.equal(dir.url(far.id), far.url, 'cached until reloaded');
  await dir.refresh(); // within the TTL: still cached
  assert.equal(dir.url(far.id), far.url);
  await dir.reload();
  assert.equal(dir.url(far.id), back.url);
});
