/**
 * Cruft as the dashboard sees it (`GET /api/cruft`): the latest committed daily cruft runs (when
 * `pipeline.jobs.cruft.enabled` runs it daily) with their files and bytes per node, what the live
 * re-check refused and why, and examples — all from the runs' reports (src/jobs/cruft/cruft.apply.ts
 * counts `cruftFiles.<node>`, `cruftBytes.<node>`, `refusedReferencedNow`); and the latest
 * on-demand `remora cruft plan | run` (no run recorded): their candidates files under CRUFT_ROOT.
 */
import readline from 'node:readline';
import { addDays, dayOf } from '../../core/days.js';
import type { ReportEvent } from '../../core/run-report.js';
import { cruftOutput, type CruftOutput } from '../../jobs/cruft/cruft.job.js';
import type { CruftCandidate } from '../../jobs/cruft/cruft.scan.js';
import { publishedPath } from '../../core/published-path.js';
import { CRUFT_ROOT, CRUFT_SUMMARY, type CruftDay } from '../../jobs/cruft/cruft.service.js';
import type { NodeAccount } from '../../jobs/cruft/cruft.scan.js';
import { readObjectText } from '../../objectstore/object-store.js';
import { getRun, readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';

/** Daily runs and on-demand plans shown. */
export const CRUFT_RUNS_SHOWN = 7;

export interface CruftNodeCount {
  node: string;
  files: number;
  bytes: number;
}

export interface CruftRunView {
  day: string;
  runId: number;
  verdict: string;
  output: CruftOutput;
  /** Files confirmed as cruft (moved to tombstone unless `output.dryRun`), per node. */
  nodes: CruftNodeCount[];
  files: number;
  bytes: number;
  /** Candidates the live re-check refused (a record or delete log names them now). */
  refused: number;
  /** The report's events (`refused-referenced-now` with the reference, `cruft` examples, …). */
  events: ReportEvent[];
}

export interface CruftOnDemand {
  kind: 'plan' | 'run';
  /**
   * Every listed file per node, by class, and the files confirmed after the live re-check (moved,
   * for a run): from the command's summary (CRUFT_SUMMARY; absent for commands before it).
   */
  classes?: NodeAccount[];
  confirmed?: number;
  day: string;
  /** The instant it was started (the folder name under CRUFT_ROOT). */
  at: string;
  /** Candidates found before the live re-check, per node, with examples. */
  candidates: number;
  nodes: CruftNodeCount[];
  examples: CruftCandidate[];
}

export interface CruftView {
  enabledDaily: boolean;
  runs: CruftRunView[];
  onDemand: CruftOnDemand[];
}

function perNode(counters: Record<string, number | undefined>): CruftNodeCount[] {
  return Object.keys(counters)
    .filter((k) => k.startsWith('cruftFiles.'))
    .map((k) => k.slice('cruftFiles.'.length))
    .sort()
    .map((node) => ({
      node,
      files: counters[`cruftFiles.${node}`] ?? 0,
      bytes: counters[`cruftBytes.${node}`] ?? 0,
    }));
}

async function onDemand(rt: PipelineRuntime): Promise<CruftOnDemand[]> {
  const { store } = rt.services;
  const byRun = new Map<string, string[]>();
  for (const kind of ['plans', 'runs'])
    for (const p of await store.list(
      `${publishedPath(rt.settings.outputPrefix, `${CRUFT_ROOT}/${kind}`)}/`,
    )) {
      // <root>/<kind>/YYYY/MM/DD/<instant>/<task>/candidates.ndjson
      const m = /^(.*\/(plans|runs)\/(\d{4})\/(\d\d)\/(\d\d)\/([^/]+)\/)/.exec(p);
      if (m) byRun.set(m[1]!, [...(byRun.get(m[1]!) ?? []), p]);
    }
  const latest = [...byRun.keys()]
    .sort((a, b) => (a.split('/').slice(-2)[0]! < b.split('/').slice(-2)[0]! ? 1 : -1))
    .slice(0, CRUFT_RUNS_SHOWN);
  const out: CruftOnDemand[] = [];
  for (const prefix of latest) {
    const m = /\/(plans|runs)\/(\d{4})\/(\d\d)\/(\d\d)\/([^/]+)\/$/.exec(prefix)!;
    const nodes = new Map<string, CruftNodeCount>();
    const examples: CruftCandidate[] = [];
    let candidates = 0;
    const summaryPath = byRun.get(prefix)!.find((p) => p === `${prefix}${CRUFT_SUMMARY}`);
    const summary = summaryPath
      ? (JSON.parse(await readObjectText(store, summaryPath)) as Pick<CruftDay, 'nodes' | 'report'>)
      : undefined;
    for (const f of byRun.get(prefix)!.filter((p) => p.endsWith('.ndjson'))) {
      const lines = readline.createInterface({ input: await store.get(f), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line === '') continue;
        const c = JSON.parse(line) as CruftCandidate;
        candidates++;
        const n = nodes.get(c.node) ?? { node: c.node, files: 0, bytes: 0 };
        n.files++;
        n.bytes += c.bytes;
        nodes.set(c.node, n);
        if (examples.length < 5) examples.push(c);
      }
    }
    out.push({
      kind: m[1] === 'plans' ? 'plan' : 'run',
      day: `${m[2]}-${m[3]}-${m[4]}`,
      at: m[5]!,
      candidates,
      nodes: [...nodes.values()].sort((a, b) => a.node.localeCompare(b.node)),
      examples,
      ...(summary ? { classes: summary.nodes, confirmed: summary.report.counters.cruftFiles ?? 0 } : {}),
    });
  }
  return out;
}

export async function cruftView(rt: PipelineRuntime): Promise<CruftView> {
  const today = dayOf(rt.services.clock.now());
  const runs: CruftRunView[] = [];
  for (let i = 0; i <= rt.settings.retentionDays && runs.length < CRUFT_RUNS_SHOWN; i++) {
    const day = addDays(today, -i);
    const p = await readPointer(rt.control, 'cruft', day);
    if (!p) continue;
    const c = (await getRun(rt.control, p.runId))?.report;
    const output = cruftOutput.parse(p.output);
    const counters: Record<string, number | undefined> = c?.counters ?? {};
    runs.push({
      day,
      runId: p.runId,
      verdict: p.verdict,
      output,
      nodes: perNode(counters),
      files: counters.cruftFiles ?? 0,
      bytes: counters.cruftBytes ?? 0,
      refused: counters.refusedReferencedNow ?? 0,
      events: Object.values(c?.events ?? {}),
    });
  }
  return { enabledDaily: rt.graph.has('cruft'), runs, onDemand: await onDemand(rt) };
}
