/**
 * `npm run bench`: runs every bench/*.bench.ts in turn (each exports a default async function)
 * and prints its figures. REMORA_BENCH=<name>[,<name>…] runs only those benches, by exact name
 * (the file name without `.bench.ts`; `gc` or `gc.bench` both name gc.bench.ts). Exact, not a
 * substring: `rebalance` once also started the claim bench and the 1M-object evacuation, and
 * `metering` request metering's. An unknown name is refused with the list (exit 2).
 * REMORA_BENCH_DRY=1 prints the benches it would run, and runs none.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SUFFIX = '.bench.ts';
const all = fs
  .readdirSync(here)
  .filter((f) => f.endsWith(SUFFIX))
  .map((f) => f.slice(0, -SUFFIX.length))
  .sort();
const asked = (process.env.REMORA_BENCH ?? '')
  .split(',')
  .map((n) => n.trim().replace(/\.bench(\.ts)?$/, ''))
  .filter((n) => n !== '');
const unknown = asked.filter((n) => !all.includes(n));
if (unknown.length > 0) {
  process.stderr.write(
    `bench: UsageError: REMORA_BENCH: unknown bench ${unknown.join(', ')}; one of ${all.join(', ')}\n`,
  );
  process.exit(2);
}
const chosen = asked.length > 0 ? all.filter((n) => asked.includes(n)) : all;
if (process.env.REMORA_BENCH_DRY === '1') {
  process.stdout.write(`would run: ${chosen.join(', ')}\n`);
  process.exit(0);
}
for (const name of chosen) {
  const f = `${name}${SUFFIX}`;
  process.stdout.write(`== ${f}\n`);
  const mod = (await import(pathToFileURL(path.join(here, f)).href)) as { default?: () => Promise<void> };
  if (typeof mod.default === 'function') await mod.default();
}
