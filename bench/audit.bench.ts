/**
 * Audit and cruft benchmark (issue 13): for 1M and 3M records with their nodes' listings, the
 * audit's and cruft's records/s and peak RSS with the 3M/1M ratio (target ≤ 1.2); then the deep
 * audit's hashing rate on a loopback node against a same-run baseline of md5sum-equivalent
 * hashing of the same files (node:crypto over a file stream, as many at once).
 *
 * Inputs, built once per size and not timed: the bulk loader (records only, 60 accounts) on the
 * index shards, snapshot, unpack as the pipeline does (automatic P); then one listing per node in
 * the mako format written from the unpacked records by DuckDB (every copy a line, 0.1% of copies
 * left out = missing, strays = 0.5% of the copies with old mtimes), ingested like the manifests
 * job does (P 16), started after the snapshots. Timed in child processes (bench/audit.phase.ts,
 * peak RSS their own): the audit job's split + runTask for every group (no deep sample), then
 * cruft's (a plan; its re-check answered from memory), 2 tasks at a time.
 *
 *   npm run bench                                (all benches; REMORA_BENCH=audit for this one)
 *   REMORA_BENCH_AUDIT_RECORDS=1000000,3000000    sizes (manta records, approximate)
 *   REMORA_BENCH_AUDIT_HASH_MB=256                bytes hashed in the deep-audit comparison
 *   REMORA_BENCH_AUDIT_KEEP=<dir>                 keep built inputs there and reuse them
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ensureBenchPostgres, keptOrBuilt, phaseChild } from './support.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../src/workload/generator.js';

const SIZES = (process.env.REMORA_BENCH_AUDIT_RECORDS ?? '1000000,3000000').split(',').map(Number);
const HASH_MB = Number(process.env.REMORA_BENCH_AUDIT_HASH_MB ?? 256);
const KEEP = process.env.REMORA_BENCH_AUDIT_KEEP;
const CONCURRENCY = 2;
const ACCOUNTS = 60;
const LISTING_PARTITIONS = 16;
const DAY_MS = 86_400_000;

const f = (x: number) => Math.round(x).toLocaleString('en-US');

interface Built {
  manta: number;
  copies: number;
  left: number;
  strays: number;
  note: string;
}

async function build(n: number, dir: string): Promise<Built> {
  const { openTestTier, testConfig } = await import('../test/helpers/pg.js');
  const { bulkLoad } = await import('../src/workload/bulk.js');
  const { LocalObjectStore } = await import('../src/objectstore/object-store.js');
  const { snapshotAll } = await import('../src/dumps/snapshot.js');
  const { unpackDump } = await import('../src/dumps/unpack.js');
  const { unpackRefOf } = await import('../src/dumps/partition-inputs.js');
  const { ingestMakoListing } = await import('../src/dumps/mako.js');
  const { PartitionInputs } = await import('../src/dumps/partition-inputs.js');
  const { DuckPool, sqlString } = await import('../src/dumps/duckdb.js');
  const { tier, config, cleanup } = await openTestTier(testConfig());
  const duck = new DuckPool();
  try {
    const spec: WorkloadSpec = { ...DEFAULT_SPEC, seed: 13, accounts: ACCOUNTS, objects: n };
    const t0 = Date.now();
    const s = await bulkLoad(tier, {
      spec,
      nodes: config.storage.nodes,
      writeFiles: false,
      startTime: Date.now() - 10 * DAY_MS,
    });
    const store = new LocalObjectStore(path.join(dir, 'objects'));
    const snaps = await snapshotAll(tier, store);
    const sources = [];
    const manifests = [];
    for (const d of snaps) {
      const u = await unpackDump(store, [d.path], {
        shard: d.shard,
        partitions: 'auto',
        expectedRows: d.rows,
      });
      manifests.push(u.manifest);
      sources.push(unpackRefOf(u));
    }
    const tBuild = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    const startedAt = new Date().toISOString();
    const inputs = PartitionInputs.of(store, manifests);
    const listings = [];
    let copies = 0;
    let left = 0;
    let strays = 0;
    let manta = 0;
    for (const node of config.storage.nodes) {
      const file = path.join(dir, `listing-${node.id}`);
      const counts = await inputs.withGroup({ group: 0, groups: 1 }, ['manta'], ({ files }) =>
        duck.run(async (conn) => {
          const from = `read_parquet([${files.manta!.map(sqlString).join(', ')}], union_by_name = true)`;
          const rows = `SELECT DISTINCT lower(objectId) AS oid, coalesce(creator, owner) AS dir, coalesce(contentLength, 0) AS bytes,
              coalesce(mtime, 0) // 1000 AS secs FROM (SELECT *, unnest(sharks).manta_storage_id AS node FROM ${from}
              WHERE type = 'object' AND objectId IS NOT NULL) WHERE node = ${sqlString(node.id)}`;
          const keep = `('0x' || left(md5(oid || '@${node.id}'), 6))::BIGINT % 1000 <> 0`;
          await conn.run(
            `COPY (SELECT '/manta/' || dir || '/' || oid || chr(9) || bytes || chr(9) || secs || chr(9) || 4 FROM (${rows}) WHERE ${keep})
             TO ${sqlString(file)} (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '')`,
          );
          // Audit names a problem per record and node (a link is a record of its own), so the
          // expected count is the left-out copies' (record, node) pairs, not the listing's lines.
          const pairs = `SELECT lower(objectId) AS oid FROM (SELECT *, unnest(sharks).manta_storage_id AS node FROM ${from}
              WHERE type = 'object' AND objectId IS NOT NULL) WHERE node = ${sqlString(node.id)}`;
          const r = (
            await conn.runAndReadAll(
              `SELECT count(*), (SELECT count(*) FROM (${pairs}) WHERE NOT (${keep})), (SELECT count(*) FROM ${from}) FROM (${rows})`,
            )
          ).getRows()[0]!;
          return r.map(Number) as [number, number, number];
        }),
      );
      copies += counts[0];
      left += counts[1];
      manta = counts[2];
      const nStrays = Math.ceil(counts[0] / 200);
      const old = Math.floor((Date.now() - 20 * DAY_MS) / 1000);
      const owner = crypto.randomUUID();
      fs.appendFileSync(
        file,
        Array.from(
          { length: nStrays },
          () => `/manta/${owner}/${crypto.randomUUID()}\t1000\t${old}\t4\n`,
        ).join(''),
      );
      strays += nStrays;
      // Created on the first line asked for: a reader made before the ingest opens DuckDB would
      // let every line go by with nobody listening (storage-client.ts strictLines).
      async function* lines() {
        yield* readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
      }
      const r = await ingestMakoListing(
        store,
        { storageId: node.id, startedAt, lines: lines() },
        { partitions: LISTING_PARTITIONS, upload: false },
      );
      fs.rmSync(file);
      listings.push({
        source: node.id,
        day: r.manifest.day,
        runId: r.manifest.runId,
        partitions: r.manifest.partitions,
        manifestPath: r.manifestPath,
        startedAt,
        files: r.manifest.tables.mako?.rows ?? 0,
        lines: r.manifest.report.counters.lines ?? 0,
      });
    }
    const tList = (Date.now() - t1) / 1000;
    fs.writeFileSync(path.join(dir, 'sources.json'), JSON.stringify(sources));
    fs.writeFileSync(path.join(dir, 'listings.json'), JSON.stringify(listings));
    fs.writeFileSync(path.join(dir, 'shards.json'), JSON.stringify(config.shards));
    const built: Built = {
      manta,
      copies,
      left,
      strays,
      note: `inputs: ${s.objects} puts, ${s.links} links, ${s.deletes} deletes; load+snapshot+unpack ${tBuild.toFixed(1)} s, listings ${tList.toFixed(1)} s`,
    };
    fs.writeFileSync(path.join(dir, 'built.json'), JSON.stringify(built));
    return built;
  } finally {
    await duck.close();
    await cleanup();
  }
}

interface Phase {
  counters: Record<string, number>;
  verdict: string;
  tasks: number;
  seconds: number;
  cpuSeconds: number;
  maxRssMB: number;
}

async function size(n: number): Promise<{ audit: number; cruft: number }> {
  const dir = KEEP
    ? path.join(KEEP, String(n))
    : fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bench-audit-'));
  try {
    const built = await keptOrBuilt(KEEP, dir, (d) => build(n, d));
    const a = phaseChild<Phase>('audit.phase.ts', [dir, String(CONCURRENCY), 'audit']);
    const c = phaseChild<Phase>('audit.phase.ts', [dir, String(CONCURRENCY), 'cruft']);
    const records = a.counters.recordsScanned ?? 0;
    process.stdout.write(
      `audit and cruft, ${f(built.manta)} manta rows, ${f(built.copies)} copies listed on 6 nodes (${f(built.left)} left out, ${f(built.strays)} strays):\n` +
        `  ${built.note}\n` +
        `  audit  ${a.seconds.toFixed(2)} s wall, ${a.tasks} tasks, CPU ${a.cpuSeconds.toFixed(2)} s: ${f(records / a.seconds)} object records/s, ` +
        `${f((a.counters.copiesChecked ?? 0) / a.seconds)} copies/s; problems ${f(a.counters['problems.missing'] ?? 0)} missing ` +
        `(expected ${f(built.left)}); peak RSS ${f(a.maxRssMB)} MB\n` +
        `  cruft  ${c.seconds.toFixed(2)} s wall, ${c.tasks} tasks, CPU ${c.cpuSeconds.toFixed(2)} s: ${f((c.counters.recordsScanned ?? 0) / c.seconds)} listed files/s, ` +
        `${f(records / c.seconds)} object records/s; ${f(c.counters.cruftFiles ?? 0)} cruft (expected ${f(built.strays)}); peak RSS ${f(c.maxRssMB)} MB\n`,
    );
    return { audit: a.maxRssMB, cruft: c.maxRssMB };
  } finally {
    if (!KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Deep audit's hashing on a loopback node against md5sum-equivalent hashing of the same files. */
