/**
 * GC's scan (src/jobs/gc/gc.scan.ts) hands the decision each delete record either as the chunk's
 * typed columns or as its raw `_value`. Whichever way a record travels, the decision must be the
 * one the raw row gives: this unpacks real dumps of two shards holding adversarial delete records
 * (separator characters in fields, null and missing fields, upper-case objectIds, non-JSON values,
 * creators, zero-byte objects, live references and snaplinks on the other shard) and compares every
 * decision made from the scan with the decision made from the rows as written.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { scanGroup } from '../src/jobs/gc/gc.scan.js';
import {
  decideObject,
  type DeleteRecord,
  type GcInput,
  type RecordDecision,
} from '../src/jobs/gc/gc.plan.js';
import { SeededRandom } from '../src/core/clock.js';
import { COLS, copyBlock, plainDump, type Row } from './helpers/dump-text.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-gc-scan-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const NOW = Date.parse('2024-03-10T00:00:00Z');
const OLD = NOW - 5 * 86_400_000;
const SNAPSHOT = NOW - 86_400_000;
const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const CREATOR = '9d1b2c3e-0000-4000-8000-0123456789ab';

interface Written {
  shard: string;
  key: string;
  value: string;
  etag: string;
  mtime: string;
  objectid: string | null;
}

function sharks(...ids: (string | null)[]): { manta_storage_id: string | null; datacenter: string | null }[] {
  return ids.map((id, i) => ({ manta_storage_id: id, datacenter: `dc${i + 1}` }));
}

/** Delete records whose values are chosen to take every path of the scan and of the decision. */
function deleteRecords(
  rnd: SeededRandom,
): { shard: string; oid: string; value: unknown; mtime?: string; name?: string }[] {
  const out: { shard: string; oid: string; value: unknown; mtime?: string; name?: string }[] = [];
  const plain = (oid: string, extra: Record<string, unknown> = {}) => ({
    objectId: oid,
    owner: OWNER,
    creator: OWNER,
    type: 'object',
    contentLength: 42,
    sharks: sharks('1.stor.dc1', '2.stor.dc2'),
    ...extra,
  });
  const ids = Array.from({ length: 30 }, () => rnd.uuid());
  let k = 0;
  const next = () => ids[k++]!;
  for (const shard of ['A', 'B']) {
    out.push({ shard, oid: next(), value: plain('') }); // objectId filled below
  }
  const cases: [string, (oid: string) => unknown][] = [
    ['creator', (oid) => plain(oid, { creator: CREATOR })],
    ['empty creator', (oid) => plain(oid, { creator: '' })],
    ['null creator', (oid) => plain(oid, { creator: null })],
    ['no creator', (oid) => plain(oid, { creator: undefined })],
    ['zero-byte', (oid) => plain(oid, { sharks: [], contentLength: 0 })],
    ['no contentLength', (oid) => plain(oid, { contentLength: undefined })],
    ['fractional contentLength', (oid) => plain(oid, { contentLength: 1.5 })],
    ['null shark id', (oid) => plain(oid, { sharks: sharks('1.stor.dc1', null) })],
    ['empty shark id', (oid) => plain(oid, { sharks: sharks('') })],
    ['null datacenter', (oid) => plain(oid, { sharks: [{ manta_storage_id: 'n1', datacenter: null }] })],
    ['no datacenter', (oid) => plain(oid, { sharks: [{ manta_storage_id: 'n1' }] })],
    ['separator in owner', (oid) => plain(oid, { owner: `${OWNER}\x1fx` })],
    ['separator in node id', (oid) => plain(oid, { sharks: sharks('1.stor\x1e.dc1') })],
    [
      'record separator in datacenter',
      (oid) => plain(oid, { sharks: [{ manta_storage_id: 'n', datacenter: 'd\x1d' }] }),
    ],
    ['owner not a uuid', (oid) => plain(oid, { owner: 'poseidon' })],
    ['no owner', (oid) => plain(oid, { owner: undefined })],
    ['sharks not a list', (oid) => plain(oid, { sharks: 'x' })],
    ['upper-case objectId', (oid) => plain(oid.toUpperCase())],
    ['other objectId', () => plain(rnd.uuid())],
    ['not JSON', () => '{"objectId": '],
    ['a number', () => 7],
  ];
  for (const [i, [name, value]] of cases.entries()) {
    const oid = next();
    out.push({ shard: i % 2 === 0 ? 'A' : 'B', oid, value: value(oid), name });
  }
  out[0]!.value = plain(out[0]!.oid);
  out[1]!.value = plain(out[1]!.oid);
  // Two records of one objectId on two shards, one later than the other (superseded).
  const twice = next();
  out.push({ shard: 'A', oid: twice, value: plain(twice), mtime: String(OLD - 1000) });
  out.push({ shard: 'B', oid: twice, value: plain(twice) });
  // One not provable: deleted after the earliest snapshot.
  const late = next();
  out.push({ shard: 'A', oid: late, value: plain(late), mtime: String(NOW - 1000) });
  return out;
}

