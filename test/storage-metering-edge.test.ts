/**
 * Storage metering on the edge cases found by running the original side by side (issue 14 item 7;
 * decisions in docs/metering-compute.md "Storage metering edge cases"), on hand-made chunks
 * through the real DuckDB scan and the commit's merge:
 *
 *   keys of one objectId disagree on size or copies  the largest is billed, in any row order (the
 *                                                    original: the last record read); a warning
 *   an owner whose only rows are under uploads       the original's all-zero line
 *   an object record without sharks                  a key and an object, 0 bytes; a warning
 *                                                    (the original skipped it)
 *   an object record without contentLength           the 128 KiB minimum per copy; a warning (the
 *                                                    original lost the reducer's whole output)
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckPool } from '../src/dumps/duckdb.js';
import { parsePartial } from '../src/jobs/storage-metering/storage-metering.job.js';
import { writeMantaChunk, type MantaChunkRow } from './helpers/chunks.js';
import { scanPartition } from '../src/jobs/storage-metering/storage-metering.scan.js';
import {
  mergeUsage,
  storageRecord,
  type Usage,
} from '../src/jobs/storage-metering/storage-metering.rules.js';
import type { Namespace } from '../src/core/ids.js';
import { ReportBuilder } from '../src/core/run-report.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-edge-'));
const duck = new DuckPool();
after(async () => {
  await duck.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const A = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const U = '9d1f4a55-1111-4a4b-8c3d-2e0f00000001'; // only under uploads
const B = '7a0c2e10-2222-4c4d-9e5f-3a1b00000002';

// owner, objectId, key, type, namespace, contentLength, copies (null: no sharks field)
type Row = MantaChunkRow;
const ROWS: Row[] = [
  [A, null, `/${A}/stor`, 'directory', 'stor', null, null],
  // One objectId, three keys that disagree: 10 B × 2, 500,000 B × 3, 200,000 B × 1.
  [A, 'id-d', `/${A}/stor/small`, 'object', 'stor', 10, 2],
  [A, 'id-d', `/${A}/stor/big`, 'object', 'stor', 500_000, 3],
  [A, 'id-d', `/${A}/public/other`, 'object', 'public', 200_000, 1],
  // No sharks field; no contentLength.
  [A, 'id-n', `/${A}/stor/no-sharks`, 'object', 'stor', 4096, null],
  [A, 'id-l', `/${A}/stor/no-length`, 'object', 'stor', null, 2],
  // Owner U: only uploads.
  [U, null, `/${U}/uploads`, 'directory', 'uploads', null, null],
  [U, 'id-u', `/${U}/uploads/part`, 'object', 'uploads', 9000, 2],
  // A well-formed owner beside them, unaffected.
  [B, null, `/${B}/stor`, 'directory', 'stor', null, null],
  [B, 'id-b', `/${B}/stor/x`, 'object', 'stor', 300_000, 2],
];

async function chunk(name: string, rows: Row[]): Promise<string> {
  const file = path.join(tmp, name);
  await writeMantaChunk(file, rows);
  return file;
}

async function meter(file: string) {
  const report = new ReportBuilder();
  const partial = await scanPartition(duck, [file], report, { copiesColumn: true });
  const rows = parsePartial(partial.body);
  const usage = new Map<string, Map<Namespace, Usage>>();
  mergeUsage(usage, rows);
  const lines = Object.fromEntries([...usage.keys()].sort().map((o) => [o, storageRecord(usage.get(o))]));
  return { lines, usage, report: report.finish() };
}

const cell = (directories: number, keys: number, objects: number, bytes: number) => ({
  directories: String(directories),
  keys: String(keys),
  objects: String(objects),
  bytes: String(bytes),
});
const zero = cell(0, 0, 0, 0);

test('edge cases: the decided numbers, the same in any row order, with a warning per suspect kind', async () => {
  const forward = await meter(await chunk('forward.parquet', ROWS));
  const reversed = await meter(await chunk('reversed.parquet', [...ROWS].reverse()));
  assert.deepEqual(reversed.lines, forward.lines, 'row order does not change the result');

  // A: id-d once, in stor (its first namespace), at the largest claim 500,000 × 3; id-n 0 bytes;
  // id-l the minimum for 2 copies. Keys count every key.
  assert.deepEqual(forward.lines[A], {
    stor: cell(1, 4, 3, 500_000 * 3 + 0 + 131072 * 2),
    public: cell(0, 1, 0, 0),
    jobs: zero,
    reports: zero,
  });
  // U: the original's all-zero line.
  assert.deepEqual(forward.lines[U], { stor: zero, public: zero, jobs: zero, reports: zero });
  assert.equal(forward.usage.get(U)!.size, 0, 'no metered namespace: the commit reports it (info event)');
  // B: untouched by the others (the original lost a whole reducer's output to one bad record).
  assert.deepEqual(forward.lines[B]!.stor, cell(1, 1, 1, 600_000));

  const ev = forward.report.events;
  assert.equal(ev['warning:objectid-keys-disagree']?.count, 1);
  assert.deepEqual(
    (ev['warning:objectid-keys-disagree'].examples[0] as { owner: string; objectId: string; keys: string[] })
      .keys,
    [`/${A}/public/other`, `/${A}/stor/big`, `/${A}/stor/small`],
  );
  assert.equal(ev['warning:object-without-sharks']?.count, 1);
  assert.match(JSON.stringify(ev['warning:object-without-sharks'].examples), /no-sharks/);
  assert.equal(ev['warning:object-without-content-length']?.count, 1);
  assert.match(JSON.stringify(ev['warning:object-without-content-length'].examples), /no-length/);
  assert.equal(forward.report.verdict, 'degraded', 'suspect data: output valid, run degraded');
  assert.equal(forward.report.counters.malformed, 0);
});

test('edge cases: a partition without any of them has no such events and stays ok', async () => {
  const clean = await meter(
    await chunk(
      'clean.parquet',
      ROWS.filter((r) => r[0] === B),
    ),
  );
  assert.deepEqual(Object.keys(clean.report.events), []);
  assert.equal(clean.report.verdict, 'ok');
});
