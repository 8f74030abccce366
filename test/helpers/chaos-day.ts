/**
 * The chaos day (docs/deployment.md "Chaos day"): one seeded day of the bundled deployment end
 * to end while faults are injected on a seeded schedule, then every live record's copies
 * checked byte for byte. Used by test/chaos.test.ts (small) and scripts/chaos.ts (`npm run chaos`).
 *
 *   setup      a private embedded PostgreSQL (so it can be restarted), the deployment in this
 *              process (front door, storage nodes, heartbeats, control endpoint), two
 *              `remora worker` processes, each with its own state directory, sharing only
 *              PostgreSQL and the front-door object store (`objectStore.backend: "frontdoor"`)
 *   workload   a seeded front-door workload; then writes are disabled on the node to evacuate
 *   pipeline   snapshot → unpack → storage-metering for today, driven by a coordinator in this
 *              process and run by the two workers, while a second workload runs and faults hit:
 *              a worker SIGKILLed mid-task (restarted, as a supervisor would), a storage node
 *              stopped and restarted through the control endpoint, PostgreSQL restarted
 *   rebalance  plan (from the pipeline's unpack) → run → retry → verify of the evacuation, while
 *              a transfer is corrupted on the wire, a destination is filled (507), a heartbeat
 *              goes stale, and (by the seed) the node stop or the PostgreSQL restart lands here
 *   check      every copy of every live record: GET from each node it names, MD5 = contentMD5;
 *              datacenters per record against before the evacuation; no referenced copy in a
 *              tombstone directory; every run completed, or failed truthfully and then rerun
 *
 * Every process and server started here is stopped at the end, SIGKILLed children included.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { defaultConfig, defaultStorageNodes, type RemoraConfig } from '../../src/config/config.js';
import { SeededRandom } from '../../src/core/clock.js';
import { dayOf } from '../../src/core/days.js';
import { isRemoraError, toRemoraError } from '../../src/core/errors.js';
import { controlStorageNode } from '../../src/deployment/control.js';
import { Deployment, storageRoot } from '../../src/deployment/deployment.js';
import { FrontDoorObjectStore } from '../../src/objectstore/frontdoor-store.js';
import {
  EMBEDDED_PASSWORD,
  EMBEDDED_USER,
  startEmbeddedPostgres,
  type RunningPostgres,
} from '../../src/metadata/postgres-server.js';
import type { MantaObjectValue } from '../../src/metadata/types.js';
import { disableWrites } from '../../src/storage/storage-admin.js';
import { TOMBSTONE_DIR } from '../../src/storage/storage-paths.js';
import { accountByLogin, OPERATOR_LOGIN } from '../../src/frontdoor/accounts.js';
import { NodeDirectory } from '../../src/storage/node-directory.js';
import { runWorkload, type WorkloadSummary } from '../../src/workload/driver.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../../src/workload/generator.js';
import { withDailyPipeline } from '../../src/jobs/catalog.js';
import { latestDueRunsBetween, rerun, scheduleDay } from '../../src/pipeline/operations.js';
import type { Coordinator } from '../../src/pipeline/coordinator.js';
import type { PipelineRuntime } from '../../src/pipeline/runtime.js';
import type { PipelineSettings } from '../../src/pipeline/settings.js';
import { ACTIVE_STATES, readPointer, runsBetween, type RunRow } from '../../src/pipeline/runs.repository.js';
import { attemptsOfRun, type AttemptRow } from '../../src/pipeline/tasks.repository.js';
import { planJob, replanForRetry, type PlanResult } from '../../src/jobs/rebalance/rebalance.service.js';
import { runJob, type RunTotals } from '../../src/jobs/rebalance/rebalance.run.js';
import { verifyEvacuated } from '../../src/jobs/rebalance/rebalance.status.js';
import { FaultyNetwork } from './faulty-network.js';
import { Transform } from 'node:stream';
import { freePort } from './net.js';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'src', 'main', 'cli.ts');

export interface ChaosOptions {
  seed: number;
  /** Object operations of the morning workload (before the pipeline). */
  objects: number;
  /** Object operations of the workload that runs during the pipeline. */
  lateObjects: number;
  accounts: number;
  maxObjectBytes: number;
  /** Bytes/s of the rebalance run (so the faults land while it moves copies). */
  rebalanceBytesPerSecond: number;
  /** Keep the state directory (its path is in the result) for a post-mortem. */
  keepState?: boolean;
  log?: (line: string) => void;
}

export const SMALL_DAY: Omit<ChaosOptions, 'seed'> = {
  objects: 60,
  lateObjects: 20,
  accounts: 3,
  maxObjectBytes: 48 * 1024,
  rebalanceBytesPerSecond: 300_000,
};

export type FaultKind =
  | 'sigkill-worker'
  | 'stop-storage-node'
  | 'restart-postgres'
  | 'corrupt-transfer'
  | 'fill-destination'
  | 'stale-heartbeat';

export interface FaultRecord {
  kind: FaultKind;
  phase: 'pipeline' | 'rebalance';
  target: string;
  /** ms since the day started. */
  at: number;
  /** Whether it really happened (a trigger that never came is said so, not hidden). */
  injected: boolean;
  detail: string;
}

/** What the seed decides before the day starts. */
export interface FaultSchedule {
  evacuate: string;
  killWorkerDuring: 'snapshot' | 'unpack';
  nodeStop: { phase: 'pipeline' | 'rebalance'; node: string; downMs: number };
  pgRestart: { phase: 'pipeline' | 'rebalance'; during: 'unpack' | 'storage-metering'; downMs: number };
  /** ms after the rebalance run starts that its faults fire. */
  rebalanceFaultDelayMs: number;
}

