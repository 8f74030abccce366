/**
 * One metering scan on a hand-made chunk: the partial file DuckDB writes is valid JSON lines
 * for any owner string (escaped when it is not plain), and the per-owner rules hold.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckPool } from '../src/dumps/duckdb.js';
import { writeMantaChunk, type MantaChunkRow } from './helpers/chunks.js';
import { scanPartition } from '../src/jobs/storage-metering/storage-metering.scan.js';
import { ReportBuilder } from '../src/core/run-report.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-scan-'));
const duck = new DuckPool();
after(async () => {
  await duck.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('scan: partial lines are JSON for any owner; an objectId counts once per owner, in its first namespace', async () => {
  const odd = 'we"ird\\owner\n'; // a quote, a backslash and a newline: must come out escaped
  const uuid = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
  // owner, objectId, key, type, namespace, contentLength, copies
  const rows: MantaChunkRow[] = [
    [odd, null, '/x/stor', 'directory', 'stor', null, 0],
    [odd, 'id-1', '/x/stor/a', 'object', 'stor', 10, 2],
    [odd, 'id-1', '/x/public/a-link', 'object', 'public', 10, 2],
    [odd, 'id-2', '/x/public/b', 'object', 'public', 300_000, 3],
    [uuid, 'id-1', '/y/public/cross-account-link', 'object', 'public', 10, 2],
    [uuid, 'id-3', '/y/uploads/u', 'object', 'uploads', 5, 2],
  ];
  const file = path.join(tmp, 'p0000-000.parquet');
  await writeMantaChunk(file, rows);
  const report = new ReportBuilder();
  const partial = await scanPartition(duck, [file], report, { copiesColumn: true });
  const lines = partial.body.split('\n').map((l) => JSON.parse(l) as Record<string, string>);
  assert.equal(partial.lines, lines.length);
  const cell = (owner: string, ns: string) => lines.find((l) => l.owner === owner && l.namespace === ns);
  // id-1 has keys in stor and public for the odd owner: one object, in stor; id-2 only in public.
  assert.deepEqual(cell(odd, 'stor'), {
    owner: odd,
    namespace: 'stor',
    directories: '1',
    keys: '1',
    objects: '1',
    bytes: '262144', // 2 copies × the 128 KiB minimum (pinned literal, not MIN_SIZE)
  });
  assert.deepEqual(cell(odd, 'public'), {
    owner: odd,
    namespace: 'public',
    directories: '0',
    keys: '2',
    objects: '1',
    bytes: String(300_000 * 3),
  });
  // The cross-account link is charged to its own owner; uploads are not metered.
  assert.deepEqual([cell(uuid, 'public')?.objects, cell(uuid, 'public')?.bytes], ['1', '262144']);
  assert.equal(cell(uuid, 'uploads'), undefined);
  const r = report.finish();
  assert.deepEqual(
    [r.counters.recordsScanned, r.counters.malformed, r.counters.unmeteredNamespaceRows],
    [6, 0, 1],
  );
});
