/**
 * Usage as the dashboard (`GET /api/usage`) and `remora usage show --json` see it: the committed
 * daily summaries (usage-summary, docs/metering.md "Daily summary") of the `days` days ending at
 * `to`, per account as series for charts, and one day's per-account table.
 *
 * Where a day's numbers come from, in order:
 *   1. the usage-summary pointer of the day (`readPointer`, as every downstream job and the other
 *      views find a committed output): its run, verdict and `missing` inputs, and the run's own
 *      copy of the file (`output.path`), never a file a later run is still writing;
 *   2. once run retention (`pipeline.retentionDays`) has forgotten that run and its copy, the
 *      published operator file (`operatorSummaryPath`, the one `remora demo`'s table and the
 *      accounts' reports are read from), which stays; its lines still carry `missing`.
 * A day with neither has no summary: a gap (`null`), never zeros. An account absent from a day's
 * summary had no usage that day: zeros (the summary lists every owner any input named).
 *
 * Every number is the summary file's decimal string, as it is (bytes can outgrow a double);
 * `requests` in the series is the sum over the billable operations.
 */
import { addDays, dayOf } from '../../core/days.js';
import { RemoraError } from '../../core/errors.js';
import type { Verdict } from '../../core/run-report.js';
import { listAccounts } from '../../frontdoor/accounts.js';
import { readObjectText, type ObjectStore } from '../../objectstore/object-store.js';
import { BILLABLE_OPERATIONS } from '../../jobs/request-metering/request-metering.rules.js';
import { usageSummaryOutput } from '../../jobs/usage-summary/usage-summary.job.js';
import { operatorSummaryPath, type SummaryRecord } from '../../jobs/usage-summary/usage-summary.rules.js';
import { readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';

/** Days charted unless `days` says otherwise: the month the original's reports covered. */
export const DEFAULT_USAGE_DAYS = 30;
/** At most a year and a day: one pointer read and one file read per day. */
export const MAX_USAGE_DAYS = 366;

/** The series charted per account, in the page's order. */
export const USAGE_METRICS = [
  'storageGBHours',
  'requests',
  'bandwidthIn',
  'bandwidthOut',
  'computeGBSeconds',
] as const;
export type UsageMetric = (typeof USAGE_METRICS)[number];

export interface SummaryDay {
  day: string;
  /** `run`: the committed run's own file; `published`: the operator file, the run being past retention. */
  source: 'run' | 'published';
  /** The committed run and its verdict (null when read from the published file). */
  runId: number | null;
  verdict: Verdict | null;
  path: string;
  /** Inputs the summary ran without, past its deadline (`degraded`); empty when complete. */
  missing: string[];
  accounts: number;
}

/** One line of a summary file, with the account's login. */
export type UsageRow = SummaryRecord & { owner: string; account: string };

export interface UsageAccount {
  owner: string;
  /** The login; the owner's uuid when no account has it. */
  account: string;
  /** Aligned with `UsageView.days`: null where the day has no summary. */
  series: Record<UsageMetric, (string | null)[]>;
}

export interface UsageView {
  /** Oldest first, ending at `to`. */
  days: string[];
  /** Aligned with `days`: the day's committed summary, or null (a gap). */
  summaries: (SummaryDay | null)[];
  /** The login asked for (`account`), or null for every account. */
  account: string | null;
  /** Every account some summary of the window names (or the one asked for), by login. */
  accounts: UsageAccount[];
  /** The table's day: `date`, else the newest day of the window with a summary; null if none. */
  date: string | null;
  /** That day's summary (null: none) and its lines, by login. */
  table: { summary: SummaryDay | null; rows: UsageRow[] };
}

export interface UsageQuery {
  /** The table's day; the window ends there. Default: the window ends today. */
  date?: string;
  days?: number;
  /** One account's login. */
  account?: string;
}

interface DayFile {
  summary: SummaryDay;
  records: (SummaryRecord & { owner: string })[];
}

function parseLines(text: string): (SummaryRecord & { owner: string })[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as SummaryRecord & { owner: string });
}

