/**
 * `rebalance run --metrics-port`: Prometheus metrics served while a run works (the Rust
 * rebalancer's agents exposed theirs on 8878): this runner's objects by outcome and bytes moved,
 * and the job's figures (`statusMetrics`: objects and bytes by state, reasons, rate, ETA), read
 * from the control database on each scrape. Served by the pipeline's `/metrics` server
 * (pipeline/metrics.ts serveMetrics).
 */
import client from 'prom-client';
import type { ObjectRow, Outcome } from './rebalance.repository.js';

/** A registry whose text ends with the job's figures, computed on each scrape. */
class RunRegistry extends client.Registry {
  constructor(private readonly jobFigures: () => Promise<string>) {
    super();
  }

  override async metrics(): Promise<string> {
    return (await super.metrics()) + (await this.jobFigures());
  }
}

export class RunnerMetrics {
  readonly registry: client.Registry;
  private readonly objects: client.Counter<'job' | 'outcome'>;
  private readonly bytes: client.Counter<'job'>;

  /** `jobFigures`: the job's Prometheus text (`statusMetrics`), read from the database per scrape. */
  constructor(
    private readonly jobId: string,
    jobFigures: () => Promise<string>,
  ) {
    this.registry = new RunRegistry(jobFigures);
    this.objects = new client.Counter({
      name: 'remora_rebalance_runner_objects_total',
      help: 'Objects this runner finished with, by outcome (state or state:reason)',
      labelNames: ['job', 'outcome'] as const,
      registers: [this.registry],
    });
    this.bytes = new client.Counter({
      name: 'remora_rebalance_runner_bytes_total',
      help: 'Bytes of the objects this runner moved (complete or tombstone owed)',
      labelNames: ['job'] as const,
      registers: [this.registry],
    });
  }

  outcome(o: Outcome, row: ObjectRow | undefined): void {
    this.objects.inc({ job: this.jobId, outcome: o.reason ? `${o.state}:${o.reason}` : o.state });
    if ((o.state === 'complete' || o.state === 'post_processing') && row)
      this.bytes.inc({ job: this.jobId }, row.bytes);
  }
}
