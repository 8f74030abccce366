/**
 * The quick start's main job: a whole deployment on the embedded default, a workload
 * through the front door, then the results. Runs in a state directory of its own
 * (`<stateDir>/demo`), wiped first, so every run starts from nothing and shows the same thing.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RemoraConfig } from '../config/config.js';
import { Deployment } from './deployment.js';
import { runWorkload, workloadProgressLog } from '../workload/driver.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../workload/generator.js';
import { formatBytes, summarizeAccounts, summarizeNodes } from './summary.js';
import { withDailyPipeline } from '../jobs/catalog.js';
import { driveDays, scheduleDay } from '../pipeline/operations.js';
import { DAY_MS, dayOf, dayStartMs } from '../core/days.js';
import { ScaledClock, systemClock } from '../core/clock.js';
import { FrontDoorObjectStore } from '../objectstore/frontdoor-store.js';
import type { Coordinator } from '../pipeline/coordinator.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import type { RunRow } from '../pipeline/runs.repository.js';
import { hourKeyOf } from '../frontdoor/audit-log.js';
import { printRequestTable, printSummaryTable, printUsageTable } from './usage-table.js';
import { runComputeWorkload } from '../workload/compute-meter.js';

export interface DemoOptions {
  spec?: Partial<WorkloadSpec>;
  out?: (line: string) => void;
  /** Steps run after the workload with the deployment up (the daily pipeline hooks in here). */
  after?: (d: Deployment, out: (line: string) => void) => Promise<void>;
  /** The command's log (stderr): the workload's progress lines go there, not into the demo's story. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export function demoConfig(config: RemoraConfig): RemoraConfig {
  return {
    ...config,
    stateDir: path.join(config.stateDir, 'demo'),
    postgres: { ...config.postgres, port: config.postgres.port + 1 },
  };
}

export async function runDemo(config: RemoraConfig, opts: DemoOptions = {}): Promise<void> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const cfg = demoConfig(config);
  fs.rmSync(cfg.stateDir, { recursive: true, force: true });
  out(`== deployment (state: ${cfg.stateDir})`);
  const d = await Deployment.start(cfg, { log: (l) => out(`   ${l}`) });
  try {
    const spec = { ...DEFAULT_SPEC, ...opts.spec };
    out(`== workload: seed ${spec.seed}, ${spec.accounts} accounts, ${spec.objects} object operations`);
    const w = await runWorkload(
      d.tier,
      d.frontdoorUrl,
      spec,
      opts.log ? { onProgress: workloadProgressLog(opts.log, systemClock) } : {},
    );
    out(
      `   ${w.puts} puts (${w.zeroByte} zero-byte), ${w.overwrites} overwrites, ${w.links} snaplinks, ` +
        `${w.deletes} deletes, ${w.directories} directories, ${formatBytes(w.bytes)} written; ${w.failures.length} failures`,
    );
    for (const f of w.failures.slice(0, 5)) out(`   failure: ${f.op} ${f.path}: ${f.error}`);
    out('== what is stored where');
    out('   account        dirs  objects  logical bytes');
    for (const a of await summarizeAccounts(d.tier)) {
      out(
        `   ${a.login.padEnd(13)} ${String(a.directories).padStart(5)} ${String(a.objects).padStart(8)}  ${formatBytes(a.logicalBytes).padStart(12)}`,
      );
    }
    out('   storage node              dc    copies         bytes');
    for (const n of await summarizeNodes(d.tier)) {
      out(
        `   ${n.node.padEnd(25)} ${n.datacenter.padEnd(5)} ${String(n.copies).padStart(6)}  ${formatBytes(n.bytes).padStart(12)}`,
      );
    }
    await runDailyPipeline(cfg, d, out, spec.seed);
    if (opts.after) await opts.after(d, out);
  } finally {
    await d.close();
  }
}

/** The daily pipeline for today, in this process, on the demo's deployment; ends with the usage table. */
async function runDailyPipeline(
  cfg: RemoraConfig,
  d: Deployment,
  out: (line: string) => void,
  seed: number,
): Promise<void> {
  const day = dayOf(Date.now());
  out(
    `== daily pipeline for ${day}: snapshot → unpack → storage metering → delivery, gc; manifests → audit;`,
  );
  out('   hourly: request metering and access logs from the front door audit log, compute metering;');
  out('   after the day: the daily usage summary');
  out("   (gc with a grace period of 0 days, so this workload's overwrites and deletes are collected today;");
  out('    the default is 2 days: pipeline.jobs.gc.graceDays)');
  const settings = { jobs: { gc: { enabled: true, graceDays: 0 } } };
  // The workload's hour is not over, and its requests are metered once it is: the demo runs
  // the pipeline on a clock moved to just after that hour (as if it had waited) and publishes
  // the hour's audit log as the front door does when an hour ends. Not across midnight: the
  // day's snapshot must stay "today".
  const hour = hourKeyOf(new Date());
  const hourEnd = Date.parse(`${hour}:00:00Z`) + 3_600_000;
  const shift = dayOf(hourEnd) === day;
  if (shift) await d.publishLogs(new Date(hourEnd + 1000));
  else
    out(
      `   (the workload's hour ${hour} ends at midnight: its requests are metered after it, not in this demo)`,
    );
  // Accounts' reports go into their namespaces through the front door (each reads its own with
  // its token); the pipeline's own files stay in the local store.
  const operator = d.client();
  await withDailyPipeline(
    cfg,
    d.tier,
    {
      log: () => {},
      settings,
      reportsStore: new FrontDoorObjectStore(operator),
      internalToken: d.internalToken,
      ...(shift ? { clock: new ScaledClock(hourEnd + 1000) } : {}),
    },
    async (rt, c) => {
      // The bundled deployment has no compute service: SYNTHETIC marlin-agent meter records
      // for the workload's hour (`remora workload --compute`), so compute metering has input.
      const compute = await runComputeWorkload(rt.services.tier, rt.services.store, {
        seed,
        from: Date.parse(`${hour}:00:00Z`),
        hours: 1,
        jobs: 4,
        nodes: 2,
      });
      out(
        `   compute: ${compute.logs.length} SYNTHETIC marlin-agent logs for ${hour} (the bundled deployment has no compute service)`,
      );
      await scheduleDay(rt, day, 'demo');
      const runs = await driveDays(rt, c, [day], { timeoutMs: PIPELINE_TIMEOUT_MS });
      const hourly = runs.filter((r) => r.partitionKey.length === 13);
      for (const r of inRunOrder(
        runs.filter((x) => x.partitionKey.length !== 13 || x.partitionKey === hour),
      )) {
        out(`   ${r.job.padEnd(18)} ${r.partitionKey.padEnd(34)} ${r.state.padEnd(10)} ${r.verdict ?? ''}`);
      }
      const done = hourly.filter((r) => r.state === 'succeeded').length;
      out(`   hourly runs: ${done} done (the hours not over yet wait for their end)`);
      const gc = runs.find((r) => r.job === 'gc' && r.state === 'succeeded');
      if (gc?.report) {
        const c = gc.report.counters;
        out(
          `   gc: ${c.recordsScanned} delete records; ${c.eligible ?? 0} eligible, ${(c.redundantLiveReference ?? 0) + (c.redundantSuperseded ?? 0)} redundant, ` +
            `${c.zeroByte ?? 0} zero-byte; ${c.copiesTombstoned ?? 0} copies (${formatBytes(c.bytesTombstoned ?? 0)}) moved to tombstone, ` +
            `${c.deleteRecordsRemoved ?? 0} delete records removed, ${c.recheckCancelled ?? 0} cancelled by the live re-check`,
        );
      }
      if (
        runs.some((r) => r.job === 'request-metering' && r.partitionKey === hour && r.state === 'succeeded')
      )
        await printRequestTable(rt, hour);
      const audit = runs.find((r) => r.job === 'audit' && r.state === 'succeeded');
      if (audit?.report) {
        const c = audit.report.counters;
        out(
          `   audit: ${c.recordsChecked ?? 0} records, ${c.copiesChecked ?? 0} copies checked against the nodes' listings, ` +
            `${c.deepHashed ?? 0} re-hashed on their nodes; ${audit.verdict === 'ok' ? 'no problems' : 'problems: `remora audit show --date ' + day + '`'}`,
        );
      }
      if (runs.some((r) => r.job === 'storage-metering' && r.state === 'succeeded'))
        await printUsageTable(rt, day);
      else out('   storage metering did not succeed: see `remora runs` and `remora run show <id>`');
      await summarizeDay(rt, c, d, day, out);
    },
  ).finally(() => operator.close());
}

