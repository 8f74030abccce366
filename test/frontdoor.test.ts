import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDeployment } from './helpers/deployment.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { isRemoraError } from '../src/core/errors.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { auditLogDir } from '../src/deployment/deployment.js';
import { rawRequest } from './storage-raw-http.js';

interface AuditLine {
  audit: boolean;
  billable_operation: string;
  bytesTransferred: number;
  reqHeaderLength: number;
  resHeaderLength: number;
  req: {
    method: string;
    url: string;
    owner: string;
    caller: { login: string };
    headers: Record<string, string>;
  };
  res: { statusCode: number };
}

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let bob: FrontDoorClient;
let aliceUuid: string;
let aliceToken: string;
const aliceAuth = () => ({ Authorization: `Token ${aliceToken}` });

before(async () => {
  ({ d, cleanup } = await startTestDeployment());
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  const b = await createAccount(d.tier, { login: 'bob' }, Date.now());
  aliceUuid = a.account.uuid;
  aliceToken = a.token;
  alice = d.client(a.token);
  bob = d.client(b.token);
});
after(async () => {
  alice.close();
  bob.close();
  await cleanup();
});

const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('base64');

async function record(p: string): Promise<MantaObjectValue> {
  const row = await d.tier.getObject<MantaObjectValue>('manta', p.replace('/alice/', `/${aliceUuid}/`));
  assert.ok(row, `record for ${p}`);
  return row.value;
}

test('put stores two copies in two datacenters, then the record; get returns the bytes', async () => {
  const body = crypto.randomBytes(300_000);
  await alice.mkdirp('/alice/stor/a/b');
  const put = await alice.put('/alice/stor/a/b/obj', body);
  assert.equal(put.md5, md5(body));
  const v = await record('/alice/stor/a/b/obj');
  assert.equal(v.contentLength, body.length);
  assert.equal(v.contentMD5, md5(body));
  assert.equal(v.sharks.length, 2);
  assert.equal(new Set(v.sharks.map((s) => s.datacenter)).size, 2);
  for (const s of v.sharks) {
    const file = path.join(d.nodes.get(s.manta_storage_id)!.root, aliceUuid, v.objectId);
    assert.equal(md5(fs.readFileSync(file)), md5(body), `copy on ${s.manta_storage_id}`);
  }
  assert.deepEqual(await alice.get('/alice/stor/a/b/obj'), body);
  assert.deepEqual(await alice.get('/alice/stor/a/b/obj', 'bytes=10-19'), body.subarray(10, 20));
});

test('a read survives one node down', async () => {
  const body = crypto.randomBytes(5000);
  await alice.put('/alice/stor/survive', body);
  const v = await record('/alice/stor/survive');
  await d.stopNode(v.sharks[0]!.manta_storage_id);
  try {
    assert.deepEqual(await alice.get('/alice/stor/survive'), body);
  } finally {
    await d.startNode(v.sharks[0]!.manta_storage_id);
  }
});

test('a wrong Content-MD5 is refused and leaves no record and no file', async () => {
  const body = Buffer.from('hello world');
  await assert.rejects(
    alice.put('/alice/stor/badmd5', body, { contentMD5: md5(Buffer.from('other')) }),
    (e) => isRemoraError(e, 'Md5Mismatch'),
  );
  assert.equal(await d.tier.getObject('manta', `/${aliceUuid}/stor/badmd5`), undefined);
  for (const n of d.nodes.values()) {
    const dir = path.join(n.root, aliceUuid);
    const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    for (const f of files)
      assert.notEqual(md5(fs.readFileSync(path.join(dir, f))), md5(body), 'no copy of the refused body');
  }
});

test('zero-byte objects have no copies and the empty MD5', async () => {
  await alice.put('/alice/stor/empty', Buffer.alloc(0));
  const v = await record('/alice/stor/empty');
  assert.deepEqual(v.sharks, []);
  assert.equal(v.contentMD5, '1B2M2Y8AsgTpgAmY7PhCfg==');
  assert.equal((await alice.get('/alice/stor/empty')).length, 0);
});

