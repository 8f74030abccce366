/** The shared setup of a run that writes chunks: scratch directory, DuckDB, report, run id. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { RemoraError } from '../core/errors.js';
import type { ChunkContext } from './chunk-writer.js';
import { openDuck, type DuckOptions } from './duckdb.js';
import type { SourceManifest } from './manifest.js';
import { LocalObjectStore, type ObjectStore } from '../objectstore/object-store.js';
import type { ReportBuilder } from '../core/run-report.js';

export interface ChunkRunOptions {
  day: string;
  source: string;
  partitions: number;
  segmentRows: number;
  duck?: DuckOptions;
}

/**
 * Parquet conversions run at once, each on its own DuckDB connection. One conversion of a
 * partition-sized file leaves a core idle much of the time (its single row group is written
 * by one thread); two keep both cores of the target machine busy. Measured: see docs/dumps.md.
 */
const CONVERSIONS_IN_PARALLEL = 2;

export function checkPartitions(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 9999)
    throw new RemoraError('UsageError', `partitions must be 1..9999, got ${p}`);
  return p;
}

export async function openChunkRun(
  store: ObjectStore,
  report: ReportBuilder,
  opts: ChunkRunOptions,
): Promise<{ ctx: ChunkContext; close: () => Promise<void> }> {
  const runId = `${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;
  const workDir =
    store instanceof LocalObjectStore
      ? await store.workDir()
      : await fs.promises.mkdtemp(path.join(os.tmpdir(), 'remora-chunks-'));
  const duck = await openDuck({ tempDirectory: path.join(workDir, 'duckdb'), ...opts.duck });
  const conns: DuckDBConnection[] = [duck.conn];
  while (conns.length < CONVERSIONS_IN_PARALLEL) conns.push(await duck.instance.connect());
  const idle = [...conns];
  const waiting: ((c: DuckDBConnection) => void)[] = [];
  const ctx: ChunkContext = {
    store,
    withDuck: async <T>(fn: (conn: DuckDBConnection) => Promise<T>) => {
      const conn = idle.pop() ?? (await new Promise<DuckDBConnection>((resolve) => waiting.push(resolve)));
      try {
        return await fn(conn);
      } finally {
        const next = waiting.shift();
        if (next) next(conn);
        else idle.push(conn);
      }
    },
    conversions: conns.length,
    report,
    workDir,
    partitions: checkPartitions(opts.partitions),
    segmentRows: opts.segmentRows,
    day: opts.day,
    source: opts.source,
    runId,
  };
  return {
    ctx,
    close: async () => {
      for (const c of conns.slice(1)) c.closeSync();
      duck.close();
      await fs.promises.rm(workDir, { recursive: true, force: true });
    },
  };
}

/** After the new manifest is committed: remove the chunks of the attempt it replaced. */
export async function deleteSupersededAttempt(
  store: ObjectStore,
  day: string,
  source: string,
  runId: string,
  previous?: SourceManifest,
): Promise<void> {
  if (!previous || previous.runId === runId) return;
  for (const t of Object.values(previous.tables)) for (const c of t.chunks) await store.delete(c.path);
}
