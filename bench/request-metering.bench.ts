/**
 * Request metering: audit lines per second and peak RSS of the job's task (bench/request-metering.phase.ts
 * `job`: DuckDB's read_json over the hour's log objects plus Node's byte-level line count), against
 * a same-run baseline of one Node process JSON.parse-ing every line of the same files. Targets
 * (issue 14): ≥ 2× the baseline's lines/s; peak RSS at the largest size ≤ 1.2× the smallest.
 *
 * Inputs, built once per size and not timed: muskie-format audit lines like the front door's
 * (~1.1 KB each: headers, caller, timers), 1,200 owners, every billable operation, 5% failed,
 * streamed uploads, operator calls and pings, split over 4 front door instances' log objects.
 *
 *   REMORA_BENCH=request-metering npm run bench
 *   REMORA_BENCH_REQUEST_LINES=1000000,3000000   sizes (lines)
 *   REMORA_BENCH_REQUEST_KEEP=<dir>              keep the generated logs there and reuse them
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SIZES = (process.env.REMORA_BENCH_REQUEST_LINES ?? '1000000,3000000').split(',').map(Number);
const KEEP = process.env.REMORA_BENCH_REQUEST_KEEP;
const INSTANCES = 4;
const OWNERS = 1200;

interface PhaseResult {
  mode: string;
  lines: number;
  seconds: number;
  cpuSeconds: number;
  maxRssMB: number;
}

function uuid(i: number): string {
  const h = (i * 2654435761).toString(16).padStart(8, '0').slice(-8);
  return `${h}-1111-4222-8333-${String(i).padStart(12, '0')}`;
}

/** One audit line, shaped like the front door's (src/frontdoor/audit-log.ts). */
function auditLine(i: number): string {
  const owner = uuid((i * 7919) % OWNERS);
  const kind = i % 20;
  const [op, method] =
    kind < 8
      ? ['GET', 'GET']
      : kind < 12
        ? ['PUT', 'PUT']
        : kind < 14
          ? ['HEAD', 'HEAD']
          : kind < 15
            ? ['LIST', 'GET']
            : kind < 16
              ? ['DELETE', 'DELETE']
              : ['GET', 'GET'];
  const status = i % 20 === 19 ? 404 : method === 'GET' ? 200 : 204;
  const streamed = method === 'PUT' && i % 3 === 0;
  const url = i % 997 === 0 ? '/ping' : `/user${i % OWNERS}/stor/dir${i % 50}/object-${i}.bin`;
  const caller = i % 211 === 0 ? 'poseidon' : `user${(i * 31) % OWNERS}`;
  return JSON.stringify({
    name: 'muskie',
    hostname: 'frontdoor-host',
    pid: 4400,
    component: 'HttpServer',
    audit: true,
    level: 30,
    _audit: true,
    logicalRemoteAddress: '10.0.0.7',
    operation: `${op.toLowerCase()}object`,
    billable_operation: op,
    req: {
      method,
      url,
      headers: {
        accept: '*/*',
        host: 'manta.example.com',
        'user-agent': 'restify/2.8.5 (x64-linux; v8/3.14.5.9; OpenSSL/1.0.1t) node/0.10.48',
        date: 'Tue, 01 Dec 2026 04:00:00 GMT',
        'x-request-id': `6ea8bd8b-e2cb-4f62-be49-${String(i).padStart(12, '0')}`,
        'x-forwarded-for': `10.${i % 250}.${(i >> 8) % 250}.7, 127.0.0.1`,
        ...(method === 'PUT' && !streamed ? { 'content-length': String((i * 37) % 1_000_000) } : {}),
        ...(streamed ? { 'transfer-encoding': 'chunked' } : {}),
      },
      httpVersion: '1.1',
      owner,
      caller: { login: caller, uuid: uuid((i * 31) % OWNERS), groups: [], user: null },
    },
    res: {
      statusCode: status,
      headers: {
        'x-request-id': `6ea8bd8b-e2cb-4f62-be49-${String(i).padStart(12, '0')}`,
        ...(method === 'GET' && status === 200 ? { 'content-length': String((i * 53) % 4_000_000) } : {}),
        'last-modified': 'Tue, 01 Dec 2026 03:59:59 GMT',
        etag: 'd5c7ee35-e232-4bb9-b239-1ef93daffcaf',
      },
    },
    reqHeaderLength: 310 + (i % 40),
    resHeaderLength: 190 + (i % 20),
    bytesTransferred: streamed ? (i * 41) % 2_000_000 : 0,
    latency: i % 90,
    remoteAddress: '127.0.0.1',
    remotePort: 40000 + (i % 20000),
    req_id: `6ea8bd8b-e2cb-4f62-be49-${String(i).padStart(12, '0')}`,
    objectId: 'd5c7ee35-e232-4bb9-b239-1ef93daffcaf',
    msg: `handled: ${status}`,
    time: '2026-12-01T04:00:00.000Z',
    v: 0,
  });
}

