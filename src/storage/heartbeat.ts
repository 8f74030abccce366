/**
 * The capacity heartbeat, as minnow (MANTA-REFERENCE §1.6): every interval, write the node's
 * `manta_storage` record (key = manta_storage_id) with its free space and `timestamp`. The
 * picker ignores records older than its lag, so a stale timestamp keeps writes away
 * (manta-mako-adm, §4.1). Differences from minnow:
 *   - the disable-writes setting lives in the control database and is read on every beat, so a
 *     disabled node stays disabled across restarts and upgrades (the original's note "this change
 *     will not persist if this mako zone is upgraded" no longer applies);
 *   - after writing a fresh record the beat re-reads the setting and, if it was disabled in the
 *     meantime, rewrites the record stale; together with disable-writes (setting first, record
 *     second) no interleaving leaves a disabled node looking fresh past the end of a beat.
 */
import os from 'node:os';
import { type Clock, systemClock } from '../core/clock.js';
import { toRemoraError, type RemoraError } from '../core/errors.js';
import { readWritesEnabled } from '../metadata/control.repository.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { STORAGE_BUCKET } from '../metadata/buckets.js';
import { type StorageRecordValue, WRITES_DISABLED_TIMESTAMP } from '../metadata/types.js';
import type { CapacitySnapshot } from './capacity.js';

export interface CapacitySource {
  snapshot(): Promise<CapacitySnapshot>;
}

export interface HeartbeatOptions {
  tier: MetadataTier;
  /** `manta_storage_id`. */
  id: string;
  datacenter: string;
  capacity: CapacitySource;
  /** config.storage.heartbeatIntervalMs (minnow SAPI template: 5000). */
  intervalMs: number;
  clock?: Clock;
  hostname?: string;
  /** The node's base URL, written into the record so jobs find the node (storage/node-directory.ts). */
  url?: string;
  /** Called when a beat fails; the heartbeat keeps going (a shard outage must not kill the node). */
  onError?: (err: RemoraError) => void;
}

/** The record as minnow builds it (minnow main.js:162-215). */
export function storageRecord(
  id: string,
  datacenter: string,
  hostname: string,
  snap: CapacitySnapshot,
  timestamp: number,
  url?: string,
): StorageRecordValue {
  return {
    manta_storage_id: id,
    datacenter,
    hostname,
    availableMB: snap.availableMB,
    percentUsed: snap.percentUsed,
    timestamp,
    filesystem: '/manta',
    ...(url ? { url } : {}),
  };
}

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The last value written, for `show` and for tests. */
  lastRecord: StorageRecordValue | undefined;
  lastError: RemoraError | undefined;

  private constructor(private readonly opts: HeartbeatOptions) {}

  /** Start beating: the first beat runs now, then one every `intervalMs` (never overlapping). */
  static start(opts: HeartbeatOptions): Heartbeat {
    const hb = new Heartbeat(opts);
    hb.tick();
    return hb;
  }

  /** One beat now; resolves when its record is written. Safe to call while the timer runs. */
  async beat(): Promise<StorageRecordValue> {
    const { tier, id, datacenter, capacity } = this.opts;
    const clock = this.opts.clock ?? systemClock;
    const hostname = this.opts.hostname ?? os.hostname();
    const snap = await capacity.snapshot();
    const enabled = await readWritesEnabled(tier.control, id);
    const fresh = storageRecord(
      id,
      datacenter,
      hostname,
      snap,
      enabled ? clock.now() : WRITES_DISABLED_TIMESTAMP,
      this.opts.url,
    );
    await tier.putObject(STORAGE_BUCKET.name, id, { ...fresh });
    let written = fresh;
    if (enabled && !(await readWritesEnabled(tier.control, id))) {
      written = { ...fresh, timestamp: WRITES_DISABLED_TIMESTAMP };
      await tier.putObject(STORAGE_BUCKET.name, id, { ...written });
    }
    this.lastRecord = written;
    return written;
  }

  /** Resolves when no timer-driven beat is in flight (e.g. once the first beat has landed). */
  async idle(): Promise<void> {
    await this.running;
  }

  /** Stop the timer and wait for a beat in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private tick(): void {
    if (this.stopped) return;
    this.running = this.beat()
      .then(() => {
        this.lastError = undefined;
      })
      .catch((err: unknown) => {
        this.lastError = toRemoraError(err);
        this.opts.onError?.(this.lastError);
      })
      .finally(() => {
        if (this.stopped) return;
        this.timer = setTimeout(() => this.tick(), this.opts.intervalMs);
        // The node's server keeps the process alive; the heartbeat alone should not.
        this.timer.unref();
      });
  }
}