export interface RunAccount {
  job: string;
  partition: string;
  /** The final state of its latest run, and its report's counters. */
  state: string;
  counters: Record<string, number>;
  /** Earlier runs of the partition that failed, each with its error and whether it was truthful. */
  failedBefore: { runId: number; error: string; truthful: boolean }[];
}

export interface ChaosResult {
  seed: number;
  stateDir: string;
  schedule: FaultSchedule;
  faults: FaultRecord[];
  runs: RunAccount[];
  rebalance: {
    jobId: string;
    planned: number;
    runs: RunTotals[];
    /** runJob calls that threw (PostgreSQL gone) and were started again. */
    interruptedRuns: string[];
    retryRounds: number;
    /** New copies the first retry placed on the stale or the full node (it must place none). */
    retryChoseUnfit: string[];
    safe: boolean;
    verdict: string;
  };
  /** The SIGKILLed attempt, and whether another worker then completed its task. */
  killedAttempt?: { attemptId: number; state: string; retriedBy?: string; worker: string };
  /**
   * Copies pulled with a flipped byte, and the nodes that hold those wrong bytes now (the
   * destination's MD5 check must have refused them: none).
   */
  corruptedReads: { objectId: string; source: string; committedOn: string[] }[];
  workload: { morning: WorkloadSummary; late: WorkloadSummary };
  /** What users did while copies moved (links to moving objects, overwrites, deletes). */
  duringMoves: DuringMoves;
  /** Worker processes that died without being killed (each restarted). */
  unexpectedExits: string[];
  /** Worker starts that failed (e.g. PostgreSQL down at that moment), each retried. */
  failedWorkerStarts: string[];
  copiesChecked: number;
  copiesLost: string[];
  fewerDatacenters: string[];
  tombstonedReferenced: string[];
  /** objectIds whose live records name different sets of copies (DESIGN.md invariant 2). */
  divergentObjects: string[];
  runsCompleted: number;
  runsTotal: number;
  failedThenRerun: number;
  line: string;
  timings: Record<string, number>;
}

/** Pipeline timings for a day of seconds (docs/pipeline.md; FAST in test/helpers/pipeline.ts, less eager). */
const PIPELINE: Partial<PipelineSettings> = {
  tickIntervalMs: 100,
  workerPollIntervalMs: 200,
  heartbeatMs: 250,
  staleAfterMs: 2500,
  concurrency: 2,
  // No grace: the morning's overwrites and deletes are garbage by the day's snapshot, so gc
  // tombstones copies during the day (and must never one a live record names).
  jobs: { gc: { graceDays: 0 } } as PipelineSettings['jobs'],
};
const LAG_MS = 2500;
const HEARTBEAT_MS = 250;
const MAX_FILL = 90;

export function faultSchedule(seed: number, nodes: readonly string[]): FaultSchedule {
  const r = new SeededRandom(seed ^ 0x5eed);
  const evacuate = r.pick(nodes);
  const killWorkerDuring = r.pick(['snapshot', 'unpack'] as const);
  const stopPhase = r.pick(['pipeline', 'rebalance'] as const);
  // The node stop and the PostgreSQL restart each land in the pipeline or in the rebalance.
  const pgPhase = r.pick(['pipeline', 'rebalance'] as const);
  return {
    evacuate,
    killWorkerDuring,
    nodeStop: {
      phase: stopPhase,
      // In the rebalance, the evacuated node itself (its copies must be read from the other copy,
      // its tombstones are owed); in the pipeline, any other node.
      node: stopPhase === 'rebalance' ? evacuate : r.pick(nodes.filter((n) => n !== evacuate)),
      downMs: LAG_MS + 500 + r.int(1500),
    },
    pgRestart: {
      phase: pgPhase,
      during: r.pick(['unpack', 'storage-metering'] as const),
      downMs: 300 + r.int(1200),
    },
    rebalanceFaultDelayMs: 100 + r.int(400),
  };
}

/** A PostgreSQL that can be restarted on the same port and data directory. */
class RestartablePostgres {
  private server: RunningPostgres | undefined;
  constructor(
    private readonly dataDir: string,
    readonly port: number,
  ) {}
  get url(): string {
    return `postgres://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${this.port}/postgres`;
  }
  async start(): Promise<void> {
    this.server = await startEmbeddedPostgres(this.dataDir, this.port);
  }
  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
  }
  async restart(downMs: number): Promise<void> {
    await this.stop();
    await sleep(downMs);
    await this.start();
  }
  /** Resolves once a connection succeeds. */
  async reachable(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = new pg.Client({ connectionString: this.url });
      c.on('error', () => {});
      try {
        await c.connect();
        await c.query('SELECT 1');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error('PostgreSQL did not come back');
        await sleep(100);
      } finally {
        await c.end().catch(() => {});
      }
    }
  }
}

interface WorkerSlot {
  dir: string;
  child?: ChildProcess;
  /** Set once the process said it started; an exit after that is a death. */
  started: boolean;
  /** Set when we end it on purpose (SIGKILL fault, shutdown). */
  expected: boolean;
  tail: string[];
}

/**
 * `remora worker` processes with their own state directories, started again when they die, as a
 * supervisor (systemd, SMF) would: a start that fails (PostgreSQL down at that moment) is retried.
 */
class Workers {
  readonly slots: WorkerSlot[] = [];
  /** Running workers that exited without being killed. */
  readonly unexpected: string[] = [];
  /** Starts that failed (the process exited before it was ready), with its last words. */
  readonly failedStarts: string[] = [];
  private stopping = false;

  /** If this process dies before stop(), its workers must not outlive it. */
  private readonly onExit = () => {
    for (const s of this.slots) if (s.child && s.child.exitCode === null) s.child.kill('SIGKILL');
  };

  constructor(private readonly log: (l: string) => void) {
    process.once('exit', this.onExit);
  }

