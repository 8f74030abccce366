/**
 * The unpacker's byte path (copy-rows.ts: clean COPY rows handed to DuckDB as they are) must
 * give exactly what decoding every row gives. The decoding path is forced by asking for entry
 * objects (that writer needs decoded values), so the same dump is unpacked both ways and
 * compared, row by row and partition by partition. No PostgreSQL needed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { escapeCopyField } from '../src/dumps/copy-text.js';
import { CopyRowScanner, partitionOfAsciiBytes, unescapeCopyBytes } from '../src/dumps/copy-rows.js';
import { unescapeCopyField } from '../src/dumps/copy-text.js';
import { pickJsonFields } from '../src/dumps/json-fields.js';
import { MAX_ROW_BYTES } from '../src/dumps/dump-reader.js';
import { VALUE_FIELD_NAMES } from '../src/dumps/table-specs.js';
import { partitionOf } from '../src/dumps/partition.js';
import { LineBuffer, writeBufferBytes } from '../src/dumps/chunk-writer.js';
import { readChunkRows, type ChunkRow } from './helpers/chunks.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-dumps-raw-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const COLS = ['_id', '_txn_snap', '_key', '_value', '_etag', '_mtime', '_vnode', 'objectid'];
const LENIENT = { maxMalformedShare: 1, minRecordsForShare: 100 };

/** Rows of every kind the byte path must take or refuse. */
function rows(): string[] {
  const out: string[] = [];
  const row = (f: (string | null)[]) => f.map(escapeCopyField).join('\t');
  for (let i = 0; i < 3000; i++) {
    const id = `0b9f6d3a-7f3c-4f0e-9d1e-${i.toString(16).padStart(12, '0')}`;
    const key = `/4ebc3ff1-dd83-40a6-bc38-000000000001/stor/d${i % 7}/o${i}`;
    const value = {
      key,
      objectId: id,
      owner: 'o',
      type: 'object',
      contentLength: i,
      pad: 'x'.repeat(i % 300),
    };
    switch (i % 10) {
      case 0: // escapes in the key and the value: decoded path
        out.push(
          row([
            String(i),
            null,
            `${key}\ttab\\slash`,
            JSON.stringify({ ...value, note: 'a\\b"c' }),
            'AAAAAAAA',
            '1',
            '2',
            id,
          ]),
        );
        break;
      case 1: // upper-case objectId (partitioned lower-cased), empty _etag
        out.push(row([String(i), '7', key, JSON.stringify(value), '', '1', null, id.toUpperCase()]));
        break;
      case 2: // no objectId: partitioned by key; non-ASCII key
        out.push(
          row([
            String(i),
            null,
            `${key}-ÉTÉ-日本`,
            JSON.stringify({ ...value, objectId: undefined }),
            'B',
            '1',
            '3',
            null,
          ]),
        );
        break;
      case 3: // empty objectId: partitioned by key
        out.push(row([String(i), null, key, JSON.stringify(value), 'C', '1', '3', '']));
        break;
      case 4: // non-ASCII objectId (Unicode lower-casing)
        out.push(row([String(i), null, key, JSON.stringify(value), 'D', '1', '3', `ÀB-${i}`]));
        break;
      case 5: // a _value that is not JSON; a field that is literally "\N" text (escaped)
        out.push(row([String(i), null, key, '{not json', '\\N', '1', '3', id]));
        break;
      case 6: // wrong width: reported, dropped
        out.push([String(i), key, 'short'].join('\t'));
        break;
      default:
        out.push(
          row([
            String(i),
            null,
            key,
            JSON.stringify(value),
            'EEEEEEEE',
            String(1e12 + i),
            String(i % 8192),
            id,
          ]),
        );
    }
  }
  // Rows over 1 MiB are large rows (chunk-writer.ts LARGE_ROW_BYTES): their long values read
  // whole from files, their chunk of their own; 3 MB clean, 9 MB with an escape (once over the
  // old 8 MB cap). Both ways must give the same chunks as every other row.
  for (const [i, pad, note] of [
    [3000, 3 << 20, ''],
    [3001, 9 << 20, 'a\\b'],
  ] as const) {
    const id = `1b9f6d3a-7f3c-4f0e-9d1e-${i.toString(16).padStart(12, '0')}`;
    const key = `/4ebc3ff1-dd83-40a6-bc38-000000000001/stor/big/o${i}`;
    const value = JSON.stringify({
      key,
      objectId: id,
      owner: 'o',
      type: 'object',
      note,
      pad: 'y'.repeat(pad),
    });
    out.push(row([String(i), null, key, value, 'FFFFFFFF', '1', '2', id]));
  }
  return out;
}

