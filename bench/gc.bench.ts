/**
 * GC benchmark (issue 12): for 1M and 3M records (`manta` + `manta_delete_log`, ~10% delete
 * records), the scan and decision's records/s beside storage metering's scan of the same chunks
 * in the same run, and GC's peak RSS with the 3M/1M ratio; then the apply phase's copies
 * tombstoned per second beside a same-run baseline of plain MOVE requests.
 * Targets (issue 12): GC's scan at least as fast per record as metering's; RSS ratio ≤ 1.2.
 *
 * Scan + decision. Inputs built once per size and not timed: the bulk loader (records only) with
 * overwrites and deletes raised so that about one record in ten is a delete record, dated ten days
 * back (provable and past grace: every decision is made); snapshot; unpack as the pipeline does.
 * Timed, each in a child process (peak RSS is its own): storage metering's `runTask` over every
 * partition group (bench/metering.phase.ts); gc's scan and decision of every group (the job's split,
 * then gc.job.ts scanAndDecide per task: the query and every record decided and counted), the step
 * the target names; then gc's whole `runTask` as a dry run (bench/gc.phase.ts: scan, decide, write
 * the plan, the re-check answered from memory), all 2 tasks at a time. records/s = every record of
 * both tables / wall seconds for GC; `manta` records / wall seconds for metering (the only table it
 * reads). Both GC ratios are printed.
 *
 * Apply. N objects with two copies each on four loopback storage nodes and one delete record
 * each on the index shards; timed: `applyDecisions` for all of them (re-check on every shard,
 * MOVE of each copy, conditional delete of each record; throttles wide open) against, before it,
 * plain MOVEs of as many other copies at the same concurrency (8).
 *
 *   npm run bench                           (all benches; REMORA_BENCH=gc for this one)
 *   REMORA_BENCH_GC_RECORDS=1000000,3000000  sizes (records of both tables, approximate)
 *   REMORA_BENCH_GC_COPIES=20000             copies for the apply phase
 *   REMORA_BENCH_GC_KEEP=<dir>               keep built inputs there and reuse them
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBenchPostgres, keptOrBuilt, phaseChild } from './support.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../src/workload/generator.js';
import type { UnpackRef } from '../src/dumps/partition-inputs.js';

const SIZES = (process.env.REMORA_BENCH_GC_RECORDS ?? '1000000,3000000').split(',').map(Number);
const COPIES = Number(process.env.REMORA_BENCH_GC_COPIES ?? 20_000);
const KEEP = process.env.REMORA_BENCH_GC_KEEP;
const CONCURRENCY = 2;
/** GC does not care about accounts: few of them keep the build short (each is created in turn). */
const ACCOUNTS = 60;
/** Records (live + delete log) per object operation of this spec, measured. */
const RECORDS_PER_OP = 0.98;
const SPEC: Partial<WorkloadSpec> = { overwriteRate: 0.06, deleteRate: 0.05 };
/** Delete records ten days old: older than the snapshot and past the 2-day grace. */
const AGE_MS = 10 * 86_400_000;
const MOVES_IN_PARALLEL = 8;

interface Built {
  manta: number;
  deleteLog: number;
  note: string;
}

const f = (x: number) => Math.round(x).toLocaleString('en-US');

