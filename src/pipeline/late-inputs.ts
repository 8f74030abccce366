/**
 * Late inputs: an input that arrives after its partition committed (a front door's hour of
 * audit log uploaded after that hour was metered). The original metered whatever was in the
 * hour's directory at `:19` past the hour and never looked again, so a late log was simply
 * never billed (MANTA-REFERENCE §3.6, §5.1). Here every job with an `inputsChanged` hook is
 * asked, for the committed partitions of the last LATE_INPUT_DAYS, whether its inputs changed
 * since; a change creates a rerun of that partition (trigger `late-input`; the pointer moves
 * when it commits) and raises a `late-input` alert naming what arrived — loudly, because a
 * report already delivered for that hour is about to change.
 */
import { raiseAlert } from './alerts.js';
import { dayOf, addDays } from '../core/days.js';
import { toRemoraError } from '../core/errors.js';
import { parsePartition } from './partitions.js';
import { createRun } from './runs.repository.js';
import type { PipelineRuntime } from './runtime.js';
import { jobEnabled } from './settings.js';

/** How far back committed partitions are checked (a log more than two days late is an incident, not a rerun). */
export const LATE_INPUT_DAYS = 2;
/** How often the coordinator checks (each check lists the inputs of every recent partition). */
export const LATE_INPUT_CHECK_MS = 60_000;

const SCHEMA = 'remora_pipeline';

/** Check every job with an `inputsChanged` hook; returns the reruns created. */
export async function checkLateInputs(
  rt: PipelineRuntime,
): Promise<{ job: string; partitionKey: string; runId: number }[]> {
  const created: { job: string; partitionKey: string; runId: number }[] = [];
  const from = addDays(dayOf(rt.services.clock.now()), -LATE_INPUT_DAYS);
  for (const name of rt.graph.names()) {
    const job = rt.graph.get(name);
    if (!job.inputsChanged || !jobEnabled(rt.settings, name)) continue;
    const pointers = await rt.control.query<{ partition_key: string; output: unknown }>(
      `SELECT o.partition_key, o.output FROM ${SCHEMA}.outputs o
       WHERE o.job = $1 AND o.partition_key >= $2
         AND NOT EXISTS (SELECT 1 FROM ${SCHEMA}.runs r
                         WHERE r.job = o.job AND r.partition_key = o.partition_key AND r.state IN ('waiting', 'running'))
       ORDER BY o.partition_key`,
      [name, from],
    );
    for (const p of pointers.rows) {
      const partition = parsePartition(job.partition, p.partition_key);
      let changed: string | undefined;
      try {
        changed = await job.inputsChanged({
          services: rt.services,
          partition,
          output: job.output ? job.output.parse(p.output) : p.output,
        });
      } catch (err) {
        rt.services.log(`late-input check ${name} ${p.partition_key}: ${toRemoraError(err).message}`);
        continue;
      }
      if (!changed) continue;
      const runId = await createRun(
        rt.control,
        {
          job: name,
          partitionKey: p.partition_key,
          day: partition.day,
          trigger: 'late-input',
          deadlineMs: rt.settings.jobs[name]?.deadlineMs ?? job.deadlineMs,
          now: rt.services.clock.now(),
        },
        'again',
      );
      if (runId === undefined) continue;
      created.push({ job: name, partitionKey: p.partition_key, runId });
      await raiseAlert(
        {
          control: rt.control,
          metrics: rt.metrics,
          log: (l) => rt.services.log(l),
          ...(rt.settings.alertWebhook ? { webhook: rt.settings.alertWebhook } : {}),
        },
        {
          runId,
          job: name,
          partitionKey: p.partition_key,
          kind: 'late-input',
          message: `LATE INPUT after ${p.partition_key} was committed: ${changed}; rerunning it as run ${runId} (its reports will be replaced)`,
        },
      );
    }
  }
  return created;
}
