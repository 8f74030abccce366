/**
 * Everything a coordinator or a worker needs, opened once per process: the services jobs
 * use, the job graph, settings, metrics, and the control database (Remora's tables and the
 * engine's schema). Opening migrates both schemas.
 */
import type pg from 'pg';
import { RemoraError } from '../core/errors.js';
import { databaseUrl } from '../metadata/postgres-server.js';
import { JobGraph } from './dag.js';
import { migrateEngine } from './engine.js';
import type { JobDefinition, PipelineServices } from './job.js';
import { PipelineMetrics } from './metrics.js';
import { topologyOf, type Topology } from './partitions.js';
import { migratePipeline } from './runs.repository.js';
import { pipelineSettings, type PipelineSettings } from './settings.js';

export interface PipelineRuntime {
  services: PipelineServices;
  graph: JobGraph;
  settings: PipelineSettings;
  metrics: PipelineMetrics;
  topology: Topology;
  control: pg.Pool;
  /** Connection string of the control database (graphile-worker opens its own pool on it). */
  controlUrl: string;
}

export async function openRuntime(
  services: PipelineServices,
  jobs: readonly JobDefinition[],
  over: Partial<PipelineSettings> = {},
  metrics = new PipelineMetrics(),
): Promise<PipelineRuntime> {
  const { tier, config } = services;
  const controlUrl = databaseUrl(tier.serverUrl, `${config.postgres.databasePrefix}_control`);
  const rt: PipelineRuntime = {
    services,
    graph: new JobGraph(jobs),
    settings: pipelineSettings(config, over),
    metrics,
    topology: topologyOf(config),
    control: tier.control,
    controlUrl,
  };
  // The configuration layer cannot see the job list: a mistyped job name is caught here.
  const unknown = Object.keys(rt.settings.jobs).filter((name) => !rt.graph.has(name));
  if (unknown.length > 0)
    throw new RemoraError(
      'InvalidConfig',
      `pipeline.jobs names no such job: ${unknown.join(', ')} (jobs: ${rt.graph.names().join(', ')})`,
    );
  // Two processes starting at once may race on CREATE SCHEMA/TABLE; a session advisory lock orders them.
  const client = await tier.control.connect();
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', ['remora_pipeline_migrate']);
    await migratePipeline(client);
    await migrateEngine(controlUrl, services.log);
  } finally {
    await client
      .query('SELECT pg_advisory_unlock(hashtext($1))', ['remora_pipeline_migrate'])
      .catch(() => {});
    client.release();
  }
  return rt;
}
