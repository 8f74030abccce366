/**
 * The access-logs job (hourly, beside request metering; mackerel's `accessLogs` job): one task
 * reads the hour's front door audit logs, in path order and line order, sanitizes every
 * request made to an account's objects (access-logs.rules.ts) and delivers
 * `/<login>/reports/access-logs/YYYY/MM/DD/HH/hHH.json` + `latest` to each account with
 * `reports: true` that had requests in the hour. Records are grouped per owner in local scratch
 * files while reading (an hour's log can be larger than memory), then uploaded.
 *
 * Delivery happens in the task (each put idempotent: a retried task writes the same bytes);
 * the commit only records which logs were read, so a log arriving later reruns the hour and
 * re-delivers it whole. Malformed lines count against the same MALFORMED_LIMIT as request
 * metering (`pipeline.jobs.request-metering.malformedLimit`), per log object.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { addDays } from '../../core/days.js';
import { publishedPath } from '../../core/published-path.js';
import { ReportBuilder } from '../../core/run-report.js';
import { outputType, type JobDefinition, type TaskContext } from '../../pipeline/job.js';
import { eachLimit } from '../../core/concurrency.js';
import { listAccounts } from '../../frontdoor/accounts.js';
import type { AccountValue } from '../../metadata/types.js';
import { pruneAccounts, putLatest, reportsStoreOf } from '../usage-delivery/usage-delivery.js';
import {
  hourlyLogJob,
  logObjectSchema,
  type HourLogsParams,
  type LogObject,
} from '../metering-kit/muskie-logs.js';
import { isMalformedLine } from '../request-metering/request-metering.scan.js';
import { malformedLimit } from '../request-metering/request-metering.rules.js';
import type { RequestMeteringOptions } from '../request-metering/request-metering.job.js';
import { accessLogDir, accessLogPath, sanitize, wantedForAccessLog } from './access-logs.rules.js';

export const accessLogsOutput = outputType(
  'access-logs',
  z.object({ logs: z.array(logObjectSchema), delivered: z.number().int().nonnegative() }),
);
type AccessLogsOutput = ReturnType<typeof accessLogsOutput.parse>;

type TaskParams = HourLogsParams;

/** Accounts' access logs uploaded at once. */
const DELIVERY_CONCURRENCY = 8;

/** Buffered bytes of sanitized records before they go to the per-owner scratch files. */
const FLUSH_BYTES = 16 << 20;

class OwnerFiles {
  private readonly buffers = new Map<string, string[]>();
  private buffered = 0;
  readonly lines = new Map<string, number>();

  constructor(readonly dir: string) {}

  add(owner: string, line: string): void {
    let b = this.buffers.get(owner);
    if (!b) this.buffers.set(owner, (b = []));
    b.push(line);
    this.lines.set(owner, (this.lines.get(owner) ?? 0) + 1);
    this.buffered += line.length + 1;
    if (this.buffered >= FLUSH_BYTES) this.flush();
  }

  flush(): void {
    for (const [owner, lines] of this.buffers) fs.appendFileSync(this.file(owner), `${lines.join('\n')}\n`);
    this.buffers.clear();
    this.buffered = 0;
  }

  file(owner: string): string {
    return path.join(this.dir, encodeURIComponent(owner));
  }
}

async function readLog(
  ctx: TaskContext<TaskParams>,
  log: LogObject,
  wanted: (owner: string) => boolean,
  files: OwnerFiles,
  limitSetting: string | number,
): Promise<void> {
  const report = ctx.report;
  let lines = 0;
  let malformed = 0;
  const rl = createInterface({ input: await ctx.services.store.get(log.path), crlfDelay: Infinity });
  for await (const line of rl) {
    lines++;
    if (!/^[ \t\r]*\{/.test(line)) continue;
    report.count('recordsScanned', 1);
    if (isMalformedLine(line)) {
      malformed++;
      report.event('malformed-line', 'error', { log: log.path, line: lines, text: line.slice(0, 300) });
      continue;
    }
    const rec = JSON.parse(line) as Record<string, unknown>;
    if (!wantedForAccessLog(rec)) {
      report.count('skipped', 1);
      continue;
    }
    if (!wanted(rec.req.owner)) continue;
    files.add(rec.req.owner, JSON.stringify(sanitize(rec)));
    report.count('processed', 1);
  }
  report.count('malformed', malformed).count('bytesRead', log.bytes);
  if (malformed > malformedLimit(limitSetting, lines))
    report.event('too-many-malformed-lines', 'fatal', {
      log: log.path,
      malformed,
      limit: String(limitSetting),
    });
}

async function runHour(ctx: TaskContext<TaskParams>, o: RequestMeteringOptions) {
  const store = reportsStoreOf(ctx.services);
  const report = ctx.report;
  const hour = ctx.partition.key;
  const accounts = new Map((await listAccounts(ctx.services.tier)).map((a) => [a.uuid, a]));
  const seen = new Map<string, AccountValue | undefined>();
  const wanted = (owner: string) => {
    if (!seen.has(owner)) {
      const a = accounts.get(owner);
      seen.set(owner, a);
      if (!a) report.event('unknown-owner', 'warning', { owner });
      else if (a.reports !== true) report.count('notDelivered');
    }
    return seen.get(owner)?.reports === true;
  };
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'remora-access-logs-'));
  try {
    const files = new OwnerFiles(dir);
    const read = report.phase('read');
    for (const log of ctx.task.params.logs) await readLog(ctx, log, wanted, files, o.malformedLimit);
    files.flush();
    read();
    const delivered = report.phase('deliver');
    const owners = [...files.lines.keys()].sort();
    const keepFrom = addDays(ctx.partition.day, -o.reportRetentionDays);
    await eachLimit(owners, DELIVERY_CONCURRENCY, async (owner) => {
      const login = accounts.get(owner)!.login;
      const body = await fs.promises.readFile(files.file(owner));
      await store.put(publishedPath(o.outputPrefix, accessLogPath(login, hour)), body);
      const latest = publishedPath(o.outputPrefix, `${accessLogDir(login)}/latest`);
      await putLatest(store, latest, body.toString(), hour);
      report.count('delivered').count('bytesWritten', 2 * body.length);
    });
    await pruneAccounts(store, report, [...accounts.values()], accessLogDir, keepFrom, o.outputPrefix);
    report.count('accounts', owners.length);
    delivered();
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
  const finished = report.finish();
  return { report: finished, output: { delivered: finished.counters.delivered ?? 0 } };
}

export function accessLogsJob(
  o: RequestMeteringOptions,
): JobDefinition<HourLogsParams, { delivered: number }, AccessLogsOutput> {
  return hourlyLogJob({
    name: 'access-logs',
    description:
      "per account and hour: its objects' requests as sanitized audit records (MANTA-REFERENCE §3.6)",
    output: accessLogsOutput,
    runTask: (ctx) => runHour(ctx, o),
    commit: (ctx) =>
      Promise.resolve({
        output: {
          logs: ctx.tasks.flatMap((t) => t.params.logs),
          delivered: ctx.tasks.reduce((s, t) => s + t.output.delivered, 0),
        },
        report: new ReportBuilder().finish(),
      }),
  });
}
