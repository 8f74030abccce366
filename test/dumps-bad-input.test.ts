/**
 * Bad dumps (issue 17, "Unpack"): each is an event of the right severity with an example, and a
 * dump that is empty or cannot be read — or whose rows are systematically bad — is `invalid`:
 * refused loudly, never replacing a good unpack of that shard and day. Also: a real pg_dump of
 * a moray database (test/fixtures/moray-pg-dump) unpacks `ok`, the unpack job reports a refused
 * dump as an invalid run, `remora unpack` exits non-zero, and a killed run's scratch directory
 * is removed by the next run. No PostgreSQL needed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { refusedUnpackReport, unpackDump, type UnpackResult } from '../src/dumps/unpack.js';
import { readSourceManifest } from '../src/dumps/manifest.js';
import { backupPath, entryObjectPath, UNPACKED_ROOT } from '../src/dumps/layout.js';
import { removeStaleScratch, STALE_SCRATCH_MS } from '../src/dumps/chunk-run.js';
import { partitionOf } from '../src/dumps/partition.js';
import { isRemoraError, type RemoraError } from '../src/core/errors.js';
import { ReportBuilder, type ReportEvent, type RunReport } from '../src/core/run-report.js';
import { unpackJob } from '../src/jobs/unpack/unpack.job.js';
import type { TaskContext } from '../src/pipeline/job.js';
import { readChunkRows } from './helpers/chunks.js';
import { copyBlock, plainDump, type Row } from './helpers/dump-text.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-dumps-bad-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const STAMP = '2024-03-05-06-07-08';
const DAY = '2024-03-05';

/** A moray row: `_id, _txn_snap, _key, _value, _etag, _mtime, _vnode, objectid`. */
function mrow(
  id: string,
  key: string,
  objectId: string | null,
  over: Partial<Record<string, string>> = {},
): Row {
  const value = JSON.stringify({ key, objectId, owner: 'o', type: objectId ? 'object' : 'directory' });
  return [
    over._id ?? id,
    null,
    key,
    over._value ?? value,
    'AAAAAAAA',
    over._mtime ?? '1709618828000',
    over._vnode ?? '7',
    objectId,
  ];
}

function write(name: string, body: string | Buffer): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, body);
  return file;
}

function events(r: { report: RunReport } | RunReport): ReportEvent[] {
  return Object.values('report' in r ? r.report.events : r.events);
}

function event(r: { report: RunReport } | RunReport, kind: string): ReportEvent | undefined {
  return events(r).find((e) => e.kind === kind);
}

async function rowsOf(store: LocalObjectStore, r: UnpackResult, table: string) {
  return readChunkRows(
    store,
    (r.manifest.tables[table]?.chunks ?? []).map((c) => c.path),
  );
}

/** What unpackDump rejected with, checked to be a refusal: MalformedInput carrying an invalid report. */
async function refused(p: Promise<unknown>): Promise<{ err: RemoraError; report: RunReport }> {
  try {
    await p;
  } catch (err) {
    assert.ok(isRemoraError(err, 'MalformedInput'), String(err));
    const report = refusedUnpackReport(err);
    assert.ok(report, `no refused report on: ${err.message}`);
    assert.equal(report.verdict, 'invalid');
    return { err, report };
  }
  assert.fail('the unpack was not refused');
}

