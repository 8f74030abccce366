/**
 * The log of long-running commands and servers (`up`, `scheduler`, `worker`, `pipeline run`,
 * `rerun`, `backfill`, `dashboard`, `gc`, `rebalance run`, `workload`, `demo`'s progress), on
 * stderr: readable text, `<ISO time> <message>`, or with `REMORA_LOG_FORMAT=json` one JSON object
 * per line — `{"time":"…","level":"info","pid":123,"msg":"…", …fields}` — so a log collector
 * needs no parser. A line may carry fields (a progress line: `{done,total,rate,etaSeconds}`):
 * the JSON form has them as keys, the text form only the message, which already says them in words.
 *
 * Text stays the default off a terminal too: scripts and tests that read these lines today keep
 * working; a service manager sets REMORA_LOG_FORMAT=json.
 *
 * A dozen lines instead of a logging library (pino was the candidate): Remora logs one level of
 * plain messages, and JSON.stringify already escapes them.
 */
import { RemoraError } from '../core/errors.js';

export type LogFormat = 'text' | 'json';

export function logFormat(env: NodeJS.ProcessEnv): LogFormat {
  const v = env.REMORA_LOG_FORMAT;
  if (v === undefined || v === '') return 'text';
  if (v === 'text' || v === 'json') return v;
  throw new RemoraError(
    'InvalidConfig',
    `REMORA_LOG_FORMAT: expected "text" or "json", got ${JSON.stringify(v)}`,
  );
}

/** Structured fields of a line; the keys of the line itself (time, level, pid, msg) win over them. */
export type LogFields = Record<string, unknown>;

export function formatLogLine(
  format: LogFormat,
  msg: string,
  at: Date,
  pid: number,
  fields: LogFields = {},
): string {
  if (format === 'text') return `${at.toISOString()} ${msg}\n`;
  const line: LogFields = { time: at.toISOString(), level: 'info', pid, msg };
  for (const [k, v] of Object.entries(fields)) if (!(k in line)) line[k] = v;
  return `${JSON.stringify(line)}\n`;
}

let chosen: LogFormat | undefined;

/** Choose the format now: a command calls it before opening anything, so a bad value stops it there. */
export function initLog(): LogFormat {
  return (chosen ??= logFormat(process.env));
}

/** Write one log line to stderr. */
export function log(msg: string, fields?: LogFields): void {
  process.stderr.write(formatLogLine(initLog(), msg, new Date(), process.pid, fields));
}
