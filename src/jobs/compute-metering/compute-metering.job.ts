/**
 * The `compute-metering` job (docs/metering-compute.md): one run per hour, from the marlin-agent
 * logs uploaded for that hour (MANTA-REFERENCE §9), to the original's compute usage reports.
 *
 *   input   every object under /poseidon/stor/logs/marlin-agent/YYYY/MM/DD/HH/ (one per compute
 *           node), once the hour has ended plus `settleMinutes` (the original's cron ran at :17
 *           for the previous hour; logpush uploads right after the hourly rotation)
 *   task    a group of up to `objectsPerTask` agent logs: each read line by line
 *           (compute-metering.reader.ts), usage per phase, written as a partial under the
 *           attempt's prefix
 *   commit  merge the partials per owner → job → phase, then
 *             operator  /poseidon/stor/usage/compute/YYYY/MM/DD/HH/hHH.json (+ …/compute/latest)
 *             account   /<login>/reports/usage/compute/YYYY/MM/DD/HH/hHH.json (+ …/latest)
 *
 * An hour with no agent logs has no tasks and its commit writes nothing (the original had no
 * input and ran no job); the run's output says so (`accounts: 0`, no `published`). Unlike the original, a short agent log does not
 * fail the hour (mackerel's minSize 100 KB check dropped every key of the hour, §9.1).
 * A rerun of an hour reads the same objects and writes byte-identical files.
 */
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { addDays } from '../../core/days.js';
import { publishedPath } from '../../core/published-path.js';
import { ReportBuilder } from '../../core/run-report.js';
import { readObjectText } from '../../objectstore/object-store.js';
import {
  outputType,
  type CommitContext,
  type ExternalInput,
  type JobDefinition,
  type TaskContext,
} from '../../pipeline/job.js';
import { reportRetentionFor, type PipelineSettings } from '../../pipeline/settings.js';
import { deliverToAccounts, jsonLines, putLatest } from '../usage-delivery/usage-delivery.js';
import { AgentLogReader } from './compute-metering.reader.js';
import {
  addPhase,
  agentLogPrefix,
  jobsRecord,
  operatorLatestPath,
  operatorReportPath,
  reportDate,
  userReportDir,
  userReportPath,
  type PhaseMap,
  type PhaseRow,
} from './compute-metering.rules.js';

export interface ComputeMeteringOptions {
  /** Minutes after the end of an hour before its logs are read (uploads are done by then). */
  settleMinutes: number;
  /** Agent logs (compute nodes) per task. */
  objectsPerTask: number;
  /** Days of per-account reports kept. */
  reportRetentionDays: number;
  /** `pipeline.outputPrefix`: side by side with the original, published files go under it (src/core/published-path.ts). */
  outputPrefix?: string;
}

export const DEFAULT_COMPUTE_OPTIONS = { settleMinutes: 15, objectsPerTask: 32 };

/** The options from `pipeline.jobs.compute-metering` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
export function computeOptionsFrom(
  s: Pick<PipelineSettings, 'jobs' | 'reportRetentionDays' | 'outputPrefix'>,
): ComputeMeteringOptions {
  const j = s.jobs['compute-metering'];
  return {
    settleMinutes: j?.settleMinutes ?? DEFAULT_COMPUTE_OPTIONS.settleMinutes,
    objectsPerTask: j?.objectsPerTask ?? DEFAULT_COMPUTE_OPTIONS.objectsPerTask,
    reportRetentionDays: reportRetentionFor(s, 'compute-metering'),
    outputPrefix: s.outputPrefix,
  };
}

/** What a compute-metering run commits: its operator file, where it was published, how many owners. */
export const computeMeteringOutput = outputType(
  'compute-metering',
  z.object({
    /** The run's own copy and the published operator file; absent for an hour with no agent logs. */
    path: z.string().optional(),
    published: z.string().optional(),
    accounts: z.number().int().nonnegative(),
    /** The agent logs read (their paths), so a later look can tell whether one arrived since. */
    logs: z.array(z.string()),
  }),
);
type ComputeMeteringOutput = ReturnType<typeof computeMeteringOutput.parse>;

interface TaskParams {
  logs: string[];
}
interface TaskOutput {
  path: string;
  rows: number;
}

const HOUR_MS = 3_600_000;

function hourStartMs(day: string, hour: number): number {
  return Date.parse(`${day}T00:00:00Z`) + hour * HOUR_MS;
}

/** The hour has ended, plus the settle time, on the services' clock. */
function hourEnded(settleMinutes: number): ExternalInput {
  return {
    name: 'the hour has ended (marlin-agent logs uploaded)',
    exists: ({ services, partition }) => {
      const due = hourStartMs(partition.day, partition.hour ?? 0) + HOUR_MS + settleMinutes * 60_000;
      return Promise.resolve({
        ready: services.clock.now() >= due,
        detail: new Date(due).toISOString(),
        dueAt: due,
      });
    },
  };
}

/** A partial file's line: one phase, numbers as decimal strings. */
interface PartialLine {
  owner: string;
  jobId: string;
  phase: string;
  memory?: number;
  disk?: number;
  seconds: string;
  ntasks: string;
  in: string;
  out: string;
}

function partialLines(phases: PhaseMap): PartialLine[] {
  const out: PartialLine[] = [];
  for (const [owner, jobs] of phases)
    for (const [jobId, ps] of jobs)
      for (const [phase, u] of ps)
        out.push({
          owner,
          jobId,
          phase,
          ...(u.memory === undefined ? {} : { memory: u.memory }),
          ...(u.disk === undefined ? {} : { disk: u.disk }),
          seconds: u.seconds.toString(),
          ntasks: u.ntasks.toString(),
          in: u.in.toString(),
          out: u.out.toString(),
        });
  return out;
}

