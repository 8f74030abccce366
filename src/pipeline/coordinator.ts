/**
 * The coordinator: one tick moves every run as far as it can go.
 *
 *   waiting  → inputs ready: split into tasks, and in ONE transaction mark the run running,
 *              insert its tasks and enqueue them in graphile-worker
 *            → an input invalid/failed/blocked: blocked (downstream refuses invalid inputs)
 *            → otherwise stays waiting; past its deadline, one alert
 *   running  → a task exhausted its attempts: failed
 *            → all tasks succeeded: merge their reports (and one `attempt_fenced` event per
 *              attempt declared lost); invalid → not committed; else the job's commit step
 *              (which switches a job's own pointer, e.g. unpack's source manifest), then in one
 *              transaction the run succeeds and the pointer moves
 *   and: attempts whose worker stopped heartbeating are declared lost and their engine jobs
 *   unlocked, so another worker retries them at once instead of after graphile's 4 hours.
 *
 * Ticks are safe to run from any number of processes: a session advisory lock lets one
 * coordinator act at a time, and every transition is conditional on the state it read.
 */
import { toRemoraError } from '../core/errors.js';
import { raiseAlert } from './alerts.js';
import { checkLateInputs, LATE_INPUT_CHECK_MS } from './late-inputs.js';
import { enqueueTask } from './engine.js';
import type { JobDefinition, UpstreamOutput } from './job.js';
import { partitionOfRun, resolveInputs, runPrefix } from './inputs.js';
import {
  DEFAULT_MAX_EXAMPLES,
  emptyReport,
  eventKey,
  mergeReports,
  type RunReport,
} from '../core/run-report.js';
import type { PipelineRuntime } from './runtime.js';
import { jobEnabled } from './settings.js';
import {
  markAlerted,
  runsInState,
  setWaitingOn,
  switchPointer,
  transitionRun,
  type RunRow,
} from './runs.repository.js';
import {
  insertTasks,
  lostAttemptsOfRun,
  orphanedEngineLocks,
  reapLostAttempts,
  unlockTaskJobs,
  taskProgress,
  tasksOfRun,
} from './tasks.repository.js';

const COORDINATOR_LOCK = 'remora_pipeline_coordinator';
export const DEFAULT_MAX_ATTEMPTS = 5;

export class Coordinator {
  private lateInputsCheckedAt = 0;

  constructor(private readonly rt: PipelineRuntime) {}

  /** One pass over all active runs; false when another coordinator holds the lock. */
  async tick(): Promise<boolean> {
    const client = await this.rt.control.connect();
    try {
      const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [
        COORDINATOR_LOCK,
      ]);
      if (!got.rows[0]?.ok) return false;
      try {
        await this.reap();
        for (const run of await runsInState(this.rt.control, ['waiting'])) await this.tryStart(run);
        for (const run of await runsInState(this.rt.control, ['running'])) await this.tryFinish(run);
        await this.checkDeadlines();
        if (Date.now() - this.lateInputsCheckedAt >= LATE_INPUT_CHECK_MS) {
          this.lateInputsCheckedAt = Date.now();
          await checkLateInputs(this.rt);
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock(hashtext($1))', [COORDINATOR_LOCK]);
      }
      return true;
    } finally {
      client.release();
    }
  }

  private log(line: string): void {
    this.rt.services.log(line);
  }

  private alertDeps() {
    const { control, metrics, settings } = this.rt;
    return {
      control,
      metrics,
      log: (l: string) => this.log(l),
      ...(settings.alertWebhook ? { webhook: settings.alertWebhook } : {}),
    };
  }

  async reap(): Promise<void> {
    const lost = await reapLostAttempts(this.rt.control, this.rt.settings.staleAfterMs);
    const orphans = await orphanedEngineLocks(this.rt.control, this.rt.settings.staleAfterMs);
    if (lost.length === 0 && orphans.length === 0) return;
    await unlockTaskJobs(this.rt.control, [...lost, ...orphans]);
    for (const l of lost) {
      this.rt.metrics.tasks.inc({ job: 'unknown', outcome: 'lost' });
      this.log(
        `attempt ${l.attemptId} lost (worker ${l.engineWorker ?? '?'} stopped heartbeating); task released`,
      );
    }
    for (const o of orphans)
      this.log(
        `task ${o.taskId} locked by worker ${o.engineWorker} with no running attempt (it stopped before recording one, or before recording the end); task released`,
      );
  }

