/**
 * `remora up` starts the dashboard beside the deployment and prints its URL with the others;
 * `status` (and `status --json`) names it; the nodes page there shows the live heartbeats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/cli.js';
import { testPgUrl, uniquePrefix, dropDatabases } from './helpers/pg.js';
import type { NodesView } from '../src/deployment/views/nodes.js';

test('up --detach prints the dashboard URL; status and status --json name it; its nodes page shows the heartbeats', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-dash-up-'));
  const prefix = uniquePrefix();
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: prefix } }),
  );
  const env = { REMORA_PG_URL: testPgUrl() };
  try {
    const up = await runCli(stateDir, ['up', '--detach'], { env, timeoutMs: 120_000 });
    assert.equal(up.status, 0, up.stderr);
    const m = /dashboard (http:\/\/127\.0\.0\.1:\d+\/)/.exec(up.stdout);
    assert.ok(m, up.stdout);
    const url = m[1]!;
    const st = await runCli(stateDir, ['status'], { env });
    assert.equal(st.status, 0, st.stderr);
    assert.ok(st.stdout.includes(`dashboard ${url}`), st.stdout);
    const sj = await runCli(stateDir, ['--json', 'status'], { env });
    assert.equal(sj.status, 0, sj.stderr);
    const s = JSON.parse(sj.stdout) as {
      deployment: { services: Record<string, string>; frontdoorUrl: string };
      accounts: { login: string }[];
      nodes: unknown[];
    };
    assert.equal(s.deployment.services.dashboard, url);
    assert.ok(
      !sj.stdout.includes(fs.readFileSync(path.join(stateDir, 'operator-token'), 'utf8').trim()),
      'no token in --json',
    );
    assert.ok(s.accounts.some((a) => a.login === 'poseidon'));

    const r = await fetch(`${url}api/nodes`);
    assert.equal(r.status, 200);
    const nodes = (await r.json()) as NodesView;
    const all = nodes.datacenters.flatMap((d) => d.nodes);
    assert.equal(all.length, 6);
    assert.ok(
      all.every((n) => n.writesEnabled && n.heartbeatAgeMs !== null && n.percentUsed !== null),
      JSON.stringify(all),
    );
    assert.ok(
      all.every((n) => n.tombstone.state === 'ok'),
      'the dashboard of `up` has the internal credential',
    );
    const html = await (await fetch(`${url}nodes`)).text();
    assert.match(html, /Datacenter dc1/);
  } finally {
    await runCli(stateDir, ['down'], { env });
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
