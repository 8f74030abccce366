/**
 * Rebalance as the dashboard shows it (`GET /api/rebalance`): its jobs, the chosen one's
 * progress (objects and bytes done and left, rate, ETA: src/jobs/rebalance/rebalance.status.ts)
 * and its skipped and errored objects grouped by reason, each with its detail — what only SQL
 * could show before. Read-only: the tables are read through the rebalance repository and listing.
 */
import { RemoraError } from '../../core/errors.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import { jobStatus, type JobStatus } from '../../jobs/rebalance/rebalance.status.js';
import { migrateRebalance, retryCandidates } from '../../jobs/rebalance/rebalance.repository.js';
import { jobsOverview } from '../../jobs/rebalance/rebalance.listing.js';

/** Objects listed per reason (the count is always complete). */
export const OBJECTS_PER_REASON = 50;

export interface RebalanceJobLine {
  jobId: string;
  createdAt: string;
  evacuate: string | null;
  total: number;
  done: number;
  left: number;
  problems: number;
  active: boolean;
}

export interface RebalanceProblem {
  state: string;
  reason: string;
  objects: number;
  examples: { objectId: string; bytes: number; detail: string | null; attempts: number }[];
}

export interface RebalanceView {
  jobs: RebalanceJobLine[];
  /** The job shown in detail: the one asked for, else the newest active one, else the newest. */
  job: (JobStatus & { active: boolean; problems: RebalanceProblem[] }) | null;
}

const isActive = (s: JobStatus) => s.left.objects > 0 || (s.byState.post_processing?.objects ?? 0) > 0;

/** Newest first, at most this many jobs listed. */
const MAX_JOBS = 50;

export async function rebalanceView(tier: MetadataTier, jobId?: string): Promise<RebalanceView> {
  await migrateRebalance(tier.control);
  const ids = await jobIds(tier);
  const statuses: JobStatus[] = [];
  for (const id of ids) statuses.push(await jobStatus(tier, id));
  const jobs = statuses.map((s) => ({
    jobId: s.jobId,
    createdAt: s.createdAt,
    evacuate: typeof s.params.evacuate === 'string' ? s.params.evacuate : null,
    total: s.total.objects,
    done: s.done.objects,
    left: s.left.objects,
    problems: (s.byState.skipped?.objects ?? 0) + (s.byState.error?.objects ?? 0),
    active: isActive(s),
  }));
  if (jobId !== undefined && !ids.includes(jobId))
    throw new RemoraError('ObjectNotFound', `no rebalance job ${jobId}`);
  const chosen = statuses.find((s) => s.jobId === jobId) ?? statuses.find((s) => isActive(s)) ?? statuses[0];
  if (!chosen) return { jobs, job: null };
  const groups = new Map<string, RebalanceProblem>();
  for (const o of await retryCandidates(tier.control, chosen.jobId)) {
    const reason = o.reason ?? '(none)';
    const k = `${o.state}|${reason}`;
    const g = groups.get(k) ?? { state: o.state, reason, objects: 0, examples: [] };
    groups.set(k, g);
    g.objects++;
    if (g.examples.length < OBJECTS_PER_REASON)
      g.examples.push({ objectId: o.objectId, bytes: o.bytes, detail: o.detail, attempts: o.attempts });
  }
  return {
    jobs,
    job: {
      ...chosen,
      active: isActive(chosen),
      problems: [...groups.values()].sort((a, b) => b.objects - a.objects),
    },
  };
}

/** The jobs' ids, newest first, from the rebalance listing. */
async function jobIds(tier: MetadataTier): Promise<string[]> {
  return (await jobsOverview(tier))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.jobId.localeCompare(a.jobId))
    .slice(0, MAX_JOBS)
    .map((j) => j.jobId);
}
