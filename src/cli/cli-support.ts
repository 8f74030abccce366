/** Shared plumbing for CLI commands: config loading, error translation to exit codes, output. */
import { Command } from 'commander';
import { loadConfig, type RemoraConfig } from '../config/config.js';
import { RemoraError, toRemoraError } from '../core/errors.js';
import { assertDay, dayOf } from '../core/days.js';
import { formatTable } from '../core/table.js';

export interface GlobalOptions {
  stateDir?: string;
  json?: boolean;
}

export function configFrom(cmd: Command): RemoraConfig {
  const opts = cmd.optsWithGlobals<GlobalOptions>();
  return loadConfig(process.env, opts.stateDir ? { stateDir: opts.stateDir } : {});
}

/** Wrap an action so any error prints `<Code>: <message>` and exits with the catalog's exit code. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const e = toRemoraError(err);
      process.stderr.write(`remora: ${e.code}: ${e.message}\n`);
      if (process.env.REMORA_DEBUG && e.cause)
        process.stderr.write(`${e.cause instanceof Error ? e.cause.stack : JSON.stringify(e.cause)}\n`);
      process.exitCode = e.exitCode;
    }
  };
}

export function usageError(message: string): RemoraError {
  return new RemoraError('UsageError', message);
}

/** Whether the global `--json` was given: the command prints one JSON document on stdout instead. */
export function wantsJson(cmd: Command): boolean {
  return cmd.optsWithGlobals<GlobalOptions>().json === true;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(rows: Record<string, unknown>[], columns?: string[]): void {
  process.stdout.write(formatTable(rows, columns));
}

// ---------------------------------------------------------------------------------------------
// Flag parsers: every numeric or date flag goes through one of these, in the action, before
// anything is opened, so a bad value is a UsageError naming the flag and nothing is touched.

const DIGITS = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;

/** An integer ≥ min (decimal digits only: no `1e3`, `0x10`, `-5`, `2.5`), at most `max`. */
export function parseInteger(
  value: string,
  flag: string,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  const n = DIGITS.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range =
      max !== Number.MAX_SAFE_INTEGER
        ? `an integer from ${min} to ${max}`
        : min === 0
          ? 'a non-negative integer'
          : min === 1
            ? 'a positive integer'
            : `an integer ≥ ${min}`;
    throw usageError(`${flag}: expected ${range}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An integer ≥ 1 (counts, ids, concurrency). */
export function parsePositiveInt(value: string, flag: string, max?: number): number {
  return parseInteger(value, flag, { min: 1, ...(max === undefined ? {} : { max }) });
}

/** An integer ≥ 0 (seeds, margins, sizes that may be zero). */
export function parseNonNegativeInt(value: string, flag: string, max?: number): number {
  return parseInteger(value, flag, { min: 0, ...(max === undefined ? {} : { max }) });
}

/** A number > 0 (seconds, rates), at most `max`; decimals allowed, nothing else. */
export function parsePositiveNumber(value: string, flag: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!(n > 0 && n <= max))
    throw usageError(
      `${flag}: expected a number > 0${max === Number.MAX_SAFE_INTEGER ? '' : ` and ≤ ${max}`}, got ${JSON.stringify(value)}`,
    );
  return n;
}

/** A TCP port (0: any free port). */
export function parsePort(value: string, flag: string): number {
  return parseInteger(value, flag, { min: 0, max: 65535 });
}

/** A calendar day `YYYY-MM-DD` (no 2026-02-30, no month 13). */
export function parseDay(value: string, flag: string): string {
  return assertDay(value, flag);
}

/**
 * A calendar day that is not in the future (UTC): for commands about a past or the current
 * day (`pipeline run --date`, `rerun --date`, `backfill --from/--to`). `today` is the clock's.
 */
export function parsePastDay(value: string, flag: string, today = dayOf(Date.now())): string {
  const day = parseDay(value, flag);
  if (day > today) throw usageError(`${flag}: ${day} is in the future (today is ${today}, UTC)`);
  return day;
}

/** `--from` and `--to` as calendar days not in the future, `from` not after `to`. */
export function parseDayRange(
  from: string,
  to: string,
  flags: { from: string; to: string } = { from: '--from', to: '--to' },
  today = dayOf(Date.now()),
): { from: string; to: string } {
  const f = parsePastDay(from, flags.from, today);
  const t = parsePastDay(to, flags.to, today);
  if (f > t) throw usageError(`${flags.from} ${f} is after ${flags.to} ${t}`);
  return { from: f, to: t };
}