test('snaplinks share the objectId across directories and namespaces; overwrite and delete log the old objectId', async () => {
  await alice.put('/alice/stor/src', Buffer.from('linked bytes'));
  await alice.mkdirp('/alice/stor/other/deeper');
  await alice.link('/alice/stor/other/deeper/l1', '/alice/stor/src');
  await alice.link('/alice/public/l2', '/alice/stor/src');
  const src = await record('/alice/stor/src');
  const l1 = await record('/alice/stor/other/deeper/l1');
  assert.equal(l1.objectId, src.objectId);
  assert.equal(l1.createdFrom, src.key);
  assert.equal((await d.tier.findByObjectId(src.objectId)).length, 3);
  await alice.put('/alice/stor/src', Buffer.from('new bytes'));
  assert.deepEqual(
    await alice.get('/alice/stor/other/deeper/l1'),
    Buffer.from('linked bytes'),
    'link keeps the old bytes',
  );
  await alice.delete('/alice/stor/other/deeper/l1');
  let logged = 0;
  for (const s of d.tier.indexShards) {
    logged += Number(
      (
        await s.pool.query<{ n: string }>('SELECT count(*) n FROM manta_delete_log WHERE objectid=$1', [
          src.objectId,
        ])
      ).rows[0]!.n,
    );
  }
  assert.equal(logged, 2, 'overwrite of src and delete of l1');
});

test('an account reaches only its own namespace; the operator reaches all; /public is readable by anyone', async () => {
  await alice.put('/alice/stor/private', Buffer.from('secret'));
  await alice.put('/alice/public/open', Buffer.from('open'));
  await assert.rejects(bob.get('/alice/stor/private'), (e) => isRemoraError(e, 'Forbidden'));
  await assert.rejects(bob.put('/alice/stor/intrude', Buffer.from('x')), (e) =>
    isRemoraError(e, 'Forbidden'),
  );
  assert.deepEqual(await bob.get('/alice/public/open'), Buffer.from('open'));
  const anon = d.client('');
  try {
    assert.deepEqual(await anon.get('/alice/public/open'), Buffer.from('open'));
    await assert.rejects(anon.get('/alice/stor/private'), (e) => isRemoraError(e, 'Unauthorized'));
  } finally {
    anon.close();
  }
  const op = d.client();
  try {
    assert.deepEqual(await op.get('/alice/stor/private'), Buffer.from('secret'));
  } finally {
    op.close();
  }
  // bob links alice's public object into his own namespace: a cross-account link
  await bob.link('/bob/stor/from-alice', '/alice/public/open');
  assert.deepEqual(await bob.get('/bob/stor/from-alice'), Buffer.from('open'));
});

test('concurrent mkdirs of one new directory all succeed (mkdir is idempotent, also in a race)', async () => {
  // Two shards snapshotting at once through the front-door store both create
  // /poseidon/stor/manatee_backups: the loser of the write race used to get EtagConflict.
  for (let round = 0; round < 5; round++) {
    const dir = `/alice/stor/race-${round}`;
    await Promise.all(Array.from({ length: 8 }, () => alice.mkdir(dir)));
    const h = await alice.head(dir);
    assert.equal(h?.status, 200);
  }
  await assert.rejects(alice.put('/alice/stor/race-0', Buffer.from('x')), (e) =>
    isRemoraError(e, 'BadRequest'),
  );
  await alice.put('/alice/stor/race-file', Buffer.from('x'));
  await assert.rejects(alice.mkdir('/alice/stor/race-file'), (e) => isRemoraError(e, 'BadRequest'));
});

test('missing parents, deleting non-empty directories and bad paths are refused', async () => {
  await assert.rejects(alice.put('/alice/stor/nope/x', Buffer.from('x')), (e) =>
    isRemoraError(e, 'DirectoryNotFound'),
  );
  await alice.mkdirp('/alice/stor/full');
  await alice.put('/alice/stor/full/x', Buffer.from('x'));
  await assert.rejects(alice.delete('/alice/stor/full'), (e) => isRemoraError(e, 'DirectoryNotEmpty'));
  await assert.rejects(alice.put('/alice/elsewhere/x', Buffer.from('x')), (e) =>
    isRemoraError(e, 'BadRequest'),
  );
});

test('every request writes one muskie audit line with owner, status and bytes', async () => {
  await alice.put('/alice/stor/audited', Buffer.from('12345'));
  await alice.get('/alice/stor/audited');
  const files: string[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(p, e.name));
      else files.push(path.join(p, e.name));
    }
  };
  walk(auditLogDir(d.config));
  const lines = files
    .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as AuditLine);
  const put = lines.find((l) => l.req.method === 'PUT' && l.req.url.endsWith('/audited'));
  const get = lines.find((l) => l.req.method === 'GET' && l.req.url.endsWith('/audited'));
  assert.ok(put && get, `lines: ${lines.map((l) => `${l.req.method} ${l.req.url}`).join(', ')}`);
  assert.equal(put.audit, true);
  assert.equal(put.billable_operation, 'PUT');
  assert.equal(put.req.owner, aliceUuid);
  assert.equal(put.req.caller.login, 'alice');
  assert.equal(put.res.statusCode, 204);
  assert.equal(put.bytesTransferred, 5);
  assert.equal(get.bytesTransferred, 5);
  assert.ok(put.reqHeaderLength > 0 && put.resHeaderLength > 0, JSON.stringify(put.res));
  assert.equal(put.req.headers.authorization, undefined, 'no token in the log');
});

