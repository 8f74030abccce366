/**
 * Committing a source manifest from the pipeline: staged by the task, switched by the run's commit.
 *
 *   task    unpackDump / ingestMakoListing with `commit: false`: chunks under `<source>/<runId>/`
 *           and the manifest beside them (stagedManifestPath) — names no other attempt uses
 *   commit  commitStagedManifest, in the job's commit step (the coordinator, once per run, after
 *           each task has its one winning attempt): the staged manifest becomes the source's
 *           manifest (the commit pointer, src/dumps/manifest.ts), then the chunks of the one it
 *           replaced are deleted
 *   fenced  discardStagedManifest, by the worker for an attempt whose result is never committed
 *
 * A node's raw listing (the manifests job) follows the same path: the task uploads it beside its
 * chunks (stagedListingPath), the commit copies it to the shared `/poseidon/stor/mako/<id>`
 * (publishStagedListing), which the rebalance's last-write check reads when the node is down.
 *
 * Why (docs/pipeline.md "A lost attempt that keeps running"): an attempt declared lost may still
 * be running, and learn it late or never. When tasks wrote the day's manifest themselves, such an
 * attempt finishing after its retry had committed replaced the committed manifest and deleted the
 * committed run's chunks (downstream: StaleState; seen in CI, two executions 435 ms apart). A
 * check "am I still the current attempt" right before the write does not close that window (the
 * process can stall between the check and the write), and the object store has no conditional
 * put to make the write itself refuse. Here no attempt writes a shared name or deletes anything
 * but its own: the only writer of the pointer is the run's commit, which runs after the executor
 * has settled, in one conditional statement, which attempt's output the task keeps
 * (completeAttempt in src/pipeline/tasks.repository.ts), and before any downstream run can start
 * from the run's output. So a lost attempt cannot replace a committed manifest or delete a
 * committed run's chunks, whenever it finishes.
 *
 * A commit that runs again (the coordinator stopped between this and switching its own pointer)
 * writes the same manifest and deletes nothing: idempotent.
 */
import { RemoraError } from '../core/errors.js';
import { readObjectText, type ObjectStore } from '../objectstore/object-store.js';
import { deleteSupersededAttempt } from './chunk-run.js';
import { sourceManifestPath, unpackedDayDir } from './layout.js';
import { readSourceManifest, type SourceManifest, writeSourceManifest } from './manifest.js';

/** Which staged manifest: the source, its day and the chunk run that wrote it (an UnpackRef has these). */
export interface StagedRef {
  day: string;
  source: string;
  runId: string;
}

/** `<day>/<source>/<runId>/manifest.json`: beside the run's chunks, never listed as a source's manifest. */
export function stagedManifestPath(day: string, source: string, runId: string): string {
  return `${unpackedDayDir(day)}/${source}/${runId}/manifest.json`;
}

/** `<day>/<source>/<runId>/listing`: a node's raw listing as one attempt fetched it. */
export function stagedListingPath(day: string, source: string, runId: string): string {
  return `${unpackedDayDir(day)}/${source}/${runId}/listing`;
}

/** `<day>/<source>/<runId>/`: where a run keeps its own files (chunks, staged manifest, listing). */
function ownDir(r: StagedRef): string {
  return `${unpackedDayDir(r.day)}/${r.source}/${r.runId}/`;
}

export async function stageSourceManifest(store: ObjectStore, m: SourceManifest): Promise<string> {
  const p = stagedManifestPath(m.day, m.source, m.runId);
  await store.put(p, Buffer.from(JSON.stringify(m, null, 1)), { 'm-run-id': m.runId });
  return p;
}

/** Make a staged manifest the source's committed one; delete the chunks (and staged manifest) it replaced. */
export async function commitStagedManifest(
  store: ObjectStore,
  ref: StagedRef,
): Promise<{ manifestPath: string; manifest: SourceManifest; replaced?: string }> {
  const staged = stagedManifestPath(ref.day, ref.source, ref.runId);
  const previous = await readSourceManifest(store, ref.day, ref.source);
  if (!(await store.head(staged))) {
    // Committed already, and its staged copy replaced since? Then there is nothing left to do.
    if (previous?.runId === ref.runId)
      return { manifestPath: sourceManifestPath(ref.day, ref.source), manifest: previous };
    throw new RemoraError(
      'StaleState',
      `${ref.source} on ${ref.day}: the staged manifest of run ${ref.runId} (${staged}) is gone, ` +
        'so it cannot be committed (removed by retention?): rerun the job for this partition',
    );
  }
  const manifest = JSON.parse(await readObjectText(store, staged)) as SourceManifest;
  if (manifest.runId !== ref.runId || manifest.source !== ref.source || manifest.day !== ref.day)
    throw new RemoraError(
      'MalformedInput',
      `${staged} names run ${manifest.runId} of ${manifest.source} on ${manifest.day}, not the run it is staged for`,
    );
  const manifestPath = await writeSourceManifest(store, manifest);
  if (!previous || previous.runId === ref.runId) return { manifestPath, manifest };
  await deleteSupersededAttempt(store, ref.day, ref.source, ref.runId, previous);
  for (const i of previous.input) if (i.path.startsWith(ownDir(previous))) await store.delete(i.path);
  await store.delete(stagedManifestPath(ref.day, ref.source, previous.runId));
  return { manifestPath, manifest, replaced: previous.runId };
}

/**
 * The manifests job's commit, after commitStagedManifest: the committed run's raw listing becomes
 * the node's shared listing at `target` (`/poseidon/stor/mako/<id>`, or its side-by-side twin),
 * with its start instant. Only the run's commit writes there, so a lost attempt that lists the
 * node late can never replace it. Idempotent: run again, it copies the same listing.
 */
export async function publishStagedListing(
  store: ObjectStore,
  ref: StagedRef,
  target: string,
): Promise<void> {
  const staged = stagedListingPath(ref.day, ref.source, ref.runId);
  const head = await store.head(staged);
  if (!head) {
    if ((await store.head(target))?.meta['m-run-id'] === ref.runId) return;
    throw new RemoraError(
      'StaleState',
      `${ref.source} on ${ref.day}: the staged listing of run ${ref.runId} (${staged}) is gone, ` +
        'so it cannot be published (removed by retention?): rerun the job for this partition',
    );
  }
  await store.put(target, await store.get(staged), head.meta);
}

/**
 * Remove a staged run that will never be committed (its attempt was fenced): its chunks and its
 * staged manifest. Never the committed one: refused when the source's manifest names it (it cannot,
 * as only the task's winning attempt is committed; this is the second lock on that door).
 * Returns the objects removed.
 */
export async function discardStagedManifest(store: ObjectStore, ref: StagedRef): Promise<number> {
  const current = await readSourceManifest(store, ref.day, ref.source);
  if (current?.runId === ref.runId) return 0;
  const staged = stagedManifestPath(ref.day, ref.source, ref.runId);
  if (!(await store.head(staged))) return 0;
  const m = JSON.parse(await readObjectText(store, staged)) as SourceManifest;
  const files = [...Object.values(m.tables).flatMap((t) => t.chunks), ...m.input]
    .map((f) => f.path)
    .filter((p) => p.startsWith(ownDir(ref)));
  for (const p of files) await store.delete(p);
  await store.delete(staged);
  return files.length + 1;
}
