import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { openTestTier, testConfig, testPgUrl } from './helpers/pg.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import { MetadataTier as Tier } from '../src/metadata/metadata-tier.js';
import { isRemoraError } from '../src/core/errors.js';
import { morayEtag } from '../src/core/crc32.js';
import { ManualClock } from '../src/core/clock.js';
import { MANTA_BUCKET } from '../src/metadata/buckets.js';
import type { RemoraConfig } from '../src/config/config.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
let tier: MetadataTier;
let config: RemoraConfig;
let cleanup: () => Promise<void>;
const clock = new ManualClock(1_700_000_000_000);

before(async () => {
  ({ tier, config, cleanup } = await openTestTier(testConfig(), clock));
});
after(async () => cleanup());

function objectValue(key: string, objectId: string, extra: Record<string, unknown> = {}) {
  return {
    dirname: key.slice(0, key.lastIndexOf('/')),
    key,
    headers: {},
    mtime: clock.now(),
    name: key.slice(key.lastIndexOf('/') + 1),
    creator: OWNER,
    owner: OWNER,
    roles: [],
    type: 'object',
    contentLength: 10,
    contentMD5: 'abc',
    contentType: 'text/plain',
    etag: objectId,
    objectId,
    sharks: [{ datacenter: 'dc1', manta_storage_id: '1.stor.dc1.remora.local' }],
    ...extra,
  };
}

async function deleteLogFor(objectId: string) {
  const rows = [];
  for (const s of tier.indexShards) {
    const r = await s.pool.query<{ _key: string; _value: string; objectid: string }>(
      'SELECT _key, _value, objectid FROM manta_delete_log WHERE objectid = $1',
      [objectId],
    );
    rows.push(...r.rows.map((x) => ({ ...x, shard: s.name })));
  }
  return rows;
}

test('_etag is the upper-case CRC32 hex of _value', async () => {
  const key = `/${OWNER}/stor/etag-check`;
  const etag = await tier.putObject('manta', key, objectValue(key, 'a0000000-0000-4000-8000-000000000001'));
  const row = await tier.getObject('manta', key);
  assert.ok(row);
  assert.match(etag, /^[0-9A-F]{8}$/);
  const shard = tier.shard(tier.ring.locate(key).shard);
  const raw = await shard.pool.query<{ _value: string; _etag: string }>(
    'SELECT _value, _etag FROM manta WHERE _key=$1',
    [key],
  );
  assert.equal(raw.rows[0]!._etag, morayEtag(raw.rows[0]!._value));
  assert.equal(row.etag, etag);
  assert.equal((row.value as { vnode?: number }).vnode, row.vnode, 'vnode stored in _value and _vnode');
});

test('conditional put: wrong etag and must-not-exist conflicts leave the row unchanged', async () => {
  const key = `/${OWNER}/stor/cond`;
  const e1 = await tier.putObject('manta', key, objectValue(key, 'a0000000-0000-4000-8000-000000000002'), {
    etag: null,
  });
  await assert.rejects(
    tier.putObject('manta', key, objectValue(key, 'a0000000-0000-4000-8000-000000000003'), { etag: null }),
    (e) => isRemoraError(e, 'EtagConflict'),
  );
  await assert.rejects(
    tier.putObject('manta', key, objectValue(key, 'a0000000-0000-4000-8000-000000000003'), {
      etag: 'DEADBEEF',
    }),
    (e) => isRemoraError(e, 'EtagConflict'),
  );
  assert.equal((await tier.getObject('manta', key))!.etag, e1);
  const e2 = await tier.putObject('manta', key, objectValue(key, 'a0000000-0000-4000-8000-000000000003'), {
    etag: e1,
  });
  assert.notEqual(e2, e1);
  await assert.rejects(tier.deleteObject('manta', key, { etag: e1 }), (e) =>
    isRemoraError(e, 'EtagConflict'),
  );
  await tier.deleteObject('manta', key, { etag: e2 });
  assert.equal(await tier.getObject('manta', key), undefined);
});

