/**
 * The progress of `pipeline run`, `rerun` and `backfill` (driveDays' onProgress), in the log on
 * stderr — stdout stays the command's table or its `--json` document. Three kinds of line:
 *
 *   progress snapshot:succeeded×1  unpack:running×4       runs per job and state
 *   progress 2024-05-10: 3/12 runs finished, 4 running, 5 waiting, ETA 40s
 *   progress run 17 unpack 2024-05-10/shard-1: tasks 3 done, 5 left, 1200 records/s, ETA 8s
 *
 * A line is printed only when what it counts changes (not its rate), at most every 2 s
 * (core/progress.ts), and once more when nothing is active any longer. Rates are wall-clock
 * (never the pipeline's injected clock, which may run faster than time). A run's records are
 * its finished tasks' (tasks.repository.ts taskProgress), so records/s moves task by task.
 */
import type { Clock } from '../core/clock.js';
import { formatEta, formatRate, PROGRESS_EVERY_MS, ProgressMeter } from '../core/progress.js';
import { ACTIVE_STATES, type RunRow } from '../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { taskProgress } from '../pipeline/tasks.repository.js';

type Emit = (msg: string, fields: Record<string, unknown>) => void;

interface Line {
  /** What the line counts: printed again only when this changes. */
  key: string;
  msg: string;
  fields: Record<string, unknown>;
}

function statesLine(runs: RunRow[]): Line {
  const by = new Map<string, number>();
  for (const r of runs) by.set(`${r.job}:${r.state}`, (by.get(`${r.job}:${r.state}`) ?? 0) + 1);
  const text = [...by].map(([k, n]) => `${k}×${n}`).join('  ');
  return { key: text, msg: `progress ${text}`, fields: { states: Object.fromEntries(by) } };
}

export function pipelineProgressLog(
  rt: PipelineRuntime,
  emit: Emit,
  clock: Clock,
): (runs: RunRow[]) => Promise<void> {
  const dayMeters = new Map<string, ProgressMeter>();
  const runMeters = new Map<number, { tasks: ProgressMeter; records: ProgressMeter }>();
  const printed = new Map<string, string>();
  let lastPrintMs = -Infinity;

  const dayLine = (day: string, runs: RunRow[]): Line => {
    const finished = runs.filter((r) => !ACTIVE_STATES.includes(r.state)).length;
    const running = runs.filter((r) => r.state === 'running').length;
    const waiting = runs.length - finished - running;
    let meter = dayMeters.get(day);
    if (!meter) dayMeters.set(day, (meter = new ProgressMeter(clock, runs.length, finished)));
    const r = meter.read(finished, runs.length);
    return {
      key: `${finished}/${runs.length}/${running}`,
      msg:
        `progress ${day}: ${finished}/${runs.length} runs finished, ${running} running, ${waiting} waiting, ` +
        `ETA ${formatEta(r.etaSeconds)}`,
      fields: {
        day,
        runsFinished: finished,
        runsTotal: runs.length,
        running,
        waiting,
        rate: Number(r.rate.toFixed(3)),
        etaSeconds: r.etaSeconds,
      },
    };
  };

  const runLine = (run: RunRow, p: { total: number; succeeded: number; failed: number; records: number }) => {
    let m = runMeters.get(run.id);
    if (!m) {
      m = {
        tasks: new ProgressMeter(clock, p.total, p.succeeded),
        records: new ProgressMeter(clock, null, p.records),
      };
      runMeters.set(run.id, m);
    }
    const t = m.tasks.read(p.succeeded, p.total);
    const rec = m.records.read(p.records);
    const left = p.total - p.succeeded - p.failed;
    const failed = p.failed > 0 ? `, ${p.failed} failed` : '';
    return {
      key: `${p.succeeded}/${p.failed}/${p.total}`,
      msg:
        `progress run ${run.id} ${run.job} ${run.partitionKey}: tasks ${p.succeeded} done, ${left} left${failed}, ` +
        `${formatRate(rec.rate)} records/s, ETA ${formatEta(p.failed > 0 ? null : t.etaSeconds)}`,
      fields: {
        runId: run.id,
        job: run.job,
        partition: run.partitionKey,
        day: run.day,
        tasksDone: p.succeeded,
        tasksLeft: left,
        tasksFailed: p.failed,
        tasksTotal: p.total,
        records: p.records,
        recordsPerSecond: Number(rec.rate.toFixed(2)),
        etaSeconds: p.failed > 0 ? null : t.etaSeconds,
      },
    };
  };

  return async (runs) => {
    const final = runs.every((r) => !ACTIVE_STATES.includes(r.state));
    const now = clock.now();
    if (!final && now - lastPrintMs < PROGRESS_EVERY_MS) return;
    const lines = new Map<string, Line>([['states', statesLine(runs)]]);
    const days = [...new Set(runs.map((r) => r.day))].sort();
    for (const day of days)
      lines.set(
        `day ${day}`,
        dayLine(
          day,
          runs.filter((r) => r.day === day),
        ),
      );
    const running = runs.filter((r) => r.state === 'running');
    const progress = await taskProgress(
      rt.control,
      running.map((r) => r.id),
    );
    for (const run of running) {
      const p = progress.get(run.id);
      if (p) lines.set(`run ${run.id}`, runLine(run, p));
    }
    let any = false;
    for (const [id, line] of lines) {
      if (printed.get(id) === line.key) continue;
      printed.set(id, line.key);
      emit(line.msg, line.fields);
      any = true;
    }
    if (any) lastPrintMs = now;
  };
}
