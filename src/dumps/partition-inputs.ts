/**
 * Partition inputs: what every job that joins all references to an objectId reads (storage
 * metering, rebalance planning, gc, audit, cruft). Unpack partitions each table by objectId
 * (src/dumps/partition.ts), so partition group g of every source holds every row of the
 * objectIds in g; a job runs one task per group and memory is bounded by a group, not by the
 * day or the largest account (RFD 16 problems 5 and 6).
 *
 *   plan     PartitionInputs.open(store, refs)  the committed unpacks the run started from
 *            .tasks(tables)                     one {group, groups} per partition group
 *   task     PartitionInputs.open(store, refs)  again: refuses an unpack replaced since (StaleState)
 *            .withGroup(group, groups, tables, fn)  fn gets local files per table for that group
 *
 * "Is this unpack still the committed one" has one rule, here: the source's manifest (unpack's
 * commit pointer) still names the run the reference names. A newer unpack deletes the chunks
 * of the one it replaced, so reading a stale reference would read missing or different data.
 * In the pipeline only a run's commit replaces a manifest (src/dumps/source-commit.ts): a lost
 * unpack attempt that keeps running never does, so StaleState here means a rerun, not a race.
 */
import { z } from 'zod';
import { RemoraError } from '../core/errors.js';
import type { ReportBuilder } from '../core/run-report.js';
import { type ChunkFile, withLocalChunks } from '../objectstore/local-chunks.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import { groupChunks, readSourceManifest, type SourceManifest } from './manifest.js';
import { partitionGroups } from './partition.js';

/** A committed unpack of one source (shard or storage node) on one day: the unpack job's output. */
export const unpackRefSchema = z.object({
  source: z.string(),
  day: z.string(),
  runId: z.string(),
  partitions: z.number().int().positive(),
  manifestPath: z.string(),
});
export type UnpackRef = z.infer<typeof unpackRefSchema>;

/** The reference to an unpack's committed manifest (what the unpack job outputs). */
export function unpackRefOf(u: {
  manifest: Pick<SourceManifest, 'source' | 'day' | 'runId' | 'partitions'>;
  manifestPath: string;
}): UnpackRef {
  return {
    source: u.manifest.source,
    day: u.manifest.day,
    runId: u.manifest.runId,
    partitions: u.manifest.partitions,
    manifestPath: u.manifestPath,
  };
}

/** One task's share of the inputs: partition group `group` of `groups` (partitionGroups). */
export interface PartitionGroup {
  group: number;
  groups: number;
}

/** What `withGroup` hands a task for one group. */
export interface GroupFiles {
  /** Local chunk files per table (every source's chunks of the group; empty when none). */
  files: Record<string, string[]>;
  /** The lowest CHUNK_SCHEMA among sources that contributed chunks (columns added later are absent below it). */
  chunkSchema: number;
  /** Bytes of the chunks read. */
  bytes: number;
}

export class PartitionInputs {
  private constructor(
    private readonly store: ObjectStore,
    /** The committed manifests, one per source. */
    readonly manifests: readonly SourceManifest[],
  ) {}

  /** The manifests the references name, each checked to be still the committed one. */
  static async open(store: ObjectStore, refs: readonly UnpackRef[]): Promise<PartitionInputs> {
    const manifests: SourceManifest[] = [];
    for (const ref of refs) {
      const m = await readSourceManifest(store, ref.day, ref.source);
      if (!m || m.runId !== ref.runId)
        throw new RemoraError(
          'StaleState',
          `the unpack of ${ref.source} for ${ref.day} (run ${ref.runId}) is no longer the committed one ` +
            `(${m ? `now run ${m.runId}` : 'none is'}): rerun this job so it reads the current unpack`,
        );
      manifests.push(m);
    }
    return new PartitionInputs(store, manifests);
  }

  /** Manifests already known to be committed (e.g. the newest of each shard, just read). */
  static of(store: ObjectStore, manifests: readonly SourceManifest[]): PartitionInputs {
    return new PartitionInputs(store, manifests);
  }

  /**
   * The partition groups over every source that has rows of any of `tables` (sources unpacked
   * with different P join by group). 0 when no source has rows.
   */
  groups(tables: readonly string[]): number {
    const ps = this.manifests
      .filter((m) => tables.some((t) => (m.tables[t]?.rows ?? 0) > 0))
      .map((m) => m.partitions);
    return partitionGroups(ps);
  }

  /** One task per partition group, keyed `p0000`, `p0001`, …. */
  tasks(tables: readonly string[]): { key: string; params: PartitionGroup }[] {
    const groups = this.groups(tables);
    return Array.from({ length: groups }, (_, group) => ({
      key: `p${String(group).padStart(4, '0')}`,
      params: { group, groups },
    }));
  }

  /**
   * Run `fn` with the group's chunk files of `tables` as local files (the local backend's own,
   * or sha256-verified copies from any other backend, removed afterwards). Counts `bytesRead`
   * into `report` when given.
   */
  async withGroup<T>(
    g: PartitionGroup,
    tables: readonly string[],
    fn: (input: GroupFiles) => Promise<T>,
    report?: ReportBuilder,
  ): Promise<T> {
    const chunks: ChunkFile[] = [];
    const owner: string[] = [];
    let chunkSchema = Number.POSITIVE_INFINITY;
    for (const m of this.manifests) {
      for (const table of tables) {
        const mine = groupChunks(m, table, g.group, g.groups);
        if (mine.length > 0) chunkSchema = Math.min(chunkSchema, m.chunkSchema ?? 1);
        for (const c of mine) {
          chunks.push(c);
          owner.push(table);
        }
      }
    }
    const bytes = chunks.reduce((a, c) => a + c.bytes, 0);
    report?.count('bytesRead', bytes);
    return withLocalChunks(this.store, chunks, (paths) => {
      const files: Record<string, string[]> = Object.fromEntries(tables.map((t) => [t, []]));
      paths.forEach((p, i) => files[owner[i]!]!.push(p));
      return fn({ files, chunkSchema: Number.isFinite(chunkSchema) ? chunkSchema : 0, bytes });
    });
  }
}
