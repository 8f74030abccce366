/**
 * The daily pipeline as code (DESIGN.md "The daily pipeline"). To add a job: write its
 * JobDefinition in src/jobs/<job>/ (see docs/pipeline.md "Adding a job") and list it here,
 * after its upstream jobs.
 */
import { DEFAULT_GC_OPTIONS, gcJob } from './gc/gc.job.js';
import { storageMeteringJob } from './storage-metering/storage-metering.job.js';
import { snapshotJob } from './snapshot/snapshot.job.js';
import { unpackJob } from './unpack/unpack.job.js';
import { DEFAULT_PURGE_OPTIONS, tombstonePurgeJob } from './tombstone-purge/tombstone-purge.job.js';
import type { RemoraConfig } from '../config/config.js';
import { DAY_MS } from '../core/days.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { Coordinator } from '../pipeline/coordinator.js';
import type { JobDefinition } from '../pipeline/job.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { withPipelineSession, type SessionOptions } from '../pipeline/session.js';
import type { PipelineSettings } from '../pipeline/settings.js';

export function defaultJobs(s: PipelineSettings): JobDefinition[] {
  return [
    snapshotJob,
    unpackJob({ partitions: s.partitions, rowsPerPartition: s.rowsPerPartition, thresholds: s.thresholds }),
    storageMeteringJob({ reportRetentionDays: s.reportRetentionDays }),
    gcJob(gcOptions(s)),
    tombstonePurgeJob({
      ...DEFAULT_PURGE_OPTIONS,
      retentionDays: s.jobs['tombstone-purge']?.retentionDays ?? DEFAULT_PURGE_OPTIONS.retentionDays,
    }),
  ];
}

/** A pipeline session (src/pipeline/session.ts) running the daily pipeline's jobs. */
export function withDailyPipeline<T>(
  config: RemoraConfig,
  tier: MetadataTier,
  o: Omit<SessionOptions, 'jobs'>,
  fn: (rt: PipelineRuntime, c: Coordinator) => Promise<T>,
): Promise<T> {
  return withPipelineSession(config, tier, { ...o, jobs: defaultJobs }, fn);
}

/** The gc job's options from `pipeline.jobs.gc` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
function gcOptions(s: PipelineSettings) {
  const g = s.jobs.gc ?? {};
  return {
    graceMs: g.graceDays !== undefined ? g.graceDays * DAY_MS : DEFAULT_GC_OPTIONS.graceMs,
    objectsPerSecondPerNode: g.objectsPerSecondPerNode ?? DEFAULT_GC_OPTIONS.objectsPerSecondPerNode,
    bytesPerSecondPerNode: g.bytesPerSecondPerNode ?? DEFAULT_GC_OPTIONS.bytesPerSecondPerNode,
  };
}
