/**
 * Bulk workload loader: objects/s for N objects (records and files), beside a baseline
 * measured in the same run: the same number of files of the same sizes written with
 * plain writeFile and no metadata at all. Disk speed here swings 5x with other load, so
 * the ratio is the figure to compare across runs.
 *   REMORA_BENCH_BULK_OBJECTS (default 1,000,000), REMORA_BENCH_BULK_MAX_BYTES (default 4096)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBenchPostgres, RssSampler } from './support.js';
import { DEFAULT_SPEC, generateWorkload, type WorkloadSpec } from '../src/workload/generator.js';
import { bulkContent } from '../src/workload/bulk-content.js';

export default async function bench(): Promise<void> {
  const objects = Number(process.env.REMORA_BENCH_BULK_OBJECTS ?? 1_000_000);
  const maxBytes = Number(process.env.REMORA_BENCH_BULK_MAX_BYTES ?? 4096);
  const spec: WorkloadSpec = { ...DEFAULT_SPEC, seed: 7, accounts: 50, objects, maxObjectBytes: maxBytes };
  const stop = await ensureBenchPostgres();
  const { openTestTier } = await import('../test/helpers/pg.js');
  const { bulkLoad } = await import('../src/workload/bulk.js');
  const { tier, config, cleanup } = await openTestTier();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bulk-baseline-'));
  try {
    const baseline = await baselineFiles(spec, scratch);
    const rss = new RssSampler();
    const nodes = config.storage.nodes.map((n) => ({
      ...n,
      root: path.join(config.stateDir, 'nodes', n.id),
    }));
    const s = await bulkLoad(tier, { spec, nodes, writeFiles: true });
    rss.stop();
    const rate = objects / s.seconds;
    console.log(
      `bulk: ${objects} object operations (max ${maxBytes} B), ${s.files} files, ${s.rows} rows, ${s.deleteLogRows} delete-log rows`,
    );
    console.log(
      `bulk: ${s.seconds.toFixed(1)} s, ${Math.round(rate)} objects/s, peak RSS ${rss.peakMB().toFixed(0)} MB (target ≥ 10,000 objects/s)`,
    );
    console.log(
      `baseline (plain writeFile of the same ${baseline.files} files, no metadata): ${baseline.seconds.toFixed(1)} s, ${Math.round(objects / baseline.seconds)} objects/s-equivalent`,
    );
    console.log(`ratio bulk/baseline: ${(baseline.seconds / s.seconds).toFixed(2)}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
    await cleanup();
    await stop();
  }
}

async function baselineFiles(spec: WorkloadSpec, dir: string): Promise<{ files: number; seconds: number }> {
  const t0 = Date.now();
  let files = 0;
  let next = 0;
  const sizes: number[] = [];
  for (const op of generateWorkload(spec))
    if (op.op === 'put' && op.size > 0) for (let c = 0; c < op.copies; c++) sizes.push(op.size);
  const sub = path.join(dir, 'files');
  fs.mkdirSync(sub, { recursive: true });
  const lane = async () => {
    while (next < sizes.length) {
      const i = next++;
      await fs.promises.writeFile(path.join(sub, `f${i}`), bulkContent(sizes[i]!));
      files++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, lane));
  return { files, seconds: (Date.now() - t0) / 1000 };
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
