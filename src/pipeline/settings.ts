/**
 * Pipeline settings: the `pipeline` section of the configuration (declared and validated in
 * src/config/config.ts, `pipelineConfigSchema`), with defaults. Per-job settings live under
 * `pipeline.jobs.<name>`: `{enabled, deadlineMs}` for every job, plus the keys a job declares
 * in `JOB_SPECIFIC_SETTINGS` (config.ts), typed here through `JobsConfig`.
 *
 *   "pipeline": {
 *     "jobs": { "storage-metering": { "enabled": false, "deadlineMs": 28800000 } },
 *     "concurrency": 2, "retentionDays": 30, "reportRetentionDays": 90,
 *     "partitions": "auto", "rowsPerPartition": 131072,
 *     "alertWebhook": "https://ops.example.com/hooks/remora", "metricsPort": 9464
 *   }
 */
import {
  pipelineConfigSchema,
  type JobSettings,
  type JobsConfig,
  type RemoraConfig,
} from '../config/config.js';
import { RemoraError } from '../core/errors.js';
import { DEFAULT_ROWS_PER_PARTITION } from '../dumps/partition.js';
import { DEFAULT_THRESHOLDS, type ReportThresholds } from '../core/run-report.js';

export type { JobSettings, JobsConfig };

export interface PipelineSettings {
  /** `pipeline.jobs`: per-job switches, deadlines and job-specific keys. */
  jobs: JobsConfig;
  /** Coordinator tick: how often waiting runs re-check their inputs and running runs their tasks. */
  tickIntervalMs: number;
  /** Tasks each worker process runs at once. */
  concurrency: number;
  /** graphile-worker poll for retries whose backoff has expired (new tasks arrive by NOTIFY). */
  workerPollIntervalMs: number;
  /** How often a worker heartbeats its running attempts. */
  heartbeatMs: number;
  /** An attempt without a heartbeat for this long is lost: its task is released to other workers. */
  staleAfterMs: number;
  /** Run history and per-run outputs older than this many days are removed. */
  retentionDays: number;
  /** Per-account usage reports older than this many days are removed (RFD 16 problem 7). */
  reportRetentionDays: number;
  /**
   * Side-by-side mode: files published where the original writes go under this prefix
   * (`pipeline.outputPrefix`; src/core/published-path.ts). Undefined: the original's paths.
   */
  outputPrefix?: string;
  /** How many days back the scheduler looks for missed days on start. */
  catchUpDays: number;
  thresholds: ReportThresholds;
  /**
   * Partitions P of unpacked chunks (by hash of objectId), or 'auto': per shard, the power of
   * two that keeps `rowsPerPartition` rows per partition, so a task's memory does not grow
   * with the day. Metering runs one task per partition group (partitionGroups).
   */
  partitions: number | 'auto';
  rowsPerPartition: number;
  alertWebhook?: string;
  metricsPort?: number;
}

/** Days of per-account reports `job` keeps: its own setting, else the pipeline's (90). */
export function reportRetentionFor(
  s: Pick<PipelineSettings, 'jobs' | 'reportRetentionDays'>,
  job: string,
): number {
  return s.jobs[job]?.reportRetentionDays ?? s.reportRetentionDays;
}

export const DEFAULT_SETTINGS: PipelineSettings = {
  jobs: {},
  tickIntervalMs: 1000,
  concurrency: 2,
  workerPollIntervalMs: 2000,
  heartbeatMs: 2000,
  // 5 missed heartbeats: long enough that a busy event loop is not mistaken for a dead worker.
  staleAfterMs: 10_000,
  retentionDays: 30,
  reportRetentionDays: 90,
  catchUpDays: 7,
  thresholds: DEFAULT_THRESHOLDS,
  partitions: 'auto',
  rowsPerPartition: DEFAULT_ROWS_PER_PARTITION,
};

/**
 * The configured settings with defaults, and `over` (code: the CLI's flags, tests) on top.
 * The configuration section was validated at load; the result is checked again with the same
 * schema (so an override cannot slip past it) and for what needs the defaults to judge.
 */
export function pipelineSettings(
  config: RemoraConfig,
  over: Partial<PipelineSettings> = {},
): PipelineSettings {
  const raw = config.pipeline ?? {};
  const s: PipelineSettings = {
    ...DEFAULT_SETTINGS,
    ...raw,
    ...over,
    jobs: { ...(raw.jobs ?? {}), ...(over.jobs ?? {}) },
    thresholds: { ...DEFAULT_THRESHOLDS, ...(raw.thresholds ?? {}), ...(over.thresholds ?? {}) },
  };
  const r = pipelineConfigSchema.safeParse(s);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `pipeline.${i.path.map(String).join('.')}: ${i.message}`);
    throw new RemoraError('InvalidConfig', `invalid pipeline settings: ${problems.join('; ')}`);
  }
  if (s.staleAfterMs <= s.heartbeatMs * 2) {
    throw new RemoraError(
      'InvalidConfig',
      'pipeline.staleAfterMs must exceed two heartbeats (pipeline.heartbeatMs)',
    );
  }
  return s;
}

export function jobEnabled(s: PipelineSettings, job: string): boolean {
  return s.jobs[job]?.enabled ?? true;
}
