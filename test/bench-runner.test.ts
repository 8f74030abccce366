/**
 * `npm run bench`'s runner as a process: REMORA_BENCH names benches exactly (a substring once
 * started three rebalance benches, one of them a 1M-object evacuation), with or without the
 * `.bench` suffix, comma-separated; an unknown name is a UsageError with the list, exit 2.
 * REMORA_BENCH_DRY=1 so that nothing is measured here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(only: string, dry = true) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts'], {
    cwd: ROOT,
    env: { ...process.env, REMORA_BENCH: only, REMORA_BENCH_DRY: dry ? '1' : '' },
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('bench runner: exact names, suffix optional, a list; an unknown name refused with the list', () => {
  const one = run('rebalance');
  assert.equal(one.code, 0, one.err);
  assert.equal(one.out.trim(), 'would run: rebalance');
  const two = run('gc.bench, metering');
  assert.equal(two.code, 0, two.err);
  assert.equal(two.out.trim(), 'would run: gc, metering');
  const every = run('');
  assert.equal(every.code, 0, every.err);
  assert.match(every.out, /would run: .*rebalance, rebalance-claim, rebalance-evacuate/);
  const bad = run('rebalance,nope', false);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /UsageError: REMORA_BENCH: unknown bench nope; one of .*rebalance-claim/);
  assert.equal(bad.out, '', 'nothing ran');
});
