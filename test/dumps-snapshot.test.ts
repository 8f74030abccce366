/**
 * Snapshot on real PostgreSQL: consistency under a concurrent writer, and the round trip
 * live records → snapshot → unpack → chunk rows.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { openTestTier } from './helpers/pg.js';
import { readChunkRows } from './helpers/chunks.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { snapshotAll, snapshotShard } from '../src/dumps/snapshot.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { listChunks } from '../src/dumps/manifest.js';
import { parseCopyHeader, unescapeCopyField } from '../src/dumps/copy-text.js';
import { CopyOutBlocks } from '../src/dumps/copy-out.js';
import { connectShard } from '../src/metadata/metadata-tier.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
let tier: MetadataTier;
let store: LocalObjectStore;
let cleanup: () => Promise<void>;

before(async () => {
  const t = await openTestTier();
  tier = t.tier;
  store = new LocalObjectStore(path.join(t.config.stateDir, 'objects'));
  cleanup = t.cleanup;
});
after(async () => cleanup());

let n = 0;
const uuid = () => `0b9f6d3a-7f3c-4f0e-9d1e-${(n++).toString(16).padStart(12, '0')}`;

function dir(key: string) {
  const i = key.lastIndexOf('/');
  return {
    dirname: key.slice(0, i),
    key,
    headers: {},
    mtime: 1,
    name: key.slice(i + 1),
    creator: OWNER,
    owner: OWNER,
    roles: [],
    type: 'directory',
  };
}

function obj(key: string, objectId: string, extra: Record<string, unknown> = {}) {
  return {
    ...dir(key),
    type: 'object',
    contentLength: 3,
    contentMD5: 'rL0Y20zC+Fzt72VPzMSk2A==',
    contentType: 'text/plain',
    etag: objectId,
    objectId,
    sharks: [
      { datacenter: 'dc1', manta_storage_id: '1.stor.dc1.remora.local' },
      { datacenter: 'dc2', manta_storage_id: '2.stor.dc2.remora.local' },
    ],
    ...extra,
  };
}

/** Rows of one dumped table, decoded: the dump as a naive reader sees it. */
function dumpRows(file: string, table: string): Record<string, string | null>[] {
  const lines = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8').split('\n');
  const out: Record<string, string | null>[] = [];
  let cols: string[] | undefined;
  for (const line of lines) {
    if (cols) {
      if (line === '\\.') return out;
      const f = line.split('\t').map(unescapeCopyField);
      out.push(Object.fromEntries(cols.map((c, i) => [c, f[i] ?? null])));
    } else if (parseCopyHeader(line)?.table === table) cols = parseCopyHeader(line)!.columns;
  }
  return out;
}

test('a writer moving an object between two keys in one transaction never shows zero or two copies', async () => {
  // Both keys in one directory: one shard, so each move is one transaction (a moray batch).
  const d = `/${OWNER}/stor/mover`;
  const [a, b] = [`${d}/a`, `${d}/b`];
  const id = uuid();
  await tier.putObject('manta', d, dir(d));
  await tier.putObject('manta', a, obj(a, id));
  const shard = tier.shard(tier.ring.locate(a).shard);
  // Padding so each COPY takes long enough for moves to land in the middle of a snapshot.
  await shard.pool.query(
    `INSERT INTO manta (_key, _value, _etag, _mtime, dirname, name, owner, type)
     SELECT '/${OWNER}/stor/pad/' || g, '{"type":"directory"}', '00000000', 1, '/${OWNER}/stor/pad', g::text, '${OWNER}', 'directory'
     FROM generate_series(1, 40000) g`,
  );
  let stop = false;
  let moves = 0;
  const writer = (async () => {
    let at = a;
    while (!stop) {
      const to = at === a ? b : a;
      await tier.batch([
        { op: 'delete', bucket: 'manta', key: at },
        { op: 'put', bucket: 'manta', key: to, value: obj(to, id) },
      ]);
      at = to;
      moves++;
    }
  })();
  try {
    for (let i = 0; i < 4; i++) {
      const s = await snapshotShard(shard, store);
      const file = store.localPath(s.path);
      const copies = dumpRows(file, 'manta').filter((r) => r._key === a || r._key === b);
      assert.equal(copies.length, 1, `snapshot ${i}: ${copies.length} copies`);
      // Each move deletes one key: one delete-log row. Even count ⇔ the object is at `a`.
      const logged = dumpRows(file, 'manta_delete_log').filter((r) => r.objectid === id).length;
      assert.equal(
        copies[0]!._key,
        logged % 2 === 0 ? a : b,
        `snapshot ${i}: manta agrees with the delete log`,
      );
    }
  } finally {
    stop = true;
    await writer;
  }
  assert.ok(moves > 4, `the writer kept writing (${moves} moves)`);
});

