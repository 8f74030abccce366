/**
 * Rate and ETA of long work, for the progress lines of `remora workload`, the demo's workload
 * and `pipeline run` / `rerun` / `backfill`: the arithmetic only, on an injected clock, so it is
 * tested by a table without sleeping.
 *
 *   rate        units per second since the meter started (the average over the whole run: the
 *               units of one command are alike enough that it is steadier than a window, and it
 *               does not drop to 0 between two slow units)
 *   etaSeconds  (total − done) / rate, rounded up to whole seconds; 0 once done reaches total;
 *               null while it cannot be computed (no total, or nothing done yet)
 *   due         a line is due on the first reading, then at most every `everyMs`, and always
 *               once when done reaches total (the final line), so a million operations print a few
 *               hundred lines, not a million
 */
import type { Clock } from './clock.js';

/** How often a progress line may be printed: often enough to watch, rare enough to read. */
export const PROGRESS_EVERY_MS = 2_000;

export interface ProgressReading {
  done: number;
  /** null: not known (a count still growing). */
  total: number | null;
  elapsedMs: number;
  /** Units per second since the meter started. */
  rate: number;
  etaSeconds: number | null;
}

/** The reading of `done` units of `total`, `elapsedMs` after the meter started at `startDone`. */
export function progressReading(
  startDone: number,
  done: number,
  total: number | null,
  elapsedMs: number,
): ProgressReading {
  const rate = elapsedMs > 0 ? ((done - startDone) * 1000) / elapsedMs : 0;
  let etaSeconds: number | null = null;
  if (total !== null && done >= total) etaSeconds = 0;
  else if (total !== null && rate > 0) etaSeconds = Math.ceil((total - done) / rate);
  return { done, total, elapsedMs, rate, etaSeconds };
}

export class ProgressMeter {
  private readonly startMs: number;
  private lastLineMs: number | undefined;
  private finalShown = false;

  constructor(
    private readonly clock: Clock,
    private total: number | null = null,
    /** Units already done when the meter starts (they do not count towards the rate). */
    private readonly startDone = 0,
    readonly everyMs = PROGRESS_EVERY_MS,
  ) {
    this.startMs = clock.now();
  }

  /** The reading now; `total` updates the meter's total (a run's task count becomes known). */
  read(done: number, total: number | null = this.total): ProgressReading {
    this.total = total;
    return progressReading(this.startDone, done, total, this.clock.now() - this.startMs);
  }

  /** The reading when a line is due now (see the header), else undefined; a due reading restarts the interval. */
  due(done: number, total: number | null = this.total): ProgressReading | undefined {
    const now = this.clock.now();
    const final = total !== null && done >= total;
    if (final ? this.finalShown : this.lastLineMs !== undefined && now - this.lastLineMs < this.everyMs)
      return undefined;
    this.finalShown ||= final;
    this.lastLineMs = now;
    return this.read(done, total);
  }
}

/** "1m05s", "42s", "?" (unknown): an ETA as a progress line prints it. */
export function formatEta(etaSeconds: number | null): string {
  if (etaSeconds === null) return '?';
  if (etaSeconds < 60) return `${etaSeconds}s`;
  const h = Math.floor(etaSeconds / 3600);
  const m = Math.floor((etaSeconds % 3600) / 60);
  const s = etaSeconds % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m${ss}s` : `${m}m${ss}s`;
}

/** A rate with sensible precision: "0.4", "12.5", "1234". */
export function formatRate(rate: number): string {
  return rate >= 100 ? String(Math.round(rate)) : rate.toFixed(1);
}
