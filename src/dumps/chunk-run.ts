/**
 * The shared setup of a run that writes chunks: scratch directory, DuckDB, report, run id.
 *
 * Scratch directories (intermediate files, DuckDB's spill files): `<store root>/.tmp-chunkrun-*`
 * for the local store (same filesystem as the chunks, so adopting one is a rename), else
 * `<os tmpdir>/remora-chunkrun-*`. Each holds an `owner.json` (host, pid, start) written when it is
 * made and touched at every segment. A run killed before its `close()` leaves its directory
 * behind; the next run in the same place removes every such directory whose owner is gone:
 * same host and its pid no longer alive, or (another host, or no owner file) untouched for
 * STALE_SCRATCH_MS. A live run's directory is never removed: its pid is alive, and a run on
 * another host touches its owner file far more often than that.
 */
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

/** Scratch directory names: the local store's root (hidden from listings) and the OS temp dir. */
const LOCAL_SCRATCH_PREFIX = '.tmp-chunkrun-';
const TMP_SCRATCH_PREFIX = 'remora-chunkrun-';
/**
 * What earlier versions named the local store's scratch directories (LocalObjectStore.workDir):
 * no owner file, so only the age rule removes them.
 */
const LEGACY_LOCAL_SCRATCH_PREFIX = '.tmp-work-';
const OWNER_FILE = 'owner.json';
/** A scratch directory whose owner cannot be asked (another host, no owner file) is stale after this. */
export const STALE_SCRATCH_MS = 24 * 3_600_000;

interface ScratchOwner {
  host: string;
  pid: number;
  startedAt: string;
}

export function checkPartitions(p: number): number {
  if (!Number.isInteger(p) || p < 1 || p > 9999)
    throw new RemoraError('UsageError', `partitions must be 1..9999, got ${p}`);
  return p;
}

/** Where a store's chunk runs make their scratch directories, and the names they give them. */
export function scratchParent(store: ObjectStore): { dir: string; prefix: string; legacy?: string } {
  return store instanceof LocalObjectStore
    ? { dir: store.root, prefix: LOCAL_SCRATCH_PREFIX, legacy: LEGACY_LOCAL_SCRATCH_PREFIX }
    : { dir: os.tmpdir(), prefix: TMP_SCRATCH_PREFIX };
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove the scratch directories of chunk runs that died without cleaning up (see the header).
 * Returns the directories removed.
 */
export async function removeStaleScratch(store: ObjectStore, now = Date.now()): Promise<string[]> {
  const { dir, prefix, legacy } = scratchParent(store);
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) && !(legacy && name.startsWith(legacy))) continue;
    const scratch = path.join(dir, name);
    let stale: boolean;
    try {
      const ownerFile = path.join(scratch, OWNER_FILE);
      const owner = await fs.promises
        .readFile(ownerFile, 'utf8')
        .then((t) => JSON.parse(t) as ScratchOwner)
        .catch(() => undefined);
      const touched = (await fs.promises.stat(owner ? ownerFile : scratch)).mtimeMs;
      stale = owner && owner.host === os.hostname() ? !pidAlive(owner.pid) : now - touched > STALE_SCRATCH_MS;
    } catch {
      continue; // gone meanwhile (another run removed it, or its own run finished)
    }
    if (!stale) continue;
    await fs.promises.rm(scratch, { recursive: true, force: true });
    removed.push(scratch);
  }
  return removed;
}

/** A fresh scratch directory for this process, with its owner file. */
async function makeScratch(store: ObjectStore): Promise<{ dir: string; touch: () => void }> {
  const parent = scratchParent(store);
  await fs.promises.mkdir(parent.dir, { recursive: true });
  const dir = await fs.promises.mkdtemp(path.join(parent.dir, parent.prefix));
  const ownerFile = path.join(dir, OWNER_FILE);
  const owner: ScratchOwner = { host: os.hostname(), pid: process.pid, startedAt: new Date().toISOString() };
  await fs.promises.writeFile(ownerFile, JSON.stringify(owner));
  return {
    dir,
    touch: () => {
      const t = new Date();
      fs.utimes(ownerFile, t, t, () => {});
    },
  };
}

/**
 * DuckDB connections shared by a run's conversions: `withDuck` takes one free connection;
 * `exclusive` waits until every connection is free and holds them all, so that one conversion
 * (a partition holding large rows) has DuckDB's memory to itself. Waiters are served in order.
 */
function connectionPool(conns: DuckDBConnection[]): ChunkContext['withDuck'] {
  const idle = [...conns];
  let exclusive = false;
  const waiting: { exclusive: boolean; grant: () => void }[] = [];
  const canGrant = (excl: boolean) => !exclusive && (excl ? idle.length === conns.length : idle.length > 0);
  const pump = () => {
    while (waiting.length > 0 && canGrant(waiting[0]!.exclusive)) waiting.shift()!.grant();
  };
  return async <T>(fn: (conn: DuckDBConnection) => Promise<T>, opts: { exclusive?: boolean } = {}) => {
    const excl = opts.exclusive === true;
    if (waiting.length > 0 || !canGrant(excl))
      await new Promise<void>((grant) => waiting.push({ exclusive: excl, grant }));
    const conn = idle.pop()!;
    if (excl) exclusive = true;
    try {
      return await fn(conn);
    } finally {
      idle.push(conn);
      if (excl) exclusive = false;
      pump();
    }
  };
}

export async function openChunkRun(
  store: ObjectStore,
  report: ReportBuilder,
  opts: ChunkRunOptions,
): Promise<{ ctx: ChunkContext; close: () => Promise<void> }> {
  const runId = `${Date.now().toString(36)}-${crypto.randomBytes(3).toString('hex')}`;
  const partitions = checkPartitions(opts.partitions);
  const removed = await removeStaleScratch(store);
  if (removed.length > 0)
    report.event(
      'stale_scratch_removed',
      'info',
      `${removed.join(', ')} (left by a run that died)`,
      removed.length,
    );
  const scratch = await makeScratch(store);
  const workDir = scratch.dir;
  let duck: Awaited<ReturnType<typeof openDuck>>;
  const conns: DuckDBConnection[] = [];
  try {
    duck = await openDuck({ tempDirectory: path.join(workDir, 'duckdb'), ...opts.duck });
    conns.push(duck.conn);
    while (conns.length < CONVERSIONS_IN_PARALLEL) conns.push(await duck.instance.connect());
  } catch (err) {
    await fs.promises.rm(workDir, { recursive: true, force: true });
    throw err;
  }
  const ctx: ChunkContext = {
    store,
    withDuck: connectionPool(conns),
    conversions: conns.length,
    report,
    workDir,
    touch: scratch.touch,
    partitions,
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
