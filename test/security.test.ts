/**
 * Issue 17, "Security": a hostile account and a hostile neighbour on the storage network.
 *   (a) the deployment's storage nodes refuse PUT, MOVE, DELETE, other methods and the manifest
 *       without its internal credential, or with a wrong one, and change nothing on disk;
 *   (b) the attack of the issue, replayed: account B provokes every front-door error it can
 *       about account A's object; no error body holds a storage-node address or port, a node
 *       id, or A's UUID; and even with the addresses and UUIDs taken from elsewhere (a port
 *       scan, say), a MOVE without the credential tombstones nothing: A still reads its bytes.
 * Real servers on loopback: a whole deployment on the test run's PostgreSQL.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDeployment } from './helpers/deployment.js';
import { testConfig } from './helpers/pg.js';
import { rawRequest, type RawResponse } from './storage-raw-http.js';
import type { Deployment } from '../src/deployment/deployment.js';
import {
  ensureInternalToken,
  internalTokenPath,
  readInternalToken,
  requireInternalToken,
} from '../src/deployment/context.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { StorageNode } from '../src/storage/storage-node.js';
import { isRemoraError, RemoraError } from '../src/core/errors.js';
import { publicError } from '../src/frontdoor/public-error.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import type { RemoraConfig } from '../src/config/config.js';

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let aliceUuid: string;
let aliceToken: string;
let malloryToken: string;
let malloryUuid: string;

before(async () => {
  ({ d, cleanup } = await startTestDeployment());
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  const m = await createAccount(d.tier, { login: 'mallory' }, Date.now());
  aliceUuid = a.account.uuid;
  aliceToken = a.token;
  malloryToken = m.token;
  malloryUuid = m.account.uuid;
  alice = d.client(a.token);
});

after(async () => {
  alice.close();
  await cleanup();
});

async function record(key: string): Promise<MantaObjectValue> {
  const row = await d.tier.getObject<MantaObjectValue>('manta', key);
  assert.ok(row, key);
  return row.value;
}

/** Every regular file under the deployment's node roots, with its content. */
function nodeFiles(): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of d.nodes.values()) {
    for (const e of fs.readdirSync(n.root, { recursive: true, withFileTypes: true })) {
      if (!e.isFile()) continue;
      const p = path.join(e.parentPath, e.name);
      out.set(p, fs.readFileSync(p, 'latin1'));
    }
  }
  return out;
}

test('the credential: generated once per state directory with mode 0600, or taken from the configuration', () => {
  // The running deployment made one.
  const file = internalTokenPath(d.config);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(readInternalToken(d.config), d.internalToken);
  assert.ok(d.internalToken.length >= 32);

  const fresh = testConfig();
  try {
    assert.equal(readInternalToken(fresh), undefined);
    assert.throws(
      () => requireInternalToken(fresh),
      (e) => isRemoraError(e, 'UsageError') && /storage\.internalToken/.test(e.message),
    );
    const made = ensureInternalToken(fresh);
    assert.equal(ensureInternalToken(fresh), made, 'generated once, then reused');
    assert.equal(fs.statSync(internalTokenPath(fresh)).mode & 0o777, 0o600);
    assert.notEqual(made, d.internalToken, 'each deployment has its own');
    // A real deployment sets it in the configuration; that wins over the file.
    const configured: RemoraConfig = {
      ...fresh,
      storage: { ...fresh.storage, internalToken: 'configured-token-0123456789' },
    };
    assert.equal(ensureInternalToken(configured), 'configured-token-0123456789');
    assert.equal(requireInternalToken(configured), 'configured-token-0123456789');
    const short: RemoraConfig = { ...fresh, storage: { ...fresh.storage, internalToken: 'short' } };
    assert.throws(
      () => ensureInternalToken(short),
      (e) => isRemoraError(e, 'InvalidConfig') && /storage\.internalToken/.test(e.message),
    );
  } finally {
    fs.rmSync(fresh.stateDir, { recursive: true, force: true });
  }
});

