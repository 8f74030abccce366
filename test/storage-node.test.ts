import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { StorageNode } from '../src/storage/storage-node.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { listManifest, parseManifestLine } from '../src/storage/manifest.js';
import {
  type DurableFileOps,
  durableFileOps,
  handleGet,
  handleMove,
  handlePut,
  type HandlerContext,
} from '../src/storage/storage-handlers.js';
import { Md5Cache } from '../src/storage/md5-cache.js';
import { copyFile, insideRoot, tombstoneFile } from '../src/storage/storage-paths.js';
import { isRemoraError } from '../src/core/errors.js';
import { ManualClock } from '../src/core/clock.js';
import { rawRequest } from './storage-raw-http.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const id = (n: number) => `a0000000-0000-4000-8000-${n.toString().padStart(12, '0')}`;
const md5 = (b: Buffer | string) => crypto.createHash('md5').update(b).digest('base64');

const clock = new ManualClock(Date.parse('2024-03-01T12:00:00Z'));
let parent: string;
let root: string;
let sentinel: string;
let node: StorageNode;
const client = new StorageClient({ timeoutMs: 5000, internalToken: TEST_INTERNAL_TOKEN });
/** What raw mutating requests carry: the node refuses PUT and MOVE without it. */
const AUTH = { Authorization: `Internal ${TEST_INTERNAL_TOKEN}` };

/** Every fsync and rename the node made, in order, with the size of a file when it was fsynced. */
const fsLog: { op: 'fsync' | 'rename'; path: string; to?: string; size?: number }[] = [];
const recordingFileOps: DurableFileOps = {
  async fsync(p, flags) {
    const st = fs.statSync(p);
    fsLog.push({ op: 'fsync', path: p, ...(st.isFile() ? { size: st.size } : {}) });
    await durableFileOps.fsync(p, flags);
  },
  async rename(from, to) {
    fsLog.push({ op: 'rename', path: from, to });
    await durableFileOps.rename(from, to);
  },
};

before(async () => {
  // parent/ holds the node's root and a sentinel file that no request may touch.
  parent = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-storage-'));
  root = path.join(parent, 'root');
  sentinel = path.join(parent, 'sentinel');
  fs.writeFileSync(sentinel, 'do not touch');
  node = await StorageNode.start({
    root,
    id: '1.stor.dc1.remora.local',
    datacenter: 'dc1',
    clock,
    internalToken: TEST_INTERNAL_TOKEN,
    fileOps: recordingFileOps,
  });
});

after(async () => {
  client.close();
  await node.close();
  fs.rmSync(parent, { recursive: true, force: true });
});

