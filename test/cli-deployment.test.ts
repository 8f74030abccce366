import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testPgUrl, uniquePrefix, dropDatabases } from './helpers/pg.js';

function cli(stateDir: string, ...args: string[]) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', stateDir, ...args],
    {
      encoding: 'utf8',
      env: { ...process.env, REMORA_PG_URL: testPgUrl() },
      timeout: 120_000,
    },
  );
}

test('remora up --detach, workload, status, down: a deployment in the background', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-cli-'));
  const prefix = uniquePrefix();
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: prefix } }),
  );
  try {
    const up = cli(stateDir, 'up', '--detach');
    assert.equal(up.status, 0, up.stderr);
    assert.match(up.stdout, /deployment up in the background \(pid \d+\)/);
    // The state file holds the operator token: its owner alone may read it.
    assert.equal(fs.statSync(path.join(stateDir, 'deployment.json')).mode & 0o777, 0o600);
    const again = cli(stateDir, 'up');
    assert.equal(again.status, 5, 'a second deployment on the same state directory is refused');
    assert.match(again.stderr, /StaleState: a deployment \(pid \d+\) is already running/);
    const w = cli(stateDir, 'workload', '--seed', '3', '--objects', '40', '--accounts', '2');
    assert.equal(w.status, 0, w.stderr);
    const summary = JSON.parse(w.stdout) as { puts: number; failures: unknown[] };
    assert.ok(summary.puts > 20);
    assert.deepEqual(summary.failures, []);
    // remora manifest finds the node through the node directory (its heartbeat record).
    const man = cli(stateDir, 'manifest', '--node', '1.stor.dc1.remora.local');
    assert.equal(man.status, 0, man.stderr);
    assert.match(man.stdout, /stored \/poseidon\/stor\/mako\/1\.stor\.dc1\.remora\.local/);
    const unknown = cli(stateDir, 'manifest', '--node', '9.stor.dc9.remora.local');
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr, /unknown storage node 9\.stor\.dc9\.remora\.local/);
    const st = cli(stateDir, 'status');
    assert.equal(st.status, 0, st.stderr);
    assert.match(st.stdout, /user0/);
    assert.match(st.stdout, /1\.stor\.dc1\.remora\.local/);
    const down = cli(stateDir, 'down');
    assert.equal(down.status, 0, down.stderr);
    assert.match(down.stdout, /stopped/);
    assert.equal(fs.existsSync(path.join(stateDir, 'deployment.json')), false);
    const w2 = cli(stateDir, 'workload');
    assert.equal(w2.status, 5);
    assert.match(w2.stderr, /no deployment is running/);
  } finally {
    cli(stateDir, 'down');
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a wrong flag is a usage error with exit code 2', () => {
  const r = cli(os.tmpdir(), 'workload', '--objects', 'many');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /expected a non-negative integer/);
});
