/**
 * The snapshot stage as a pipeline job (src/dumps/snapshot.ts does the work; docs/dumps.md).
 *
 *   snapshot (day-shard)  today: take a consistent snapshot now; a past day: use the newest
 *                         dump already stored for that day (manatee's, or an earlier run's) —
 *                         the past cannot be snapshotted, so none is a fatal event (invalid)
 *
 * Side by side (`pipeline.outputPrefix`): today's dump is written under the prefix; a past day
 * uses Remora's own dump under the prefix, else the original's (read, never written).
 */
import { z } from 'zod';
import { dayOf } from '../../core/days.js';
import { publishedPath } from '../../core/published-path.js';
import { BACKUPS_ROOT } from '../../dumps/layout.js';
import { snapshotShard } from '../../dumps/snapshot.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import { dayHasBegun, outputType, type JobDefinition } from '../../pipeline/job.js';

export const snapshotOutput = outputType(
  'snapshot',
  z
    .object({
      shard: z.string(),
      path: z.string(),
      snapshotTime: z.string(),
      /** Rows in the dump (every table), when this run took it: sizes the unpack's partitions. */
      rows: z.number().int().nonnegative().optional(),
    })
    // A past day with no dump commits nothing (the run is invalid and downstream blocks).
    .optional(),
);
export type SnapshotOutput = NonNullable<ReturnType<typeof snapshotOutput.parse>>;

export interface SnapshotJobOptions {
  /** `pipeline.outputPrefix`: side by side, Remora's dumps are stored under it (src/core/published-path.ts). */
  outputPrefix?: string;
}

/** The newest dump in `dir` (names sort by instant), if any. */
async function newestDump(store: ObjectStore, dir: string): Promise<string | undefined> {
  return (await store.list(dir)).filter((p) => /\/moray-[^/]*\.gz$/.test(p)).at(-1);
}

export function snapshotJobWith(
  o: SnapshotJobOptions,
): JobDefinition<unknown, SnapshotOutput | undefined, SnapshotOutput | undefined> {
  return {
    name: 'snapshot',
    description: 'a consistent snapshot of each shard, as a gzipped plain-format dump',
    partition: 'day-shard',
    inputs: {
      external: [dayHasBegun],
    },
    deadlineMs: 2 * 3_600_000,
    maxAttempts: 3,
    output: snapshotOutput,
    split: () => Promise.resolve([{ key: 'dump' }]),
    runTask: async (ctx) => {
      const { tier, store, clock } = ctx.services;
      const shard = ctx.partition.shard!;
      let out: SnapshotOutput | undefined;
      if (ctx.partition.day === dayOf(clock.now())) {
        const r = await snapshotShard(tier.shard(shard), store, { outputPrefix: o.outputPrefix });
        out = { shard, path: r.path, snapshotTime: r.snapshotTime.toISOString(), rows: r.rows };
        ctx.report.count('bytesWritten', r.bytes).count('recordsScanned', r.rows);
      } else {
        const dir = `${BACKUPS_ROOT}/${shard}/${ctx.partition.day.replaceAll('-', '/')}`;
        const ours = publishedPath(o.outputPrefix, dir);
        const newest =
          (await newestDump(store, `${ours}/`)) ??
          (ours === dir ? undefined : await newestDump(store, `${dir}/`));
        if (newest) {
          const head = await store.head(newest);
          out = { shard, path: newest, snapshotTime: head?.meta['m-snapshot-time'] ?? ctx.partition.day };
        } else {
          const looked = ours === dir ? `${dir}/` : `${ours}/ and ${dir}/`;
          ctx.report.event('no-dump-for-past-day', 'fatal', { shard, looked });
        }
      }
      return { report: ctx.report.finish(), output: out };
    },
    commit: (ctx) => Promise.resolve({ output: ctx.tasks[0]?.output }),
  };
}

/** The snapshot job writing the original's paths (no output prefix). */
export const snapshotJob = snapshotJobWith({});