test('rows after a COPY block or after the trailer are stray_row errors; pg_dump SQL around them is not', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'stray'));
  const rows = [mrow('1', '/a/stor/1', 'o1'), mrow('2', '/a/stor/2', 'o2'), mrow('3', '/a/stor/3', 'o3')];
  const text = plainDump(
    [
      // The block's own end, then two data rows after it (a second COPY header lost?).
      [
        ...copyBlock('manta', rows).slice(0, -1),
        '4\t\\N\t/a/stor/4\t{}\tX\t1\t1\to4',
        'stray-without-tab',
        '',
      ],
      // pg_dump's SQL between blocks: a function body may hold tabs; indentation is spaces.
      [
        'CREATE FUNCTION public.touch() RETURNS trigger',
        '    LANGUAGE plpgsql',
        '    AS $$',
        'BEGIN',
        '\tNEW._mtime := 1;\tRETURN NEW;',
        'END;',
        '$$;',
        '',
        "SELECT pg_catalog.setval('public.manta_serial', 3, true);",
        '',
        'ALTER TABLE ONLY public.manta',
        '    ADD CONSTRAINT manta_pkey PRIMARY KEY (_key);',
        '',
      ],
    ],
    { afterTrailer: ['9\t\\N\t/a/stor/9\t{}\tX\t1\t1\to9', '\\unrestrict abc', ''] },
  );
  const r = await unpackDump(store, [write(`stray-${STAMP}`, text)], { shard: 'stray.moray', partitions: 2 });
  assert.equal(r.manifest.tables.manta?.rows, 3);
  const stray = event(r.manifest, 'stray_row')!;
  assert.equal(stray.severity, 'error');
  assert.equal(stray.count, 3, JSON.stringify(stray));
  assert.match(String(stray.examples[0]), /after the \\\. of manta.*\/a\/stor\/4/);
  assert.match(String(stray.examples[1]), /stray-without-tab/);
  assert.match(String(stray.examples[2]), /after the dump's trailer.*\/a\/stor\/9/);
  assert.deepEqual(
    events(r.manifest).map((e) => e.kind),
    ['stray_row'],
  );
  assert.equal(r.manifest.report.counters.malformed, 3);
  assert.equal(r.manifest.report.counters.recordsScanned, 6);
  assert.equal(r.manifest.verdict, 'degraded');
});

test('duplicate _key within one table: one event per key, every extra row malformed, across partitions', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'dups'));
  const P = 8;
  // Two objectIds for one key that land in different partitions: a per-partition check misses them.
  const ids = ['oa', 'ob', 'oc', 'od', 'oe', 'of'];
  const [x1, x2] = [ids[0]!, ids.find((i) => partitionOf(i, P) !== partitionOf(ids[0]!, P))!];
  const manta = [
    mrow('1', '/a/stor/x', x1),
    mrow('2', '/a/stor/x', x2),
    mrow('3', '/a/stor/y', 'y1'),
    mrow('4', '/a/stor/y', 'y1'),
    mrow('5', '/a/stor/y', 'y1'),
    mrow('6', '/a/stor/z', 'z1'),
  ];
  // The same key in another table is no duplicate.
  const log = [mrow('1', '/a/stor/z', 'z1'), mrow('2', '/z1/1709618828000', 'z1')];
  const text = plainDump([copyBlock('manta', manta), copyBlock('manta_delete_log', log)]);
  const r = await unpackDump(store, [write(`dups-${STAMP}`, text)], { shard: 'dups.moray', partitions: P });
  const rows = await rowsOf(store, r, 'manta');
  assert.equal(rows.length, 6, 'the rows are kept');
  const chunkOf = (id: string) =>
    r.manifest.tables.manta!.chunks.find((c) => c.partition === partitionOf(id, P))!.path;
  assert.notEqual(chunkOf(x1), chunkOf(x2));
  const dup = event(r.manifest, 'duplicate_key')!;
  assert.equal(dup.severity, 'error');
  assert.equal(dup.count, 3);
  assert.deepEqual(dup.examples, [
    'manta /a/stor/x: 2 rows with this _key (all kept)',
    'manta /a/stor/y: 3 rows with this _key (all kept)',
  ]);
  assert.equal(r.manifest.report.counters.malformed, 3);
  assert.equal(r.manifest.report.counters['duplicateKeys.manta'], 2);
  assert.equal(r.manifest.report.counters['duplicateKeys.manta_delete_log'], undefined);
});

