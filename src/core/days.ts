/**
 * Day arithmetic. A pipeline day is a UTC calendar day written `YYYY-MM-DD`; every partition
 * key starts with one (src/pipeline/partitions.ts). One implementation for the whole tree.
 */
import { RemoraError } from './errors.js';

export const DAY_MS = 86_400_000;

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True when `day` is `YYYY-MM-DD` and names a real calendar day (no 2026-02-30, no month 13). */
export function isDay(day: string): boolean {
  const m = DAY_RE.exec(day);
  if (!m) return false;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return dayOf(ms) === day;
}

/** `day` itself, or a UsageError naming `what` (e.g. the flag it came from). */
export function assertDay(day: string, what = 'day'): string {
  if (!isDay(day)) throw new RemoraError('UsageError', `${what}: not a calendar day (YYYY-MM-DD): ${day}`);
  return day;
}

/** The UTC day of an instant (ms since the epoch, or a Date). */
export function dayOf(at: number | Date): string {
  return new Date(at).toISOString().slice(0, 10);
}

export function dayStartMs(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}

export function addDays(day: string, n: number): string {
  return dayOf(dayStartMs(day) + n * DAY_MS);
}

/** Every day from `from` to `to` inclusive, oldest first. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let d = assertDay(from); d <= assertDay(to); d = addDays(d, 1)) out.push(d);
  return out;
}
