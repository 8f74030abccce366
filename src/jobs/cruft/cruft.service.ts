/**
 * `remora cruft plan | run --date D`: cruft over a day's committed unpacks and listings, in
 * process (as `remora gc plan`, gc.dry-run.ts): the cruft job's own `split` and `runTask` for
 * every partition group. `plan` re-checks and moves nothing; `run` moves the confirmed files to
 * tombstone. No pipeline run is recorded either way (a daily cruft run, when configured, is the
 * pipeline's); the candidates of every task are written under CRUFT_ROOT/YYYY/MM/DD/<instant>/.
 */
import { RemoraError } from '../../core/errors.js';
import { publishedPath } from '../../core/published-path.js';
import { mergeReports, ReportBuilder, type RunReport } from '../../core/run-report.js';
import type { UpstreamOutput } from '../../pipeline/job.js';
import { dayPartition, type Partition } from '../../pipeline/partitions.js';
import { readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';
import { manifestsOutput } from '../manifests/manifests.job.js';
import {
  cruftJob,
  cruftOptionsFrom,
  nodeAccountsWithGc,
  type CruftJobOptions,
  type NodeAccountWithGc,
} from './cruft.job.js';
import { emptyNodeAccount, type NodeAccount } from './cruft.scan.js';

/** The original's job root (mola bin/kick_off_cruft.js: `/poseidon/stor/manta_cruft`). */
export const CRUFT_ROOT = '/poseidon/stor/manta_cruft';

/** `<planPrefix>summary.json`: the CruftDay of an on-demand plan or run (the dashboard reads it). */
export const CRUFT_SUMMARY = 'summary.json';

export interface CruftDay {
  day: string;
  dryRun: boolean;
  options: CruftJobOptions;
  /** Files with an mtime before this (epoch seconds) were judged. */
  cutoffSeconds?: number;
  tasks: number;
  report: RunReport;
  /** Where the candidates (one NDJSON per partition group) were written. */
  planPrefix: string;
  /**
   * Every file of each node's listing, by class (cruft.rules.ts "accounted"): live, gcPending
   * (with the instants GC's grace lets it take them), tooNew, cruft (the candidates).
   */
  nodes: NodeAccountWithGc[];
  /** Each node's committed listing: when it started, files judged, lines (tombstones, temp files…). */
  listings: { node: string; startedAt: string; files: number; lines: number }[];
}

async function committed(
  rt: PipelineRuntime,
  job: string,
  p: Partition,
  what: string,
): Promise<UpstreamOutput> {
  const ptr = await readPointer(rt.control, job, p.key);
  const rerun = `(\`remora pipeline run --date ${p.day}\`, or \`remora rerun ${job} --date ${p.day}\`)`;
  if (!ptr)
    throw new RemoraError(
      'UsageError',
      `no committed ${job} of ${what} for ${p.day}: cruft reads it; run it first ${rerun}`,
    );
  if (ptr.verdict === 'invalid')
    throw new RemoraError(
      'UsageError',
      `the ${job} of ${what} for ${p.day} is invalid: cruft refuses it ${rerun}`,
    );
  return { job, partition: p, runId: ptr.runId, verdict: ptr.verdict, output: ptr.output };
}

export async function cruftDay(
  rt: PipelineRuntime,
  day: string,
  o: { dryRun: boolean; signal?: AbortSignal },
): Promise<CruftDay> {
  const { services } = rt;
  const options = cruftOptionsFrom(rt.settings);
  const job = cruftJob(options);
  const upstream: UpstreamOutput[] = [];
  for (const s of services.config.shards.filter((x) => x.role === 'index'))
    upstream.push(
      await committed(
        rt,
        'unpack',
        { kind: 'day-shard', key: `${day}/shard=${s.name}`, day, shard: s.name },
        s.name,
      ),
    );
  for (const n of services.config.storage.nodes)
    upstream.push(
      await committed(
        rt,
        'manifests',
        { kind: 'day-node', key: `${day}/node=${n.id}`, day, node: n.id },
        n.id,
      ),
    );
  const plan = { services, partition: dayPartition(day), runId: 0, upstream };
  const tasks = await job.split(plan);
  const at = new Date(services.clock.now()).toISOString().replace(/[:.]/g, '-');
  // The original's job root: side by side (pipeline.outputPrefix), Remora's candidates go under the prefix.
  const planPrefix = `${publishedPath(rt.settings.outputPrefix, `${CRUFT_ROOT}/${o.dryRun ? 'plans' : 'runs'}/${day.replaceAll('-', '/')}/${at}`)}/`;
  const reports: RunReport[] = [];
  const accounts: NodeAccount[][] = [];
  const ac = new AbortController();
  o.signal?.addEventListener('abort', () => ac.abort());
  for (const t of tasks) {
    if (ac.signal.aborted)
      throw new RemoraError('WorkerShutdown', `cruft ${o.dryRun ? 'plan' : 'run'} interrupted`);
    const r = await job.runTask({
      ...plan,
      task: { key: t.key, params: { ...t.params!, dryRun: o.dryRun } },
      attemptId: 0,
      outputPrefix: `${planPrefix}${t.key}/`,
      signal: ac.signal,
      report: new ReportBuilder({ thresholds: rt.settings.thresholds }),
    });
    reports.push(r.report);
    accounts.push(r.output?.nodes ?? []);
  }
  const listings = upstream.flatMap((u) => {
    if (u.job !== 'manifests') return [];
    const l = manifestsOutput.parse(u.output).listing;
    return l ? [{ node: l.source, startedAt: l.startedAt, files: l.files, lines: l.lines }] : [];
  });
  const cutoff = tasks[0]?.params?.cutoffSeconds;
  const result: CruftDay = {
    day,
    dryRun: o.dryRun,
    options,
    ...(cutoff !== undefined ? { cutoffSeconds: cutoff } : {}),
    tasks: tasks.length,
    report: mergeReports(reports, { thresholds: rt.settings.thresholds }),
    planPrefix,
    // A node whose listing is empty is shown too (all zero: nothing left on it).
    nodes: nodeAccountsWithGc(
      [...accounts, listings.map((l) => emptyNodeAccount(l.node))],
      options.gcGraceMs,
      options.gcEnabled,
    ),
    listings,
  };
  // Beside the candidates: what the command printed, for the dashboard (CRUFT_SUMMARY).
  await services.store.put(`${planPrefix}${CRUFT_SUMMARY}`, Buffer.from(JSON.stringify(result)));
  return result;
}
