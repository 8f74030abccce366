/**
 * Evacuating a node at the scale of a real one (issue 16, item 5): bulk-load N small objects
 * (records and files, `src/workload/bulk.ts`), disable writes on one node, `snapshot --unpack`,
 * then `remora rebalance plan` and `remora rebalance run` as the processes an operator runs.
 * Figures: how long `plan` takes and its peak RSS; the run's objects/s and peak RSS over a time
 * budget (SIGTERM ends it, handled as Ctrl-C: claimed objects finish first). Peak RSS is the child's
 * VmHWM (/proc/<pid>/status), so it is the planner's and the runner's own, not this process's.
 * Several sizes in one go show whether memory grows with the node's object count (it must not:
 * the plan streams partitions and inserts in batches; the runner claims in batches).
 *   REMORA_BENCH_EVAC_OBJECTS  comma-separated sizes (default 1000000)
 *   REMORA_BENCH_EVAC_RUN_SECONDS  the run's time budget (default 60)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ensureBenchPostgres } from './support.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../src/workload/generator.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import { snapshotAll } from '../src/dumps/snapshot.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';

const NODE = '1.stor.dc1.remora.local';
const ROOT = path.resolve(import.meta.dirname, '..');

interface Figures {
  objects: number;
  onNode: number;
  loadSeconds: number;
  inputsSeconds: number;
  planSeconds: number;
  planPeakMB: number;
  planned: number;
  runSeconds: number;
  runPeakMB: number;
  moved: number;
}

export default async function bench(): Promise<void> {
  const sizes = (process.env.REMORA_BENCH_EVAC_OBJECTS ?? '1000000').split(',').map(Number);
  const runSeconds = Number(process.env.REMORA_BENCH_EVAC_RUN_SECONDS ?? 60);
  const stop = await ensureBenchPostgres();
  const all: Figures[] = [];
  try {
    for (const n of sizes) all.push(await evacuate(n, runSeconds));
  } finally {
    await stop();
  }
  for (const f of all)
    console.log(
      `evacuate ${f.objects} objects (${f.onNode} records on ${NODE}): bulk load ${f.loadSeconds.toFixed(0)} s, ` +
        `snapshot+unpack ${f.inputsSeconds.toFixed(0)} s; plan ${f.planSeconds.toFixed(1)} s for ${f.planned} ` +
        `objects, peak RSS ${f.planPeakMB.toFixed(0)} MB; run ${(f.moved / f.runSeconds).toFixed(1)} objects/s ` +
        `(${f.moved} in ${f.runSeconds.toFixed(0)} s), peak RSS ${f.runPeakMB.toFixed(0)} MB`,
    );
  if (all.length > 1) {
    const [a, b] = [all[0]!, all.at(-1)!];
    console.log(
      `memory vs object count (${a.objects} → ${b.objects}, ×${(b.objects / a.objects).toFixed(0)}): ` +
        `planner ${a.planPeakMB.toFixed(0)} → ${b.planPeakMB.toFixed(0)} MB, runner ${a.runPeakMB.toFixed(0)} → ` +
        `${b.runPeakMB.toFixed(0)} MB`,
    );
  }
}

async function evacuate(objects: number, runSeconds: number): Promise<Figures> {
  const { startTestDeployment } = await import('../test/helpers/deployment.js');
  const { bulkLoad } = await import('../src/workload/bulk.js');
  const { d, cleanup } = await startTestDeployment({}, { writeState: true });
  try {
    fs.writeFileSync(path.join(d.config.stateDir, 'config.json'), JSON.stringify(d.config));
    const spec: WorkloadSpec = { ...DEFAULT_SPEC, seed: 16, accounts: 20, objects, maxObjectBytes: 4096 };
    const nodes = d.config.storage.nodes.map((n) => ({ ...n, root: d.nodes.get(n.id)!.root }));
    const t0 = performance.now();
    await bulkLoad(d.tier, { spec, nodes, writeFiles: true });
    const loadSeconds = (performance.now() - t0) / 1000;
    let onNode = 0;
    for (const s of d.tier.indexShards)
      onNode += Number(
        (
          await s.pool.query<{ n: string }>(
            `SELECT count(*) AS n FROM manta WHERE type = 'object' AND _value LIKE $1`,
            [`%"${NODE}"%`],
          )
        ).rows[0]!.n,
      );
    await disableWrites(d.tier, NODE);
    await new Promise((r) => setTimeout(r, 2200)); // past the last write (mtimes are whole seconds)
    const t1 = performance.now();
    const store = new LocalObjectStore(path.join(d.config.stateDir, 'objects'));
    for (const r of await snapshotAll(d.tier, store))
      if (d.tier.shard(r.shard).role === 'index')
        await unpackDump(store, [r.path], { shard: r.shard, partitions: 'auto', expectedRows: r.rows });
    const inputsSeconds = (performance.now() - t1) / 1000;

    const plan = await child(d.config.stateDir, [
      'rebalance',
      'plan',
      '--evacuate',
      NODE,
      '--last-write-margin-ms',
      '0',
      '--json',
    ]);
    if (plan.code !== 0) throw new Error(`plan failed: ${plan.err}`);
    const planned = (JSON.parse(plan.out) as { objects: number }).objects;
    const run = await child(d.config.stateDir, ['rebalance', 'run', '--quiet', '--json'], runSeconds);
    // A run that finished inside the budget may get the SIGTERM while closing (after its totals).
    if (run.code !== 0 && !run.out.trim())
      throw new Error(`run failed (exit ${run.code}): ${run.err} ${run.out}`);
    const totals = JSON.parse(run.out.trim().split('\n').at(-1)!) as { outcomes: Record<string, number> };
    return {
      objects,
      onNode,
      loadSeconds,
      inputsSeconds,
      planSeconds: plan.seconds,
      planPeakMB: plan.peakMB,
      planned,
      runSeconds: run.seconds,
      runPeakMB: run.peakMB,
      moved: totals.outcomes.complete ?? 0,
    };
  } finally {
    await cleanup();
  }
}

/** Run the CLI as a child, sampling its peak RSS; SIGTERM after `budgetSeconds` (handled as Ctrl-C). */
async function child(
  stateDir: string,
  args: string[],
  budgetSeconds?: number,
): Promise<{ code: number | null; out: string; err: string; seconds: number; peakMB: number }> {
  const env = { ...process.env };
  delete env.REMORA_CONFIG;
  const t0 = performance.now();
  const c = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', stateDir, ...args],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  c.stdout.on('data', (b: Buffer) => (out += b.toString()));
  c.stderr.on('data', (b: Buffer) => (err += b.toString()));
  let peakKB = 0;
  const sample = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${c.pid}/status`, 'utf8'));
      if (m) peakKB = Math.max(peakKB, Number(m[1]));
    } catch {
      // exited between samples
    }
  }, 100);
  const budget =
    budgetSeconds === undefined ? undefined : setTimeout(() => c.kill('SIGTERM'), budgetSeconds * 1000);
  const code = await new Promise<number | null>((r) => c.on('exit', (x) => r(x)));
  clearInterval(sample);
  if (budget) clearTimeout(budget);
  return { code, out, err, seconds: (performance.now() - t0) / 1000, peakMB: peakKB / 1024 };
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
