/**
 * The batched tombstone request (`POST /tombstone/<day>`, src/storage/tombstone-handlers.ts) on
 * real loopback storage nodes: one answer per copy in order; the single MOVE's durability (every
 * rename, then the day's and each source directory's fsync, before any 'moved'); per-copy
 * failures; the credential; named errors for a malformed or oversized batch; and a node process
 * killed mid-batch leaves every copy in place or in the tombstone, never lost, never twice.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { durableFileOps, type DurableFileOps } from '../src/storage/storage-handlers.js';
import { MAX_TOMBSTONE_BATCH, MAX_TOMBSTONE_BATCH_BYTES } from '../src/storage/tombstone-handlers.js';
import { isRemoraError } from '../src/core/errors.js';
import { rawRequest } from './storage-raw-http.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const OTHER = '5ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const DAY = '2024-05-01';
const AUTH = { Authorization: `Internal ${TEST_INTERNAL_TOKEN}` };
const client = new StorageClient({ timeoutMs: 10_000, internalToken: TEST_INTERNAL_TOKEN });

let parent: string;
/** Every rename and fsync the node makes, in order (paths relative to its root). */
const events: string[] = [];
/** Set by a test: make these calls fail as a disk would (EIO). */
let failRenameOf: string | undefined;
let failFsyncOf: string | undefined;
let root: string;
let node: StorageNode;

before(async () => {
  parent = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-tombatch-'));
  root = path.join(parent, 'root');
  const rel = (p: string) => path.relative(root, p);
  const eio = (p: string) => Object.assign(new Error(`EIO: i/o error, ${p}`), { code: 'EIO' });
  const fileOps: DurableFileOps = {
    async fsync(p, flags) {
      if (failFsyncOf !== undefined && rel(p) === failFsyncOf) throw eio(p);
      await durableFileOps.fsync(p, flags);
      events.push(`fsync ${rel(p)}`);
    },
    async rename(from, to) {
      if (failRenameOf !== undefined && path.basename(from) === failRenameOf) throw eio(from);
      await durableFileOps.rename(from, to);
      events.push(`rename ${rel(from)}`);
    },
  };
  node = await StorageNode.start({
    root,
    id: '1.stor.dc1.remora.local',
    datacenter: 'dc1',
    internalToken: TEST_INTERNAL_TOKEN,
    fileOps,
  });
});

after(async () => {
  client.close();
  await node.close();
  fs.rmSync(parent, { recursive: true, force: true });
});

async function putCopies(n: number, owner: string, url = node.url): Promise<string[]> {
  const ids = Array.from({ length: n }, () => crypto.randomUUID());
  for (const id of ids) await client.put(url, owner, id, Buffer.from(`body of ${id}`));
  return ids;
}

const inPlace = (r: string, owner: string, id: string) => fs.existsSync(path.join(r, owner, id));
const inTomb = (r: string, id: string, day = DAY) => fs.existsSync(path.join(r, 'tombstone', day, id));

test('a batch: one answer per copy in order, every rename durable (day and source fsynced) before the answer', async () => {
  const mine = await putCopies(3, OWNER);
  const theirs = await putCopies(2, OTHER);
  const missing = crypto.randomUUID();
  const copies = [
    { owner: OWNER, objectId: mine[0]! },
    { owner: OTHER, objectId: theirs[0]! },
    { owner: OWNER, objectId: missing },
    { owner: OWNER, objectId: mine[1]! },
    { owner: OTHER, objectId: theirs[1]! },
  ];
  events.length = 0;
  const results = await client.tombstoneBatch(node.url, DAY, copies);
  const answered = events.length;
  assert.deepEqual(
    results.map((r) => [r.owner, r.objectId, r.result]),
    copies.map((c) => [c.owner, c.objectId, c.objectId === missing ? 'absent' : 'moved']),
  );
  for (const c of copies.filter((c) => c.objectId !== missing)) {
    assert.equal(inPlace(root, c.owner, c.objectId), false);
    assert.equal(
      fs.readFileSync(path.join(root, 'tombstone', DAY, c.objectId), 'utf8'),
      `body of ${c.objectId}`,
    );
    await assert.rejects(client.get(node.url, c.owner, c.objectId), (e) =>
      isRemoraError(e, 'ObjectNotFound'),
    );
  }
  assert.equal(inPlace(root, OWNER, mine[2]!), true, 'a copy not named stays');
  // Four renames, then one fsync of the day and one of each source directory: three, not eight.
  assert.deepEqual(
    events.slice(0, 4).map((e) => e.split(' ')[0]),
    ['rename', 'rename', 'rename', 'rename'],
  );
  assert.deepEqual(
    events.slice(4).sort(),
    [`fsync ${OTHER}`, `fsync ${OWNER}`, `fsync tombstone/${DAY}`].sort(),
  );
  assert.equal(answered, 7, 'every rename and fsync happened before the answer');

  // Again: everything already moved is absent, nothing is fsynced for nothing.
  events.length = 0;
  const again = await client.tombstoneBatch(node.url, DAY, copies);
  assert.deepEqual(
    again.map((r) => r.result),
    copies.map(() => 'absent'),
  );
  assert.deepEqual(events, []);
});

