/**
 * Putting a tombstoned copy back on its node (`remora gc restore`; rebalance can use it to undo
 * a tombstone of its own). A copy may have been tombstoned more than once (restored, then
 * collected again): without a day, the newest day that holds it is the one restored.
 *
 *   restored  the copy is back at `/<owner>/<objectId>`, from `day`
 *   exists    a copy is already in place (found while trying `day`): nothing was overwritten
 *   absent    no tombstone day on the node holds it (purged, or never tombstoned here)
 */
import type { StorageClient } from './storage-client.js';

export interface RestoreOutcome {
  outcome: 'restored' | 'exists' | 'absent';
  /** The tombstone day restored from (or where the attempt found the copy already in place). */
  day?: string;
  /** The days tried, newest first. */
  tried: string[];
}

export async function restoreFromTombstone(
  storage: Pick<StorageClient, 'tombstoneDays' | 'restore'>,
  nodeUrl: string,
  owner: string,
  objectId: string,
  opts: { day?: string } = {},
): Promise<RestoreOutcome> {
  const days =
    opts.day !== undefined
      ? [opts.day]
      : (await storage.tombstoneDays(nodeUrl)).map((d) => d.day).sort((a, b) => b.localeCompare(a));
  const tried: string[] = [];
  for (const day of days) {
    tried.push(day);
    const r = await storage.restore(nodeUrl, owner, objectId, day);
    if (r !== 'absent') return { outcome: r, day, tried };
  }
  return { outcome: 'absent', tried };
}
