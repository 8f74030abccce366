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
