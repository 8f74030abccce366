/** Read-only views for operators: the days × jobs matrix and one run in detail. */
import {
  alertsForRun,
  firstRunDay,
  getRun,
  latestGridRows,
  type GridRunRow,
  type RunRow,
  type RunState,
} from './runs.repository.js';
import { attemptsOfRun, tasksOfRun, type AttemptRow, type TaskRow } from './tasks.repository.js';
import { latestRunsBetween } from './operations.js';
import { addDays } from '../core/days.js';
import type { PipelineRuntime } from './runtime.js';
import { SEVERITIES, type ReportEvent } from '../core/run-report.js';

/** Worst first: the cell of a job on a day shows its worst partition. */
export const CELL_ORDER = ['failed', 'invalid', 'blocked', 'running', 'waiting', 'degraded', 'ok'] as const;
export type Cell = (typeof CELL_ORDER)[number] | '';

function cellOf(state: RunState, verdict: string | null): Cell {
  if (state === 'succeeded') return verdict === 'degraded' ? 'degraded' : 'ok';
  return state;
}

/** `{day → {job → cell}}` for the last `days` days up to `today`, newest last. */
export async function runMatrix(
  rt: PipelineRuntime,
  today: string,
  days: number,
): Promise<{ days: string[]; jobs: string[]; cells: Map<string, Map<string, Cell>> }> {
  const from = addDays(today, -(days - 1));
  const cells = new Map<string, Map<string, Cell>>();
  for (const r of await latestRunsBetween(rt, from, today)) {
    const row = cells.get(r.day) ?? new Map<string, Cell>();
    cells.set(r.day, row);
    const c = cellOf(r.state, r.verdict);
    const prev = row.get(r.job);
    if (!prev || CELL_ORDER.indexOf(c as (typeof CELL_ORDER)[number]) < CELL_ORDER.indexOf(prev))
      row.set(r.job, c);
  }
  const list: string[] = [];
  for (let d = from; d <= today; d = addDays(d, 1)) list.push(d);
  return { days: list, jobs: rt.graph.names(), cells };
}

export interface RunDetail {
  run: RunRow;
  tasks: TaskRow[];
  attempts: AttemptRow[];
  alerts: { kind: string; message: string }[];
}

export async function describeRun(rt: PipelineRuntime, id: number): Promise<RunDetail | undefined> {
  const run = await getRun(rt.control, id);
  if (!run) return undefined;
  return {
    run,
    tasks: await tasksOfRun(rt.control, id),
    attempts: await attemptsOfRun(rt.control, id),
    alerts: await alertsForRun(rt.control, id),
  };
}

/** One cell of the runs grid: a job on a day, shown by its worst partition. */
export interface GridCell {
  cell: Exclude<Cell, ''>;
  /** The run the cell links to: the worst partition's latest run. */
  runId: number;
  partitions: number;
  /** Partitions per cell value, e.g. {ok: 5, degraded: 1}. */
  byCell: Record<string, number>;
  /** The key counter, summed over the partitions: records scanned (processed when a job scans none). */
  records: number;
  malformed: number;
  /** The longest partition's run time (null while none finished). */
  durationMs: number | null;
}

export interface RunGrid {
  today: string;
  /** Newest first. */
  days: string[];
  jobs: string[];
  /** day → job → cell (absent: no run). */
  cells: Record<string, Record<string, GridCell>>;
  page: number;
  pageDays: number;
  /** The page with older days, or null when this page reaches the first recorded day. */
  olderPage: number | null;
  newerPage: number | null;
  firstDay: string | null;
  filters: { job: string | null; state: string | null };
}

export interface GridQuery {
  today: string;
  pageDays: number;
  /** 0: the newest page (ending today). */
  page?: number;
  job?: string;
  /** Keep only cells with this value (ok, degraded, invalid, failed, blocked, running, waiting). */
  state?: string;
}

const rank = (c: string) => CELL_ORDER.indexOf(c as (typeof CELL_ORDER)[number]);

