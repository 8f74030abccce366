/**
 * The daily pipeline as code (DESIGN.md "The daily pipeline"). To add a job: write its
 * JobDefinition in src/jobs/<job>/ (see docs/pipeline.md "Adding a job") and list it here,
 * after its upstream jobs.
 */
import { gcJob, gcOptionsFrom } from './gc/gc.job.js';
import { computeMeteringJob, computeOptionsFrom } from './compute-metering/compute-metering.job.js';
import { storageMeteringJob } from './storage-metering/storage-metering.job.js';
import { snapshotJobWith } from './snapshot/snapshot.job.js';
import { unpackJob } from './unpack/unpack.job.js';
import { purgeOptionsFrom, tombstonePurgeJob } from './tombstone-purge/tombstone-purge.job.js';
import { requestMeteringJob, requestMeteringOptionsFrom } from './request-metering/request-metering.job.js';
import { accessLogsJob } from './access-logs/access-logs.job.js';
import { manifestsJob } from './manifests/manifests.job.js';
import { auditJob, auditOptionsFrom } from './audit/audit.job.js';
import { repairJob } from './audit/audit.repair.job.js';
import { DEFAULT_PARTITIONS } from '../dumps/partition.js';
import { cruftJob, cruftOptionsFrom } from './cruft/cruft.job.js';
import { summaryOptionsFrom, usageSummaryJob } from './usage-summary/usage-summary.job.js';
import type { RemoraConfig } from '../config/config.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { Coordinator } from '../pipeline/coordinator.js';
import type { JobDefinition } from '../pipeline/job.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { withPipelineSession, type SessionOptions } from '../pipeline/session.js';
import { reportRetentionFor, type PipelineSettings } from '../pipeline/settings.js';

export function defaultJobs(s: PipelineSettings): JobDefinition[] {
  return [
    snapshotJobWith({ outputPrefix: s.outputPrefix }),
    unpackJob({ partitions: s.partitions, rowsPerPartition: s.rowsPerPartition, thresholds: s.thresholds }),
    storageMeteringJob({
      reportRetentionDays: reportRetentionFor(s, 'storage-metering'),
      outputPrefix: s.outputPrefix,
    }),
    gcJob(gcOptionsFrom(s)),
    tombstonePurgeJob(purgeOptionsFrom(s)),
    computeMeteringJob(computeOptionsFrom(s)),
    requestMeteringJob(requestMeteringOptionsFrom(s)),
    accessLogsJob({
      ...requestMeteringOptionsFrom(s),
      reportRetentionDays: reportRetentionFor(s, 'access-logs'),
    }),
    manifestsJob({
      partitions: s.partitions === 'auto' ? DEFAULT_PARTITIONS : s.partitions,
      outputPrefix: s.outputPrefix,
    }),
    auditJob(auditOptionsFrom(s)),
    repairJob(),
    // Cruft is on demand (`remora cruft plan|run`); daily only when switched on explicitly.
    ...(s.jobs.cruft?.enabled === true ? [cruftJob(cruftOptionsFrom(s))] : []),
    usageSummaryJob(summaryOptionsFrom(s)),
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
