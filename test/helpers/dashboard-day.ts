/**
 * A day of real pipeline runs for the dashboard's tests (test/dashboard.test.ts and the browser
 * tests in test-browser/): snapshot → unpack → metering, gc and purge on three shards, where one
 * shard's live table holds a malformed row (its unpack is `degraded`) and another shard's stored
 * dump is garbage (its unpack is `invalid`, so storage-metering and gc are `blocked`).
 *
 * The day's usage summary tolerates a missing input (`inputs.partialAfterDeadline`): it would wait
 * for the blocked storage metering until its deadline (30 h after the backfill), so `pipeline run`
 * would spend its whole timeout waiting. Here its deadline is 1 ms: it runs at once on what
 * committed and comes out `degraded`, naming storage metering as missing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { backupPath } from '../../src/dumps/layout.js';
import type { RunRow } from '../../src/pipeline/runs.repository.js';
import { openCliFixture, storeDumps, type CliFixture, type CliProcess } from './pipeline-cli.js';

export const DASHBOARD_DAY = '2024-04-01';
/** The dashboards' clock: noon of that day, so "today" is that day. */
export const DASHBOARD_CLOCK = { REMORA_CLOCK_START: `${DASHBOARD_DAY}T12:00:00Z` };

export async function openDashboardDay(): Promise<{ f: CliFixture; runs: RunRow[] }> {
  const f = await openCliFixture({ pipeline: { jobs: { 'usage-summary': { deadlineMs: 1 } } } });
  try {
    const [s1, s2] = f.tier.indexShards;
    await s1!.pool.query(
      `INSERT INTO manta (_key, _value, _etag, _mtime, _vnode, objectid, owner, type, name, dirname)
       VALUES ('/bad/stor/x', '{not json', 'e', 1, 0, 'bad-object', 'bad', 'object', 'x', '/bad/stor')`,
    );
    await storeDumps(f.tier, f.store, [DASHBOARD_DAY]);
    const garbage = path.join(
      f.stateDir,
      'objects',
      backupPath(s2!.name, new Date(`${DASHBOARD_DAY}T01:00:00Z`)),
    );
    assert.ok(fs.existsSync(garbage), garbage);
    fs.writeFileSync(garbage, 'this is not a gzip file');
    const r = await f.run(['pipeline', 'run', '--date', DASHBOARD_DAY, '--timeout', '120']);
    assert.equal(r.code, 1, `a day with an invalid run exits 1\n${r.stderr}`);
    return { f, runs: await f.runs(DASHBOARD_DAY) };
  } catch (err) {
    await f.close();
    throw err;
  }
}

/** `remora dashboard --port 0 …args` on the fixture, with the day's clock; resolves with its URL. */
export async function startDashboard(
  f: CliFixture,
  args: string[] = [],
): Promise<{ p: CliProcess; url: string }> {
  const p = f.start(['dashboard', '--port', '0', ...args], DASHBOARD_CLOCK);
  const m = await p.until(
    'dashboard URL',
    () => /dashboard (http:\/\/\S+)/.exec(p.stdout) ?? undefined,
    60_000,
  );
  return { p, url: m[1]! };
}