test('conditional put: of concurrent writers holding the same etag, exactly one wins each round', async () => {
  const key = `/${OWNER}/stor/race`;
  let etag = await tier.putObject('manta', key, objectValue(key, 'c0000000-0000-4000-8000-000000000000'));
  for (let round = 1; round <= 5; round++) {
    const writers = Array.from({ length: 8 }, (_, i) =>
      tier.putObject(
        'manta',
        key,
        objectValue(
          key,
          `c0000000-0000-4000-8000-0000000${String(round).padStart(2, '0')}${String(i).padStart(3, '0')}`,
        ),
        { etag },
      ),
    );
    const results = await Promise.allSettled(writers);
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1, `round ${round}: ${won.length} writers won with etag ${etag}`);
    for (const r of results)
      if (r.status === 'rejected') assert.ok(isRemoraError(r.reason, 'EtagConflict'), String(r.reason));
    etag = (won[0] as PromiseFulfilledResult<string>).value;
    assert.equal((await tier.getObject('manta', key))!.etag, etag);
  }
});

test('delete log: overwrite and delete write it in the same shard; directories and same objectId do not', async () => {
  const key = `/${OWNER}/stor/dl/obj`;
  const oldId = 'b0000000-0000-4000-8000-000000000001';
  const newId = 'b0000000-0000-4000-8000-000000000002';
  await tier.putObject('manta', key, objectValue(key, oldId));
  // metadata-only update (same objectId): no delete-log row
  await tier.putObject('manta', key, objectValue(key, oldId, { contentType: 'text/html' }));
  assert.equal((await deleteLogFor(oldId)).length, 0);
  clock.advance(5);
  await tier.putObject('manta', key, objectValue(key, newId));
  const dl = await deleteLogFor(oldId);
  assert.equal(dl.length, 1);
  assert.equal(dl[0]!.shard, tier.ring.locate(key).shard, 'same shard as the key');
  assert.equal(dl[0]!._key, `/${oldId}/${clock.now()}`);
  const prev = JSON.parse(dl[0]!._value) as { objectId: string; contentType: string; _etag: string };
  assert.equal(prev.objectId, oldId);
  assert.equal(prev.contentType, 'text/html', 'the whole previous record');
  assert.match(prev._etag, /^[0-9A-F]{8}$/);
  clock.advance(5);
  await tier.deleteObject('manta', key);
  assert.equal((await deleteLogFor(newId)).length, 1);
  // a directory has no objectId: neither overwrite nor delete logs anything
  const dir = `/${OWNER}/stor/dl/sub`;
  const dirValue = {
    dirname: `/${OWNER}/stor/dl`,
    key: dir,
    headers: {},
    mtime: 1,
    name: 'sub',
    creator: OWNER,
    owner: OWNER,
    roles: [],
    type: 'directory',
  };
  const countAll = async () => {
    let total = 0;
    for (const s of tier.indexShards)
      total += Number(
        (await s.pool.query<{ n: string }>('SELECT count(*) n FROM manta_delete_log')).rows[0]!.n,
      );
    return total;
  };
  const before = await countAll();
  await tier.putObject('manta', dir, dirValue);
  await tier.putObject('manta', dir, { ...dirValue, mtime: 2 });
  await tier.deleteObject('manta', dir);
  assert.equal(await countAll(), before);
});

test('two deletes of one objectId in the same millisecond both reach the delete log', async () => {
  const id = 'c0000000-0000-4000-8000-000000000001';
  const k1 = `/${OWNER}/stor/same-ms/a`;
  const k2 = `/${OWNER}/stor/same-ms/b`;
  await tier.putObject('manta', k1, objectValue(k1, id));
  await tier.putObject('manta', k2, objectValue(k2, id));
  await tier.deleteObject('manta', k1);
  await tier.deleteObject('manta', k2);
  assert.equal((await deleteLogFor(id)).length, 2);
});

test('findByObjectId finds links on every shard', async () => {
  const id = 'd0000000-0000-4000-8000-000000000001';
  const keys: string[] = [];
  for (let i = 0; i < 40; i++) keys.push(`/${OWNER}/stor/links${i}/x`);
  for (const k of keys) await tier.putObject('manta', k, objectValue(k, id));
  const found = await tier.findByObjectId(id);
  assert.deepEqual(found.map((r) => r.key).sort(), [...keys].sort());
  const shards = new Set(keys.map((k) => tier.ring.locate(k).shard));
  assert.equal(shards.size, 2, 'forty directories spread over both index shards');
  const many = await tier.findByObjectIds([id, 'd0000000-0000-4000-8000-000000000009']);
  assert.equal(many.get(id)!.length, 40);
  assert.equal(many.get('d0000000-0000-4000-8000-000000000009')!.length, 0);
});