/** Every regular file under a directory, relative to it. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function readStream(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('PUT, GET, HEAD and Range round trip with MD5', async () => {
  const body = crypto.randomBytes(100_000);
  const put = await client.put(node.url, OWNER, id(1), body, { contentMD5: md5(body) });
  assert.deepEqual(put, { md5: md5(body), bytes: body.length });
  assert.deepEqual(fs.readFileSync(path.join(root, OWNER, id(1))), body);

  const got = await client.get(node.url, OWNER, id(1));
  assert.equal(got.status, 200);
  assert.equal(got.contentLength, body.length);
  assert.deepEqual(await readStream(got.stream), body);

  assert.deepEqual(await client.head(node.url, OWNER, id(1)), { contentLength: body.length, md5: md5(body) });

  const part = await client.get(node.url, OWNER, id(1), { range: { start: 10, end: 19 } });
  assert.equal(part.status, 206);
  assert.equal(part.contentLength, 10);
  assert.deepEqual(await readStream(part.stream), body.subarray(10, 20));

  const suffix = await rawRequest(node.url, 'GET', `/${OWNER}/${id(1)}`, { Range: 'bytes=-5' });
  assert.equal(suffix.status, 206);
  assert.equal(suffix.headers['content-range'], `bytes ${body.length - 5}-${body.length - 1}/${body.length}`);
  const beyond = await rawRequest(node.url, 'GET', `/${OWNER}/${id(1)}`, { Range: 'bytes=200000-' });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers['content-range'], `bytes */${body.length}`);

  // A streamed body without Content-MD5 gets its MD5 back too; overwrite replaces the copy.
  const small = Buffer.from('hello world');
  const streamed = await client.put(node.url, OWNER, id(1), Readable.from([small]), {
    contentLength: small.length,
  });
  assert.equal(streamed.md5, md5(small));
  assert.equal((await client.head(node.url, OWNER, id(1)))?.contentLength, small.length);
});

test('absent copies: GET → ObjectNotFound, HEAD → undefined, JSON error body', async () => {
  await assert.rejects(client.get(node.url, OWNER, id(99)), (e) => isRemoraError(e, 'ObjectNotFound'));
  assert.equal(await client.head(node.url, OWNER, id(99)), undefined);
  const raw = await rawRequest(node.url, 'GET', `/${OWNER}/${id(99)}`);
  assert.equal(raw.status, 404);
  assert.equal((JSON.parse(raw.body) as { code: string }).code, 'ObjectNotFound');
  const del = await rawRequest(node.url, 'DELETE', `/${OWNER}/${id(99)}`, AUTH);
  assert.equal(del.status, 405, 'DELETE is not enabled (mako nginx dav_methods PUT MOVE)');
  assert.equal(del.headers.allow, 'PUT, GET, HEAD, MOVE');
});

test('wrong Content-MD5 → 469 Md5Mismatch and nothing left under root', async () => {
  const before = filesUnder(root);
  const body = Buffer.from('the real bytes');
  await assert.rejects(client.put(node.url, OWNER, id(2), body, { contentMD5: md5('other bytes') }), (e) =>
    isRemoraError(e, 'Md5Mismatch'),
  );
  const raw = await rawRequest(
    node.url,
    'PUT',
    `/${OWNER}/${id(2)}`,
    { ...AUTH, 'Content-MD5': md5('x') },
    'abc',
  );
  assert.equal(raw.status, 469);
  assert.deepEqual(filesUnder(root), before);
  assert.deepEqual(fs.readdirSync(path.join(root, 'nginx_temp')), []);
});

test('truncated upload (socket destroyed mid-body) → no file left, capacity released', async () => {
  const before = filesUnder(root);
  const { hostname, port } = new URL(node.url);
  const socket = net.connect(Number(port), hostname);
  await new Promise((r) => socket.once('connect', r));
  socket.write(
    `PUT /${OWNER}/${id(3)} HTTP/1.1\r\nHost: x\r\nAuthorization: ${AUTH.Authorization}\r\n` +
      `Content-Length: 1000000\r\n\r\n${'a'.repeat(5000)}`,
  );
  // Wait until the node has the upload's temp file open, then cut the connection.
  await waitFor(() => fs.readdirSync(path.join(root, 'nginx_temp')).length > 0);
  socket.destroy();
  await waitFor(() => fs.readdirSync(path.join(root, 'nginx_temp')).length === 0);
  assert.deepEqual(filesUnder(root), before);
  assert.equal(fs.existsSync(path.join(root, OWNER, id(3))), false);

  // The client side: a source stream that fails mid-way aborts the upload the same way.
  const failing = new Readable({
    read() {
      this.push(Buffer.alloc(1000, 1));
      this.destroy(new Error('source failed'));
    },
  });
  await assert.rejects(client.put(node.url, OWNER, id(3), failing, { contentLength: 50_000 }));
  await waitFor(() => fs.readdirSync(path.join(root, 'nginx_temp')).length === 0);
  assert.deepEqual(filesUnder(root), before);
});

test('path traversal and malformed paths are refused; nothing outside root is touched', async () => {
  await client.put(node.url, OWNER, id(4), Buffer.from('victim'));
  const parentBefore = fs.readdirSync(parent).sort();
  const rootBefore = filesUnder(root);
  const targets = [
    '/../sentinel',
    `/${OWNER}/../../sentinel`,
    `/${OWNER}/..`,
    '/%2e%2e/sentinel',
    `/${OWNER}/%2e%2e%2f%2e%2e%2fsentinel`,
    `/${OWNER}%2F${id(5)}`,
    `/${OWNER}%2f${id(5)}`,
    `/${OWNER}/${id(5)}%2F..%2F..%2Fsentinel`,
    `//${OWNER}/${id(5)}`,
    `/${OWNER}//${id(5)}`,
    `${parent}/sentinel`,
    'http://127.0.0.1/../sentinel',
    `/${OWNER}/..\\..\\sentinel`,
    `/${OWNER}/${id(5)}%00`,
    `/not-a-uuid/${id(5)}`,
    `/${OWNER}/not-a-uuid`,
    `/${OWNER.toUpperCase()}/${id(5)}`,
    `/${OWNER}/${id(5)}/extra`,
    `/manta/${OWNER}/${id(5)}`,
    // `/tombstone/…` targets are the tombstone tree's own requests: test/storage-tombstone.test.ts.
  ];
  for (const t of targets) {
    for (const method of ['PUT', 'GET', 'MOVE']) {
      const headers: Record<string, string> =
        method === 'MOVE' ? { ...AUTH, Destination: `/tombstone/2024-01-01/${id(5)}` } : AUTH;
      const r = await rawRequest(node.url, method, t, headers, method === 'PUT' ? 'overwrite' : '');
      assert.equal(r.status, 400, `${method} ${t} → ${r.status}`);
      assert.notEqual(r.body, 'do not touch');
    }
  }
  const destinations = [
    '/../sentinel',
    `/tombstone/../../sentinel`,
    `/tombstone/2024-01-01/../../../sentinel`,
    `/tombstone/2024-01-01/${id(4)}/../../../../sentinel`,
    `/tombstone/2024-01-01%2F..%2F..%2F..%2Fsentinel`,
    `/tombstone/2024-13-45/${id(4)}`,
    `/tombstone/2024-01-01/${id(6)}`, // a tombstone keeps the copy's objectId
    `/${OWNER}/${id(6)}`,
    `/manta/../sentinel`,
    `http://127.0.0.1/tombstone/2024-01-01/${id(4)}`,
    `${parent}/sentinel`,
    '',
  ];
  for (const d of destinations) {
    const r = await rawRequest(
      node.url,
      'MOVE',
      `/${OWNER}/${id(4)}`,
      d ? { ...AUTH, Destination: d } : AUTH,
    );
    assert.equal(r.status, 400, `MOVE → ${JSON.stringify(d)}: ${r.status}`);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'InvalidPath');
  }
  assert.equal(fs.readFileSync(sentinel, 'utf8'), 'do not touch');
  assert.deepEqual(fs.readdirSync(parent).sort(), parentBefore);
  assert.deepEqual(filesUnder(root), rootBefore);
  assert.equal(fs.readFileSync(path.join(root, OWNER, id(4)), 'utf8'), 'victim');
  // The client validates too: a bad id fails before anything is sent.
  await assert.rejects(client.put(node.url, '../x', id(5), Buffer.from('x')), (e) =>
    isRemoraError(e, 'InvalidPath'),
  );
});

