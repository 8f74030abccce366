/**
 * What audit and cruft read for a day, and the one rule they share before reading it: the
 * committed unpack of every index shard and the listing of every node (the manifests job), with
 * every snapshot older than every listing (audit.rules.ts checkLikeWithLike, invariant 5).
 */
import { PartitionInputs, type UnpackRef } from '../../dumps/partition-inputs.js';
import { upstreamOf, type PlanContext } from '../../pipeline/job.js';
import { manifestsOutput } from '../manifests/manifests.job.js';
import { unpackOutput } from '../unpack/unpack.job.js';
import { checkLikeWithLike } from './audit.rules.js';

export interface DayInputs {
  /** The index shards' unpacks and the nodes' listings, as plain references (task params). */
  sources: UnpackRef[];
  listings: UnpackRef[];
  /** The instants compared. */
  times: {
    snapshots: { shard: string; snapshotTime: string }[];
    listings: { node: string; startedAt: string }[];
  };
  /** Both together: one task per partition group of `tables` (PartitionInputs.tasks). */
  all: PartitionInputs;
  /** Configured nodes whose address was unknown: no listing (their copies are `no-listing`). */
  unreached: string[];
}

const ref = ({ source, day, runId, partitions, manifestPath }: UnpackRef): UnpackRef => ({
  source,
  day,
  runId,
  partitions,
  manifestPath,
});

/** The day's inputs from a run's upstream; InputsOutOfOrder when a snapshot is not older than a listing. */
export async function dayInputs(ctx: PlanContext): Promise<DayInputs> {
  const index = new Set(ctx.services.config.shards.filter((s) => s.role === 'index').map((s) => s.name));
  const sources = upstreamOf(ctx.upstream, unpackOutput)
    .map((u) => ref(u.output))
    .filter((s) => index.has(s.source));
  const outputs = upstreamOf(ctx.upstream, manifestsOutput).map((u) => u.output);
  const listed = outputs.flatMap((o) => (o.listing ? [o.listing] : []));
  const snaps = (await PartitionInputs.open(ctx.services.store, sources)).manifests;
  const times = {
    snapshots: snaps.map((m) => ({ shard: m.source, snapshotTime: m.snapshotTime })),
    listings: listed.map((l) => ({ node: l.source, startedAt: l.startedAt })),
  };
  checkLikeWithLike(ctx.partition.day, times.snapshots, times.listings);
  const listings = listed.map(ref);
  const all = await PartitionInputs.open(ctx.services.store, [...sources, ...listings]);
  return { sources, listings, times, all, unreached: outputs.filter((o) => !o.reached).map((o) => o.node) };
}