test('the scan gives the decision the same records, typed or raw, as the rows written', async () => {
  const rnd = new SeededRandom(41);
  const written: Written[] = [];
  const rows: Record<string, { manta: Row[]; log: Row[] }> = {
    A: { manta: [], log: [] },
    B: { manta: [], log: [] },
  };
  let id = 1;
  const dels = deleteRecords(rnd);
  for (const d of dels) {
    const value = typeof d.value === 'string' ? d.value : JSON.stringify(d.value);
    const mtime = d.mtime ?? String(OLD);
    // One key holding a separator (not a key moray writes, but a row the scan must pass intact).
    const key = d.oid === dels[1]!.oid ? `/${d.oid}/${mtime}\x1f1` : `/${d.oid}/${mtime}`;
    const objectid =
      typeof d.value === 'object' &&
      d.value &&
      typeof (d.value as { objectId?: unknown }).objectId === 'string'
        ? (d.value as { objectId: string }).objectId
        : null;
    const etag = rnd.uuid().slice(0, 8).toUpperCase();
    rows[d.shard]!.log.push([String(id++), null, key, value, etag, mtime, '1', objectid]);
    written.push({ shard: d.shard, key, value, etag, mtime, objectid });
  }
  // Live references: on the other shard for one objectId, under an upper-case spelling for another,
  // and a live key holding separator characters for a third.
  const named = (n: string) => dels.find((d) => d.name === n)!.oid;
  const liveFor = [named('no contentLength'), named('fractional contentLength').toUpperCase(), dels[0]!.oid];
  const liveKeys = [`/${OWNER}/stor/a`, `/${OWNER}/stor/b`, `/${OWNER}/stor/c\x1f\x1d"`];
  liveFor.forEach((oid, i) => {
    const key = liveKeys[i]!;
    const value = JSON.stringify({ key, objectId: oid, owner: OWNER, type: 'object', sharks: [] });
    rows[i === 0 ? 'B' : 'A']!.manta.push([
      String(id++),
      null,
      key,
      value,
      'EEEEEEEE',
      String(OLD),
      '1',
      oid,
    ]);
  });

  const store = new LocalObjectStore(path.join(tmp, 'store'));
  const files: { manta: string[]; deleteLog: string[] } = { manta: [], deleteLog: [] };
  for (const shard of ['A', 'B']) {
    const file = path.join(tmp, `${shard}.sql`);
    fs.writeFileSync(
      file,
      plainDump([
        copyBlock('manta', rows[shard]!.manta, COLS),
        copyBlock('manta_delete_log', rows[shard]!.log, COLS),
      ]),
    );
    const u = await unpackDump(store, [file], { shard, partitions: 1 });
    for (const c of u.manifest.tables.manta?.chunks ?? []) files.manta.push(store.localPath(c.path));
    for (const c of u.manifest.tables.manta_delete_log?.chunks ?? [])
      files.deleteLog.push(store.localPath(c.path));
  }

  const duck = await DuckDBInstance.create(':memory:');
  const conn = await duck.connect();
  let scan;
  try {
    scan = await scanGroup(conn, files);
  } finally {
    conn.closeSync();
    duck.closeSync();
  }
  assert.equal(scan.deleteRecords, written.length, 'every delete record is scanned');

  // The reference: the rows as written, grouped by lower-cased objectId, live references by scan
  // of what was written.
  const byOid = new Map<
    string,
    GcInput & { deletes: DeleteRecord[]; live: { shard: string; key: string }[] }
  >();
  for (const w of written) {
    const oid = (w.objectid ?? w.key.split('/')[1]!).toLowerCase();
    let g = byOid.get(oid);
    if (!g) byOid.set(oid, (g = { objectId: oid, live: [], deletes: [] }));
    g.deletes.push({ shard: w.shard, key: w.key, etag: w.etag, mtime: Number(w.mtime), value: w.value });
  }
  liveFor.forEach((oid, i) => {
    const g = byOid.get(oid.toLowerCase());
    if (g && g.live.length === 0) g.live.push({ shard: i === 0 ? 'B' : 'A', key: liveKeys[i]! });
  });

  const opts = { now: NOW, graceMs: 2 * 86_400_000, earliestSnapshotMs: SNAPSHOT };
  const summary = (d: RecordDecision) => ({
    key: d.record.key,
    shard: d.record.shard,
    etag: d.record.etag,
    verdict: d.verdict,
    detail: d.detail ?? null,
    cleanup: d.cleanup,
    copies: d.copies,
    contentLength: d.contentLength ?? null,
    tombstone: d.tombstone,
  });
  const sortKey = (a: { key: string; shard: string }, b: { key: string; shard: string }) =>
    `${a.key}${a.shard}` < `${b.key}${b.shard}` ? -1 : 1;
  const fromScan = scan.objects
    .flatMap((o) => decideObject(o, opts))
    .map(summary)
    .sort(sortKey);
  const reference = [...byOid.values()]
    .flatMap((o) => decideObject(o, opts))
    .map(summary)
    .sort(sortKey);
  assert.deepEqual(fromScan, reference);
  // The cases did take the paths they were written for.
  const verdicts = new Set(fromScan.map((d) => d.verdict));
  for (const v of ['eligible', 'malformed', 'live-reference', 'superseded', 'zero-byte', 'not-provable'])
    assert.ok(verdicts.has(v as RecordDecision['verdict']), `a ${v} decision`);
  assert.ok(
    fromScan.some((d) => d.detail?.includes('\x1f')),
    'a live key holding separators reaches the decision intact',
  );
  assert.ok(
    fromScan.some((d) => d.tombstone.some((c) => c.owner === CREATOR)),
    'copies of a creator are named under the creator',
  );
});
