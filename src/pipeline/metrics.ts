/**
 * Prometheus metrics for runs, tasks, durations and report events, served on an HTTP
 * endpoint (`/metrics`). One registry per process; every process (scheduler, worker,
 * `pipeline run`) exposes its own view, as the rebalancer's manager and agents did on 8878.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import type { RunReport } from '../core/run-report.js';

export class PipelineMetrics {
  readonly registry = new client.Registry();
  readonly runs = new client.Counter({
    name: 'remora_pipeline_runs_total',
    help: 'Runs finished, by job and outcome (ok, degraded, invalid, failed, blocked)',
    labelNames: ['job', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly tasks = new client.Counter({
    name: 'remora_pipeline_tasks_total',
    help: 'Task attempts finished, by job and outcome (succeeded, failed, lost, fenced)',
    labelNames: ['job', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly runDuration = new client.Histogram({
    name: 'remora_pipeline_run_duration_seconds',
    help: 'Wall time from a run starting to its commit',
    labelNames: ['job'] as const,
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 12 * 3600],
    registers: [this.registry],
  });
  readonly taskDuration = new client.Histogram({
    name: 'remora_pipeline_task_duration_seconds',
    help: 'Wall time of one task attempt',
    labelNames: ['job'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers: [this.registry],
  });
  readonly events = new client.Counter({
    name: 'remora_pipeline_events_total',
    help: 'Report events of committed runs, by job, kind and severity',
    labelNames: ['job', 'kind', 'severity'] as const,
    registers: [this.registry],
  });
  readonly alerts = new client.Counter({
    name: 'remora_pipeline_alerts_total',
    help: 'Alerts raised (deadline passed with inputs missing, run failed), by job and kind',
    labelNames: ['job', 'kind'] as const,
    registers: [this.registry],
  });
  readonly waiting = new client.Gauge({
    name: 'remora_pipeline_runs_waiting',
    help: 'Runs waiting for their inputs, by job',
    labelNames: ['job'] as const,
    registers: [this.registry],
  });

  recordReport(job: string, report: RunReport): void {
    for (const e of Object.values(report.events)) {
      this.events.inc({ job, kind: e.kind, severity: e.severity }, e.count);
    }
  }
}

/** Serve `/metrics` on a port (0 = any); returns the server and its URL. */
export async function serveMetrics(
  metrics: Pick<PipelineMetrics, 'registry'>,
  port: number,
  host = '127.0.0.1',
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${host}:${addr.port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