function toCell(rows: GridRunRow[]): GridCell {
  let worst = rows[0]!;
  const byCell: Record<string, number> = {};
  let anyDuration = false;
  for (const r of rows) {
    const c = cellOf(r.state, r.verdict);
    byCell[c] = (byCell[c] ?? 0) + 1;
    if (rank(c) < rank(cellOf(worst.state, worst.verdict))) worst = r;
    if (r.durationMs !== null) anyDuration = true;
  }
  // The partitions of a job run side by side: the cell's duration is the longest partition's.
  const longest = Math.max(...rows.map((r) => r.durationMs ?? 0));
  return {
    cell: cellOf(worst.state, worst.verdict) as GridCell['cell'],
    runId: worst.id,
    partitions: rows.length,
    byCell,
    records: rows.reduce((n, r) => n + r.records, 0),
    malformed: rows.reduce((n, r) => n + r.malformed, 0),
    durationMs: anyDuration ? longest : null,
  };
}

/** The dashboard's and `runs --json`'s grid: a page of days × jobs, newest first. */
export async function runGrid(rt: PipelineRuntime, q: GridQuery): Promise<RunGrid> {
  const page = q.page ?? 0;
  const to = addDays(q.today, -page * q.pageDays);
  const from = addDays(to, -(q.pageDays - 1));
  const jobs = q.job ? [rt.graph.get(q.job).name] : rt.graph.names();
  const groups = new Map<string, GridRunRow[]>();
  for (const r of await latestGridRows(rt.control, from, to, q.job)) {
    const k = `${r.day}|${r.job}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const cells: RunGrid['cells'] = {};
  for (const [k, rows] of groups) {
    const [day, job] = k.split('|') as [string, string];
    const c = toCell(rows);
    if (q.state && c.cell !== q.state) continue;
    (cells[day] ??= {})[job] = c;
  }
  const days: string[] = [];
  for (let d = to; d >= from; d = addDays(d, -1)) days.push(d);
  const first = (await firstRunDay(rt.control)) ?? null;
  return {
    today: q.today,
    days,
    jobs,
    cells,
    page,
    pageDays: q.pageDays,
    olderPage: first !== null && first < from ? page + 1 : null,
    newerPage: page > 0 ? page - 1 : null,
    firstDay: first,
    filters: { job: q.job ?? null, state: q.state ?? null },
  };
}

/** A run as the dashboard's run page and `run show --json` show it. */
export interface RunPage extends RunDetail {
  /** Events worst severity first, then by count. */
  events: ReportEvent[];
  /** Phase → ms, `total` last. */
  phases: { phase: string; ms: number }[];
  /** The upstream runs it read (from its inputs), or named in its blocking error. */
  upstream: { job: string; partitionKey: string; runId: number; verdict: string | null }[];
  /** The exact CLI commands that run it again, alone or with everything downstream. */
  rerun: { alone: string; withDownstream: string };
}

interface InputRef {
  job?: unknown;
  partition?: { key?: unknown };
  runId?: unknown;
  verdict?: unknown;
}

export async function runPage(rt: PipelineRuntime, id: number): Promise<RunPage | undefined> {
  const d = await describeRun(rt, id);
  if (!d) return undefined;
  const report = d.run.report;
  const events = Object.values(report?.events ?? {}).sort(
    (a, b) => SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) || b.count - a.count,
  );
  const phases = Object.entries(report?.durations ?? {})
    .map(([phase, ms]) => ({ phase, ms }))
    .sort((a, b) => Number(a.phase === 'total') - Number(b.phase === 'total'));
  const upstream: RunPage['upstream'] = [];
  const inputs = Array.isArray(d.run.inputs) ? (d.run.inputs as InputRef[]) : [];
  for (const i of inputs) {
    if (typeof i.job === 'string' && typeof i.runId === 'number')
      upstream.push({
        job: i.job,
        partitionKey: typeof i.partition?.key === 'string' ? i.partition.key : '',
        runId: i.runId,
        verdict: typeof i.verdict === 'string' ? i.verdict : null,
      });
  }
  // A blocked run never started: its error names the input that blocked it ("… (run N)").
  const blocker = /^input (\S+) (\S+) is \w+ \(run (\d+)\)$/.exec(d.run.error ?? '');
  if (upstream.length === 0 && blocker) {
    const up = await getRun(rt.control, Number(blocker[3]));
    if (up) upstream.push({ job: up.job, partitionKey: up.partitionKey, runId: up.id, verdict: up.verdict });
  }
  const cmd = `remora rerun ${d.run.job} --date ${d.run.day}`;
  return { ...d, events, phases, upstream, rerun: { alone: cmd, withDownstream: `${cmd} --downstream` } };
}
