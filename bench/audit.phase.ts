/**
 * The timed audit (or cruft scan) of the audit benchmark, in its own process so its peak RSS
 * (Node + DuckDB) is its own. Runs the job's own `split` and `runTask` for every partition group
 * (`concurrency` at a time, as a worker would) over chunks already in `<workDir>/objects`: the
 * shards' unpacks and the nodes' ingested listings. Audit without the deep sample (no nodes
 * here: hashing is measured in audit.bench.ts); cruft as a plan, its re-check answered from
 * memory ("no reference"), so what is timed is the scan. Prints one JSON line.
 *
 *   tsx bench/audit.phase.ts <workDir> <concurrency> audit|cruft
 */
import fs from 'node:fs';
import path from 'node:path';
import { mergeReports } from '../src/core/run-report.js';
import type { RemoraConfig } from '../src/config/config.js';
import type { UnpackRef } from '../src/dumps/partition-inputs.js';
import { auditJob } from '../src/jobs/audit/audit.job.js';
import { cruftJob } from '../src/jobs/cruft/cruft.job.js';
import type { Listing } from '../src/jobs/manifests/manifests.job.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import { benchPlan, benchServices, NO_LIVE_REFERENCES, runTasks } from './drive-job.js';

const [workDir, conc, which] = process.argv.slice(2) as [string, string, 'audit' | 'cruft'];
const read = <T>(f: string) => JSON.parse(fs.readFileSync(path.join(workDir, f), 'utf8')) as T;
const sources = read<UnpackRef[]>('sources.json');
const listings = read<Listing[]>('listings.json');
const shards = read<RemoraConfig['shards']>('shards.json');
const day = sources[0]!.day;
const services = await benchServices(workDir, { tier: { ...NO_LIVE_REFERENCES, indexShards: [] }, shards });
const plan = benchPlan(services, day, sources);
plan.upstream.push(
  ...listings.map((output, i) => ({
    job: 'manifests',
    partition: { kind: 'day-node' as const, key: `${day}/node=${output.source}`, day, node: output.source },
    runId: 200 + i,
    verdict: 'ok' as const,
    output: { node: output.source, reached: true, listing: output },
  })),
);
const job = (
  which === 'audit' ? auditJob({ deepCycleDays: 0, deepBytesPerSecondPerNode: 1 }) : cruftJob()
) as JobDefinition;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const specs = await job.split(plan);
const done = await runTasks(job, plan, specs, Number(conc), (p) =>
  which === 'cruft' ? { ...(p as object), dryRun: true } : p,
);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const report = mergeReports(done.map((d) => d.report));
await services.duck.close();
process.stdout.write(
  `${JSON.stringify({
    counters: report.counters,
    verdict: report.verdict,
    tasks: specs.length,
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    phasesMs: report.durations,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  })}\n`,
);
