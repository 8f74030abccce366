/**
 * The run's log: one JSON line per object it finished with, and a line when it starts and ends,
 * to a file it names (the seed's `bunyan -l error` habit without grep: `jq 'select(.level ==
 * "error")' <file>`). Levels: `info` (complete, or a tombstone owed), `warn` (skipped: `retry`
 * re-runs it), `error` (needs a person). Appended, so two runs given one file keep both.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ObjectRow, Outcome } from './rebalance.repository.js';

export type LogLevel = 'info' | 'warn' | 'error';

export class RunLog {
  private constructor(
    readonly file: string,
    private readonly out: fs.WriteStream,
    private readonly base: Record<string, unknown>,
  ) {}

  static async open(file: string, base: Record<string, unknown>): Promise<RunLog> {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    const out = fs.createWriteStream(file, { flags: 'a' });
    await new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', reject);
    });
    return new RunLog(file, out, base);
  }

  write(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
    this.out.write(
      `${JSON.stringify({ time: new Date().toISOString(), level, msg, ...this.base, ...fields })}\n`,
    );
  }

  /** One line per object outcome, with where it came from and where it went. */
  outcome(o: Outcome, row: ObjectRow | undefined): void {
    const level: LogLevel = o.state === 'error' ? 'error' : o.state === 'skipped' ? 'warn' : 'info';
    this.write(level, o.state, {
      objectId: o.objectId,
      key: row?.keys[0]?.key,
      state: o.state,
      ...(o.reason ? { reason: o.reason } : {}),
      ...(o.detail ? { detail: o.detail } : {}),
      source: row?.oldShark?.manta_storage_id ?? null,
      destination: row?.newShark?.manta_storage_id ?? null,
      bytes: row?.bytes,
      attempt: row?.attempts,
      ...(o.skippedKeys ? { keysDropped: o.skippedKeys } : {}),
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }
}
