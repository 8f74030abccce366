/**
 * The pull request (`POST /pull`, src/storage/pull-handlers.ts) on real loopback storage nodes:
 * a destination fetches copies from other nodes, in batches. The credential; named errors for a
 * malformed or oversized body (nothing fetched); per-source failures in order (unknown source,
 * no such copy, a size that is not the record's, an MD5 mismatch, a transfer cut short) with the
 * next source tried; the destination out of room; no committed file and no temp file after any
 * failure; and the group commit: every copy fsynced and renamed, then each directory fsynced once,
 * and only then the answer.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient, type PullCopy } from '../src/storage/storage-client.js';
import { durableFileOps, type DurableFileOps } from '../src/storage/storage-handlers.js';
import { MAX_PULL_BATCH } from '../src/storage/pull-handlers.js';
import { isRemoraError } from '../src/core/errors.js';
import { rawRequest } from './storage-raw-http.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';
import { FaultyNetwork, type TransferFault } from './helpers/faulty-network.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const OTHER = '5ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const AUTH = { Authorization: `Internal ${TEST_INTERNAL_TOKEN}` };
const client = new StorageClient({ timeoutMs: 10_000, internalToken: TEST_INTERNAL_TOKEN });
const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('base64');

let parent: string;
let src1: StorageNode;
let src2: StorageNode;
let dest: StorageNode;
let small: StorageNode;
/** Every rename and fsync the destination makes, in order (paths relative to its root). */
const events: string[] = [];
/** Set by a test: directory fsyncs wait for this before they happen. */
let holdDirFsync: Promise<void> | undefined;
let failFsyncOf: string | undefined;
/** Set by a test: what the network between the nodes does to a copy's bytes. */
let fault: TransferFault = () => undefined;
let net: FaultyNetwork;

before(async () => {
  parent = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-pull-'));
  const start = (name: string, extra: Partial<Parameters<typeof StorageNode.start>[0]> = {}) =>
    StorageNode.start({
      root: path.join(parent, name),
      id: `${name}.stor.dc1.remora.local`,
      datacenter: 'dc1',
      internalToken: TEST_INTERNAL_TOKEN,
      ...extra,
    });
  src1 = await start('1');
  src2 = await start('2');
  const root = path.join(parent, '3');
  const rel = (p: string) => path.relative(root, p).replace(/\.[0-9a-f-]{36}$/, '.tmp');
  const fileOps: DurableFileOps = {
    async fsync(p, flags) {
      if (flags === 'r' && holdDirFsync) await holdDirFsync;
      if (failFsyncOf !== undefined && rel(p) === failFsyncOf)
        throw Object.assign(new Error(`EIO: i/o error, fsync ${p}`), { code: 'EIO' });
      await durableFileOps.fsync(p, flags);
      events.push(`fsync ${rel(p)}`);
    },
    async rename(from, to) {
      await durableFileOps.rename(from, to);
      events.push(`rename ${rel(from)} ${rel(to)}`);
    },
  };
  dest = await start('3', { fileOps });
  small = await start('4', { capacityMB: 1 });
  net = await FaultyNetwork.start(
    ['1', '2'],
    (id) => (id === '1' ? src1.url : src2.url),
    (info) => fault(info),
  );
});

after(async () => {
  client.close();
  await net.close();
  for (const n of [src1, src2, dest, small]) await n.close();
  fs.rmSync(parent, { recursive: true, force: true });
});

/** One object with its bytes on `nodes`; the copy request for it from `sources`. */
async function object(
  nodes: StorageNode[],
  size = 4096,
  owner = OWNER,
): Promise<{ body: Buffer; copy: (...sources: { id: string; url: string }[]) => PullCopy }> {
  const body = crypto.randomBytes(size);
  const objectId = crypto.randomUUID();
  for (const n of nodes) await client.put(n.url, owner, objectId, body);
  return {
    body,
    copy: (...sources) => ({ owner, objectId, md5: md5(body), bytes: size, sources }),
  };
}

const S1 = () => ({ id: '1.stor', url: src1.url });
const S2 = () => ({ id: '2.stor', url: src2.url });
/** Sources reached through the faulty network. */
const N1 = () => ({ id: '1.stor', url: net.nodeUrl('1')! });
const file = (n: StorageNode, c: PullCopy) => path.join(n.root, c.owner, c.objectId);
const tempFiles = (n: StorageNode) => fs.readdirSync(path.join(n.root, 'nginx_temp'));