  private async tryStart(run: RunRow): Promise<void> {
    if (!this.rt.graph.has(run.job) || !jobEnabled(this.rt.settings, run.job)) return;
    const job = this.rt.graph.get(run.job);
    const inputs = await resolveInputs({ ...this.rt, services: this.rt.services }, run);
    if (inputs.status === 'blocked') {
      if (
        await transitionRun(this.rt.control, run.id, ['waiting'], 'blocked', {
          error: inputs.detail,
          finished: true,
        })
      ) {
        this.rt.metrics.runs.inc({ job: run.job, outcome: 'blocked' });
        this.log(`${run.job} ${run.partitionKey}: blocked: ${inputs.detail}`);
      }
      return;
    }
    if (inputs.status === 'waiting') {
      if (run.waitingOn !== inputs.detail) await setWaitingOn(this.rt.control, run.id, inputs.detail);
      return;
    }
    const ctx = {
      services: this.rt.services,
      partition: partitionOfRun(this.rt.graph, run),
      runId: run.id,
      upstream: inputs.upstream,
    };
    let specs;
    try {
      specs = await job.split(ctx);
    } catch (err) {
      await this.fail(run, `planning tasks failed: ${toRemoraError(err).message}`, ['waiting']);
      return;
    }
    await this.startRun(run, job, specs, inputs.upstream);
  }