function dumpText(): string {
  return [
    '-- remora-snapshot-time: 2024-03-05T06:07:08.000Z',
    `COPY public.manta (${COLS.join(', ')}) FROM stdin;`,
    ...rows(),
    '\\.',
    '',
    '-- PostgreSQL database dump complete',
    '',
  ].join('\n');
}

async function unpackBothWays(file: string, shard: string) {
  const store = new LocalObjectStore(path.join(tmp, shard));
  const read = async (entryObjects: boolean) => {
    // A fifth of these rows are bad on purpose: judged by the share, the result would be refused.
    const r = await unpackDump(store, [file], {
      shard,
      partitions: 5,
      entryObjects,
      segmentRows: 1000,
      thresholds: LENIENT,
    });
    const byPartition = new Map<number, ChunkRow[]>();
    for (const c of r.manifest.tables.manta!.chunks) {
      const got = await readChunkRows(store, [c.path]);
      byPartition.set(c.partition, [...(byPartition.get(c.partition) ?? []), ...got]);
    }
    for (const v of byPartition.values()) v.sort((a, b) => Number(a._id) - Number(b._id));
    return { r, byPartition };
  };
  return { bytes: await read(false), decoded: await read(true) };
}

for (const [name, write] of [
  ['plain (64 KB read chunks split rows)', (f: string, t: string) => fs.writeFileSync(f, t)],
  ['gzip', (f: string, t: string) => fs.writeFileSync(f, zlib.gzipSync(t))],
] as const) {
  test(`byte path = decoding path: ${name}`, async () => {
    const file = path.join(tmp, `moray-2024-03-05-06-07-08-${name.length}`);
    write(file, dumpText());
    const { bytes, decoded } = await unpackBothWays(file, `raw${name.length}.moray`);
    assert.equal(bytes.r.manifest.tables.manta!.rows, 2702);
    assert.equal(bytes.r.manifest.tables.manta!.rows, decoded.r.manifest.tables.manta!.rows);
    assert.deepEqual([...bytes.byPartition.keys()].sort(), [...decoded.byPartition.keys()].sort());
    for (const [p, want] of decoded.byPartition)
      assert.deepEqual(bytes.byPartition.get(p), want, `partition ${p}`);
    const events = (r: typeof bytes.r) =>
      Object.values(r.manifest.report.events)
        .map((e) => [e.kind, e.count])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    assert.deepEqual(events(bytes.r), events(decoded.r));
    assert.deepEqual(events(bytes.r), [
      ['bad_row', 300],
      ['bad_value', 300],
    ]);
  });
}

test('invalid UTF-8 in a chunk: those rows are decoded (U+FFFD), as before', async () => {
  const text = dumpText();
  const bad = Buffer.from(text.replace('/d3/o17\t', '/d3/o17\u0001\t'));
  bad[bad.indexOf(0x01)] = 0xff;
  const file = path.join(tmp, 'moray-2024-03-05-06-07-09');
  fs.writeFileSync(file, bad);
  const { bytes, decoded } = await unpackBothWays(file, 'rawutf.moray');
  for (const [p, want] of decoded.byPartition)
    assert.deepEqual(bytes.byPartition.get(p), want, `partition ${p}`);
  const all = [...bytes.byPartition.values()].flat();
  assert.ok(all.some((x) => typeof x._key === 'string' && x._key.includes('\ufffd')));
});

