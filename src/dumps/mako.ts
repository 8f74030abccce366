/**
 * Storage-node listings ("mako dumps", MANTA-REFERENCE §2.4): upload each node's listing to
 * `/poseidon/stor/mako/<manta_storage_id>` with its start instant (`m-mako-dump-time`,
 * MANTA-2955), and ingest it into the same partitioning as the metadata (table `mako`,
 * partitioned by objectId), so audit and cruft join one partition of each.
 *
 * Kept: `/manta/<uuid owner-or-creator>/<uuid objectId>`. Skipped and counted (consumers of the
 * original filtered these themselves, §2.4): tombstones (`/manta/tombstone/…`), temp and work
 * directories (nginx_temp, rebalance_tmp, rebalancer, manta_gc), mantav2 `/manta/v2/…`,
 * non-UUID owners and objectIds, and lines that are not `path\tbytes\tmtime[\tKB]`.
 *
 * The ingest's source manifest is committed at once by default (`remora manifest`), or staged
 * for the manifests job's commit step with `commit: false` (src/dumps/source-commit.ts: a lost
 * pipeline attempt that keeps running must not replace the committed listing's manifest).
 */
import { PassThrough } from 'node:stream';
import { isUuid } from '../core/ids.js';
import { publishedPath } from '../core/published-path.js';
import { RemoraError } from '../core/errors.js';
import { PartitionedChunkWriter } from './chunk-writer.js';
import { deleteSupersededAttempt, openChunkRun } from './chunk-run.js';
import type { DuckOptions } from './duckdb.js';
import { makoPath, sourceManifestPath } from './layout.js';
import { dayOf } from '../core/days.js';
import { readSourceManifest, type SourceManifest, writeSourceManifest } from './manifest.js';
import { stageSourceManifest, stagedListingPath } from './source-commit.js';
import type { ObjectStore, PutResult } from '../objectstore/object-store.js';
import { DEFAULT_PARTITIONS } from './partition.js';
import { ReportBuilder } from '../core/run-report.js';
import { makoTableSpec } from './table-specs.js';

export interface MakoListing {
  storageId: string;
  /** ISO instant the listing started. */
  startedAt: string;
  datacenter?: string;
  lines: AsyncIterable<string>;
}

export interface MakoIngestOptions {
  partitions?: number;
  /** Upload the raw listing to /poseidon/stor/mako/<id> (default true; false when it came from there). */
  upload?: boolean;
  /**
   * `pipeline.outputPrefix`: side by side, the upload goes to `publishedPath` of that path, never
   * over the listing the original's mako cron uploaded there (src/core/published-path.ts).
   */
  outputPrefix?: string;
  duck?: DuckOptions;
  /**
   * false (the pipeline): stage the manifest beside this run's chunks instead of committing it,
   * and upload the raw listing there too (stagedListingPath), not to the shared
   * /poseidon/stor/mako/<id>; the manifests job's commit step switches the manifest and publishes
   * the listing (src/dumps/source-commit.ts). Default true.
   */
  commit?: boolean;
}

export interface MakoIngestResult {
  listingPath: string;
  manifestPath: string;
  manifest: SourceManifest;
}

const TEMP_DIRS = new Set(['nginx_temp', 'rebalance_tmp', 'rebalancer', 'manta_gc']);

/** Classify one listing line: the CSV values of a kept file, or the counter it is skipped under. */
export function classifyMakoLine(line: string): { values: (string | null)[] } | { skip: string } {
  const cols = line.split('\t');
  if ((cols.length !== 3 && cols.length !== 4) || !cols.slice(1).every((c) => /^\d+(\.\d+)?$/.test(c)))
    return { skip: 'bad_line' };
  const [p, bytes, mtime, kb] = cols as [string, string, string, string | undefined];
  const parts = p.split('/');
  if (parts[0] !== '' || parts[1] !== 'manta') return { skip: 'bad_line' };
  const top = parts[2] ?? '';
  if (top === 'tombstone') return { skip: 'tombstone' };
  if (TEMP_DIRS.has(top)) return { skip: 'temp' };
  if (top === 'v2') return { skip: 'v2' };
  if (!isUuid(top)) return { skip: 'non_uuid_owner' };
  if (parts.length !== 4 || !isUuid(parts[3]!)) return { skip: 'non_uuid_object' };
  // %T@ may carry a fraction before MANTA-3854: keep whole seconds.
  const secs = String(Math.floor(Number(mtime)));
  return { values: [p, bytes, secs, kb ?? null, top, parts[3]!] };
}

