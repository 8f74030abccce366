/**
 * What audit and cruft read for a day, and the one rule they share before reading it: the
 * committed unpack of every index shard and the listing of every node (the manifests job), with
 * every snapshot older than every listing (audit.rules.ts checkLikeWithLike, invariant 5).
 */
import { PartitionInputs, type UnpackRef } from '../../dumps/partition-inputs.js';
import { upstreamOf, type PlanContext } from '../../pipeline/job.js';
import { manifestsOutput, type Listing } from '../manifests/manifests.job.js';
import { readSourceManifest } from '../../dumps/manifest.js';
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

/**
 * The node's listing as committed now. A manifests attempt declared lost (no heartbeat) is told
 * to stop through its signal (AttemptLost), but the listing's ingest (src/dumps/mako.ts) does not
 * watch it: it can finish after its retry and replace the listing the run committed with its own,
 * equally complete one (the same node, the same day; the source manifest is written last). Audit
 * and cruft read the listing that is there, whose start instant is then checked like any other
 * (like-with-like below); reading the replaced one would fail with StaleState.
 */
async function currentListing(ctx: PlanContext, l: Listing): Promise<Listing> {
  const m = await readSourceManifest(ctx.services.store, l.day, l.source);
  if (!m || m.runId === l.runId || m.kind !== 'storage-node') return l;
  return { ...l, runId: m.runId, partitions: m.partitions, startedAt: m.snapshotTime };
}

/** The day's inputs from a run's upstream; InputsOutOfOrder when a snapshot is not older than a listing. */
export async function dayInputs(ctx: PlanContext): Promise<DayInputs> {
  const index = new Set(ctx.services.config.shards.filter((s) => s.role === 'index').map((s) => s.name));
  const sources = upstreamOf(ctx.upstream, unpackOutput)
    .map((u) => ref(u.output))
    .filter((s) => index.has(s.source));
  const outputs = upstreamOf(ctx.upstream, manifestsOutput).map((u) => u.output);
  const listed = await Promise.all(
    outputs.flatMap((o) => (o.listing ? [o.listing] : [])).map((l) => currentListing(ctx, l)),
  );
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