test('MOVE to the tombstone tree (both Destination forms); absent source → 404 / absent', async () => {
  await client.put(node.url, OWNER, id(7), Buffer.from('seven'));
  await client.put(node.url, OWNER, id(8), Buffer.from('eight'));
  assert.equal(await client.tombstone(node.url, OWNER, id(7), '2024-02-29'), 'moved');
  assert.equal(fs.readFileSync(path.join(root, 'tombstone', '2024-02-29', id(7)), 'utf8'), 'seven');
  assert.equal(fs.existsSync(path.join(root, OWNER, id(7))), false);
  assert.equal(await client.tombstone(node.url, OWNER, id(7), '2024-02-29'), 'absent');
  const full = await rawRequest(node.url, 'MOVE', `/${OWNER}/${id(8)}`, {
    ...AUTH,
    Destination: `/manta/tombstone/2024-03-01/${id(8)}`,
  });
  assert.equal(full.status, 204);
  assert.equal(fs.readFileSync(path.join(root, 'tombstone', '2024-03-01', id(8)), 'utf8'), 'eight');
  const missing = await rawRequest(node.url, 'MOVE', `/${OWNER}/${id(9)}`, {
    ...AUTH,
    Destination: `/tombstone/2024-03-01/${id(9)}`,
  });
  assert.equal(missing.status, 404);
});

