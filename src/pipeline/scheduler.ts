/**
 * The scheduler: the daily trigger, catch-up of missed days, retention, and the coordinator
 * loop. The trigger only creates a day's runs; each run then starts when its inputs exist,
 * never at a wall-clock offset (unlike the original crons, MANTA-REFERENCE §5.1). Hourly
 * partitions are created with their day and each waits for its own hour's input.
 *
 * Missed days (the scheduler was down) are caught up oldest first, and said so loudly.
 */
import type { Coordinator } from './coordinator.js';
import { applyRetention, scheduleDay } from './operations.js';
import { addDays, dayOf, daysBetween } from '../core/days.js';
import type { PipelineRuntime } from './runtime.js';
import { firstRunDay, runsBetween } from './runs.repository.js';

export class Scheduler {
  private lastDay: string | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly rt: PipelineRuntime,
    private readonly coordinator: Coordinator,
  ) {}

  /**
   * Schedule days in the catch-up window that have no runs at all, oldest first; returns them.
   * The window is the last `catchUpDays`, but never before the first day the pipeline ever ran:
   * a fresh installation has no missed days (the days before it are `remora backfill`'s), and
   * catching them up would only fail for want of their dumps.
   */
  async catchUp(today: string): Promise<string[]> {
    const first = await firstRunDay(this.rt.control);
    if (first === undefined) {
      this.rt.services.log(
        `no run history: nothing to catch up before ${today} (older days: remora backfill --from D1 --to D2)`,
      );
      return [];
    }
    const windowStart = addDays(today, -this.rt.settings.catchUpDays);
    const from = first > windowStart ? first : windowStart;
    const had = new Set((await runsBetween(this.rt.control, from, today)).map((r) => r.day));
    const missed: string[] = [];
    for (let d = from; d < today; d = addDays(d, 1)) if (!had.has(d)) missed.push(d);
    if (missed.length > 0) {
      this.rt.services.log(
        `CATCH-UP: ${missed.length} missed day(s) with no runs: ${missed.join(', ')} — scheduling oldest first`,
      );
      for (const d of missed) await scheduleDay(this.rt, d, 'catch-up');
    }
    return missed;
  }

  /**
   * One scheduler step: trigger each new day (and its retention), then one coordinator tick.
   * Days the clock passed between two steps (a suspended process, a step slower than a day, a
   * sped-up test clock) are triggered too, oldest first, and logged as a catch-up.
   */
  async step(): Promise<void> {
    const today = dayOf(this.rt.services.clock.now());
    if (this.lastDay === undefined || today > this.lastDay) {
      if (this.lastDay === undefined) await this.catchUp(today);
      else {
        // As on start, no further back than catchUpDays (older days: `remora backfill`).
        const passed = daysBetween(addDays(this.lastDay, 1), today).slice(0, -1);
        const skipped = passed.filter((d) => d >= addDays(today, -this.rt.settings.catchUpDays));
        if (passed.length > 0) {
          const left = passed.length - skipped.length;
          this.rt.services.log(
            `CATCH-UP: ${passed.length} day(s) passed since the last trigger: ${passed.join(', ')} — scheduling ` +
              (left > 0 ? `the last ${skipped.length} (catchUpDays), ` : '') +
              'oldest first',
          );
          for (const d of skipped) await scheduleDay(this.rt, d, 'catch-up');
        }
      }
      const created = await scheduleDay(this.rt, today, 'daily');
      if (created.length > 0) this.rt.services.log(`daily trigger: ${created.length} run(s) for ${today}`);
      this.lastDay = today;
      // A failing retention must not stop the pipeline; the next day's retention covers these days too.
      try {
        const removed = await applyRetention(this.rt, today);
        if (removed > 0)
          this.rt.services.log(
            `retention: removed ${removed} run(s) older than ${this.rt.settings.retentionDays} days`,
          );
      } catch (err) {
        this.rt.services.log(`retention failed (retried with the next day's): ${(err as Error).message}`);
      }
    }
    await this.coordinator.tick();
  }

  /** Run until stop(). Errors of one step are logged; the next step retries. */
  async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.step();
      } catch (err) {
        this.rt.services.log(`scheduler step failed: ${(err as Error).message}`);
      }
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.rt.settings.tickIntervalMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }
}
