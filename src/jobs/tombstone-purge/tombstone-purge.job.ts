/**
 * The `tombstone-purge` job (docs/gc.md "Tombstone purge"): one run per storage node per day,
 * removing the node's tombstone directories older than the retention (mako/v1 bin/mako_gc.sh's
 * last step, there a cron on every node; here a run with a report). No upstream: its input is
 * "the day has begun" (the run's day is the reference, tombstone-purge.rules.ts).
 *
 *   task    list the node's tombstone days (GET /tombstone) → plan (pure) → write the plan under
 *           the attempt's prefix → purge each day (DELETE /tombstone/<day>), idempotently: a day
 *           already gone (an earlier attempt) is counted as already done
 *   commit  the task's output: what was freed, what is kept, the next purge day
 *
 * A node that does not answer fails its run with StorageNodeUnreachable (retryable: the engine
 * retries it with backoff, then the run is `failed`); the other nodes' runs are separate runs and
 * go on. Whatever a failed day left is removed by the next day's run (everything older than its
 * cutoff). A configured node with no address (no `url`, no heartbeat record) is a warning, not
 * a failure: nothing can be purged there and nothing is wrong with the purge.
 */
import { z } from 'zod';
import { RemoraError } from '../../core/errors.js';
import { dayHasBegun, outputType, requireStorage, type JobDefinition } from '../../pipeline/job.js';
import type { PipelineSettings } from '../../pipeline/settings.js';
import { planPurge } from './tombstone-purge.plan.js';
import { DEFAULT_TOMBSTONE_RETENTION_DAYS } from './tombstone-purge.rules.js';

export interface TombstonePurgeOptions {
  retentionDays: number;
  /** Tries per run before it fails (a node down for the whole backoff is reported, not hidden). */
  maxAttempts: number;
}

export const DEFAULT_PURGE_OPTIONS: TombstonePurgeOptions = {
  retentionDays: DEFAULT_TOMBSTONE_RETENTION_DAYS,
  maxAttempts: 3,
};

/** The purge's options from `pipeline.jobs.tombstone-purge` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
export function purgeOptionsFrom(s: Pick<PipelineSettings, 'jobs'>): TombstonePurgeOptions {
  return {
    ...DEFAULT_PURGE_OPTIONS,
    retentionDays: s.jobs['tombstone-purge']?.retentionDays ?? DEFAULT_PURGE_OPTIONS.retentionDays,
  };
}

const dayUsage = z.object({ day: z.string(), files: z.number(), bytes: z.number() });

export const tombstonePurgeOutput = outputType(
  'tombstone-purge',
  z.object({
    node: z.string(),
    cutoff: z.string(),
    retentionDays: z.number(),
    /** False when the node's address is unknown (nothing was listed). */
    reached: z.boolean(),
    purged: z.array(dayUsage.extend({ existed: z.boolean() })),
    kept: z.array(dayUsage),
    nextPurgeDay: z.string().optional(),
  }),
);
export type TombstonePurgeOutput = ReturnType<typeof tombstonePurgeOutput.parse>;

export function tombstonePurgeJob(
  o: TombstonePurgeOptions = DEFAULT_PURGE_OPTIONS,
): JobDefinition<unknown, TombstonePurgeOutput, TombstonePurgeOutput> {
  return {
    name: 'tombstone-purge',
    description: `per storage node: remove tombstone directories older than ${o.retentionDays} days`,
    partition: 'day-node',
    inputs: {
      external: [dayHasBegun],
    },
    deadlineMs: 6 * 3_600_000,
    maxAttempts: o.maxAttempts,
    taskTimeoutMs: 30 * 60_000,
    output: tombstonePurgeOutput,
    split: () => Promise.resolve([{ key: 'purge' }]),
    runTask: async (ctx) => {
      const node = ctx.partition.node!;
      const day = ctx.partition.day;
      const { nodes, store } = ctx.services;
      const r = ctx.report;
      await nodes.refresh();
      const url = nodes.url(node);
      if (!url) {
        r.event('node-address-unknown', 'warning', {
          node,
          why: 'configured, but with no url and no heartbeat record: nothing could be listed',
        });
        const plan = planPurge([], day, o.retentionDays);
        return {
          report: r.finish(),
          output: {
            node,
            cutoff: plan.cutoff,
            retentionDays: o.retentionDays,
            reached: false,
            purged: [],
            kept: [],
          },
        };
      }
      const storage = requireStorage(ctx.services);
      const listed = r.phase('list');
      const days = await storage.tombstoneDays(url);
      listed();
      const plan = planPurge(days, day, o.retentionDays);
      r.count('recordsScanned', days.length).count('tombstoneDaysKept', plan.keep.length);
      await store.put(`${ctx.outputPrefix}plan.json`, JSON.stringify({ node, ...plan }, null, 1));

      const purging = r.phase('purge');
      const purged: TombstonePurgeOutput['purged'] = [];
      for (const d of plan.purge) {
        if (ctx.signal.aborted) break;
        const freed = await storage.purgeTombstoneDay(url, d.day);
        purged.push(freed);
        if (freed.existed) {
          r.count('processed').count('tombstoneDaysPurged').count('filesFreed', freed.files);
          r.count('bytesFreed', freed.bytes).event('tombstone-day-purged', 'info', freed);
        } else
          r.count('tombstoneDaysAlreadyGone').event('tombstone-day-already-gone', 'info', { day: d.day });
      }
      purging();
      return {
        report: r.finish(),
        output: {
          node,
          cutoff: plan.cutoff,
          retentionDays: o.retentionDays,
          reached: true,
          purged,
          kept: plan.keep,
          ...(plan.nextPurgeDay ? { nextPurgeDay: plan.nextPurgeDay } : {}),
        },
      };
    },
    commit: (ctx) => {
      const out = ctx.tasks[0]?.output;
      if (!out)
        throw new RemoraError(
          'Internal',
          `tombstone-purge ${ctx.partition.key}: the task returned no output`,
        );
      return Promise.resolve({ output: out });
    },
  };
}
