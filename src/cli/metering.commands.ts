/**
 * `remora compare <job> --date D [--hour H] --against <file-or-path>`: Remora's operator report
 * for a day or hour beside the original system's (RFD 16's rollout: run both, compare, then
 * switch). Prints every difference per account and field; exit 0 only when they agree, 1
 * (ReportsDiffer) when they do not. Thin: the comparison is src/jobs/metering-kit/compare.ts.
 *
 * Remora's file is read where Remora published it: under `pipeline.outputPrefix` when set
 * (side by side, src/core/published-path.ts). Then `--against` may be left out: it is the
 * original's path of the same report, which Remora never writes in that mode.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { RemoraError } from '../core/errors.js';
import { publishedPath } from '../core/published-path.js';
import { withObjectStore } from '../deployment/context.js';
import { compareReports } from '../jobs/metering-kit/compare.js';
import { operatorReportPath as computeReport } from '../jobs/compute-metering/compute-metering.rules.js';
import { operatorReportPath as requestReport } from '../jobs/request-metering/request-metering.rules.js';
import { operatorReportPath as storageReport } from '../jobs/storage-metering/storage-metering.rules.js';
import { operatorSummaryPath as summaryReport } from '../jobs/usage-summary/usage-summary.rules.js';
import { readObjectText, type ObjectStore } from '../objectstore/object-store.js';
import { action, configFrom, parseDay, parseInteger, printTable, usageError } from './cli-support.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

/** The reports `compare` knows: the original's path of the operator file for a day (and hour). */
const REPORTS: Record<string, { hourly: boolean; path: (day: string, hour?: number) => string }> = {
  'request-metering': {
    hourly: true,
    path: (day, hour) => requestReport(`${day}T${String(hour).padStart(2, '0')}`),
  },
  'compute-metering': { hourly: true, path: (day, hour) => computeReport(day, hour ?? 0) },
  'storage-metering': { hourly: false, path: (day) => storageReport(day) },
  'usage-summary': { hourly: false, path: (day) => summaryReport(day) },
};

async function readAgainst(store: ObjectStore, against: string): Promise<string> {
  if (fs.existsSync(against)) return fs.readFileSync(against, 'utf8');
  if (!against.startsWith('/'))
    throw usageError(`--against ${against}: no such file (or give an object path starting with /)`);
  if (!(await store.head(against)))
    throw new RemoraError('ObjectNotFound', `--against ${against}: no such file or object`);
  return readObjectText(store, against);
}

export function registerMeteringCommands(program: Command): void {
  program
    .command('compare <job>')
    .description(
      `compare Remora's report with the original system's file of the same shape, per account and field (${Object.keys(REPORTS).join(', ')}); exit 0 only when they agree`,
    )
    .requiredOption('--date <day>', 'the day YYYY-MM-DD')
    .option('--hour <H>', 'the hour 0-23 (hourly reports)')
    .option(
      '--against <file-or-path>',
      "the original's report: a local file, or an object path (default with pipeline.outputPrefix: the original's path of the same report)",
    )
    .action(
      action(async (job: string, o: { date: string; hour?: string; against?: string }, cmd: Command) => {
        const report = REPORTS[job];
        if (!report)
          throw usageError(
            `<job>: ${job} has no report to compare (known: ${Object.keys(REPORTS).join(', ')})`,
          );
        const day = parseDay(o.date, '--date');
        if (report.hourly && o.hour === undefined) throw usageError(`${job} is hourly: give --hour 0-23`);
        if (!report.hourly && o.hour !== undefined)
          throw usageError(`${job} is daily: --hour does not apply`);
        const hour = o.hour === undefined ? undefined : parseInteger(o.hour, '--hour', { min: 0, max: 23 });
        const config = configFrom(cmd);
        const prefix = config.pipeline?.outputPrefix;
        const ours = publishedPath(prefix, report.path(day, hour));
        const against = o.against ?? (prefix === undefined ? undefined : report.path(day, hour));
        if (against === undefined)
          throw usageError(
            "give --against <file-or-path>, the original's report (it may be left out only in side-by-side mode, with pipeline.outputPrefix set)",
          );
        await withObjectStore(config, async (store) => {
          if (!(await store.head(ours)))
            throw new RemoraError(
              'ObjectNotFound',
              `Remora has no ${job} report at ${ours}: run it first (remora rerun ${job} --date ${day})`,
            );
          const diffs = compareReports(await readObjectText(store, ours), await readAgainst(store, against));
          if (diffs.length === 0) {
            out(`${job} ${ours} agrees with ${against}`);
            return;
          }
          printTable(
            diffs.map((d) => ({ account: d.owner, field: d.field, remora: d.ours, original: d.theirs })),
          );
          throw new RemoraError(
            'ReportsDiffer',
            `${diffs.length} difference(s) between ${ours} and ${against} (${new Set(diffs.map((d) => d.owner)).size} account(s))`,
          );
        });
      }),
    );
}