  async add(dir: string): Promise<void> {
    const slot: WorkerSlot = { dir, started: false, expected: false, tail: [] };
    this.slots.push(slot);
    await this.start(slot);
  }

  /** Start the slot's process, again and again while it exits before it is ready (up to ~30 s). */
  private async start(slot: WorkerSlot): Promise<void> {
    for (let i = 0; ; i++) {
      if (this.stopping) return;
      try {
        await this.spawnOnce(slot);
        return;
      } catch (err) {
        const what = `${path.basename(slot.dir)}: ${(err as Error).message}: ${slot.tail.slice(-2).join(' | ')}`;
        this.failedStarts.push(what);
        this.log(`worker start failed (${what}); starting it again`);
        if (this.stopping || i >= 30) throw err;
        await sleep(1000);
      }
    }
  }

  private spawnOnce(slot: WorkerSlot): Promise<void> {
    const env = { ...process.env };
    for (const k of ['REMORA_CONFIG', 'REMORA_PG_URL', 'REMORA_STATE_DIR']) delete env[k];
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        CLI,
        '--state-dir',
        slot.dir,
        'worker',
        '--concurrency',
        String(PIPELINE.concurrency),
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    slot.child = child;
    slot.started = false;
    slot.expected = false;
    slot.tail = [];
    const logFile = fs.createWriteStream(path.join(slot.dir, 'worker.log'), { flags: 'a' });
    let ready: (() => void) | undefined;
    const onData = (d: Buffer) => {
      logFile.write(d);
      for (const line of d.toString().split('\n').filter(Boolean)) {
        slot.tail.push(line);
        if (slot.tail.length > 20) slot.tail.shift();
        if (line.includes('worker started')) ready?.();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    return new Promise<void>((resolve, reject) => {
      ready = () => {
        slot.started = true;
        resolve();
      };
      child.once('exit', (code, signal) => {
        logFile.end();
        if (!slot.started) {
          reject(new Error(`exited before it was ready (${code ?? signal})`));
          return;
        }
        if (slot.expected || this.stopping) return;
        const what = `worker pid ${child.pid} (${path.basename(slot.dir)}) exited by itself (${code ?? signal}): ${slot.tail.slice(-3).join(' | ')}`;
        this.unexpected.push(what);
        this.log(what);
        void this.start(slot).catch((e: unknown) => this.log(`worker restart failed: ${String(e)}`));
      });
    });
  }

  /** The slot whose process runs the graphile worker named `host:pid:…`. */
  slotOf(workerName: string): WorkerSlot | undefined {
    const pid = Number(workerName.split(':')[1]);
    return this.slots.find((s) => s.child?.pid === pid);
  }

  /** SIGKILL, wait for the exit, start a new process in the same state directory. */
  async kill(slot: WorkerSlot): Promise<number> {
    const child = slot.child!;
    slot.expected = true;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    await this.start(slot);
    return child.pid!;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    process.off('exit', this.onExit);
    await Promise.all(
      this.slots.map(async (s) => {
        const c = s.child;
        if (!c || c.exitCode !== null || c.signalCode !== null) return;
        s.expected = true;
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
        await gone;
        clearTimeout(t);
      }),
    );
  }
}

interface LiveObject {
  key: string;
  value: MantaObjectValue;
}

async function liveObjects(d: Deployment): Promise<LiveObject[]> {
  const out: LiveObject[] = [];
  for (const s of d.tier.indexShards) {
    const r = await s.pool.query<{ _key: string; _value: string }>(
      `SELECT _key, _value FROM manta WHERE type = 'object'`,
    );
    for (const row of r.rows) out.push({ key: row._key, value: JSON.parse(row._value) as MantaObjectValue });
  }
  return out;
}

const emptySummary = (): WorkloadSummary => ({
  accounts: 0,
  directories: 0,
  puts: 0,
  overwrites: 0,
  links: 0,
  deletes: 0,
  bytes: 0,
  zeroByte: 0,
  failures: [],
});

const dcCount = (v: MantaObjectValue) => new Set(v.sharks.map((s) => s.datacenter)).size;

/** Poll until `ok` (errors count as not yet), or fail after timeoutMs. */
async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ok().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`chaos day: timed out waiting until ${what}`);
    await sleep(25);
  }
}

