/** Test helpers for the metadata tier: a fresh set of databases per test, on the run's PostgreSQL. */
import pg from 'pg';
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import { defaultConfig, type RemoraConfig } from '../../src/config/config.js';
import { MetadataTier } from '../../src/metadata/metadata-tier.js';
import type { Clock } from '../../src/core/clock.js';

let counter = 0;

export function testPgUrl(): string {
  const url = process.env.REMORA_TEST_PG_URL;
  if (!url) throw new Error('REMORA_TEST_PG_URL is not set: run tests with `npm test`');
  return url;
}

export function uniquePrefix(): string {
  return `t${process.pid}_${Date.now().toString(36)}_${counter++}`;
}

/** State directories made by testConfig, removed when the test process exits (not every test calls a cleanup). */
const stateDirs: string[] = [];
process.once('exit', () => {
  for (const d of stateDirs) fs.rmSync(d, { recursive: true, force: true });
});

export function testConfig(over: Partial<RemoraConfig> = {}): RemoraConfig {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-test-'));
  stateDirs.push(stateDir);
  const base = defaultConfig(stateDir);
  return {
    ...base,
    postgres: { ...base.postgres, url: testPgUrl(), databasePrefix: uniquePrefix() },
    ...over,
  };
}

/** Open a metadata tier on fresh databases; returns it with a cleanup that drops them. */
export async function openTestTier(
  config = testConfig(),
  clock?: Clock,
): Promise<{ tier: MetadataTier; config: RemoraConfig; cleanup: () => Promise<void> }> {
  const tier = await MetadataTier.open(config, testPgUrl(), clock ? { clock } : {});
  return {
    tier,
    config,
    cleanup: async () => {
      await tier.close();
      await dropDatabases(config.postgres.databasePrefix);
      fs.rmSync(config.stateDir, { recursive: true, force: true });
    },
  };
}

export async function dropDatabases(prefix: string): Promise<void> {
  const client = new pg.Client({ connectionString: testPgUrl() });
  await client.connect();
  try {
    const r = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datname LIKE $1',
      [`${prefix}\\_%`],
    );
    for (const { datname } of r.rows)
      await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(datname)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
