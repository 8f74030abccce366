/**
 * One timed phase of bench/request-metering.bench.ts, in a process of its own so its peak RSS is
 * its own. `job <files…>`: what request metering's task does with an hour's log objects on the
 * local backend (scanHour over the files, then the per-owner partial file); `baseline <files…>`:
 * one Node process JSON.parse-ing every line of the same files. Prints one JSON line.
 */
import fs from 'node:fs';
import { createInterface } from 'node:readline';
import { DuckPool } from '../src/dumps/duckdb.js';
import { scanHour } from '../src/jobs/request-metering/request-metering.scan.js';

const [mode, ...files] = process.argv.slice(2);
const maxRssMB = () => process.resourceUsage().maxRSS / 1024;
const t0 = performance.now();
let lines = 0;
let owners = 0;
if (mode === 'baseline') {
  for (const f of files) {
    const rl = createInterface({ input: fs.createReadStream(f), crlfDelay: Infinity });
    for await (const line of rl) {
      JSON.parse(line);
      lines++;
    }
  }
} else {
  const duck = new DuckPool();
  const s = await scanHour(duck, files);
  lines = s.files.reduce((n, f) => n + f.jsonLines + f.otherLines, 0);
  const body = [...s.usage.keys()]
    .sort()
    .map((o) => JSON.stringify({ owner: o, in: s.usage.get(o)!.in.toString() }))
    .join('\n');
  owners = s.usage.size;
  fs.writeFileSync('/dev/null', body);
  await duck.close();
}
const seconds = (performance.now() - t0) / 1000;
// CPU of every thread of the process (DuckDB's included): steadier than wall time on a shared machine.
const { user, system } = process.cpuUsage();
const cpuSeconds = (user + system) / 1e6;
process.stdout.write(
  `${JSON.stringify({ mode, lines, owners, seconds, cpuSeconds, maxRssMB: maxRssMB() })}\n`,
);
