/**
 * A state directory whose config.json names the test PostgreSQL, for tests that run `remora`
 * as a process against it: the loaded config, the metadata tier, and `remora(...args)`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type RemoraConfig } from '../../src/config/config.js';
import { MetadataTier } from '../../src/metadata/metadata-tier.js';
import { dropDatabases, testConfig, testPgUrl } from './pg.js';
import { CliProcess, type CliResult } from './pipeline-cli.js';

export interface CliState {
  config: RemoraConfig;
  tier: MetadataTier;
  remora(...args: string[]): Promise<CliResult>;
  close(): Promise<void>;
}

/** The environment of a `remora` child: no REMORA_* of this process but the test database's. */
export const CLI_ENV = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('REMORA_') || k === 'REMORA_TEST_PG_URL'),
);

export async function openCliState(): Promise<CliState> {
  const base = testConfig();
  fs.writeFileSync(
    path.join(base.stateDir, 'config.json'),
    JSON.stringify({ postgres: { url: testPgUrl(), databasePrefix: base.postgres.databasePrefix } }),
  );
  const config = loadConfig({}, { stateDir: base.stateDir });
  const tier = await MetadataTier.open(config, testPgUrl());
  return {
    config,
    tier,
    remora: (...args) => new CliProcess(['--state-dir', config.stateDir, ...args], CLI_ENV).exited,
    close: async () => {
      await tier.close();
      await dropDatabases(config.postgres.databasePrefix);
      fs.rmSync(config.stateDir, { recursive: true, force: true });
    },
  };
}