test('manifest: header and one line per file, via HTTP and in process', async () => {
  const m = await client.manifest(node.url);
  assert.equal(m.startedAt, new Date(clock.now()).toISOString());
  assert.equal(m.datacenter, 'dc1');
  const lines: string[] = [];
  for await (const l of m.lines) lines.push(l);
  const entries = lines.map((l) => parseManifestLine(l));
  assert.ok(
    entries.every((e) => e !== undefined),
    'every line parses',
  );
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.equal(byPath.size, filesUnder(root).length, 'every file is listed once');
  const tomb = byPath.get(`/manta/tombstone/2024-02-29/${id(7)}`);
  assert.ok(tomb);
  assert.equal(tomb.bytes, 5);
  assert.ok(Number.isInteger(tomb.mtime) && Math.abs(tomb.mtime - Date.now() / 1000) < 600);
  assert.ok(tomb.kb >= 0);
  assert.ok(byPath.has(`/manta/${OWNER}/${id(4)}`));
  for (const l of lines) assert.match(l, /^\/manta\/\S+\t\d+\t\d+\t\d+$/);

  const listing = listManifest(root, () => clock.now());
  let n = 0;
  for await (const e of listing.entries) {
    assert.ok(byPath.has(e.path));
    n++;
  }
  assert.equal(n, byPath.size);
});

test('keep-alive: several requests reuse one connection, also after an error', async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const reused: boolean[] = [];
  const one = (p: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.get(new URL(p, node.url), { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      reused.push(req.reusedSocket);
    });
  assert.equal(await one(`/${OWNER}/${id(4)}`), 200);
  assert.equal(await one(`/${OWNER}/${id(99)}`), 404);
  assert.equal(await one('/../x'), 400);
  assert.equal(await one(`/${OWNER}/${id(4)}`), 200);
  agent.destroy();
  assert.deepEqual(reused, [false, true, true, true]);
});

test('client: a stopped node is StorageNodeUnreachable', async () => {
  const gone = await StorageNode.start({
    root: path.join(parent, 'gone'),
    id: 'g',
    datacenter: 'dc1',
    internalToken: TEST_INTERNAL_TOKEN,
  });
  const url = gone.url;
  await gone.close();
  await assert.rejects(client.head(url, OWNER, id(1)), (e) => isRemoraError(e, 'StorageNodeUnreachable'));
  await assert.rejects(client.put(url, OWNER, id(1), Buffer.from('x')), (e) =>
    isRemoraError(e, 'StorageNodeUnreachable'),
  );
});

/** Every regular file under a directory with its content: what a refused request must not change. */
function contentsUnder(dir: string): Map<string, string> {
  return new Map(filesUnder(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'latin1')]));
}

