/**
 * The log of a server as a process: `remora up` (front door, storage nodes, dashboard) writes
 * every line through the log on stderr — with REMORA_LOG_FORMAT=json one JSON object per line,
 * announcements with their fields (the dashboard's URL, the front door's) — and nothing on stdout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliProcess } from './helpers/pipeline-cli.js';
import { dropDatabases, testPgUrl, uniquePrefix } from './helpers/pg.js';

test('remora up: JSON log lines on stderr with REMORA_LOG_FORMAT=json, from start to stop; stdout empty', async () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-up-log-'));
  const prefix = uniquePrefix();
  fs.writeFileSync(
    path.join(stateDir, 'config.json'),
    JSON.stringify({ postgres: { databasePrefix: prefix } }),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, REMORA_PG_URL: testPgUrl(), REMORA_LOG_FORMAT: 'json' };
  delete env.REMORA_CONFIG;
  const up = new CliProcess(['--state-dir', stateDir, 'up', '--dashboard-port', '0'], env);
  try {
    await up.waitForLog(/"msg":"deployment up/, 90_000);
    const r = await up.stop('SIGTERM', 60_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '', 'a server says everything in its log');
    const lines = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const l of lines) {
      assert.equal(l.level, 'info');
      assert.equal(l.pid, up.child.pid);
      assert.ok(!Number.isNaN(Date.parse(String(l.time))), JSON.stringify(l));
    }
    const msgs = lines.map((l) => String(l.msg));
    const dash = lines.find((l) => l.service === 'dashboard');
    assert.match(String(dash?.url), /^http:\/\/127\.0\.0\.1:\d+\/$/, msgs.join('\n'));
    const upLine = lines.find((l) => String(l.msg).startsWith('deployment up'));
    assert.match(String(upLine?.frontdoorUrl), /^http:\/\//);
    assert.deepEqual(msgs.slice(-2), ['stopping…', 'stopped']);
    assert.ok(lines.length > 4, 'the deployment’s own lines (nodes, front door) are in it too');
  } finally {
    if (up.running) await up.stop('SIGKILL');
    await dropDatabases(prefix);
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
