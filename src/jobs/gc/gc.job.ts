/**
 * The daily `gc` job (docs/gc.md): one task per partition group of every index shard's
 * unpacked `manta` and `manta_delete_log` chunks.
 *
 *   task    scan the group (gc.scan.ts) → decide each delete record (gc.plan.ts, pure) → write
 *           the plan under the attempt's prefix → apply it idempotently (gc.apply.ts): re-check
 *           live metadata, tombstone copies, clean up delete records. With `dryRun` (`remora
 *           gc plan`, gc.dry-run.ts) the re-check runs and the rest is only counted.
 *   commit  add the tasks' counts and backlogs (gc.backlog.ts); the run's summary under its prefix
 *
 * The report says, for the day: delete records scanned; how many were redundant (a live
 * reference / a later record), zero-byte, waiting for grace, not provable yet, eligible,
 * malformed; re-check cancellations; copies and bytes tombstoned per node; copies left for the
 * next run (node unreachable or address unknown); delete records removed — each with examples.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { DAY_MS, dayOf } from '../../core/days.js';
import { RemoraError } from '../../core/errors.js';
import type { ReportBuilder } from '../../core/run-report.js';
import { groupChunks } from '../../dumps/manifest.js';
import { PartitionInputs, type PartitionGroup, type UnpackRef } from '../../dumps/partition-inputs.js';
import {
  outputType,
  requireStorage,
  upstreamOf,
  type JobDefinition,
  type TaskContext,
} from '../../pipeline/job.js';
import type { PipelineSettings } from '../../pipeline/settings.js';
import { ByteThrottle } from '../../storage/throttle.js';
import { unpackOutput } from '../unpack/unpack.job.js';
import { applyActions } from './gc.apply.js';
import { addBacklog, backlogSchema, emptyBacklog, type GcBacklog } from './gc.backlog.js';
import type { Verdict } from './gc.plan.js';
import { DEFAULT_GRACE_MS } from './gc.rules.js';
import { decideGroup, queryGroup, scanColumnsOf, type DecisionTally } from './gc.scan.js';

export interface GcJobOptions {
  graceMs: number;
  objectsPerSecondPerNode: number;
  bytesPerSecondPerNode: number;
}

/**
 * Defaults: mola's 2-day grace; 200 copies/s and 1 GiB/s per node. A MOVE is a rename within
 * the node, so the pace protects the node's metadata work and its users' requests, not a link.
 */
export const DEFAULT_GC_OPTIONS: GcJobOptions = {
  graceMs: DEFAULT_GRACE_MS,
  objectsPerSecondPerNode: 200,
  bytesPerSecondPerNode: 1024 ** 3,
};

/** The gc job's options from `pipeline.jobs.gc` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
export function gcOptionsFrom(s: Pick<PipelineSettings, 'jobs'>): GcJobOptions {
  const g = s.jobs.gc ?? {};
  return {
    graceMs: g.graceDays !== undefined ? g.graceDays * DAY_MS : DEFAULT_GC_OPTIONS.graceMs,
    objectsPerSecondPerNode: g.objectsPerSecondPerNode ?? DEFAULT_GC_OPTIONS.objectsPerSecondPerNode,
    bytesPerSecondPerNode: g.bytesPerSecondPerNode ?? DEFAULT_GC_OPTIONS.bytesPerSecondPerNode,
  };
}

/** Where `remora gc plan` writes the plans of its dry runs: `<root>/YYYY/MM/DD/<instant>/<task>/`. */
export const GC_DRY_RUN_ROOT = '/poseidon/stor/remora/gc-plans';

export interface GcTaskParams extends PartitionGroup {
  sources: UnpackRef[];
  /** The earliest snapshot instant (ms) of the index shards read (gc.plan.ts "not provable"). */
  earliestSnapshotMs: number;
  /** Plan only: decide and write the plan, move nothing (remora gc plan). */
  dryRun?: boolean;
}

const VERDICT_COUNTERS: Record<Verdict, string> = {
  malformed: 'malformed',
  'not-provable': 'notProvableYet',
  'live-reference': 'redundantLiveReference',
  superseded: 'redundantSuperseded',
  'zero-byte': 'zeroByte',
  'waiting-grace': 'waitingForGrace',
  eligible: 'eligible',
};