  private async startRun(
    run: RunRow,
    job: JobDefinition,
    specs: { key: string; params?: unknown }[],
    upstream: UpstreamOutput[],
  ): Promise<void> {
    const client = await this.rt.control.connect();
    try {
      await client.query('BEGIN');
      if (
        !(await transitionRun(client, run.id, ['waiting'], 'running', { started: true, inputs: upstream }))
      ) {
        await client.query('ROLLBACK');
        return;
      }
      const tasks = await insertTasks(
        client,
        run.id,
        specs.map((s) => ({ key: s.key, params: s.params ?? null })),
      );
      for (const t of tasks) await enqueueTask(client, t.id, job.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
      await client.query('COMMIT');
      this.log(`${run.job} ${run.partitionKey}: started run ${run.id} with ${tasks.length} task(s)`);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  private async tryFinish(run: RunRow): Promise<void> {
    const progress = (await taskProgress(this.rt.control, [run.id])).get(run.id) ?? {
      total: 0,
      succeeded: 0,
      failed: 0,
      records: 0,
    };
    if (progress.failed > 0) {
      await this.fail(run, `${progress.failed} task(s) failed after all attempts`, ['running']);
      return;
    }
    if (progress.succeeded < progress.total || !this.rt.graph.has(run.job)) return;
    const job = this.rt.graph.get(run.job);
    const tasks = await tasksOfRun(this.rt.control, run.id);
    const thresholds = job.thresholds ?? this.rt.settings.thresholds;
    const reports = tasks.map((t) => t.report!).filter(Boolean);
    const fenced = await this.fencedAttempts(run.id);
    const merged = mergeReports(fenced ? [...reports, fenced] : reports, { thresholds });
    if (merged.verdict === 'invalid') {
      await this.finishInvalid(run, merged);
      return;
    }
    let final: RunReport;
    let output: unknown;
    try {
      const result = await job.commit({
        services: this.rt.services,
        partition: partitionOfRun(this.rt.graph, run),
        runId: run.id,
        upstream: (run.inputs as UpstreamOutput[] | null) ?? [],
        tasks: tasks.map((t) => ({
          key: t.key,
          params: t.params,
          attemptId: t.winningAttempt!,
          output: t.output,
          report: t.report!,
        })),
        report: merged,
        runPrefix: runPrefix(run.job, run.partitionKey, run.id),
      });
      final = result.report ? mergeReports([merged, result.report], { thresholds }) : merged;
      // A job that declares its output type has it checked before any reader sees it.
      output = job.output ? job.output.parse(result.output) : result.output;
    } catch (err) {
      await this.fail(run, `commit failed: ${toRemoraError(err).message}`, ['running']);
      return;
    }
    // Real elapsed time (started_at is the database's now()), not the injected clock's: a
    // sped-up or shifted clock (REMORA_CLOCK_*) would make it meaningless.
    const now = Date.now();
    final.durations.wall = now - (run.startedAt?.getTime() ?? now);
    if (final.verdict === 'invalid') {
      await this.finishInvalid(run, final);
      return;
    }
    await this.commitRun(run, final, output);
  }

  /**
   * The run's attempts declared lost, as `attempt_fenced` events (info: the output is whole, made
   * by other attempts). Each is fenced off: whatever it still does completes nothing and commits
   * nothing, and it ends with AttemptFenced if it finishes (docs/pipeline.md "A lost attempt that
   * keeps running"). Undefined when there are none.
   */
  private async fencedAttempts(runId: number): Promise<RunReport | undefined> {
    const lost = await lostAttemptsOfRun(this.rt.control, runId);
    if (lost.length === 0) return undefined;
    const report = emptyReport();
    report.events[eventKey('info', 'attempt_fenced')] = {
      kind: 'attempt_fenced',
      severity: 'info',
      count: lost.length,
      examples: lost
        .slice(0, DEFAULT_MAX_EXAMPLES)
        .map(
          (a) =>
            `attempt ${a.id} of task ${a.taskKey} (worker ${a.worker}) was declared lost (no heartbeat for ` +
            `more than ${this.rt.settings.staleAfterMs} ms); its task went to another attempt, and anything ` +
            `it still does is fenced off (AttemptFenced): it commits nothing`,
        ),
    };
    return report;
  }

  private async commitRun(run: RunRow, report: RunReport, output: unknown): Promise<void> {
    const client = await this.rt.control.connect();
    try {
      await client.query('BEGIN');
      const moved = await transitionRun(client, run.id, ['running'], 'succeeded', {
        verdict: report.verdict,
        report,
        output,
        finished: true,
      });
      if (moved) {
        await switchPointer(client, {
          job: run.job,
          partitionKey: run.partitionKey,
          runId: run.id,
          verdict: report.verdict,
          output,
        });
      }
      await client.query('COMMIT');
      if (!moved) return;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
    this.rt.metrics.runs.inc({ job: run.job, outcome: report.verdict });
    this.rt.metrics.runDuration.observe({ job: run.job }, (report.durations.wall ?? 0) / 1000);
    this.rt.metrics.recordReport(run.job, report);
    this.log(`${run.job} ${run.partitionKey}: run ${run.id} committed, verdict ${report.verdict}`);
  }

  private async finishInvalid(run: RunRow, report: RunReport): Promise<void> {
    if (
      !(await transitionRun(this.rt.control, run.id, ['running'], 'invalid', {
        verdict: 'invalid',
        report,
        finished: true,
      }))
    )
      return;
    this.rt.metrics.runs.inc({ job: run.job, outcome: 'invalid' });
    this.rt.metrics.recordReport(run.job, report);
    await raiseAlert(this.alertDeps(), {
      runId: run.id,
      job: run.job,
      partitionKey: run.partitionKey,
      kind: 'failed',
      message: `output is invalid, not committed: ${report.verdictReasons.join('; ')}`,
    });
  }

  private async fail(run: RunRow, error: string, from: ('waiting' | 'running')[]): Promise<void> {
    if (
      !(await transitionRun(this.rt.control, run.id, from, 'failed', {
        verdict: 'invalid',
        error,
        finished: true,
      }))
    )
      return;
    this.rt.metrics.runs.inc({ job: run.job, outcome: 'failed' });
    await raiseAlert(this.alertDeps(), {
      runId: run.id,
      job: run.job,
      partitionKey: run.partitionKey,
      kind: 'failed',
      message: error,
    });
  }

  private async checkDeadlines(): Promise<void> {
    const now = this.rt.services.clock.now();
    const active = await runsInState(this.rt.control, ['waiting', 'running']);
    const waitingByJob = new Map<string, number>();
    for (const run of active) {
      if (run.state === 'waiting') waitingByJob.set(run.job, (waitingByJob.get(run.job) ?? 0) + 1);
      if (run.alertedAt || run.deadlineAt.getTime() > now) continue;
      if (!(await markAlerted(this.rt.control, run.id))) continue;
      const what =
        run.state === 'waiting' ? `still waiting for ${run.waitingOn ?? 'its inputs'}` : 'still running';
      await raiseAlert(this.alertDeps(), {
        runId: run.id,
        job: run.job,
        partitionKey: run.partitionKey,
        kind: 'deadline',
        message: `deadline ${run.deadlineAt.toISOString()} passed, ${what}`,
      });
    }
    this.rt.metrics.waiting.reset();
    for (const [job, n] of waitingByJob) this.rt.metrics.waiting.set({ job }, n);
  }
}
