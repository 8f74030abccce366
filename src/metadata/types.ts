/**
 * Glossary of the metadata tier (see DESIGN.md):
 *   bucket   a moray bucket = one PostgreSQL table per shard (`manta`, `manta_delete_log`, …)
 *   record   one row of a bucket: `_key`, `_value` (JSON text), `_etag` (CRC32 of `_value`), `_mtime`, `_vnode`
 *   shard    one PostgreSQL database holding buckets; index shards hold the namespace,
 *            the storage shard holds `manta_storage` and `accounts`
 *   ring     sha256(key's dirname) → vnode → shard (electric-moray + node-fash)
 *   shark    a storage node, named by `manta_storage_id`, in a datacenter
 */

export interface Shark {
  datacenter: string;
  manta_storage_id: string;
}

/** A `manta` bucket value as libmanta's createMetadata() builds it (MANTA-REFERENCE §1.2). */
export interface MantaObjectValue {
  dirname: string;
  key: string;
  headers: Record<string, string>;
  mtime: number;
  name: string;
  creator: string;
  owner: string;
  roles: string[];
  type: 'object';
  contentLength: number;
  contentMD5: string;
  contentType: string;
  etag: string;
  objectId: string;
  sharks: Shark[];
  /** Set on snaplinks: the key the link was made from. */
  createdFrom?: string;
  vnode?: number;
}

export interface MantaDirectoryValue {
  dirname: string;
  key: string;
  headers: Record<string, string>;
  mtime: number;
  name: string;
  creator: string;
  owner: string;
  roles: string[];
  type: 'directory';
  upload?: unknown;
  vnode?: number;
}

export type MantaValue = MantaObjectValue | MantaDirectoryValue;

/** A row as read back from a bucket. */
export interface MorayRow<V = Record<string, unknown>> {
  bucket: string;
  key: string;
  value: V;
  etag: string;
  mtime: number;
  vnode: number | null;
  id: number;
}

/** The `manta_storage` heartbeat value (minnow main.js). */
export interface StorageRecordValue {
  hostname: string;
  datacenter: string;
  manta_storage_id: string;
  availableMB: number;
  percentUsed: number;
  timestamp: number;
  filesystem: string;
  server_uuid?: string;
  zone_uuid?: string;
  /** Base URL of the node's HTTP server (DESIGN.md: the heartbeat carries the node's URL). */
  url?: string;
}

export interface AccountValue {
  uuid: string;
  login: string;
  /** Whether usage reports are delivered to `/<login>/reports` (mackerel approved_for_provisioning). */
  reports: boolean;
  /** sha256 hex of the account's bearer token. */
  tokenHash: string;
  operator?: boolean;
}

/** The etag condition of a write: undefined = unconditional, null = must not exist, string = must match. */
export type EtagCondition = string | null | undefined;

/** `manta_storage` timestamp that marks writes disabled (manta-mako-adm disable-writes: 2013-01-01T00:00:00Z). */
export const WRITES_DISABLED_TIMESTAMP = 1356998400000;