test('PUT, MOVE, DELETE, other methods and the manifest need the internal credential; refused ones change nothing', async () => {
  await client.put(node.url, OWNER, id(20), Buffer.from('kept'));
  const before = contentsUnder(root);
  const wrong = [
    undefined,
    'Internal',
    `Internal wrong-token-0123456789abcdef`,
    `Internal ${TEST_INTERNAL_TOKEN}x`,
    `Internal ${TEST_INTERNAL_TOKEN.slice(0, -1)}`,
    `Token ${TEST_INTERNAL_TOKEN}`,
    `Basic ${Buffer.from(`internal:${TEST_INTERNAL_TOKEN}`).toString('base64')}`,
    `Internal ${TEST_INTERNAL_TOKEN} extra`,
  ];
  const tomb = { Destination: `/tombstone/2024-01-01/${id(20)}` };
  const requests: [string, string, Record<string, string>, string][] = [
    ['PUT', `/${OWNER}/${id(20)}`, {}, 'overwritten'],
    ['PUT', `/${OWNER}/${id(21)}`, {}, 'new copy'],
    ['MOVE', `/${OWNER}/${id(20)}`, tomb, ''],
    ['DELETE', `/${OWNER}/${id(20)}`, {}, ''],
    ['COPY', `/${OWNER}/${id(20)}`, { Destination: `/${OWNER}/${id(21)}` }, ''],
    ['POST', `/${OWNER}/${id(20)}`, {}, 'x'],
    ['PROPPATCH', `/${OWNER}/${id(20)}`, {}, ''],
    ['GET', '/manifest', {}, ''],
    ['PUT', '/manifest', {}, 'x'],
    ['PUT', '/../sentinel', {}, 'x'],
  ];
  for (const auth of wrong) {
    for (const [method, target, headers, body] of requests) {
      const r = await rawRequest(
        node.url,
        method,
        target,
        { ...headers, ...(auth === undefined ? {} : { Authorization: auth }) },
        body,
      );
      const what = `${method} ${target} with ${auth ?? 'no Authorization'}`;
      assert.equal(r.status, 401, `${what} → ${r.status} ${r.body}`);
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'InternalCredentialRefused', what);
      assert.equal(r.headers['www-authenticate'], 'Internal', what);
      assert.doesNotMatch(r.body, new RegExp(TEST_INTERNAL_TOKEN.slice(0, 10)), 'the token is never echoed');
    }
  }
  assert.deepEqual(contentsUnder(root), before, 'no refused request changed a file');
  assert.deepEqual(fs.readdirSync(path.join(root, 'nginx_temp')), []);
  assert.equal(fs.readFileSync(sentinel, 'utf8'), 'do not touch');

  // A client with another deployment's credential is refused the same way.
  const stranger = new StorageClient({ timeoutMs: 5000, internalToken: 'another-deployments-token-0123' });
  try {
    for (const attempt of [
      stranger.put(node.url, OWNER, id(20), Buffer.from('overwritten')),
      stranger.tombstone(node.url, OWNER, id(20), '2024-01-01'),
      stranger.manifest(node.url),
    ])
      await assert.rejects(attempt, (e) => isRemoraError(e, 'InternalCredentialRefused'));
    // Reads of a copy stay open, as on mako: they need both UUIDs, which only the metadata holds.
    const got = await stranger.get(node.url, OWNER, id(20));
    assert.equal((await readStream(got.stream)).toString(), 'kept');
    assert.equal((await rawRequest(node.url, 'HEAD', `/${OWNER}/${id(20)}`)).status, 200);
  } finally {
    stranger.close();
  }
  assert.deepEqual(contentsUnder(root), before);

  // With the credential: the same scheme in any case; an unsupported method is then 405 with Allow.
  const lower = await rawRequest(
    node.url,
    'PUT',
    `/${OWNER}/${id(21)}`,
    {
      Authorization: `internal ${TEST_INTERNAL_TOKEN}`,
    },
    'new copy',
  );
  assert.equal(lower.status, 201);
  for (const [method, target, allow] of [
    ['PROPPATCH', `/${OWNER}/${id(20)}`, 'PUT, GET, HEAD, MOVE'],
    ['PUT', '/manifest', 'GET'],
  ] as const) {
    const r = await rawRequest(node.url, method, target, AUTH, method === 'PUT' ? 'x' : '');
    assert.equal(r.status, 405, `${method} ${target}`);
    assert.equal(r.headers.allow, allow);
  }
});

