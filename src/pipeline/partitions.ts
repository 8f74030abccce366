/**
 * Partition keys. A run is keyed by (job, partition key); every key starts with its
 * pipeline day so `remora runs` can show a days × jobs matrix:
 *
 *   day        2024-03-01
 *   hour       2024-03-01T05
 *   day-shard  2024-03-01/shard=2.moray.remora.local
 *   day-node   2024-03-01/node=1.stor.dc1.remora.local
 */
import type { RemoraConfig } from '../config/config.js';
import { dayStartMs } from '../core/days.js';

/**
 * Partition kinds. Every partition belongs to a pipeline day (the matrix of `remora runs`
 * is days × jobs): `day`; `hour` (24 per day); `day-shard` (one per shard per day, e.g. a
 * snapshot); `day-node` (one per storage node per day, e.g. a manifest).
 */
export type PartitionKind = 'day' | 'hour' | 'day-shard' | 'day-node';

/** What partitioning needs to know of a job (a JobDefinition is one). */
export interface PartitionedJob {
  partition: PartitionKind;
  /** For `day-shard` jobs: which shards (default all). */
  shardRole?: 'index' | 'storage' | 'all';
}

export interface Partition {
  kind: PartitionKind;
  key: string;
  day: string;
  hour?: number;
  shard?: string;
  node?: string;
}

export interface Topology {
  shards: { name: string; role: 'index' | 'storage' }[];
  nodes: string[];
}

export function topologyOf(config: RemoraConfig): Topology {
  return {
    shards: config.shards.map((s) => ({ name: s.name, role: s.role })),
    nodes: config.storage.nodes.map((n) => n.id),
  };
}

export function parsePartition(kind: PartitionKind, key: string): Partition {
  const day = key.slice(0, 10);
  switch (kind) {
    case 'day':
      return { kind, key, day };
    case 'hour':
      return { kind, key, day, hour: Number(key.slice(11, 13)) };
    case 'day-shard':
      return { kind, key, day, shard: key.slice('YYYY-MM-DD/shard='.length) };
    case 'day-node':
      return { kind, key, day, node: key.slice('YYYY-MM-DD/node='.length) };
  }
}

export function dayPartition(day: string): Partition {
  return { kind: 'day', key: day, day };
}

/** Every partition of a job for one pipeline day. */
export function partitionsFor(job: PartitionedJob, day: string, topo: Topology): Partition[] {
  switch (job.partition) {
    case 'day':
      return [dayPartition(day)];
    case 'hour':
      return Array.from({ length: 24 }, (_, h) => {
        const hh = String(h).padStart(2, '0');
        return { kind: 'hour' as const, key: `${day}T${hh}`, day, hour: h };
      });
    case 'day-shard': {
      const role = job.shardRole ?? 'all';
      return topo.shards
        .filter((s) => role === 'all' || s.role === role)
        .map((s) => ({ kind: 'day-shard' as const, key: `${day}/shard=${s.name}`, day, shard: s.name }));
    }
    case 'day-node':
      return topo.nodes.map((n) => ({ kind: 'day-node' as const, key: `${day}/node=${n}`, day, node: n }));
  }
}

/**
 * The upstream partitions a downstream partition needs: the upstream's partitions of the same
 * day, narrowed to the same shard / node / hour when both sides have that dimension. So
 * unpack(day, shard 2) needs snapshot(day, shard 2); metering(day) needs unpack of every shard.
 */
export function upstreamPartitions(down: Partition, up: PartitionedJob, topo: Topology): Partition[] {
  return partitionsFor(up, down.day, topo).filter(
    (p) =>
      (p.shard === undefined || down.shard === undefined || p.shard === down.shard) &&
      (p.node === undefined || down.node === undefined || p.node === down.node) &&
      (p.hour === undefined || down.hour === undefined || p.hour === down.hour),
  );
}

/** A partition key made safe for one path segment. */
export function partitionSlug(key: string): string {
  return key.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/**
 * When a partition's input can be complete: an hour once it has ended, anything else once its
 * day has begun. Deadlines count from here (an hour created at its day's trigger is not late
 * before it is over), and a drive to completion does not wait for partitions not due yet.
 */
export function partitionDueMs(p: Partition): number {
  return p.kind === 'hour' ? dayStartMs(p.day) + ((p.hour ?? 0) + 1) * 3_600_000 : dayStartMs(p.day);
}
