/**
 * `remora up --detach` whose start fails says why on its own output (issue 17): the child's
 * error, not `StaleState: the deployment did not come up`. A port held by another process is
 * the common case: the embedded PostgreSQL's (postgres.port) and the front door's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './helpers/net.js';
import { dropDatabases, testPgUrl, uniquePrefix } from './helpers/pg.js';

function cli(stateDir: string, env: NodeJS.ProcessEnv, ...args: string[]) {
  const clean = { ...process.env };
  delete clean.REMORA_PG_URL;
  delete clean.REMORA_CONFIG;
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', stateDir, ...args],
    {
      encoding: 'utf8',
      env: { ...clean, ...env },
      timeout: 180_000,
    },
  );
}

/** Hold a port on 127.0.0.1 for the duration of `fn`, as another program would. */
async function holdingPort<T>(fn: (port: number) => T | Promise<T>): Promise<T> {
  const port = await freePort();
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
  try {
    return await fn(port);
  } finally {
    await new Promise((resolve) => squatter.close(resolve));
  }
}

test('up --detach with the embedded PostgreSQL port taken: PortInUse naming the port and postgres.port', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-up-pg-'));
  try {
    await holdingPort((port) => {
      fs.writeFileSync(path.join(stateDir, 'config.json'), JSON.stringify({ postgres: { port } }));
      const r = cli(stateDir, {}, 'up', '--detach');
      assert.equal(r.status, 5, `${r.stdout}\n${r.stderr}`);
      assert.match(
        r.stderr,
        new RegExp(`PortInUse: port ${port} \\(embedded PostgreSQL, postgres\\.port\\) is already in use`),
      );
      assert.match(r.stderr, /remora\.log/, 'and where the log is');
      assert.doesNotMatch(r.stderr, /StaleState/);
      assert.equal(fs.existsSync(path.join(stateDir, 'deployment.json')), false);
    });
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('up --detach with the front door port taken: PortInUse naming frontdoor.port', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-up-fd-'));
  const prefix = uniquePrefix();
  try {
    await holdingPort((port) => {
      fs.writeFileSync(
        path.join(stateDir, 'config.json'),
        JSON.stringify({ postgres: { databasePrefix: prefix }, frontdoor: { port } }),
      );
      const r = cli(stateDir, { REMORA_PG_URL: testPgUrl() }, 'up', '--detach');
      assert.equal(r.status, 5, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`PortInUse: front door: port ${port} .*frontdoor\\.port`));
      assert.equal(fs.existsSync(path.join(stateDir, 'deployment.json')), false);
    });
  } finally {
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