export async function runChaosDay(o: ChaosOptions): Promise<ChaosResult> {
  const t0 = Date.now();
  const log = (l: string) => o.log?.(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${l}`);
  const since = () => Date.now() - t0;
  const timings: Record<string, number> = {};
  const mark = (name: string) => (timings[name] = since());
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-chaos-'));
  fs.chmodSync(root, 0o755); // PostgreSQL (run as its own user under root) must reach its data directory
  const cleanups: { name: string; fn: () => Promise<void> }[] = [];
  const faults: FaultRecord[] = [];
  const fault = (f: Omit<FaultRecord, 'at'>) => {
    faults.push({ ...f, at: since() });
    log(`FAULT ${f.kind} (${f.phase}) ${f.target}: ${f.detail}${f.injected ? '' : ' [not injected]'}`);
  };
  try {
    // --- setup ---------------------------------------------------------------------------------
    const postgres = new RestartablePostgres(path.join(root, 'postgres', 'data'), await freePort());
    await postgres.start();
    cleanups.push({ name: 'postgres', fn: () => postgres.stop() });
    const nodes = defaultStorageNodes(6).map((n) => ({
      ...n,
      // Capped so a destination can be filled: room for its share of two copies of every object
      // at the largest size, and half as much again (dumps, chunks, reports).
      capacityMB: Math.max(
        16,
        Math.ceil((((o.objects + o.lateObjects) * o.maxObjectBytes * 2) / 6 / 2 ** 20) * 1.5),
      ),
    }));
    const schedule = faultSchedule(
      o.seed,
      nodes.map((n) => n.id),
    );
    log(`seed ${o.seed}: ${JSON.stringify(schedule)}`);
    const base = defaultConfig(path.join(root, 'deployment'));
    const config: RemoraConfig = {
      ...base,
      postgres: { ...base.postgres, url: postgres.url, databasePrefix: 'chaos' },
      storage: { nodes, heartbeatIntervalMs: HEARTBEAT_MS },
      picker: { ...base.picker, lagMs: LAG_MS, maxUtilizationPct: MAX_FILL },
      objectStore: { backend: 'frontdoor' },
    };
    const d = await Deployment.start(config, {
      writeState: true,
      random: new SeededRandom(o.seed),
      log: (l) => log(`deployment: ${l}`),
    });
    cleanups.push({ name: 'deployment', fn: () => d.close() });
    const operator = d.client();
    cleanups.push({ name: 'operator client', fn: () => Promise.resolve(operator.close()) });
    const store = new FrontDoorObjectStore(operator);
    const workers = new Workers(log);
    cleanups.push({ name: 'workers', fn: () => workers.stop() });
    const workerDirs = [0, 1].map((i) => {
      const dir = path.join(root, `worker-${i}`);
      fs.mkdirSync(dir, { recursive: true });
      // Only PostgreSQL and the front-door object store are shared: nothing else of the deployment.
      fs.writeFileSync(
        path.join(dir, 'config.json'),
        JSON.stringify({
          postgres: { url: postgres.url, databasePrefix: 'chaos' },
          // gc moves copies to tombstone: the nodes' credential, as on every machine running workers.
          storage: { nodes, internalToken: d.internalToken },
          objectStore: { backend: 'frontdoor', url: d.frontdoorUrl, token: d.operatorToken },
          pipeline: PIPELINE,
        }),
        { mode: 0o600 }, // it holds the operator token and the internal credential
      );
      return dir;
    });
    mark('setup');
    // The workers start while the morning workload runs.
    const workersUp = Promise.all(workerDirs.map((dir) => workers.add(dir)));

    // --- workload ------------------------------------------------------------------------------
    const spec = (seed: number, objects: number): WorkloadSpec => ({
      ...DEFAULT_SPEC,
      seed,
      objects,
      accounts: o.accounts,
      maxObjectBytes: o.maxObjectBytes,
    });
    const morning = await runWorkload(d.tier, d.frontdoorUrl, spec(o.seed, o.objects));
    log(`morning workload: ${JSON.stringify({ ...morning, failures: morning.failures.length })}`);
    await workersUp;
    mark('workload');
    await disableWrites(d.tier, schedule.evacuate);
    // The front door's storage cache (1 s) may still place one copy there; the snapshot must be
    // 2 s past the node's last write (whole-second mtimes + the plan's default 1 s margin).
    await sleep(2100);

    // --- pipeline ------------------------------------------------------------------------------
    const day = dayOf(Date.now());
    let killed: ChaosResult['killedAttempt'];
    const runs = await withDailyPipeline(
      config,
      d.tier,
      { worker: false, store, settings: PIPELINE, log: (l) => log(`coordinator: ${l}`) },
      async (rt, coordinator) => {
        // A workload that cannot even create its accounts (PostgreSQL gone) says so in its failures.
        const late = runWorkload(d.tier, d.frontdoorUrl, spec(o.seed + 1, o.lateObjects), {
          accountPrefix: 'late',
        }).catch((err: unknown): WorkloadSummary => ({
          ...emptySummary(),
          failures: [{ op: 'workload', path: '-', error: toRemoraError(err).message }],
        }));
        await scheduleDay(rt, day, 'chaos');
        // Settled into a value at once, so a fault that throws is not an unhandled rejection while the day is driven.
        const injected = Promise.all([
          killWorkerMidTask(rt, day, schedule.killWorkerDuring, workers, fault).then((k) => (killed = k)),
          schedule.nodeStop.phase === 'pipeline'
            ? whenRunning(rt, day, 'unpack').then(() =>
                stopAndStart(config, schedule.nodeStop, 'pipeline', fault),
              )
            : undefined,
          schedule.pgRestart.phase === 'pipeline'
            ? whenRunning(rt, day, schedule.pgRestart.during).then(() =>
                restartPostgres(postgres, schedule.pgRestart.downMs, 'pipeline', fault),
              )
            : undefined,
        ]).then(
          () => undefined,
          (err: unknown) => toRemoraError(err),
        );
        let latest = await driveDay(rt, coordinator, day, log);
        const injectError = await injected;
        if (injectError) throw injectError;
        // A run that failed (its task out of attempts while PostgreSQL or a node was gone) is
        // rerun with everything downstream, as an operator would: `remora rerun <job> --downstream`.
        for (let round = 0; round < 3 && latest.some((r) => r.state !== 'succeeded'); round++) {
          const failedJobs = [...new Set(latest.filter((r) => r.state === 'failed').map((r) => r.job))];
          const jobs =
            failedJobs.length > 0
              ? failedJobs
              : [...new Set(latest.filter((r) => r.state !== 'succeeded').map((r) => r.job))];
          log(`rerun (${round + 1}): ${jobs.join(', ')} --downstream`);
          for (const job of rt.graph.names().filter((j) => jobs.includes(j)))
            await rerun(rt, job, day, { downstream: true, dryRun: false });
          latest = await driveDay(rt, coordinator, day, log);
        }
        if (killed) {
          // The killed attempt's task, in its own run: did another worker then complete it?
          for (const run of await runsBetween(rt.control, day, day)) {
            const attempts = await attemptsOfRun(rt.control, run.id);
            const k = attempts.find((a) => a.id === killed!.attemptId);
            if (!k) continue;
            const retry = attempts.find(
              (a) => a.taskKey === k.taskKey && a.id > k.id && a.state === 'succeeded',
            );
            killed = { ...killed, state: k.state, ...(retry ? { retriedBy: retry.worker } : {}) };
          }
        }
        const summary = await late;
        log(`late workload: ${JSON.stringify({ ...summary, failures: summary.failures.length })}`);
        return { latest: await accountRuns(rt, day), late: summary };
      },
    );
    mark('pipeline');

    // --- rebalance -----------------------------------------------------------------------------
    const before = new Map((await liveObjects(d)).map((r) => [r.key, r.value]));
    const realUrl = (id: string) => d.nodeStatus().find((n) => n.id === id)?.url;
    // Seeded choices among equally good destinations, so a seed replays the same plan.
    const deps = {
      tier: d.tier,
      store,
      storage: d.storage,
      nodeUrl: realUrl,
      random: new SeededRandom(o.seed ^ 0x9a7),
    };
    const picker = { maxFillPct: MAX_FILL, lagMs: LAG_MS };
    const plan: PlanResult = await planJob(deps, { evacuate: schedule.evacuate, ...picker });
    log(`plan ${plan.jobId}: ${plan.objects} objects ${JSON.stringify(plan.counts)}`);
    const r = new SeededRandom(o.seed ^ 0xbad);
    const used = plan.destinations
      .filter((x) => x.role === 'destination' && x.objects > 0)
      .map((x) => x.manta_storage_id)
      .sort(() => r.next() - 0.5);
    const others = nodes.map((n) => n.id).filter((id) => id !== schedule.evacuate && !used.includes(id));
    const [fillDest, staleNode] = [...used, ...others];
    // Fill one destination the plan counts on: someone else's data lands there after the plan.
    const fillUrl = realUrl(fillDest!)!;
    const free = (await d.nodes.get(fillDest!)!.capacity.snapshot()).availableBytes;
    await d.storage.put(fillUrl, crypto.randomUUID(), crypto.randomUUID(), crypto.randomBytes(free));
    fault({
      kind: 'fill-destination',
      phase: 'rebalance',
      target: fillDest!,
      injected: true,
      detail: `${free} bytes written after the plan; ${plan.destinations.find((x) => x.manta_storage_id === fillDest)?.objects ?? 0} objects planned there`,
    });
    // Corrupt the first copy a destination pulls, on the wire: the rebalance's nodes talk to
    // each other through a proxy per node (the destinations fetch their copies through them).
    const net = await FaultyNetwork.start(
      nodes.map((n) => n.id),
      realUrl,
      ({ attempt }) => (attempt === 0 && !net.reads.some((x) => x.faulted) ? flipFirstByte() : undefined),
    );
    cleanups.push({ name: 'faulty network', fn: () => net.close() });
    const runUrl = net.nodeUrl;
    const rb: ChaosResult['rebalance'] = {
      jobId: plan.jobId,
      planned: plan.objects,
      runs: [],
      interruptedRuns: [],
      retryRounds: 0,
      retryChoseUnfit: [],
      safe: false,
      verdict: '',
    };
    const runToEnd = async (nodeUrl: (id: string) => string | undefined) => {
      for (let i = 0; ; i++) {
        try {
          const t = await runJob(
            { tier: d.tier, storage: d.storage, nodeUrl },
            {
              jobId: plan.jobId,
              concurrency: 4,
              leaseMs: 2000,
              maxBytesPerSecond: o.rebalanceBytesPerSecond,
            },
          );
          rb.runs.push(t);
          log(`rebalance run: ${JSON.stringify(t)}`);
          return;
        } catch (err) {
          const e = toRemoraError(err);
          rb.interruptedRuns.push(`${e.code}: ${e.message}`);
          log(`rebalance run interrupted (${e.code}: ${e.message}); running it again`);
          if (i >= 5) throw err;
          await postgres.reachable();
        }
      }
    };
    const rebalanceFaults = (async () => {
      await sleep(schedule.rebalanceFaultDelayMs);
      await Promise.all([
        schedule.nodeStop.phase === 'rebalance'
          ? stopAndStart(config, schedule.nodeStop, 'rebalance', fault)
          : undefined,
        schedule.pgRestart.phase === 'rebalance'
          ? restartPostgres(postgres, schedule.pgRestart.downMs, 'rebalance', fault)
          : undefined,
      ]);
    })().then(
      () => undefined,
      (err: unknown) => toRemoraError(err),
    );
    // Users keep working while copies move: links to objects being moved, overwrites, deletes
    // (issue 17's durability case: a link made during a move, then the retry).
    const mutations = mutateDuringMoves(d, before, schedule.evacuate, o.seed, log).catch((err: unknown) =>
      toRemoraError(err),
    );
    await runToEnd(runUrl);
    const mutated = await mutations;
    if (mutated instanceof Error) throw mutated;
    const rebalanceFaultError = await rebalanceFaults;
    if (rebalanceFaultError) throw rebalanceFaultError;
    await net.close();
    const corrupted = net.reads.filter((x) => x.faulted);
    fault({
      kind: 'corrupt-transfer',
      phase: 'rebalance',
      target: corrupted[0]?.source ?? '-',
      injected: corrupted.length > 0,
      detail: `copies pulled with a flipped byte: ${JSON.stringify(corrupted.map((x) => x.objectId))} (the destination's MD5 check refuses them: the next source, or skipped MD5Mismatch)`,
    });
    // A heartbeat goes stale: the retry must not choose that node, nor the full one.
    await d.pauseHeartbeat(staleNode!);
    await until(`${staleNode}'s record is stale and ${fillDest}'s says it is full`, async () => {
      const recs = new Map((await d.tier.storageRecords()).map((x) => [x.value.manta_storage_id, x.value]));
      const s = recs.get(staleNode!);
      const f = recs.get(fillDest!);
      // …and every other node fresh again (a PostgreSQL restart just before ages every record).
      const othersFresh = nodes.every(
        (n) =>
          n.id === staleNode ||
          n.id === schedule.evacuate ||
          (recs.get(n.id)?.timestamp ?? 0) >= Date.now() - LAG_MS + 500,
      );
      return othersFresh && !!s && s.timestamp < Date.now() - LAG_MS && !!f && f.percentUsed > MAX_FILL;
    });
    fault({
      kind: 'stale-heartbeat',
      phase: 'rebalance',
      target: staleNode!,
      injected: true,
      detail: `heartbeat paused until after the retry; record older than the ${LAG_MS} ms lag`,
    });
    const copiesNow = async () => {
      const live = await liveObjects(d);
      const nodesOf = new Map<string, Set<string>>(); // objectId → nodes any of its records names
      for (const x of live)
        for (const sh of x.value.sharks)
          nodesOf.set(
            x.value.objectId,
            (nodesOf.get(x.value.objectId) ?? new Set()).add(sh.manta_storage_id),
          );
      return { live, nodesOf };
    };
    for (let round = 1; round <= 3 && !rb.safe; round++) {
      rb.retryRounds = round;
      const beforeRetry = round === 1 ? await copiesNow() : undefined;
      const rp = await replanForRetry(deps, plan.jobId, picker);
      log(`retry ${round}: re-planned ${JSON.stringify(rp.counts)}`);
      await runToEnd(realUrl);
      if (beforeRetry) {
        // The retry placed no new copy on the stale node or the full one. (A record may come to
        // name a copy that was already there: the records of one objectId converge.)
        for (const x of (await copiesNow()).live)
          for (const sh of x.value.sharks) {
            const id = sh.manta_storage_id;
            if ((id === staleNode || id === fillDest) && !beforeRetry.nodesOf.get(x.value.objectId)?.has(id))
              rb.retryChoseUnfit.push(`${x.key} (${x.value.objectId}) got a new copy on ${id}`);
          }
        await d.resumeHeartbeat(staleNode!);
      }
      // As `remora rebalance verify` finds nodes: configuration, else their heartbeat records.
      const directory = await NodeDirectory.load(config.storage.nodes, d.tier);
      const v = await verifyEvacuated(
        { tier: d.tier, storage: d.storage, nodes: directory },
        schedule.evacuate,
      );
      rb.safe = v.safe;
      rb.verdict = v.verdict;
      log(`verify: ${v.verdict}`);
    }
    await d.resumeHeartbeat(staleNode!);
    mark('rebalance');

    // --- check ---------------------------------------------------------------------------------
    const check = await checkCopies(d, before);
    mark('check');
    const pipelineRuns = runs.latest;
    const failedThenRerun =
      pipelineRuns.reduce((n, x) => n + (x.state === 'succeeded' && x.failedBefore.length > 0 ? 1 : 0), 0) +
      (rb.interruptedRuns.length > 0 && rb.safe ? 1 : 0);
    const runsTotal = pipelineRuns.length + 1;
    const runsCompleted = pipelineRuns.filter((x) => x.state === 'succeeded').length + (rb.safe ? 1 : 0);
    const injectedCount = faults.filter((f) => f.injected).length;
    const line =
      `faults injected ${injectedCount}, runs completed ${runsCompleted}/${runsTotal}` +
      (failedThenRerun > 0 ? ` (${failedThenRerun} failed truthfully and then rerun)` : '') +
      `, copies lost ${check.lost.length}, records with fewer datacenters ${check.fewerDcs.length}, ` +
      `referenced copies tombstoned ${check.tombstoned.length}`;
    timings.total = since();
    return {
      seed: o.seed,
      stateDir: root,
      schedule,
      faults,
      runs: pipelineRuns,
      rebalance: rb,
      ...(killed ? { killedAttempt: killed } : {}),
      corruptedReads: corrupted.map((x) => ({
        objectId: x.objectId,
        source: x.source,
        committedOn: [...d.nodes]
          .filter(([, n]) => holdsBytes(n.root, x.objectId, x.sentMd5))
          .map(([id]) => id),
      })),
      workload: { morning, late: runs.late },
      duringMoves: mutated,
      unexpectedExits: workers.unexpected,
      failedWorkerStarts: workers.failedStarts,
      copiesChecked: check.checked,
      copiesLost: check.lost,
      fewerDatacenters: check.fewerDcs,
      tombstonedReferenced: check.tombstoned,
      divergentObjects: check.divergent,
      runsCompleted,
      runsTotal,
      failedThenRerun,
      line,
      timings,
    };
  } finally {
    for (const c of cleanups.reverse()) {
      await c.fn().catch((e: unknown) => log(`cleanup ${c.name}: ${String(e)}`));
    }
    if (!o.keepState) fs.rmSync(root, { recursive: true, force: true });
  }
}

