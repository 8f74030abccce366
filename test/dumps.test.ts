/**
 * Unpack against the real Manta fixtures (test/fixtures/manta-samples, from ../shared/fixtures), bad input, the
 * object store, and storage-node listing ingestion. No PostgreSQL needed here.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { listChunks } from '../src/dumps/manifest.js';
import { partitionOf } from '../src/dumps/partition.js';
import { escapeCopyField, unescapeCopyField } from '../src/dumps/copy-text.js';
import { ingestMakoListing } from '../src/dumps/mako.js';
import { isRemoraError } from '../src/core/errors.js';
import { readChunkRows } from './helpers/chunks.js';
import { readText } from './helpers/pipeline-jobs.js';

// A copy of ../shared/fixtures/manta-samples (MPL-2.0, joyent/manta-mola data/), kept in the
// repository so a clean clone on any machine has them.
const FIXTURES = process.env.REMORA_FIXTURES ?? path.resolve('test/fixtures/manta-samples');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-dumps-'));
const store = new LocalObjectStore(path.join(tmp, 'objects'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The naive reader: JSON.parse every line, zip keys with entry, `\N` → null; skip what does not parse. */
function naiveRead(file: string): { table: string; rows: Record<string, string | null>[] } {
  let keys: string[] = [];
  let table = '';
  const rows: Record<string, string | null>[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    let o: { name?: string; keys?: string[]; entry?: string[] };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      continue;
    }
    if (o.keys) [keys, table] = [o.keys, o.name!];
    else if (o.entry)
      rows.push(Object.fromEntries(keys.map((k, i) => [k, o.entry![i] === '\\N' ? null : o.entry![i]!])));
  }
  return { table, rows };
}

async function unpackFixture(rel: string, shard: string) {
  const r = await unpackDump(store, [path.join(FIXTURES, rel)], { shard, partitions: 4 });
  const rows = await readChunkRows(
    store,
    Object.values(r.manifest.tables).flatMap((t) => t.chunks.map((c) => c.path)),
  );
  return { r, rows };
}

const MORAY_FIXTURES = [
  'pg_rt_test/2012-10-05-16-00-02-manta',
  'pg_rt_test/2012-10-05-16-00-02-manta_delete_log',
  'cruft_rt_test/moray-manta_sample',
  'cruft_rt_test/moray-manta_delete_log_sample',
];

for (const [i, rel] of MORAY_FIXTURES.entries()) {
  test(`fixture ${rel} unpacks to the rows a naive reader sees`, async () => {
    const naive = naiveRead(path.join(FIXTURES, rel));
    const { r, rows } = await unpackFixture(rel, `${i + 10}.moray.fixture`);
    assert.equal(r.manifest.tables[naive.table]?.rows, naive.rows.length);
    assert.equal(rows.length, naive.rows.length);
    const byKey = new Map(rows.map((x) => [x._key as string, x]));
    assert.equal(byKey.size, naive.rows.length, 'keys are unique');
    for (const n of naive.rows) {
      const c = byKey.get(n._key!)!;
      assert.ok(c, `row ${n._key}`);
      for (const col of ['_value', '_etag', '_mtime', '_id', '_vnode', '_txn_snap'])
        assert.equal(c[col], n[col] ?? null, `${n._key} ${col}`);
      const v = JSON.parse(n._value!) as Record<string, string | number | undefined>;
      assert.equal(c.value_ok, true);
      for (const f of ['owner', 'creator', 'type', 'objectId', 'contentMD5', 'etag', 'createdFrom', 'key'])
        assert.equal(c[f], v[f] ?? null, `${n._key} ${f}`);
      assert.equal(c.contentLength, v.contentLength === undefined ? null : String(v.contentLength));
      assert.equal(c.mtime, v.mtime === undefined ? null : String(v.mtime));
      const sharks = (v.sharks as Record<string, string>[] | undefined)?.map((s) => ({
        datacenter: s.datacenter ?? null,
        manta_storage_id: s.manta_storage_id ?? new URL(s.url!).hostname,
      }));
      assert.deepEqual(c.sharks, sharks ?? null, `${n._key} sharks`);
      // The partition is the hash of the objectId column, or of the key when there is none.
      const chunk = r.manifest.tables[naive.table]!.chunks;
      assert.ok(chunk.length > 0);
    }
    for (const c of await listChunks(store, {
      day: r.manifest.day,
      source: r.manifest.source,
      table: naive.table,
    })) {
      const inChunk = await readChunkRows(store, [c.path]);
      for (const x of inChunk)
        assert.equal(partitionOf((x.objectId as string | null) ?? (x._key as string), 4), c.partition);
    }
    // No recorded instant in the sample names without a stamp: only that is reported.
    const kinds = Object.values(r.manifest.report.events)
      .map((e) => e.kind)
      .filter((k) => k !== 'snapshot_time_guessed');
    assert.deepEqual(kinds, [], JSON.stringify(r.manifest.report.events));
  });
}