test('finished hours of the audit log are published to /poseidon/stor/logs/muskie; the current hour stays', async () => {
  const { AuditLog } = await import('../src/frontdoor/audit-log.js');
  const { defaultObjectStore } = await import('../src/objectstore/object-store.js');
  const log = new AuditLog(auditLogDir(d.config), 'frontdoor-test');
  const past = new Date(Date.UTC(2026, 0, 2, 3, 15));
  const entry = {
    operation: 'getobject',
    billable_operation: 'GET',
    req: { method: 'GET', url: '/x/stor/y', headers: {}, httpVersion: '1.1' },
    res: { statusCode: 200, headers: {} },
    reqHeaderLength: 1,
    resHeaderLength: 1,
    bytesTransferred: 3,
    latency: 1,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
    req_id: 'r',
  };
  log.write(entry, past);
  log.write(entry, past);
  const published = await d.publishLogs(new Date(Date.UTC(2026, 0, 2, 4, 0)));
  assert.ok(published.includes('/poseidon/stor/logs/muskie/2026/01/02/03/frontdoor-test.log'));
  const store = defaultObjectStore(d.config.stateDir);
  const chunks: Buffer[] = [];
  for await (const c of await store.get('/poseidon/stor/logs/muskie/2026/01/02/03/frontdoor-test.log'))
    chunks.push(c as Buffer);
  assert.equal(Buffer.concat(chunks).toString().trim().split('\n').length, 2);
  assert.equal(fs.existsSync(path.join(auditLogDir(d.config), '2026/01/02/03')), false, 'spool removed');
  // the hour in progress is not published
  const current = new Date(Date.UTC(2026, 0, 2, 4, 10));
  log.write(entry, current);
  assert.deepEqual(await d.publishLogs(current), []);
});

test('a control character in a name is 400 InvalidPath, never a 500 with a PostgreSQL message', async () => {
  await alice.mkdirp('/alice/stor/names');
  const bad = ['a\u0000b', 'nul\u0000', 'line\nfeed', 'tab\there', 'del\u007f', 'c1\u0085'];
  for (const name of bad) {
    const p = `/alice/stor/names/${name}`;
    for (const attempt of [
      () => alice.put(p, Buffer.from('x')),
      () => alice.get(p),
      () => alice.mkdir(p),
      () => alice.delete(p),
      // A header cannot carry a raw control character: the Location is percent-encoded.
      () => alice.link('/alice/stor/names/ok-link', p.split('/').map(encodeURIComponent).join('/')),
    ])
      await assert.rejects(attempt(), (e) => {
        assert.ok(isRemoraError(e, 'InvalidPath'), `${JSON.stringify(name)}: ${String(e)}`);
        assert.match(e.message, /control character U\+00[0-9A-F]{2}/);
        return true;
      });
  }
  // On the wire: percent-encoded, and a literal NUL in the request line (Node's parser refuses it).
  const raw = await rawRequest(d.frontdoorUrl, 'PUT', '/alice/stor/names/x%00y', aliceAuth(), 'x');
  assert.equal(raw.status, 400);
  const body = JSON.parse(raw.body) as { code: string; message: string };
  assert.equal(body.code, 'InvalidPath');
  assert.doesNotMatch(body.message, /0x00|byte sequence|UTF8|postgres/i);
  const literal = await rawRequest(d.frontdoorUrl, 'GET', '/alice/stor/names/x\u0000y', aliceAuth());
  assert.equal(literal.status, 400);
  // A path longer than the limit is refused the same way, before PostgreSQL sees it.
  await assert.rejects(alice.put(`/alice/stor/names/${'n'.repeat(1100)}`, Buffer.from('x')), (e) =>
    isRemoraError(e, 'InvalidPath'),
  );
  assert.deepEqual(await alice.list('/alice/stor/names'), [], 'nothing was stored');
});

