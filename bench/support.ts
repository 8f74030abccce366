/** Benchmark support: a private embedded PostgreSQL (unless REMORA_TEST_PG_URL is set) and peak-RSS sampling. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '../src/metadata/postgres-server.js';
import { freePort } from '../test/helpers/net.js';

/** Ensure REMORA_TEST_PG_URL points at a server; returns a stop function. */
export async function ensureBenchPostgres(): Promise<() => Promise<void>> {
  if (process.env.REMORA_TEST_PG_URL) return async () => {};
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bench-pg-'));
  const server = await startEmbeddedPostgres(path.join(dir, 'data'), await freePort());
  process.env.REMORA_TEST_PG_URL = server.url;
  return async () => {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

/** Samples this process's RSS every 50 ms; `peakMB()` reads the maximum so far. */
export class RssSampler {
  private peak = process.memoryUsage().rss;
  private readonly timer = setInterval(() => {
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
  }, 50);
  peakMB(): number {
    this.peak = Math.max(this.peak, process.memoryUsage().rss);
    return this.peak / 1024 / 1024;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

/** Run a bench phase script (bench/<script>) in its own process, so its peak RSS is its own; its last stdout line is JSON. */
export function phaseChild<T>(script: string, args: readonly string[]): T {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', path.join(path.dirname(fileURLToPath(import.meta.url)), script), ...args],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

/** A size's inputs: reused from `dir/built.json` when kept there, else built into `dir`. */
export async function keptOrBuilt<B extends { note: string }>(
  keep: string | undefined,
  dir: string,
  build: (dir: string) => Promise<B>,
): Promise<B> {
  if (keep && fs.existsSync(path.join(dir, 'built.json'))) {
    const built = JSON.parse(fs.readFileSync(path.join(dir, 'built.json'), 'utf8')) as B;
    built.note += ' (reused)';
    return built;
  }
  fs.mkdirSync(dir, { recursive: true });
  return build(dir);
}

/**
 * CPU time (ms, user + system) of this process and of its descendants that are still running
 * (the embedded PostgreSQL's backends, child storage nodes), from /proc; Linux only (elsewhere
 * all read 0). `named` pids (and their descendants) are counted apart, under their label, and
 * not in `children`. For "where did the CPU go" beside a same-run baseline.
 */
export function cpuOfTree(named: Record<string, readonly number[]> = {}): {
  self: number;
  children: number;
  named: Record<string, number>;
} {
  const tick = 10; // USER_HZ is 100 on Linux
  const out = { self: 0, children: 0, named: Object.fromEntries(Object.keys(named).map((k) => [k, 0])) };
  let stats: { pid: number; ppid: number; ms: number }[];
  try {
    stats = fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .flatMap((d) => {
        try {
          const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
          const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
          return [{ pid: Number(d), ppid: Number(f[1]), ms: (Number(f[11]) + Number(f[12])) * tick }];
        } catch {
          return []; // the process ended between the listing and the read
        }
      });
  } catch {
    return out;
  }
  const kids = new Map<number, number[]>();
  for (const s of stats) {
    const list = kids.get(s.ppid);
    if (list) list.push(s.pid);
    else kids.set(s.ppid, [s.pid]);
  }
  const byPid = new Map(stats.map((s) => [s.pid, s.ms]));
  const labelOf = new Map<number, string>();
  for (const [label, pids] of Object.entries(named)) for (const pid of pids) labelOf.set(pid, label);
  const todo: { pid: number; label?: string }[] = (kids.get(process.pid) ?? []).map((pid) => ({ pid }));
  while (todo.length > 0) {
    const t = todo.pop()!;
    const label = labelOf.get(t.pid) ?? t.label;
    const ms = byPid.get(t.pid) ?? 0;
    if (label !== undefined) out.named[label] = (out.named[label] ?? 0) + ms;
    else out.children += ms;
    for (const pid of kids.get(t.pid) ?? []) todo.push(label === undefined ? { pid } : { pid, label });
  }
  out.self = byPid.get(process.pid) ?? 0;
  return out;
}
