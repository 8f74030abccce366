/**
 * The `usage-summary` job (docs/metering.md "Daily summary"; MANTA-REFERENCE §3.6): one run per
 * day, after the day's storage-metering run and its 24 request-metering and 24 compute-metering
 * runs (upstream by partition matching: a day partition needs every hour of its day).
 *
 *   input   the committed outputs of those 49 runs (each run's own copy of its operator file),
 *           once the day has ended plus `settleMinutes`
 *   task    one: read the files, sum per owner (usage-summary.rules.ts), write the day's lines
 *           and the operator's text table under the attempt's prefix
 *   commit  operator  /poseidon/stor/usage/summary/YYYY/MM/DD/dDD.json (+ dDD.txt, and
 *                     /poseidon/stor/usage/daily-summary.txt for the latest day)
 *           account   /<login>/reports/usage/summary/YYYY/MM/DD/dDD.json (+ …/latest)
 *
 * Missing inputs are never invented: an hour that is invalid, failed or not run keeps the
 * summary waiting (`inputs.partialAfterDeadline`); past its deadline the run starts on what
 * committed, names every missing hour in a `missing-input` warning (verdict `degraded`) and in
 * each line's `missing`. An input committed after the summary ran reruns it (`inputsChanged`).
 * A rerun reads the same committed files and writes byte-identical files.
 */
import { z } from 'zod';
import { addDays, dayStartMs } from '../../core/days.js';
import { publishedPath } from '../../core/published-path.js';
import { ReportBuilder } from '../../core/run-report.js';
import { formatTable } from '../../core/table.js';
import { listAccounts } from '../../frontdoor/accounts.js';
import { readObjectText, type ObjectStore } from '../../objectstore/object-store.js';
import {
  outputType,
  upstreamOf,
  type CommitContext,
  type ExternalInput,
  type JobDefinition,
  type TaskContext,
  type UpstreamOutput,
} from '../../pipeline/job.js';
import { readPointer } from '../../pipeline/runs.repository.js';
import { reportRetentionFor, type PipelineSettings } from '../../pipeline/settings.js';
import { computeMeteringOutput } from '../compute-metering/compute-metering.job.js';
import { requestMeteringOutput } from '../request-metering/request-metering.job.js';
import { BILLABLE_OPERATIONS } from '../request-metering/request-metering.rules.js';
import { storageMeteringOutput } from '../storage-metering/storage-metering.job.js';
import { deliverToAccounts, jsonLines, putLatest } from '../usage-delivery/usage-delivery.js';
import {
  billingTier,
  DAILY_TEXT_LATEST,
  operatorSummaryPath,
  operatorTextPath,
  phaseGBSeconds,
  summaryRecord,
  usageTableRow,
  userSummaryDir,
  userSummaryPath,
  zeroSums,
  type DaySums,
  type SummaryRecord,
} from './usage-summary.rules.js';

export interface UsageSummaryOptions {
  /** Minutes after the day ends before its summary may run (the hours' own settle times). */
  settleMinutes: number;
  /** Days of per-account summaries kept. */
  reportRetentionDays: number;
  /** `pipeline.outputPrefix`: side by side with the original, published files go under it (src/core/published-path.ts). */
  outputPrefix?: string;
}

export const DEFAULT_SUMMARY_OPTIONS = { settleMinutes: 30 };

/** The options from `pipeline.jobs.usage-summary` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
export function summaryOptionsFrom(
  s: Pick<PipelineSettings, 'jobs' | 'reportRetentionDays' | 'outputPrefix'>,
): UsageSummaryOptions {
  return {
    settleMinutes: s.jobs['usage-summary']?.settleMinutes ?? DEFAULT_SUMMARY_OPTIONS.settleMinutes,
    reportRetentionDays: reportRetentionFor(s, 'usage-summary'),
    outputPrefix: s.outputPrefix,
  };
}

export const usageSummaryOutput = outputType(
  'usage-summary',
  z.object({
    path: z.string(),
    published: z.string(),
    accounts: z.number().int().nonnegative(),
    /** Inputs the summary ran without (past its deadline); empty when complete. */
    missing: z.array(z.string()),
    /**
     * `job partitionKey` → the run it read, or for a missing input the run its pointer named then
     * (0: none; an invalid rerun leaves the older pointer): a later commit reruns the day.
     */
    inputs: z.record(z.string(), z.number().int()),
  }),
);
type UsageSummaryOutput = ReturnType<typeof usageSummaryOutput.parse>;

interface TaskOutput {
  json: string;
  text: string;
  owners: string[];
  missing: string[];
  /** For each missing input, the run its pointer named when the summary ran (0: none). */
  stale: Record<string, number>;
}

const HOUR_MS = 3_600_000;
const UPSTREAM = ['storage-metering', 'request-metering', 'compute-metering'];

