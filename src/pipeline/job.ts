/**
 * The job definition: what a stage of the pipeline declares so the executor can run it.
 *
 * Glossary (DESIGN.md):
 *   job        a kind of work (snapshot, unpack, storage-metering, …)
 *   partition  the key a run is for: a day, an hour of a day, a shard on a day, a node on a day
 *   run        one execution of a job for one partition; the nth run of a partition has seq n
 *   task       one unit of a run's work, small enough for seconds to minutes (RFD 16 problem 6),
 *              claimed, retried and timed out through graphile-worker
 *   attempt    one try of a task by one worker; it writes under its own output prefix, so a
 *              retry never mixes with an earlier try
 *   commit     the run's last step: merge the winning attempts' outputs and switch one pointer
 *              (pipeline_outputs) to this run. A job whose output has a pointer of its own at a
 *              shared path (unpack's source manifest) switches it here, never in a task: a task's
 *              attempt may be declared lost and still run (docs/pipeline.md "A lost attempt that
 *              keeps running"); the commit runs once, after the task's winner is settled
 *
 * Life of a run (states in pipeline_runs.state):
 *   waiting ──inputs exist, none invalid──> running ──all tasks done──> succeeded (ok|degraded)
 *      │                                       │                    └─> invalid   (merged report invalid; not committed)
 *      └──an input is invalid/failed──> blocked └──a task exhausted its attempts, or commit threw──> failed
 *   A rerun adds run seq+1 for the partition (unless one is still waiting/running); earlier
 *   runs stay in the history, and the pointer moves only when the new run commits.
 */
import type { z } from 'zod';
import type { RemoraConfig } from '../config/config.js';
import { dayStartMs } from '../core/days.js';
import { RemoraError } from '../core/errors.js';
import type { Clock, Random } from '../core/clock.js';
import type { DuckPool } from '../dumps/duckdb.js';
import type { NodeDirectory } from '../storage/node-directory.js';
import type { StorageClient } from '../storage/storage-client.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { Partition, PartitionKind } from './partitions.js';
import type { ReportBuilder, ReportThresholds, RunReport, Verdict } from '../core/run-report.js';

/**
 * What a task can use, opened once per process by whoever runs the pipeline (the session) and
 * closed by it: a job never opens its own pools or reads the bundled deployment's state.
 */
export interface PipelineServices {
  config: RemoraConfig;
  tier: MetadataTier;
  /** Where dumps, chunks and outputs live (src/objectstore/object-store.ts). */
  store: ObjectStore;
  /**
   * Where per-account reports go (`/<login>/reports/…`): the accounts' namespaces through the
   * front door when the bundled deployment runs, whatever `store` is; undefined: `store`.
   */
  reportsStore?: ObjectStore;
  /** The process's DuckDB, for reading chunks (one query at a time; closed with the session). */
  duck: DuckPool;
  /** Storage-node addresses: configuration, else heartbeat records (never deployment.json). */
  nodes: NodeDirectory;
  /**
   * The storage-node client, with the deployment's internal credential; undefined when this
   * process was not given the credential (a job that moves copies then fails with that reason).
   */
  storage: StorageClient | undefined;
  clock: Clock;
  /** Randomness (placement, sampling): seeded in tests. */
  random: Random;
  log: (line: string) => void;
}

/** An input that is not produced by a job of the pipeline (e.g. a dump uploaded by manatee). */
/** The storage client, or a non-retryable error saying why this worker has none. */
export function requireStorage(services: PipelineServices): StorageClient {
  if (services.storage) return services.storage;
  throw new RemoraError(
    'UsageError',
    'this worker has no internal credential for the storage nodes: set storage.internalToken in its ' +
      "configuration (or run it with the deployment's state directory)",
  );
}

export interface ExternalInput {
  name: string;
  /** True when the input for this partition exists; `detail` says what was looked for. */
  exists(ctx: { services: PipelineServices; partition: Partition }): Promise<{
    ready: boolean;
    detail?: string;
    /**
     * When the input is not expected before this instant (ms; e.g. an hour's logs, after the
     * hour): until then a waiting run is not late, and `driveDays` does not wait for it.
     */
    dueAt?: number;
  }>;
}

/** A run of a day starts once that day has begun on the services' clock (jobs with no upstream). */
export const dayHasBegun: ExternalInput = {
  name: 'the day has begun',
  exists: ({ services, partition }) =>
    Promise.resolve({ ready: services.clock.now() >= dayStartMs(partition.day), detail: partition.day }),
};

/** What an upstream run committed, as seen by a downstream run. */
export interface UpstreamOutput {
  job: string;
  partition: Partition;
  runId: number;
  verdict: Verdict;
  output: unknown;
}

export interface PlanContext {
  services: PipelineServices;
  partition: Partition;
  runId: number;
  /** Committed outputs of every upstream partition this run depends on. */
  upstream: UpstreamOutput[];
}

export interface TaskSpec<P = unknown> {
  /** Unique within the run, stable across retries (e.g. `p017`). */
  key: string;
  params?: P;
}

