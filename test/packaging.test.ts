/**
 * `remora` runs from compiled JavaScript (dist/, built by `prepare` on install), from any
 * directory: the installed entry point must not depend on tsx or on the current directory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

test('bin/remora.js runs the compiled CLI from another directory', () => {
  assert.ok(
    fs.existsSync(path.join(root, 'dist', 'main', 'cli.js')),
    'dist/ is missing: `npm ci` builds it (prepare), or run `npm run build`',
  );
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bin-'));
  try {
    const r = spawnSync(process.execPath, [path.join(root, 'bin', 'remora.js'), '--help'], {
      cwd,
      encoding: 'utf8',
      // No tsx loader inherited from the test runner.
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: remora/);
    assert.match(r.stdout, /pipeline/);
    const bad = spawnSync(process.execPath, [path.join(root, 'bin', 'remora.js'), 'no-such-command'], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /unknown command/);
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});
