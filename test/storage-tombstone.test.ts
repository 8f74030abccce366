/**
 * The tombstone tree's requests on a real loopback storage node (src/storage/tombstone-handlers.ts):
 * list the days, purge a day, restore a copy; the credential, method and path checks in that
 * order; nothing outside the root is ever touched (raw requests over a socket, a sentinel beside
 * the root, a symlink planted in a tombstone day).
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { restoreFromTombstone } from '../src/storage/tombstone-restore.js';
import { isRemoraError } from '../src/core/errors.js';
import { rawRequest } from './storage-raw-http.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const OTHER = '5ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const id = (n: number) => `b0000000-0000-4000-8000-${n.toString().padStart(12, '0')}`;
const AUTH = { Authorization: `Internal ${TEST_INTERNAL_TOKEN}` };

let parent: string;
let root: string;
let sentinel: string;
let node: StorageNode;
const client = new StorageClient({ timeoutMs: 5000, internalToken: TEST_INTERNAL_TOKEN });

before(async () => {
  parent = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-tombstone-'));
  root = path.join(parent, 'root');
  sentinel = path.join(parent, 'sentinel');
  fs.writeFileSync(sentinel, 'do not touch');
  // Capped, so the node keeps a usage counter the purge must bring down.
  node = await StorageNode.start({
    root,
    id: '1.stor.dc1.remora.local',
    datacenter: 'dc1',
    capacityMB: 10,
    internalToken: TEST_INTERNAL_TOKEN,
  });
});

after(async () => {
  client.close();
  await node.close();
  fs.rmSync(parent, { recursive: true, force: true });
});

/** Every file under root (relative path → content), to prove a refused request changed nothing. */
function contentsUnder(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    if (e.isFile()) out[path.relative(dir, p)] = fs.readFileSync(p, 'utf8');
    else if (e.isSymbolicLink()) out[path.relative(dir, p)] = `-> ${fs.readlinkSync(p)}`;
  }
  return out;
}

async function putAndTombstone(n: number, body: string, day: string, owner = OWNER): Promise<void> {
  await client.put(node.url, owner, id(n), Buffer.from(body));
  assert.equal(await client.tombstone(node.url, owner, id(n), day), 'moved');
}

test('list the days with files and bytes; restore puts a copy back and never overwrites one', async () => {
  await putAndTombstone(1, 'one', '2024-03-01');
  await putAndTombstone(2, 'two!', '2024-03-01');
  await putAndTombstone(3, 'three', '2024-03-02');
  fs.mkdirSync(path.join(root, 'tombstone', 'not-a-day'), { recursive: true });
  assert.deepEqual(await client.tombstoneDays(node.url), [
    { day: '2024-03-01', files: 2, bytes: 7 },
    { day: '2024-03-02', files: 1, bytes: 5 },
  ]);

  assert.equal(await client.restore(node.url, OWNER, id(1), '2024-03-01'), 'restored');
  assert.equal(fs.readFileSync(path.join(root, OWNER, id(1)), 'utf8'), 'one');
  assert.equal(fs.existsSync(path.join(root, 'tombstone', '2024-03-01', id(1))), false);
  assert.equal((await client.get(node.url, OWNER, id(1))).contentLength, 3, 'served again');
  assert.equal(await client.restore(node.url, OWNER, id(1), '2024-03-01'), 'absent', 'a second restore');
  assert.equal(await client.restore(node.url, OWNER, id(3), '2024-03-01'), 'absent', 'another day holds it');

  // A copy already in place is never replaced; the tombstone stays where it was.
  await client.put(node.url, OWNER, id(2), Buffer.from('new bytes'));
  assert.equal(await client.restore(node.url, OWNER, id(2), '2024-03-01'), 'exists');
  assert.equal(fs.readFileSync(path.join(root, OWNER, id(2)), 'utf8'), 'new bytes');
  assert.equal(fs.readFileSync(path.join(root, 'tombstone', '2024-03-01', id(2)), 'utf8'), 'two!');

  // Restored under another directory (creator ≠ owner): the owner directory is created.
  assert.equal(await client.restore(node.url, OTHER, id(3), '2024-03-02'), 'restored');
  assert.equal(fs.readFileSync(path.join(root, OTHER, id(3)), 'utf8'), 'three');
});

