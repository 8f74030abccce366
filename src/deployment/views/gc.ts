/**
 * GC as the dashboard and `remora gc status --json` see it: the latest committed run's numbers,
 * the live backlog of the delete logs against the grace period, and the nodes' tombstones
 * (src/jobs/gc/gc.status.ts does the reading).
 */
import { dayOf } from '../../core/days.js';
import { gcOptionsFrom } from '../../jobs/gc/gc.job.js';
import {
  latestGcRun,
  liveBacklog,
  tombstoneUsage,
  type LatestGcRun,
  type LiveBacklog,
  type NodeTombstone,
} from '../../jobs/gc/gc.status.js';
import { purgeOptionsFrom } from '../../jobs/tombstone-purge/tombstone-purge.job.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';

export interface GcView {
  now: number;
  graceMs: number;
  retentionDays: number;
  /** Absent when no gc run committed within the run retention. */
  latest?: LatestGcRun;
  live: LiveBacklog;
  tombstone: NodeTombstone[];
}

export async function gcView(rt: PipelineRuntime): Promise<GcView> {
  const now = rt.services.clock.now();
  const gc = gcOptionsFrom(rt.settings);
  const purge = purgeOptionsFrom(rt.settings);
  const latest = await latestGcRun(rt, dayOf(now), rt.settings.retentionDays);
  return {
    now,
    graceMs: gc.graceMs,
    retentionDays: purge.retentionDays,
    ...(latest ? { latest } : {}),
    live: await liveBacklog(rt.services.tier, now, gc.graceMs),
    tombstone: await tombstoneUsage(rt.services.nodes, rt.services.storage, purge.retentionDays),
  };
}