test('non-integer _id / _mtime / _vnode: bad_integer with the key, on both row paths; the row kept with NULL', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'ints'));
  const manta = [
    mrow('1', '/a/stor/good', 'g'),
    mrow('x1', '/a/stor/raw', 'r'), // byte path
    mrow('3', '/a/stor/esc\tkey', 'e', { _mtime: '12x' }), // decoding path (the key has an escape)
    mrow('4', '/a/stor/big', 'b', { _vnode: '9223372036854775808' }), // past int64
    mrow('-5', '/a/stor/neg', 'n', { _vnode: '-9223372036854775808' }), // in range
  ];
  const r = await unpackDump(store, [write(`ints-${STAMP}`, plainDump([copyBlock('manta', manta)]))], {
    shard: 'ints.moray',
    partitions: 2,
  });
  const bad = event(r.manifest, 'bad_integer')!;
  assert.equal(bad.severity, 'error');
  assert.equal(bad.count, 3);
  const ex = bad.examples.map(String).sort();
  assert.match(ex[0]!, /manta \/a\/stor\/big: _vnode "9223372036854775808" is not an integer/);
  assert.match(ex[1]!, /manta \/a\/stor\/esc\tkey: _mtime "12x"/);
  assert.match(ex[2]!, /manta \/a\/stor\/raw: _id "x1"/);
  assert.equal(r.manifest.report.counters.malformed, 3);
  const rows = new Map((await rowsOf(store, r, 'manta')).map((x) => [x._key as string, x]));
  assert.equal(rows.size, 5);
  assert.equal(rows.get('/a/stor/raw')!._id, null);
  assert.equal(rows.get('/a/stor/esc\tkey')!._mtime, null);
  assert.equal(rows.get('/a/stor/big')!._vnode, null);
  assert.equal(rows.get('/a/stor/neg')!._vnode, '-9223372036854775808');
  assert.equal(rows.get('/a/stor/neg')!._id, '-5');
});

test('a 0-byte dump, one without any COPY block, one whose COPY header does not parse: refused, fatal', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'empty'));
  const cases: [string, string | Buffer, string, RegExp][] = [
    ['zero', '', 'empty_input', /0 bytes/],
    ['zero-gz', zlib.gzipSync(''), 'empty_input', /0 bytes/],
    ['sql-only', '--\n-- PostgreSQL database dump\n--\nSET x = 1;\n', 'empty_input', /no COPY block/],
    [
      'bad-header',
      plainDump([['COPY public.manta (_id, _key FROM stdin;', '1\t/a/stor/1', '\\.', '']]),
      'unparsed_copy_header',
      /does not parse: COPY public\.manta \(_id, _key FROM stdin;/,
    ],
  ];
  for (const [name, body, kind, example] of cases) {
    const { err, report } = await refused(
      unpackDump(store, [write(`${name}-${STAMP}`, body)], { shard: 'empty.moray', partitions: 2 }),
    );
    const e = event(report, kind);
    assert.equal(e?.severity, 'fatal', `${name}: ${JSON.stringify(report.events)}`);
    assert.match(String(e.examples[0]), example);
    assert.match(err.message, /Nothing committed for empty\.moray on 2024-03-05/);
  }
  assert.deepEqual(await store.list(`${UNPACKED_ROOT}/`), [], 'nothing written, nothing left');
});

test('a corrupt gzip: with no shard a MalformedInput (not "pass --shard"); with its shard from the path, refused', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'corrupt'));
  const good = zlib.gzipSync(plainDump([copyBlock('manta', [mrow('1', '/a/stor/1', 'o1')])]));
  const corrupt = Buffer.concat([good.subarray(0, 10), Buffer.alloc(300, 0xa5)]);
  const file = write(`corrupt-${STAMP}.gz`, corrupt);
  await assert.rejects(unpackDump(store, [file]), (e) => {
    assert.ok(isRemoraError(e, 'MalformedInput'), String(e));
    assert.match(e.message, /corrupt gzip/);
    return true;
  });
  const at = new Date('2024-03-05T06:07:08Z');
  const stored = backupPath('7.moray.fixture', at);
  await store.put(stored, corrupt, { 'm-snapshot-time': at.toISOString() });
  const { err, report } = await refused(unpackDump(store, [stored]));
  assert.equal(event(report, 'unreadable_input')?.severity, 'fatal');
  assert.match(err.message, /7\.moray\.fixture/);
});

