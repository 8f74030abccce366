/** Shared plumbing for CLI commands: config loading, error translation to exit codes, output. */
import { Command } from 'commander';
import { loadConfig, type RemoraConfig } from '../config/config.js';
import { RemoraError, toRemoraError } from '../core/errors.js';

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

export function printTable(rows: Record<string, unknown>[], columns?: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = columns ?? Object.keys(rows[0]!);
  const cell = (v: unknown): string => {
    if (v === undefined || v === null) return '';
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v.toString();
    return JSON.stringify(v);
  };
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(cols)}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => cell(r[c])))}\n`);
}
