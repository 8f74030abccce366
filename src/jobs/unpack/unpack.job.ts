/**
 * The unpack stage as a pipeline job (src/dumps/unpack.ts does the work; docs/dumps.md): the
 * snapshot's dump → Parquet chunks partitioned by objectId, and the source manifest (unpack's
 * own commit pointer). Its output is an UnpackRef: jobs that read chunks open them with
 * PartitionInputs (src/dumps/partition-inputs.ts).
 *
 *   task    unpack, with the manifest staged beside the attempt's chunks
 *   commit  the staged manifest becomes the source's manifest (src/dumps/source-commit.ts): a
 *           lost attempt that keeps running never writes it (docs/pipeline.md)
 */
import { RemoraError } from '../../core/errors.js';
import type { ReportThresholds } from '../../core/run-report.js';
import { unpackRefOf, unpackRefSchema, type UnpackRef } from '../../dumps/partition-inputs.js';
import { UNPACKED_ROOT } from '../../dumps/layout.js';
import { refusedUnpackReport, unpackDump, type UnpackResult } from '../../dumps/unpack.js';
import { commitStagedManifest, discardStagedManifest } from '../../dumps/source-commit.js';
import { outputType, upstreamOf, type JobDefinition } from '../../pipeline/job.js';
import { snapshotOutput } from '../snapshot/snapshot.job.js';

export const unpackOutput = outputType('unpack', unpackRefSchema);

export interface UnpackJobOptions {
  partitions: number | 'auto';
  rowsPerPartition?: number;
  /** The malformed share that makes a dump invalid; also the run's (default: DEFAULT_THRESHOLDS). */
  thresholds?: ReportThresholds;
}

export function unpackJob(o: UnpackJobOptions): JobDefinition<unknown, UnpackRef, UnpackRef> {
  return {
    name: 'unpack',
    description: 'dump → Parquet chunks partitioned by objectId, with a manifest',
    partition: 'day-shard',
    inputs: { upstream: ['snapshot'] },
    deadlineMs: 4 * 3_600_000,
    maxAttempts: 3,
    ...(o.thresholds ? { thresholds: o.thresholds } : {}),
    output: unpackOutput,
    // Unpacked chunks are derived data: kept as long as run history (rebalance plans read the
    // newest unpack of the last SNAPSHOT_LOOKBACK_DAYS, well inside it). Dumps are not removed.
    retain: async ({ services, before }) => {
      let removed = 0;
      for (const p of await services.store.list(`${UNPACKED_ROOT}/`)) {
        const m = /^(\d{4})\/(\d{2})\/(\d{2})\//.exec(p.slice(UNPACKED_ROOT.length + 1));
        if (m && `${m[1]}-${m[2]}-${m[3]}` < before) {
          await services.store.delete(p);
          removed++;
        }
      }
      return removed;
    },
    split: () => Promise.resolve([{ key: 'unpack' }]),
    runTask: async (ctx) => {
      const snap = upstreamOf(ctx.upstream, snapshotOutput)[0]?.output;
      if (!snap) throw new RemoraError('Internal', `unpack ${ctx.partition.key}: no snapshot output`);
      let r: UnpackResult;
      try {
        r = await unpackDump(ctx.services.store, [snap.path], {
          shard: snap.shard,
          partitions: o.partitions,
          ...(snap.rows !== undefined ? { expectedRows: snap.rows } : {}),
          ...(o.rowsPerPartition !== undefined ? { rowsPerPartition: o.rowsPerPartition } : {}),
          ...(o.thresholds ? { thresholds: o.thresholds } : {}),
          signal: ctx.signal,
          // Staged: the run's commit switches the manifest (src/dumps/source-commit.ts).
          commit: false,
        });
      } catch (err) {
        // An invalid dump: unpack committed nothing (the shard's previous unpack of the day, if
        // any, stays). The run ends invalid with the dump's report, so downstream blocks —
        // retrying would read the same bytes.
        const refused = refusedUnpackReport(err);
        if (!refused) throw err;
        ctx.report.absorb(refused);
        return { report: ctx.report.finish() };
      }
      // The unpack's report counts recordsScanned (rows kept and rows dropped) and malformed.
      ctx.report.absorb(r.manifest.report);
      for (const t of Object.values(r.manifest.tables))
        ctx.report.count(
          'bytesWritten',
          t.chunks.reduce((a, c) => a + c.bytes, 0),
        );
      const output: UnpackRef = unpackRefOf(r);
      return { report: ctx.report.finish(), output };
    },
    // A fenced attempt's staged chunks and manifest: never committed, so removed.
    discard: async (ctx, out) => {
      if (out) await discardStagedManifest(ctx.services.store, out);
    },
    commit: async (ctx) => {
      const out = ctx.tasks[0]?.output;
      if (!out) throw new RemoraError('Internal', `unpack ${ctx.partition.key}: the task returned no output`);
      await commitStagedManifest(ctx.services.store, out);
      return { output: out };
    },
  };
}