test('pull: copies land with the record’s bytes; the answer names the source; HEAD knows the MD5', async () => {
  const a = await object([src1]);
  const b = await object([src2], 100_000);
  const ca = a.copy(S1());
  const cb = b.copy(S1(), S2()); // not on 1: the next source
  const results = await client.pull(dest.url, [ca, cb]);
  assert.deepEqual(
    results.map((r) => [r.objectId, r.result, r.result === 'ok' && r.source]),
    [
      [ca.objectId, 'ok', '1.stor'],
      [cb.objectId, 'ok', '2.stor'],
    ],
  );
  assert.deepEqual(fs.readFileSync(file(dest, ca)), a.body);
  assert.deepEqual(fs.readFileSync(file(dest, cb)), b.body);
  const h = await client.head(dest.url, OWNER, ca.objectId);
  assert.equal(h?.md5, ca.md5, 'the MD5 cache knows a pulled copy, as a PUT one');
  assert.deepEqual(tempFiles(dest), []);
});

test('credential, method, and malformed or oversized bodies: named errors, nothing fetched', async () => {
  const a = await object([src1]);
  const body = JSON.stringify({ copies: [a.copy(S1())] });
  for (const auth of [undefined, 'Internal wrong-token-0123456789abcdef']) {
    const r = await rawRequest(
      dest.url,
      'POST',
      '/pull',
      { 'content-type': 'application/json', ...(auth ? { Authorization: auth } : {}) },
      body,
    );
    assert.equal(r.status, 401, r.body);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'InternalCredentialRefused');
  }
  const get = await rawRequest(dest.url, 'GET', '/pull', AUTH);
  assert.equal(get.status, 405);
  assert.equal(get.headers.allow, 'POST');

  const good = a.copy(S1());
  const bad: [string, unknown][] = [
    ['not JSON', '{"copies":'],
    ['no list', { copies: 'all' }],
    ['no md5', { copies: [{ ...good, md5: undefined }] }],
    ['md5 not base64', { copies: [{ ...good, md5: 'abc' }] }],
    ['negative bytes', { copies: [{ ...good, bytes: -1 }] }],
    ['not a copy path', { copies: [{ ...good, objectId: '../../etc/passwd' }] }],
    ['a source URL with a path', { copies: [{ ...good, sources: [{ id: '1', url: `${src1.url}/x/y` }] }] }],
    ['a source that is not http', { copies: [{ ...good, sources: [{ id: '1', url: 'file:///etc' }] }] }],
    ['a source without id', { copies: [{ ...good, sources: [{ url: src1.url }] }] }],
    ['twice the same copy', { copies: [good, good] }],
    ['concurrency 0', { copies: [good], concurrency: 0 }],
  ];
  for (const [why, b] of bad) {
    const r = await rawRequest(
      dest.url,
      'POST',
      '/pull',
      { 'content-type': 'application/json', ...AUTH },
      typeof b === 'string' ? b : JSON.stringify(b),
    );
    assert.equal(r.status, 400, `${why}: ${r.body}`);
    const e = JSON.parse(r.body) as { code: string; message: string };
    assert.equal(e.code, 'PullBatchInvalid', why);
    assert.match(e.message, /nothing was fetched/, why);
  }
  const many = JSON.stringify({
    copies: Array.from({ length: MAX_PULL_BATCH + 1 }, () => ({ ...good, objectId: crypto.randomUUID() })),
  });
  const r = await rawRequest(
    dest.url,
    'POST',
    '/pull',
    { 'content-type': 'application/json', ...AUTH },
    many,
  );
  assert.equal(r.status, 413, r.body);
  assert.equal((JSON.parse(r.body) as { code: string }).code, 'PullBatchTooLarge');
  assert.equal(fs.existsSync(file(dest, good)), false, 'nothing was fetched');
});