test('generic table: same rows as the naive reader, unknown layout reported', async () => {
  const naive = naiveRead(path.join(FIXTURES, 'generic_table/dump.sample'));
  const { r, rows } = await unpackFixture('generic_table/dump.sample', 'g.moray.fixture');
  const strip = (x: Record<string, unknown>) => ({ ...x, shard: undefined });
  assert.deepEqual(
    rows
      .map(strip)
      .sort((a, b) => String((a as { id?: unknown }).id).localeCompare(String((b as { id?: unknown }).id))),
    naive.rows.map((x) => ({ ...x, shard: undefined })),
  );
  assert.ok(
    Object.values(r.manifest.report.events).some(
      (e) => e.kind === 'unknown_layout' && e.severity === 'warning',
    ),
  );
});

test('dump_garbage.sample: its good rows plus one reported bad line', async () => {
  const { r, rows } = await unpackFixture('generic_table/dump_garbage.sample', 'h.moray.fixture');
  assert.deepEqual(rows.map((x) => x.id).sort(), ['1', '2']);
  const bad = Object.values(r.manifest.report.events).filter((e) => e.kind === 'bad_line');
  assert.equal(bad.length, 1);
  assert.equal(bad[0]!.count, 1);
  assert.equal(bad[0]!.severity, 'error');
  assert.match(String(bad[0]!.examples[0]), /GARBAGEGARBAGE/);
  assert.equal(r.manifest.verdict, 'degraded');
});

/** A small plain dump in pg_dump format, written by hand. */
function plainDump(rows: string[][], opts: { trailer?: boolean } = {}): string {
  const cols = ['_id', '_txn_snap', '_key', '_value', '_etag', '_mtime', '_vnode', 'objectid'];
  return [
    '--',
    '-- remora-snapshot-time: 2024-03-05T06:07:08.000Z',
    '--',
    `COPY public.manta (${cols.join(', ')}) FROM stdin;`,
    ...rows.map((r) => r.map((f) => escapeCopyField(f === '<null>' ? null : f)).join('\t')),
    '\\.',
    '',
    ...(opts.trailer === false ? [] : ['-- PostgreSQL database dump complete', '']),
  ].join('\n');
}

test('plain dump: COPY escapes decode; a non-JSON _value and a short row are reported, the rest kept', async () => {
  const weird = '/6f1c1f0e-8a5e-4a8c-9a3e-1d2f3a4b5c6d/stor/tab\there\nnew\\line "q"';
  const value = JSON.stringify({ key: weird, owner: 'o', type: 'directory', note: 'back\\slash' });
  const file = path.join(tmp, 'moray-2024-03-05-06-07-08.gz');
  const text = plainDump([
    ['1', '<null>', weird, value, 'AAAAAAAA', '1', '<null>', '<null>'],
    ['2', '<null>', '/x/stor/bad', '{not json', 'BBBBBBBB', '2', '5', '<null>'],
  ]).replace('\\.', 'short\trow\n\\.');
  fs.writeFileSync(file, zlib.gzipSync(text));
  const r = await unpackDump(store, [file], { shard: 'p.moray.fixture', partitions: 2 });
  const rows = await readChunkRows(
    store,
    r.manifest.tables.manta!.chunks.map((c) => c.path),
  );
  const a = rows.find((x) => x._id === '1')!;
  assert.equal(a._key, weird);
  assert.equal(a._value, value);
  assert.equal(a.key, weird);
  const b = rows.find((x) => x._id === '2')!;
  assert.equal(b.value_ok, false);
  assert.equal(b._value, '{not json');
  assert.equal(b._vnode, '5');
  const kinds = Object.values(r.manifest.report.events)
    .map((e) => e.kind)
    .sort();
  assert.deepEqual(kinds, ['bad_row', 'bad_value']);
  assert.equal(r.manifest.snapshotTime, '2024-03-05T06:07:08.000Z');
  assert.equal(unescapeCopyField(escapeCopyField(weird)), weird);
});

