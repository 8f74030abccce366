/**
 * The daily pipeline as code (DESIGN.md "The daily pipeline"). To add a job: write its
 * JobDefinition in src/jobs/<job>/ (see docs/pipeline.md "Adding a job") and list it here,
 * after its upstream jobs.
 */
import { storageMeteringJob } from '../jobs/storage-metering/storage-metering.job.js';
import { dumpJobs } from './dump-jobs.js';
import type { JobDefinition } from './job.js';
import type { PipelineSettings } from './settings.js';

export function defaultJobs(s: PipelineSettings): JobDefinition[] {
  return [
    ...dumpJobs({ partitions: s.partitions, rowsPerPartition: s.rowsPerPartition }),
    storageMeteringJob({ reportRetentionDays: s.reportRetentionDays }),
  ];
}
