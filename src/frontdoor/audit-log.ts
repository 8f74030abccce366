/**
 * One muskie-format audit line per request (MANTA-REFERENCE §3.6 "Request", muskie lib/audit.js),
 * the input of request metering. Lines go to hourly files
 * `<dir>/YYYY/MM/DD/HH/<instance>.log`, mirroring muskie's hourly upload to
 * `/poseidon/stor/logs/muskie/YYYY/MM/DD/HH/`. A line is written whole with one appendFileSync,
 * so a crash never leaves half a line before a later one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface AuditEntry {
  operation: string;
  billable_operation: string;
  req: {
    method: string;
    url: string;
    headers: Record<string, string | string[] | undefined>;
    httpVersion: string;
    owner?: string;
    caller?: { login: string; uuid: string; groups: string[]; user: null };
  };
  res: { statusCode: number; headers: Record<string, string | string[] | number | undefined> };
  reqHeaderLength: number;
  resHeaderLength: number;
  bytesTransferred: number;
  latency: number;
  remoteAddress: string;
  remotePort: number;
  objectId?: string;
  prevObjectId?: string;
  sharksContacted?: { shark: string; result: string }[];
  req_id: string;
  err?: { code: string; message: string };
}

/** Sum of byte lengths of header names and values (muskie's reqHeaderLength/resHeaderLength). */
export function headerLength(headers: Record<string, string | string[] | number | undefined>): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    n += Buffer.byteLength(k);
    n += Array.isArray(v) ? v.reduce((s, x) => s + Buffer.byteLength(x), 0) : Buffer.byteLength(String(v));
  }
  return n;
}

/** Where each front door's finished hours of audit log are published (muskie's hourly upload). */
export const MUSKIE_LOG_ROOT = '/poseidon/stor/logs/muskie';

/** The hour a moment belongs to, as the pipeline's hour partition key (`YYYY-MM-DDTHH`, UTC). */
export function hourKeyOf(t: Date): string {
  return t.toISOString().slice(0, 13);
}

/** `<instance>.log` or `<instance>.<n>.log` (a later part of the same hour) → the instance. */
export function instanceOfLog(name: string): string {
  return name.replace(/(\.\d+)?\.log$/, '');
}

export function hourPath(t: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${t.getUTCFullYear()}/${p(t.getUTCMonth() + 1)}/${p(t.getUTCDate())}/${p(t.getUTCHours())}`;
}

export class AuditLog {
  private readonly hostname = os.hostname();

  constructor(
    readonly dir: string,
    readonly instance: string,
  ) {}

  write(entry: AuditEntry, at: Date): void {
    const line = {
      name: 'muskie',
      hostname: this.hostname,
      pid: process.pid,
      component: 'HttpServer',
      audit: true,
      level: 30,
      _audit: true,
      logicalRemoteAddress: entry.remoteAddress,
      ...entry,
      msg: `handled: ${entry.res.statusCode}`,
      time: at.toISOString(),
      v: 0,
    };
    const file = path.join(this.dir, hourPath(at), `${this.instance}.log`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.appendFileSync(file, `${JSON.stringify(line)}\n`);
  }
}