test('a truncated gzip fails the run with a clear error; so does a dump without its trailer', async () => {
  const gz = zlib.gzipSync(
    plainDump([['1', '<null>', '/a/stor/b', '{}', 'AAAAAAAA', '1', '<null>', '<null>']]),
  );
  const cut = path.join(tmp, 'cut-2024-03-05-06-07-08.gz');
  fs.writeFileSync(cut, gz.subarray(0, gz.length - 12));
  await assert.rejects(unpackDump(store, [cut], { shard: 'q.moray.fixture' }), (e) => {
    assert.ok(isRemoraError(e, 'MalformedInput'));
    assert.match(e.message, /truncated/);
    return true;
  });
  const noTrailer = path.join(tmp, 'nt-2024-03-05-06-07-08');
  fs.writeFileSync(
    noTrailer,
    plainDump([['1', '<null>', '/a/stor/b', '{}', 'A', '1', '<null>', '<null>']], { trailer: false }),
  );
  await assert.rejects(unpackDump(store, [noTrailer], { shard: 'q.moray.fixture' }), /truncated/);
});

test('entry objects: the original {"entry"} format is written on request and reads back the same', async () => {
  const file = path.join(tmp, 'moray-2024-03-05-06-07-09.gz');
  const value = JSON.stringify({ key: '/o/stor/a', objectId: 'x', type: 'object' });
  fs.writeFileSync(
    file,
    zlib.gzipSync(plainDump([['7', '<null>', '/o/stor/a', value, 'CCCCCCCC', '3', '<null>', 'x']])),
  );
  const r = await unpackDump(store, [file], { shard: 'e.moray.fixture', entryObjects: true });
  assert.equal(r.entryObjects.length, 1);
  const text = zlib.gunzipSync(fs.readFileSync(store.localPath(r.entryObjects[0]!))).toString();
  const lines = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal((lines[0] as { name: string }).name, 'manta');
  assert.deepEqual((lines[1] as { entry: string[] }).entry, [
    '7',
    '\\N',
    '/o/stor/a',
    value,
    'CCCCCCCC',
    '3',
    '\\N',
    'x',
  ]);
});

test(
  'entry objects: a table that fills its gzip buffer, then another table starting in the same read, does not stall',
  { timeout: 30_000 },
  async () => {
    // ~55 KB of manta rows (over a gzip stream's 16 KB buffer), then a delete-log table that
    // starts near the end of the same 64 KB read of a plain file and goes on into the next read: the writer
    // remembered "needs drain" from the first table's stream and, between the two reads, waited
    // for a 'drain' of the second one that never came.
    const value = (i: number) =>
      JSON.stringify({ key: `/o/stor/k${i}`, objectId: `id${i}`, type: 'object', pad: 'p'.repeat(120) });
    const rows = Array.from({ length: 280 }, (_, i) => [
      '' + i,
      '<null>',
      `/o/stor/k${i}`,
      value(i),
      'CCCCCCCC',
      '3',
      '<null>',
      `id${i}`,
    ]);
    const deletes = Array.from(
      { length: 200 },
      (_, i) => `${i}\t\\N\t/id${i}/1\t${value(i)}\tDDDDDDDD\t4\t\\N\tid${i}\n`,
    );
    const text = plainDump(rows).replace(
      '\\.\n',
      '\\.\n\nCOPY public.manta_delete_log (_id, _txn_snap, _key, _value, _etag, _mtime, _vnode, objectid) FROM stdin;\n' +
        `${deletes.join('')}\\.\n`,
    );
    const tableSwitch = Buffer.byteLength(text.slice(0, text.indexOf('COPY public.manta_delete_log')));
    // The second table's part of the first read stays under the 16 KB buffer: no 'drain' of its own.
    assert.ok(tableSwitch > 52 * 1024 && tableSwitch < 62 * 1024, `delete log at byte ${tableSwitch}`);
    assert.ok(Buffer.byteLength(text) > 64 * 1024, `${Buffer.byteLength(text)} bytes`);
    const file = path.join(tmp, 'moray-2024-03-05-06-07-10');
    fs.writeFileSync(file, text);
    const r = await unpackDump(store, [file], { shard: 'd.moray.fixture', entryObjects: true });
    assert.equal(r.entryObjects.length, 2);
    assert.deepEqual([r.manifest.tables.manta?.rows, r.manifest.tables.manta_delete_log?.rows], [280, 200]);
    const lines = (i: number) =>
      zlib
        .gunzipSync(fs.readFileSync(store.localPath(r.entryObjects[i]!)))
        .toString()
        .trim()
        .split('\n');
    assert.deepEqual([lines(0).length, lines(1).length], [281, 201]);
  },
);