/** What the task returns (and the commit adds): its plan's path and its backlog. */
interface TaskOutput {
  plan: string;
  decisions: number;
  backlog?: GcBacklog;
  /** The instant this task decided at. */
  decidedAt?: number;
}

export const gcOutput = outputType(
  'gc',
  z.object({
    plans: z.array(z.string()),
    summary: z.string(),
    dryRun: z.boolean(),
    /** Absent in outputs written before it existed. */
    backlog: backlogSchema.optional(),
    /** The instant the tasks decided at (the grace is measured from it). */
    decidedAt: z.number().optional(),
    earliestSnapshotMs: z.number().optional(),
  }),
);
export type GcOutput = ReturnType<typeof gcOutput.parse>;

/**
 * One counter and one event per verdict, with the first few decisions of each as examples (the
 * report keeps DEFAULT_MAX_EXAMPLES).
 */
function countDecisions(report: ReportBuilder, tally: DecisionTally): void {
  for (const [verdict, v] of tally.verdicts) {
    report.count(VERDICT_COUNTERS[verdict], v.n);
    const [kind, severity] =
      verdict === 'malformed' ? ['malformed-delete-record', 'error' as const] : [verdict, 'info' as const];
    v.examples.forEach((d, i) =>
      report.event(
        kind,
        severity,
        {
          shard: d.record.shard,
          key: d.record.key,
          ...(d.detail ? { detail: d.detail } : {}),
          ...(d.tombstone.length ? { copies: d.tombstone.map((c) => c.node) } : {}),
        },
        i === v.examples.length - 1 ? v.n - i : 1,
      ),
    );
  }
}

/** Per node, objects and bytes per second, shared by every task of this process. */
type Throttles = Map<string, { objects: ByteThrottle; bytes: ByteThrottle }>;

/**
 * The scan and the decision of the task's group: DuckDB's query (gc.scan.ts queryGroup), then every
 * delete record decided and counted into the report (decideGroup). What the task does before it
 * writes its plan; `npm run bench` (gc) also times this step alone.
 */
export async function scanAndDecide(
  ctx: Pick<TaskContext<GcTaskParams>, 'task' | 'services' | 'report'>,
  o: Pick<GcJobOptions, 'graceMs'>,
): Promise<{ tally: DecisionTally; now: number }> {
  const { sources, earliestSnapshotMs, dryRun: _, ...group } = ctx.task.params;
  const { store, duck, clock } = ctx.services;
  const report = ctx.report;
  const inputs = await PartitionInputs.open(store, sources);
  const scanned = report.phase('scan');
  const queued = report.phase('queued');
  // The instant the task decides at: DuckDB compares every clean record with it.
  const now = clock.now();
  const opts = { now, graceMs: o.graceMs, earliestSnapshotMs };
  const rows = await inputs.withGroup(
    group,
    ['manta', 'manta_delete_log'],
    ({ files, chunkSchema }) =>
      duck.run(
        (conn) =>
          queryGroup(
            conn,
            { manta: files.manta!, deleteLog: files.manta_delete_log! },
            // The group's lowest CHUNK_SCHEMA decides which columns the scan reads.
            {
              ...opts,
              ...scanColumnsOf(
                chunkSchema,
                inputs.manifests.flatMap((m) => groupChunks(m, 'manta', group.group, group.groups)),
              ),
            },
          ),
        queued,
      ),
    report,
  );
  // Decided after the DuckDB turn is released: the next task's query runs meanwhile.
  scanned();
  report.count('recordsScanned', rows.deleteRecords);
  for (const m of rows.malformedLive) report.event('malformed-live-record', 'warning', m);

  const decided = report.phase('decide');
  const tally = decideGroup(rows, opts);
  countDecisions(report, tally);
  decided();
  return { tally, now };
}