const timeOr = (d: Date | null, otherwise: number) => (d === null ? otherwise : d.getTime());

/**
 * Runs in the order they ran, as the demo's table lists them (the pipeline's own listing is by
 * day, job name and partition): by when each started — a run that never started (blocked) by
 * when it ended, one that did neither (still waiting) last — then by when it ended, then by id.
 */
export function inRunOrder(runs: readonly RunRow[]): RunRow[] {
  const began = (r: RunRow) => timeOr(r.startedAt, timeOr(r.finishedAt, Infinity));
  return [...runs].sort(
    (a, b) =>
      began(a) - began(b) || timeOr(a.finishedAt, Infinity) - timeOr(b.finishedAt, Infinity) || a.id - b.id,
  );
}

/**
 * The rest of the day and its summary: the pipeline's clock moves past the day's end (as if the
 * demo had waited: nothing else happens in its deployment), the remaining hours are metered
 * (empty) and the daily summary runs; ends with its per-account table.
 */
async function summarizeDay(
  rt: PipelineRuntime,
  c: Coordinator,
  d: Deployment,
  day: string,
  out: (line: string) => void,
): Promise<void> {
  const after = dayStartMs(day) + DAY_MS + SUMMARY_WAIT_MS;
  out(
    `== the rest of ${day} (the pipeline's clock moved to ${new Date(after).toISOString()}): every hour, then the daily summary`,
  );
  rt.services.clock = new ScaledClock(after);
  await d.publishLogs(new Date(after));
  const runs = await driveDays(rt, c, [day], { timeoutMs: PIPELINE_TIMEOUT_MS });
  const hourly = runs.filter((r) => r.partitionKey.length === 13);
  out(`   hourly runs: ${hourly.filter((r) => r.state === 'succeeded').length} of ${hourly.length} done`);
  const summary = runs.find((r) => r.job === 'usage-summary');
  out(
    `   ${'usage-summary'.padEnd(18)} ${day.padEnd(34)} ${(summary?.state ?? 'not run').padEnd(10)} ${summary?.verdict ?? ''}`,
  );
  if (summary?.state === 'succeeded') await printSummaryTable(rt, day);
}

/** Past the summary's settle time (usage-summary settleMinutes, 30) after midnight. */
const SUMMARY_WAIT_MS = 31 * 60_000;

/** The demo's pipeline finishes in seconds; a stuck run should fail the demo, not hang it. */
const PIPELINE_TIMEOUT_MS = 5 * 60_000;
