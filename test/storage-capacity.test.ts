import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { isRemoraError } from '../src/core/errors.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const id = (n: number) => `a0000000-0000-4000-8000-${n.toString().padStart(12, '0')}`;
/** 0.05 MB = 52,428 bytes: small enough that a refused body fits in loopback socket buffers. */
const CAP_MB = 0.05;
const CAP = CAP_MB * 1024 * 1024;

let dir: string;
let root: string;
const client = new StorageClient({ timeoutMs: 5000, internalToken: TEST_INTERNAL_TOKEN });

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-capacity-'));
  root = path.join(dir, 'small');
});
after(() => {
  client.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function copies(): string[] {
  return fs.readdirSync(path.join(root, OWNER)).sort();
}

test('capacity cap: 507 StorageNodeFull, overwrite counts growth, counted again after restart', async () => {
  const small = await StorageNode.start({
    root,
    id: 's',
    datacenter: 'dc1',
    capacityMB: CAP_MB,
    internalToken: TEST_INTERNAL_TOKEN,
  });
  try {
    await client.put(small.url, OWNER, id(10), Buffer.alloc(30_000, 1));
    await assert.rejects(client.put(small.url, OWNER, id(11), Buffer.alloc(30_000, 2)), (e) =>
      isRemoraError(e, 'StorageNodeFull'),
    );
    await client.put(small.url, OWNER, id(10), Buffer.alloc(40_000, 3));
    const snap = await small.capacity.snapshot();
    assert.equal(snap.usedBytes, 40_000);
    assert.equal(snap.percentUsed, Math.ceil((40_000 / CAP) * 100));
    assert.equal(snap.availableMB, 0);
    assert.deepEqual(copies(), [id(10)]);
  } finally {
    await small.close();
  }
  const again = await StorageNode.start({
    root,
    id: 's',
    datacenter: 'dc1',
    capacityMB: CAP_MB,
    internalToken: TEST_INTERNAL_TOKEN,
  });
  try {
    assert.equal((await again.capacity.snapshot()).usedBytes, 40_000, 'bytes already under root count');
  } finally {
    await again.close();
  }
});

test('capacity cap: a streamed body without Content-Length is cut at the cap; nothing left behind', async () => {
  const small = await StorageNode.start({
    root,
    id: 's',
    datacenter: 'dc1',
    capacityMB: CAP_MB,
    internalToken: TEST_INTERNAL_TOKEN,
  });
  try {
    const chunks = Array.from({ length: 20 }, () => Buffer.alloc(1000, 4));
    // 12,428 bytes free: 20,000 streamed bytes must be refused part-way.
    const err = await client.put(small.url, OWNER, id(12), Readable.from(chunks)).then(
      () => undefined,
      (e: unknown) => e,
    );
    // The node answers 507 and closes; the client may see the answer or the closed socket first.
    assert.ok(
      isRemoraError(err, 'StorageNodeFull') || isRemoraError(err, 'StorageNodeUnreachable'),
      String(err),
    );
    assert.deepEqual(copies(), [id(10)]);
    assert.deepEqual(fs.readdirSync(path.join(root, 'nginx_temp')), []);
    // The refused upload's reservation was released: a body that fits still goes in.
    await client.put(small.url, OWNER, id(13), Readable.from([Buffer.alloc(10_000, 5)]));
    assert.equal((await small.capacity.snapshot()).usedBytes, 50_000);
  } finally {
    await small.close();
  }
});
