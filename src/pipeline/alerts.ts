/**
 * Alerts: a log line, a metric, a row in remora_pipeline.alerts and, when configured, a JSON
 * POST to a webhook. The original had none of this for late inputs: "the most common reason
 * [the pipeline fails] is that the database dumps were not uploaded on time"
 * (MANTA-REFERENCE §5.4); manta-hk was a separate check.
 */
import type pg from 'pg';
import { insertAlert } from './runs.repository.js';
import type { PipelineMetrics } from './metrics.js';

export interface Alert {
  runId: number;
  job: string;
  partitionKey: string;
  /**
   * `deadline` (inputs or work late), `failed` (a run failed or came out invalid), `late-input`
   * (an input arrived after its partition committed: the partition is rerun).
   */
  kind: 'deadline' | 'failed' | 'late-input';
  message: string;
}

/** A webhook that does not answer within this long is given up on; alerting must not stall the tick. */
const WEBHOOK_TIMEOUT_MS = 5000;

export async function raiseAlert(
  deps: { control: pg.Pool; metrics: PipelineMetrics; log: (line: string) => void; webhook?: string },
  a: Alert,
): Promise<void> {
  deps.log(`ALERT ${a.kind} ${a.job} ${a.partitionKey} (run ${a.runId}): ${a.message}`);
  deps.metrics.alerts.inc({ job: a.job, kind: a.kind });
  await insertAlert(deps.control, a);
  if (!deps.webhook) return;
  try {
    const res = await fetch(deps.webhook, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ source: 'remora', ...a, at: new Date().toISOString() }),
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    if (!res.ok) deps.log(`alert webhook answered ${res.status}`);
  } catch (err) {
    deps.log(`alert webhook failed: ${(err as Error).message}`);
  }
}
