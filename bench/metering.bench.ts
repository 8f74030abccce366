/**
 * Storage-metering benchmark (issue 4): for 1M and 3M `manta` records, metering throughput
 * (records/s from unpacked chunks) and peak RSS, and the ratio of the two runs' peak RSS.
 * Targets on a 2-core machine: ≥ 1,000,000 records/s, RSS ratio ≤ 1.2.
 *
 * Inputs, built once per size and not timed: the bulk loader writes realistic records (links
 * within and across directories, namespaces and accounts, overwrites, deletes, zero-byte
 * objects) into the two index shards; 1,200 accounts, three of them large (30% of object
 * operations between them, so the largest account grows with the size); snapshot of every
 * shard; unpack as the pipeline does (P per shard from its row count, DEFAULT_ROWS_PER_PARTITION
 * rows per partition: P grows with the data, so a task's memory does not). Timed, in a child process (bench/metering.phase.ts) so its
 * peak RSS is the metering's own: the job's `runTask` for every partition (2 at a time, the
 * worker's default concurrency) and its `commit` (merge, operator file, per-account reports).
 *
 *   npm run bench                          (all benches; REMORA_BENCH=metering for this one)
 *   REMORA_BENCH_METERING_RECORDS=200000,600000   sizes (records, approximate)
 *   REMORA_BENCH_METERING_KEEP=<dir>              keep built inputs there and reuse them
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBenchPostgres } from './support.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../src/workload/generator.js';
import { CHUNK_SCHEMA } from '../src/dumps/manifest.js';
import { DEFAULT_ROWS_PER_PARTITION } from '../src/dumps/partition.js';
import type { UnpackRef } from '../src/dumps/partition-inputs.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SIZES = (process.env.REMORA_BENCH_METERING_RECORDS ?? '1000000,3000000').split(',').map(Number);
const KEEP = process.env.REMORA_BENCH_METERING_KEEP;
const CONCURRENCY = 2;
const ACCOUNTS = 1200;
/** Live records per object operation of the generator (puts, links, minus deletes), measured. */
const RECORDS_PER_OP = 0.87;
/** Directory records per account (namespaces and the generator's tree), measured. */
const DIRS_PER_ACCOUNT = 15;

interface PhaseResult {
  records: number;
  malformed: number;
  verdict: string;
  tasks: number;
  accounts: number;
  delivered: number;
  scanSeconds: number;
  scanCpuSeconds: number;
  commitSeconds: number;
  commitPhases: Record<string, number>;
  scanRssMB: number;
  maxRssMB: number;
}

interface Built {
  records: number;
  largest: number;
  note: string;
  /** How the chunks were unpacked (UNPACK_TAG): kept inputs are unpacked again when it changes. */
  unpacked?: string;
}

interface Dump {
  path: string;
  shard: string;
  rows: number;
}

/** Chunk schema and partitioning of the unpack, as the pipeline's unpack job does it. */
const UNPACK_TAG = `schema ${CHUNK_SCHEMA}, auto P at ${DEFAULT_ROWS_PER_PARTITION} rows`;

/** Unpack every shard's dump as the pipeline does (automatic P from the snapshot's row count); writes sources.json. */
async function unpackAll(dir: string, dumps: Dump[]): Promise<number> {
  const { LocalObjectStore } = await import('../src/objectstore/object-store.js');
  const { unpackDump } = await import('../src/dumps/unpack.js');
  const { unpackRefOf } = await import('../src/dumps/partition-inputs.js');
  const store = new LocalObjectStore(path.join(dir, 'objects'));
  const t = Date.now();
  const sources = [];
  for (const d of dumps) {
    const u = await unpackDump(store, [d.path], { shard: d.shard, partitions: 'auto', expectedRows: d.rows });
    sources.push(unpackRefOf(u));
  }
  fs.writeFileSync(path.join(dir, 'sources.json'), JSON.stringify(sources));
  return (Date.now() - t) / 1000;
}

