import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { startTestDeployment } from './helpers/deployment.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { FrontDoorObjectStore } from '../src/objectstore/frontdoor-store.js';
import { snapshotShard } from '../src/dumps/snapshot.js';
import { isRemoraError } from '../src/core/errors.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';

let d: Deployment;
let cleanup: () => Promise<void>;
let client: FrontDoorClient;
let store: FrontDoorObjectStore;

before(async () => {
  ({ d, cleanup } = await startTestDeployment());
  client = d.client();
  store = new FrontDoorObjectStore(client);
});
after(async () => {
  client.close();
  await cleanup();
});

async function read(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('front-door object store: put (buffer and stream), get, head with size, sha256 and metadata, list, delete', async () => {
  const a = crypto.randomBytes(70_000);
  const r1 = await store.put('/poseidon/stor/remora-test/x/a.bin', a, {
    'm-snapshot-time': '2026-11-23T00:00:00.000Z',
    note: 'kept',
  });
  assert.equal(r1.bytes, a.length);
  assert.equal(r1.sha256, crypto.createHash('sha256').update(a).digest('hex'));
  const b = crypto.randomBytes(300_000);
  const r2 = await store.put(
    '/poseidon/stor/remora-test/x/y/b.bin',
    Readable.from([b.subarray(0, 1000), b.subarray(1000)]),
  );
  assert.equal(r2.bytes, b.length);
  assert.deepEqual(await read(await store.get('/poseidon/stor/remora-test/x/a.bin')), a);
  assert.deepEqual(await read(await store.get('/poseidon/stor/remora-test/x/y/b.bin')), b);
  const h = await store.head('/poseidon/stor/remora-test/x/a.bin');
  assert.ok(h);
  assert.equal(h.bytes, a.length);
  assert.equal(h.sha256, r1.sha256);
  assert.deepEqual(h.meta, { 'm-snapshot-time': '2026-11-23T00:00:00.000Z', note: 'kept' });
  // m-* metadata is visible to any Manta client as a header, as m-mako-dump-time was
  const raw = await client.head('/poseidon/stor/remora-test/x/a.bin');
  assert.equal(raw?.headers['m-snapshot-time'], '2026-11-23T00:00:00.000Z');
  assert.equal(await store.head('/poseidon/stor/remora-test/x/none'), undefined);
  assert.deepEqual(await store.list('/poseidon/stor/remora-test/'), [
    '/poseidon/stor/remora-test/x/a.bin',
    '/poseidon/stor/remora-test/x/y/b.bin',
  ]);
  assert.deepEqual(await store.list('/poseidon/stor/remora-test/x/a'), [
    '/poseidon/stor/remora-test/x/a.bin',
  ]);
  await store.delete('/poseidon/stor/remora-test/x/a.bin');
  await store.delete('/poseidon/stor/remora-test/x/a.bin'); // absent: not an error
  await assert.rejects(store.get('/poseidon/stor/remora-test/x/a.bin'), (e) =>
    isRemoraError(e, 'ObjectNotFound'),
  );
  await assert.rejects(store.put('/poseidon/stor/../x', Buffer.from('x')), (e) =>
    isRemoraError(e, 'InvalidPath'),
  );
});

test('a shard snapshot written through the front door lands under /poseidon/stor/manatee_backups with its instant', async () => {
  const shard = d.tier.indexShards[0]!;
  const snap = await snapshotShard(shard, store);
  const listed = await store.list(`/poseidon/stor/manatee_backups/${shard.name}/`);
  assert.ok(listed.length >= 1, 'the dump is listed');
  const path = listed[listed.length - 1]!;
  const h = await store.head(path);
  assert.ok(h && h.bytes > 0);
  assert.equal(typeof snap, 'object');
  assert.ok(
    Object.values(h.meta).some((v) => /^\d{4}-\d\d-\d\dT/.test(v)),
    `snapshot instant kept: ${JSON.stringify(h.meta)}`,
  );
});