async function build(n: number, dir: string): Promise<Built> {
  const { openTestTier, testConfig } = await import('../test/helpers/pg.js');
  const { bulkLoad } = await import('../src/workload/bulk.js');
  const { LocalObjectStore } = await import('../src/objectstore/object-store.js');
  const { snapshotAll } = await import('../src/dumps/snapshot.js');
  const { unpackDump } = await import('../src/dumps/unpack.js');
  const { unpackRefOf } = await import('../src/dumps/partition-inputs.js');
  const { tier, config, cleanup } = await openTestTier(testConfig());
  try {
    const spec: WorkloadSpec = {
      ...DEFAULT_SPEC,
      ...SPEC,
      seed: 12,
      accounts: ACCOUNTS,
      objects: Math.round(n / RECORDS_PER_OP),
    };
    const t0 = Date.now();
    const s = await bulkLoad(tier, {
      spec,
      nodes: config.storage.nodes,
      writeFiles: false,
      startTime: Date.now() - AGE_MS,
    });
    const tLoad = (Date.now() - t0) / 1000;
    let manta = 0;
    let deleteLog = 0;
    for (const shard of tier.indexShards) {
      manta += Number((await shard.pool.query<{ n: string }>('SELECT count(*) AS n FROM manta')).rows[0]!.n);
      deleteLog += Number(
        (await shard.pool.query<{ n: string }>('SELECT count(*) AS n FROM manta_delete_log')).rows[0]!.n,
      );
    }
    const store = new LocalObjectStore(path.join(dir, 'objects'));
    const t1 = Date.now();
    const snaps = await snapshotAll(tier, store);
    const tSnap = (Date.now() - t1) / 1000;
    const t2 = Date.now();
    const sources = [];
    for (const d of snaps) {
      const u = await unpackDump(store, [d.path], {
        shard: d.shard,
        partitions: 'auto',
        expectedRows: d.rows,
      });
      sources.push(unpackRefOf(u));
    }
    const tUnpack = (Date.now() - t2) / 1000;
    fs.writeFileSync(path.join(dir, 'sources.json'), JSON.stringify(sources));
    fs.writeFileSync(path.join(dir, 'shards.json'), JSON.stringify(config.shards));
    const accounts = await tier.storageShard.pool.query<{ _value: string }>('SELECT _value FROM accounts');
    fs.writeFileSync(path.join(dir, 'accounts.json'), JSON.stringify(accounts.rows.map((r) => r._value)));
    const built: Built = {
      manta,
      deleteLog,
      note:
        `inputs: ${s.objects} puts (${s.overwrites} overwrites), ${s.links} links, ${s.deletes} deletes; ` +
        `bulk load ${tLoad.toFixed(1)} s, snapshot ${tSnap.toFixed(1)} s, unpack ${tUnpack.toFixed(1)} s`,
    };
    fs.writeFileSync(path.join(dir, 'built.json'), JSON.stringify(built));
    return built;
  } finally {
    await cleanup();
  }
}

/**
 * Kept inputs unpacked under an older CHUNK_SCHEMA are unpacked again from their kept dumps (same
 * partitions): GC reads older chunks the slower way (computing what unpack now writes), so timing
 * them would measure a path a new deployment never takes. Returns a note for the output.
 */
async function reunpackStale(dir: string): Promise<string> {
  const { LocalObjectStore } = await import('../src/objectstore/object-store.js');
  const { unpackDump } = await import('../src/dumps/unpack.js');
  const { PartitionInputs, unpackRefOf } = await import('../src/dumps/partition-inputs.js');
  const { CHUNK_SCHEMA } = await import('../src/dumps/manifest.js');
  const store = new LocalObjectStore(path.join(dir, 'objects'));
  const file = path.join(dir, 'sources.json');
  const { manifests } = await PartitionInputs.open(
    store,
    JSON.parse(fs.readFileSync(file, 'utf8')) as UnpackRef[],
  );
  const oldest = Math.min(...manifests.map((m) => m.chunkSchema ?? 1));
  if (oldest >= CHUNK_SCHEMA) return '';
  const t0 = Date.now();
  const fresh = [];
  for (const m of manifests) {
    const u = await unpackDump(
      store,
      m.input.map((i) => i.path),
      { shard: m.source, partitions: m.partitions },
    );
    fresh.push(unpackRefOf(u));
  }
  // A new file in its place (kept inputs may be hard-linked copies of others).
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(fresh));
  fs.renameSync(`${file}.tmp`, file);
  return `; unpacked again for CHUNK_SCHEMA ${CHUNK_SCHEMA} (kept: ${oldest}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`;
}

interface GcPhase {
  deleteRecords: number;
  eligible: number;
  verdict: string;
  tasks: number;
  seconds: number;
  cpuSeconds: number;
  phasesMs: Record<string, number>;
  maxRssMB: number;
}