test('ring: entries of a directory share a shard; /<uuid>/stor hashes itself; stable across reopen', async () => {
  const a = tier.ring.locate(`/${OWNER}/stor/dir/a`);
  const b = tier.ring.locate(`/${OWNER}/stor/dir/b`);
  assert.deepEqual(a, b);
  assert.equal(tier.ring.vnodeOfKey(`/${OWNER}/stor`), tier.ring.vnodeOfTransformed(`/${OWNER}/stor`));
  const again = await Tier.open(config, testPgUrl());
  try {
    for (let i = 0; i < 100; i++) {
      const k = `/${OWNER}/stor/d${i}/o`;
      assert.deepEqual(again.ring.locate(k), tier.ring.locate(k));
    }
  } finally {
    await again.close();
  }
});

test('ring: a changed shard list or vnode count is refused', async () => {
  await assert.rejects(Tier.open({ ...config, ring: { vnodes: 4096 } }, testPgUrl()), (e) =>
    isRemoraError(e, 'RingChanged'),
  );
  const shards = [...config.shards, { name: '4.moray.remora.local', role: 'index' as const }];
  await assert.rejects(Tier.open({ ...config, shards }, testPgUrl()), (e) => isRemoraError(e, 'RingChanged'));
});

test('batch: operations on one shard are one transaction', async () => {
  const k1 = `/${OWNER}/stor/batch/a`;
  const k2 = `/${OWNER}/stor/batch/b`;
  await tier.putObject('manta', k2, objectValue(k2, 'e0000000-0000-4000-8000-000000000002'));
  await assert.rejects(
    tier.batch([
      { op: 'put', bucket: 'manta', key: k1, value: objectValue(k1, 'e0000000-0000-4000-8000-000000000001') },
      {
        op: 'put',
        bucket: 'manta',
        key: k2,
        value: objectValue(k2, 'e0000000-0000-4000-8000-000000000003'),
        etag: 'DEADBEEF',
      },
    ]),
    (e) => isRemoraError(e, 'EtagConflict'),
  );
  assert.equal(await tier.getObject('manta', k1), undefined, 'first put rolled back');
});

test('deleteManyOnShard: removes only rows whose etag still matches, on the shard named; reports gone and changed', async () => {
  const [s0, s1] = tier.indexShards;
  assert.ok(s0 && s1, 'two index shards');
  const put = async (shard: typeof s0, key: string, value: string) => {
    await shard.pool.query(
      `INSERT INTO manta_delete_log (_key, _value, _etag, _mtime) VALUES ($1, $2, $3, $4)`,
      [key, value, morayEtag(value), clock.now()],
    );
    return morayEtag(value);
  };
  const keep = await put(s0, '/aaaa/1', '{"v":1}');
  const stale = await put(s0, '/bbbb/1', '{"v":2}');
  await s0.pool.query(`UPDATE manta_delete_log SET _value = '{"v":3}', _etag = $1 WHERE _key = '/bbbb/1'`, [
    morayEtag('{"v":3}'),
  ]);
  // The same key on another shard is not touched by a delete on s0.
  const other = await put(s1, '/aaaa/1', '{"v":1}');
  const out = await tier.deleteManyOnShard(s0.name, 'manta_delete_log', [
    { key: '/aaaa/1', etag: keep },
    { key: '/bbbb/1', etag: stale },
    { key: '/cccc/1', etag: 'ABCDEF01' },
  ]);
  assert.deepEqual(Object.fromEntries(out), {
    '/aaaa/1': 'removed',
    '/bbbb/1': 'changed',
    '/cccc/1': 'gone',
  });
  const left0 = (await s0.pool.query<{ _key: string }>('SELECT _key FROM manta_delete_log ORDER BY _key'))
    .rows;
  assert.deepEqual(
    left0.map((r) => r._key).filter((k) => ['/aaaa/1', '/bbbb/1'].includes(k)),
    ['/bbbb/1'],
    'the changed row stays',
  );
  const left1 = await s1.pool.query<{ _etag: string }>(
    `SELECT _etag FROM manta_delete_log WHERE _key = '/aaaa/1'`,
  );
  assert.equal(left1.rows[0]?._etag, other, 'the other shard keeps its row');
  // Again: what was removed is now gone; nothing else changes.
  const again = await tier.deleteManyOnShard(s0.name, 'manta_delete_log', [{ key: '/aaaa/1', etag: keep }]);
  assert.equal(again.get('/aaaa/1'), 'gone');
  await assert.rejects(tier.deleteManyOnShard(s0.name, 'manta', [{ key: '/x', etag: 'y' }]), (e: unknown) =>
    isRemoraError(e, 'Internal'),
  );
});