export async function ingestMakoListing(
  store: ObjectStore,
  listing: MakoListing,
  opts: MakoIngestOptions = {},
): Promise<MakoIngestResult> {
  const startedAt = new Date(listing.startedAt);
  if (Number.isNaN(startedAt.getTime()))
    throw new RemoraError(
      'MalformedInput',
      `${listing.storageId}: listing start ${listing.startedAt} is not a time`,
    );
  const report = new ReportBuilder();
  const day = dayOf(startedAt);
  const source = listing.storageId;
  const { ctx, close } = await openChunkRun(store, report, {
    day,
    source,
    partitions: opts.partitions ?? DEFAULT_PARTITIONS,
    segmentRows: 2_000_000,
    duck: opts.duck,
  });
  const writer = new PartitionedChunkWriter(makoTableSpec(), ctx);
  // The pipeline's attempt stages its listing and manifest; the run's commit publishes them.
  const staged = opts.commit === false;
  const listingPath = staged
    ? stagedListingPath(day, source, ctx.runId)
    : publishedPath(opts.outputPrefix, makoPath(source));
  const upload = opts.upload === false ? undefined : new PassThrough();
  let put: Promise<PutResult> | undefined;
  if (upload) {
    const meta: Record<string, string> = { 'm-mako-dump-time': startedAt.toISOString() };
    if (staged) meta['m-run-id'] = ctx.runId;
    if (listing.datacenter) meta['m-datacenter'] = listing.datacenter;
    put = store.put(listingPath, upload, meta);
    put.catch(() => {});
  }
  try {
    let n = 0;
    for await (const line of listing.lines) {
      if (line === '') continue;
      if (upload && !upload.write(line + '\n')) await new Promise((r) => upload.once('drain', r));
      report.count('lines');
      const c = classifyMakoLine(line);
      if ('values' in c) writer.add(c.values);
      else {
        report.count(`skipped.${c.skip}`);
        if (c.skip === 'bad_line') report.event('bad_line', 'error', `${source}: ${line}`);
        else if (c.skip === 'non_uuid_owner' || c.skip === 'non_uuid_object')
          report.event(c.skip, 'info', line);
      }
      if (++n % 10_000 === 0) await writer.drain();
    }
    upload?.end();
    const listed = put ? await put : undefined;
    const chunks = await writer.finish();
    report.count('rows.mako', writer.rows);
    const built = report.finish();
    const manifest: SourceManifest = {
      version: 1,
      source,
      kind: 'storage-node',
      day,
      runId: ctx.runId,
      snapshotTime: startedAt.toISOString(),
      input: [{ path: listingPath, ...(listed ? { bytes: listed.bytes, sha256: listed.sha256 } : {}) }],
      partitions: ctx.partitions,
      partitionFunction: 'fnv1a32(utf8(lower(objectId or _key))) mod partitions',
      tables: { mako: { kind: 'mako', rows: writer.rows, chunks } },
      report: built,
      verdict: built.verdict,
      createdAt: new Date().toISOString(),
    };
    if (staged) {
      await stageSourceManifest(store, manifest);
      return { listingPath, manifestPath: sourceManifestPath(day, source), manifest };
    }
    const previous = await readSourceManifest(store, day, source);
    const manifestPath = await writeSourceManifest(store, manifest);
    await deleteSupersededAttempt(store, day, source, ctx.runId, previous);
    return { listingPath, manifestPath, manifest };
  } catch (err) {
    upload?.destroy(err as Error);
    // This attempt's chunks are named by no manifest: remove them.
    for (const c of await writer.discard()) await store.delete(c.path).catch(() => {});
    throw err;
  } finally {
    await close();
  }
}

/** Ingest a listing already in the store (e.g. uploaded by a node's own cron, as mako did). */
export async function ingestMakoObject(
  store: ObjectStore,
  storageId: string,
  opts: MakoIngestOptions = {},
): Promise<MakoIngestResult> {
  const p = makoPath(storageId);
  const head = await store.head(p);
  if (!head) throw new RemoraError('ObjectNotFound', `no listing at ${p}`);
  // MANTA-2955: the dump time header, falling back to the object's mtime.
  const startedAt = head.meta['m-mako-dump-time'] ?? head.mtime.toISOString();
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: await store.get(p), crlfDelay: Infinity });
  return ingestMakoListing(store, { storageId, startedAt, lines }, { ...opts, upload: false });
}
