/** A pipeline runtime for a CLI command that reads or acts on the pipeline's state without running tasks. */
import type { Command } from 'commander';
import type { RemoraConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import { readInternalToken, withMetadata, withObjectStore } from '../deployment/context.js';
import { withDailyPipeline } from '../jobs/catalog.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { configFrom } from './cli-support.js';

/**
 * The configured store and metadata tier, and a runtime with no worker (nothing is run) that
 * holds the internal credential when this machine has it (moves need it; reads do not).
 */
export async function withCliRuntime<T>(
  cmd: Command,
  o: { clock: Clock; log: (line: string) => void },
  fn: (rt: PipelineRuntime, config: RemoraConfig) => Promise<T>,
): Promise<T> {
  const config = configFrom(cmd);
  const token = readInternalToken(config);
  return withObjectStore(config, (store) =>
    withMetadata(config, (tier) =>
      withDailyPipeline(
        config,
        tier,
        { log: o.log, store, clock: o.clock, worker: false, ...(token ? { internalToken: token } : {}) },
        (rt) => fn(rt, config),
      ),
    ),
  );
}
