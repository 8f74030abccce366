/**
 * Pipeline settings: the `pipeline` section of the configuration file
 * (`<stateDir>/config.json` or $REMORA_CONFIG), with defaults. RemoraConfig does not declare
 * the section yet, but loadConfig keeps unknown sections, so it is read and validated here.
 *
 *   "pipeline": {
 *     "jobs": { "storage-metering": { "enabled": false, "deadlineMs": 28800000 } },
 *     "concurrency": 2, "retentionDays": 30, "reportRetentionDays": 90,
 *     "partitions": "auto", "rowsPerPartition": 131072,
 *     "alertWebhook": "https://ops.example.com/hooks/remora", "metricsPort": 9464
 *   }
 */
import type { RemoraConfig } from '../config/config.js';
import { RemoraError } from '../core/errors.js';
import { DEFAULT_ROWS_PER_PARTITION } from '../dumps/partition.js';
import { DEFAULT_THRESHOLDS, type ReportThresholds } from '../core/run-report.js';

export interface JobSettings {
  /** Per-job switch (the original's METER_STORAGE_ENABLED, GC_ENABLED, … SAPI flags). */
  enabled?: boolean;
  deadlineMs?: number;
}

export interface PipelineSettings {
  jobs: Record<string, JobSettings>;
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

export function pipelineSettings(
  config: RemoraConfig,
  over: Partial<PipelineSettings> = {},
): PipelineSettings {
  const raw = (config as unknown as { pipeline?: Partial<PipelineSettings> }).pipeline ?? {};
  const s: PipelineSettings = {
    ...DEFAULT_SETTINGS,
    ...raw,
    ...over,
    jobs: { ...(raw.jobs ?? {}), ...(over.jobs ?? {}) },
    thresholds: { ...DEFAULT_THRESHOLDS, ...(raw.thresholds ?? {}), ...(over.thresholds ?? {}) },
  };
  const positive = [
    'tickIntervalMs',
    'concurrency',
    'workerPollIntervalMs',
    'heartbeatMs',
    'staleAfterMs',
  ] as const;
  for (const k of positive) {
    if (!(typeof s[k] === 'number' && s[k] > 0))
      throw new RemoraError('InvalidConfig', `pipeline.${k} must be > 0`);
  }
  if (
    s.partitions !== 'auto' &&
    !(Number.isInteger(s.partitions) && s.partitions >= 1 && s.partitions <= 9999)
  )
    throw new RemoraError('InvalidConfig', 'pipeline.partitions must be "auto" or an integer 1..9999');
  if (!(Number.isInteger(s.rowsPerPartition) && s.rowsPerPartition >= 1))
    throw new RemoraError('InvalidConfig', 'pipeline.rowsPerPartition must be a positive integer');
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