test('an invalid dump never replaces a good unpack of that shard and day: manifest, chunks and entry objects stay', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'keep'));
  const shard = 'keep.moray';
  const good = Array.from({ length: 150 }, (_, i) => mrow(String(i), `/a/stor/k${i}`, `o${i}`));
  const first = await unpackDump(
    store,
    [write(`keep-good-${STAMP}`, plainDump([copyBlock('manta', good)]))],
    { shard, partitions: 4, entryObjects: true },
  );
  assert.equal(first.manifest.verdict, 'ok');
  const entryPath = entryObjectPath(shard, new Date('2024-03-05T06:07:08Z'), 'manta');
  assert.deepEqual(first.entryObjects, [entryPath]);
  const entryBefore = fs.readFileSync(store.localPath(entryPath));
  const everything = async () => (await store.list('/poseidon/')).sort();
  const before = await everything();
  const committed = await readSourceManifest(store, DAY, shard);
  assert.equal(committed?.runId, first.manifest.runId);
  assert.ok(first.manifest.tables.manta!.chunks.length > 1);

  // 150 rows, 10 of them the wrong width: 6.25% malformed, over the 1% threshold.
  const systematic = plainDump([
    [
      ...copyBlock('manta', good).slice(0, -2),
      ...Array.from({ length: 10 }, (_, i) => `${i}\tshort`),
      '\\.',
      '',
    ],
  ]);
  const bad: [string, string][] = [
    ['zero', ''],
    ['header', plainDump([['COPY manta (_id FROM stdin;', '\\.', '']])],
    ['truncated', plainDump([copyBlock('manta', good)]).split('\\.')[0]!],
    ['systematic', systematic],
  ];
  for (const [name, body] of bad) {
    const { err, report } = await refused(
      unpackDump(store, [write(`keep-${name}-${STAMP}`, body)], { shard, partitions: 4, entryObjects: true }),
    );
    assert.match(err.message, new RegExp(`the unpack committed by run ${first.manifest.runId} stays`));
    assert.equal(err.details.kept, first.manifest.runId);
    if (name === 'systematic') {
      assert.match(report.verdictReasons.join(), /6\.25% of records malformed/);
      assert.equal(event(report, 'bad_row')?.count, 10);
    }
    assert.deepEqual(await readSourceManifest(store, DAY, shard), committed, name);
    assert.deepEqual(await everything(), before, `${name}: no object added or removed`);
    assert.deepEqual(fs.readFileSync(store.localPath(entryPath)), entryBefore, `${name}: entry object kept`);
  }
  // A good dump whose attempt was aborted (timed out; its retry may have committed) commits
  // nothing either, whether it was aborted before it started or while it read.
  const late = new AbortController();
  for (const signal of [AbortSignal.abort(new Error('timed out')), late.signal]) {
    const input = write(`keep-aborted-${STAMP}`, plainDump([copyBlock('manta', good)]));
    const run = unpackDump(store, [input], { shard, partitions: 4, entryObjects: true, signal });
    late.abort(new Error('timed out while reading'));
    await assert.rejects(run, /timed out/);
    assert.deepEqual(await readSourceManifest(store, DAY, shard), committed, 'aborted: manifest kept');
    assert.deepEqual(await everything(), before, 'aborted: no object added or removed');
  }
  // The chunks the kept manifest names are all there and whole.
  assert.equal((await rowsOf(store, first, 'manta')).length, 150);
  // A good dump still replaces it (and removes the chunks it superseded).
  const second = await unpackDump(
    store,
    [write(`keep-again-${STAMP}`, plainDump([copyBlock('manta', good)]))],
    {
      shard,
      partitions: 4,
    },
  );
  assert.notEqual(second.manifest.runId, first.manifest.runId);
  for (const c of first.manifest.tables.manta!.chunks) assert.equal(await store.head(c.path), undefined);
});

