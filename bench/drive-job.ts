/**
 * Driving one pipeline job in a benchmark's child process, as the executor would: a plan context
 * on the day's unpacks, then every task `concurrency` at a time (timed by the caller).
 */
import path from 'node:path';
import type { RemoraConfig } from '../src/config/config.js';
import { systemClock, systemRandom } from '../src/core/clock.js';
import { mapLimit } from '../src/core/concurrency.js';
import { DuckPool } from '../src/dumps/duckdb.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { NodeDirectory } from '../src/storage/node-directory.js';
import { ReportBuilder, type RunReport } from '../src/core/run-report.js';
import type { UnpackRef } from '../src/dumps/partition-inputs.js';
import type { JobDefinition, PipelineServices, PlanContext, TaskSpec } from '../src/pipeline/job.js';
import { attemptPrefix } from '../src/pipeline/inputs.js';

export const BENCH_RUN_ID = 1;

/** A day run's plan context whose upstream is the committed unpack of each source. */
export function benchPlan(
  services: PipelineServices,
  day: string,
  sources: readonly UnpackRef[],
): PlanContext {
  return {
    services,
    partition: { kind: 'day', key: day, day },
    runId: BENCH_RUN_ID,
    upstream: sources.map((output, i) => ({
      job: 'unpack',
      partition: { kind: 'day-shard', key: `${day}/shard=${output.source}`, day, shard: output.source },
      runId: 100 + i,
      verdict: 'ok',
      output,
    })),
  };
}

/** Run every task of `specs`, `concurrency` at a time; what the commit receives, in task order. */
export function runTasks(
  job: JobDefinition,
  plan: PlanContext,
  specs: readonly TaskSpec[],
  concurrency: number,
  params: (p: unknown) => unknown = (p) => p,
): Promise<{ key: string; params: unknown; attemptId: number; output: unknown; report: RunReport }[]> {
  return mapLimit(specs, concurrency, async ({ key, params: p }, i) => {
    const attemptId = i + 1;
    const task = { key, params: params(p) };
    const r = await job.runTask({
      ...plan,
      task,
      attemptId,
      outputPrefix: attemptPrefix(job.name, plan.partition.key, plan.runId, attemptId),
      signal: new AbortController().signal,
      report: new ReportBuilder(),
    });
    return { ...task, attemptId, output: r.output, report: r.report };
  });
}

/**
 * Services for a job driven in a bench child: the work dir's local store, one DuckPool, no
 * storage node, the system clock. `tier` is what the job may ask of the metadata tier (a stand-in
 * answering from memory, so PostgreSQL is not what is timed).
 */
export async function benchServices(
  workDir: string,
  o: { tier: Partial<MetadataTier>; shards?: RemoraConfig['shards'] },
): Promise<PipelineServices> {
  return {
    config: (o.shards ? { shards: o.shards } : {}) as RemoraConfig,
    tier: o.tier as MetadataTier,
    store: new LocalObjectStore(path.join(workDir, 'objects')),
    duck: new DuckPool(),
    nodes: await NodeDirectory.load([], { storageRecords: () => Promise.resolve([]) }),
    storage: undefined,
    clock: systemClock,
    random: systemRandom,
    log: () => {},
  };
}

/** The tier's live re-check, answered "no live reference" for every objectId. */
export const NO_LIVE_REFERENCES: Partial<MetadataTier> = {
  findByObjectIds: (ids: readonly string[]) => Promise.resolve(new Map(ids.map((id) => [id, []]))),
};
