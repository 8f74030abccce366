/**
 * `remora gc status | plan | restore`: garbage collection as an operator sees it (docs/gc.md
 * "The operator's view"). Thin: the work is in src/jobs/gc/ (gc.status.ts, gc.dry-run.ts,
 * gc.restore.ts).
 */
import type { Command } from 'commander';
import type { RemoraConfig } from '../config/config.js';
import { clockFromEnv, type Clock } from '../core/clock.js';
import { DAY_MS, dayOf } from '../core/days.js';
import { RemoraError } from '../core/errors.js';
import { isUuid } from '../core/ids.js';
import type { RunReport } from '../core/run-report.js';
import { requireInternalToken, withMetadata } from '../deployment/context.js';
import { formatBytes } from '../deployment/summary.js';
import { planGcDay, type GcDryRun } from '../jobs/gc/gc.dry-run.js';
import type { GcBacklog } from '../jobs/gc/gc.backlog.js';
import { restoreObject, type RestoreResult } from '../jobs/gc/gc.restore.js';
import { describeInstant } from '../jobs/gc/gc.status.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { gcView } from '../deployment/views/gc.js';
import { log } from './log.js';
import { withCliRuntime } from './runtime.js';
import { NodeDirectory } from '../storage/node-directory.js';
import { StorageClient } from '../storage/storage-client.js';
import { action, configFrom, parseDay, parsePastDay, printTable, usageError } from './cli-support.js';

const out = (line = '') => process.stdout.write(`${line}\n`);
const json = (cmd: Command) => cmd.optsWithGlobals<{ json?: boolean }>().json === true;

let processClock: Clock | undefined;
/** The system clock, or REMORA_CLOCK_START/SPEED's (a testing aid, as for the pipeline commands). */
const cliClock = (): Clock => (processClock ??= clockFromEnv(process.env));

/** A pipeline runtime (no worker: nothing is run) with the configured store and, when known, the credential. */
const withRuntime = (cmd: Command, fn: (rt: PipelineRuntime, config: RemoraConfig) => Promise<void>) =>
  withCliRuntime(cmd, { log, clock: cliClock() }, fn);

const days = (ms: number) => `${+(ms / DAY_MS).toFixed(2)} days`;

function printBacklog(b: GcBacklog, now: number): void {
  const w = b.waitingForGrace;
  out(
    `  waiting for grace:        ${w.records} delete records, ${w.copies} copies, ${formatBytes(w.bytes)}; oldest ${describeInstant(w.oldestMs, now)}`,
  );
  out(
    `  not provable yet:         ${b.notProvableYet.records} delete records (newer than the earliest snapshot); oldest ${describeInstant(b.notProvableYet.oldestMs, now)}`,
  );
  const e = b.eligibleNotMoved;
  out(`  eligible, not moved:      ${e.records} delete records, ${e.copies} copies, ${formatBytes(e.bytes)}`);
  out(`  malformed:                ${b.malformed} delete records`);
}

/** `copiesTombstoned.<node>` counters → one row per node. */
function perNode(report: RunReport | undefined, copies: string, bytes: string): Record<string, unknown>[] {
  const c: Record<string, number | undefined> = report?.counters ?? {};
  return Object.keys(c)
    .filter((k) => k.startsWith(`${copies}.`))
    .map((k) => k.slice(copies.length + 1))
    .sort()
    .map((node) => ({
      node,
      copies: c[`${copies}.${node}`] ?? 0,
      bytes: formatBytes(c[`${bytes}.${node}`] ?? 0),
    }));
}