test('CopyRowScanner: widths, whole-field \\N only, partition of bytes = partitionOf', () => {
  const sc = new CopyRowScanner(3);
  const b = (s: string) => Buffer.from(s);
  assert.equal(sc.scan(b('a\tb\tc'), 0, 5), true);
  assert.equal(sc.scan(b('a\tb'), 0, 3), false);
  assert.equal(sc.scan(b('a\tb\tc\td'), 0, 7), false);
  assert.equal(sc.scan(b('\\N\t\\N\t\\N'), 0, 8), true);
  assert.equal(sc.scan(b('a\\N\tb\tc'), 0, 7), false);
  assert.equal(sc.scan(b('\\Nx\tb\tc'), 0, 7), false);
  assert.equal(sc.scan(b('a\t\\\\N\tc'), 0, 7), false);
  assert.equal(sc.scan(b('a\tb\\t\tc'), 0, 7), false);
  // Several rows in one buffer: the backslash search is shared between them.
  const two = b('\\N\tb\tc\nd\te\\n\tf\ng\th\ti');
  assert.equal(sc.scan(two, 0, 6), true);
  assert.equal(sc.scan(two, 7, 14), false);
  assert.equal(sc.scan(two, 15, 20), true);
  for (const id of ['ABC-def', '', '0B9F6D3A-7F3C-4F0E-9D1E-00000000000A', '/x/stor/Ünï'])
    for (const p of [1, 7, 16]) {
      const got = partitionOfAsciiBytes(b(id), 0, Buffer.byteLength(id), p);
      if ([...id].every((ch) => ch.charCodeAt(0) < 0x80)) assert.equal(got, partitionOf(id, p), id);
      else assert.equal(got, -1);
    }
});

test('intermediate write buffers: bounded whatever P; lines longer than the buffer; counts per file', () => {
  for (const p of [1, 16, 17, 32, 256, 1024, 9999]) {
    const b = writeBufferBytes(p);
    assert.ok(b >= 64 << 10 && b <= 1 << 20, `P=${p}: ${b}`);
    if (p <= 256) assert.ok(2 * p * b <= 32 << 20, `P=${p}: ${2 * p * b} bytes in all`);
  }
  const files = [path.join(tmp, 'lb-0.tsv'), path.join(tmp, 'lb-1.tsv')];
  let n = 0;
  const buf = new LineBuffer(() => files[n]!, 64);
  const lines = ['short', 'x'.repeat(63), 'y'.repeat(200), 'z', 'w'.repeat(64), 'v'.repeat(10)];
  for (const l of lines) {
    const src = Buffer.from(`..${l}..`);
    buf.appendLine(src, 2, src.length - 2);
  }
  assert.deepEqual(buf.closeFile(), { rows: lines.length, longestLine: 201 });
  assert.equal(fs.readFileSync(files[0]!, 'utf8'), lines.map((l) => `${l}\n`).join(''));
  n = 1;
  buf.append(['a"b', null, 'c'.repeat(100)]);
  assert.deepEqual(buf.closeFile(), { rows: 1, longestLine: 111 });
  assert.equal(fs.readFileSync(files[1]!, 'utf8'), `"a""b",,"${'c'.repeat(100)}"\n`);
});