export interface DuringMoves {
  links: number;
  overwrites: number;
  deletes: number;
  /** Requests the front door refused (e.g. PostgreSQL restarting): said, not hidden. */
  failures: string[];
}

/**
 * While the first rebalance run moves copies: the operator links to objects on the evacuated
 * node, overwrites some and deletes others (the seed picks which). A new link is recorded in
 * `before` with its source's copies as they were, so its datacenters are checked like the rest.
 */
async function mutateDuringMoves(
  d: Deployment,
  before: Map<string, MantaObjectValue>,
  evacuate: string,
  seed: number,
  log: (l: string) => void,
): Promise<DuringMoves> {
  const out: DuringMoves = { links: 0, overwrites: 0, deletes: 0, failures: [] };
  const r = new SeededRandom(seed ^ 0x11c);
  const operator = (await accountByLogin(d.tier, OPERATOR_LOGIN))!;
  const client = d.client();
  try {
    const dir = `/${operator.uuid}/stor/chaos-links`;
    await client.mkdirp(dir);
    const moving = [...before]
      .filter(([, v]) => v.contentLength > 0 && v.sharks.some((x) => x.manta_storage_id === evacuate))
      .map(([key]) => key)
      .sort();
    for (let i = 0; i < Math.min(10, moving.length); i++) {
      const key = moving.splice(r.int(moving.length), 1)[0]!;
      try {
        if (i % 5 < 3) {
          const src = await d.tier.getObject<MantaObjectValue>('manta', key);
          if (!src) continue;
          const link = `${dir}/l${i}`;
          await client.link(link, key);
          before.set(link, src.value);
          out.links++;
        } else if (i % 5 === 3) {
          await client.put(key, crypto.randomBytes(1000 + r.int(4000)));
          out.overwrites++;
        } else {
          await client.delete(key);
          out.deletes++;
        }
      } catch (err) {
        out.failures.push(`${key}: ${toRemoraError(err).code}`);
      }
    }
  } finally {
    client.close();
  }
  log(`during the moves: ${JSON.stringify(out)}`);
  return out;
}

