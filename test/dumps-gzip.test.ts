/**
 * Snapshots are gzipped as independent members (parallel-gzip.ts). The file must stay one valid
 * gzip file for every reader: zcat, zlib, and the unpacker. No PostgreSQL needed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { ParallelGzip } from '../src/dumps/parallel-gzip.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { readChunkRows } from './helpers/chunks.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-dumps-gzip-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function dumpText(n: number): string {
  const rows = Array.from({ length: n }, (_, i) => {
    const key = `/4ebc3ff1-dd83-40a6-bc38-000000000001/stor/o${i}`;
    const id = `0b9f6d3a-7f3c-4f0e-9d1e-${i.toString(16).padStart(12, '0')}`;
    return [
      i,
      '\\N',
      key,
      JSON.stringify({ key, objectId: id, type: 'object' }),
      'AAAAAAAA',
      i,
      i % 7,
      id,
    ].join('\t');
  });
  return [
    '-- remora-snapshot-time: 2024-03-05T06:07:08.000Z',
    'COPY public.manta (_id, _txn_snap, _key, _value, _etag, _mtime, _vnode, objectid) FROM stdin;',
    ...rows,
    '\\.',
    '',
    '-- PostgreSQL database dump complete',
    '',
  ].join('\n');
}

async function parallelGzip(file: string, text: string, blockBytes: number): Promise<void> {
  // Written in small pieces, as the snapshot writes COPY batches.
  const pieces = text.match(/[^]{1,777}/g) ?? [];
  await pipeline(
    Readable.from(pieces),
    new ParallelGzip({ level: 1 }, blockBytes, 2),
    fs.createWriteStream(file),
  );
}

/** Offsets of gzip member headers (magic, deflate, no flags) — a lower bound on the members. */
function memberCount(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(0x1f); i !== -1; i = b.indexOf(0x1f, i + 1))
    if (b[i + 1] === 0x8b && b[i + 2] === 8 && b[i + 3] === 0) n++;
  return n;
}

test('multi-member gzip: zcat and zlib read it whole; one member for a small input', async () => {
  const text = dumpText(5000);
  const multi = path.join(tmp, 'multi.gz');
  await parallelGzip(multi, text, 20_000);
  const bytes = fs.readFileSync(multi);
  assert.ok(memberCount(bytes) >= Buffer.byteLength(text) / 20_000 - 1, 'several members');
  assert.equal(zlib.gunzipSync(bytes).toString(), text);
  assert.equal(execFileSync('zcat', [multi], { maxBuffer: 64 << 20 }).toString(), text);
  execFileSync('gzip', ['-t', multi]);
  const single = path.join(tmp, 'single.gz');
  await parallelGzip(single, 'hello\n', 20_000);
  assert.equal(zlib.gunzipSync(fs.readFileSync(single)).toString(), 'hello\n');
  const empty = path.join(tmp, 'empty.gz');
  await parallelGzip(empty, '', 20_000);
  assert.equal(zlib.gunzipSync(fs.readFileSync(empty)).toString(), '');
});

test('unpack reads a multi-member dump like a single-member one; a cut member still fails', async () => {
  const text = dumpText(5000);
  const multi = path.join(tmp, 'moray-2024-03-05-06-07-08.gz');
  await parallelGzip(multi, text, 20_000);
  const single = path.join(tmp, 'moray-2024-03-05-06-07-09.gz');
  fs.writeFileSync(single, zlib.gzipSync(text));
  const store = new LocalObjectStore(path.join(tmp, 'objects'));
  const read = async (file: string, shard: string) => {
    const r = await unpackDump(store, [file], { shard, partitions: 3 });
    const rows = await readChunkRows(
      store,
      r.manifest.tables.manta!.chunks.map((c) => c.path),
    );
    return rows.sort((a, b) => Number(a._id) - Number(b._id)).map((x) => ({ ...x, shard: null }));
  };
  const a = await read(multi, 'm.moray');
  assert.equal(a.length, 5000);
  assert.deepEqual(a, await read(single, 's.moray'));
  const cut = path.join(tmp, 'moray-2024-03-05-06-07-10.gz');
  const b = fs.readFileSync(multi);
  fs.writeFileSync(cut, b.subarray(0, Math.floor(b.length / 2)));
  await assert.rejects(unpackDump(store, [cut], { shard: 'c.moray' }), /truncated|corrupt/);
});
