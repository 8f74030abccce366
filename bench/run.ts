/**
 * `npm run bench`: runs every bench/*.bench.ts in turn (each exports a default async function)
 * and prints its figures. REMORA_BENCH=<name> runs only benches whose file name contains it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.env.REMORA_BENCH;
const files = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts') && (!only || f.includes(only)))
  .sort();
for (const f of files) {
  process.stdout.write(`== ${f}\n`);
  const mod = (await import(pathToFileURL(path.join(here, f)).href)) as { default?: () => Promise<void> };
  if (typeof mod.default === 'function') await mod.default();
}
