/**
 * The request-metering job (hourly; MANTA-REFERENCE §3.6 "Request"): one task reads every
 * front door audit log of the hour (request-metering.scan.ts) and writes its per-owner sums
 * under its attempt's prefix; the commit writes
 *
 *   operator  /poseidon/stor/usage/request/YYYY/MM/DD/HH/hHH.json   {"owner","requests":{…}} per line, owners sorted
 *   account   /<login>/reports/usage/request/YYYY/MM/DD/HH/hHH.json {"requests":{…},"date":"…"}
 *             /<login>/reports/usage/request/latest                 (a copy; the original snaplinked it)
 *
 * An hour with no log objects has no task and writes no file (metered: no requests). The
 * committed output names the log objects read (path, bytes, sha256): a log that arrives or
 * changes after the commit reruns the hour (`inputsChanged`, src/pipeline/late-inputs.ts).
 * Reruns read the same objects in the same order and write byte-identical files.
 */
import { z } from 'zod';
import { addDays } from '../../core/days.js';
import { publishedPath } from '../../core/published-path.js';
import { ReportBuilder } from '../../core/run-report.js';
import { withLocalChunks } from '../../objectstore/local-chunks.js';
import { readObjectText } from '../../objectstore/object-store.js';
import { outputType, type CommitContext, type JobDefinition, type TaskContext } from '../../pipeline/job.js';
import { reportRetentionFor, type PipelineSettings } from '../../pipeline/settings.js';
import { deliverToAccounts } from '../usage-delivery/usage-delivery.js';
import { hourlyLogJob, logObjectSchema, type HourLogsParams } from '../metering-kit/muskie-logs.js';
import {
  accountRecord,
  BILLABLE_OPERATIONS,
  DEFAULT_MALFORMED_LIMIT,
  hourIso,
  malformedLimit,
  operatorLine,
  operatorReportPath,
  userReportDir,
  userReportPath,
  zeroRequestUsage,
  type RequestUsage,
} from './request-metering.rules.js';
import { LINE_CLASSES, scanHour } from './request-metering.scan.js';

/** What a request-metering run commits: its operator file, where it was published, the logs it read. */
export const requestMeteringOutput = outputType(
  'request-metering',
  z.object({
    /** The run's own copy of the operator file; empty when the hour had no logs (no file). */
    path: z.string(),
    published: z.string(),
    accounts: z.number().int().nonnegative(),
    logs: z.array(logObjectSchema),
  }),
);
type RequestMeteringOutput = ReturnType<typeof requestMeteringOutput.parse>;

export interface RequestMeteringOptions {
  /** MALFORMED_LIMIT per log object: a count or "N%". */
  malformedLimit: string | number;
  /** Days of per-account reports kept. */
  reportRetentionDays: number;
  /** `pipeline.outputPrefix`: side by side with the original, published files go under it (src/core/published-path.ts). */
  outputPrefix?: string;
}

export function requestMeteringOptionsFrom(
  s: Pick<PipelineSettings, 'jobs' | 'reportRetentionDays' | 'outputPrefix'>,
): RequestMeteringOptions {
  return {
    malformedLimit: s.jobs['request-metering']?.malformedLimit ?? DEFAULT_MALFORMED_LIMIT,
    reportRetentionDays: reportRetentionFor(s, 'request-metering'),
    outputPrefix: s.outputPrefix,
  };
}

type TaskParams = HourLogsParams;

interface TaskOutput {
  path: string;
  owners: number;
}

type PartialRow = { owner: string } & Record<string, string>;

async function runHour(ctx: TaskContext<TaskParams>, o: RequestMeteringOptions) {
  const { store, duck } = ctx.services;
  const report = ctx.report;
  const inputs = report.phase('inputs');
  const scan = await withLocalChunks(store, ctx.task.params.logs, async (files) => {
    inputs();
    const done = report.phase('scan');
    const s = await scanHour(duck, files, report.phase('queued'));
    done();
    return s;
  });
  for (const [i, f] of scan.files.entries()) {
    const log = ctx.task.params.logs[i]!;
    report.count('bytesRead', log.bytes).count('logObjects', 1).count('otherLines', f.otherLines);
    report.count('recordsScanned', f.jsonLines).count('malformed', f.classes.malformed);
    for (const c of LINE_CLASSES) if (c !== 'malformed') report.count(`${c}Lines`, f.classes[c]);
    report.count('processed', f.classes.billable);
    for (const ex of f.examples) report.event('malformed-line', 'error', { log: log.path, ...ex });
    if (f.classes.malformed > f.examples.length)
      report.event('malformed-line', 'error', undefined, f.classes.malformed - f.examples.length);
    const limit = malformedLimit(o.malformedLimit, f.jsonLines + f.otherLines);
    if (f.classes.malformed > limit)
      report.event('too-many-malformed-lines', 'fatal', {
        log: log.path,
        malformed: f.classes.malformed,
        limit: String(o.malformedLimit),
        hint: 'the log object is damaged or is not a muskie audit log: replace it, then rerun the hour',
      });
  }
  if (scan.unknownOperations > 0) {
    for (const op of scan.unknownOperationExamples)
      report.event('unknown-operation', 'warning', { billable_operation: op }, 0);
    report.event('unknown-operation', 'warning', undefined, scan.unknownOperations);
  }
  report.count('noOperationLines', scan.noOperation);
  const written = report.phase('write');
  const rows = [...scan.usage.keys()]
    .sort()
    .map((owner) => JSON.stringify(partialRow(owner, scan.usage.get(owner)!)));
  const body = rows.length ? `${rows.join('\n')}\n` : '';
  const path = `${ctx.outputPrefix}partial.ndjson`;
  await store.put(path, body);
  report.count('bytesWritten', Buffer.byteLength(body));
  written();
  return { report: report.finish(), output: { path, owners: rows.length } };
}