test('per-copy failures: a failed rename or source fsync answers error for those copies only', async () => {
  const a = await putCopies(3, OWNER);
  const b = await putCopies(2, OTHER);
  failRenameOf = a[1];
  failFsyncOf = OTHER;
  try {
    const results = await client.tombstoneBatch(node.url, DAY, [
      ...a.map((objectId) => ({ owner: OWNER, objectId })),
      ...b.map((objectId) => ({ owner: OTHER, objectId })),
    ]);
    assert.deepEqual(
      results.map((r) => r.result),
      ['moved', 'error', 'moved', 'error', 'error'],
    );
    for (const r of results.filter((r) => r.result === 'error'))
      assert.equal(r.result === 'error' && r.code, 'EIO', JSON.stringify(r));
    assert.equal(inPlace(root, OWNER, a[1]!), true, 'the copy whose rename failed is in place');
    for (const id of b)
      assert.equal(inTomb(root, id), true, 'renamed, but not answered moved: its fsync failed');
  } finally {
    failRenameOf = undefined;
    failFsyncOf = undefined;
  }

  // A directory where the tombstone would go: the rename fails, the copy stays, the answer says so.
  const [blocked] = await putCopies(1, OWNER);
  fs.mkdirSync(path.join(root, 'tombstone', DAY, blocked!, 'x'), { recursive: true });
  const [r] = await client.tombstoneBatch(node.url, DAY, [{ owner: OWNER, objectId: blocked! }]);
  assert.equal(r?.result, 'error', JSON.stringify(r));
  assert.equal(inPlace(root, OWNER, blocked!), true);

  // The day's fsync failing fails the whole request: no copy is answered 'moved'.
  const c = await putCopies(2, OWNER);
  failFsyncOf = `tombstone/${DAY}`;
  try {
    await assert.rejects(
      client.tombstoneBatch(
        node.url,
        DAY,
        c.map((objectId) => ({ owner: OWNER, objectId })),
      ),
      (e) => isRemoraError(e, 'Internal'),
    );
  } finally {
    failFsyncOf = undefined;
  }
});

test('credential: a batch without it, or with another deployment’s, is refused and moves nothing', async () => {
  const [id] = await putCopies(1, OWNER);
  const body = JSON.stringify({ copies: [{ owner: OWNER, objectId: id }] });
  for (const auth of [undefined, 'Internal wrong-token-0123456789abcdef']) {
    const r = await rawRequest(
      node.url,
      'POST',
      `/tombstone/${DAY}`,
      { 'content-type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
      body,
    );
    assert.equal(r.status, 401, r.body);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'InternalCredentialRefused');
  }
  const stranger = new StorageClient({ timeoutMs: 5000, internalToken: 'another-deployments-token-0123' });
  try {
    await assert.rejects(stranger.tombstoneBatch(node.url, DAY, [{ owner: OWNER, objectId: id! }]), (e) =>
      isRemoraError(e, 'InternalCredentialRefused'),
    );
  } finally {
    stranger.close();
  }
  assert.equal(inPlace(root, OWNER, id!), true);
});