/** Drive the day's runs until none is waiting or running; PostgreSQL going away is waited out. */
async function driveDay(
  rt: PipelineRuntime,
  coordinator: Coordinator,
  day: string,
  log: (l: string) => void,
  timeoutMs = 120_000,
): Promise<RunRow[]> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      await coordinator.tick();
      // Hours of today still to come (hourly metering) are not due: not waited for.
      const runs = await latestDueRunsBetween(rt, day, day);
      if (runs.length > 0 && runs.every((r) => !ACTIVE_STATES.includes(r.state))) return runs;
    } catch (err) {
      const m = toRemoraError(err).message;
      if (m !== lastError) log(`coordinator tick failed (retrying): ${m}`);
      lastError = m;
    }
    if (Date.now() > deadline)
      throw new Error(`chaos day: the pipeline did not finish within ${timeoutMs} ms`);
    await sleep(rt.settings.tickIntervalMs);
  }
}

/** Each partition's latest run, with the earlier runs that failed and whether they failed truthfully. */
async function accountRuns(rt: PipelineRuntime, day: string): Promise<RunAccount[]> {
  const all = await runsBetween(rt.control, day, day);
  const out: RunAccount[] = [];
  for (const latest of await latestDueRunsBetween(rt, day, day)) {
    const pointer = await readPointer(rt.control, latest.job, latest.partitionKey);
    const failedBefore = all
      .filter((r) => r.job === latest.job && r.partitionKey === latest.partitionKey && r.id !== latest.id)
      .filter((r) => r.state === 'failed' || r.state === 'blocked' || r.state === 'invalid')
      .map((r) => ({
        runId: r.id,
        error: r.error ?? '',
        // Truthful: it says why, and its output was never committed (the pointer is elsewhere).
        truthful: (r.error ?? '') !== '' && pointer?.runId !== r.id,
      }));
    out.push({
      job: latest.job,
      partition: latest.partitionKey,
      state: latest.state,
      counters: latest.report?.counters ?? {},
      failedBefore,
    });
  }
  return out.sort((a, b) => `${a.job}${a.partition}`.localeCompare(`${b.job}${b.partition}`));
}

