/** Shared plumbing for CLI commands: config loading, error translation to exit codes, output. */
import { Command } from 'commander';
import { loadConfig, type RemoraConfig } from '../config/config.js';
import { RemoraError, toRemoraError } from '../core/errors.js';
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

export function printTable(rows: Record<string, unknown>[], columns?: string[]): void {
  process.stdout.write(formatTable(rows, columns));
}
