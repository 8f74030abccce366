/**
 * `remora audit show` and `remora cruft plan | run`: the audit of a day and the cruft of a day
 * as an operator reads and runs them (docs/audit.md "Operator procedure"). Thin: the work is in
 * src/jobs/audit/ (audit.show.ts) and src/jobs/cruft/ (cruft.service.ts).
 */
import type { Command } from 'commander';
import { clockFromEnv } from '../core/clock.js';
import { dayOf } from '../core/days.js';
import { withMetadata, withObjectStore } from '../deployment/context.js';
import { formatBytes } from '../deployment/summary.js';
import { cruftDay, type CruftDay } from '../jobs/cruft/cruft.service.js';
import { latestAuditDay, readAuditDay, readProblems } from '../jobs/audit/audit.show.js';
import { repairDay, type RepairDay } from '../jobs/audit/audit.repair.job.js';
import { action, configFrom, parsePastDay, printTable } from './cli-support.js';
import { withCliRuntime } from './runtime.js';

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

function printCruft(p: CruftDay): void {
  const c: Record<string, number | undefined> = p.report.counters;
  out(
    `cruft ${p.dryRun ? 'plan' : 'run'} for ${p.day}${p.dryRun ? ': nothing was moved' : ''}` +
      (p.cutoffSeconds !== undefined
        ? `; files modified at or before ${new Date(p.cutoffSeconds * 1000).toISOString()}`
        : '') +
      ` (earliest snapshot − ${p.options.marginMs / 86_400_000} days, pipeline.jobs.cruft.marginDays)`,
  );
  out(
    `  ${c.recordsScanned ?? 0} files listed, ${c.filesOldEnough ?? 0} old enough, ${c.candidates ?? 0} referenced by no ` +
      `record of the snapshots; ${c.refusedReferencedNow ?? 0} refused by the live re-check; ${c.cruftFiles ?? 0} cruft ` +
      `(${formatBytes(c.cruftBytes ?? 0)})` +
      (p.dryRun
        ? ''
        : `; ${c.copiesTombstoned ?? 0} moved to tombstone, ${c.copiesAlreadyGone ?? 0} already gone`),
  );
  const nodes = Object.keys(c)
    .filter((k) => k.startsWith('cruftFiles.'))
    .map((k) => k.slice('cruftFiles.'.length))
    .sort();
  if (nodes.length > 0)
    printTable(
      nodes.map((n) => ({
        '': ' ',
        node: n,
        files: c[`cruftFiles.${n}`] ?? 0,
        bytes: formatBytes(c[`cruftBytes.${n}`] ?? 0),
        ...(p.dryRun ? {} : { moved: c[`copiesTombstoned.${n}`] ?? 0 }),
      })),
    );
  for (const e of Object.values(p.report.events).filter((x) => x.examples.length > 0)) {
    out(`  ${e.kind} (${e.severity}, ${e.count}):`);
    for (const x of e.examples) out(`    ${JSON.stringify(x)}`);
  }
  printAccounts(p);
  out(`  candidates: ${p.planPrefix}`);
}

/** Every file of each node's listing in one class (cruft.rules.ts "accounted"; docs/audit.md "Cruft"). */
function printAccounts(p: CruftDay): void {
  if (p.nodes.length === 0) return;
  const fb = (c: { files: number; bytes: number }) => `${c.files} (${formatBytes(c.bytes)})`;
  const lines = new Map(p.listings.map((l) => [l.node, l]));
  out('  every listed file, by class (live + gc-pending + too-new + cruft = listed):');
  printTable(
    p.nodes.map((a) => ({
      '': ' ',
      node: a.node,
      listed: fb(a.listed),
      live: fb(a.live),
      'gc-pending': fb(a.gcPending),
      'too-new': fb(a.tooNew),
      cruft: fb(a.cruft),
      'not judged': Math.max(0, (lines.get(a.node)?.lines ?? 0) - (lines.get(a.node)?.files ?? 0)),
    })),
  );
  const grace = `${p.options.gcGraceMs / 86_400_000} days, pipeline.jobs.gc.graceDays`;
  for (const a of p.nodes) {
    const g = a.gcPending;
    if (g.files > 0)
      out(
        `  ${a.node}: ${g.files} gc-pending file(s) only delete records name are GC's (never cruft's): ` +
          (!p.options.gcEnabled
            ? 'but gc is disabled here (pipeline.jobs.gc.enabled): nothing takes them until it is enabled'
            : g.gcAllFrom !== undefined
              ? `past gc's grace (${grace}) from ${g.gcFrom} (all of them from ${g.gcAllFrom})`
              : `after gc's grace (${grace})`) +
          (g.notNamedHere > 0
            ? `; ${g.notNamedHere} of them no readable delete record lists on this node: gc does not move those, cruft can once gc removed the records`
            : ''),
      );
    if (a.live.notNamedHere > 0)
      out(
        `  ${a.node}: ${a.live.notNamedHere} live file(s) no live record lists on this node (an old copy a rebalance still owes a tombstone?: \`remora rebalance status\`, \`retry\`)`,
      );
  }
  out(
    '  not judged: listing lines that are not copies (tombstone, temp directories, other owners; docs/audit.md "Manifests")',
  );
}

