/**
 * The `manifests` job (docs/audit.md "Manifests"): one run per storage node per day lists the
 * node (`GET /manifest`, the original's `upload_mako_ls.sh`, MANTA-REFERENCE §2.4), publishes the
 * raw listing at `/poseidon/stor/mako/<id>` (at the run's commit) with its start instant (`m-mako-dump-time`,
 * MANTA-2955), and ingests it into chunks partitioned by objectId (src/dumps/mako.ts, the code
 * behind `remora manifest`), so audit and cruft join one partition group of every shard and
 * every node (src/dumps/partition-inputs.ts). Its output is an UnpackRef of the node plus the
 * instant the listing started.
 *
 *   inputs  upstream `snapshot` (every shard's, same day): the listing starts after the day's
 *           snapshots, so they are older than it (DESIGN.md invariant 5; the original got the
 *           same order by searching moray dumps backwards from the earliest mako dump, §3.0);
 *           external "the node answers": a node that is down keeps its own run waiting (and
 *           raises the deadline alert), the other nodes' runs go on. A configured node with
 *           no address at all (no url, no heartbeat record) is a warning and an output with
 *           `reached: false`, as in tombstone-purge: there is nothing to wait for.
 *   task    list → ingest, the source manifest and the raw listing staged beside the attempt's chunks
 *   commit  the staged manifest becomes the node's source manifest and the staged listing is
 *           copied to `/poseidon/stor/mako/<id>` (src/dumps/source-commit.ts: a lost attempt that
 *           keeps running never writes either, docs/pipeline.md); the task's output
 */
import { z } from 'zod';
import { RemoraError } from '../../core/errors.js';
import { ingestMakoListing } from '../../dumps/mako.js';
import { makoPath } from '../../dumps/layout.js';
import {
  commitStagedManifest,
  discardStagedManifest,
  publishStagedListing,
} from '../../dumps/source-commit.js';
import { publishedPath } from '../../core/published-path.js';
import { unpackRefSchema } from '../../dumps/partition-inputs.js';
import { DEFAULT_PARTITIONS } from '../../dumps/partition.js';
import { outputType, requireStorage, type ExternalInput, type JobDefinition } from '../../pipeline/job.js';

/** A node's committed listing: the ingest's UnpackRef, the instant the listing started, its counts. */
export const listingSchema = unpackRefSchema.extend({
  /** ISO instant the node's listing started (m-mako-dump-time). */
  startedAt: z.string(),
  /** Files kept (owner and objectId UUIDs), and every line listed. */
  files: z.number(),
  lines: z.number(),
});
export type Listing = z.infer<typeof listingSchema>;

export const manifestsOutput = outputType(
  'manifests',
  z.object({
    node: z.string(),
    /** False when the node's address is unknown (configured, no url, no heartbeat record). */
    reached: z.boolean(),
    listing: listingSchema.optional(),
  }),
);
export type ManifestsOutput = ReturnType<typeof manifestsOutput.parse>;

export interface ManifestsJobOptions {
  /** P of the listing's chunks: the pipeline's number, or DEFAULT_PARTITIONS when it is "auto". */
  partitions: number;
  /** `pipeline.outputPrefix`: side by side, the raw listing is stored under it (src/core/published-path.ts). */
  outputPrefix?: string;
}

/** How long "does the node answer" may take before the run keeps waiting (checked every tick). */
const ANSWER_TIMEOUT_MS = 2_000;

/** The node answers a credentialed request (its tombstone days: cheap, read-only). */
export const nodeAnswers: ExternalInput = {
  name: 'the storage node answers',
  exists: async ({ services, partition }) => {
    const node = partition.node!;
    await services.nodes.refresh();
    const url = services.nodes.url(node);
    // Never heard of (no url, no heartbeat record): nothing to wait for; the task says so.
    if (!url) return { ready: true };
    // Without the credential the task fails with the reason (requireStorage): no point waiting.
    if (!services.storage) return { ready: true };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
    });
    try {
      await Promise.race([services.storage.tombstoneDays(url), timeout]);
      return { ready: true };
    } catch (err) {
      return { ready: false, detail: `${node} at ${url} does not answer: ${(err as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  },
};

export function manifestsJob(
  o: ManifestsJobOptions = { partitions: DEFAULT_PARTITIONS },
): JobDefinition<unknown, ManifestsOutput, ManifestsOutput> {
  return {
    name: 'manifests',
    description: "per storage node: list the node's files (mako manifest) and ingest them by objectId",
    partition: 'day-node',
    inputs: { upstream: ['snapshot'], external: [nodeAnswers] },
    deadlineMs: 6 * 3_600_000,
    maxAttempts: 3,
    taskTimeoutMs: 2 * 3_600_000,
    output: manifestsOutput,
    split: () => Promise.resolve([{ key: 'list' }]),
    runTask: async (ctx) => {
      const node = ctx.partition.node!;
      const { nodes, store } = ctx.services;
      await nodes.refresh();
      const url = nodes.url(node);
      if (!url) {
        // As tombstone-purge: a warning, not a failure. The audit then reports this node's
        // copies as `no-listing` (it cannot say they are missing), so the day shows degraded.
        ctx.report.event('node-address-unknown', 'warning', {
          node,
          why: 'configured, but with no url and no heartbeat record: nothing could be listed',
        });
        return { report: ctx.report.finish(), output: { node, reached: false } };
      }
      const storage = requireStorage(ctx.services);
      const listed = ctx.report.phase('list');
      const listing = await storage.manifest(url);
      const r = await ingestMakoListing(
        store,
        { storageId: node, ...listing },
        // Staged: the run's commit switches the manifest (src/dumps/source-commit.ts).
        { partitions: o.partitions, outputPrefix: o.outputPrefix, commit: false },
      );
      listed();
      const m = r.manifest;
      ctx.report.absorb(m.report);
      const files = m.tables.mako?.rows ?? 0;
      const lines = m.report.counters.lines ?? 0;
      ctx.report.count('recordsScanned', lines).count('processed', files);
      ctx.report.count('bytesWritten', m.tables.mako?.chunks.reduce((a, c) => a + c.bytes, 0) ?? 0);
      return {
        report: ctx.report.finish(),
        output: {
          node,
          reached: true,
          listing: {
            source: m.source,
            day: m.day,
            runId: m.runId,
            partitions: m.partitions,
            manifestPath: r.manifestPath,
            startedAt: m.snapshotTime,
            files,
            lines,
          },
        },
      };
    },
    // A fenced attempt's staged chunks and manifest: never committed, so removed.
    discard: async (ctx, out) => {
      if (out?.listing) await discardStagedManifest(ctx.services.store, out.listing);
    },
    commit: async (ctx) => {
      const out = ctx.tasks[0]?.output;
      if (!out)
        throw new RemoraError('Internal', `manifests ${ctx.partition.key}: the task returned no output`);
      if (out.listing) {
        await commitStagedManifest(ctx.services.store, out.listing);
        await publishStagedListing(
          ctx.services.store,
          out.listing,
          publishedPath(o.outputPrefix, makoPath(out.node)),
        );
      }
      return { output: out };
    },
  };
}