test('(a) the deployment’s nodes refuse mutation without the credential or with a wrong one, and nothing changes on disk', async () => {
  await alice.put('/alice/stor/kept', Buffer.from('the owner’s bytes'));
  const v = await record(`/${aliceUuid}/stor/kept`);
  const before = nodeFiles();
  const wrongTokens = [undefined, 'Internal not-the-deployments-token-0123', `Token ${aliceToken}`];
  for (const n of d.nodes.values()) {
    const copy = `/${aliceUuid}/${v.objectId}`;
    const attempts: [string, string, Record<string, string>, string][] = [
      ['PUT', copy, {}, 'overwritten'],
      ['PUT', `/${aliceUuid}/${crypto.randomUUID()}`, {}, 'planted'],
      ['MOVE', copy, { Destination: `/tombstone/2024-01-01/${v.objectId}` }, ''],
      ['DELETE', copy, {}, ''],
      ['POST', copy, {}, 'x'],
      ['GET', '/manifest', {}, ''],
    ];
    for (const auth of wrongTokens) {
      for (const [method, target, headers, body] of attempts) {
        const r = await rawRequest(
          n.url,
          method,
          target,
          { ...headers, ...(auth ? { Authorization: auth } : {}) },
          body,
        );
        assert.equal(r.status, 401, `${n.id}: ${method} ${target} with ${auth ?? 'nothing'} → ${r.status}`);
        assert.equal((JSON.parse(r.body) as { code: string }).code, 'InternalCredentialRefused');
      }
    }
  }
  assert.deepEqual(nodeFiles(), before, 'no file on any node changed');
  // The deployment's own client carries the credential: its requests go through.
  const copyNode = d.nodes.get(v.sharks[0]!.manta_storage_id)!;
  assert.equal(
    (await d.storage.head(copyNode.url, aliceUuid, v.objectId))?.contentLength,
    Buffer.byteLength('the owner’s bytes'),
  );
  const m = await d.storage.manifest(copyNode.url);
  let lines = 0;
  for await (const l of m.lines) if (l.includes(v.objectId)) lines++;
  assert.equal(lines, 1);
  // A client with a wrong credential is told so by name.
  const stranger = new StorageClient({ internalToken: 'not-the-deployments-token-0123' });
  try {
    await assert.rejects(stranger.tombstone(copyNode.url, aliceUuid, v.objectId, '2024-01-01'), (e) =>
      isRemoraError(e, 'InternalCredentialRefused'),
    );
  } finally {
    stranger.close();
  }
  assert.equal((await alice.get('/alice/stor/kept')).toString(), 'the owner’s bytes');
});

