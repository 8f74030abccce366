/**
 * The test command. Starts one embedded PostgreSQL for the whole run (unless
 * REMORA_TEST_PG_URL names an external server), then runs every `test/**\/*.test.ts`
 * with node:test; each test file creates its own databases under a unique prefix.
 *
 *   npm test                      all tests
 *   npm test -- test/ring.test.ts one file
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { startEmbeddedPostgres } from '../src/metadata/postgres-server.js';
import { freePort } from '../test/helpers/net.js';

function listTests(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listTests(p));
    else if (e.name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const args = process.argv.slice(2);
const files = args.length > 0 ? args : listTests('test');
let url = process.env.REMORA_TEST_PG_URL;
let stop: (() => Promise<void>) | undefined;
if (!url) {
  // A private cluster per run, so two test runs on one machine never share a data directory.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-test-pg-'));
  const pgServer = await startEmbeddedPostgres(path.join(dir, 'data'), await freePort());
  url = pgServer.url;
  stop = async () => {
    await pgServer.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
const concurrency = process.env.REMORA_TEST_CONCURRENCY ?? '2';
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...files],
  { stdio: 'inherit', env: { ...process.env, REMORA_TEST_PG_URL: url } },
);
const code: number = await new Promise((resolve) =>
  child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))),
);
if (stop) await stop();
process.exit(code);