export interface TaskContext<P = unknown> extends PlanContext {
  task: { key: string; params: P };
  attemptId: number;
  /** Where this attempt writes: unique per attempt, so a retry never overwrites a dead try's files. */
  outputPrefix: string;
  /** Aborted on the per-attempt timeout or on worker shutdown. */
  signal: AbortSignal;
  /** A fresh report for this attempt; `report.finish()` is the usual TaskResult.report. */
  report: ReportBuilder;
}

export interface TaskResult<T = unknown> {
  report: RunReport;
  /** Small JSON describing what the attempt wrote (paths, partial sums). */
  output?: T;
}

export interface CommitContext<P = unknown, T = unknown> extends PlanContext {
  /** Each task's winning attempt, in task-key order. */
  tasks: { key: string; params: P; attemptId: number; output: T; report: RunReport }[];
  /** The merged report of every task (the commit may add to it). */
  report: RunReport;
  /** Where the run's own merged output goes (unique per run). */
  runPrefix: string;
}

export interface CommitResult<O = unknown> {
  /** What the pointer will name: downstream runs receive it as UpstreamOutput.output. */
  output: O;
  /** Events and counters of the commit step itself (e.g. per-account delivery). */
  report?: RunReport;
}

/**
 * A job's output type, declared once by the job that produces it and used by every job that
 * reads it: the pointer's output comes back from the control database as JSON, so a reader
 * gets it through `parse` (a schema), never through a cast.
 */
export interface OutputType<O> {
  readonly job: string;
  parse(value: unknown): O;
}

export function outputType<O>(job: string, schema: z.ZodType<O>): OutputType<O> {
  return {
    job,
    parse(value) {
      const r = schema.safeParse(value);
      if (r.success) return r.data;
      throw new RemoraError(
        'MalformedInput',
        `the output of ${job} does not have its declared shape (${r.error.issues
          .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
          .join('; ')}): was it written by another version? rerun ${job}`,
      );
    },
  };
}

/** The upstream outputs of one job, typed by its declared output type. */
export function upstreamOf<O>(
  upstream: readonly UpstreamOutput[],
  type: OutputType<O>,
): (Omit<UpstreamOutput, 'output'> & { output: O })[] {
  return upstream.filter((u) => u.job === type.job).map((u) => ({ ...u, output: type.parse(u.output) }));
}

/**
 * A stage of the pipeline. P is its tasks' params, T what a task's attempt returns, O what
 * the run commits (declared by `output` when other jobs read it). Methods (not function
 * properties) so a JobDefinition<P, T, O> is a JobDefinition for the executor.
 */
export interface JobDefinition<P = unknown, T = unknown, O = unknown> {
  name: string;
  description: string;
  partition: PartitionKind;
  /** For `day-shard` jobs: which shards (default all). */
  shardRole?: 'index' | 'storage' | 'all';
  inputs: {
    /** Upstream jobs: this run waits for every matching upstream partition to commit. */
    upstream?: string[];
    external?: ExternalInput[];
    /**
     * Run on what exists once the deadline has passed: an upstream partition that is invalid,
     * failed or blocked makes the run wait (a rerun may still fix it) instead of blocking it, and
     * past the run's deadline (external inputs ready) it starts with the upstream partitions that
     * committed; the job names the missing ones and reports `degraded` (e.g. the daily summary).
     */
    partialAfterDeadline?: boolean;
  };
  /** Past this long after the run became due, a still-waiting or running run raises an alert. */
  deadlineMs: number;
  /** Tries per task before the run fails (graphile-worker max_attempts). Default 5. */
  maxAttempts?: number;
  /** Per-attempt timeout. Default 30 minutes. */
  taskTimeoutMs?: number;
  thresholds?: ReportThresholds;
  /** The committed output's type, when other jobs read it (they import it from this job). */
  output?: OutputType<O>;
  /**
   * Retention of what the job keeps outside its runs' prefixes (e.g. unpacked chunks): remove
   * what belongs to days before `before` (YYYY-MM-DD); returns the objects removed. The executor
   * calls it with the scheduler's retention (`retentionDays`); run prefixes it removes itself.
   */
  retain?(ctx: { services: PipelineServices; before: string }): Promise<number>;
  /**
   * For inputs that can still arrive after a run committed (an hour's logs uploaded late): what
   * changed since the committed output was made, or undefined. The coordinator asks it for the
   * partitions of the last `lateInputDays`; a change reruns the partition, with an alert
   * (src/pipeline/late-inputs.ts).
   */
  inputsChanged?(ctx: {
    services: PipelineServices;
    partition: Partition;
    output: O;
  }): Promise<string | undefined>;
  split(ctx: PlanContext): Promise<TaskSpec<P>[]>;
  runTask(ctx: TaskContext<P>): Promise<TaskResult<T>>;
  /**
   * An attempt's result that will never be committed: the attempt was fenced (declared lost, or
   * its task completed by another attempt) or cut short (timeout, shutdown) and finished anyway.
   * Remove what it wrote outside its output prefix (e.g. unpack's staged chunks). Best effort,
   * called by the worker; never for the winning attempt's result.
   */
  discard?(ctx: TaskContext<P>, output: T | undefined): Promise<void>;
  commit(ctx: CommitContext<P, T>): Promise<CommitResult<O>>;
}
