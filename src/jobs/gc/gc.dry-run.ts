/**
 * `remora gc plan --date D`: what that day's gc would do, without doing it. In process, not
 * through the executor: the gc job's own `split` over the day's committed unpacks, then its own
 * `runTask` for every partition group with `dryRun` (scan, decide, write the plan, re-check live
 * metadata; nothing moves, no delete record is removed). No run is recorded and no pointer moves,
 * so a dry run can never be mistaken for the day's gc, nor block or replace it.
 *
 * The plans are written under GC_DRY_RUN_ROOT (the job's `retain` removes them with the run
 * history); the decisions are counted and exampled in one merged report, as a run's would be.
 */
import { RemoraError } from '../../core/errors.js';
import { mergeReports, ReportBuilder, type RunReport } from '../../core/run-report.js';
import { PartitionInputs } from '../../dumps/partition-inputs.js';
import type { UpstreamOutput } from '../../pipeline/job.js';
import { dayPartition } from '../../pipeline/partitions.js';
import { readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';
import { unpackOutput } from '../unpack/unpack.job.js';
import { addBacklog, emptyBacklog, type GcBacklog } from './gc.backlog.js';
import { GC_DRY_RUN_ROOT, gcJob, gcOptionsFrom, type GcJobOptions } from './gc.job.js';

export interface GcDryRun {
  day: string;
  /** The instant the decision was made at (grace is measured from it). */
  decidedAt: number;
  options: GcJobOptions;
  /** The snapshots read (one per index shard) and the earliest of their instants. */
  snapshots: { shard: string; snapshotTime: string }[];
  earliestSnapshotMs?: number;
  tasks: number;
  report: RunReport;
  backlog: GcBacklog;
  /** Where the plans (one tab-separated `plan.tsv` per partition group, docs/gc.md) were written. */
  planPrefix: string;
}

export async function planGcDay(rt: PipelineRuntime, day: string, signal?: AbortSignal): Promise<GcDryRun> {
  const { services } = rt;
  const options = gcOptionsFrom(rt.settings);
  const job = gcJob(options);
  const upstream: UpstreamOutput[] = [];
  for (const s of services.config.shards.filter((x) => x.role === 'index')) {
    const key = `${day}/shard=${s.name}`;
    const p = await readPointer(rt.control, 'unpack', key);
    if (!p)
      throw new RemoraError(
        'UsageError',
        `no committed unpack of ${s.name} for ${day}: gc reads the day's snapshots; run them first ` +
          `(\`remora pipeline run --date ${day}\`, or \`remora rerun unpack --date ${day}\`)`,
      );
    if (p.verdict === 'invalid')
      throw new RemoraError(
        'UsageError',
        `the unpack of ${s.name} for ${day} is invalid: gc would refuse it`,
      );
    upstream.push({
      job: 'unpack',
      partition: { kind: 'day-shard', key, day, shard: s.name },
      runId: p.runId,
      verdict: p.verdict,
      output: p.output,
    });
  }
  const inputs = await PartitionInputs.open(
    services.store,
    upstream.map((u) => unpackOutput.parse(u.output)),
  );
  const plan = { services, partition: dayPartition(day), runId: 0, upstream };
  const tasks = await job.split(plan);
  const decidedAt = services.clock.now();
  const planPrefix = `${GC_DRY_RUN_ROOT}/${day.replaceAll('-', '/')}/${new Date(decidedAt).toISOString().replace(/[:.]/g, '-')}/`;
  const reports: RunReport[] = [];
  let backlog = emptyBacklog();
  const ac = new AbortController();
  signal?.addEventListener('abort', () => ac.abort());
  for (const t of tasks) {
    if (ac.signal.aborted) throw new RemoraError('WorkerShutdown', 'gc plan interrupted');
    const r = await job.runTask({
      ...plan,
      task: { key: t.key, params: { ...t.params!, dryRun: true } },
      attemptId: 0,
      outputPrefix: `${planPrefix}${t.key}/`,
      signal: ac.signal,
      report: new ReportBuilder({ thresholds: rt.settings.thresholds }),
    });
    reports.push(r.report);
    backlog = addBacklog(backlog, r.output?.backlog ?? emptyBacklog());
  }
  const earliest = tasks[0]?.params?.earliestSnapshotMs;
  return {
    day,
    decidedAt,
    options,
    snapshots: inputs.manifests.map((m) => ({ shard: m.source, snapshotTime: m.snapshotTime })),
    ...(earliest !== undefined ? { earliestSnapshotMs: earliest } : {}),
    tasks: tasks.length,
    report: mergeReports(reports, { thresholds: rt.settings.thresholds }),
    backlog,
    planPrefix,
  };
}
