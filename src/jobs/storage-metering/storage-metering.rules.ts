/**
 * Storage metering rules (MANTA-REFERENCE §3.6 "Storage", mackerel storage-reduce1/3.js):
 *
 *   - per owner and namespace (`stor`, `public`, `jobs`, `reports`): directories, keys, objects, bytes;
 *   - bytes of an object = max(contentLength, 128 KiB) × copies (`sharks.length`; MANTA-1627);
 *   - an objectId is counted once per owner (objects and bytes), in the FIRST namespace of
 *     stor > public > jobs > reports where that owner has a key for it; `keys` counts every key;
 *   - a link to another account's object is charged to each owner separately.
 *
 * Decisions where the original was silent or accidental (docs/pipeline.md "Storage metering"):
 *   - zero-byte objects: they have no copies (`sharks: []`, muskie), so they count as a key and
 *     an object with 0 bytes — the 128 KiB minimum applies per copy, and there are none;
 *   - `uploads` (multipart uploads in progress) is not a metered namespace, as in the original:
 *     its keys, objects and bytes are reported to no one; an objectId with keys in `uploads`
 *     and `stor` counts in `stor`;
 *   - counts are written as decimal strings (the original's user reports did, and petabyte
 *     byte counts exceed 2^53).
 */
import { NAMESPACES, type Namespace } from '../../core/ids.js';

/**
 * The namespace of a partial line for an owner with only unmetered rows in a partition: a line
 * of zeros, so the owner is in the operator file (as in the original); never reported itself.
 */
export const UNMETERED = 'unmetered';

/** MANTA-1627: the minimum billed size of one copy (older docs said 4096, MANTA-1251). */
export const MIN_SIZE = 131072;

export interface Usage {
  directories: bigint;
  keys: bigint;
  objects: bigint;
  bytes: bigint;
}

/** One partial or merged line: an owner's usage in one namespace (or UNMETERED: zeros, owner seen). */
export interface UsageRow extends Usage {
  owner: string;
  namespace: Namespace | typeof UNMETERED;
}

export function zeroUsage(): Usage {
  return { directories: 0n, keys: 0n, objects: 0n, bytes: 0n };
}

export function billedBytes(contentLength: number, copies: number): bigint {
  return BigInt(Math.max(contentLength, MIN_SIZE)) * BigInt(copies);
}

/** Add partial sums (of partitions) into a per-owner map. Partitions are disjoint by objectId, so sums are exact. */
export function mergeUsage(into: Map<string, Map<Namespace, Usage>>, rows: Iterable<UsageRow>): void {
  for (const r of rows) {
    let byNs = into.get(r.owner);
    if (!byNs) into.set(r.owner, (byNs = new Map<Namespace, Usage>()));
    if (r.namespace === UNMETERED) continue;
    const u = byNs.get(r.namespace) ?? zeroUsage();
    u.directories += r.directories;
    u.keys += r.keys;
    u.objects += r.objects;
    u.bytes += r.bytes;
    byNs.set(r.namespace, u);
  }
}

export type StorageRecord = Record<Namespace, Record<keyof Usage, string>>;

/** `{"stor":{…},"public":{…},"jobs":{…},"reports":{…}}`, missing namespaces filled with "0" (storage-reduce3). */
export function storageRecord(byNs: Map<Namespace, Usage> | undefined): StorageRecord {
  const out = {} as StorageRecord;
  for (const ns of NAMESPACES) {
    const u = byNs?.get(ns) ?? zeroUsage();
    out[ns] = {
      directories: u.directories.toString(),
      keys: u.keys.toString(),
      objects: u.objects.toString(),
      bytes: u.bytes.toString(),
    };
  }
  return out;
}

/** `YYYY-MM-DD` → `YYYY/MM/DD`. */
export function datePath(day: string): string {
  return day.replaceAll('-', '/');
}

/** The operator's file: every account (MANTA-REFERENCE §3.6 DEST). */
export function operatorReportPath(day: string): string {
  return `/poseidon/stor/usage/storage/${datePath(day)}/00/h00.json`;
}

export function userReportDir(login: string): string {
  return `/${login}/reports/usage/storage`;
}

export function userReportPath(login: string, day: string): string {
  return `${userReportDir(login)}/${datePath(day)}/00/h00.json`;
}

export function userLatestPath(login: string): string {
  return `${userReportDir(login)}/latest`;
}