async function hashing(totalMB: number): Promise<void> {
  const { testConfig } = await import('../test/helpers/pg.js');
  const { TEST_INTERNAL_TOKEN } = await import('../test/helpers/internal-token.js');
  const { StorageNode } = await import('../src/storage/storage-node.js');
  const { StorageClient } = await import('../src/storage/storage-client.js');
  const { ByteThrottle } = await import('../src/storage/throttle.js');
  const { ReportBuilder } = await import('../src/core/run-report.js');
  const { eachLimit } = await import('../src/core/concurrency.js');
  const { deepAudit } = await import('../src/jobs/audit/audit.deep.js');
  const config = testConfig();
  const node = await StorageNode.start({
    id: '1.stor.dc1.bench',
    datacenter: 'dc1',
    root: path.join(config.stateDir, 'n'),
    internalToken: TEST_INTERNAL_TOKEN,
  });
  const storage = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN });
  try {
    const owner = crypto.randomUUID();
    const fileMB = 4;
    const sample = [];
    fs.mkdirSync(path.join(node.root, owner), { recursive: true });
    for (let i = 0; i < Math.max(1, Math.round(totalMB / fileMB)); i++) {
      const body = crypto.randomBytes(fileMB * 1024 * 1024);
      const objectId = crypto.randomUUID();
      fs.writeFileSync(path.join(node.root, owner, objectId), body);
      sample.push({
        objectId,
        node: node.id,
        owner,
        md5: crypto.createHash('md5').update(body).digest('base64'),
        bytes: body.length,
        key: `/${owner}/stor/${i}`,
        shard: 'x',
      });
    }
    const bytes = sample.reduce((a, s) => a + s.bytes, 0);
    const tb = process.hrtime.bigint();
    await eachLimit(sample, 4, async (s) => {
      const h = crypto.createHash('md5');
      for await (const c of fs.createReadStream(path.join(node.root, owner, s.objectId), {
        highWaterMark: 1 << 20,
      }))
        h.update(c as Buffer);
      if (h.digest('base64') !== s.md5) throw new Error('baseline mismatch');
    });
    const base = Number(process.hrtime.bigint() - tb) / 1e9;
    const report = new ReportBuilder();
    const wide = new ByteThrottle({ bytesPerSecond: 1e15 });
    const td = process.hrtime.bigint();
    const corrupt = await deepAudit(sample, {
      storage,
      nodeUrl: () => node.url,
      throttle: () => wide,
      report,
    });
    const deep = Number(process.hrtime.bigint() - td) / 1e9;
    const mb = bytes / 1024 / 1024;
    process.stdout.write(
      `deep audit hashing, ${sample.length} files × ${fileMB} MiB on one loopback node, 4 at a time (page cache warm):\n` +
        `  deep audit  ${deep.toFixed(2)} s = ${(mb / deep).toFixed(0)} MiB/s (${corrupt.length} corrupt, ${report.finish().counters.deepHashed} hashed)\n` +
        `  baseline    ${base.toFixed(2)} s = ${(mb / base).toFixed(0)} MiB/s (node:crypto MD5 over a file stream, md5sum-equivalent)\n` +
        `  deep / baseline: ${(base / deep).toFixed(2)}\n`,
    );
  } finally {
    storage.close();
    await node.close();
    fs.rmSync(config.stateDir, { recursive: true, force: true });
  }
}

export default async function bench(): Promise<void> {
  const stop = await ensureBenchPostgres();
  const rss: { audit: number; cruft: number }[] = [];
  try {
    for (const n of SIZES) rss.push(await size(n));
    if (rss.length >= 2) {
      const r = (k: 'audit' | 'cruft') => (rss.at(-1)![k] / rss[0]![k]).toFixed(2);
      process.stdout.write(
        `peak RSS ratio ${SIZES.at(-1)! / SIZES[0]!}x records: audit ${r('audit')}, cruft ${r('cruft')} (target ≤ 1.2)\n`,
      );
    }
    if (HASH_MB > 0) await hashing(HASH_MB);
  } finally {
    await stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) await bench();