test('object store: atomic put records size and sha256; list, head, delete; paths are checked', async () => {
  const p = '/poseidon/stor/test/a/b.txt';
  const put = await store.put(p, 'hello', { 'm-x': '1' });
  assert.equal(put.bytes, 5);
  assert.equal(put.sha256, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
  const h = await store.head(p);
  assert.deepEqual([h?.bytes, h?.sha256, h?.meta['m-x']], [5, put.sha256, '1']);
  // A streamed body takes the other write path: the same record, and a replace is whole.
  const streamed = await store.put(`${p}.s`, Readable.from([Buffer.from('hel'), Buffer.from('lo')]));
  assert.equal(streamed.sha256, put.sha256);
  await store.put(`${p}.s`, 'bye');
  assert.equal(await readText(store, `${p}.s`), 'bye');
  assert.deepEqual((await store.head(`${p}.s`))?.bytes, 3);
  await store.delete(`${p}.s`);
  assert.deepEqual(
    fs.readdirSync(path.dirname(store.localPath(p))).filter((f) => f.startsWith('.tmp-')),
    [],
    'no temp files left behind',
  );
  assert.deepEqual(await store.list('/poseidon/stor/test/'), [p]);
  assert.deepEqual(await store.list('/poseidon/stor/test/a/b'), [p]);
  await store.delete(p);
  assert.equal(await store.head(p), undefined);
  await assert.rejects(store.put('/poseidon/../etc/x', 'x'), (e) => isRemoraError(e, 'InvalidPath'));
  await assert.rejects(store.get('/poseidon/none'), (e) => isRemoraError(e, 'ObjectNotFound'));
});

test('storage listing: uploaded with its start instant, ingested by objectId, skips counted', async () => {
  const sample = fs.readFileSync(path.join(FIXTURES, 'cruft_rt_test/mako_sample'), 'utf8').split('\n');
  const extra = [
    '/manta/tombstone/2024-03-05/0b9f6d3a-7f3c-4f0e-9d1e-2a3b4c5d6e7f\t10\t1700000000\t4',
    '/manta/nginx_temp/0000001\t10\t1700000000\t4',
    '/manta/poseidon/0b9f6d3a-7f3c-4f0e-9d1e-2a3b4c5d6e7f\t10\t1700000000\t4',
    'garbage line',
  ];
  async function* lines() {
    for (const l of [...sample, ...extra]) yield await Promise.resolve(l);
  }
  const good = sample.filter((l) => l.trim() !== '');
  const r = await ingestMakoListing(
    store,
    { storageId: '9.stor.dc1.fixture', startedAt: '2024-03-05T08:01:00.000Z', lines: lines() },
    { partitions: 4 },
  );
  const head = await store.head(r.listingPath);
  assert.equal(head?.meta['m-mako-dump-time'], '2024-03-05T08:01:00.000Z');
  const c = r.manifest.report.counters;
  assert.equal(c['rows.mako'], good.length);
  assert.deepEqual(
    [c['skipped.tombstone'], c['skipped.temp'], c['skipped.non_uuid_owner'], c['skipped.bad_line']],
    [1, 1, 1, 1],
  );
  const byPartition = [];
  for (let p = 0; p < 4; p++)
    byPartition.push(...(await listChunks(store, { day: '2024-03-05', table: 'mako', partition: p })));
  assert.deepEqual(
    byPartition.map((c) => c.path).sort(),
    r.manifest.tables.mako!.chunks.map((c) => c.path).sort(),
  );
  const rows = await readChunkRows(
    store,
    r.manifest.tables.mako!.chunks.map((x) => x.path),
  );
  assert.equal(rows.length, good.length);
  const first = good[0]!.split('\t');
  const row = rows.find((x) => x.path === first[0])!;
  assert.deepEqual([row.bytes, row.mtime, row.manta_storage_id], [first[1], first[2], '9.stor.dc1.fixture']);
  assert.equal(row.objectId, first[0]!.split('/')[3]);
});
