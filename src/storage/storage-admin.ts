/**
 * manta-mako-adm (MANTA-REFERENCE §4.1) as services the CLI calls: disable-writes,
 * enable-writes, show. The writes-enabled setting is persisted in the control database (the
 * heartbeat reads it every beat), and the `manta_storage` record is the picker's view of it.
 */
import type { Clock } from '../core/clock.js';
import { readWritesEnabled, setWritesEnabled } from '../metadata/control.repository.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { STORAGE_BUCKET } from '../metadata/buckets.js';
import { type StorageRecordValue, WRITES_DISABLED_TIMESTAMP } from '../metadata/types.js';
import { isRemoraError } from '../core/errors.js';

export interface StorageNodeStatus {
  id: string;
  datacenter: string;
  /** The persisted setting. */
  writesEnabled: boolean;
  /**
   * What the picker sees: `fresh` (timestamp within lag), `stale` (a heartbeat is late),
   * `disabled` (the disable-writes timestamp), `missing` (no record yet).
   */
  record: 'fresh' | 'stale' | 'disabled' | 'missing';
  /** ms since the record's timestamp; undefined when missing or disabled. */
  heartbeatAgeMs?: number;
  availableMB?: number;
  percentUsed?: number;
  /** Set when the setting and the record disagree (the original warned about minnow vs record). */
  warning?: string;
}

/**
 * Persist "writes disabled", then make the record stale now rather than at the next beat
 * (manta-mako-adm step 2). The write is etag-guarded: if a heartbeat lands in between, re-read
 * and retry, so the last write is always the stale one. Returns false when no record exists yet
 * (the node has never beaten; its first beat will write the stale timestamp).
 */
export async function disableWrites(tier: MetadataTier, id: string, reason?: string): Promise<boolean> {
  await setWritesEnabled(tier.control, id, false, reason);
  for (let attempt = 0; attempt < 5; attempt++) {
    const row = await tier.getObject<StorageRecordValue>(STORAGE_BUCKET.name, id);
    if (!row) return false;
    if (row.value.timestamp === WRITES_DISABLED_TIMESTAMP) return true;
    try {
      await tier.putObject(
        STORAGE_BUCKET.name,
        id,
        { ...row.value, timestamp: WRITES_DISABLED_TIMESTAMP },
        { etag: row.etag },
      );
      return true;
    } catch (err) {
      if (!isRemoraError(err, 'EtagConflict')) throw err;
    }
  }
  // A heartbeat won five times in a row: it has read the new setting by now and wrote it stale.
  return true;
}

/** Persist "writes enabled". The record becomes fresh at the node's next heartbeat. */
export async function enableWrites(tier: MetadataTier, id: string, reason?: string): Promise<void> {
  await setWritesEnabled(tier.control, id, true, reason);
}

export async function storageStatus(
  tier: MetadataTier,
  nodes: readonly { id: string; datacenter: string }[],
  clock: Clock,
  lagMs: number,
): Promise<StorageNodeStatus[]> {
  const out: StorageNodeStatus[] = [];
  for (const n of nodes) {
    const writesEnabled = await readWritesEnabled(tier.control, n.id);
    const row = await tier.getObject<StorageRecordValue>(STORAGE_BUCKET.name, n.id);
    const s: StorageNodeStatus = { id: n.id, datacenter: n.datacenter, writesEnabled, record: 'missing' };
    if (row) {
      const v = row.value;
      s.availableMB = v.availableMB;
      s.percentUsed = v.percentUsed;
      if (v.timestamp === WRITES_DISABLED_TIMESTAMP) s.record = 'disabled';
      else {
        s.heartbeatAgeMs = clock.now() - v.timestamp;
        s.record = s.heartbeatAgeMs <= lagMs ? 'fresh' : 'stale';
      }
    }
    if (!writesEnabled && s.record === 'fresh')
      s.warning = 'writes are disabled but the record is fresh: is an old heartbeat still running?';
    if (writesEnabled && s.record === 'disabled')
      s.warning = 'writes are enabled but the record is still stale: waiting for the next heartbeat';
    out.push(s);
  }
  return out;
}

/** Wait until the record is fresh (manta-mako-adm enable-writes polls up to 30 s). */
export async function waitForFreshRecord(
  tier: MetadataTier,
  id: string,
  clock: Clock,
  lagMs: number,
  timeoutMs: number,
  pollMs = 500,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await tier.getObject<StorageRecordValue>(STORAGE_BUCKET.name, id);
    const ts = row?.value.timestamp;
    if (ts !== undefined && ts !== WRITES_DISABLED_TIMESTAMP && clock.now() - ts <= lagMs) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
