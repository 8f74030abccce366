/**
 * Every object accounted for (issue 16): the objects of a job with their key, source,
 * destination, state, reason and detail (`rebalance status --objects`), and the jobs with their
 * state and counts (`rebalance jobs`) — what only SQL showed before. Objects are read in pages, so
 * listing a node of a million objects holds one page at a time.
 */
import { RemoraError } from '../../core/errors.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import { listJobs, listObjects, migrateRebalance, readJob, type JobState } from './rebalance.repository.js';
import { ERROR_REASONS, OBJECT_STATES, SKIP_REASONS } from './rebalance.types.js';

/** Objects per page while listing. */
const LIST_PAGE = 1000;

export interface ObjectLine {
  objectId: string;
  /** The planned keys (every link of the objectId); the first one names the object for a person. */
  key: string;
  keys: string[];
  source: string | null;
  destination: string | null;
  state: string;
  reason: string | null;
  detail: string | null;
  bytes: number;
  attempts: number;
  keysDropped: number;
  updatedAt: string;
}

export interface ObjectFilter {
  state?: string;
  reason?: string;
}

/** A filter naming no known state or reason is a typo: refused, with the valid values. */
export function checkObjectFilter(f: ObjectFilter): void {
  if (f.state !== undefined && !(OBJECT_STATES as readonly string[]).includes(f.state))
    throw new RemoraError(
      'UsageError',
      `--state: unknown state ${f.state}; one of ${OBJECT_STATES.join(', ')}`,
    );
  const reasons: readonly string[] = [...SKIP_REASONS, ...ERROR_REASONS];
  if (f.reason !== undefined && !reasons.includes(f.reason))
    throw new RemoraError('UsageError', `--reason: unknown reason ${f.reason}; one of ${reasons.join(', ')}`);
}

/** The job's objects (drafts too: a dry run's objects can be checked before `--commit`), in pages. */
export async function* jobObjects(
  tier: MetadataTier,
  jobId: string | undefined,
  f: ObjectFilter,
): AsyncGenerator<ObjectLine> {
  checkObjectFilter(f);
  await migrateRebalance(tier.control);
  const job = await readJob(tier.control, jobId);
  if (!job) throw new RemoraError('UsageError', jobId ? `no rebalance job ${jobId}` : 'no rebalance job yet');
  for (let after = ''; ;) {
    const page = await listObjects(tier.control, job.id, { ...f, after, limit: LIST_PAGE });
    if (page.length === 0) return;
    after = page[page.length - 1]!.objectId;
    for (const o of page)
      yield {
        objectId: o.objectId,
        key: o.keys[0]?.key ?? '',
        keys: o.keys.map((k) => k.key),
        source: o.oldShark?.manta_storage_id ?? null,
        destination: o.newShark?.manta_storage_id ?? null,
        state: o.state,
        reason: o.reason,
        detail: o.detail,
        bytes: o.bytes,
        attempts: o.attempts,
        keysDropped: o.skippedKeys,
        updatedAt: o.updatedAt.toISOString(),
      };
  }
}

export interface JobLine {
  jobId: string;
  /**
   * draft (a dry run: not runnable), active (objects unprocessed, claimed, or owed a tombstone),
   * needs-retry (nothing left to run, some skipped or errored), done (every object complete).
   */
  state: 'draft' | 'active' | 'needs-retry' | 'done';
  stored: JobState;
  createdAt: string;
  evacuate: string | null;
  fixSingleDc: boolean;
  objects: number;
  byState: Record<string, number>;
}

export async function jobsOverview(tier: MetadataTier): Promise<JobLine[]> {
  await migrateRebalance(tier.control);
  return (await listJobs(tier.control)).map((j) => {
    const n = (s: string) => j.byState[s] ?? 0;
    const objects = Object.values(j.byState).reduce((a, b) => a + b, 0);
    const state: JobLine['state'] =
      j.state === 'draft'
        ? 'draft'
        : n('unprocessed') + n('assigned') + n('post_processing') > 0
          ? 'active'
          : n('skipped') + n('error') > 0
            ? 'needs-retry'
            : 'done';
    return {
      jobId: j.id,
      state,
      stored: j.state,
      createdAt: j.createdAt.toISOString(),
      evacuate: typeof j.params.evacuate === 'string' ? j.params.evacuate : null,
      fixSingleDc: j.params.fixSingleDc === true,
      objects,
      byState: j.byState,
    };
  });
}