test('malformed or oversized batches: named errors, nothing moved; the client splits a long list', async () => {
  const [id] = await putCopies(1, OWNER);
  const entry = { owner: OWNER, objectId: id };
  const send = (body: string) =>
    rawRequest(node.url, 'POST', `/tombstone/${DAY}`, { ...AUTH, 'content-type': 'application/json' }, body);
  const malformed = [
    'not json',
    '[]',
    '{}',
    '{"copies":{}}',
    '{"copies":[null]}',
    '{"copies":[{"owner":1,"objectId":2}]}',
    JSON.stringify({ copies: [{ owner: OWNER, objectId: '../../sentinel' }] }),
    JSON.stringify({ copies: [{ owner: OWNER.toUpperCase(), objectId: id }] }),
    JSON.stringify({ copies: [{ owner: 'tombstone', objectId: id }] }),
    JSON.stringify({ copies: [entry, { owner: OTHER, objectId: id }] }),
  ];
  for (const body of malformed) {
    const r = await send(body);
    assert.equal(r.status, 400, `${body} → ${r.status} ${r.body}`);
    const e = JSON.parse(r.body) as { code: string; message: string };
    assert.equal(e.code, 'BadRequest');
    assert.match(e.message, /malformed tombstone batch: .*nothing was moved/);
  }
  const tooMany = JSON.stringify({
    copies: Array.from({ length: MAX_TOMBSTONE_BATCH + 1 }, () => ({
      owner: OWNER,
      objectId: crypto.randomUUID(),
    })),
  });
  assert.ok(Buffer.byteLength(tooMany) < MAX_TOMBSTONE_BATCH_BYTES, 'refused for its count, not its size');
  const tooBig = JSON.stringify({ copies: [entry], pad: 'x'.repeat(MAX_TOMBSTONE_BATCH_BYTES) });
  for (const [body, what] of [
    [tooMany, `${MAX_TOMBSTONE_BATCH + 1} copies`],
    [tooBig, 'bytes'],
  ] as const) {
    const r = await send(body);
    assert.equal(r.status, 413, r.body);
    const e = JSON.parse(r.body) as { code: string; message: string };
    assert.equal(e.code, 'TombstoneBatchTooLarge');
    assert.ok(e.message.includes(what), e.message);
    assert.match(e.message, /split it/);
  }
  assert.equal(inPlace(root, OWNER, id!), true, 'no refused batch moved anything');

  // The client sends a longer list as several requests, each within the limit.
  const many = Array.from({ length: MAX_TOMBSTONE_BATCH + 3 }, (_, i) => ({
    owner: OWNER,
    objectId: i === 7 ? id! : crypto.randomUUID(),
  }));
  const results = await client.tombstoneBatch(node.url, DAY, many);
  assert.equal(results.length, many.length);
  assert.deepEqual(
    results.filter((r) => r.result === 'moved').map((r) => r.objectId),
    [id],
  );
  assert.ok(results.every((r, i) => r.objectId === many[i]!.objectId && r.result !== 'error'));
  assert.equal(inTomb(root, id!), true);
});

test('a node process killed mid-batch: every copy in place or in the tombstone, never lost, never both', async () => {
  const killRoot = path.join(parent, 'killed');
  const { child, url } = await startChild(killRoot, 5);
  const n = 200;
  const ids = await putCopies(n, OWNER, url);
  const batch = client.tombstoneBatch(
    url,
    DAY,
    ids.map((objectId) => ({ owner: OWNER, objectId })),
  );
  const tomb = path.join(killRoot, 'tombstone', DAY);
  const moved = () => (fs.existsSync(tomb) ? fs.readdirSync(tomb).length : 0);
  const deadline = Date.now() + 30_000;
  while (moved() < 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  await assert.rejects(batch, (e) => isRemoraError(e, 'StorageNodeUnreachable'));
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));

  let inTombstone = 0;
  for (const id of ids) {
    const here = inPlace(killRoot, OWNER, id);
    const there = inTomb(killRoot, id);
    assert.ok(here !== there, `${id}: in place ${here}, in tombstone ${there}`);
    const file = here ? path.join(killRoot, OWNER, id) : path.join(tomb, id);
    assert.equal(fs.readFileSync(file, 'utf8'), `body of ${id}`);
    if (there) inTombstone++;
  }
  assert.ok(inTombstone >= 20 && inTombstone < n, `killed mid-batch: ${inTombstone} of ${n} moved`);

  // The node back on the same root: the batch repeated moves the rest; the moved ones are absent.
  const again = await StorageNode.start({
    root: killRoot,
    id: '1.stor.dc1.remora.local',
    datacenter: 'dc1',
    internalToken: TEST_INTERNAL_TOKEN,
  });
  try {
    const results = await client.tombstoneBatch(
      again.url,
      DAY,
      ids.map((objectId) => ({ owner: OWNER, objectId })),
    );
    assert.equal(results.filter((r) => r.result === 'absent').length, inTombstone);
    assert.equal(results.filter((r) => r.result === 'moved').length, n - inTombstone);
    assert.equal(fs.readdirSync(tomb).length, n);
    assert.deepEqual(fs.readdirSync(path.join(killRoot, OWNER)), []);
  } finally {
    await again.close();
  }
});

async function startChild(
  dir: string,
  renameDelayMs: number,
): Promise<{ child: ReturnType<typeof spawn>; url: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/helpers/storage-node-child.ts', dir, String(renameDelayMs)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = readline.createInterface({ input: child.stdout });
  for await (const line of lines) {
    lines.close();
    return { child, url: (JSON.parse(line) as { url: string }).url };
  }
  throw new Error('the storage node child exited before listening');
}