test('the second path guard refuses a resolved path outside the root, even when the whitelist is bypassed', async () => {
  // Unit: the guard itself, including a sibling directory that shares the root's name as a prefix.
  const refused = (f: () => unknown) => assert.throws(f, (e) => isRemoraError(e, 'InvalidPath'));
  refused(() => insideRoot(root, '..', 'sentinel'));
  refused(() => insideRoot(root, OWNER, '..', '..', 'sentinel'));
  refused(() => insideRoot(root, `../${path.basename(root)}-evil`, 'x'));
  refused(() => insideRoot(root, parent, 'sentinel'));
  refused(() => insideRoot(root, '.'));
  refused(() => insideRoot(root, ''));
  refused(() => copyFile(root, { owner: '..', objectId: 'sentinel' }));
  refused(() => copyFile(root, { owner: OWNER, objectId: '../../sentinel' }));
  refused(() => tombstoneFile(root, '../..', 'sentinel'));
  assert.equal(copyFile(root, { owner: OWNER, objectId: id(1) }), path.join(root, OWNER, id(1)));
  assert.equal(tombstoneFile(root, '2024-01-01', id(1)), path.join(root, 'tombstone', '2024-01-01', id(1)));

  // The handlers reach it: a CopyPath that never went through the whitelist (what a future,
  // looser pattern could let through) is refused before any file is opened, written or moved.
  const victim = path.join(parent, id(30));
  fs.writeFileSync(victim, 'outside the root');
  const parentBefore = fs.readdirSync(parent).sort();
  const ctx: HandlerContext = {
    root,
    datacenter: 'dc1',
    capacity: node.capacity,
    md5: new Md5Cache(10),
    now: () => clock.now(),
    files: durableFileOps,
  };
  const escaping = { owner: '..', objectId: id(30) };
  const req = (method: string, headers: Record<string, string>, body = '') =>
    Object.assign(Readable.from([Buffer.from(body)]), { method, headers }) as unknown as http.IncomingMessage;
  const res = {
    writeHead: () => assert.fail('a response was started for a path outside the root'),
    end: () => assert.fail('a response was sent for a path outside the root'),
  } as unknown as http.ServerResponse;
  const isInvalidPath = (e: unknown) => isRemoraError(e, 'InvalidPath');
  await assert.rejects(handleGet(ctx, req('GET', {}), res, escaping), isInvalidPath);
  await assert.rejects(
    handleMove(ctx, req('MOVE', { destination: `/tombstone/2024-01-01/${id(30)}` }), res, escaping),
    isInvalidPath,
  );
  await assert.rejects(
    handlePut(ctx, req('PUT', { 'content-length': '4' }, 'evil'), res, escaping),
    isInvalidPath,
  );
  await assert.rejects(handlePut(ctx, req('PUT', {}, 'evil'), res, escaping), isInvalidPath);
  assert.equal(fs.readFileSync(victim, 'utf8'), 'outside the root');
  assert.equal(fs.existsSync(path.join(root, 'tombstone', '2024-01-01', id(30))), false);
  assert.deepEqual(fs.readdirSync(parent).sort(), parentBefore);
  assert.deepEqual(fs.readdirSync(path.join(root, 'nginx_temp')), []);
  fs.rmSync(victim);
});

test('PUT fsyncs the temp file, with all its bytes, before renaming it into place, then fsyncs the directory', async () => {
  fsLog.length = 0;
  const body = crypto.randomBytes(300_000);
  await client.put(node.url, OWNER, id(22), Readable.from([body.subarray(0, 1000), body.subarray(1000)]), {
    contentLength: body.length,
  });
  const dest = path.join(root, OWNER, id(22));
  const renamed = fsLog.findIndex((e) => e.op === 'rename' && e.to === dest);
  assert.ok(renamed >= 0, `the copy was renamed into place: ${JSON.stringify(fsLog)}`);
  const tmp = fsLog[renamed]!.path;
  assert.equal(path.dirname(tmp), path.join(root, 'nginx_temp'), 'from a temp file');
  const synced = fsLog.findIndex((e) => e.op === 'fsync' && e.path === tmp);
  assert.ok(synced >= 0 && synced < renamed, `fsync(temp) before rename: ${JSON.stringify(fsLog)}`);
  assert.equal(fsLog[synced]!.size, body.length, 'fsynced once every byte was written');
  const dirSynced = fsLog.findIndex(
    (e, i) => i > renamed && e.op === 'fsync' && e.path === path.dirname(dest),
  );
  assert.ok(dirSynced > renamed, 'the directory is fsynced after the rename, so the rename survives a crash');
  assert.deepEqual(fs.readFileSync(dest), body);

  // MOVE: the rename into the tombstone tree, then an fsync of the tombstone directory and of the
  // copy's own (its old name's removal), as the batched tombstone does.
  fsLog.length = 0;
  assert.equal(await client.tombstone(node.url, OWNER, id(22), '2024-03-02'), 'moved');
  const tombDir = path.join(root, 'tombstone', '2024-03-02');
  assert.deepEqual(
    fsLog.map((e) => [e.op, e.to ?? e.path]),
    [
      ['rename', path.join(tombDir, id(22))],
      ['fsync', tombDir],
      ['fsync', path.join(root, OWNER)],
    ],
  );
});
