/**
 * A storage node's capacity, as minnow reports it (MANTA-REFERENCE §1.6, minnow main.js:162-215):
 *   availableMB = floor(bavail × frsize / 1 MiB)
 *   percentUsed = ceil(used / total × 100)
 *
 * Without a cap the numbers come from statfs(root). With `capacityMB` (so tests and the demo can
 * fill a node) total = the cap and used = logical bytes under the root, counted once at start and
 * then kept up to date by the node on every write: the heartbeat never walks the tree.
 *
 * Uploads in flight hold a reservation, so two concurrent PUTs cannot both squeeze into the last
 * free megabytes (the 507 check is against used + reserved).
 */
import fs from 'node:fs';
import { bytesUnder } from './manifest.js';

export const MiB = 1024 * 1024;

export interface CapacitySnapshot {
  totalBytes: number;
  usedBytes: number;
  availableBytes: number;
  /** floor(available / 1 MiB), minnow's availableMB. */
  availableMB: number;
  /** ceil(used / total × 100), minnow's percentUsed. */
  percentUsed: number;
}

export class CapacityTracker {
  private reserved = 0;

  private constructor(
    readonly root: string,
    readonly capBytes: number | undefined,
    private usedBytes: number,
  ) {}

  /** With a cap, counts the bytes already under root (one walk, at start). */
  static async open(root: string, capacityMB?: number): Promise<CapacityTracker> {
    if (capacityMB === undefined) return new CapacityTracker(root, undefined, 0);
    return new CapacityTracker(root, capacityMB * MiB, await bytesUnder(root));
  }

  async snapshot(): Promise<CapacitySnapshot> {
    const st = await fs.promises.statfs(this.root);
    const fsAvailable = st.bavail * st.bsize;
    let total: number;
    let used: number;
    let available: number;
    if (this.capBytes === undefined) {
      total = st.blocks * st.bsize;
      used = total - st.bfree * st.bsize;
      available = fsAvailable;
    } else {
      total = this.capBytes;
      used = this.usedBytes;
      // The cap never promises more than the filesystem really has.
      available = Math.max(0, Math.min(total - used, fsAvailable));
    }
    return {
      totalBytes: total,
      usedBytes: used,
      availableBytes: available,
      availableMB: Math.floor(available / MiB),
      percentUsed: total > 0 ? Math.min(100, Math.ceil((used / total) * 100)) : 100,
    };
  }

  /** Reserve room for `bytes` more; false when that would overflow the node. */
  async reserve(bytes: number): Promise<boolean> {
    const snap = await this.snapshot();
    if (this.reserved + bytes > snap.availableBytes) return false;
    this.reserved += bytes;
    return true;
  }

  /** Synchronous reservation against the cap only, for per-chunk checks of bodies without a length. */
  reserveCapped(bytes: number): boolean {
    if (this.capBytes !== undefined && this.usedBytes + this.reserved + bytes > this.capBytes) return false;
    this.reserved += bytes;
    return true;
  }

  release(bytes: number): void {
    this.reserved = Math.max(0, this.reserved - bytes);
  }

  /** A write landed: `delta` = new size − size of the file it replaced (may be negative). */
  commit(delta: number): void {
    this.usedBytes = Math.max(0, this.usedBytes + delta);
  }
}
