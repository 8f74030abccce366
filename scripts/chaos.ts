/**
 * `npm run chaos`: one seeded chaos day of the bundled deployment (docs/deployment.md "Chaos
 * day"), larger than the one in `npm test`. Prints the fault schedule and each fault as it
 * lands, then one line:
 *
 *   faults injected N, runs completed N/N, copies lost 0, records with fewer datacenters 0, referenced copies tombstoned 0
 *
 * and exits 1 when anything was lost, a run did not complete, or a fault could not be injected.
 *
 *   npm run chaos -- [--seed N] [--objects N] [--late-objects N] [--accounts N]
 *                    [--max-object-bytes N] [--bytes-per-second N] [--keep] [--quiet]
 */
import { parseArgs } from 'node:util';
import { runChaosDay, SMALL_DAY } from '../test/helpers/chaos-day.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    objects: { type: 'string', default: '400' },
    'late-objects': { type: 'string', default: '150' },
    accounts: { type: 'string', default: '6' },
    'max-object-bytes': { type: 'string', default: String(256 * 1024) },
    'bytes-per-second': { type: 'string', default: String(2_000_000) },
    keep: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    'npm run chaos -- [--seed N] [--objects N] [--late-objects N] [--accounts N] [--max-object-bytes N]\n' +
      '                 [--bytes-per-second N] [--keep] [--quiet]\n' +
      `  defaults: a random seed (printed), 400 + 150 objects, 6 accounts, 256 KiB max, 2 MB/s rebalance\n` +
      `  the npm test size: --objects ${SMALL_DAY.objects} --late-objects ${SMALL_DAY.lateObjects} ` +
      `--accounts ${SMALL_DAY.accounts} --max-object-bytes ${SMALL_DAY.maxObjectBytes} --bytes-per-second ${SMALL_DAY.rebalanceBytesPerSecond}\n`,
  );
  process.exit(0);
}

function int(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    process.stderr.write(`chaos: --${name} must be a non-negative integer, got ${v}\n`);
    process.exit(2);
  }
  return n;
}

const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int('seed', values.seed);
process.stdout.write(`chaos day, seed ${seed} (rerun it with --seed ${seed})\n`);
const r = await runChaosDay({
  seed,
  objects: int('objects', values.objects),
  lateObjects: int('late-objects', values['late-objects']),
  accounts: Math.max(1, int('accounts', values.accounts)),
  maxObjectBytes: Math.max(1, int('max-object-bytes', values['max-object-bytes'])),
  rebalanceBytesPerSecond: Math.max(1, int('bytes-per-second', values['bytes-per-second'])),
  keepState: values.keep,
  ...(values.quiet ? {} : { log: (l: string) => process.stdout.write(`${l}\n`) }),
});

const show = (title: string, items: string[]) => {
  if (items.length === 0) return;
  process.stdout.write(`${title} (${items.length}):\n`);
  for (const i of items.slice(0, 20)) process.stdout.write(`  ${i}\n`);
};
process.stdout.write('faults:\n');
for (const f of r.faults)
  process.stdout.write(
    `  ${(f.at / 1000).toFixed(1).padStart(6)} s  ${f.kind.padEnd(18)} ${f.phase.padEnd(9)} ${f.injected ? '' : '[NOT INJECTED] '}${f.target}: ${f.detail}\n`,
  );
process.stdout.write('runs:\n');
for (const x of r.runs)
  process.stdout.write(
    `  ${x.job} ${x.partition}: ${x.state}${x.job === 'gc' ? ` ${JSON.stringify(x.counters)}` : ''}${x.failedBefore.map((f) => `; before: run ${f.runId} failed${f.truthful ? ' truthfully' : ' UNTRUTHFULLY'}: ${f.error}`).join('')}\n`,
  );
process.stdout.write(
  `  rebalance ${r.rebalance.jobId}: ${r.rebalance.planned} objects, ${r.rebalance.retryRounds} retry round(s), ` +
    `${r.rebalance.interruptedRuns.length} interrupted run(s); ${r.rebalance.verdict}\n`,
);
process.stdout.write(
  `  during the moves: ${r.duringMoves.links} links to moving objects, ${r.duringMoves.overwrites} overwrites, ` +
    `${r.duringMoves.deletes} deletes (${r.duringMoves.failures.length} refused)\n`,
);
show('unexpected worker exits', r.unexpectedExits);
show('worker starts that failed (and were retried)', r.failedWorkerStarts);
show('copies the retry placed on the stale or the full node', r.rebalance.retryChoseUnfit);
show('copies lost', r.copiesLost);
show('records with fewer datacenters', r.fewerDatacenters);
show('referenced copies tombstoned', r.tombstonedReferenced);
show('objectIds whose records name different copies', r.divergentObjects);
process.stdout.write(
  `workload: morning ${r.workload.morning.puts} puts (${r.workload.morning.failures.length} failed), ` +
    `late ${r.workload.late.puts} puts (${r.workload.late.failures.length} failed requests during the faults)\n`,
);
process.stdout.write(
  `timings (s): ${Object.entries(r.timings)
    .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)}`)
    .join(', ')}; ${r.copiesChecked} copies checked byte for byte\n`,
);
if (values.keep) process.stdout.write(`state kept in ${r.stateDir}\n`);
process.stdout.write(`seed ${seed}: ${r.line}\n`);
const bad =
  r.copiesLost.length > 0 ||
  r.fewerDatacenters.length > 0 ||
  r.tombstonedReferenced.length > 0 ||
  r.runsCompleted !== r.runsTotal ||
  r.rebalance.retryChoseUnfit.length > 0 ||
  r.faults.some((f) => !f.injected) ||
  r.runs.some((x) => x.failedBefore.some((f) => !f.truthful));
process.exit(bad ? 1 : 0);