function build(dir: string, lines: number): string[] {
  const files = Array.from({ length: INSTANCES }, (_, k) => path.join(dir, `frontdoor-${k}.log`));
  const done = path.join(dir, '.complete');
  if (fs.existsSync(done)) return files;
  fs.mkdirSync(dir, { recursive: true });
  const fds = files.map((f) => fs.openSync(f, 'w'));
  const bufs: string[][] = files.map(() => []);
  for (let i = 0; i < lines; i++) {
    const k = i % INSTANCES;
    bufs[k]!.push(auditLine(i));
    if (bufs[k]!.length >= 2000) {
      fs.writeSync(fds[k]!, `${bufs[k]!.join('\n')}\n`);
      bufs[k] = [];
    }
  }
  files.forEach((_, k) => {
    if (bufs[k]!.length) fs.writeSync(fds[k]!, `${bufs[k]!.join('\n')}\n`);
    fs.closeSync(fds[k]!);
  });
  fs.writeFileSync(done, String(lines));
  return files;
}

function phase(mode: string, files: string[]): PhaseResult {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(HERE, 'request-metering.phase.ts'), mode, ...files],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as PhaseResult;
}

export default function bench(): Promise<void> {
  return Promise.resolve().then(run);
}

function run(): void {
  const root = KEEP ?? fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bench-request-'));
  const f = (x: number) => Math.round(x).toLocaleString('en-US');
  const rss: number[] = [];
  try {
    for (const size of SIZES) {
      const t = performance.now();
      const files = build(path.join(root, String(size)), size);
      const gb = files.reduce((s, x) => s + fs.statSync(x).size, 0) / 1e9;
      process.stdout.write(
        `request metering ${f(size)} lines (${gb.toFixed(2)} GB in ${INSTANCES} log objects, built in ${((performance.now() - t) / 1000).toFixed(0)} s)\n`,
      );
      // Baseline and job alternate, so both see the same machine load.
      const base = phase('baseline', files);
      const job = phase('job', files);
      if (job.lines !== base.lines)
        throw new Error(`the job read ${job.lines} lines, the baseline ${base.lines}`);
      const ratio = job.seconds > 0 ? base.seconds / job.seconds : Infinity;
      const cpuRatio = job.cpuSeconds > 0 ? base.cpuSeconds / job.cpuSeconds : Infinity;
      process.stdout.write(
        `  baseline (JSON.parse every line): ${f(base.lines / base.seconds)} lines/s, ${base.seconds.toFixed(2)} s, peak RSS ${base.maxRssMB.toFixed(0)} MB\n` +
          `  request metering:                 ${f(job.lines / job.seconds)} lines/s, ${job.seconds.toFixed(2)} s, peak RSS ${job.maxRssMB.toFixed(0)} MB\n` +
          `  ratio ${ratio.toFixed(2)}x the baseline (target ≥ 2); by CPU (all threads, process start included): ` +
          `${base.cpuSeconds.toFixed(2)} / ${job.cpuSeconds.toFixed(2)} s = ${cpuRatio.toFixed(2)}x\n`,
      );
      rss.push(job.maxRssMB);
      if (!KEEP) fs.rmSync(path.join(root, String(size)), { recursive: true, force: true });
    }
    if (rss.length >= 2)
      process.stdout.write(
        `request metering peak RSS ratio ${SIZES.at(-1)! / SIZES[0]!}x lines: ${(rss.at(-1)! / rss[0]!).toFixed(2)} (target ≤ 1.2)\n`,
      );
  } finally {
    if (!KEEP) fs.rmSync(root, { recursive: true, force: true });
  }
}
