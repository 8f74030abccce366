/** A worker process for the executor tests: `node --import tsx pipeline-worker-child.ts`. */
import { MetadataTier } from '../../src/metadata/metadata-tier.js';
import type { RemoraConfig } from '../../src/config/config.js';
import { openRuntime } from '../../src/pipeline/runtime.js';
import type { PipelineSettings } from '../../src/pipeline/settings.js';
import { PipelineWorker } from '../../src/pipeline/worker.js';
import { servicesFor } from './pipeline.js';
import { TEST_JOBS } from './pipeline-jobs.js';

const config = JSON.parse(process.env.REMORA_CHILD_CONFIG!) as RemoraConfig;
const tier = await MetadataTier.open(config, process.env.REMORA_TEST_PG_URL!);
const logs: string[] = [];
const rt = await openRuntime(
  await servicesFor(config, tier, logs),
  TEST_JOBS,
  JSON.parse(process.env.REMORA_CHILD_SETTINGS!) as Partial<PipelineSettings>,
);
const worker = new PipelineWorker(rt);
await worker.start();
process.stdout.write(`worker ready: ${worker.name}\n`);
const stop = () => {
  void worker
    .stop()
    .then(() => tier.close())
    .then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
