/**
 * Shared by the audit and cruft fault tests: the daily jobs with a hook run once every shard's
 * snapshot is taken (before any listing starts: writes there are "after the snapshot"), and the
 * `remora` CLI as a process against a deployment running in the test's process.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RemoraConfig } from '../../src/config/config.js';
import { defaultJobs } from '../../src/jobs/catalog.js';
import { snapshotJob } from '../../src/jobs/snapshot/snapshot.job.js';
import type { JobDefinition } from '../../src/pipeline/job.js';
import type { PipelineSettings } from '../../src/pipeline/settings.js';
import { CliProcess, type CliResult } from './pipeline-cli.js';
import { FAST } from './pipeline.js';

/**
 * FAST, but an attempt is declared lost only after 15 s without a heartbeat: on a loaded machine
 * a 1 s limit retried a listing whose first attempt was still running, and the late first
 * attempt then replaced the committed listing (a lost attempt is not stopped: the audit refuses
 * the replaced input with StaleState, as it must).
 */
export const PATIENT = { ...FAST, staleAfterMs: 15_000, heartbeatMs: 1000 };

export function jobsWithAfterSnapshots(
  shards: number,
  hook: () => Promise<void>,
): (s: PipelineSettings) => JobDefinition[] {
  // Distinct shards: a snapshot attempt that is retried must not count twice (the hook would
  // then run before the last shard's snapshot, and its writes would be in it).
  const taken = new Set<string>();
  return (s) =>
    defaultJobs(s).map((j) =>
      j.name !== 'snapshot'
        ? j
        : {
            ...snapshotJob,
            runTask: async (ctx: Parameters<typeof snapshotJob.runTask>[0]) => {
              const r = await snapshotJob.runTask(ctx);
              const before = taken.size;
              taken.add(ctx.partition.shard ?? '');
              if (taken.size === shards && before < shards) await hook();
              return r;
            },
          },
    );
}

/** `remora --state-dir <stateDir> …args` as a process; writes the config.json it needs first. */
export function cliOf(config: RemoraConfig): (...args: string[]) => Promise<CliResult> {
  fs.writeFileSync(
    path.join(config.stateDir, 'config.json'),
    JSON.stringify({
      postgres: { url: config.postgres.url, databasePrefix: config.postgres.databasePrefix },
    }),
  );
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('REMORA_') || k === 'REMORA_TEST_PG_URL'),
  );
  return (...args) => new CliProcess(['--state-dir', config.stateDir, ...args], env).exited;
}
