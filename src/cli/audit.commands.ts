/**
 * `remora audit show`: the audit of a day as an operator reads it (docs/audit.md "Operator
 * procedure"). Thin: the work is in src/jobs/audit/ (audit.show.ts) and src/jobs/cruft/.
 */
import type { Command } from 'commander';
import { clockFromEnv } from '../core/clock.js';
import { dayOf } from '../core/days.js';
import { withMetadata, withObjectStore } from '../deployment/context.js';
import { readAuditDay, readProblems } from '../jobs/audit/audit.show.js';
import { action, configFrom, parsePastDay, printTable } from './cli-support.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const json = (cmd: Command) => cmd.optsWithGlobals<{ json?: boolean }>().json === true;

async function show(o: { date: string }, cmd: Command): Promise<void> {
  const day = parsePastDay(o.date, '--date', dayOf(clockFromEnv(process.env).now()));
  const config = configFrom(cmd);
  await withObjectStore(config, (store) =>
    withMetadata(config, async (tier) => {
      const a = await readAuditDay(tier.control, day);
      if (json(cmd)) {
        // One JSON document; the problems array is streamed out element by element.
        const head = { day, runId: a.runId, verdict: a.verdict, ...a.output };
        const text = JSON.stringify(head);
        process.stdout.write(`${text.slice(0, -1)},"problemList":[`);
        let first = true;
        for await (const p of readProblems(store, a.output)) {
          process.stdout.write(`${first ? '' : ','}\n${JSON.stringify(p)}`);
          first = false;
        }
        out(']}');
        return;
      }
      const x = a.output;
      out(`audit ${day} (run ${a.runId}): ${a.verdict}`);
      for (const s of x.snapshots) out(`  snapshot ${s.shard} at ${s.snapshotTime}`);
      for (const l of x.listings) out(`  listing  ${l.node} started ${l.startedAt}`);
      out(`  ${x.recordsChecked} object records, ${x.copiesChecked} copies checked; ${x.problems} problems`);
      if (x.problems === 0) return;
      out(
        `  by kind: ${Object.entries(x.byKind)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
      );
      out(
        `  by node: ${Object.entries(x.byNode)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`,
      );
      const rows: Record<string, unknown>[] = [];
      for await (const p of readProblems(store, x))
        rows.push({ kind: p.kind, node: p.node, objectId: p.objectId, key: p.key, shard: p.shard });
      printTable(rows);
    }),
  );
}

export function registerAuditCommands(program: Command): void {
  const audit = program
    .command('audit')
    .description(
      'the daily audit: copies the metadata names that are missing or corrupt on their nodes (docs/audit.md)',
    );
  audit
    .command('show')
    .description(
      "a day's audit: what was compared (snapshots, listings), the counts, and every problem " +
        '(kind, storage node, objectId, key, shard); --json for one JSON document',
    )
    .requiredOption('--date <day>', 'pipeline day YYYY-MM-DD')
    .action(action((o: { date: string }, cmd: Command) => show(o, cmd)));
}