async function cruft(o: { date: string }, cmd: Command, dryRun: boolean): Promise<void> {
  const clock = clockFromEnv(process.env);
  const day = parsePastDay(o.date, '--date', dayOf(clock.now()));
  await withCliRuntime(cmd, { log: () => {}, clock }, async (rt) => {
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    try {
      const p = await cruftDay(rt, day, { dryRun, signal: ac.signal });
      if (json(cmd)) out(JSON.stringify(p, null, 2));
      else printCruft(p);
    } finally {
      process.off('SIGINT', stop);
    }
  });
}

function printRepair(p: RepairDay): void {
  const x = p.output;
  const c: Record<string, number | undefined> = p.report.counters;
  out(
    `repair ${p.day} (audit run ${p.auditRunId})${p.dryRun ? ': dry run, nothing was changed' : ''}: ` +
      `${x.problems} problems, ${c.copiesWithProblems ?? 0} copies`,
  );
  out(
    `  ${x.stale} stale, ${x.presentAfterAll} present after all, ` +
      (p.dryRun ? `${c.copiesWouldRepair ?? 0} would be repaired` : `${x.repaired} repaired`) +
      `, ${c.copiesFoundBad ?? 0} other bad copies found, ${x.lost} objects lost, ${x.left} copies left for the next run` +
      (p.dryRun ? '' : `; ${c.copiesQuarantined ?? 0} corrupt copies moved to quarantine`),
  );
  for (const l of x.lostObjects)
    out(
      `  LOST ${l.objectId}: keys ${l.keys.map((k) => `${k.key} (${k.shard})`).join(', ')}; ` +
        `copies ${l.nodes.map((n) => `${n.node} ${n.state}`).join(', ')}`,
    );
  for (const e of Object.values(p.report.events).filter(
    (e) => e.severity !== 'info' && e.kind !== 'lost-object',
  )) {
    out(`  ${e.kind} (${e.severity}, ${e.count}):`);
    for (const ex of e.examples) out(`    ${JSON.stringify(ex)}`);
  }
  if (x.lostFiles.length > 0) out(`  lost objects: ${x.lostFiles.join(', ')}`);
}

async function repair(o: { date?: string; dryRun?: boolean }, cmd: Command): Promise<void> {
  const clock = clockFromEnv(process.env);
  const given = o.date === undefined ? undefined : parsePastDay(o.date, '--date', dayOf(clock.now()));
  await withCliRuntime(cmd, { log: () => {}, clock }, async (rt) => {
    const day = given ?? (await latestAuditDay(rt.control));
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    try {
      const p = await repairDay(rt, day, { dryRun: o.dryRun === true, signal: ac.signal });
      if (json(cmd)) out(JSON.stringify(p, null, 2));
      else printRepair(p);
      // Lost objects, or copies left unrepaired: the operator has work to do.
      if (p.output.lost > 0 || p.output.left > 0) process.exitCode = 1;
    } finally {
      process.off('SIGINT', stop);
    }
  });
}

export function registerAuditCommands(program: Command): void {
  const c = program
    .command('cruft')
    .description(
      'files on the storage nodes that no record references (older than the earliest snapshot minus a margin), ' +
        're-checked against live metadata, moved to tombstone (docs/audit.md "Cruft")',
    );
  c.command('plan')
    .description(
      "what cruft would move for a day's snapshots and listings: the live re-check runs, nothing moves",
    )
    .requiredOption('--date <day>', 'pipeline day YYYY-MM-DD whose unpacks and manifests cruft reads')
    .action(action((o: { date: string }, cmd: Command) => cruft(o, cmd, true)));
  c.command('run')
    .description(
      'find cruft as plan does, then move every confirmed file to tombstone on its node (restorable: remora gc restore)',
    )
    .requiredOption('--date <day>', 'pipeline day YYYY-MM-DD whose unpacks and manifests cruft reads')
    .action(action((o: { date: string }, cmd: Command) => cruft(o, cmd, false)));

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
  audit
    .command('repair')
    .description(
      "heal the problems of a day's audit: re-read live records, ask the nodes (HEAD / MD5), copy a good " +
        'copy to a node that keeps the datacenters, update every record, move corrupt copies to ' +
        '/quarantine/<day>/ on their node; exit 1 when an object is lost or a copy was left for the next run',
    )
    .option('--date <day>', 'pipeline day YYYY-MM-DD whose committed audit to repair (default: the latest)')
    .option('--dry-run', 'ask the nodes and choose destinations, change nothing')
    .action(action((o: { date?: string; dryRun?: boolean }, cmd: Command) => repair(o, cmd)));
}
