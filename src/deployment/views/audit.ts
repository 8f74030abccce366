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
  day: string;
  runId: number;
  reached: boolean;
  /** ISO instant the listing started, and the files it kept. */
  startedAt?: string;
  files?: number;
}

/** Each configured node's latest committed manifest (absent: none within the run retention). */
export async function latestManifests(rt: PipelineRuntime): Promise<Map<string, NodeManifest>> {
  const out = new Map<string, NodeManifest>();
  for (const n of rt.services.config.storage.nodes) {
    const l = await latestDay(rt, 'manifests', (d) => `${d}/node=${n.id}`);
    if (!l) continue;
    const m = manifestsOutput.parse(l.output);
    out.set(n.id, {
      day: l.day,
      runId: l.runId,
      reached: m.reached,
      ...(m.listing ? { startedAt: m.listing.startedAt, files: m.listing.files } : {}),
    });
  }
  return out;
}