test('restoreFromTombstone: the newest day that holds the copy, or the day asked for', async () => {
  // id(4) tombstoned twice: an old version on 03-05, the newest on 03-07.
  await putAndTombstone(4, 'old', '2024-03-05');
  await putAndTombstone(4, 'newest', '2024-03-07');
  await putAndTombstone(5, 'five', '2024-03-06');
  const r = await restoreFromTombstone(client, node.url, OWNER, id(4));
  assert.deepEqual(r, { outcome: 'restored', day: '2024-03-07', tried: ['2024-03-07'] });
  assert.equal(fs.readFileSync(path.join(root, OWNER, id(4)), 'utf8'), 'newest');
  assert.deepEqual(await restoreFromTombstone(client, node.url, OWNER, id(4)), {
    outcome: 'exists',
    day: '2024-03-05',
    tried: ['2024-03-07', '2024-03-06', '2024-03-05'],
  });
  assert.deepEqual(await restoreFromTombstone(client, node.url, OWNER, id(5), { day: '2024-03-05' }), {
    outcome: 'absent',
    tried: ['2024-03-05'],
  });
  const none = await restoreFromTombstone(client, node.url, OWNER, id(99));
  assert.equal(none.outcome, 'absent');
  assert.ok(none.tried.length >= 4, 'every day was tried');
});

test('purge a day: files and bytes freed, the usage counter goes down, a second purge finds nothing', async () => {
  await putAndTombstone(10, 'x'.repeat(1000), '2024-02-01');
  await putAndTombstone(11, 'y'.repeat(24), '2024-02-01');
  // A symlink planted in the day pointing outside the root: removed, never followed.
  fs.symlinkSync(sentinel, path.join(root, 'tombstone', '2024-02-01', 'planted'));
  fs.symlinkSync(parent, path.join(root, 'tombstone', '2024-02-01', 'planted-dir'));
  const usedBefore = (await node.capacity.snapshot()).usedBytes;
  assert.deepEqual(await client.purgeTombstoneDay(node.url, '2024-02-01'), {
    day: '2024-02-01',
    files: 2,
    bytes: 1024,
    existed: true,
  });
  assert.equal(fs.existsSync(path.join(root, 'tombstone', '2024-02-01')), false);
  assert.equal(fs.readFileSync(sentinel, 'utf8'), 'do not touch');
  assert.ok(fs.existsSync(path.join(parent, 'root')), 'the symlinked directory was not followed');
  assert.equal((await node.capacity.snapshot()).usedBytes, usedBefore - 1024);
  assert.deepEqual(await client.purgeTombstoneDay(node.url, '2024-02-01'), {
    day: '2024-02-01',
    files: 0,
    bytes: 0,
    existed: false,
  });
  assert.ok(!(await client.tombstoneDays(node.url)).some((d) => d.day === '2024-02-01'));
  await assert.rejects(client.purgeTombstoneDay(node.url, '2024-02-30'), (e) =>
    isRemoraError(e, 'InvalidPath'),
  );
  await assert.rejects(client.restore(node.url, '../x', id(1), '2024-03-01'), (e) =>
    isRemoraError(e, 'InvalidPath'),
  );
});