test('sources fail in order: unknown, no copy, wrong size, MD5 mismatch, then the good one', async () => {
  const a = await object([src2]);
  const objectId = a.copy().objectId;
  // 1.stor holds a copy of the same size with other bytes (bit rot): its MD5 is not the record's.
  await client.put(src1.url, OWNER, objectId, crypto.randomBytes(4096));
  const wrongSize = await object([src1], 10);
  await client.put(src1.url, OWNER, wrongSize.copy().objectId, crypto.randomBytes(11));
  const nowhere = { id: '9.stor', url: 'http://127.0.0.1:1' };
  const c = a.copy(nowhere, S1(), S2());
  const w = wrongSize.copy(S1());
  const absent = { ...a.copy(S1()), objectId: crypto.randomUUID() };
  const [rc, rw, ra] = await client.pull(dest.url, [c, w, absent]);
  assert.equal(rc?.result, 'ok', JSON.stringify(rc));
  assert.equal(rc?.result === 'ok' && rc.source, '2.stor');
  assert.deepEqual(fs.readFileSync(file(dest, c)), a.body);

  assert.equal(rw?.result, 'failed');
  assert.deepEqual(rw?.result === 'failed' && rw.attempts.map((x) => [x.source, x.kind]), [
    ['1.stor', 'unreachable'],
  ]);
  assert.match(
    rw?.result === 'failed' ? rw.attempts[0]!.message : '',
    /source copy has 11 bytes, the record says 10/,
  );
  assert.equal(ra?.result === 'failed' && ra.attempts[0]!.kind, 'unreachable');
  assert.match(ra?.result === 'failed' ? ra.attempts[0]!.message : '', /404: ObjectNotFound/);
  for (const x of [w, absent]) assert.equal(fs.existsSync(file(dest, x)), false);

  // The same with the good source left out: every failure, in order, and no file.
  const other = await object([src2]);
  const oid = other.copy().objectId;
  await client.put(src1.url, OWNER, oid, crypto.randomBytes(4096));
  const [r] = await client.pull(dest.url, [other.copy(nowhere, S1())]);
  assert.ok(r?.result === 'failed' && !r.destination, JSON.stringify(r));
  assert.deepEqual(
    r.attempts.map((x) => [x.source, x.kind]),
    [
      ['9.stor', 'unreachable'],
      ['1.stor', 'md5'],
    ],
  );
  assert.equal(fs.existsSync(path.join(dest.root, OWNER, oid)), false, 'a corrupt copy is never committed');
  assert.deepEqual(tempFiles(dest), []);
});

test('on the wire: a corrupted transfer, then a cut one, each falls back to the next source; alone, nothing lands', async () => {
  const flip = () =>
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        const bad = Buffer.from(chunk);
        bad[0] = bad[0]! ^ 0xff;
        cb(null, bad);
      },
    });
  /** Passes half the bytes, then fails: the proxy cuts the connection mid-body. */
  const cut = (bytes: number) => {
    let seen = 0;
    return new Transform({
      transform(chunk: Buffer, _e, cb) {
        if (seen + chunk.length >= bytes / 2) return cb(new Error('link down'));
        seen += chunk.length;
        cb(null, chunk);
      },
    });
  };
  const a = await object([src1, src2], 300_000);
  const b = await object([src1, src2], 300_000);
  const alone = await object([src1], 300_000);
  const ca = a.copy(N1(), S2());
  const cb = b.copy(N1(), S2());
  const cAlone = alone.copy(N1());
  fault = ({ objectId }) =>
    objectId === ca.objectId
      ? flip()
      : objectId === cb.objectId || objectId === cAlone.objectId
        ? cut(300_000)
        : undefined;
  try {
    const [ra, rb, rAlone] = await client.pull(dest.url, [ca, cb, cAlone]);
    assert.ok(ra?.result === 'ok' && ra.source === '2.stor', JSON.stringify(ra));
    assert.ok(rb?.result === 'ok' && rb.source === '2.stor', JSON.stringify(rb));
    assert.deepEqual(fs.readFileSync(file(dest, ca)), a.body);
    assert.deepEqual(fs.readFileSync(file(dest, cb)), b.body);
    assert.ok(rAlone?.result === 'failed' && !rAlone.destination, JSON.stringify(rAlone));
    assert.deepEqual(
      rAlone.attempts.map((x) => x.kind),
      ['truncated'],
    );
    assert.equal(fs.existsSync(file(dest, cAlone)), false, 'a truncated copy is never committed');
    assert.deepEqual(tempFiles(dest), []);
  } finally {
    fault = () => undefined;
  }
});

test('bytesPerSecond: the node reads the request’s bytes no faster (after a second’s burst); a bad rate is PullBatchInvalid', async () => {
  const a = await object([src1], 48 * 1024);
  const c = a.copy(S1());
  const t0 = Date.now();
  const [r] = await client.pull(dest.url, [c], { bytesPerSecond: 16 * 1024 });
  const ms = Date.now() - t0;
  assert.equal(r?.result, 'ok');
  assert.deepEqual(fs.readFileSync(file(dest, c)), a.body);
  // 16 KiB pass at once (the burst), the other 32 KiB at 16 KiB/s: about 2 s at the least.
  assert.ok(ms >= 1500, `48 KiB at 16 KiB/s took only ${ms} ms`);
  for (const bad of [0, -5, 1.5, '100']) {
    const res = await rawRequest(
      dest.url,
      'POST',
      '/pull',
      { 'content-type': 'application/json', ...AUTH },
      JSON.stringify({ copies: [c], bytesPerSecond: bad }),
    );
    assert.equal(res.status, 400, String(bad));
    assert.match(res.body, /PullBatchInvalid.*bytesPerSecond/, String(bad));
  }
});

