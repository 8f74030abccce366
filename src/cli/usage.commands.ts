/**
 * `remora usage show [--date D] [--days N] [--account L]`: the committed daily usage summaries
 * (docs/metering.md "Daily summary") as the dashboard's usage page reads them. Thin: the view is
 * src/deployment/views/usage.ts; `--json` prints its document, the same as `GET /api/usage`.
 */
import type { Command } from 'commander';
import { clockFromEnv } from '../core/clock.js';
import { DEFAULT_USAGE_DAYS, MAX_USAGE_DAYS, usageView, type UsageView } from '../deployment/views/usage.js';
import { USAGE_TABLE_COLUMNS, usageTableRow } from '../jobs/usage-summary/usage-summary.rules.js';
import { log } from './log.js';
import { action, parseDay, parseInteger, printJson, printTable, wantsJson } from './cli-support.js';
import { withCliRuntime } from './runtime.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

function printUsage(v: UsageView): void {
  const have = v.summaries.filter((s) => s !== null);
  out(`usage ${v.days[0]} – ${v.days.at(-1)}: ${have.length} of ${v.days.length} days have a summary`);
  const gaps = v.days.filter((_, i) => v.summaries[i] === null);
  if (gaps.length > 0 && gaps.length < v.days.length) out(`  no summary: ${gaps.join(', ')}`);
  for (const s of have)
    if (s.missing.length > 0) out(`  ${s.day} incomplete: ran without ${s.missing.join(', ')}`);
  const s = v.table.summary;
  if (v.date === null) return;
  if (!s) {
    out(`no committed usage summary for ${v.date}`);
    return;
  }
  out(
    `\nusage summary ${s.day} (${s.runId === null ? 'published file' : `run ${s.runId}, ${s.verdict}`}: ${s.path})`,
  );
  printTable(
    v.table.rows.map((r) => usageTableRow(r.account, r)),
    USAGE_TABLE_COLUMNS,
  );
}

export function registerUsageCommands(program: Command): void {
  const usage = program
    .command('usage')
    .description('the committed daily usage summaries per account (docs/metering.md "Daily summary")');
  usage
    .command('show')
    .description(
      "a day's usage summary per account (storage GB-hours, requests, bandwidth, compute GB-seconds) " +
        "and which of the days before it have one; --json: the dashboard's /api/usage document " +
        "(per-account series over the days, and the day's lines as the summary file holds them)",
    )
    .option(
      '--date <day>',
      'the day YYYY-MM-DD; the days end there (default: today, and the newest day with a summary)',
    )
    .option('--days <N>', `days ending at --date (1-${MAX_USAGE_DAYS}, default ${DEFAULT_USAGE_DAYS})`)
    .option('--account <login>', 'one account only')
    .action(
      action(async (o: { date?: string; days?: string; account?: string }, cmd: Command) => {
        const date = o.date === undefined ? undefined : parseDay(o.date, '--date');
        const days =
          o.days === undefined ? undefined : parseInteger(o.days, '--days', { min: 1, max: MAX_USAGE_DAYS });
        await withCliRuntime(cmd, { log, clock: clockFromEnv(process.env) }, async (rt) => {
          const v = await usageView(rt, {
            ...(date !== undefined ? { date } : {}),
            ...(days !== undefined ? { days } : {}),
            ...(o.account !== undefined ? { account: o.account } : {}),
          });
          if (wantsJson(cmd)) printJson(v);
          else printUsage(v);
        });
      }),
    );
}
