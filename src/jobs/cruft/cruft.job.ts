/**
 * The `cruft` job (docs/audit.md "Cruft"): files on the nodes that nothing references, found
 * from the day's unpacks (`manta`, `manta_delete_log` of every index shard) and listings (the
 * manifests job), re-checked against live metadata, moved to tombstone through GC's path.
 * On demand (`remora cruft plan|run`, cruft.service.ts), and daily only when configured
 * (`pipeline.jobs.cruft.enabled: true`): the original never ran it from cron
 * (mola docs/system-crons.md), and an operator should see a plan before the first run.
 *
 *   split   like with like (the same inputs as audit), the cutoff (earliest snapshot − margin),
 *           one task per partition group
 *   task    scan (cruft.scan.ts) → write the candidates under the attempt's prefix → re-check
 *           and move (cruft.apply.ts); with `dryRun` the re-check runs and nothing moves
 *   commit  the tasks' plan files and counts, and every node's files by class (cruft.rules.ts
 *           "accounted")
 */
import { z } from 'zod';
import { DAY_MS, dayOf } from '../../core/days.js';
import { PartitionInputs, type PartitionGroup, type UnpackRef } from '../../dumps/partition-inputs.js';
import { outputType, requireStorage, type JobDefinition, type TaskContext } from '../../pipeline/job.js';
import type { PipelineSettings } from '../../pipeline/settings.js';
import { ByteThrottle } from '../../storage/throttle.js';
import { dayInputs } from '../audit/audit.inputs.js';
import { DEFAULT_GC_OPTIONS, gcOptionsFrom } from '../gc/gc.job.js';
import { applyCruft } from './cruft.apply.js';
import { cruftCutoffSeconds, DEFAULT_CRUFT_MARGIN_DAYS } from './cruft.rules.js';
import { mergeNodeAccounts, scanCruft, type NodeAccount } from './cruft.scan.js';

export interface CruftJobOptions {
  marginMs: number;
  objectsPerSecondPerNode: number;
  bytesPerSecondPerNode: number;
  /** GC's grace (`pipeline.jobs.gc.graceDays`): when GC may take the files only delete records name. */
  gcGraceMs: number;
  /** Whether the daily GC runs here (`pipeline.jobs.gc.enabled`): else nothing takes those files. */
  gcEnabled: boolean;
}

/** Defaults: mola's 2-day margin; GC's pace of moves per node (the same MOVE). */
export const DEFAULT_CRUFT_OPTIONS: CruftJobOptions = {
  marginMs: DEFAULT_CRUFT_MARGIN_DAYS * DAY_MS,
  objectsPerSecondPerNode: DEFAULT_GC_OPTIONS.objectsPerSecondPerNode,
  bytesPerSecondPerNode: DEFAULT_GC_OPTIONS.bytesPerSecondPerNode,
  gcGraceMs: DEFAULT_GC_OPTIONS.graceMs,
  gcEnabled: true,
};

/** Cruft's options from `pipeline.jobs.cruft` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
export function cruftOptionsFrom(s: Pick<PipelineSettings, 'jobs'>): CruftJobOptions {
  const c = s.jobs.cruft ?? {};
  return {
    marginMs: c.marginDays !== undefined ? c.marginDays * DAY_MS : DEFAULT_CRUFT_OPTIONS.marginMs,
    objectsPerSecondPerNode: c.objectsPerSecondPerNode ?? DEFAULT_CRUFT_OPTIONS.objectsPerSecondPerNode,
    bytesPerSecondPerNode: c.bytesPerSecondPerNode ?? DEFAULT_CRUFT_OPTIONS.bytesPerSecondPerNode,
    gcGraceMs: gcOptionsFrom(s).graceMs,
    gcEnabled: s.jobs.gc?.enabled ?? true,
  };
}

export interface CruftTaskParams extends PartitionGroup {
  sources: UnpackRef[];
  listings: UnpackRef[];
  earliestSnapshotMs: number;
  cutoffSeconds: number;
  dryRun?: boolean;
}

interface TaskOutput {
  plan: string;
  candidates: number;
  confirmed: number;
  nodes: NodeAccount[];
}

const classCount = z.object({ files: z.number(), bytes: z.number() });
/** cruft.scan.ts NodeAccount, with GC's dates for the `gcPending` files (nodeAccountsWithGc). */
export const nodeAccountSchema = z.object({
  node: z.string(),
  listed: classCount,
  live: classCount.extend({ notNamedHere: z.number() }),
  gcPending: classCount.extend({
    notNamedHere: z.number(),
    deletedFirstMs: z.number().optional(),
    deletedLastMs: z.number().optional(),
    /** ISO instants: the first of these files, and all of them, are past GC's grace. */
    gcFrom: z.string().optional(),
    gcAllFrom: z.string().optional(),
  }),
  tooNew: classCount,
  cruft: classCount,
});
export type NodeAccountWithGc = z.infer<typeof nodeAccountSchema>;

/**
 * The merged accounts of every task, with the instants GC's grace lets it take the gcPending files
 * (none when GC is disabled: nothing takes them then).
 */
export function nodeAccountsWithGc(
  lists: readonly (readonly NodeAccount[])[],
  gcGraceMs: number,
  gcEnabled = true,
): NodeAccountWithGc[] {
  const iso = (ms: number | undefined) =>
    ms === undefined || !gcEnabled ? {} : { at: new Date(ms + gcGraceMs).toISOString() };
  return mergeNodeAccounts(lists).map((a) => {
    const first = iso(a.gcPending.deletedFirstMs).at;
    const all = iso(a.gcPending.deletedLastMs).at;
    return {
      ...a,
      gcPending: {
        ...a.gcPending,
        ...(first !== undefined ? { gcFrom: first } : {}),
        ...(all !== undefined ? { gcAllFrom: all } : {}),
      },
    };
  });
}