/** The day has ended, plus the settle time: a summary of today is not due (driveDays skips it). */
function dayEnded(settleMinutes: number): ExternalInput {
  return {
    name: 'the day has ended',
    exists: ({ services, partition }) => {
      const due = dayStartMs(partition.day) + 24 * HOUR_MS + settleMinutes * 60_000;
      return Promise.resolve({
        ready: services.clock.now() >= due,
        detail: new Date(due).toISOString(),
        dueAt: due,
      });
    },
  };
}

/** The 49 inputs a complete day has, as `job partitionKey`. */
export function expectedInputs(day: string): string[] {
  const hours = Array.from({ length: 24 }, (_, h) => `${day}T${String(h).padStart(2, '0')}`);
  return [
    `storage-metering ${day}`,
    ...hours.map((h) => `request-metering ${h}`),
    ...hours.map((h) => `compute-metering ${h}`),
  ];
}

async function linesOf(store: ObjectStore, path: string | undefined): Promise<unknown[]> {
  if (!path) return [];
  const text = await readObjectText(store, path);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

const storageLine = z.object({
  owner: z.string(),
  storage: z.record(z.string(), z.object({ bytes: z.string() })),
});
const requestLine = z.object({
  owner: z.string(),
  requests: z.object({
    type: z.record(z.string(), z.string()),
    bandwidth: z.object({ in: z.string(), out: z.string() }),
  }),
});
const computeLine = z.object({
  owner: z.string(),
  jobs: z.record(
    z.string(),
    z.record(
      z.string(),
      z.object({
        memory: z.string().optional(),
        disk: z.string().optional(),
        seconds: z.string(),
        bandwidth: z.object({ in: z.string(), out: z.string() }),
      }),
    ),
  ),
});

/** Sum the committed upstream files per owner. */
export async function sumDay(
  store: ObjectStore,
  upstream: readonly UpstreamOutput[],
  report: ReportBuilder,
): Promise<Map<string, DaySums>> {
  const sums = new Map<string, DaySums>();
  const of = (owner: string) => {
    let s = sums.get(owner);
    if (!s) sums.set(owner, (s = zeroSums()));
    return s;
  };
  for (const u of upstreamOf(upstream, storageMeteringOutput))
    for (const raw of await linesOf(store, u.output.path)) {
      const l = storageLine.parse(raw);
      const s = of(l.owner);
      for (const ns of Object.values(l.storage)) s.storageBytes += BigInt(ns.bytes);
    }
  for (const u of upstreamOf(upstream, requestMeteringOutput))
    for (const raw of await linesOf(store, u.output.path)) {
      const l = requestLine.parse(raw);
      const s = of(l.owner);
      for (const op of BILLABLE_OPERATIONS) s.requests[op] += BigInt(l.requests.type[op] ?? '0');
      s.in += BigInt(l.requests.bandwidth.in);
      s.out += BigInt(l.requests.bandwidth.out);
    }
  for (const u of upstreamOf(upstream, computeMeteringOutput))
    for (const raw of await linesOf(store, u.output.path)) {
      const l = computeLine.parse(raw);
      const s = of(l.owner);
      for (const [jobId, phases] of Object.entries(l.jobs))
        for (const [phase, p] of Object.entries(phases)) {
          const tier = billingTier(
            p.memory === undefined ? undefined : Number(p.memory),
            p.disk === undefined ? undefined : Number(p.disk),
          );
          if (tier.beyond)
            report.event('compute-beyond-billing-tiers', 'warning', {
              owner: l.owner,
              jobId,
              phase,
              memory: p.memory,
              disk: p.disk,
              hour: u.partition.key,
            });
          s.computeGBSeconds += phaseGBSeconds(BigInt(p.seconds), tier.memory);
          s.computeIn += BigInt(p.bandwidth.in);
          s.computeOut += BigInt(p.bandwidth.out);
        }
    }
  return sums;
}

/** The operator's plain-text table of the day (accounts by login). */
export function dailyText(
  day: string,
  records: { account: string; r: SummaryRecord }[],
  missing: string[],
): string {
  const rows = records.map(({ account, r }) => usageTableRow(account, r));
  const head = `usage summary ${day}\n`;
  const miss = missing.length > 0 ? `INCOMPLETE: missing ${missing.join(', ')}\n` : '';
  return head + miss + formatTable(rows);
}

async function runSummary(
  ctx: TaskContext,
): Promise<{ report: ReturnType<ReportBuilder['finish']>; output: TaskOutput }> {
  const { store, tier } = ctx.services;
  const { day } = ctx.partition;
  const got = new Set(ctx.upstream.map((u) => `${u.job} ${u.partition.key}`));
  const missing = expectedInputs(day).filter((k) => !got.has(k));
  const stale: Record<string, number> = {};
  for (const key of missing) {
    const [job, partitionKey] = key.split(' ') as [string, string];
    stale[key] = (await readPointer(tier.control, job, partitionKey))?.runId ?? 0;
  }
  if (missing.length > 0)
    ctx.report.event(
      'missing-input',
      'warning',
      { missing: missing.length, inputs: missing },
      missing.length,
    );
  const read = ctx.report.phase('read');
  const sums = await sumDay(store, ctx.upstream, ctx.report);
  read();
  const owners = [...sums.keys()].sort();
  const records = owners.map((owner) => ({ owner, r: summaryRecord(sums.get(owner)!, day, missing) }));
  const logins = new Map((await listAccounts(tier)).map((a) => [a.uuid, a.login]));
  const json = `${ctx.outputPrefix}d.json`;
  const text = `${ctx.outputPrefix}d.txt`;
  await store.put(json, jsonLines(records.map(({ owner, r }) => ({ owner, ...r }))));
  await store.put(
    text,
    dailyText(
      day,
      records.map(({ owner, r }) => ({ account: logins.get(owner) ?? owner, r })),
      missing,
    ),
  );
  ctx.report.count('accounts', owners.length).count('inputs', ctx.upstream.length);
  return { report: ctx.report.finish(), output: { json, text, owners, missing, stale } };
}

async function commitDay(
  ctx: CommitContext<unknown, TaskOutput>,
  o: UsageSummaryOptions,
): Promise<{ output: UsageSummaryOutput; report: ReturnType<ReportBuilder['finish']> }> {
  const { store } = ctx.services;
  const { day } = ctx.partition;
  const report = new ReportBuilder();
  const t = ctx.tasks[0]!.output;
  const body = await readObjectText(store, t.json);
  const text = await readObjectText(store, t.text);
  const published = report.phase('publish');
  const runFile = `${ctx.runPrefix}d${day.slice(8, 10)}.json`;
  const at = (original: string) => publishedPath(o.outputPrefix, original);
  await store.put(runFile, body);
  await store.put(at(operatorSummaryPath(day)), body);
  await store.put(at(operatorTextPath(day)), text);
  await putLatest(store, at(DAILY_TEXT_LATEST), text, day);
  report.count('bytesWritten', Buffer.byteLength(body) * 2 + Buffer.byteLength(text) * 2);
  published();
  const records = new Map(
    body
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const { owner, ...r } = JSON.parse(l) as SummaryRecord & { owner: string };
        return [owner, r] as const;
      }),
  );
  const delivered = report.phase('deliver');
  await deliverToAccounts(ctx.services, report, {
    owners: t.owners,
    userDir: userSummaryDir,
    userPath: (login) => userSummaryPath(login, day),
    userRecord: (owner) => records.get(owner),
    period: day,
    keepFrom: addDays(day, -o.reportRetentionDays),
    outputPrefix: o.outputPrefix,
  });
  delivered();
  return {
    output: {
      path: runFile,
      published: at(operatorSummaryPath(day)),
      accounts: t.owners.length,
      missing: t.missing,
      inputs: {
        ...t.stale,
        ...Object.fromEntries(ctx.upstream.map((u) => [`${u.job} ${u.partition.key}`, u.runId])),
      },
    },
    report: report.finish(),
  };
}

