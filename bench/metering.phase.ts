/**
 * The timed part of the metering benchmark, in its own process so its peak RSS (Node +
 * DuckDB, from getrusage) is the metering's alone. Runs the storage-metering job's own
 * `split`, `runTask` (one per partition, `concurrency` at a time, as a worker with that
 * concurrency would) and `commit`, over unpacked chunks already in `<workDir>/objects`.
 * Prints one JSON line. Usage (from metering.bench.ts):
 *
 *   tsx bench/metering.phase.ts <workDir> <concurrency>
 *
 * `<workDir>/sources.json` holds the unpack outputs (what the unpack job commits per shard);
 * `<workDir>/accounts.json` the `accounts` rows' `_value`s (the commit reads them to deliver
 * per-account reports; served here without PostgreSQL, so the child measures only metering).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import { runPrefix } from '../src/pipeline/inputs.js';
import { BENCH_RUN_ID, benchPlan, benchServices, runTasks } from './drive-job.js';
import { mergeReports } from '../src/core/run-report.js';
import {
  storageMeteringJob,
  storageMeteringOutput,
} from '../src/jobs/storage-metering/storage-metering.job.js';
import type { UnpackRef } from '../src/dumps/partition-inputs.js';

const [workDir, conc] = process.argv.slice(2) as [string, string];
const concurrency = Number(conc);
const sources = JSON.parse(fs.readFileSync(path.join(workDir, 'sources.json'), 'utf8')) as UnpackRef[];
const accountValues = JSON.parse(fs.readFileSync(path.join(workDir, 'accounts.json'), 'utf8')) as string[];
const day = sources[0]!.day;
// The commit's only use of the tier: `SELECT _value FROM accounts` on the storage shard.
const tier = {
  storageShard: {
    pool: { query: () => Promise.resolve({ rows: accountValues.map((_value) => ({ _value })) }) },
  },
} as unknown as MetadataTier;
const services = await benchServices(workDir, { tier });
// Driven as the executor drives any job: params and outputs are what the job's own split returned.
const job: JobDefinition = storageMeteringJob({ reportRetentionDays: 90 });
const plan = benchPlan(services, day, sources);
const maxRssMB = () => process.resourceUsage().maxRSS / 1024;

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const secs = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;
const specs = await job.split(plan);
const done = await runTasks(job, plan, specs, concurrency);
const scanSeconds = secs(t0);
const cpu = process.cpuUsage(cpu0);
const scanCpuSeconds = (cpu.user + cpu.system) / 1e6;
const scanRssMB = maxRssMB();
const report = mergeReports(done.map((d) => d.report));
const t1 = process.hrtime.bigint();
const c = await job.commit({
  ...plan,
  tasks: done,
  report,
  runPrefix: runPrefix(job.name, day, BENCH_RUN_ID),
});
const commitSeconds = secs(t1);
process.stdout.write(
  `${JSON.stringify({
    records: report.counters.recordsScanned,
    malformed: report.counters.malformed,
    verdict: report.verdict,
    tasks: specs.length,
    accounts: storageMeteringOutput.parse(c.output).accounts,
    delivered: c.report?.counters.delivered ?? 0,
    scanSeconds,
    scanCpuSeconds,
    commitSeconds,
    // The commit's own phases (ms): merge partial sums, write the operator file, deliver.
    commitPhases: c.report?.durations ?? {},
    scanRssMB,
    maxRssMB: maxRssMB(),
  })}\n`,
);