export const cruftOutput = outputType(
  'cruft',
  z.object({
    plans: z.array(z.string()),
    dryRun: z.boolean(),
    cutoffSeconds: z.number(),
    candidates: z.number(),
    confirmed: z.number(),
    /** Every listed file per node, by class (absent in outputs written before issue 13). */
    nodes: z.array(nodeAccountSchema).optional(),
  }),
);
export type CruftOutput = ReturnType<typeof cruftOutput.parse>;

type Throttles = Map<string, { objects: ByteThrottle; bytes: ByteThrottle }>;

async function runGroup(ctx: TaskContext<CruftTaskParams>, o: CruftJobOptions, throttles: Throttles) {
  const { sources, listings, cutoffSeconds, dryRun, group, groups } = ctx.task.params;
  const { store, duck, tier, nodes, clock } = ctx.services;
  const r = ctx.report;
  const inputs = await PartitionInputs.open(store, [...sources, ...listings]);
  const scanned = r.phase('scan');
  const scan = await inputs.withGroup(
    { group, groups },
    ['manta', 'manta_delete_log', 'mako'],
    ({ files }) =>
      duck.run((conn) =>
        scanCruft(
          conn,
          { manta: files.manta!, deleteLog: files.manta_delete_log!, mako: files.mako! },
          cutoffSeconds,
        ),
      ),
    r,
  );
  scanned();
  r.count('recordsScanned', scan.files)
    .count('filesOldEnough', scan.old)
    .count('candidates', scan.candidates.length);
  r.count('skippedTooNew', scan.files - scan.old);
  for (const a of scan.nodes)
    r.count('filesLive', a.live.files)
      .count('filesGcPending', a.gcPending.files)
      .count('filesUnreferencedTooNew', a.tooNew.files);
  // The plan first, under this attempt's prefix: what was found is on record before anything moves.
  const plan = `${ctx.outputPrefix}candidates.ndjson`;
  await store.put(plan, scan.candidates.map((c) => `${JSON.stringify(c)}\n`).join(''));
  const applied = r.phase(dryRun ? 'recheck' : 'apply');
  if (!dryRun && scan.candidates.length > 0) await nodes.refresh();
  const confirmed = await applyCruft(scan.candidates, {
    tier,
    storage: dryRun
      ? { tombstone: () => Promise.reject(new Error('a plan moves nothing')) }
      : requireStorage(ctx.services),
    nodeUrl: (id) => nodes.url(id),
    throttle: (node) => {
      let t = throttles.get(node);
      if (!t)
        throttles.set(
          node,
          (t = {
            objects: new ByteThrottle({ bytesPerSecond: o.objectsPerSecondPerNode }),
            bytes: new ByteThrottle({ bytesPerSecond: o.bytesPerSecondPerNode }),
          }),
        );
      return t;
    },
    day: dayOf(clock.now()),
    report: r,
    signal: ctx.signal,
    ...(dryRun ? { dryRun } : {}),
  });
  for (const c of confirmed.slice(0, 5)) r.event('cruft', 'info', c);
  applied();
  const output: TaskOutput = {
    plan,
    candidates: scan.candidates.length,
    confirmed: confirmed.length,
    nodes: scan.nodes,
  };
  return { report: r.finish(), output };
}

export function cruftJob(
  o: CruftJobOptions = DEFAULT_CRUFT_OPTIONS,
): JobDefinition<CruftTaskParams, TaskOutput, CruftOutput> {
  const throttles: Throttles = new Map();
  return {
    name: 'cruft',
    description: 'files on the nodes no record references, re-checked, moved to tombstone',
    partition: 'day',
    inputs: { upstream: ['unpack', 'manifests'] },
    deadlineMs: 24 * 3_600_000,
    maxAttempts: 3,
    taskTimeoutMs: 6 * 3_600_000,
    output: cruftOutput,
    split: async (ctx) => {
      const { sources, listings, times, all } = await dayInputs(ctx);
      if (times.snapshots.length === 0 || listings.length === 0) return [];
      const earliestSnapshotMs = Math.min(...times.snapshots.map((m) => Date.parse(m.snapshotTime)));
      const cutoffSeconds = cruftCutoffSeconds(earliestSnapshotMs, o.marginMs);
      return all.tasks(['manta', 'manta_delete_log', 'mako']).map((t) => ({
        key: t.key,
        params: { ...t.params, sources, listings, earliestSnapshotMs, cutoffSeconds },
      }));
    },
    runTask: (ctx) => runGroup(ctx, o, throttles),
    commit: (ctx) =>
      Promise.resolve({
        output: {
          plans: ctx.tasks.map((t) => t.output.plan),
          dryRun: ctx.tasks.some((t) => t.params.dryRun === true),
          cutoffSeconds: ctx.tasks[0]?.params.cutoffSeconds ?? 0,
          candidates: ctx.tasks.reduce((a, t) => a + t.output.candidates, 0),
          confirmed: ctx.tasks.reduce((a, t) => a + t.output.confirmed, 0),
          nodes: nodeAccountsWithGc(
            ctx.tasks.map((t) => t.output.nodes ?? []),
            o.gcGraceMs,
          ),
        },
      }),
  };
}