async function runGroup(ctx: TaskContext<GcTaskParams>, o: GcJobOptions, throttles: Throttles) {
  const { dryRun } = ctx.task.params;
  const { store, clock, tier, nodes } = ctx.services;
  const report = ctx.report;
  const { tally, now } = await scanAndDecide(ctx, o);
  const actions = tally.actions;

  // The plan first, under this attempt's own prefix: what was decided is on record before any move.
  const plan = `${ctx.outputPrefix}plan.tsv`;
  const planned = report.phase('plan');
  const chunks = actions.planChunks();
  await store.put(plan, Readable.from(chunks));
  planned();

  const backlog = tally.backlog;
  const applied = report.phase(dryRun ? 'recheck' : 'apply');
  const moves = actions.hasMoves();
  if (moves && !dryRun) await nodes.refresh();
  const left = await applyActions(actions, {
    tier,
    storage: moves && !dryRun ? requireStorage(ctx.services) : noStorage,
    nodeUrl: (id) => nodes.url(id),
    throttle: (node) => {
      let t = throttles.get(node);
      if (!t) {
        // Real time, not the pipeline's clock: the pace is of real requests to a real node
        // (a simulated or sped-up clock would make the throttle meaningless).
        t = {
          objects: new ByteThrottle({ bytesPerSecond: o.objectsPerSecondPerNode }),
          bytes: new ByteThrottle({ bytesPerSecond: o.bytesPerSecondPerNode }),
        };
        throttles.set(node, t);
      }
      return t;
    },
    day: dayOf(clock.now()),
    report,
    signal: ctx.signal,
    ...(dryRun ? { dryRun } : {}),
  });
  applied();
  backlog.eligibleNotMoved = left;
  const output: TaskOutput = { plan, decisions: tally.decided, backlog, decidedAt: now };
  return { report: report.finish(), output };
}

/** Cleanup-only plans never move a copy: a worker without the credential can still apply them. */
const noStorage = {
  tombstone: () => Promise.reject(new RemoraError('Internal', 'no copy should move in a cleanup-only plan')),
};

export function gcJob(
  o: GcJobOptions = DEFAULT_GC_OPTIONS,
): JobDefinition<GcTaskParams, TaskOutput, GcOutput> {
  const throttles: Throttles = new Map();
  return {
    name: 'gc',
    description: 'garbage collection: unreferenced copies to tombstone, redundant delete records removed',
    partition: 'day',
    inputs: { upstream: ['unpack'] },
    deadlineMs: 12 * 3_600_000,
    maxAttempts: 5,
    taskTimeoutMs: 60 * 60_000,
    output: gcOutput,
    // The plans of `remora gc plan` dry runs are kept as long as run history.
    retain: async ({ services, before }) => {
      let removed = 0;
      for (const p of await services.store.list(`${GC_DRY_RUN_ROOT}/`)) {
        const m = /^(\d{4})\/(\d{2})\/(\d{2})\//.exec(p.slice(GC_DRY_RUN_ROOT.length + 1));
        if (m && `${m[1]}-${m[2]}-${m[3]}` < before) {
          await services.store.delete(p);
          removed++;
        }
      }
      return removed;
    },
    split: async (ctx) => {
      const index = new Set(ctx.services.config.shards.filter((s) => s.role === 'index').map((s) => s.name));
      const sources = upstreamOf(ctx.upstream, unpackOutput)
        .map((u) => u.output)
        .filter((s) => index.has(s.source));
      const inputs = await PartitionInputs.open(ctx.services.store, sources);
      if (inputs.manifests.length === 0) return [];
      const earliestSnapshotMs = Math.min(...inputs.manifests.map((m) => Date.parse(m.snapshotTime)));
      return inputs
        .tasks(['manta', 'manta_delete_log'])
        .map((t) => ({ key: t.key, params: { ...t.params, sources, earliestSnapshotMs } }));
    },
    runTask: (ctx) => runGroup(ctx, o, throttles),
    commit: async (ctx) => {
      const summary = `${ctx.runPrefix}summary.json`;
      const backlog = ctx.tasks.reduce(
        (b, t) => addBacklog(b, t.output.backlog ?? emptyBacklog()),
        emptyBacklog(),
      );
      const earliest = ctx.tasks[0]?.params.earliestSnapshotMs;
      const decided = ctx.tasks.map((t) => t.output.decidedAt).filter((x): x is number => x !== undefined);
      await ctx.services.store.put(
        summary,
        JSON.stringify({ day: ctx.partition.day, counters: ctx.report.counters, backlog }, null, 1),
      );
      return {
        output: {
          plans: ctx.tasks.map((t) => t.output.plan),
          summary,
          dryRun: ctx.tasks.some((t) => t.params.dryRun === true),
          backlog,
          decidedAt: decided.length > 0 ? Math.min(...decided) : ctx.services.clock.now(),
          ...(earliest !== undefined ? { earliestSnapshotMs: earliest } : {}),
        },
      };
    },
  };
}