async function scanSize(n: number): Promise<number> {
  const dir = KEEP ? path.join(KEEP, String(n)) : fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bench-gc-'));
  try {
    const built = await keptOrBuilt(KEEP, dir, (d) => build(n, d));
    if (KEEP) built.note += await reunpackStale(dir);
    const m = phaseChild<{ records: number; scanSeconds: number; maxRssMB: number }>('metering.phase.ts', [
      dir,
      String(CONCURRENCY),
    ]);
    const d = phaseChild<GcPhase>('gc.phase.ts', [dir, String(CONCURRENCY), 'decision']);
    const g = phaseChild<GcPhase>('gc.phase.ts', [dir, String(CONCURRENCY)]);
    const total = built.manta + built.deleteLog;
    const decisionRate = total / d.seconds;
    const gcRate = total / g.seconds;
    const meteringRate = m.records / m.scanSeconds;
    const ph = (k: string) => ((g.phasesMs[k] ?? 0) / 1000).toFixed(2);
    process.stdout.write(
      `gc scan + decision, ${f(total)} records (${f(built.manta)} manta, ${f(built.deleteLog)} delete records = ${((100 * built.deleteLog) / total).toFixed(1)}%):\n` +
        `  ${built.note}\n` +
        `  decision  ${d.seconds.toFixed(2)} s wall, CPU ${d.cpuSeconds.toFixed(2)} s: ${f(decisionRate)} records/s (scan and decision of every task, gc.job.ts scanAndDecide); peak RSS ${f(d.maxRssMB)} MB\n` +
        `  dry run   ${g.seconds.toFixed(2)} s wall, ${g.tasks} tasks ${CONCURRENCY} at a time, CPU ${g.cpuSeconds.toFixed(2)} s ` +
        `(task time: scan ${ph('scan')} s, decide ${ph('decide')} s, plan ${ph('plan')} s, re-check from memory ${ph('recheck')} s); ` +
        `${f(g.eligible)} eligible; verdict ${g.verdict}\n` +
        `  dry run   ${f(gcRate)} records/s (${f(built.deleteLog / g.seconds)} delete records/s); peak RSS ${f(g.maxRssMB)} MB\n` +
        `  metering  ${f(meteringRate)} records/s (${f(m.records)} manta records in ${m.scanSeconds.toFixed(2)} s, same chunks); peak RSS ${f(m.maxRssMB)} MB\n` +
        `  gc scan + decision / metering per record: ${(decisionRate / meteringRate).toFixed(2)} (target ≥ 1)\n` +
        `  gc whole dry-run task (+ plan written, re-check from memory) / metering: ${(gcRate / meteringRate).toFixed(2)}\n`,
    );
    return g.maxRssMB;
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The apply phase against plain MOVEs, on loopback nodes and the bench's PostgreSQL. */
async function applyPhase(copies: number): Promise<void> {
  const { openTestTier, testConfig } = await import('../test/helpers/pg.js');
  const { TEST_INTERNAL_TOKEN } = await import('../test/helpers/internal-token.js');
  const { StorageNode } = await import('../src/storage/storage-node.js');
  const { StorageClient } = await import('../src/storage/storage-client.js');
  const { ByteThrottle } = await import('../src/storage/throttle.js');
  const { eachLimit } = await import('../src/core/concurrency.js');
  const { ReportBuilder } = await import('../src/core/run-report.js');
  const { SeededRandom } = await import('../src/core/clock.js');
  const { dayOf } = await import('../src/core/days.js');
  const { DELETE_LOG_BUCKET } = await import('../src/metadata/buckets.js');
  const { insertRowIfAbsent } = await import('../src/metadata/moray.repository.js');
  const { decideObject } = await import('../src/jobs/gc/gc.plan.js');
  const { applyDecisions } = await import('../src/jobs/gc/gc.apply.js');
  const { tier, config, cleanup } = await openTestTier(testConfig());
  const nodes = await Promise.all(
    config.storage.nodes.slice(0, 4).map((n) =>
      StorageNode.start({
        id: n.id,
        datacenter: n.datacenter,
        root: path.join(config.stateDir, 'storage', n.id),
        internalToken: TEST_INTERNAL_TOKEN,
      }),
    ),
  );
  const storage = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN });
  try {
    const rnd = new SeededRandom(5);
    const owner = rnd.uuid();
    const objects = Math.ceil(copies / 2);
    const body = Buffer.alloc(1024, 7);
    /** objectId → its two nodes; files written straight into the node roots (not timed). */
    const place = (k: number) => [nodes[k % 4]!, nodes[(k + 1) % 4]!];
    const gcSet: string[] = [];
    const baseSet: string[] = [];
    for (let k = 0; k < objects; k++) {
      for (const set of [gcSet, baseSet]) {
        const oid = rnd.uuid();
        set.push(oid);
        for (const n of place(k)) {
          fs.mkdirSync(path.join(n.root, owner), { recursive: true });
          fs.writeFileSync(path.join(n.root, owner, oid), body);
        }
      }
    }
    const now = Date.now();
    const records = gcSet.map((oid, k) => {
      const shard = tier.indexShards[k % tier.indexShards.length]!;
      const value = JSON.stringify({
        objectId: oid,
        owner,
        type: 'object',
        contentLength: body.length,
        sharks: place(k).map((n) => ({ manta_storage_id: n.id, datacenter: n.datacenter })),
      });
      return { shard: shard.name, key: `/${oid}/${now - 86_400_000}`, value, mtime: now - 86_400_000 };
    });
    await eachLimit(records, 16, async (r) => {
      await insertRowIfAbsent(tier.shard(r.shard).pool, DELETE_LOG_BUCKET, r.key, r.value, r.mtime, null);
    });
    const etags = new Map<string, string>();
    for (const s of tier.indexShards)
      for (const row of (
        await s.pool.query<{ _key: string; _etag: string }>('SELECT _key, _etag FROM manta_delete_log')
      ).rows)
        etags.set(row._key, row._etag);
    const day = dayOf(now);
    const url = new Map(nodes.map((n) => [n.id, n.url]));

    // Baseline: plain MOVEs of as many copies, as many at once as the apply makes.
    const baseCopies = baseSet.flatMap((oid, k) => place(k).map((n) => ({ n, oid })));
    const tb = process.hrtime.bigint();
    await eachLimit(baseCopies, MOVES_IN_PARALLEL, async (c) => {
      await storage.tombstone(c.n.url, owner, c.oid, day);
    });
    const baseSecs = Number(process.hrtime.bigint() - tb) / 1e9;

    const decisions = records.flatMap((r, k) =>
      decideObject(
        { objectId: gcSet[k]!, live: [], deletes: [{ ...r, etag: etags.get(r.key)! }] },
        { now, graceMs: 0, earliestSnapshotMs: now },
      ),
    );
    const report = new ReportBuilder();
    const wide = {
      objects: new ByteThrottle({ bytesPerSecond: 1e12 }),
      bytes: new ByteThrottle({ bytesPerSecond: 1e15 }),
    };
    const ta = process.hrtime.bigint();
    await applyDecisions(decisions, {
      tier,
      storage,
      nodeUrl: (id) => url.get(id),
      throttle: () => wide,
      day,
      report,
    });
    const applySecs = Number(process.hrtime.bigint() - ta) / 1e9;
    const c = report.finish().counters;
    process.stdout.write(
      `gc apply, ${f(c.copiesTombstoned ?? 0)} copies of ${f(objects)} objects on 4 loopback nodes ` +
        `(re-check ${objects} objectIds on ${tier.indexShards.length} shards, MOVE, conditional delete of ${f(c.deleteRecordsRemoved ?? 0)} records):\n` +
        `  apply     ${applySecs.toFixed(2)} s = ${f((c.copiesTombstoned ?? 0) / applySecs)} copies tombstoned/s\n` +
        `  baseline  ${baseSecs.toFixed(2)} s = ${f(baseCopies.length / baseSecs)} plain MOVEs/s (${MOVES_IN_PARALLEL} at a time)\n` +
        `  apply / baseline: ${((c.copiesTombstoned ?? 0) / applySecs / (baseCopies.length / baseSecs)).toFixed(2)}\n`,
    );
  } finally {
    storage.close();
    for (const n of nodes) await n.close();
    await cleanup();
  }
}

export default async function bench(): Promise<void> {
  const stop = await ensureBenchPostgres();
  const rss: number[] = [];
  try {
    for (const n of SIZES) rss.push(await scanSize(n));
    if (rss.length >= 2)
      process.stdout.write(
        `gc peak RSS ratio ${SIZES.at(-1)! / SIZES[0]!}x records: ${(rss.at(-1)! / rss[0]!).toFixed(2)} (target ≤ 1.2)\n`,
      );
    if (COPIES > 0) await applyPhase(COPIES);
  } finally {
    await stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await bench();