async function status(cmd: Command): Promise<void> {
  await withRuntime(cmd, async (rt) => {
    // The dashboard's read model (GET /api/gc): one composition for both.
    const view = await gcView(rt);
    if (json(cmd)) {
      out(JSON.stringify(view, null, 2));
      return;
    }
    const { now, latest, live, tombstone: tomb } = view;
    const gc = { graceMs: view.graceMs };
    const purge = { retentionDays: view.retentionDays };
    out(
      `gc status at ${new Date(now).toISOString()} (grace ${days(gc.graceMs)}, tombstone retention ${purge.retentionDays} days)`,
    );
    out();
    if (!latest) out(`as of the latest gc run: none committed in the last ${rt.settings.retentionDays} days`);
    else {
      const c: Record<string, number | undefined> = latest.report?.counters ?? {};
      const decided = latest.output.decidedAt;
      out(
        `as of the latest gc run: day ${latest.day}, run ${latest.runId} (${latest.verdict})` +
          (decided !== undefined ? `, decided at ${new Date(decided).toISOString()}` : ''),
      );
      out(
        `  scanned ${c.recordsScanned ?? 0} delete records: ${c.eligible ?? 0} eligible, ` +
          `${(c.redundantLiveReference ?? 0) + (c.redundantSuperseded ?? 0)} redundant, ${c.zeroByte ?? 0} zero-byte, ` +
          `${c.recheckCancelled ?? 0} cancelled by the re-check; ${c.copiesTombstoned ?? 0} copies ` +
          `(${formatBytes(c.bytesTombstoned ?? 0)}) moved to tombstone, ${c.deleteRecordsRemoved ?? 0} delete records removed`,
      );
      if (latest.output.backlog) printBacklog(latest.output.backlog, now);
      else out('  (this run predates backlog reporting)');
      const moved = perNode(latest.report, 'copiesTombstoned', 'bytesTombstoned');
      if (moved.length > 0) printTable(moved.map((r) => ({ '': ' ', ...r })));
    }
    out();
    out(`live (the delete logs of every index shard now; ${live.scanned} delete records):`);
    const w = live.waitingForGrace;
    out(
      `  waiting for grace:        ${w.records} delete records, ${w.copies} copies, ${formatBytes(w.bytes)}; oldest ${describeInstant(w.oldestMs, now)}`,
    );
    const e = live.eligibleNotMoved;
    out(
      `  eligible, not moved:      ${e.records} delete records (${e.objectIds} objects), ${e.copies} copies, ${formatBytes(e.bytes)}; ` +
        `oldest ${describeInstant(e.oldestMs, now)} (past grace, no live reference now: the next run moves them)`,
    );
    out(
      `  cleanup only:             ${live.cleanupOnly.records} delete records (a live reference, or no copies)`,
    );
    out(`  malformed:                ${live.malformed} delete records`);
    out();
    out(
      `tombstone per storage node (a day's directory is purged by the run of that day + ${purge.retentionDays}):`,
    );
    printTable(
      tomb.map((t) => ({
        node: t.node,
        state: t.state,
        days: t.days,
        files: t.files,
        bytes: formatBytes(t.bytes),
        oldest: t.oldestDay ?? '-',
        'next purge': t.nextPurgeDay
          ? `${t.nextPurgeDay}${t.nextPurgeDay <= dayOf(now) ? ' (due)' : ''}`
          : '-',
      })),
    );
    for (const t of tomb) if (t.detail) out(`  ${t.node}: ${t.detail}`);
  });
}

function printPlan(p: GcDryRun): void {
  const c: Record<string, number | undefined> = p.report.counters;
  out(`gc plan for ${p.day}: a dry run — nothing was moved, no delete record was removed`);
  out(
    `  decided at ${new Date(p.decidedAt).toISOString()}, grace ${days(p.options.graceMs)} (pipeline.jobs.gc.graceDays)`,
  );
  for (const s of p.snapshots) out(`  snapshot ${s.shard} at ${s.snapshotTime}`);
  if (p.earliestSnapshotMs !== undefined)
    out(`  delete records at or after ${new Date(p.earliestSnapshotMs).toISOString()} are not provable yet`);
  out(`  ${c.recordsScanned ?? 0} delete records in ${p.tasks} partition groups:`);
  printTable(
    [
      ['eligible: copies to tombstone, then the record removed', c.eligible],
      ['redundant: a live reference', c.redundantLiveReference],
      ['redundant: a later delete record', c.redundantSuperseded],
      ['zero-byte: the record removed', c.zeroByte],
      ['waiting for grace', c.waitingForGrace],
      ['not provable yet', c.notProvableYet],
      ['malformed (an event, no action)', c.malformed],
    ].map(([verdict, n]) => ({ '': ' ', verdict, records: n ?? 0 })),
  );
  out(
    `  re-check against live metadata now: ${c.recheckCancelled ?? 0} objects referenced again (their copies would stay)`,
  );
  out(
    `  would move ${c.copiesWouldTombstone ?? 0} copies (${formatBytes(c.bytesWouldTombstone ?? 0)}) to tombstone ` +
      `and remove ${c.deleteRecordsWouldRemove ?? 0} delete records:`,
  );
  const rows = perNode(p.report, 'copiesWouldTombstone', 'bytesWouldTombstone');
  if (rows.length > 0) printTable(rows.map((r) => ({ '': ' ', ...r })));
  const examples = Object.values(p.report.events).filter((e) => e.examples.length > 0);
  if (examples.length > 0) out('  examples:');
  for (const e of examples) {
    out(`    ${e.kind} (${e.severity}, ${e.count}):`);
    for (const x of e.examples) out(`      ${JSON.stringify(x)}`);
  }
  out(`  the plans: ${p.planPrefix}`);
}