/** Resolves when a run of `job` for the day is running (or after 60 s: the trigger is then late). */
async function whenRunning(rt: PipelineRuntime, day: string, job: string): Promise<void> {
  await until(
    `a ${job} run is running`,
    async () => (await runsBetween(rt.control, day, day)).some((r) => r.job === job && r.state !== 'waiting'),
    60_000,
  ).catch(() => undefined);
}

/**
 * SIGKILL the worker process running an attempt of `job` (a supervisor then starts a new one in
 * the same state directory). If that attempt turns out to have finished just before the kill,
 * kill again on the next running attempt of any job, up to three times.
 */
async function killWorkerMidTask(
  rt: PipelineRuntime,
  day: string,
  job: string,
  workers: Workers,
  fault: (f: Omit<FaultRecord, 'at'>) => void,
): Promise<ChaosResult['killedAttempt']> {
  for (let tryNo = 0; tryNo < 3; tryNo++) {
    let target: { attempt: AttemptRow; job: string } | undefined;
    await until(
      `an attempt of ${tryNo === 0 ? job : 'any job'} is running on a worker process`,
      async () => {
        for (const run of await runsBetween(rt.control, day, day)) {
          if (run.state !== 'running' || (tryNo === 0 && run.job !== job)) continue;
          const a = (await attemptsOfRun(rt.control, run.id)).find(
            (x) => x.state === 'running' && workers.slotOf(x.worker),
          );
          if (a) target = { attempt: a, job: run.job };
        }
        return target !== undefined;
      },
      60_000,
    ).catch(() => undefined);
    if (!target) {
      fault({
        kind: 'sigkill-worker',
        phase: 'pipeline',
        target: '-',
        injected: false,
        detail: `no running attempt of ${job} seen`,
      });
      return undefined;
    }
    const slot = workers.slotOf(target.attempt.worker)!;
    const pid = await workers.kill(slot);
    // Did the kill land mid-task? The attempt is `lost` once reaped, `succeeded` if it had finished.
    let state = 'running';
    await until(
      `the killed attempt ${target.attempt.id} is reaped`,
      async () => {
        const all: AttemptRow[] = [];
        for (const r of (await runsBetween(rt.control, day, day)).filter((x) => x.job === target!.job))
          all.push(...(await attemptsOfRun(rt.control, r.id)));
        state = all.find((a) => a.id === target!.attempt.id)?.state ?? 'running';
        return state !== 'running';
      },
      60_000,
    );
    const midTask = state === 'lost';
    fault({
      kind: 'sigkill-worker',
      phase: 'pipeline',
      target: `pid ${pid} (${target.job} task ${target.attempt.taskKey}, attempt ${target.attempt.id})`,
      injected: midTask,
      detail: midTask
        ? 'killed mid-task; attempt marked lost'
        : `the attempt had already ${state}; killing again`,
    });
    if (midTask) return { attemptId: target.attempt.id, state, worker: target.attempt.worker };
  }
  return undefined;
}