test('(b) the attack of issue 17: what front-door errors reveal to one account never lets it tombstone another’s copies', async () => {
  // Alice's object, readable by anyone (/public): what the attack aimed at.
  const body = crypto.randomBytes(40_000);
  await alice.put('/alice/public/target', body);
  await alice.put('/alice/stor/private', Buffer.from('private'));
  const target = await record(`/${aliceUuid}/public/target`);

  // Mallory provokes every error she can, raw, and keeps every answer.
  const fd = d.frontdoorUrl;
  const auth = { Authorization: `Token ${malloryToken}` };
  const answers: { what: string; r: RawResponse }[] = [];
  const ask = async (what: string, method: string, p: string, headers: Record<string, string> = {}, b = '') =>
    answers.push({ what, r: await rawRequest(fd, method, p, { ...auth, ...headers }, b) });
  await ask('missing object of alice', 'GET', '/alice/public/nothing-here');
  await ask('missing object of alice, HEAD', 'HEAD', '/alice/public/nothing-here');
  await ask('private object of alice', 'GET', '/alice/stor/private');
  await ask('write into alice', 'PUT', '/alice/public/planted', {}, 'x');
  await ask('delete alice’s object', 'DELETE', '/alice/public/target');
  await ask('list a missing directory of alice', 'GET', '/alice/public/no-dir/');
  await ask('object under a missing parent', 'GET', '/alice/public/no-dir/x');
  await ask('link to a missing source of alice', 'PUT', '/mallory/stor/l1', {
    'Content-Type': 'application/json; type=link',
    Location: '/alice/public/nothing-here',
  });
  await ask('link to a directory of alice', 'PUT', '/mallory/stor/l2', {
    'Content-Type': 'application/json; type=link',
    Location: '/alice/public',
  });
  await ask('link into a missing directory', 'PUT', '/mallory/stor/no-dir/l3', {
    'Content-Type': 'application/json; type=link',
    Location: '/alice/public/target',
  });
  await ask('link from alice’s private namespace', 'PUT', '/mallory/stor/l4', {
    'Content-Type': 'application/json; type=link',
    Location: '/alice/stor/private',
  });
  await ask('range past the end of alice’s object', 'GET', '/alice/public/target', {
    Range: 'bytes=999999-',
  });
  await ask('NUL in a name under alice', 'GET', '/alice/public/a%00b');
  await ask('unsupported method on alice’s object', 'PROPFIND', '/alice/public/target');
  // Errors that come back from the storage nodes through the front door.
  await ask(
    'wrong Content-MD5',
    'PUT',
    '/mallory/stor/md5',
    { 'Content-MD5': md5(Buffer.from('other')) },
    'abc',
  );
  await ask('malformed Content-MD5', 'PUT', '/mallory/stor/md5b', { 'Content-MD5': 'not-an-md5' }, 'abc');
  // Mallory's own link to Alice's public object, then both of its copies' nodes down.
  await ask('link to alice’s object', 'PUT', '/mallory/stor/mine', {
    'Content-Type': 'application/json; type=link',
    Location: '/alice/public/target',
  });
  const ids = target.sharks.map((s) => s.manta_storage_id);
  for (const id of ids) await d.stopNode(id);
  try {
    await ask('read alice’s object with every copy down', 'GET', '/alice/public/target');
    await ask('read my link with every copy down', 'GET', '/mallory/stor/mine');
    await ask('range read with every copy down', 'GET', '/mallory/stor/mine', { Range: 'bytes=0-9' });
  } finally {
    for (const id of ids) await d.startNode(id);
  }
  // Nodes that refuse the front door's credential (a misconfigured deployment): an internal
  // failure for the client, never the nodes' words and never a 401 about its own token. Every
  // node is replaced, on its own port, by one holding another credential; their heartbeat
  // records are still fresh, so the picker chooses them.
  const impostors: StorageNode[] = [];
  for (const n of [...d.nodes.values()]) {
    const { id, datacenter, root, port } = n;
    await d.stopNode(id);
    impostors.push(
      await StorageNode.start({
        id,
        datacenter,
        root,
        port,
        internalToken: 'some-other-deployment-token-01',
      }),
    );
  }
  try {
    await ask('write when every node refuses the credential', 'PUT', '/mallory/stor/w', {}, 'abc');
  } finally {
    for (const n of impostors) {
      await n.close();
      await d.startNode(n.id);
    }
  }

  // What the answers must never hold: a node's URL, host:port or port, a node id, Alice's UUID.
  const nodes = [...d.nodes.values()];
  assert.equal(nodes.length, 6);
  const forbidden = [
    aliceUuid,
    ...nodes.flatMap((n) => [n.url, new URL(n.url).host, `:${n.port}`, n.id]),
    '127.0.0.1',
    'manta_storage',
    'postgres',
  ];
  const statuses = new Map<string, number>();
  for (const { what, r } of answers) {
    statuses.set(what, r.status);
    const text = `${JSON.stringify(r.headers)}\n${r.body}`;
    for (const f of forbidden)
      assert.ok(!text.toLowerCase().includes(f.toLowerCase()), `${what} (${r.status}) reveals ${f}: ${text}`);
    if (r.status >= 400 && r.body) {
      const e = JSON.parse(r.body) as { code: string; message: string; requestId: string };
      assert.equal(e.requestId, r.headers['x-request-id'], `${what}: the body names its request id`);
      assert.deepEqual(Object.keys(e).sort(), ['code', 'message', 'requestId'], `${what}: no details`);
    }
  }
  // The attempts really failed the way they should (the checks above were not vacuous).
  assert.equal(statuses.get('missing object of alice'), 404);
  assert.equal(statuses.get('private object of alice'), 403);
  assert.equal(statuses.get('link to a missing source of alice'), 404);
  assert.equal(statuses.get('range past the end of alice’s object'), 416);
  assert.equal(statuses.get('NUL in a name under alice'), 400);
  assert.equal(statuses.get('unsupported method on alice’s object'), 405);
  assert.equal(statuses.get('wrong Content-MD5'), 469);
  assert.equal(statuses.get('malformed Content-MD5'), 400);
  assert.equal(statuses.get('read alice’s object with every copy down'), 503);
  assert.equal(statuses.get('link to alice’s object'), 204);
  assert.equal(statuses.get('write when every node refuses the credential'), 500);

  // The attack: every (node address, owner UUID) pair Mallory could have learned from those
  // answers, plus the true ones (as if she had scanned the ports and guessed the UUID), and the
  // objectId, which is public (the etag and x-remora-object-id of her own link).
  const seen = answers.map(({ r }) => `${JSON.stringify(r.headers)}\n${r.body}`).join('\n');
  const learnedUrls = [...seen.matchAll(/https?:\/\/[\w.-]+:\d+/g)].map((m) => m[0]);
  const learnedUuids = [
    ...seen.matchAll(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g),
  ].map((m) => m[0]);
  assert.deepEqual(learnedUrls, [], 'no node address was revealed');
  assert.ok(!learnedUuids.includes(aliceUuid), 'alice’s UUID was not revealed');
  const linkHead = await rawRequest(fd, 'HEAD', '/mallory/stor/mine', auth);
  const objectId = linkHead.headers['x-remora-object-id'];
  assert.equal(objectId, target.objectId, 'the objectId is public (etag), as in Manta');
  const before = nodeFiles();
  for (const url of [...new Set([...learnedUrls, ...nodes.map((n) => n.url)])]) {
    for (const owner of [...new Set([...learnedUuids, aliceUuid, malloryUuid])]) {
      const r = await rawRequest(url, 'MOVE', `/${owner}/${objectId}`, {
        Destination: `/tombstone/2024-01-01/${objectId}`,
      });
      assert.equal(r.status, 401, `MOVE on ${url} for ${owner}: ${r.status}`);
    }
  }
  assert.deepEqual(nodeFiles(), before, 'no copy moved');
  for (const s of target.sharks)
    assert.ok(fs.existsSync(path.join(d.nodes.get(s.manta_storage_id)!.root, aliceUuid, target.objectId)));
  assert.deepEqual(await alice.get('/alice/public/target'), body, 'the owner still reads her bytes');
});