test('Range: past the end → 416 with Content-Range: bytes */<size>; malformed or multi-range → the whole object', async () => {
  const body = crypto.randomBytes(1000);
  await alice.put('/alice/stor/ranged', body);
  await alice.put('/alice/stor/ranged-empty', Buffer.alloc(0));
  for (const [p, range, size] of [
    ['/alice/stor/ranged', 'bytes=1000-', 1000],
    ['/alice/stor/ranged', 'bytes=5000-6000', 1000],
    ['/alice/stor/ranged', 'bytes=-0', 1000],
    ['/alice/stor/ranged-empty', 'bytes=0-', 0],
  ] as const) {
    const r = await rawRequest(d.frontdoorUrl, 'GET', p, { ...aliceAuth(), Range: range });
    assert.equal(r.status, 416, `${p} ${range}: ${r.status} ${r.body}`);
    assert.equal(r.headers['content-range'], `bytes */${size}`);
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'RangeNotSatisfiable');
  }
  await assert.rejects(alice.get('/alice/stor/ranged', 'bytes=1000-'), (e) =>
    isRemoraError(e, 'RangeNotSatisfiable'),
  );
  // RFC 9110 §14.2: a Range the server does not understand is ignored, as on the storage nodes.
  for (const range of ['bytes=5-2', 'bytes=0-1,5-6', 'items=0-1', 'bytes=x-y']) {
    const r = await rawRequest(d.frontdoorUrl, 'GET', '/alice/stor/ranged', { ...aliceAuth(), Range: range });
    assert.equal(r.status, 200, range);
    assert.equal(Number(r.headers['content-length']), 1000, range);
  }
  const last = await rawRequest(d.frontdoorUrl, 'GET', '/alice/stor/ranged', {
    ...aliceAuth(),
    Range: 'bytes=-10',
  });
  assert.equal(last.status, 206);
  assert.equal(last.headers['content-range'], 'bytes 990-999/1000');
  assert.deepEqual(Buffer.from(last.body, 'latin1'), body.subarray(990));
});

test('an unsupported method is 405 with Allow, whoever asks and whatever the path', async () => {
  await alice.put('/alice/stor/methods', Buffer.from('x'));
  for (const method of ['POST', 'PATCH', 'OPTIONS', 'MOVE', 'PROPFIND', 'LOCK']) {
    for (const [p, headers] of [
      ['/alice/stor/methods', aliceAuth()],
      ['/nobody/stor/x', {}],
      ['/alice/stor/methods', { Authorization: 'Token wrong' }],
    ] as const) {
      const r = await rawRequest(d.frontdoorUrl, method, p, headers);
      assert.equal(r.status, 405, `${method} ${p}: ${r.status} ${r.body}`);
      assert.equal(r.headers.allow, 'GET, HEAD, PUT, DELETE');
      assert.equal((JSON.parse(r.body) as { code: string }).code, 'MethodNotAllowed');
    }
  }
  assert.deepEqual(await alice.get('/alice/stor/methods'), Buffer.from('x'));
});

test('every answer names its request id; the real error behind a hidden one is in the audit log under it', async () => {
  const ok = await rawRequest(d.frontdoorUrl, 'GET', '/alice/stor/methods', aliceAuth());
  assert.match(ok.headers['x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
  await assert.rejects(alice.get('/alice/stor/none'), (err) => {
    assert.ok(isRemoraError(err, 'ObjectNotFound'));
    assert.match(String(err.details.requestId), /^[0-9a-f-]{36}$/);
    return true;
  });
  // The nodes refuse a wrong Content-MD5 (their message names them): the client sees a fixed
  // message; the audit line of that request keeps the nodes' own words.
  const md5Wrong = md5(Buffer.from('other'));
  const r = await rawRequest(
    d.frontdoorUrl,
    'PUT',
    '/alice/stor/md5-logged',
    { ...aliceAuth(), 'Content-MD5': md5Wrong },
    'abc',
  );
  assert.equal(r.status, 469);
  const shown = JSON.parse(r.body) as { code: string; message: string; requestId: string };
  assert.equal(shown.code, 'Md5Mismatch');
  assert.doesNotMatch(shown.message, /http:|127\.0\.0\.1/);
  assert.ok(shown.message.includes(shown.requestId));
  const files: string[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true }))
      if (e.isDirectory()) walk(path.join(p, e.name));
      else files.push(path.join(p, e.name));
  };
  walk(auditLogDir(d.config));
  const line = files
    .flatMap((f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean))
    .map((l) => JSON.parse(l) as { req_id: string; err?: { code: string; message: string } })
    .find((l) => l.req_id === shown.requestId);
  assert.equal(line?.err?.code, 'Md5Mismatch');
  assert.match(line.err.message, /http:\/\/127\.0\.0\.1:\d+: Content-MD5/);
});