test("a real pg_dump of a moray database (fixture): ok, no warning, moray's own table kept, exact rows", async () => {
  const store = new LocalObjectStore(path.join(tmp, 'pgdump'));
  const file = path.resolve('test/fixtures/moray-pg-dump/moray-2024-03-05-00-00-17.gz');
  assert.match(
    zlib.gunzipSync(fs.readFileSync(file)).toString(),
    /^\\restrict /m,
    'the fixture has \\restrict',
  );
  const r = await unpackDump(store, [file], { shard: '1.moray.fixture', partitions: 4 });
  assert.equal(r.manifest.verdict, 'ok', JSON.stringify(r.manifest.report.events));
  assert.deepEqual(
    events(r.manifest).map((e) => [e.kind, e.severity, e.count]),
    [['moray_system_table', 'info', 1]],
  );
  assert.equal(r.manifest.snapshotTime, '2024-03-05T00:00:17.000Z');
  assert.deepEqual(
    Object.fromEntries(Object.entries(r.manifest.tables).map(([t, m]) => [t, [m.kind, m.rows]])),
    { buckets_config: ['generic', 2], manta: ['moray', 5], manta_delete_log: ['moray', 1] },
  );
  assert.equal(r.manifest.report.counters.recordsScanned, 8);
  const config = await rowsOf(store, r, 'buckets_config');
  assert.deepEqual(config.map((x) => x.name).sort(), ['manta', 'manta_delete_log']);
  assert.equal(config.find((x) => x.name === 'manta')!.options, '{"version":2}');
  const manta = await rowsOf(store, r, 'manta');
  assert.deepEqual(manta.map((x) => x.type).sort(), ['directory', 'directory', 'object', 'object', 'object']);
  // The snaplink names its source's objectId: both rows are in one partition (one chunk).
  const link = manta.find((x) => x.createdFrom !== null)!;
  const source = manta.find((x) => x.key === link.createdFrom)!;
  assert.equal(link.objectId, source.objectId);
  const chunkWith = (key: unknown) =>
    r.manifest.tables.manta!.chunks.find((c) => c.partition === partitionOf(String(key), 4));
  assert.equal(chunkWith(link.objectId), chunkWith(source.objectId));
  assert.ok(
    manta.every((x) => x.value_ok === true && typeof x._id === 'string' && x.shard === '1.moray.fixture'),
  );
  const log = await rowsOf(store, r, 'manta_delete_log');
  assert.equal(log[0]!.objectId, 'c1a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8');
});

/** The unpack job's task, run directly with what the pipeline would hand it. */
async function runUnpackTask(store: LocalObjectStore, dumpPath: string, shard: string) {
  const job = unpackJob({ partitions: 2 });
  const ctx = {
    services: { store },
    partition: { kind: 'day-shard', key: `${DAY}/${shard}`, day: DAY, shard },
    runId: 1,
    upstream: [
      {
        job: 'snapshot',
        partition: { kind: 'day-shard', key: `${DAY}/${shard}`, day: DAY, shard },
        runId: 1,
        verdict: 'ok',
        output: { shard, path: dumpPath, snapshotTime: '2024-03-05T06:07:08.000Z' },
      },
    ],
    task: { key: 'unpack', params: undefined },
    attemptId: 1,
    outputPrefix: '/poseidon/stor/remora/test/attempt',
    signal: new AbortController().signal,
    report: new ReportBuilder(),
  } as unknown as TaskContext<unknown>;
  return job.runTask(ctx);
}

test('the unpack job: a refused dump makes the task report invalid, with no output (the run is not committed)', async () => {
  const store = new LocalObjectStore(path.join(tmp, 'job'));
  const at = new Date('2024-03-05T06:07:08Z');
  const goodPath = backupPath('j1.moray', at);
  await store.put(goodPath, zlib.gzipSync(plainDump([copyBlock('manta', [mrow('1', '/a/stor/1', 'o1')])])));
  const ok = await runUnpackTask(store, goodPath, 'j1.moray');
  assert.equal(ok.report.verdict, 'ok');
  assert.equal(ok.report.counters.recordsScanned, 1, 'counted once');
  assert.equal(ok.output?.source, 'j1.moray');

  const emptyPath = backupPath('j2.moray', at);
  await store.put(emptyPath, Buffer.alloc(0));
  const bad = await runUnpackTask(store, emptyPath, 'j2.moray');
  assert.equal(bad.report.verdict, 'invalid');
  assert.equal(bad.output, undefined);
  assert.equal(event(bad.report, 'empty_input')?.severity, 'fatal');
  assert.equal(await readSourceManifest(store, DAY, 'j2.moray'), undefined);
});

