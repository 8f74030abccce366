/**
 * The timed scan + decision of the GC benchmark, in its own process so its peak RSS (Node +
 * DuckDB) is GC's alone. Runs the gc job's own `split` and `runTask` with `dryRun` for every
 * partition group (`concurrency` at a time, as a worker would) over unpacked chunks already in
 * `<workDir>/objects`: scan (DuckDB), decide (gc.plan.ts), write the plan. The dry run's re-check
 * asks a metadata tier that answers "no live reference" from memory, so what is timed is the scan
 * and the decision, not PostgreSQL (the apply phase is measured separately in gc.bench.ts).
 * With `decision`, each task is only gc.job.ts scanAndDecide (the query and decideGroup: every
 * delete record decided and counted), the step the scan target names; without, the whole
 * dry-run task. Prints one JSON line. Usage (from gc.bench.ts):
 *
 *   tsx bench/gc.phase.ts <workDir> <concurrency> [decision]
 *
 * `<workDir>/sources.json` holds the unpack outputs of every shard, `<workDir>/shards.json` the
 * configuration's shards (gc reads the index shards).
 */
import fs from 'node:fs';
import path from 'node:path';
import { mergeReports } from '../src/core/run-report.js';
import type { RemoraConfig } from '../src/config/config.js';
import type { UnpackRef } from '../src/dumps/partition-inputs.js';
import { DEFAULT_GC_OPTIONS, gcJob, scanAndDecide, type GcTaskParams } from '../src/jobs/gc/gc.job.js';
import type { JobDefinition, TaskContext } from '../src/pipeline/job.js';
import { benchPlan, benchServices, NO_LIVE_REFERENCES, runTasks } from './drive-job.js';

const [workDir, conc, step] = process.argv.slice(2) as [string, string, string | undefined];
const concurrency = Number(conc);
const sources = JSON.parse(fs.readFileSync(path.join(workDir, 'sources.json'), 'utf8')) as UnpackRef[];
const shards = JSON.parse(
  fs.readFileSync(path.join(workDir, 'shards.json'), 'utf8'),
) as RemoraConfig['shards'];
const day = sources[0]!.day;
const services = await benchServices(workDir, { tier: NO_LIVE_REFERENCES, shards });
const whole = gcJob();
// `decision`: the job's own split, and of each task only its scan and decision.
const job: JobDefinition =
  step === 'decision'
    ? {
        ...whole,
        runTask: async (ctx: TaskContext<GcTaskParams>) => {
          const { tally } = await scanAndDecide(ctx, DEFAULT_GC_OPTIONS);
          return { report: ctx.report.finish(), output: { plan: '', decisions: tally.decided } };
        },
      }
    : whole;
const plan = benchPlan(services, day, sources);
const maxRssMB = () => process.resourceUsage().maxRSS / 1024;

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const specs = await job.split(plan);
// Dry runs: scan, decide and re-check, nothing moved (the apply phase is timed separately).
const done = await runTasks(job, plan, specs, concurrency, (p) => ({
  ...(p as object),
  dryRun: true,
}));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const report = mergeReports(done.map((d) => d.report));
await services.duck.close();
process.stdout.write(
  `${JSON.stringify({
    deleteRecords: report.counters.recordsScanned,
    eligible: report.counters.eligible ?? 0,
    verdict: report.verdict,
    tasks: specs.length,
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    // Summed over tasks (task time): where it went.
    phasesMs: report.durations,
    maxRssMB: maxRssMB(),
  })}\n`,
);