function md5(b: Buffer): string {
  return crypto.createHash('md5').update(b).digest('base64');
}

test('publicError: what a client may see of an error (table)', () => {
  const facts = { requestId: 'req-1', texts: ['/alice/stor/x', '/bob/public/y'], callerUuid: malloryUuid };
  const node = { node: 'http://10.0.0.5:8080' };
  const other = crypto.randomUUID();
  const cases: [RemoraError, number, string, RegExp, Record<string, string>?][] = [
    [
      new RemoraError('ObjectNotFound', '/alice/stor/x does not exist'),
      404,
      'ObjectNotFound',
      /^\/alice\/stor\/x does not exist$/,
    ],
    // a UUID the request did not contain, or the caller's own, is no secret; another is hidden
    [
      new RemoraError('ObjectNotFound', `/${other}/stor/x does not exist`),
      404,
      'ObjectNotFound',
      /^\/<hidden>\/stor\/x/,
    ],
    [
      new RemoraError('Forbidden', `${malloryUuid} may not`),
      403,
      'Forbidden',
      new RegExp(`^${malloryUuid} may not$`),
    ],
    [
      new RemoraError('BadRequest', 'see http://10.0.0.5:8080/x and 10.0.0.6:80 and stor1.dc:8080'),
      400,
      'BadRequest',
      /^see <hidden> and <hidden> and <hidden>$/,
    ],
    // raised by or about a storage node: a fixed message, the request id, never the node's words
    [
      new RemoraError('Md5Mismatch', 'http://10.0.0.5:8080: Content-MD5 x', { details: node }),
      469,
      'Md5Mismatch',
      /^the MD5 .* \(request req-1\)$/,
    ],
    [
      new RemoraError('StorageNodeUnreachable', 'storage node http://10.0.0.5:8080 (PUT): ECONNREFUSED', {
        details: node,
      }),
      503,
      'StorageNodeUnreachable',
      /^a storage node did not answer; retry \(request req-1\)$/,
    ],
    [
      new RemoraError('InternalCredentialRefused', 'http://10.0.0.5:8080: wrong internal credential', {
        details: node,
      }),
      500,
      'Internal',
      /^internal error \(request req-1\)$/,
    ],
    [
      new RemoraError('ObjectNotFound', 'no copy /a/b on this node', { details: node }),
      500,
      'Internal',
      /^internal error/,
    ],
    [
      new RemoraError('Md5Mismatch', 'copies of x disagree', { details: { nodes: ['1.stor'] } }),
      469,
      'Md5Mismatch',
      /^the MD5/,
    ],
    // from the metadata tier or unexpected: fixed by code
    [
      new RemoraError('EtagConflict', `etag conflict on /${other}/stor/x`),
      412,
      'EtagConflict',
      /^the object changed/,
    ],
    [
      new RemoraError('Internal', 'invalid byte sequence for encoding "UTF8": 0x00'),
      500,
      'Internal',
      /^internal error \(request req-1\)$/,
    ],
    [
      new RemoraError('RangeNotSatisfiable', 'range past the end', { details: { size: 10 } }),
      416,
      'RangeNotSatisfiable',
      /range/,
      { 'content-range': 'bytes */10' },
    ],
    [
      new RemoraError('MethodNotAllowed', 'no', { details: { allow: 'GET' } }),
      405,
      'MethodNotAllowed',
      /no/,
      { allow: 'GET' },
    ],
  ];
  for (const [err, status, code, message, headers] of cases) {
    const p = publicError(err, facts);
    assert.equal(p.status, status, err.message);
    assert.equal(p.code, code, err.message);
    assert.match(p.message, message);
    assert.deepEqual(p.headers, headers ?? {}, err.message);
    assert.doesNotMatch(p.message, /10\.0\.0\.5|8080/);
  }
});