test('remora unpack of an invalid dump: exit 8 (MalformedInput), the fatal event on stderr', () => {
  const stateDir = path.join(tmp, 'cli-state');
  fs.mkdirSync(stateDir);
  const file = write(`cli-${STAMP}`, '');
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', stateDir, 'unpack', file, '--shard', 'cli.moray'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 8, r.stderr);
  assert.match(r.stderr, /fatal empty_input ×1: .*0 bytes/);
  assert.match(
    r.stderr,
    /remora: MalformedInput: .* is invalid .*Nothing committed for cli\.moray on 2024-03-05/,
  );
  assert.equal(r.stdout, '');
});

test("scratch directories: a killed run's is removed by the next run, a live run's never", async () => {
  const root = path.join(tmp, 'scratch', 'objects');
  const store = new LocalObjectStore(root);
  fs.mkdirSync(root, { recursive: true });
  // A run in another process, alive: its directory must survive a cleanup.
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/chunk-run-child.ts', root], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  try {
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const killed = /^scratch (.+)$/m.exec(line.toString())![1]!;
    assert.ok(fs.existsSync(path.join(killed, 'owner.json')));
    assert.deepEqual(await removeStaleScratch(store), [], 'a live run keeps its directory');
    assert.ok(fs.existsSync(killed));
    child.kill('SIGKILL');
    await exited;
    assert.ok(fs.existsSync(killed), 'a killed run leaves its directory');

    const old = new Date(Date.now() - STALE_SCRATCH_MS - 60_000);
    const made = (name: string, owner?: object, mtime?: Date) => {
      const dir = path.join(root, name);
      fs.mkdirSync(path.join(dir, 'duckdb'), { recursive: true });
      if (owner) fs.writeFileSync(path.join(dir, 'owner.json'), JSON.stringify(owner));
      if (mtime) fs.utimesSync(owner ? path.join(dir, 'owner.json') : dir, mtime, mtime);
      return dir;
    };
    const elsewhereOld = made('.tmp-chunkrun-a', { host: 'other-host', pid: 1, startedAt: '' }, old);
    const elsewhereNew = made('.tmp-chunkrun-b', { host: 'other-host', pid: 1, startedAt: '' });
    const legacyOld = made('.tmp-work-c', undefined, old);
    const legacyNew = made('.tmp-work-d');
    const ours = made('.tmp-chunkrun-e', { host: os.hostname(), pid: process.pid, startedAt: '' }, old);

    // The next run cleans up before it starts, and says so.
    const r = await unpackDump(
      store,
      [write(`scratch-${STAMP}`, plainDump([copyBlock('manta', [mrow('1', '/a/stor/1', 'o1')])]))],
      {
        shard: 'scratch.moray',
        partitions: 1,
      },
    );
    const e = event(r.manifest, 'stale_scratch_removed')!;
    assert.equal(e.severity, 'info');
    assert.equal(e.count, 3);
    assert.equal(r.manifest.verdict, 'ok');
    for (const gone of [killed, elsewhereOld, legacyOld]) assert.ok(!fs.existsSync(gone), gone);
    for (const kept of [elsewhereNew, legacyNew, ours]) assert.ok(fs.existsSync(kept), kept);
    // The run removed its own directory when it finished.
    assert.deepEqual(
      fs
        .readdirSync(root)
        .filter((n) => n.startsWith('.tmp-'))
        .sort(),
      ['.tmp-chunkrun-b', '.tmp-chunkrun-e', '.tmp-work-d'],
    );
  } finally {
    child.kill('SIGKILL');
  }
});
