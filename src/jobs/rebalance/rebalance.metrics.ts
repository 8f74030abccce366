/**
 * `rebalance run --metrics-port`: Prometheus metrics served while a run works (the Rust
 * rebalancer's agents exposed theirs on 8878): this runner's objects by outcome and bytes moved,
 * and the job's figures (`statusMetrics`: objects and bytes by state, reasons, rate, ETA), read
 * from the control database on each scrape.
 */
import http from 'node:http';
import client from 'prom-client';
import { listenOn } from '../../storage/listen.js';
import type { ObjectRow, Outcome } from './rebalance.repository.js';

export class RunnerMetrics {
  readonly registry = new client.Registry();
  private readonly objects = new client.Counter({
    name: 'remora_rebalance_runner_objects_total',
    help: 'Objects this runner finished with, by outcome (state or state:reason)',
    labelNames: ['job', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly bytes = new client.Counter({
    name: 'remora_rebalance_runner_bytes_total',
    help: 'Bytes of the objects this runner moved (complete or tombstone owed)',
    labelNames: ['job'] as const,
    registers: [this.registry],
  });

  constructor(private readonly jobId: string) {}

  outcome(o: Outcome, row: ObjectRow | undefined): void {
    this.objects.inc({ job: this.jobId, outcome: o.reason ? `${o.state}:${o.reason}` : o.state });
    if ((o.state === 'complete' || o.state === 'post_processing') && row)
      this.bytes.inc({ job: this.jobId }, row.bytes);
  }
}

/**
 * Serve `/metrics` on loopback `port` (0: any free port): the runner's counters followed by
 * `jobFigures()` (computed per scrape). Returns the URL and a close().
 */
export async function serveRunMetrics(
  runner: RunnerMetrics,
  jobFigures: () => Promise<string>,
  port: number,
  host = '127.0.0.1',
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    Promise.all([runner.registry.metrics(), jobFigures()]).then(
      ([own, job]) => res.writeHead(200, { 'content-type': runner.registry.contentType }).end(own + job),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  const bound = await listenOn(server, port, host, 'rebalance run --metrics-port', ': choose another port');
  return {
    url: `http://${host}:${bound}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
