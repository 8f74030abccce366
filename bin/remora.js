#!/usr/bin/env node
// Entry point of an installed `remora`: the compiled CLI in dist/ (built by `npm run build`,
// which `prepare` runs on `npm ci`/`npm install` in a checkout, and which `npm pack` ships).
// It runs from any directory; nothing is compiled at run time.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/main/cli.js', import.meta.url);
if (!fs.existsSync(fileURLToPath(cli))) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`remora: ${fileURLToPath(cli)} is missing: run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
await import(cli.href);
