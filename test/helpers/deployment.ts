/** A whole deployment on the test run's PostgreSQL, on fresh databases and a temp state dir. */
import { testConfig, dropDatabases } from './pg.js';
import fs from 'node:fs';
import type { RemoraConfig } from '../../src/config/config.js';
import { Deployment, type DeploymentOptions } from '../../src/deployment/deployment.js';

export async function startTestDeployment(
  over: Partial<RemoraConfig> = {},
  opts: DeploymentOptions = {},
): Promise<{ d: Deployment; cleanup: () => Promise<void> }> {
  const base = testConfig();
  const config: RemoraConfig = { ...base, storage: { ...base.storage, heartbeatIntervalMs: 500 }, ...over };
  const d = await Deployment.start(config, { writeState: false, ...opts });
  return {
    d,
    cleanup: async () => {
      await d.close();
      await dropDatabases(config.postgres.databasePrefix);
      fs.rmSync(config.stateDir, { recursive: true, force: true });
    },
  };
}