export function usageSummaryJob(
  o: UsageSummaryOptions,
): JobDefinition<unknown, TaskOutput, UsageSummaryOutput> {
  return {
    name: 'usage-summary',
    description: 'per account and day: storage GB-hours, requests, bandwidth, compute GB-seconds (§3.6)',
    partition: 'day',
    inputs: { upstream: UPSTREAM, external: [dayEnded(o.settleMinutes)], partialAfterDeadline: true },
    // From the day's start: its last hours are metered by 24:30; the original summarized at 01:30
    // of the next day. Six hours more for late logs and reruns, then it runs on what it has.
    deadlineMs: 30 * HOUR_MS,
    maxAttempts: 5,
    taskTimeoutMs: 30 * 60_000,
    output: usageSummaryOutput,
    // An hour rerun after the summary (a late log, an invalid hour fixed) reruns the day, with
    // the coordinator's late-input alert (src/pipeline/late-inputs.ts).
    inputsChanged: async ({ services, partition, output }) => {
      const changed: string[] = [];
      for (const key of expectedInputs(partition.day)) {
        const [job, partitionKey] = key.split(' ') as [string, string];
        const p = await readPointer(services.tier.control, job, partitionKey);
        const then = output.inputs[key] ?? 0;
        if (p && p.runId !== then)
          changed.push(`${key} committed run ${p.runId} (the summary had run ${then})`);
      }
      return changed.length > 0 ? `inputs committed since: ${changed.join(', ')}` : undefined;
    },
    split: () => Promise.resolve([{ key: 'day' }]),
    runTask: runSummary,
    commit: (ctx) => commitDay(ctx, o),
  };
}
