import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../src/metadata/postgres-server.js';
import { freePort } from './helpers/net.js';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('embedded PostgreSQL restarts after its owner was SIGKILLed (orphan postmaster and stale pid file)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-pg-crash-'));
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const script = `import { startEmbeddedPostgres } from ${JSON.stringify(path.resolve('src/metadata/postgres-server.ts'))};
    await startEmbeddedPostgres(${JSON.stringify(dataDir)}, ${port}); console.log('ready'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
    child.on('exit', (c) => reject(new Error(`child exited ${c}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const orphan = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  assert.ok(pidAlive(orphan), 'the orphan postgres is still running after its owner died');
  const server = await startEmbeddedPostgres(dataDir, port);
  try {
    assert.equal(pidAlive(orphan), false, 'the orphan was stopped');
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    assert.equal((await c.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one, 1);
    await c.end();
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a data directory the postgres user cannot reach is a clear error', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-pg-perm-')); // mode 0700
  try {
    await assert.rejects(
      startEmbeddedPostgres(path.join(dir, 'pg', 'data'), await freePort()),
      /cannot enter .*chmod o\+x/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a stale pid file whose process is gone is removed and the server starts', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-pg-stale-'));
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const first = await startEmbeddedPostgres(dataDir, port);
  await first.stop();
  fs.writeFileSync(path.join(dataDir, 'postmaster.pid'), `999999\n${dataDir}\n`);
  const again = await startEmbeddedPostgres(dataDir, port);
  await again.stop();
  assert.equal(fs.existsSync(path.join(dataDir, 'postmaster.pid')), false, 'clean stop leaves no pid file');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('remora up on the embedded default stops cleanly on SIGTERM', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-up-'));
  fs.chmodSync(stateDir, 0o755); // the postgres user must reach the data directory
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { port: await freePort() }, storage: { heartbeatIntervalMs: 500 } }),
  );
  const env = { ...process.env };
  delete env.REMORA_PG_URL;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', stateDir, 'up'],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString())); // its log: `deployment up` is there
  for (let i = 0; i < 600 && !out.includes('deployment up'); i++)
    await new Promise((r) => setTimeout(r, 100));
  assert.match(out, /deployment up/);
  assert.ok(fs.existsSync(path.join(stateDir, 'deployment.json')));
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  assert.equal(code, 0);
  assert.equal(fs.existsSync(path.join(stateDir, 'deployment.json')), false);
  assert.equal(
    fs.existsSync(path.join(stateDir, 'postgres', 'data', 'postmaster.pid')),
    false,
    'postgres stopped',
  );
  const status = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', stateDir, 'down'],
    { env, encoding: 'utf8' },
  );
  assert.match(status.stdout, /no deployment is running/);
  fs.rmSync(stateDir, { recursive: true, force: true });
});
