/**
 * Partition inputs (src/dumps/partition-inputs.ts): the one rule for "is this unpack still the
 * committed one", one task per partition group over several tables, and each group's files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isRemoraError } from '../src/core/errors.js';
import { emptyReport, ReportBuilder } from '../src/core/run-report.js';
import { writeSourceManifest, type SourceManifest } from '../src/dumps/manifest.js';
import { PartitionInputs, type UnpackRef } from '../src/dumps/partition-inputs.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { unpackJob } from '../src/jobs/unpack/unpack.job.js';

const DAY = '2026-11-30';

function manifest(
  source: string,
  runId: string,
  partitions: number,
  tables: Record<string, number>,
): SourceManifest {
  const chunks = (table: string) =>
    Array.from({ length: partitions }, (_, p) => ({
      path: `/poseidon/stor/remora/unpacked/2026/11/30/${source}/${runId}/${table}/p${p}.parquet`,
      partition: p,
      segment: 0,
      rows: 1,
      bytes: 10 + p,
      sha256: 'x',
    }));
  return {
    version: 1,
    source,
    kind: 'shard',
    day: DAY,
    runId,
    snapshotTime: `${DAY}T00:00:00.000Z`,
    input: [],
    partitions,
    chunkSchema: 2,
    partitionFunction: 'fnv1a32(utf8(lower(objectId or _key))) mod partitions',
    tables: Object.fromEntries(
      Object.entries(tables).map(([t, rows]) => [t, { kind: 'moray', rows, chunks: rows ? chunks(t) : [] }]),
    ),
    report: emptyReport(),
    verdict: 'ok',
    createdAt: `${DAY}T00:00:01.000Z`,
  };
}

async function withStore(fn: (store: LocalObjectStore) => Promise<void>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-pi-'));
  try {
    await fn(new LocalObjectStore(dir));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const ref = (m: SourceManifest): UnpackRef => ({
  source: m.source,
  day: m.day,
  runId: m.runId,
  partitions: m.partitions,
  manifestPath: '',
});

test('a reference to an unpack that was replaced since is refused (StaleState)', () =>
  withStore(async (store) => {
    const old = manifest('2.moray', 'r1', 4, { manta: 5 });
    await writeSourceManifest(store, old);
    await PartitionInputs.open(store, [ref(old)]);
    await writeSourceManifest(store, manifest('2.moray', 'r2', 4, { manta: 5 }));
    await assert.rejects(
      PartitionInputs.open(store, [ref(old)]),
      (e) => isRemoraError(e) && e.code === 'StaleState' && /now run r2/.test(e.message),
    );
    await assert.rejects(
      PartitionInputs.open(store, [{ ...ref(old), source: '9.moray' }]),
      (e) => isRemoraError(e) && e.code === 'StaleState',
    );
  }));

test('groups join sources of different P over several tables; a group gets every table’s files', () =>
  withStore(async (store) => {
    const a = manifest('2.moray', 'r1', 4, { manta: 5, manta_delete_log: 2 });
    const c = manifest('3.moray', 'r1', 8, { manta: 0, manta_delete_log: 3 });
    const storage = manifest('1.moray', 'r1', 1, { manta_storage: 3 });
    for (const m of [a, c, storage]) await writeSourceManifest(store, m);
    const inputs = await PartitionInputs.open(store, [a, c, storage].map(ref));
    // The storage shard has no rows of these tables, so its P=1 does not collapse the groups.
    assert.equal(inputs.groups(['manta', 'manta_delete_log']), 4);
    assert.equal(inputs.groups(['manta']), 4);
    assert.equal(inputs.groups(['manta_storage']), 1);
    assert.equal(inputs.groups(['nothing']), 0);
    const tasks = inputs.tasks(['manta', 'manta_delete_log']);
    assert.deepEqual(
      tasks.map((t) => t.key),
      ['p0000', 'p0001', 'p0002', 'p0003'],
    );
    const report = new ReportBuilder();
    const got = await inputs.withGroup(
      tasks[1]!.params,
      ['manta', 'manta_delete_log'],
      (g) => Promise.resolve(g),
      report,
    );
    const names = (files: string[]) => files.map((f) => f.split('/').slice(-4).join('/'));
    assert.deepEqual(names(got.files.manta!), ['2.moray/r1/manta/p1.parquet']);
    assert.deepEqual(names(got.files.manta_delete_log!), [
      '2.moray/r1/manta_delete_log/p1.parquet',
      '3.moray/r1/manta_delete_log/p1.parquet',
      '3.moray/r1/manta_delete_log/p5.parquet',
    ]);
    assert.equal(got.bytes, 11 + 11 + 11 + 15);
    assert.equal(report.finish().counters.bytesRead, got.bytes);
    assert.equal(got.chunkSchema, 2);
  }));

test('unpack retention removes the unpacked days before the cut, and nothing else', () =>
  withStore(async (store) => {
    const keep = [
      '/poseidon/stor/remora/unpacked/2026/11/20/2.moray/manifest.json',
      '/poseidon/stor/other/2026/01/01/x',
    ];
    const drop = [
      '/poseidon/stor/remora/unpacked/2026/11/19/2.moray/manifest.json',
      '/poseidon/stor/remora/unpacked/2025/12/31/2.moray/r1/manta/p0000-000.parquet',
    ];
    for (const p of [...keep, ...drop]) await store.put(p, 'x');
    const job = unpackJob({ partitions: 'auto' });
    const services = { store } as unknown as Parameters<NonNullable<typeof job.retain>>[0]['services'];
    assert.equal(await job.retain!({ services, before: '2026-11-20' }), 2);
    for (const p of keep) assert.ok(await store.head(p), p);
    for (const p of drop) assert.equal(await store.head(p), undefined, p);
  }));

test('a group of sources unpacked under different chunk schemas reads as the lowest of them', () =>
  withStore(async (store) => {
    // GC reads `oid_uuid` (CHUNK_SCHEMA 4) only when no chunk of the group lacks it (gc.scan.ts scanColumnsOf).
    const a = { ...manifest('2.moray', 'r1', 4, { manta: 5, manta_delete_log: 2 }), chunkSchema: 4 };
    const b = { ...manifest('3.moray', 'r1', 4, { manta: 5, manta_delete_log: 0 }), chunkSchema: 3 };
    const c = { ...manifest('4.moray', 'r1', 4, { manta: 0, manta_delete_log: 0 }), chunkSchema: 2 };
    for (const m of [a, b, c]) await writeSourceManifest(store, m);
    const inputs = await PartitionInputs.open(store, [a, b, c].map(ref));
    const schema = (tables: string[]) =>
      inputs.withGroup({ group: 0, groups: 4 }, tables, (g) => Promise.resolve(g.chunkSchema));
    assert.equal(await schema(['manta', 'manta_delete_log']), 3);
    assert.equal(
      await schema(['manta_delete_log']),
      4,
      'a source with no chunk of the tables does not count',
    );
  }));