function partialRow(owner: string, u: RequestUsage): PartialRow {
  const row: PartialRow = { owner };
  for (const op of BILLABLE_OPERATIONS) row[op] = u.type[op].toString();
  row.in = u.in.toString();
  row.out = u.out.toString();
  row.headerIn = u.headerIn.toString();
  row.headerOut = u.headerOut.toString();
  return row;
}

function addPartial(into: Map<string, RequestUsage>, r: PartialRow): void {
  const u = into.get(r.owner) ?? zeroRequestUsage();
  for (const op of BILLABLE_OPERATIONS) u.type[op] += BigInt(r[op] ?? '0');
  u.in += BigInt(r.in ?? '0');
  u.out += BigInt(r.out ?? '0');
  u.headerIn += BigInt(r.headerIn ?? '0');
  u.headerOut += BigInt(r.headerOut ?? '0');
  into.set(r.owner, u);
}

async function commitHour(ctx: CommitContext<TaskParams, TaskOutput>, o: RequestMeteringOptions) {
  const { store } = ctx.services;
  const hour = ctx.partition.key;
  const report = new ReportBuilder();
  const publishedAt = publishedPath(o.outputPrefix, operatorReportPath(hour));
  if (ctx.tasks.length === 0) {
    // No front door log for the hour: metered, no requests — and no files (the original had no
    // job to run either). A file left by an earlier run of the hour is stale: removed (Remora's
    // own: with an output prefix, the original's file of the hour is not Remora's to remove).
    if (await store.head(publishedAt)) await store.delete(publishedAt);
    return {
      output: { path: '', published: publishedAt, accounts: 0, logs: [] },
      report: report.finish(),
    };
  }
  const merged = report.phase('merge');
  const usage = new Map<string, RequestUsage>();
  for (const t of ctx.tasks) {
    const text = (await readObjectText(store, t.output.path)).trim();
    if (text) for (const line of text.split('\n')) addPartial(usage, JSON.parse(line) as PartialRow);
  }
  const owners = [...usage.keys()].sort();
  const body = owners.length ? `${owners.map((w) => operatorLine(w, usage.get(w)!)).join('\n')}\n` : '';
  merged();
  const published = report.phase('publish');
  await store.put(`${ctx.runPrefix}${operatorReportPath(hour).split('/').pop()}`, body);
  await store.put(publishedAt, body);
  report.count('accounts', owners.length).count('bytesWritten', 2 * Buffer.byteLength(body));
  published();
  const delivered = report.phase('deliver');
  await deliverToAccounts(ctx.services, report, {
    owners,
    userDir: userReportDir,
    userPath: (login) => userReportPath(login, hour),
    userRecord: (owner) => accountRecord(usage.get(owner)!, hourIso(hour)),
    period: hour,
    keepFrom: addDays(ctx.partition.day, -o.reportRetentionDays),
    outputPrefix: o.outputPrefix,
  });
  delivered();
  const logs = ctx.tasks.flatMap((t) => t.params.logs);
  return {
    output: {
      path: `${ctx.runPrefix}${operatorReportPath(hour).split('/').pop()}`,
      published: publishedAt,
      accounts: owners.length,
      logs,
    },
    report: report.finish(),
  };
}

export function requestMeteringJob(
  o: RequestMeteringOptions,
): JobDefinition<HourLogsParams, TaskOutput, RequestMeteringOutput> {
  return hourlyLogJob({
    name: 'request-metering',
    description:
      'per owner and hour: requests by billable operation, bandwidth in/out and header bytes (MANTA-REFERENCE §3.6)',
    output: requestMeteringOutput,
    runTask: (ctx) => runHour(ctx, o),
    commit: (ctx) => commitHour(ctx, o),
  });
}
