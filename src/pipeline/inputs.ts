/**
 * Whether a waiting run may start: every upstream partition's latest run committed with a
 * verdict other than `invalid`, and every external input present. Never falls back to an
 * older output ("a late snapshot makes downstream wait, not read yesterday's data"). A job with
 * `inputs.partialAfterDeadline` waits on an invalid upstream instead of being blocked, and past
 * its deadline starts with the upstream that committed (it names what is missing).
 */
import type pg from 'pg';
import type { JobGraph } from './dag.js';
import type { PipelineServices, UpstreamOutput } from './job.js';
import {
  parsePartition,
  partitionSlug,
  upstreamPartitions,
  type Partition,
  type Topology,
} from './partitions.js';
import { latestRuns, readPointer, type RunRow } from './runs.repository.js';

export type InputStatus =
  | { status: 'ready'; upstream: UpstreamOutput[] }
  | { status: 'waiting'; detail: string }
  | { status: 'blocked'; detail: string };

/** Where the pipeline keeps per-run and per-attempt outputs in the object store. */
export const PIPELINE_ROOT = '/poseidon/stor/remora/pipeline';

export function runPrefix(job: string, partitionKey: string, runId: number): string {
  return `${PIPELINE_ROOT}/${job}/${partitionSlug(partitionKey)}/run-${runId}/`;
}

export function attemptPrefix(job: string, partitionKey: string, runId: number, attemptId: number): string {
  return `${runPrefix(job, partitionKey, runId)}attempt-${attemptId}/`;
}

export function partitionOfRun(graph: JobGraph, run: Pick<RunRow, 'job' | 'partitionKey'>): Partition {
  return parsePartition(graph.get(run.job).partition, run.partitionKey);
}

export async function resolveInputs(
  deps: { control: pg.Pool; graph: JobGraph; topology: Topology; services: PipelineServices },
  run: RunRow,
): Promise<InputStatus> {
  const job = deps.graph.get(run.job);
  const partition = partitionOfRun(deps.graph, run);
  const tolerant = job.inputs.partialAfterDeadline === true;
  const upstream: UpstreamOutput[] = [];
  const waiting: string[] = [];
  const externalWaiting: string[] = [];
  for (const upName of job.inputs.upstream ?? []) {
    const up = deps.graph.get(upName);
    const parts = upstreamPartitions(partition, up, deps.topology);
    const latest = new Map(
      (
        await latestRuns(
          deps.control,
          upName,
          parts.map((p) => p.key),
        )
      ).map((r) => [r.partitionKey, r]),
    );
    for (const p of parts) {
      const r = latest.get(p.key);
      if (!r) {
        waiting.push(`${upName} ${p.key} (not run yet)`);
        continue;
      }
      if (r.state === 'invalid' || r.state === 'failed' || r.state === 'blocked') {
        if (tolerant) {
          waiting.push(`${upName} ${p.key} (run ${r.id} ${r.state})`);
          continue;
        }
        return { status: 'blocked', detail: `input ${upName} ${p.key} is ${r.state} (run ${r.id})` };
      }
      if (r.state !== 'succeeded') {
        waiting.push(`${upName} ${p.key} (run ${r.id} ${r.state})`);
        continue;
      }
      const pointer = await readPointer(deps.control, upName, p.key);
      if (!pointer || pointer.runId !== r.id) {
        waiting.push(`${upName} ${p.key} (run ${r.id} not committed)`);
        continue;
      }
      upstream.push({
        job: upName,
        partition: p,
        runId: r.id,
        verdict: pointer.verdict,
        output: pointer.output,
      });
    }
  }
  for (const ext of job.inputs.external ?? []) {
    const r = await ext.exists({ services: deps.services, partition });
    if (!r.ready) externalWaiting.push(`${ext.name}${r.detail ? ` (${r.detail})` : ''}`);
  }
  // A tolerant job past its deadline starts on what committed (never before its external inputs).
  if (tolerant && externalWaiting.length === 0 && run.deadlineAt.getTime() <= deps.services.clock.now())
    return { status: 'ready', upstream };
  waiting.push(...externalWaiting);
  if (waiting.length > 0) return { status: 'waiting', detail: waiting.join('; ') };
  return { status: 'ready', upstream };
}