test('a destination without room: `full`, no source tried, nothing written', async () => {
  const big = await object([src1], 2 * 1024 * 1024); // the node's cap is 1 MB
  const fits = await object([src1], 1000);
  const [r, ok] = await client.pull(small.url, [big.copy(S1()), fits.copy(S1())]);
  assert.ok(r?.result === 'failed' && r.destination?.kind === 'full', JSON.stringify(r));
  assert.deepEqual(r.attempts, []);
  assert.match(r.destination.message, /StorageNodeFull/);
  assert.equal(fs.existsSync(file(small, big.copy())), false);
  assert.equal(ok?.result, 'ok', 'the copy that fits still lands');
  assert.deepEqual(tempFiles(small), []);
});

test('group commit: each copy fsynced then renamed, then each directory fsynced once, and only then the answer', async () => {
  const objs = [
    await object([src1]),
    await object([src1]),
    await object([src1]),
    await object([src1], 4096, OTHER),
  ];
  const copies = objs.map((o) => o.copy(S1()));
  events.length = 0;
  let release!: () => void;
  holdDirFsync = new Promise<void>((resolve) => (release = resolve));
  let answered = false;
  const pending = client.pull(dest.url, copies).then((r) => {
    answered = true;
    return r;
  });
  try {
    // Every copy is renamed into place while the directory fsyncs wait: no answer yet.
    for (let i = 0; i < 200 && events.filter((e) => e.startsWith('rename')).length < 4; i++)
      await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(events.filter((e) => e.startsWith('rename')).length, 4, events.join('\n'));
    assert.equal(answered, false, 'no answer before the directories are fsynced');
  } finally {
    holdDirFsync = undefined;
    release();
  }
  const results = await pending;
  assert.deepEqual(
    results.map((r) => r.result),
    ['ok', 'ok', 'ok', 'ok'],
  );
  // Per copy: fsync of its temp file before its rename; then one fsync per directory, after every rename.
  for (const c of copies) {
    const f = events.indexOf(`fsync nginx_temp/${c.objectId}.tmp`);
    const r = events.indexOf(`rename nginx_temp/${c.objectId}.tmp ${c.owner}/${c.objectId}`);
    assert.ok(f >= 0 && r > f, `fsync before rename of ${c.objectId}: ${events.join('\n')}`);
  }
  const dirs = events.filter((e) => e === `fsync ${OWNER}` || e === `fsync ${OTHER}`);
  assert.deepEqual(
    dirs.sort(),
    [`fsync ${OWNER}`, `fsync ${OTHER}`].sort(),
    'one fsync per directory, not per copy',
  );
  const lastRename = Math.max(...events.map((e, i) => (e.startsWith('rename') ? i : -1)));
  assert.ok(events.indexOf(`fsync ${OWNER}`) > lastRename && events.indexOf(`fsync ${OTHER}`) > lastRename);
});

test('a directory fsync that fails: its copies are answered failed (write), the others ok', async () => {
  const mine = await object([src1]);
  const theirs = await object([src1], 4096, OTHER);
  failFsyncOf = OTHER;
  try {
    const [rm, rt] = await client.pull(dest.url, [mine.copy(S1()), theirs.copy(S1())]);
    assert.equal(rm?.result, 'ok');
    assert.ok(rt?.result === 'failed' && rt.destination?.kind === 'write', JSON.stringify(rt));
    assert.match(rt.destination.message, /EIO/);
  } finally {
    failFsyncOf = undefined;
  }
});

test('the client refuses an answer that says ok for other bytes than asked', async () => {
  // A node that answers ok with another MD5 is not believed (here: the request asks for one MD5,
  // the fake node echoes another).
  const http = await import('node:http');
  const fake = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const { copies } = JSON.parse(text) as { copies: PullCopy[] };
      const results = copies.map((c) => ({
        owner: c.owner,
        objectId: c.objectId,
        result: 'ok',
        source: 'x',
        md5: '1B2M2Y8AsgTpgAmY7PhCfg==',
        bytes: c.bytes,
      }));
      res.end(JSON.stringify({ results }));
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
    const a = await object([src1]);
    await assert.rejects(client.pull(url, [a.copy(S1())]), (e) => isRemoraError(e, 'MalformedInput'));
  } finally {
    fake.closeAllConnections();
    fake.close();
  }
});