function rowOf(l: PartialLine): PhaseRow {
  return {
    owner: l.owner,
    jobId: l.jobId,
    phase: l.phase,
    memory: l.memory,
    disk: l.disk,
    seconds: BigInt(l.seconds),
    ntasks: BigInt(l.ntasks),
    in: BigInt(l.in),
    out: BigInt(l.out),
  };
}

async function runGroup(ctx: TaskContext<TaskParams>) {
  const { store } = ctx.services;
  const { day, hour = 0 } = ctx.partition;
  const bounds = { start: hourStartMs(day, hour), end: hourStartMs(day, hour) + HOUR_MS };
  const phases: PhaseMap = new Map();
  const read = ctx.report.phase('read');
  for (const log of ctx.task.params.logs) {
    ctx.signal.throwIfAborted();
    const reader = new AgentLogReader(ctx.report, log, bounds);
    const body = await store.get(log);
    let bytes = 0;
    body.on('data', (c: Buffer) => (bytes += c.length));
    for await (const line of createInterface({ input: body, crlfDelay: Infinity })) reader.line(line);
    ctx.report.count('bytesRead', bytes).count('agentLogs');
    reader.addTo(phases);
  }
  read();
  const path = `${ctx.outputPrefix}partial.ndjson`;
  const lines = partialLines(phases);
  const text = jsonLines(lines);
  await store.put(path, text);
  ctx.report.count('bytesWritten', Buffer.byteLength(text));
  return { report: ctx.report.finish(), output: { path, rows: lines.length } };
}

async function commitHour(
  ctx: CommitContext<TaskParams, TaskOutput>,
  o: ComputeMeteringOptions,
): Promise<{ output: ComputeMeteringOutput; report: ReturnType<ReportBuilder['finish']> }> {
  const { store } = ctx.services;
  const { day, hour = 0 } = ctx.partition;
  const report = new ReportBuilder();
  if (ctx.tasks.length === 0) {
    // No agent log for the hour: no compute ran (or none was uploaded — the listing is in the
    // output, and an object arriving later is for a rerun). Nothing is written: the original had
    // no input and no job either, and 24 empty hours a day must cost next to nothing.
    report.event('no-agent-logs', 'info', { prefix: agentLogPrefix(day, hour) });
    return { output: { accounts: 0, logs: [] }, report: report.finish() };
  }
  const merged = report.phase('merge');
  const phases: PhaseMap = new Map();
  for (const t of ctx.tasks) {
    const text = (await readObjectText(store, t.output.path)).trim();
    if (text === '') continue;
    for (const line of text.split('\n')) {
      const row = rowOf(JSON.parse(line) as PartialLine);
      if (addPhase(phases, row))
        report.event('phase-resources-disagree', 'warning', {
          owner: row.owner,
          jobId: row.jobId,
          phase: row.phase,
          memory: row.memory,
          disk: row.disk,
        });
    }
  }
  const owners = [...phases.keys()].sort();
  const body = jsonLines(owners.map((owner) => ({ owner, jobs: jobsRecord(phases.get(owner)!) })));
  merged();
  const published = report.phase('publish');
  const runFile = `${ctx.runPrefix}h${String(hour).padStart(2, '0')}.json`;
  const publishedAt = publishedPath(o.outputPrefix, operatorReportPath(day, hour));
  await store.put(runFile, body);
  await store.put(publishedAt, body);
  const period = ctx.partition.key;
  await putLatest(store, publishedPath(o.outputPrefix, operatorLatestPath()), body, period);
  report.count('accounts', owners.length).count('bytesWritten', Buffer.byteLength(body) * 2);
  published();
  const delivered = report.phase('deliver');
  await deliverToAccounts(ctx.services, report, {
    owners,
    userDir: userReportDir,
    userPath: (login) => userReportPath(login, day, hour),
    userRecord: (owner) => ({ jobs: jobsRecord(phases.get(owner)!), date: reportDate(day, hour) }),
    period,
    keepFrom: addDays(day, -o.reportRetentionDays),
    outputPrefix: o.outputPrefix,
  });
  delivered();
  return {
    output: {
      path: runFile,
      published: publishedAt,
      accounts: owners.length,
      logs: ctx.tasks.flatMap((t) => t.params.logs),
    },
    report: report.finish(),
  };
}

export function computeMeteringJob(
  o: ComputeMeteringOptions,
): JobDefinition<TaskParams, TaskOutput, ComputeMeteringOutput> {
  return {
    name: 'compute-metering',
    description: 'per account, job and phase: seconds, tasks, memory, disk, bandwidth (MANTA-REFERENCE §9)',
    partition: 'hour',
    inputs: { external: [hourEnded(o.settleMinutes)] },
    // The executor counts a deadline from the run's creation, at the day's trigger, for all 24
    // hours alike: the last hour's logs are due at 24:15, so 26 hours leaves it two. (An early
    // hour late by a day is caught by the same alert; a per-hour due time is the executor's.)
    deadlineMs: 26 * HOUR_MS,
    maxAttempts: 5,
    taskTimeoutMs: 30 * 60_000,
    output: computeMeteringOutput,
    split: async (ctx) => {
      const logs = await ctx.services.store.list(agentLogPrefix(ctx.partition.day, ctx.partition.hour ?? 0));
      const tasks = [];
      for (let i = 0; i < logs.length; i += o.objectsPerTask)
        tasks.push({
          key: `g${String(tasks.length).padStart(3, '0')}`,
          params: { logs: logs.slice(i, i + o.objectsPerTask) },
        });
      return tasks;
    },
    runTask: runGroup,
    commit: (ctx) => commitHour(ctx, o),
  };
}
