/** Read-only views for operators: the days × jobs matrix and one run in detail. */
import { alertsForRun, getRun, type RunRow, type RunState } from './runs.repository.js';
import { attemptsOfRun, tasksOfRun, type AttemptRow, type TaskRow } from './tasks.repository.js';
import { latestRunsBetween } from './operations.js';
import { addDays } from '../core/days.js';
import type { PipelineRuntime } from './runtime.js';

/** Worst first: the cell of a job on a day shows its worst partition. */
const CELL_ORDER = ['failed', 'invalid', 'blocked', 'running', 'waiting', 'degraded', 'ok'] as const;
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
