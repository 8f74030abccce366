/**
 * The daily `repair` job (after `audit`) and `remora audit repair --date D [--dry-run]`
 * (docs/audit.md "Repair"): the problems of the day's committed audit, re-judged on live records
 * and on the nodes, healed with the rebalance move (audit.repair.ts).
 *
 *   inputs  the day's audit (its problem files: one per partition group, so every problem of an
 *           objectId is in one file)
 *   split   one task per problem file that has problems
 *   task    read the file's problems → Repairer (probe, judge, plan, move) → the lost objects
 *           under the attempt's prefix (a dry run writes nothing)
 *   commit  add the tasks' counts; lost objects are `fatal` events, so the run is `invalid`
 *
 * The CLI runs the same split and tasks in process (as `remora cruft plan|run`); no pipeline run
 * is recorded by it.
 */
import { z } from 'zod';
import { RemoraError } from '../../core/errors.js';
import { mergeReports, ReportBuilder, type RunReport } from '../../core/run-report.js';
import { outputType, requireStorage, upstreamOf, type JobDefinition } from '../../pipeline/job.js';
import { dayPartition } from '../../pipeline/partitions.js';
import { readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';
import { auditOutput } from './audit.job.js';
import { Repairer, type LostObject } from './audit.repair.js';
import { readProblemFile } from './audit.show.js';

/** Lost objects named in a task's output (all of them are in its `lost.ndjson`). */
const LOST_IN_OUTPUT = 1000;

export interface RepairTaskParams {
  /** One problems file of the day's audit (audit.job.ts). */
  problems: string;
  dryRun?: boolean;
}

interface TaskOutput {
  lost: number;
  left: number;
  lostObjects: LostObject[];
  /** Every lost object, one JSON a line (not written by a dry run). */
  lostFile?: string;
}

const lostSchema = z.object({
  objectId: z.string(),
  keys: z.array(z.object({ key: z.string(), shard: z.string() })),
  nodes: z.array(z.object({ node: z.string(), state: z.string() })),
});

export const repairOutput = outputType(
  'repair',
  z.object({
    dryRun: z.boolean(),
    auditRunId: z.number(),
    problems: z.number(),
    repaired: z.number(),
    presentAfterAll: z.number(),
    stale: z.number(),
    lost: z.number(),
    /** Bad copies left for the next run (no destination, a node down, a record changed). */
    left: z.number(),
    lostObjects: z.array(lostSchema),
    lostFiles: z.array(z.string()),
  }),
);
export type RepairOutput = ReturnType<typeof repairOutput.parse>;

export function repairJob(): JobDefinition<RepairTaskParams, TaskOutput, RepairOutput> {
  return {
    name: 'repair',
    description:
      "every problem of the day's audit re-checked on live records and nodes; bad copies replaced from a good one",
    partition: 'day',
    inputs: { upstream: ['audit'] },
    deadlineMs: 24 * 3_600_000,
    maxAttempts: 5,
    taskTimeoutMs: 6 * 3_600_000,
    output: repairOutput,
    split: (ctx) => {
      const audit = upstreamOf(ctx.upstream, auditOutput)[0];
      if (!audit || audit.output.problems === 0) return Promise.resolve([]);
      return Promise.resolve(
        audit.output.problemFiles.map((problems, i) => ({ key: `file=${i}`, params: { problems } })),
      );
    },
    runTask: async (ctx) => {
      const { problems: file, dryRun } = ctx.task.params;
      const { store, tier, nodes, clock, config } = ctx.services;
      const storage = ctx.services.storage;
      const r = ctx.report;
      const problems = await readProblemFile(store, file);
      await nodes.refresh();
      const repairer = new Repairer(
        {
          tier,
          storage,
          nodeUrl: (id) => nodes.url(id),
          refreshNodes: () => nodes.refresh(),
          clock,
          report: r,
          signal: ctx.signal,
        },
        { dryRun: dryRun === true, lagMs: config.picker.lagMs, maxFillPct: config.picker.maxUtilizationPct },
      );
      const done = r.phase(dryRun ? 'plan' : 'repair');
      await repairer.repairGroup(problems);
      done();
      const { lost, left } = repairer.finish();
      let lostFile: string | undefined;
      if (!dryRun && lost.length > 0) {
        lostFile = `${ctx.outputPrefix}lost.ndjson`;
        await store.put(lostFile, lost.map((l) => `${JSON.stringify(l)}\n`).join(''));
      }
      const output: TaskOutput = {
        lost: lost.length,
        left,
        lostObjects: lost.slice(0, LOST_IN_OUTPUT),
        ...(lostFile ? { lostFile } : {}),
      };
      return { report: r.finish(), output };
    },
    commit: (ctx) => {
      const c = ctx.report.counters as unknown as Record<string, number | undefined>;
      const audit = upstreamOf(ctx.upstream, auditOutput)[0];
      return Promise.resolve({
        output: {
          dryRun: ctx.tasks.some((t) => t.params.dryRun === true),
          auditRunId: audit?.runId ?? 0,
          problems: c.problemsRead ?? 0,
          repaired: c.copiesRepaired ?? 0,
          presentAfterAll: c.copiesPresentAfterAll ?? 0,
          stale: c.copiesStale ?? 0,
          lost: ctx.tasks.reduce((a, t) => a + t.output.lost, 0),
          left: ctx.tasks.reduce((a, t) => a + t.output.left, 0),
          lostObjects: ctx.tasks.flatMap((t) => t.output.lostObjects).slice(0, LOST_IN_OUTPUT),
          lostFiles: ctx.tasks.flatMap((t) => (t.output.lostFile ? [t.output.lostFile] : [])),
        },
      });
    },
  };
}

/** The original-style root of on-demand outputs (as CRUFT_ROOT): `/poseidon/stor/manta_repair`. */
export const REPAIR_ROOT = '/poseidon/stor/manta_repair';

export interface RepairDay {
  day: string;
  dryRun: boolean;
  auditRunId: number;
  tasks: number;
  report: RunReport;
  output: RepairOutput;
}

/**
 * `remora audit repair --date D [--dry-run]`: the repair job's split and tasks in process over
 * the day's committed audit (UsageError when there is none, or it is invalid).
 */
export async function repairDay(
  rt: PipelineRuntime,
  day: string,
  o: { dryRun: boolean; signal?: AbortSignal },
): Promise<RepairDay> {
  const { services } = rt;
  requireStorage(services); // the CLI fails at once (exit 2) where the daily job only warns
  const ptr = await readPointer(rt.control, 'audit', day);
  const run = `(\`remora pipeline run --date ${day}\`, or \`remora rerun audit --date ${day}\`)`;
  if (!ptr)
    throw new RemoraError(
      'UsageError',
      `no committed audit for ${day}: repair reads it; run it first ${run}`,
    );
  if (ptr.verdict === 'invalid')
    throw new RemoraError('UsageError', `the audit of ${day} is invalid: repair refuses it ${run}`);
  const job = repairJob();
  const partition = dayPartition(day);
  const upstream = [{ job: 'audit', partition, runId: ptr.runId, verdict: ptr.verdict, output: ptr.output }];
  const plan = { services, partition, runId: 0, upstream };
  const tasks = await job.split(plan);
  const at = new Date(services.clock.now()).toISOString().replace(/[:.]/g, '-');
  const prefix = `${REPAIR_ROOT}/runs/${day.replaceAll('-', '/')}/${at}/`;
  const results = [];
  for (const t of tasks) {
    if (o.signal?.aborted) throw new RemoraError('WorkerShutdown', `repair of ${day} interrupted`);
    const r = await job.runTask({
      ...plan,
      task: { key: t.key, params: { ...t.params!, dryRun: o.dryRun } },
      attemptId: 0,
      outputPrefix: `${prefix}${t.key}/`,
      signal: o.signal ?? new AbortController().signal,
      report: new ReportBuilder({ thresholds: rt.settings.thresholds }),
    });
    results.push({
      key: t.key,
      params: { ...t.params!, dryRun: o.dryRun },
      attemptId: 0,
      ...r,
      output: r.output!,
    });
  }
  const report = mergeReports(
    results.map((x) => x.report),
    { thresholds: rt.settings.thresholds },
  );
  const { output } = await job.commit({ ...plan, tasks: results, report, runPrefix: prefix });
  return { day, dryRun: o.dryRun, auditRunId: ptr.runId, tasks: tasks.length, report, output };
}
