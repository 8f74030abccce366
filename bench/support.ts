/** Benchmark support: a private embedded PostgreSQL (unless REMORA_TEST_PG_URL is set) and peak-RSS sampling. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
