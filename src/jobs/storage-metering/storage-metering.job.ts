/**
 * The storage-metering job: one task per partition of the unpacked `manta` chunks (partial
 * sums per owner and namespace, written under the attempt's own prefix), then a commit that
 * merges the partial sums, writes the original JSON shapes and delivers per-account reports.
 *
 *   operator  /poseidon/stor/usage/storage/YYYY/MM/DD/00/h00.json   {"owner","storage":{ns:{…}}} per line
 *   account   /<login>/reports/usage/storage/YYYY/MM/DD/00/h00.json {"storage":{…},"date":…}
 *             /<login>/reports/usage/storage/latest                 (a copy; the original snaplinked it)
 *
 * Only accounts with `reports: true` get the per-account files (the original's
 * DELIVER_UNAPPROVED_REPORTS=false); everyone is counted (COUNT_UNAPPROVED_USERS=true).
 * Per-account reports older than the retention window are removed (RFD 16 problem 7).
 */
import { addDays } from '../../core/days.js';
import { publishedPath } from '../../core/published-path.js';
import type { Namespace } from '../../core/ids.js';
import { PartitionInputs, type PartitionGroup, type UnpackRef } from '../../dumps/partition-inputs.js';
import { readObjectText } from '../../objectstore/object-store.js';
import {
  outputType,
  upstreamOf,
  type CommitContext,
  type JobDefinition,
  type TaskContext,
} from '../../pipeline/job.js';
import { ReportBuilder } from '../../core/run-report.js';
import { unpackOutput } from '../unpack/unpack.job.js';
import { z } from 'zod';
import { scanPartition } from './storage-metering.scan.js';
import { deliverToAccounts, jsonLines } from '../usage-delivery/usage-delivery.js';
import {
  mergeUsage,
  operatorReportPath,
  storageRecord,
  userReportDir,
  userReportPath,
  type Usage,
  type UsageRow,
} from './storage-metering.rules.js';

/** What a storage-metering run commits: the run's operator file, where it was published, how many owners. */
export const storageMeteringOutput = outputType(
  'storage-metering',
  z.object({ path: z.string(), published: z.string(), accounts: z.number().int().nonnegative() }),
);
type StorageMeteringOutput = ReturnType<typeof storageMeteringOutput.parse>;

export interface StorageMeteringOptions {
  /** Days of per-account reports kept. */
  reportRetentionDays: number;
  /** `pipeline.outputPrefix`: side by side with the original, published files go under it (src/core/published-path.ts). */
  outputPrefix?: string;
}

interface TaskParams extends PartitionGroup {
  /** The committed unpacks the run started from (every shard). */
  sources: UnpackRef[];
}

interface TaskOutput {
  path: string;
  rows: number;
}

async function runPartition(ctx: TaskContext<TaskParams>) {
  const { sources, ...group } = ctx.task.params;
  const store = ctx.services.store;
  const inputs = ctx.report.phase('inputs');
  const partitions = await PartitionInputs.open(store, sources);
  // Local files for DuckDB: the store's own, or verified copies from the front door.
  const partial = await partitions.withGroup(
    group,
    ['manta'],
    async ({ files, chunkSchema }) => {
      inputs();
      const done = ctx.report.phase('scan');
      // Chunks before CHUNK_SCHEMA 2 have no `copies` column: the scan falls back to len(sharks).
      const p = await scanPartition(ctx.services.duck, files.manta!, ctx.report, {
        copiesColumn: chunkSchema >= 2,
      });
      done();
      return p;
    },
    ctx.report,
  );
  const written = ctx.report.phase('write');
  const path = `${ctx.outputPrefix}partial.ndjson`;
  await store.put(path, partial.body);
  ctx.report.count('bytesWritten', Buffer.byteLength(partial.body));
  written();
  return { report: ctx.report.finish(), output: { path, rows: partial.lines } };
}

/** A partial file's lines, parsed as one JSON array (a parse per line cost twice as much at 3M records). */
export function parsePartial(text: string): UsageRow[] {
  const lines = text.trim();
  if (lines === '') return [];
  return (JSON.parse(`[${lines.replaceAll('\n', ',')}]`) as Record<string, string>[]).map((r) => ({
    owner: r.owner!,
    namespace: r.namespace as Namespace,
    directories: BigInt(r.directories!),
    keys: BigInt(r.keys!),
    objects: BigInt(r.objects!),
    bytes: BigInt(r.bytes!),
  }));
}

async function commitMetering(ctx: CommitContext<TaskParams, TaskOutput>, o: StorageMeteringOptions) {
  const { store } = ctx.services;
  const day = ctx.partition.day;
  const report = new ReportBuilder();
  const merged = report.phase('merge');
  const usage = new Map<string, Map<Namespace, Usage>>();
  for (const t of ctx.tasks) mergeUsage(usage, parsePartial(await readObjectText(store, t.output.path)));
  const owners = [...usage.keys()].sort();
  const body = jsonLines(owners.map((owner) => ({ owner, storage: storageRecord(usage.get(owner)) })));
  merged();
  const published = report.phase('publish');
  const publishedAt = publishedPath(o.outputPrefix, operatorReportPath(day));
  // Run-scoped first (this run's own name), then the original path operators read.
  await store.put(`${ctx.runPrefix}h00.json`, body);
  await store.put(publishedAt, body);
  report.count('accounts', owners.length).count('bytesWritten', Buffer.byteLength(body) * 2);
  published();

  for (const owner of owners)
    if (usage.get(owner)!.size === 0)
      // Only rows in namespaces that are not metered (uploads): the original's all-zero line.
      report.event('owner-with-only-unmetered-rows', 'info', { owner });
  const delivered = report.phase('deliver');
  await deliverToAccounts(ctx.services, report, {
    owners,
    userDir: userReportDir,
    userPath: (login) => userReportPath(login, day),
    userRecord: (owner) => ({ storage: storageRecord(usage.get(owner)), date: `${day}T00:00:00.000Z` }),
    period: day,
    keepFrom: addDays(day, -o.reportRetentionDays),
    outputPrefix: o.outputPrefix,
  });
  delivered();
  return {
    output: { path: `${ctx.runPrefix}h00.json`, published: publishedAt, accounts: owners.length },
    report: report.finish(),
  };
}

export function storageMeteringJob(
  o: StorageMeteringOptions,
): JobDefinition<TaskParams, TaskOutput, StorageMeteringOutput> {
  return {
    name: 'storage-metering',
    description: 'per account and namespace: directories, keys, objects, bytes (MANTA-REFERENCE §3.6)',
    partition: 'day',
    inputs: { upstream: ['unpack'] },
    // The original ran at 08:15 after a 00:00 dump; eight hours late is worth a page.
    deadlineMs: 8 * 3_600_000,
    maxAttempts: 5,
    taskTimeoutMs: 30 * 60_000,
    output: storageMeteringOutput,
    split: async (ctx) => {
      const sources = upstreamOf(ctx.upstream, unpackOutput).map((u) => u.output);
      const partitions = await PartitionInputs.open(ctx.services.store, sources);
      return partitions.tasks(['manta']).map((t) => ({ key: t.key, params: { ...t.params, sources } }));
    },
    runTask: runPartition,
    commit: (ctx) => commitMetering(ctx, o),
  };
}
