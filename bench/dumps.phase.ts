/**
 * One phase of the dumps benchmark, run in its own process so its peak RSS (Node + DuckDB,
 * from getrusage) is the phase's alone. Prints one JSON line. Usage (from dumps.bench.ts):
 *   tsx bench/dumps.phase.ts snapshot <pgUrl> <dbPrefix> <stateDir> <shard>
 *   tsx bench/dumps.phase.ts unpack   <dumpPath> <stateDir> <partitions|auto> <expectedRows>
 */
import path from 'node:path';
import { defaultConfig } from '../src/config/config.js';
import { MetadataTier } from '../src/metadata/metadata-tier.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { snapshotShard } from '../src/dumps/snapshot.js';
import { unpackDump } from '../src/dumps/unpack.js';

const [phase, ...args] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
const seconds = () => Number(process.hrtime.bigint() - t0) / 1e9;
const maxRssMB = () => process.resourceUsage().maxRSS / 1024;

if (phase === 'snapshot') {
  const [url, prefix, stateDir, shard] = args as [string, string, string, string];
  const base = defaultConfig(stateDir);
  const config = { ...base, postgres: { ...base.postgres, url, databasePrefix: prefix } };
  const tier = await MetadataTier.open(config, url);
  const store = new LocalObjectStore(path.join(stateDir, 'objects'));
  const t1 = process.hrtime.bigint();
  const r = await snapshotShard(tier.shard(shard), store);
  const secs = Number(process.hrtime.bigint() - t1) / 1e9;
  await tier.close();
  process.stdout.write(
    `${JSON.stringify({ path: r.path, rows: r.tables.manta, bytes: r.bytes, seconds: secs, maxRssMB: maxRssMB() })}\n`,
  );
} else if (phase === 'unpack') {
  const [dump, stateDir, partitions, expectedRows] = args as [string, string, string, string];
  const store = new LocalObjectStore(path.join(stateDir, 'objects'));
  const r = await unpackDump(store, [dump], {
    partitions: partitions === 'auto' ? 'auto' : Number(partitions),
    expectedRows: Number(expectedRows),
  });
  const m = r.manifest.tables.manta!;
  const bytes = Object.values(r.manifest.tables).reduce(
    (s, t) => s + t.chunks.reduce((a, c) => a + c.bytes, 0),
    0,
  );
  process.stdout.write(
    `${JSON.stringify({ rows: m.rows, partitions: r.manifest.partitions, chunks: m.chunks.length, bytes, seconds: seconds(), maxRssMB: maxRssMB(), verdict: r.manifest.verdict })}\n`,
  );
} else {
  process.stderr.write(`unknown phase ${String(phase)}\n`);
  process.exitCode = 2;
}