test('credential first, then method, then path: refused requests change nothing, nothing escapes the root', async () => {
  await putAndTombstone(20, 'twenty', '2024-01-01');
  const before = contentsUnder(root);
  const requests: [string, string, Record<string, string>][] = [
    ['GET', '/tombstone', {}],
    ['DELETE', '/tombstone/2024-01-01', {}],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: `/${OWNER}/${id(20)}` }],
    ['PUT', `/tombstone/2024-01-01/${id(20)}`, {}],
    ['POST', '/tombstone/2024-01-01', {}],
    ['GET', '/tombstone/../sentinel', {}],
  ];
  for (const auth of [undefined, 'Internal wrong-token-0123456789abcdef', `Token ${TEST_INTERNAL_TOKEN}`]) {
    for (const [method, target, headers] of requests) {
      const r = await rawRequest(node.url, method, target, {
        ...headers,
        ...(auth ? { Authorization: auth } : {}),
      });
      assert.equal(r.status, 401, `${method} ${target} with ${auth ?? 'nothing'} → ${r.status}`);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'InternalCredentialRefused');
    }
  }
  const stranger = new StorageClient({ timeoutMs: 5000, internalToken: 'another-deployments-token-0123' });
  try {
    for (const attempt of [
      stranger.tombstoneDays(node.url),
      stranger.purgeTombstoneDay(node.url, '2024-01-01'),
      stranger.restore(node.url, OWNER, id(20), '2024-01-01'),
    ])
      await assert.rejects(attempt, (e) => isRemoraError(e, 'InternalCredentialRefused'));
  } finally {
    stranger.close();
  }
  assert.deepEqual(contentsUnder(root), before);

  for (const [method, target] of [
    ['PUT', `/tombstone/2024-01-01/${id(20)}`],
    ['HEAD', '/tombstone'],
    ['COPY', '/tombstone/2024-01-01'],
  ] as const) {
    const r = await rawRequest(node.url, method, target, AUTH, method === 'PUT' ? 'x' : '');
    assert.equal(r.status, 405, `${method} ${target}`);
    assert.equal(r.headers.allow, 'GET, POST, DELETE, MOVE');
  }

  const bad: [string, string, Record<string, string>?][] = [
    ['GET', '/tombstone/'],
    ['GET', '/tombstone?day=2024-01-01'],
    ['GET', '/tombstone/2024-01-01'],
    ['GET', '/tombstone/..'],
    ['DELETE', '/tombstone'],
    ['DELETE', '/tombstone/'],
    ['DELETE', '/tombstone/..'],
    ['DELETE', '/tombstone/%2e%2e'],
    ['DELETE', '/tombstone/2024-01-01/..'],
    ['DELETE', '/tombstone/2024-01-01/../..'],
    ['DELETE', '/tombstone/../../sentinel'],
    ['DELETE', '/tombstone/2024-01-01%2F..%2F..'],
    ['DELETE', '/tombstone/2024-13-01'],
    ['DELETE', '/tombstone/2024-1-01'],
    ['DELETE', '/tombstone/2024-01-01/'],
    ['DELETE', `/tombstone/2024-01-01/${id(20)}`],
    ['DELETE', '/tombstone//2024-01-01'],
    ['DELETE', '/tombstone/2024-01-01?x=1'],
    ['DELETE', '/tombstone/not-a-day'],
    ['POST', '/tombstone'],
    ['POST', '/tombstone/..'],
    ['POST', '/tombstone/2024-02-30'],
    ['POST', `/tombstone/2024-01-01/${id(20)}`],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: '/../sentinel' }],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: `/${OWNER}/../../sentinel` }],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: `/${OWNER}/${id(21)}` }],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: `/tombstone/2024-01-02/${id(20)}` }],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: `/${OWNER.toUpperCase()}/${id(20)}` }],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}`, { Destination: `${parent}/sentinel` }],
    ['MOVE', `/tombstone/2024-01-01/../../../sentinel`, { Destination: `/${OWNER}/${id(20)}` }],
    ['MOVE', `/tombstone/2024-01-01/${id(20)}/x`, { Destination: `/${OWNER}/${id(20)}` }],
    ['MOVE', `/tombstone/2024-02-30/${id(20)}`, { Destination: `/${OWNER}/${id(20)}` }],
    ['MOVE', `/tombstone/2024-01-01/${id(20).toUpperCase()}`, { Destination: `/${OWNER}/${id(20)}` }],
  ];
  for (const [method, target, headers] of bad) {
    const r = await rawRequest(node.url, method, target, { ...AUTH, ...headers });
    assert.equal(r.status, 400, `${method} ${target} ${JSON.stringify(headers)} → ${r.status} ${r.body}`);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'InvalidPath');
  }
  assert.deepEqual(contentsUnder(root), before, 'no refused request changed a file');
  assert.equal(fs.readFileSync(sentinel, 'utf8'), 'do not touch');
  // The full Destination form (`/manta/<owner>/<oid>`, as mako_gc.sh spells paths) is accepted.
  const ok = await rawRequest(node.url, 'MOVE', `/tombstone/2024-01-01/${id(20)}`, {
    ...AUTH,
    Destination: `/manta/${OWNER}/${id(20)}`,
  });
  assert.equal(ok.status, 204, ok.body);
  assert.equal(fs.readFileSync(path.join(root, OWNER, id(20)), 'utf8'), 'twenty');
});