/** Stop a storage node through the deployment's control endpoint (as `remora storage stop`), then start it. */
async function stopAndStart(
  config: RemoraConfig,
  s: FaultSchedule['nodeStop'],
  phase: 'pipeline' | 'rebalance',
  fault: (f: Omit<FaultRecord, 'at'>) => void,
): Promise<void> {
  const stopped = await controlStorageNode(config, s.node, 'stop');
  fault({
    kind: 'stop-storage-node',
    phase,
    target: s.node,
    injected: stopped.state === 'stopped',
    detail: `stopped for ${s.downMs} ms (longer than the ${LAG_MS} ms picker lag: its heartbeat goes stale)`,
  });
  await sleep(s.downMs);
  const started = await controlStorageNode(config, s.node, 'start');
  if (started.state !== 'running' || started.url !== stopped.url)
    throw new Error(`chaos day: ${s.node} did not come back on ${stopped.url ?? '?'}`);
}

async function restartPostgres(
  postgres: RestartablePostgres,
  downMs: number,
  phase: 'pipeline' | 'rebalance',
  fault: (f: Omit<FaultRecord, 'at'>) => void,
): Promise<void> {
  const t = Date.now();
  await postgres.restart(downMs);
  fault({
    kind: 'restart-postgres',
    phase,
    target: `127.0.0.1:${postgres.port}`,
    injected: true,
    detail: `down ${Date.now() - t} ms (stop, ${downMs} ms, start)`,
  });
}

/**
 * Every copy of every live record, GET from the node it names and hashed; each live record's
 * datacenters against before the evacuation; referenced copies found in a tombstone directory.
 */
async function checkCopies(
  d: Deployment,
  before: Map<string, MantaObjectValue>,
): Promise<{
  checked: number;
  lost: string[];
  fewerDcs: string[];
  tombstoned: string[];
  divergent: string[];
}> {
  const live = await liveObjects(d);
  const copies = new Map<
    string,
    { node: string; owner: string; objectId: string; md5: string; key: string }
  >();
  const byObject = new Map<string, Set<string>>();
  const fewerDcs: string[] = [];
  for (const { key, value: v } of live) {
    const b = before.get(key);
    if (b && b.objectId === v.objectId && dcCount(v) < dcCount(b))
      fewerDcs.push(`${key}: ${dcCount(b)} → ${dcCount(v)} datacenters`);
    if (v.contentLength === 0) continue;
    const set = v.sharks
      .map((s) => s.manta_storage_id)
      .sort()
      .join(',');
    byObject.set(v.objectId, (byObject.get(v.objectId) ?? new Set()).add(set));
    for (const s of v.sharks)
      copies.set(`${s.manta_storage_id}/${v.objectId}`, {
        node: s.manta_storage_id,
        owner: v.creator || v.owner,
        objectId: v.objectId,
        md5: v.contentMD5,
        key,
      });
  }
  const lost: string[] = [];
  const tombstoned: string[] = [];
  const list = [...copies.values()];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < list.length) {
        const c = list[next++]!;
        const url = d.nodes.get(c.node)?.url;
        let got: string | undefined;
        try {
          if (!url) throw new Error(`${c.node} is not running`);
          const r = await d.storage.get(url, c.owner, c.objectId);
          const h = crypto.createHash('md5');
          for await (const chunk of r.stream) h.update(chunk as Buffer);
          got = h.digest('base64');
        } catch (err) {
          if (!isRemoraError(err, 'ObjectNotFound')) got = `error ${toRemoraError(err).code}`;
        }
        if (got === c.md5) continue;
        lost.push(
          `${c.objectId} on ${c.node} (${c.key}): ${got === undefined ? 'missing' : `got ${got}, want ${c.md5}`}`,
        );
        const tomb = path.join(storageRoot(d.config, c.node), TOMBSTONE_DIR);
        const days = fs.existsSync(tomb) ? fs.readdirSync(tomb) : [];
        if (got === undefined && days.some((day) => fs.existsSync(path.join(tomb, day, c.objectId))))
          tombstoned.push(`${c.objectId} on ${c.node} (${c.key})`);
      }
    }),
  );
  const divergent = [...byObject]
    .filter(([, sets]) => sets.size > 1)
    .map(([id, sets]) => `${id}: ${[...sets].join(' | ')}`);
  return { checked: list.length, lost, fewerDcs, tombstoned, divergent };
}

/** XOR the first byte of the stream with 0xff: same length, different MD5. */
function flipFirstByte(): Transform {
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (!done && chunk.length > 0) {
        chunk = Buffer.from(chunk);
        chunk[0] = chunk[0]! ^ 0xff;
        done = true;
      }
      cb(null, chunk);
    },
  });
}

/** Whether any copy of `objectId` under `root` (any owner) has exactly the bytes of MD5 `md5`. */
function holdsBytes(root: string, objectId: string, md5: string | undefined): boolean {
  if (md5 === undefined) return false; // the corrupted read never finished: nothing whole to commit
  for (const owner of fs.readdirSync(root)) {
    const f = path.join(root, owner, objectId);
    if (fs.existsSync(f) && crypto.createHash('md5').update(fs.readFileSync(f)).digest('base64') === md5)
      return true;
  }
  return false;
}