test('replaceManyIfEtag: one statement per shard replaces rows that still have their etag; a changed, missing or re-identified row aborts its shard', async () => {
  const N2 = [{ datacenter: 'dc2', manta_storage_id: '2.stor.dc2.remora.local' }];
  const keys = Array.from({ length: 12 }, (_, i) => `/${OWNER}/stor/replace-many/d${i}/o`);
  const ids = keys.map((_, i) => `b0000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const etags: string[] = [];
  for (const [i, k] of keys.entries()) etags.push(await tier.putObject('manta', k, objectValue(k, ids[i]!)));
  const shardOf = (k: string) => tier.route(MANTA_BUCKET, k).shard;
  assert.ok(new Set(keys.map((k) => shardOf(k).name)).size > 1, 'the keys span more than one shard');
  const deleteLog = async () => {
    let n = 0;
    for (const s of tier.indexShards)
      n += Number((await s.pool.query<{ n: string }>('SELECT count(*) n FROM manta_delete_log')).rows[0]!.n);
    return n;
  };
  const logBefore = await deleteLog();

  // Every row unchanged: all replaced; the etags returned are the stored ones; no delete log.
  const ops = keys.map((k, i) => ({
    key: k,
    value: objectValue(k, ids[i]!, { sharks: N2 }),
    etag: etags[i]!,
  }));
  const got = await tier.replaceManyIfEtag('manta', ops);
  for (const [i, k] of keys.entries()) {
    const row = (await tier.getObject<{ sharks: unknown }>('manta', k))!;
    assert.equal(row.etag, got[i], k);
    assert.deepEqual(row.value.sharks, N2, k);
  }
  assert.equal(await deleteLog(), logBefore, 'same objectId: no delete-log record');

  // One stale etag: its whole shard is untouched, EtagConflict; other shards as they commit.
  const N3 = [{ datacenter: 'dc3', manta_storage_id: '3.stor.dc3.remora.local' }];
  const stale = keys[0]!;
  const staleShard = shardOf(stale).name;
  await assert.rejects(
    tier.replaceManyIfEtag('manta', [
      { key: stale, value: objectValue(stale, ids[0]!, { sharks: N3 }), etag: etags[0]! },
      ...keys
        .slice(1)
        .map((k, i) => ({ key: k, value: objectValue(k, ids[i + 1]!, { sharks: N3 }), etag: got[i + 1]! })),
    ]),
    (e: unknown) => isRemoraError(e, 'EtagConflict'),
  );
  for (const k of keys.filter((x) => shardOf(x).name === staleShard))
    assert.deepEqual(
      (await tier.getObject<{ sharks: unknown }>('manta', k))!.value.sharks,
      N2,
      `${k} rolled back`,
    );

  // A new objectId would need the delete log: refused as a conflict, row kept.
  const k1 = keys[1]!;
  const cur = (await tier.getObject('manta', k1))!;
  await assert.rejects(
    tier.replaceManyIfEtag('manta', [{ key: k1, value: objectValue(k1, ids[2]!), etag: cur.etag }]),
    (e: unknown) => isRemoraError(e, 'EtagConflict'),
  );
  assert.equal((await tier.getObject('manta', k1))!.etag, cur.etag);
  // A row that does not exist: a conflict, nothing created.
  const ghost = `/${OWNER}/stor/replace-many/ghost`;
  await assert.rejects(
    tier.replaceManyIfEtag('manta', [{ key: ghost, value: objectValue(ghost, ids[3]!), etag: 'ABCDEF01' }]),
    (e: unknown) => isRemoraError(e, 'EtagConflict'),
  );
  assert.equal(await tier.getObject('manta', ghost), undefined);
});
