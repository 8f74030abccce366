/**
 * The audit as the dashboard sees it (`GET /api/audit?date=D&limit=N`): the committed audit of a
 * day (by default the latest within the run retention) with its counts, and the first `limit`
 * problems of its stored list, read by the audit job's own reader (src/jobs/audit/audit.show.ts,
 * the one `remora audit show` uses). Also each node's latest committed manifest, for the nodes page.
 */
import { addDays, dayOf } from '../../core/days.js';
import { readAuditDay, readProblems, type AuditDay } from '../../jobs/audit/audit.show.js';
import type { Problem } from '../../jobs/audit/audit.rules.js';
import { manifestsOutput } from '../../jobs/manifests/manifests.job.js';
import { readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';

/** Problems listed on the page unless `limit` says otherwise; the total is always shown. */
export const DEFAULT_AUDIT_PROBLEMS = 100;

export interface AuditView {
  /** Absent when no audit committed within the run retention (or on the day asked). */
  latest?: AuditDay;
  /** The first problems of the stored list (at most `limit`); `latest.output.problems` is the total. */
  problems: Problem[];
  limit: number;
}

/** The latest day (from today back over the retention) whose `job` pointer for `key(day)` exists. */
async function latestDay(
  rt: PipelineRuntime,
  job: string,
  key: (day: string) => string,
): Promise<{ day: string; runId: number; output: unknown } | undefined> {
  const today = dayOf(rt.services.clock.now());
  for (let i = 0; i <= rt.settings.retentionDays; i++) {
    const day = addDays(today, -i);
    const p = await readPointer(rt.control, job, key(day));
    if (p) return { day, runId: p.runId, output: p.output };
  }
  return undefined;
}

export async function auditView(
  rt: PipelineRuntime,
  o: { day?: string; limit?: number } = {},
): Promise<AuditView> {
  const limit = o.limit ?? DEFAULT_AUDIT_PROBLEMS;
  const day = o.day ?? (await latestDay(rt, 'audit', (d) => d))?.day;
  if (day === undefined) return { problems: [], limit };
  const latest = await readAuditDay(rt.control, day);
  const problems: Problem[] = [];
  if (limit > 0)
    for await (const p of readProblems(rt.services.store, latest.output)) {
      problems.push(p);
      if (problems.length >= limit) break;
    }
  return { latest, problems, limit };
}

export interface NodeManifest {
  /** The newest committed manifest that listed the node (day, run, listing instant, files kept). */
  day: string;
  runId: number;
  startedAt: string;
  files: number;
  /** A newer committed manifest did not reach the node (address unknown): its day and run. */
  notReached?: { day: string; runId: number };
}

/** A node whose manifests within the run retention never reached it. */
export type NodeManifestView = NodeManifest | { notReached: { day: string; runId: number } };

/**
 * Each configured node's latest committed listing, from today back over the run retention
 * (absent: none in that window). A newer manifest that could not reach the node is noted beside it.
 */
export async function latestManifests(rt: PipelineRuntime): Promise<Map<string, NodeManifestView>> {
  const out = new Map<string, NodeManifestView>();
  const today = dayOf(rt.services.clock.now());
  for (const n of rt.services.config.storage.nodes) {
    let notReached: { day: string; runId: number } | undefined;
    for (let i = 0; i <= rt.settings.retentionDays; i++) {
      const day = addDays(today, -i);
      const p = await readPointer(rt.control, 'manifests', `${day}/node=${n.id}`);
      if (!p) continue;
      const m = manifestsOutput.parse(p.output);
      if (!m.listing) {
        notReached ??= { day, runId: p.runId };
        continue;
      }
      out.set(n.id, {
        day,
        runId: p.runId,
        startedAt: m.listing.startedAt,
        files: m.listing.files,
        ...(notReached ? { notReached } : {}),
      });
      break;
    }
    if (!out.has(n.id) && notReached) out.set(n.id, { notReached });
  }
  return out;
}
