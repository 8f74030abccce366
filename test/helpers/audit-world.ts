/**
 * Shared by the audit and cruft fault tests: the daily jobs with a hook run once every shard's
 * snapshot is committed and before any listing starts (writes there are "after the snapshot"),
 * and the `remora` CLI as a process against a deployment running in the test's process.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RemoraConfig } from '../../src/config/config.js';
import { defaultJobs } from '../../src/jobs/catalog.js';
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

/**
 * The daily jobs, with `hook` run once, at the start of the first `manifests` task; every
 * `manifests` task (each node's listing, and any retried attempt) waits for it before listing.
 * `manifests` runs only after every shard's `snapshot` run has succeeded (its upstream), so the
 * hook's writes are after every snapshot and before every listing.
 *
 * (It used to run inside the last snapshot task: a retried snapshot attempt then returned at once
 * while the first attempt was still in the hook, so the late writes raced the listings and the
 * audit — the intermittent failure of audit-faults.)
 */
export function jobsWithHookBeforeListings(
  hook: () => Promise<void>,
): (s: PipelineSettings) => JobDefinition[] {
  let ran: Promise<void> | undefined;
  return (s) =>
    defaultJobs(s).map((j) =>
      j.name !== 'manifests'
        ? j
        : {
            ...j,
            runTask: async (ctx: Parameters<typeof j.runTask>[0]) => {
              await (ran ??= hook());
              return j.runTask(ctx);
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