function printRestore(r: RestoreResult): void {
  out(`restore ${r.objectId} into /${r.dir}/${r.objectId}:`);
  printTable(
    r.nodes.map((n) => ({ node: n.node, outcome: n.outcome, day: n.day ?? '', detail: n.detail ?? '' })),
  );
  if (r.records.length === 0) out('no live record references it (restored with --force)');
  else {
    out('live records referencing it now:');
    for (const rec of r.records)
      out(
        `  ${rec.key} on ${rec.shard}: ${rec.nodes.map((n) => `${n.node} ${n.copy}`).join(', ') || 'no copies named'}`,
      );
  }
}

export function registerGcCommands(program: Command): void {
  const gc = program
    .command('gc')
    .description(
      'garbage collection: backlog and tombstones, a dry run of a day, restoring a copy (docs/gc.md)',
    );

  gc.command('status')
    .description(
      'the backlog as of the latest gc run and live; per node bytes in tombstone and the next purge',
    )
    .action(action((_o: unknown, cmd: Command) => status(cmd)));

  gc.command('plan')
    .description("a dry run: what that day's gc would do (scan, decide, re-check), doing none of it")
    .requiredOption('--date <day>', 'pipeline day YYYY-MM-DD whose snapshots gc reads')
    .action(
      action(async (o: { date: string }, cmd: Command) => {
        const day = parsePastDay(o.date, '--date', dayOf(cliClock().now()));
        await withRuntime(cmd, async (rt) => {
          const ac = new AbortController();
          const stop = () => ac.abort();
          process.once('SIGINT', stop);
          try {
            const p = await planGcDay(rt, day, ac.signal);
            if (json(cmd)) out(JSON.stringify(p, null, 2));
            else printPlan(p);
          } finally {
            process.off('SIGINT', stop);
          }
        });
      }),
    );

  gc.command('restore <objectId>')
    .description(
      'put a tombstoned copy back on every node whose tombstone holds it; say which records reference it',
    )
    .option('--day <day>', 'restore from this tombstone day only (default: the newest that holds it)')
    .option('--force', 'restore even when no live record references the objectId')
    .option('--owner <uuid>', 'the directory (creator or owner uuid) to restore into, when no record says')
    .action(
      action(async (objectId: string, o: { day?: string; force?: boolean; owner?: string }, cmd: Command) => {
        if (!isUuid(objectId) || objectId !== objectId.toLowerCase())
          throw usageError(`<objectId>: expected a lower-case uuid, got ${JSON.stringify(objectId)}`);
        const day = o.day === undefined ? undefined : parseDay(o.day, '--day');
        if (o.owner !== undefined && (!isUuid(o.owner) || o.owner !== o.owner.toLowerCase()))
          throw usageError(`--owner: expected a lower-case uuid, got ${JSON.stringify(o.owner)}`);
        const config = configFrom(cmd);
        const storage = new StorageClient({ internalToken: requireInternalToken(config) });
        try {
          await withMetadata(config, async (tier) => {
            const nodes = await NodeDirectory.load(config.storage.nodes, tier);
            const r = await restoreObject(
              { tier, storage, nodes },
              {
                objectId,
                ...(day ? { day } : {}),
                ...(o.force ? { force: true } : {}),
                ...(o.owner ? { owner: o.owner } : {}),
              },
            );
            if (json(cmd)) out(JSON.stringify(r, null, 2));
            else printRestore(r);
            const outcomes = r.nodes.map((n) => n.outcome);
            if (outcomes.includes('restored') || outcomes.includes('exists')) return;
            const whole =
              r.records.length > 0 && r.records.every((x) => x.nodes.every((n) => n.copy === 'in place'));
            if (whole) {
              if (!json(cmd)) out('nothing to restore: every copy the live records name is in place');
              return;
            }
            if (outcomes.includes('unreachable'))
              throw new RemoraError(
                'StorageNodeUnreachable',
                `no reachable node holds ${objectId} in tombstone, and some nodes did not answer: try again when they do`,
              );
            throw new RemoraError(
              'ObjectNotFound',
              `no node holds ${objectId} in tombstone${day ? ` for ${day}` : ''} (purged after the retention, or never collected)`,
            );
          });
        } finally {
          storage.close();
        }
      }),
    );
}