/** A seeded PRNG (mulberry32): the randomized checks below are the same on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('unescapeCopyBytes = the UTF-8 of unescapeCopyField, for every escape', () => {
  const rnd = prng(17);
  const alphabet = [
    '\\',
    'n',
    't',
    'x',
    'a',
    'F',
    '0',
    '7',
    '8',
    '3',
    'N',
    '"',
    'é',
    'b',
    'v',
    'r',
    'f',
    '日',
    '😀',
    'x4',
  ];
  for (let k = 0; k < 50_000; k++) {
    let f = '';
    for (let i = Math.floor(rnd() * 12); i > 0; i--) f += alphabet[Math.floor(rnd() * alphabet.length)];
    if (f === '\\N') continue;
    const line = Buffer.from(`a\t${f}\tb\\n`);
    const got = unescapeCopyBytes(line, 2, 2 + Buffer.byteLength(f));
    assert.deepEqual(got, Buffer.from(unescapeCopyField(f)!, 'utf8'), JSON.stringify(f));
  }
  const long = 'x\\\\y\\tz'.repeat(100_000);
  assert.equal(unescapeCopyField(long), 'x\\y\tz'.repeat(100_000));
});

test('pickJsonFields = JSON.stringify of the fields JSON.parse gives (validity, duplicates, non-objects)', () => {
  const reference = (text: string): string | null => {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return null;
    }
    if (v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) return '{}';
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const f of VALUE_FIELD_NAMES) if (f in o) out[f] = o[f];
    return JSON.stringify(out);
  };
  const check = (text: string) =>
    assert.equal(pickJsonFields(Buffer.from(text), VALUE_FIELD_NAMES), reference(text), JSON.stringify(text));
  const rnd = prng(5);
  const pieces = [
    '{',
    '}',
    '[',
    ']',
    '"',
    '\\',
    ':',
    ',',
    ' ',
    '\n',
    '\t',
    '1',
    '0',
    '-',
    '.',
    'e',
    '+',
    'true',
    'null',
    'nul',
    '"key"',
    '"owner"',
    '"a"',
    '\\u00e9',
    '\\u12',
    'é',
    '\u0001',
    '"sharks"',
    '/',
  ];
  let valid = 0;
  for (let k = 0; k < 50_000; k++) {
    let text = '';
    for (let i = 1 + Math.floor(rnd() * 14); i > 0; i--) text += pieces[Math.floor(rnd() * pieces.length)];
    check(text);
    if (reference(text) !== null) valid++;
  }
  const names = [...VALUE_FIELD_NAMES, 'pad', 'zz'];
  const doc = (d: number): unknown => {
    const r = rnd();
    if (d > 3 || r < 0.3) return [1, -2.5e3, 'q"\\\n\u0001é', true, false, null, 0][Math.floor(rnd() * 7)];
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => doc(d + 1));
    return Object.fromEntries(
      Array.from({ length: Math.floor(rnd() * 5) }, () => [
        names[Math.floor(rnd() * names.length)]!,
        doc(d + 1),
      ]),
    );
  };
  for (let k = 0; k < 20_000; k++) {
    const text = JSON.stringify(doc(0), null, rnd() < 0.5 ? 0 : 2);
    check(text);
    const cut = Math.floor(rnd() * text.length);
    check(text.slice(0, cut) + text.slice(cut + 1));
  }
  assert.ok(valid > 1000, `${valid} valid random documents`);
  check('{"key":"a","owner":"o","key":"b"}');
  check(`{"key":"k","pad":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
  check('['.repeat(200_000));
});

test('a 20 MB row unpacks (DuckDB within its memory limit: it ran out before), both ways; a row over MAX_ROW_BYTES is refused alone', async () => {
  const MB = 1 << 20;
  const base = rows()
    .filter((_, i) => i % 10 !== 6 && i % 10 !== 5)
    .slice(0, 2000);
  const big = (i: number, pad: number, note: string) => {
    const id = `2b9f6d3a-7f3c-4f0e-9d1e-${i.toString(16).padStart(12, '0')}`;
    const key = `/4ebc3ff1-dd83-40a6-bc38-000000000001/stor/huge/o${i}`;
    const value = JSON.stringify({
      key,
      objectId: id,
      owner: 'o',
      type: 'object',
      note,
      pad: 'z'.repeat(pad),
    });
    return {
      key,
      id,
      value,
      line: [String(i), null, key, value, 'FFFFFFFF', '5', '6', id].map(escapeCopyField).join('\t'),
    };
  };
  const clean = big(5000, 20 * MB, 'plain');
  const escaped = big(5001, 20 * MB, 'tab\there "quoted"');
  const tooBig = big(5002, MAX_ROW_BYTES, 'over');
  const text = [
    '-- remora-snapshot-time: 2024-03-05T06:07:08.000Z',
    `COPY public.manta (${COLS.join(', ')}) FROM stdin;`,
    ...base.slice(0, 1000),
    clean.line,
    tooBig.line,
    escaped.line,
    ...base.slice(1000),
    '\\.',
    '',
    '-- PostgreSQL database dump complete',
    '',
  ].join('\n');
  const file = path.join(tmp, 'moray-2024-03-05-06-07-11');
  fs.writeFileSync(file, text);
  const store = new LocalObjectStore(path.join(tmp, 'huge'));
  for (const entryObjects of [false, true]) {
    const r = await unpackDump(store, [file], { shard: 'huge.moray', partitions: 4, entryObjects });
    assert.equal(r.manifest.tables.manta!.rows, 2002, `entryObjects ${entryObjects}`);
    const refused = Object.values(r.manifest.report.events).find((e) => e.kind === 'row_too_large')!;
    assert.equal(refused.severity, 'error');
    assert.equal(refused.count, 1);
    assert.match(
      String(refused.examples[0]),
      new RegExp(`manta row of ${tooBig.line.length} bytes, .*_key ${tooBig.key}$`),
    );
    assert.equal(r.manifest.report.counters.malformed, 1, JSON.stringify(r.manifest.report.events));
    assert.equal(r.manifest.verdict, 'degraded');
    const large = r.manifest.tables.manta!.chunks.filter((c) => c.path.endsWith('-large.parquet'));
    assert.deepEqual(
      large.map((c) => c.rows).reduce((a, b) => a + b, 0),
      2,
    );
    const got = await readChunkRows(
      store,
      large.map((c) => c.path),
    );
    for (const want of [clean, escaped]) {
      const row = got.find((x) => x._key === want.key)!;
      assert.equal(row._value, want.value);
      assert.deepEqual(
        [row.key, row.objectId, row.owner, row.type, row.value_ok],
        [want.key, want.id, 'o', 'object', true],
      );
      assert.deepEqual(
        [row._id, row._mtime, row._vnode, row._etag],
        [want.line.split('\t')[0], '5', '6', 'FFFFFFFF'],
      );
      assert.equal(large.find((c) => c.partition === partitionOf(want.id, 4))?.rows !== undefined, true);
    }
  }
});

test('several large rows in one partition: converted in batches of ~8 MB, each its own chunk, all rows kept', async () => {
  const MB = 1 << 20;
  const id = '3b9f6d3a-7f3c-4f0e-9d1e-000000000001'; // one objectId: one partition
  const lines = [0, 1, 2].map((i) => {
    const key = `/4ebc3ff1-dd83-40a6-bc38-000000000001/stor/link${i}`;
    const value = JSON.stringify({
      key,
      objectId: id,
      owner: 'o',
      type: 'object',
      pad: String(i).repeat(5 * MB),
    });
    return [String(i), null, key, value, 'EEEEEEEE', '1', '2', id].map(escapeCopyField).join('\t');
  });
  const file = path.join(tmp, 'moray-2024-03-05-06-07-12');
  fs.writeFileSync(
    file,
    [
      '-- remora-snapshot-time: 2024-03-05T06:07:08.000Z',
      `COPY public.manta (${COLS.join(', ')}) FROM stdin;`,
      ...lines,
      '\\.',
      '',
      '-- PostgreSQL database dump complete',
      '',
    ].join('\n'),
  );
  const store = new LocalObjectStore(path.join(tmp, 'batches'));
  const r = await unpackDump(store, [file], { shard: 'batches.moray', partitions: 4 });
  assert.equal(r.manifest.verdict, 'ok', JSON.stringify(r.manifest.report.events));
  const chunks = r.manifest.tables.manta!.chunks;
  assert.deepEqual(
    chunks.map((c) => [c.partition, c.path.slice(c.path.lastIndexOf('/') + 1), c.rows]),
    [0, 1, 2].map((b) => [
      partitionOf(id, 4),
      `p000${partitionOf(id, 4)}-000-large${b === 0 ? '' : b}.parquet`,
      1,
    ]),
  );
  const rows = await readChunkRows(
    store,
    chunks.map((c) => c.path),
  );
  // No escapes in these values: the dump's field is the value.
  assert.deepEqual(rows.map((x) => x._value).sort(), lines.map((l) => l.split('\t')[3]).sort());
});