/** A day's committed summary (see the header for where it is read from); undefined: none. */
export async function readSummaryDay(
  rt: PipelineRuntime,
  store: ObjectStore,
  day: string,
): Promise<DayFile | undefined> {
  const p = await readPointer(rt.control, 'usage-summary', day);
  if (p) {
    const out = usageSummaryOutput.parse(p.output);
    if (await store.head(out.path)) {
      const records = parseLines(await readObjectText(store, out.path));
      return {
        summary: {
          day,
          source: 'run',
          runId: p.runId,
          verdict: p.verdict,
          path: out.path,
          missing: out.missing,
          accounts: out.accounts,
        },
        records,
      };
    }
  }
  const published = operatorSummaryPath(day);
  if (!(await store.head(published))) return undefined;
  const records = parseLines(await readObjectText(store, published));
  return {
    summary: {
      day,
      source: 'published',
      runId: null,
      verdict: null,
      path: published,
      missing: records[0]?.missing ?? [],
      accounts: records.length,
    },
    records,
  };
}

const ZERO = '0';

function metricOf(r: SummaryRecord, m: UsageMetric): string {
  switch (m) {
    case 'storageGBHours':
      return r.storageGBHours;
    case 'requests':
      return BILLABLE_OPERATIONS.reduce((n, op) => n + BigInt(r.requests[op] ?? ZERO), 0n).toString();
    case 'bandwidthIn':
      return r.bandwidthBytes.in;
    case 'bandwidthOut':
      return r.bandwidthBytes.out;
    case 'computeGBSeconds':
      return r.computeGBSeconds;
  }
}

export async function usageView(rt: PipelineRuntime, q: UsageQuery = {}): Promise<UsageView> {
  const { store, tier } = rt.services;
  const n = q.days ?? DEFAULT_USAGE_DAYS;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_USAGE_DAYS)
    throw new RemoraError('UsageError', `days: expected an integer from 1 to ${MAX_USAGE_DAYS}, got ${n}`);
  const to = q.date ?? dayOf(rt.services.clock.now());
  const days = Array.from({ length: n }, (_, i) => addDays(to, i - n + 1));
  const logins = new Map((await listAccounts(tier)).map((a) => [a.uuid, a.login]));
  const loginOf = (owner: string) => logins.get(owner) ?? owner;

  const files: (DayFile | undefined)[] = [];
  for (const d of days) files.push(await readSummaryDay(rt, store, d));

  let owners = [...new Set(files.flatMap((f) => f?.records.map((r) => r.owner) ?? []))];
  if (q.account !== undefined) {
    const owner =
      [...logins].find(([, login]) => login === q.account)?.[0] ?? owners.find((o) => o === q.account);
    if (owner === undefined)
      throw new RemoraError(
        'UsageError',
        `account: no account ${JSON.stringify(q.account)} (accounts: ${[...logins.values()].sort().join(', ')})`,
      );
    owners = [owner];
  }
  owners.sort((a, b) => loginOf(a).localeCompare(loginOf(b)));

  const accounts = owners.map((owner) => {
    const series = Object.fromEntries(USAGE_METRICS.map((m) => [m, [] as (string | null)[]])) as Record<
      UsageMetric,
      (string | null)[]
    >;
    for (const f of files) {
      const r = f?.records.find((x) => x.owner === owner);
      for (const m of USAGE_METRICS) series[m].push(!f ? null : r ? metricOf(r, m) : ZERO);
    }
    return { owner, account: loginOf(owner), series };
  });

  let at = -1;
  if (q.date !== undefined) at = days.length - 1;
  else for (let i = days.length - 1; i >= 0 && at < 0; i--) if (files[i]) at = i;
  const tableFile = at >= 0 ? files[at] : undefined;
  const rows = (tableFile?.records ?? [])
    .filter((r) => owners.includes(r.owner))
    .map((r) => ({ ...r, account: loginOf(r.owner) }))
    .sort((a, b) => a.account.localeCompare(b.account));
  return {
    days,
    summaries: files.map((f) => f?.summary ?? null),
    account: q.account ?? null,
    accounts,
    date: at >= 0 ? days[at]! : null,
    table: { summary: tableFile?.summary ?? null, rows },
  };
}
