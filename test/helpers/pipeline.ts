/** Test harness for the executor: fresh databases, a local object store, fast timings. */
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LocalObjectStore } from '../../src/objectstore/object-store.js';
import { SeededRandom, systemClock } from '../../src/core/clock.js';
import { DuckPool } from '../../src/dumps/duckdb.js';
import { NodeDirectory } from '../../src/storage/node-directory.js';
import type { RemoraConfig } from '../../src/config/config.js';
import { Coordinator } from '../../src/pipeline/coordinator.js';
import type { JobDefinition, PipelineServices } from '../../src/pipeline/job.js';
import { openRuntime, type PipelineRuntime } from '../../src/pipeline/runtime.js';
import type { PipelineSettings } from '../../src/pipeline/settings.js';
import { PipelineWorker } from '../../src/pipeline/worker.js';
import { openTestTier, testConfig, testPgUrl } from './pg.js';
import { TEST_JOBS } from './pipeline-jobs.js';

/** Short intervals so the suite stays fast: a lost worker is noticed after ~1 s. */
export const FAST: Partial<PipelineSettings> = {
  tickIntervalMs: 50,
  workerPollIntervalMs: 100,
  heartbeatMs: 200,
  // A heartbeat late by more than this on a loaded machine costs a retry, nothing else: the late
  // attempt is fenced (docs/pipeline.md "A lost attempt that keeps running"; 5 s was the
  // workaround while a late unpack attempt could still replace the committed manifest).
  staleAfterMs: 1000,
  concurrency: 2,
};

export interface TestPipeline {
  rt: PipelineRuntime;
  coordinator: Coordinator;
  store: LocalObjectStore;
  config: RemoraConfig;
  logs: string[];
  startWorker(): Promise<PipelineWorker>;
  close(): Promise<void>;
}

export async function servicesFor(
  config: RemoraConfig,
  tier: PipelineServices['tier'],
  logs: string[],
  o: { storage?: PipelineServices['storage']; store?: (root: string) => LocalObjectStore } = {},
): Promise<PipelineServices> {
  const root = path.join(config.stateDir, 'objects');
  return {
    config,
    tier,
    store: o.store ? o.store(root) : new LocalObjectStore(root),
    duck: new DuckPool(),
    nodes: await NodeDirectory.load(config.storage.nodes, tier),
    storage: o.storage,
    clock: systemClock,
    random: new SeededRandom(1),
    log: (l) => logs.push(l),
  };
}

export async function openTestPipeline(
  o: {
    jobs?: JobDefinition[];
    settings?: Partial<PipelineSettings>;
    config?: RemoraConfig;
    /** The object store of the services (a LocalObjectStore at `root`, e.g. one with a seam). */
    store?: (root: string) => LocalObjectStore;
  } = {},
): Promise<TestPipeline> {
  const { tier, config, cleanup } = await openTestTier(o.config ?? testConfig());
  const logs: string[] = [];
  const services = await servicesFor(config, tier, logs, o.store ? { store: o.store } : {});
  const rt = await openRuntime(services, o.jobs ?? TEST_JOBS, { ...FAST, ...o.settings });
  const coordinator = new Coordinator(rt);
  const workers: PipelineWorker[] = [];
  return {
    rt,
    coordinator,
    store: services.store as LocalObjectStore,
    config,
    logs,
    startWorker: async () => {
      const w = new PipelineWorker(rt);
      await w.start();
      workers.push(w);
      return w;
    },
    close: async () => {
      for (const w of workers) await w.stop();
      await services.duck.close();
      await cleanup();
    },
  };
}

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pipeline-worker-child.ts');

/** A real `remora worker`-like child process running the test jobs; resolves once it claims work. */
export async function spawnWorker(
  config: RemoraConfig,
  settings: Partial<PipelineSettings> = {},
): Promise<{ child: ChildProcess; name: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: {
      ...process.env,
      REMORA_TEST_PG_URL: testPgUrl(),
      REMORA_CHILD_CONFIG: JSON.stringify(config),
      REMORA_CHILD_SETTINGS: JSON.stringify({ ...FAST, ...settings }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const name = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /worker ready: (\S+)/.exec(buf);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`worker child exited early (${code})`)));
  });
  return { child, name };
}
