/**
 * The snapshot and unpack stages as pipeline jobs. They wrap src/dumps (snapshotShard,
 * unpackDump) and add only what the executor needs: partition, inputs, report translation.
 *
 *   snapshot (day-shard)  today: take a consistent snapshot now; a past day: use the newest
 *                         dump already stored for that day (manatee's, or an earlier run's) —
 *                         the past cannot be snapshotted, so none is a fatal event (invalid)
 *   unpack   (day-shard)  the snapshot's dump → Parquet chunks partitioned by objectId, and the
 *                         source manifest (unpack's own commit pointer)
 */
import { RemoraError } from '../core/errors.js';
import { BACKUPS_ROOT } from '../dumps/layout.js';
import { snapshotShard } from '../dumps/snapshot.js';
import { unpackDump } from '../dumps/unpack.js';
import type { UnpackOutput } from './storage-metering/storage-metering.job.js';
import type { JobDefinition } from '../pipeline/job.js';
import { dayOf, dayStartMs } from '../core/days.js';

export interface SnapshotOutput {
  shard: string;
  path: string;
  snapshotTime: string;
  /** Rows in the dump (every table), when this run took it: sizes the unpack's partitions. */
  rows?: number;
}

const snapshot: JobDefinition = {
  name: 'snapshot',
  description: 'a consistent snapshot of each shard, as a gzipped plain-format dump',
  partition: 'day-shard',
  inputs: {
    external: [
      {
        name: 'the day has begun',
        exists: ({ services, partition }) =>
          Promise.resolve({
            ready: services.clock.now() >= dayStartMs(partition.day),
            detail: partition.day,
          }),
      },
    ],
  },
  deadlineMs: 2 * 3_600_000,
  maxAttempts: 3,
  split: () => Promise.resolve([{ key: 'dump' }]),
  runTask: async (ctx) => {
    const { tier, store, clock } = ctx.services;
    const shard = ctx.partition.shard!;
    let out: SnapshotOutput | undefined;
    if (ctx.partition.day === dayOf(clock.now())) {
      const r = await snapshotShard(tier.shard(shard), store);
      out = { shard, path: r.path, snapshotTime: r.snapshotTime.toISOString(), rows: r.rows };
      ctx.report.count('bytesWritten', r.bytes).count('recordsScanned', r.rows);
    } else {
      const dir = `${BACKUPS_ROOT}/${shard}/${ctx.partition.day.replaceAll('-', '/')}/`;
      const dumps = (await store.list(dir)).filter((p) => /\/moray-[^/]*\.gz$/.test(p));
      const newest = dumps.at(-1);
      if (newest) {
        const head = await store.head(newest);
        out = { shard, path: newest, snapshotTime: head?.meta['m-snapshot-time'] ?? ctx.partition.day };
      } else {
        ctx.report.event('no-dump-for-past-day', 'fatal', { shard, looked: dir });
      }
    }
    return { report: ctx.report.finish(), output: out };
  },
  commit: (ctx) => Promise.resolve({ output: ctx.tasks[0]?.output }),
};

interface UnpackJobOptions {
  partitions: number | 'auto';
  rowsPerPartition?: number;
}

function unpack(o: UnpackJobOptions): JobDefinition {
  return {
    name: 'unpack',
    description: 'dump → Parquet chunks partitioned by objectId, with a manifest',
    partition: 'day-shard',
    inputs: { upstream: ['snapshot'] },
    deadlineMs: 4 * 3_600_000,
    maxAttempts: 3,
    split: () => Promise.resolve([{ key: 'unpack' }]),
    runTask: async (ctx) => {
      const snap = ctx.upstream[0]?.output as SnapshotOutput | undefined;
      if (!snap) throw new RemoraError('Internal', `unpack ${ctx.partition.key}: no snapshot output`);
      const r = await unpackDump(ctx.services.store, [snap.path], {
        shard: snap.shard,
        partitions: o.partitions,
        ...(snap.rows !== undefined ? { expectedRows: snap.rows } : {}),
        ...(o.rowsPerPartition !== undefined ? { rowsPerPartition: o.rowsPerPartition } : {}),
      });
      ctx.report.absorb(r.manifest.report);
      for (const t of Object.values(r.manifest.tables)) {
        ctx.report.count('recordsScanned', t.rows).count(
          'bytesWritten',
          t.chunks.reduce((a, c) => a + c.bytes, 0),
        );
      }
      const output: UnpackOutput = {
        source: r.manifest.source,
        day: r.manifest.day,
        runId: r.manifest.runId,
        partitions: r.manifest.partitions,
        manifestPath: r.manifestPath,
      };
      return { report: ctx.report.finish(), output };
    },
    commit: (ctx) => Promise.resolve({ output: ctx.tasks[0]?.output }),
  };
}

export function dumpJobs(o: Partial<UnpackJobOptions> = {}): JobDefinition[] {
  return [snapshot, unpack({ partitions: 'auto', ...o })];
}