test('round trip: live records → snapshot → unpack → the same records in the chunks', async () => {
  const dirs = ['rt', 'rt/x', 'rt/y', 'rt/y/z'].map((p) => `/${OWNER}/stor/${p}`);
  for (const d of dirs) await tier.putObject('manta', d, dir(d));
  for (let i = 0; i < 40; i++) {
    const d = dirs[i % dirs.length]!;
    const key = `${d}/o${i}`;
    const id = uuid();
    await tier.putObject('manta', key, obj(key, id, { contentLength: i }));
    // A link in another directory (likely another shard), then overwrite or delete some.
    const link = `${dirs[(i + 1) % dirs.length]!}/link${i}`;
    if (i % 3 === 0) await tier.putObject('manta', link, obj(link, id, { createdFrom: key }));
    if (i % 4 === 0) await tier.putObject('manta', key, obj(key, uuid()));
    if (i % 7 === 0) await tier.deleteObject('manta', key);
  }
  await tier.putObject(
    'manta',
    `/${OWNER}/public/zero`,
    obj(`/${OWNER}/public/zero`, uuid(), { contentLength: 0, sharks: [] }),
  );
  await tier.putObject('manta_storage', '1.stor.dc1.remora.local', {
    manta_storage_id: '1.stor.dc1.remora.local',
    datacenter: 'dc1',
    availableMB: 5,
    percentUsed: 1,
    timestamp: 1,
  });
  const snaps = await snapshotAll(tier, store);
  assert.equal(snaps.length, tier.shards.size);
  let checked = 0;
  for (const s of snaps) {
    const r = await unpackDump(store, [s.path], { partitions: 3 });
    assert.equal(r.manifest.source, s.shard);
    assert.equal(r.manifest.snapshotTime, s.snapshotTime.toISOString());
    for (const table of Object.keys(s.tables)) {
      const live = await tier
        .shard(s.shard)
        .pool.query<Record<string, string | null>>(
          `SELECT _id::text, _txn_snap::text, _key, _value, _etag, _mtime::text, _vnode::text FROM ${table} ORDER BY _key`,
        );
      const chunks = await listChunks(store, { day: r.manifest.day, source: s.shard, table });
      const rows = (
        await readChunkRows(
          store,
          chunks.map((c) => c.path),
        )
      ).sort((x, y) => ((x._key as string) < (y._key as string) ? -1 : 1));
      assert.equal(rows.length, live.rows.length, `${s.shard} ${table}`);
      assert.equal(s.tables[table], live.rows.length);
      live.rows.forEach((l, i) => {
        const c = rows[i]!;
        for (const col of ['_id', '_txn_snap', '_key', '_value', '_etag', '_mtime', '_vnode'])
          assert.equal(c[col], l[col], `${l._key} ${col}`);
        const v = JSON.parse(l._value!) as { objectId?: string; owner?: string; createdFrom?: string };
        assert.equal(c.objectId, v.objectId ?? null);
        assert.equal(c.createdFrom, v.createdFrom ?? null);
        assert.equal(c.shard, s.shard);
        checked++;
      });
    }
    assert.equal(r.manifest.verdict, 'ok', JSON.stringify(r.manifest.report));
  }
  assert.ok(checked > 100, `${checked} records compared`);
  // Links to one objectId on several shards land in the same partition number on each.
  const all = await listChunks(store, {
    day: snaps[0]!.snapshotTime.toISOString().slice(0, 10),
    table: 'manta',
  });
  const partsOf = new Map<string, Set<number>>();
  for (const c of all)
    for (const row of await readChunkRows(store, [c.path]))
      if (row.objectId)
        partsOf.set(
          row.objectId as string,
          (partsOf.get(row.objectId as string) ?? new Set()).add(c.partition),
        );
  for (const [id, parts] of partsOf) assert.equal(parts.size, 1, `${id} in one partition`);
});

test(
  'COPY TO as blocks: rows split across blocks arrive whole and counted; a failing COPY leaves the client usable',
  { timeout: 60_000 },
  async () => {
    const shard = tier.indexShards[0]!;
    const client = await connectShard(shard);
    try {
      await client.query('CREATE TEMP TABLE copy_blocks (i int, t text)');
      // Rows of varied length, with COPY escapes, so rows and message headers straddle 100-byte blocks.
      await client.query(
        `INSERT INTO copy_blocks SELECT i, repeat(chr(97 + i % 26), i % 37) || E'\\t\\\\x' FROM generate_series(1, 2000) i`,
      );
      const blocks: Buffer[] = [];
      const copy = client.query(new CopyOutBlocks('COPY copy_blocks TO STDOUT', 100));
      for await (const b of copy) blocks.push(Buffer.from(b as Buffer));
      await copy.settled;
      assert.ok(blocks.length > 100, `${blocks.length} blocks`);
      assert.ok(
        blocks.slice(0, -1).every((b) => b.length === 100),
        'full blocks until the last',
      );
      const text = Buffer.concat(blocks).toString('utf8');
      const lines = text.split('\n');
      assert.equal(lines.pop(), '', 'ends with a newline');
      assert.equal(lines.length, 2000);
      assert.deepEqual([copy.rows, copy.serverRows], [2000, 2000]);
      const expected = await client.query<{ i: number; t: string }>(
        'SELECT i, t FROM copy_blocks ORDER BY i',
      );
      const got = new Map(
        lines.map((l) => l.split('\t')).map(([i, t]) => [Number(i), unescapeCopyField(t!)]),
      );
      assert.deepEqual(
        expected.rows.map((r) => got.get(r.i)),
        expected.rows.map((r) => r.t),
      );

      // A reader that gives up after the first block (its write failed): the rest of the COPY is
      // drained, and the client answers the next query instead of waiting forever.
      const early = client.query(new CopyOutBlocks('COPY copy_blocks TO STDOUT', 100));
      await assert.rejects(
        (async () => {
          for await (const _ of early) throw new Error(`write failed ${String(_ === undefined)}`);
        })(),
        /write failed/,
      );
      await early.settled;
      assert.equal(early.rows, 2000, 'the rest was read and dropped');

      const bad = client.query(new CopyOutBlocks('COPY no_such_table TO STDOUT'));
      await assert.rejects(
        (async () => {
          for await (const _ of bad) void _;
        })(),
        /no_such_table/,
      );
      await bad.settled;
      assert.equal(
        (await client.query<{ n: number }>('SELECT count(*)::int AS n FROM copy_blocks')).rows[0]!.n,
        2000,
      );
    } finally {
      client.release();
    }
  },
);
