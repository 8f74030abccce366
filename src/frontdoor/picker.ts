/**
 * The storage-node picker, as muskie's (MANTA-REFERENCE §4.2, muskie lib/picker.js):
 *  1. only records that are fresh (timestamp within `lagMs`; disable-writes makes a record
 *     stale on purpose) and under the max fill (`percentUsed <= maxUtilizationPct`);
 *  2. per datacenter, only nodes with `availableMB >= ceil(size / 1 MiB)`;
 *  3. three tuples (one primary, two fallbacks) of `replicas` nodes each, datacenters taken
 *     round-robin from a shuffled list, a random eligible node within each, never one node
 *     twice in a tuple; with multiDC each tuple spans at least two datacenters.
 * Pure: the records, the clock reading and the randomness are inputs.
 */
import { RemoraError } from '../core/errors.js';
import { type Random, shuffle } from '../core/clock.js';
import type { Shark, StorageRecordValue } from '../metadata/types.js';

export interface PickerPolicy {
  lagMs: number;
  maxUtilizationPct: number;
  multiDC: boolean;
}

export interface PickRequest {
  /** Object size in bytes. */
  size: number;
  replicas: number;
}

/** How many tuples muskie builds: the primary and two fallbacks. */
export const TUPLES = 3;
const MiB = 1024 * 1024;

export function eligibleNodes(
  records: StorageRecordValue[],
  now: number,
  policy: PickerPolicy,
  size: number,
): StorageRecordValue[] {
  const sizeMB = Math.ceil(size / MiB);
  return records.filter(
    (r) =>
      r.timestamp >= now - policy.lagMs &&
      r.percentUsed <= policy.maxUtilizationPct &&
      r.availableMB >= sizeMB,
  );
}

export function pickTuples(
  records: StorageRecordValue[],
  req: PickRequest,
  now: number,
  policy: PickerPolicy,
  random: Random,
): Shark[][] {
  const eligible = eligibleNodes(records, now, policy, req.size);
  const byDc = new Map<string, StorageRecordValue[]>();
  for (const r of eligible) {
    const list = byDc.get(r.datacenter) ?? [];
    list.push(r);
    byDc.set(r.datacenter, list);
  }
  if (byDc.size === 0 || eligible.length < req.replicas) {
    throw new RemoraError(
      'NotEnoughStorageNodes',
      `need ${req.replicas} storage node(s) with ${Math.ceil(req.size / MiB)} MB free, fresh heartbeat and under ` +
        `${policy.maxUtilizationPct}% full; ${eligible.length} of ${records.length} qualify`,
      { details: { eligible: eligible.length, known: records.length } },
    );
  }
  if (req.replicas > 1 && policy.multiDC && byDc.size < 2) {
    throw new RemoraError(
      'NotEnoughStorageNodes',
      `${req.replicas} copies must span at least 2 datacenters, but only ${[...byDc.keys()].join(', ')} has eligible nodes`,
    );
  }
  for (const list of byDc.values()) list.sort((a, b) => a.availableMB - b.availableMB);
  const tuples: Shark[][] = [];
  for (let t = 0; t < TUPLES; t++) tuples.push(buildTuple(byDc, req.replicas, random));
  return tuples;
}

function buildTuple(byDc: Map<string, StorageRecordValue[]>, replicas: number, random: Random): Shark[] {
  const dcs = shuffle([...byDc.keys()], random);
  const chosen = new Set<string>();
  const tuple: Shark[] = [];
  let dcIndex = 0;
  let misses = 0;
  while (tuple.length < replicas) {
    const dc = dcs[dcIndex % dcs.length]!;
    dcIndex++;
    const candidates = byDc.get(dc)!.filter((r) => !chosen.has(r.manta_storage_id));
    if (candidates.length === 0) {
      // This datacenter is used up; the eligible count check above guarantees another has room.
      if (++misses > dcs.length)
        throw new Error('picker: no unchosen node left (eligible count check is wrong)');
      continue;
    }
    misses = 0;
    const pick = candidates[Math.floor(random.next() * candidates.length)]!;
    chosen.add(pick.manta_storage_id);
    tuple.push({ datacenter: pick.datacenter, manta_storage_id: pick.manta_storage_id });
  }
  return tuple;
}
