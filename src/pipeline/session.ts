/**
 * One process's pipeline session: the runtime, a coordinator, optionally an in-process
 * worker and a metrics endpoint, around `fn`; everything closed afterwards. Used by the
 * `pipeline`/`rerun`/`backfill`/`scheduler` commands and by the quick-start demo, through
 * the job catalog's `withDailyPipeline` (src/jobs/catalog.ts).
 */
import type { RemoraConfig } from '../config/config.js';
import { type Clock, systemClock, systemRandom } from '../core/clock.js';
import { DuckPool } from '../dumps/duckdb.js';
import { defaultObjectStore, type ObjectStore } from '../objectstore/object-store.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { Coordinator } from './coordinator.js';
import type { JobDefinition, PipelineServices } from './job.js';
import { NodeDirectory } from '../storage/node-directory.js';
import { StorageClient } from '../storage/storage-client.js';
import { serveMetrics } from './metrics.js';
import { openRuntime, type PipelineRuntime } from './runtime.js';
import { pipelineSettings, type PipelineSettings } from './settings.js';
import { PipelineWorker } from './worker.js';

export interface SessionOptions {
  /** The jobs this session runs (the catalog's list; the executor knows no job by name). */
  jobs: (settings: PipelineSettings) => JobDefinition[];
  /** Run tasks in this process too (default true). */
  worker?: boolean;
  metricsPort?: number;
  settings?: Partial<PipelineSettings>;
  clock?: Clock;
  log: (line: string) => void;
  /** Where inputs and outputs live (default: the local directory; see openObjectStore). */
  store?: ObjectStore;
  /** Where per-account reports go (PipelineServices.reportsStore; default `store`). */
  reportsStore?: ObjectStore;
  /** The storage nodes' internal credential (jobs that move or hash copies need it). */
  internalToken?: string;
}

export async function withPipelineSession<T>(
  config: RemoraConfig,
  tier: MetadataTier,
  o: SessionOptions,
  fn: (rt: PipelineRuntime, c: Coordinator) => Promise<T>,
): Promise<T> {
  const settings = pipelineSettings(config, o.settings ?? {});
  const services: PipelineServices = {
    config,
    tier,
    store: o.store ?? defaultObjectStore(config.stateDir),
    ...(o.reportsStore ? { reportsStore: o.reportsStore } : {}),
    duck: new DuckPool(),
    nodes: await NodeDirectory.load(config.storage.nodes, tier),
    storage:
      o.internalToken === undefined ? undefined : new StorageClient({ internalToken: o.internalToken }),
    clock: o.clock ?? systemClock,
    random: systemRandom,
    log: o.log,
  };
  const rt = await openRuntime(services, o.jobs(settings), o.settings ?? {});
  const coordinator = new Coordinator(rt);
  const port = o.metricsPort ?? settings.metricsPort;
  const metrics = port === undefined ? undefined : await serveMetrics(rt.metrics, port);
  if (metrics) o.log(`metrics on ${metrics.url}`);
  const worker = o.worker === false ? undefined : new PipelineWorker(rt);
  await worker?.start();
  try {
    return await fn(rt, coordinator);
  } finally {
    await worker?.stop();
    await metrics?.close();
    await services.duck.close();
    services.storage?.close();
  }
}