/** Kept inputs from before dumps.json: the dumps and row counts are in the unpack manifests. */
async function dumpsOf(dir: string): Promise<Dump[]> {
  const file = path.join(dir, 'dumps.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as Dump[];
  const { LocalObjectStore } = await import('../src/objectstore/object-store.js');
  const { readSourceManifest } = await import('../src/dumps/manifest.js');
  const store = new LocalObjectStore(path.join(dir, 'objects'));
  const sources = JSON.parse(fs.readFileSync(path.join(dir, 'sources.json'), 'utf8')) as UnpackRef[];
  const dumps: Dump[] = [];
  for (const s of sources) {
    const m = (await readSourceManifest(store, s.day, s.source))!;
    const rows = Object.values(m.tables).reduce((a, t) => a + t.rows, 0);
    dumps.push({ path: m.input[0]!.path, shard: m.source, rows });
  }
  fs.writeFileSync(file, JSON.stringify(dumps));
  return dumps;
}

/** Bulk load → snapshot → unpack into `<dir>/objects`; writes sources.json and accounts.json. */
async function build(n: number, dir: string): Promise<Built> {
  const { openTestTier, testConfig } = await import('../test/helpers/pg.js');
  const { bulkLoad } = await import('../src/workload/bulk.js');
  const { LocalObjectStore } = await import('../src/objectstore/object-store.js');
  const { snapshotAll } = await import('../src/dumps/snapshot.js');
  const { tier, config, cleanup } = await openTestTier(testConfig());
  try {
    const spec: WorkloadSpec = {
      ...DEFAULT_SPEC,
      seed: 11,
      accounts: ACCOUNTS,
      objects: Math.round(Math.max(0, n - DIRS_PER_ACCOUNT * ACCOUNTS) / RECORDS_PER_OP),
      largeAccounts: { count: 3, share: 0.3 },
    };
    const t0 = Date.now();
    const s = await bulkLoad(tier, { spec, nodes: config.storage.nodes, writeFiles: false });
    const tLoad = (Date.now() - t0) / 1000;
    let records = 0;
    let largest = 0;
    for (const shard of tier.indexShards) {
      const r = await shard.pool.query<{ n: string }>('SELECT count(*) AS n FROM manta');
      records += Number(r.rows[0]!.n);
    }
    // Largest account across shards (its records are spread over both).
    const per = new Map<string, number>();
    for (const shard of tier.indexShards) {
      const r = await shard.pool.query<{ owner: string; n: string }>(
        'SELECT owner, count(*) AS n FROM manta GROUP BY owner',
      );
      for (const x of r.rows) per.set(x.owner, (per.get(x.owner) ?? 0) + Number(x.n));
    }
    for (const v of per.values()) largest = Math.max(largest, v);
    const store = new LocalObjectStore(path.join(dir, 'objects'));
    const t1 = Date.now();
    const snaps = await snapshotAll(tier, store);
    const tSnap = (Date.now() - t1) / 1000;
    const dumps: Dump[] = snaps.map((x) => ({
      path: x.path,
      shard: x.shard,
      rows: x.rows,
    }));
    fs.writeFileSync(path.join(dir, 'dumps.json'), JSON.stringify(dumps));
    const tUnpack = await unpackAll(dir, dumps);
    const accounts = await tier.storageShard.pool.query<{ _value: string }>('SELECT _value FROM accounts');
    fs.writeFileSync(path.join(dir, 'accounts.json'), JSON.stringify(accounts.rows.map((r) => r._value)));
    const built: Built = {
      records,
      largest,
      note:
        `inputs: ${s.accounts} accounts, ${s.objects} puts (${s.overwrites} overwrites), ${s.links} links, ` +
        `${s.deletes} deletes; bulk load ${tLoad.toFixed(1)} s, snapshot ${tSnap.toFixed(1)} s, ` +
        `unpack ${tUnpack.toFixed(1)} s (${snaps.length} shards)`,
      unpacked: UNPACK_TAG,
    };
    fs.writeFileSync(path.join(dir, 'built.json'), JSON.stringify(built));
    return built;
  } finally {
    await cleanup();
  }
}

async function noSyncCommit(url: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('ALTER SYSTEM SET synchronous_commit = off');
    await c.query('SELECT pg_reload_conf()');
  } finally {
    await c.end();
  }
}

function phase(dir: string): PhaseResult {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, 'metering.phase.ts'), dir, String(CONCURRENCY)],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as PhaseResult;
}

export default async function bench(): Promise<void> {
  const own = !process.env.REMORA_TEST_PG_URL;
  const stop = await ensureBenchPostgres();
  // Our own throwaway server: no WAL flush per commit (the 1,200 accounts are created one by
  // one through the front door's createAccount, ~80 ms each with synchronous commits).
  if (own) await noSyncCommit(process.env.REMORA_TEST_PG_URL!);
  const f = (x: number) => Math.round(x).toLocaleString('en-US');
  const rss: number[] = [];
  try {
    for (const n of SIZES) {
      const dir = KEEP
        ? path.join(KEEP, String(n))
        : fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'remora-bench-metering-'));
      try {
        let built: Built;
        if (KEEP && fs.existsSync(path.join(dir, 'built.json'))) {
          built = JSON.parse(fs.readFileSync(path.join(dir, 'built.json'), 'utf8')) as Built;
          built.note += ' (reused)';
          if (built.unpacked !== UNPACK_TAG) {
            const secs = await unpackAll(dir, await dumpsOf(dir));
            built.note += `; unpacked again (${UNPACK_TAG}) in ${secs.toFixed(1)} s`;
            fs.writeFileSync(
              path.join(dir, 'built.json'),
              JSON.stringify({ ...built, note: built.note.replace(' (reused)', ''), unpacked: UNPACK_TAG }),
            );
          }
        } else {
          fs.mkdirSync(dir, { recursive: true });
          built = await build(n, dir);
        }
        const p = phase(dir);
        const ms = (k: string) => (p.commitPhases[k] ?? 0) / 1000;
        // Metering = scan of every partition + merge of the partial sums + the operator file;
        // delivery of per-account reports is reported beside it (it grows with accounts, not records).
        const secs = p.scanSeconds + ms('merge') + ms('publish');
        rss.push(p.maxRssMB);
        process.stdout.write(
          `metering ${f(p.records)} records, ${f(p.accounts)} accounts (largest ${f(built.largest)} records):\n` +
            `  ${built.note}\n` +
            `  scan     ${p.scanSeconds.toFixed(2)} s (${p.tasks} tasks, ${CONCURRENCY} at a time; CPU ${p.scanCpuSeconds.toFixed(2)} s = ${f(p.records / p.scanCpuSeconds)} records per CPU-second)\n` +
            `  commit   merge ${ms('merge').toFixed(2)} s, operator file ${ms('publish').toFixed(2)} s, deliver ${f(p.delivered)} account reports + latest ${ms('deliver').toFixed(2)} s\n` +
            `  metering ${f(p.records / secs)} records/s (scan + merge + operator file; target ≥ 1,000,000), ` +
            `${f(p.records / (p.scanSeconds + p.commitSeconds))} records/s with delivery; peak RSS ${f(p.maxRssMB)} MB; verdict ${p.verdict}\n`,
        );
      } finally {
        if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
      }
    }
    if (rss.length >= 2)
      process.stdout.write(
        `metering peak RSS ratio ${SIZES.at(-1)! / SIZES[0]!}x records: ${(rss.at(-1)! / rss[0]!).toFixed(2)} (target ≤ 1.2)\n`,
      );
  } finally {
    await stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await bench();
