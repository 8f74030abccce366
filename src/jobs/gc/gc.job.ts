/**
 * The daily `gc` job (docs/gc.md): one task per partition group of every index shard's
 * unpacked `manta` and `manta_delete_log` chunks.
 *
 *   task    scan the group (gc.scan.ts) → decide each delete record (gc.plan.ts, pure) → write
 *           the plan under the attempt's prefix → apply it idempotently (gc.apply.ts): re-check
 *           live metadata, tombstone copies, clean up delete records
 *   commit  add the tasks' counts; the run's summary under its prefix
 *
 * The report says, for the day: delete records scanned; how many were redundant (a live
 * reference / a later record), zero-byte, waiting for grace, not provable yet, eligible,
 * malformed; re-check cancellations; copies and bytes tombstoned per node; copies left for the
 * next run (node unreachable or address unknown); delete records removed — each with examples.
 */
import { z } from 'zod';
import { RemoraError } from '../../core/errors.js';
import type { ReportBuilder } from '../../core/run-report.js';
import { PartitionInputs, type PartitionGroup, type UnpackRef } from '../../dumps/partition-inputs.js';
import {
  outputType,
  requireStorage,
  upstreamOf,
  type JobDefinition,
  type TaskContext,
} from '../../pipeline/job.js';
import { ByteThrottle } from '../../storage/throttle.js';
import { unpackOutput } from '../unpack/unpack.job.js';
import { applyDecisions } from './gc.apply.js';
import { decideObject, type RecordDecision, type Verdict } from './gc.plan.js';
import { DEFAULT_GRACE_MS } from './gc.rules.js';
import { scanGroup } from './gc.scan.js';

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

interface TaskParams extends PartitionGroup {
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

/** What the task returns (and the commit adds): its plan's path. */
interface TaskOutput {
  plan: string;
  decisions: number;
}

export const gcOutput = outputType(
  'gc',
  z.object({ plans: z.array(z.string()), summary: z.string(), dryRun: z.boolean() }),
);
type GcOutput = ReturnType<typeof gcOutput.parse>;

function countDecisions(report: ReportBuilder, decisions: readonly RecordDecision[]): void {
  for (const d of decisions) {
    report.count(VERDICT_COUNTERS[d.verdict]);
    const example = {
      shard: d.record.shard,
      key: d.record.key,
      ...(d.detail ? { detail: d.detail } : {}),
      ...(d.tombstone.length ? { copies: d.tombstone.map((c) => c.node) } : {}),
    };
    if (d.verdict === 'malformed') report.event('malformed-delete-record', 'error', example);
    else report.event(d.verdict, 'info', example);
  }
}

async function runGroup(ctx: TaskContext<TaskParams>, o: GcJobOptions) {
  const { sources, earliestSnapshotMs, dryRun, ...group } = ctx.task.params;
  const { store, duck, clock, tier, nodes } = ctx.services;
  const report = ctx.report;
  const inputs = await PartitionInputs.open(store, sources);
  const scanned = report.phase('scan');
  const scan = await inputs.withGroup(
    group,
    ['manta', 'manta_delete_log'],
    ({ files }) =>
      duck.run((conn) => scanGroup(conn, { manta: files.manta!, deleteLog: files.manta_delete_log! })),
    report,
  );
  scanned();
  report.count('recordsScanned', scan.deleteRecords);
  for (const m of scan.malformedLive) report.event('malformed-live-record', 'warning', m);

  const decided = report.phase('decide');
  const now = clock.now();
  const decisions = scan.objects.flatMap((obj) =>
    decideObject(obj, { now, graceMs: o.graceMs, earliestSnapshotMs }),
  );
  countDecisions(report, decisions);
  decided();

  // The plan first, under this attempt's own prefix: what was decided is on record before any move.
  const plan = `${ctx.outputPrefix}plan.ndjson`;
  const body = decisions
    .filter((d) => d.cleanup)
    .map((d) =>
      JSON.stringify({
        verdict: d.verdict,
        shard: d.record.shard,
        key: d.record.key,
        etag: d.record.etag,
        tombstone: d.tombstone,
      }),
    )
    .join('\n');
  await store.put(plan, body === '' ? '' : `${body}\n`);

  if (!dryRun) {
    const applied = report.phase('apply');
    const throttles = new Map<string, { objects: ByteThrottle; bytes: ByteThrottle }>();
    await nodes.refresh();
    await applyDecisions(decisions, {
      tier,
      storage: decisions.some((d) => d.tombstone.length > 0) ? requireStorage(ctx.services) : noStorage,
      nodeUrl: (id) => nodes.url(id),
      throttle: (node) => {
        let t = throttles.get(node);
        if (!t) {
          t = {
            objects: new ByteThrottle({ bytesPerSecond: o.objectsPerSecondPerNode, clock }),
            bytes: new ByteThrottle({ bytesPerSecond: o.bytesPerSecondPerNode, clock }),
          };
          throttles.set(node, t);
        }
        return t;
      },
      day: ctx.partition.day,
      report,
      signal: ctx.signal,
    });
    applied();
  }
  const output: TaskOutput = { plan, decisions: decisions.length };
  return { report: report.finish(), output };
}

/** Cleanup-only plans never move a copy: a worker without the credential can still apply them. */
const noStorage = {
  tombstone: () => Promise.reject(new RemoraError('Internal', 'no copy should move in a cleanup-only plan')),
};

export function gcJob(o: GcJobOptions = DEFAULT_GC_OPTIONS): JobDefinition<TaskParams, TaskOutput, GcOutput> {
  return {
    name: 'gc',
    description: 'garbage collection: unreferenced copies to tombstone, redundant delete records removed',
    partition: 'day',
    inputs: { upstream: ['unpack'] },
    deadlineMs: 12 * 3_600_000,
    maxAttempts: 5,
    taskTimeoutMs: 60 * 60_000,
    output: gcOutput,
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
    runTask: (ctx) => runGroup(ctx, o),
    commit: async (ctx) => {
      const summary = `${ctx.runPrefix}summary.json`;
      await ctx.services.store.put(
        summary,
        JSON.stringify({ day: ctx.partition.day, counters: ctx.report.counters }, null, 1),
      );
      return {
        output: {
          plans: ctx.tasks.map((t) => t.output.plan),
          summary,
          dryRun: ctx.tasks.some((t) => t.params.dryRun === true),
        },
      };
    },
  };
}
