/**
 * The `remora` CLI as real child processes, against fresh databases on the test run's
 * PostgreSQL and a temp state directory whose config.json points there (postgres.url and a
 * unique databasePrefix), with shards holding a small workload and stored dumps for past days.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type RemoraConfig } from '../../src/config/config.js';
import { MetadataTier } from '../../src/metadata/metadata-tier.js';
import { LocalObjectStore } from '../../src/objectstore/object-store.js';
import { backupPath } from '../../src/dumps/layout.js';
import { snapshotShard } from '../../src/dumps/snapshot.js';
import { runsBetween, type RunRow } from '../../src/pipeline/runs.repository.js';
import type { PipelineSettings } from '../../src/pipeline/settings.js';
import { SeededRandom } from '../../src/core/clock.js';
import { dropDatabases, testConfig, testPgUrl } from './pg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'src/main/cli.ts');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliFixture {
  stateDir: string;
  config: RemoraConfig;
  tier: MetadataTier;
  store: LocalObjectStore;
  /** `remora --state-dir <stateDir> …args` to completion. */
  run(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  /** `remora --state-dir <stateDir> …args` left running (a scheduler, a worker). */
  start(args: string[], env?: NodeJS.ProcessEnv): CliProcess;
  runs(from: string, to?: string): Promise<RunRow[]>;
  close(): Promise<void>;
}

export class CliProcess {
  readonly child: ChildProcess;
  private out = '';
  private err = '';
  readonly exited: Promise<CliResult>;

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code, signal) =>
        resolve({ code, signal, stdout: this.out, stderr: this.err }),
      ),
    );
  }

  get stdout(): string {
    return this.out;
  }
  get stderr(): string {
    return this.err;
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Poll until `cond` holds (checked every 100 ms), failing with `what` and the process's log. */
  async until<T>(
    what: string,
    cond: () => T | undefined | false | Promise<T | undefined | false>,
    timeoutMs = 30_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await cond();
      if (v) return v;
      if (!this.running) throw new Error(`process exited while waiting for ${what}:\n${this.err}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; log:\n${this.err}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Wait until stderr matches `re`. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray> {
    return this.until(`log ${re}`, () => re.exec(this.err) ?? undefined, timeoutMs);
  }

  /** Send `signal` and wait for the exit (SIGKILL and fail after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<CliResult> {
    if (this.running) this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const r = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      throw new Error(`process did not exit within ${timeoutMs} ms of ${signal}; log:\n${this.err}`);
    }
    return r;
  }
}

/** A small workload: accounts (two with reports) with directories, objects and a cross-account link. */
async function seedWorkload(tier: MetadataTier): Promise<void> {
  const rnd = new SeededRandom(7);
  const sharks = ['1.stor.dc1.remora.local', '2.stor.dc2.remora.local', '3.stor.dc3.remora.local'];
  const accounts = [
    { uuid: rnd.uuid(), login: 'alice', reports: true },
    { uuid: rnd.uuid(), login: 'bob', reports: true },
    { uuid: rnd.uuid(), login: 'carol', reports: false },
  ];
  const base = (key: string, owner: string) => ({
    dirname: key.slice(0, key.lastIndexOf('/')),
    key,
    headers: {},
    mtime: 1_700_000_000_000,
    name: key.slice(key.lastIndexOf('/') + 1),
    creator: owner,
    owner,
    roles: [],
  });
  for (const a of accounts) {
    await tier.putObject('accounts', a.uuid, { ...a, tokenHash: 'x' });
    for (const d of ['stor', 'public', 'stor/a'])
      await tier.putObject('manta', `/${a.uuid}/${d}`, {
        ...base(`/${a.uuid}/${d}`, a.uuid),
        type: 'directory',
      });
    for (let i = 0; i < 6; i++) {
      const key = `/${a.uuid}/${i % 2 ? 'public' : 'stor/a'}/o${i}`;
      const size = [0, 10, 4096, 200_000, 1_000_000, 7][i]!;
      await tier.putObject('manta', key, {
        ...base(key, a.uuid),
        type: 'object',
        contentLength: size,
        contentMD5: 'x',
        contentType: 'application/octet-stream',
        etag: `e${i}`,
        objectId: rnd.uuid(),
        sharks:
          size === 0
            ? []
            : sharks.slice(0, 2).map((id) => ({ datacenter: id.split('.')[2], manta_storage_id: id })),
      });
    }
  }
}

/**
 * Store a dump of every shard for each of `days`, as manatee would have left them: a snapshot
 * taken now, stored again under each day's path with that day's snapshot instant (the
 * snapshot job uses a past day's stored dump; the past cannot be snapshotted).
 */
export async function storeDumps(tier: MetadataTier, store: LocalObjectStore, days: string[]): Promise<void> {
  for (const shard of tier.shards.values()) {
    const snap = await snapshotShard(shard, store);
    const body = Buffer.from(await readObjectBytes(store, snap.path));
    for (const day of days) {
      const at = new Date(`${day}T01:00:00Z`);
      await store.put(backupPath(shard.name, at), body, {
        'm-shard': shard.name,
        'm-snapshot-time': at.toISOString(),
      });
    }
    await store.delete(snap.path);
  }
}

async function readObjectBytes(store: LocalObjectStore, p: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await store.get(p)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Fast timings for the CLI processes (config.json `pipeline` section). */
export const CLI_PIPELINE: Partial<PipelineSettings> = {
  tickIntervalMs: 100,
  workerPollIntervalMs: 200,
  heartbeatMs: 500,
  staleAfterMs: 10_000,
  concurrency: 2,
  partitions: 2,
};

export async function openCliFixture(
  o: { pipeline?: Partial<PipelineSettings>; dumpDays?: string[] } = {},
): Promise<CliFixture> {
  const base = testConfig();
  const stateDir = base.stateDir;
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({
      postgres: { url: testPgUrl(), databasePrefix: base.postgres.databasePrefix },
      pipeline: { ...CLI_PIPELINE, ...o.pipeline },
    }),
  );
  const config = loadConfig({}, { stateDir });
  const tier = await MetadataTier.open(config, testPgUrl());
  const store = new LocalObjectStore(path.join(stateDir, 'objects'));
  try {
    await seedWorkload(tier);
    await storeDumps(tier, store, o.dumpDays ?? []);
  } catch (err) {
    await tier.close();
    throw err;
  }
  const children: CliProcess[] = [];
  // No REMORA_* from the test's own environment except what a case passes.
  const cleanEnv = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('REMORA_') || k === 'REMORA_TEST_PG_URL'),
  );
  const start = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const p = new CliProcess(['--state-dir', stateDir, ...args], { ...cleanEnv, ...env });
    children.push(p);
    return p;
  };
  return {
    stateDir,
    config,
    tier,
    store,
    start,
    run: (args, env) => start(args, env).exited,
    runs: (from, to = from) => runsBetween(tier.control, from, to),
    close: async () => {
      for (const c of children) if (c.running) c.child.kill('SIGKILL');
      await Promise.all(children.map((c) => c.exited));
      await tier.close();
      await dropDatabases(config.postgres.databasePrefix);
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
