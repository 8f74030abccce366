/**
 * The partition function shared by every table and every job (DESIGN.md "Scale-out").
 *
 * STABLE CONTRACT — changing it silently splits one objectId's references across
 * partitions and breaks gc/audit/cruft joins:
 *
 *   partitionOf(id, P) = fnv1a32(utf8(lowercase(id))) mod P
 *
 * FNV-1a 32-bit (offset basis 0x811c9dc5, prime 0x01000193) over the UTF-8 bytes of the
 * lower-cased string. The string is the objectId when the record has one, otherwise the
 * record's `_key` (directories, `manta_storage`, `accounts`). Lower-casing makes a storage
 * node's `/manta/<owner>/<OBJECTID>` path land with the metadata that names it in lower case.
 * Chosen over md5/sha: ~20x cheaper per row in JS, trivially reimplemented in any language.
 */

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function fnv1a32(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return fnv1a32Bytes(Buffer.from(s, 'utf8'));
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return h >>> 0;
}

function fnv1a32Bytes(b: Uint8Array): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, FNV_PRIME);
  return h >>> 0;
}

export function partitionOf(id: string, partitions: number): number {
  return fnv1a32(id.toLowerCase()) % partitions;
}

/**
 * P of a storage node's listing when none is given (mako ingest, `remora manifest`). Shards
 * choose theirs from their size (autoPartitions); the two still join by partition group.
 */
export const DEFAULT_PARTITIONS = 16;

/**
 * Rows per partition the automatic P aims at. A downstream task holds one partition group
 * (one partition of every source, see partitionGroups) in DuckDB at a time, so this, not the
 * size of the day, bounds its memory; bigger partitions mean fewer fixed costs per task.
 * Measured in bench/metering.bench.ts (docs/pipeline.md "Bench").
 */
export const DEFAULT_ROWS_PER_PARTITION = 131_072;
/** The automatic P never goes above this (files per table and source stay manageable). */
export const MAX_AUTO_PARTITIONS = 1024;

/**
 * The automatic partition count of a source of about `rows` rows: the smallest power of two
 * that keeps partitions at or under `rowsPerPartition` (at least 1, at most MAX_AUTO_PARTITIONS).
 * Powers of two, so that sources of different sizes still join (partitionGroups).
 */
export function autoPartitions(rows: number, rowsPerPartition = DEFAULT_ROWS_PER_PARTITION): number {
  let p = 1;
  while (p < MAX_AUTO_PARTITIONS && rows / p > rowsPerPartition) p *= 2;
  return p;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * How sources partitioned with different P are joined: with G = gcd of their P, group g
 * (0 ≤ g < G) is partitions p ≡ g (mod G) of every source. An objectId with hash h sits in
 * partition h mod P of a source, and (h mod P) mod G = h mod G because G divides P: all its
 * rows, in every source, are in group h mod G. With one P everywhere, groups are partitions.
 */
export function partitionGroups(partitionCounts: Iterable<number>): number {
  let g = 0;
  for (const p of partitionCounts) g = gcd(g, p);
  return g;
}

/** Whether partition `p` belongs to group `group` of `groups` (partitionGroups). */
export function inGroup(p: number, group: number, groups: number): boolean {
  return p % groups === group;
}
