#!/usr/bin/env node
// Entry point for an installed `remora`: runs the TypeScript CLI through tsx so that
// no build step is needed on a fresh clone.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', path.join(root, 'src/main/cli.ts'), ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
