/**
 * The per-source manifest: the commit pointer of one unpack (or one storage listing ingest)
 * and the index downstream jobs read instead of listing directories.
 *
 *   /poseidon/stor/remora/unpacked/YYYY/MM/DD/<source>/manifest.json
 *
 * Chunks of an attempt live under `<source>/<runId>/`; the manifest is written last, so a
 * reader sees a complete earlier attempt or a complete new one, never a mix (DESIGN.md
 * "each attempt writes its outputs under its own name and a run commits by switching one pointer").
 */
import { readObjectText, type ObjectStore } from '../objectstore/object-store.js';
import type { ChunkInfo } from './chunk-writer.js';
import type { RunReport, Verdict } from '../core/run-report.js';
import { sourceManifestPath, unpackedDayDir } from './layout.js';
import { inGroup, partitionGroups } from './partition.js';

export const MANIFEST_VERSION = 1;

/**
 * Chunk columns, versioned: 2 added `copies` (the number of sharks) to moray tables, so that
 * readers that only need the count skip decoding the `sharks` list. Readers check it with
 * hasCopiesColumn and fall back to `len(sharks)` on older chunks. 3 added `gc_clean` to
 * `manta_delete_log` chunks (table-specs.ts deleteRecordCleanSql: the record may go to GC as its
 * typed columns); GC checks hasGcCleanColumn and computes the same from `_value` on older chunks.
 * 4 added `oid_uuid` to `manta` and `manta_delete_log` chunks (table-specs.ts oidUuidSql: the
 * objectId as a UUID when it is a canonical uuid, else NULL) and, per chunk of those tables, the
 * manifest's `oidNotUuid` (chunk-writer.ts ChunkInfo); GC checks hasOidUuidColumn and joins by
 * lower-cased text on older chunks. Also `gc_line` on `manta_delete_log` chunks, with control-character
 * separators. 5 writes `gc_line` with tabs (table-specs.ts gcLineSql: a clean record's line is then a
 * line of GC's plan as it is; hasGcLineColumn): GC computes it from the typed columns on older chunks,
 * schema 4's included. 5 also counts, per moray chunk, the rows whose `_value` is not JSON
 * (chunk-writer.ts ChunkInfo.valueNotJson), so GC looks for such `manta` rows only where there are.
 */
export const CHUNK_SCHEMA = 5;

export interface TableManifest {
  kind: 'moray' | 'generic' | 'mako';
  rows: number;
  chunks: ChunkInfo[];
}

export interface SourceManifest {
  version: number;
  /** Shard name or storage node id. */
  source: string;
  kind: 'shard' | 'storage-node';
  day: string;
  runId: string;
  /** The instant every row is from: the snapshot's (shard) or the listing's start (node). ISO. */
  snapshotTime: string;
  /** True when snapshotTime was not recorded with the input and had to be guessed. */
  snapshotTimeGuessed?: boolean;
  input: { path: string; bytes?: number; sha256?: string }[];
  partitions: number;
  /** CHUNK_SCHEMA of the chunks; absent before 2. */
  chunkSchema?: number;
  partitionFunction: 'fnv1a32(utf8(lower(objectId or _key))) mod partitions';
  tables: Record<string, TableManifest>;
  report: RunReport;
  /** The report's verdict (manifests written before the shared report said only ok/degraded). */
  verdict: Verdict;
  createdAt: string;
}

export async function writeSourceManifest(store: ObjectStore, m: SourceManifest): Promise<string> {
  const p = sourceManifestPath(m.day, m.source);
  await store.put(p, Buffer.from(JSON.stringify(m, null, 1)), { 'm-run-id': m.runId });
  return p;
}

async function readJson(store: ObjectStore, p: string): Promise<unknown> {
  return JSON.parse(await readObjectText(store, p));
}

export async function readSourceManifest(
  store: ObjectStore,
  day: string,
  source: string,
): Promise<SourceManifest | undefined> {
  const p = sourceManifestPath(day, source);
  if (!(await store.head(p))) return undefined;
  return (await readJson(store, p)) as SourceManifest;
}

/** Every committed source manifest of a day. */
export async function listSourceManifests(store: ObjectStore, day: string): Promise<SourceManifest[]> {
  const dir = `${unpackedDayDir(day)}/`;
  const paths = (await store.list(dir)).filter((p) => /^[^/]+\/manifest\.json$/.test(p.slice(dir.length)));
  const out: SourceManifest[] = [];
  for (const p of paths) out.push((await readJson(store, p)) as SourceManifest);
  return out;
}

export interface ChunkRef extends ChunkInfo {
  source: string;
  table: string;
  snapshotTime: string;
}

export interface ChunkQuery {
  day: string;
  table: string;
  /** One shard or node; all when omitted. */
  source?: string;
  /** A partition group of the chosen sources (partitionGroups): with one P everywhere, a partition. */
  partition?: number;
}

/** Whether the source's moray chunks have the `copies` column (CHUNK_SCHEMA 2). */
export function hasCopiesColumn(m: SourceManifest): boolean {
  return (m.chunkSchema ?? 1) >= 2;
}

/** Whether the source's `manta_delete_log` chunks have the `gc_clean` column (CHUNK_SCHEMA 3). */
export function hasGcCleanColumn(m: Pick<SourceManifest, 'chunkSchema'>): boolean {
  return (m.chunkSchema ?? 1) >= 3;
}

/** Whether the source's `manta` and `manta_delete_log` chunks have `oid_uuid` and `oidNotUuid` (CHUNK_SCHEMA 4). */
export function hasOidUuidColumn(m: Pick<SourceManifest, 'chunkSchema'>): boolean {
  return (m.chunkSchema ?? 1) >= 4;
}

/** Whether the source's `manta_delete_log` chunks have `gc_line` as GC reads it (CHUNK_SCHEMA 5: tab-separated). */
export function hasGcLineColumn(m: Pick<SourceManifest, 'chunkSchema'>): boolean {
  return (m.chunkSchema ?? 1) >= 5;
}

/** The chunks of a table on a day (all sources unless one is named), from the committed manifests. */
export async function listChunks(store: ObjectStore, q: ChunkQuery): Promise<ChunkRef[]> {
  const manifests = q.source
    ? [await readSourceManifest(store, q.day, q.source)].filter((m): m is SourceManifest => m !== undefined)
    : await listSourceManifests(store, q.day);
  const out: ChunkRef[] = [];
  const groups = groupsOf(manifests, q.table) ?? 1;
  for (const m of manifests) {
    for (const c of m.tables[q.table]?.chunks ?? []) {
      if (q.partition !== undefined && !inGroup(c.partition, q.partition, groups)) continue;
      out.push({ ...c, source: m.source, table: q.table, snapshotTime: m.snapshotTime });
    }
  }
  return out;
}

/**
 * The partition groups of a table over a set of sources (partitionGroups): a join task takes
 * one group. Sources without rows of the table do not count (the storage shard has no `manta`
 * rows, and its automatic P is 1). Undefined when no source has rows of the table.
 */
export function groupsOf(manifests: readonly SourceManifest[], table: string): number | undefined {
  const ps = manifests.filter((m) => (m.tables[table]?.rows ?? 0) > 0).map((m) => m.partitions);
  return ps.length === 0 ? undefined : partitionGroups(ps);
}

/** The chunks of `table` in partition group `group` of `groups` (partitionGroups). */
export function groupChunks(m: SourceManifest, table: string, group: number, groups: number): ChunkInfo[] {
  return (m.tables[table]?.chunks ?? []).filter((c) => inGroup(c.partition, group, groups));
}
