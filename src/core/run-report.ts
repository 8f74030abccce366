/**
 * Run reports: what a run (or one of its tasks) says about itself. This is the contract
 * between stages (DESIGN.md "Run reports"; RFD 16 problems 2 and 3: "counts of scanned,
 * processed, non-fatal and fatal items are missing").
 *
 *   counters   records scanned, accounts, processed normally, skipped (not eligible yet, or
 *              left for another run: never judged), malformed (unusable records: judged
 *              against the threshold), non-fatal errors, fatal errors, bytes read/written,
 *              plus any job-specific counter
 *   events     a histogram by `kind` and `severity`, each with up to N example records
 *   durations  named phases in ms (`total` always present once finished)
 *   verdict    ok        nothing worse than `info` happened
 *              degraded  non-fatal (`warning`/`error`) events; the output is valid
 *              invalid   a `fatal` event, or a systematic failure (more than a configured
 *                        share of records malformed): the output must not be used
 *
 * A map/reduce run merges its tasks' reports with `mergeReports`; downstream stages refuse
 * `invalid` inputs and record `degraded` ones.
 */

export type Severity = 'info' | 'warning' | 'error' | 'fatal';
export type Verdict = 'ok' | 'degraded' | 'invalid';

export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'error', 'fatal'];
const VERDICT_RANK: Record<Verdict, number> = { ok: 0, degraded: 1, invalid: 2 };

/** Examples kept per event kind: enough to debug, bounded so a report never grows with the data. */
export const DEFAULT_MAX_EXAMPLES = 5;
/** Characters kept of one string example (a bad `_value` may be megabytes). */
export const MAX_EXAMPLE_CHARS = 500;

export interface ReportCounters {
  recordsScanned: number;
  accounts: number;
  processed: number;
  /** Records passed over on purpose (not eligible yet, handled elsewhere); never invalidates a run. */
  skipped: number;
  /** Records that could not be used (bad JSON, missing fields): the share judged by ReportThresholds. */
  malformed: number;
  nonFatalErrors: number;
  fatalErrors: number;
  bytesRead: number;
  bytesWritten: number;
  /** Job-specific counters (e.g. `keys`, `directories`). */
  [name: string]: number;
}

export interface ReportEvent {
  kind: string;
  severity: Severity;
  count: number;
  examples: unknown[];
}

export interface RunReport {
  counters: ReportCounters;
  /** Keyed `${severity}:${kind}`; see `eventKey`. */
  events: Record<string, ReportEvent>;
  durations: Record<string, number>;
  verdict: Verdict;
  /** Why the verdict is what it is, in words (threshold crossed, fatal kind, …). */
  verdictReasons: string[];
  startedAt?: string;
  finishedAt?: string;
}

/** "More than X% malformed → invalid" (DESIGN.md: a systematic failure fails the job). */
export interface ReportThresholds {
  /** Share (0..1) of `recordsScanned` that may be `malformed` before the output is invalid. */
  maxMalformedShare: number;
  /** Below this many records the share is not judged (3 bad rows of 5 is not "systematic"). */
  minRecordsForShare: number;
}

export const DEFAULT_THRESHOLDS: ReportThresholds = { maxMalformedShare: 0.01, minRecordsForShare: 100 };

export function emptyCounters(): ReportCounters {
  return {
    recordsScanned: 0,
    accounts: 0,
    processed: 0,
    skipped: 0,
    malformed: 0,
    nonFatalErrors: 0,
    fatalErrors: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

export function emptyReport(): RunReport {
  return { counters: emptyCounters(), events: {}, durations: {}, verdict: 'ok', verdictReasons: [] };
}

export function eventKey(severity: Severity, kind: string): string {
  return `${severity}:${kind}`;
}

/**
 * The verdict implied by a report's events and counters. Non-fatal events make it
 * `degraded`; a fatal event, fatal errors, or a malformed share above the threshold make it
 * `invalid`. An earlier `invalid` verdict is never downgraded (merging keeps the worst).
 */
export function judge(report: RunReport, thresholds: ReportThresholds = DEFAULT_THRESHOLDS): RunReport {
  const reasons: string[] = [];
  let verdict: Verdict = 'ok';
  const raise = (v: Verdict, why: string) => {
    if (VERDICT_RANK[v] > VERDICT_RANK[verdict]) verdict = v;
    reasons.push(why);
  };
  for (const e of Object.values(report.events)) {
    if (e.severity === 'fatal') raise('invalid', `fatal event ${e.kind} (${e.count})`);
    else if (e.severity !== 'info') raise('degraded', `${e.severity} event ${e.kind} (${e.count})`);
  }
  const c = report.counters;
  if (c.fatalErrors > 0) raise('invalid', `${c.fatalErrors} fatal errors`);
  const share = c.recordsScanned > 0 ? c.malformed / c.recordsScanned : 0;
  if (c.recordsScanned >= thresholds.minRecordsForShare && share > thresholds.maxMalformedShare) {
    raise(
      'invalid',
      `${(share * 100).toFixed(2)}% of records malformed (limit ${(thresholds.maxMalformedShare * 100).toFixed(2)}%)`,
    );
  }
  for (const r of report.verdictReasons) if (!reasons.includes(r)) reasons.push(r);
  if (VERDICT_RANK[report.verdict] > VERDICT_RANK[verdict]) verdict = report.verdict;
  return { ...report, verdict, verdictReasons: reasons };
}

/** Merge task reports into one run report: counters and durations add, events merge, worst verdict wins. */
export function mergeReports(
  reports: readonly RunReport[],
  opts: { maxExamples?: number; thresholds?: ReportThresholds } = {},
): RunReport {
  const max = opts.maxExamples ?? DEFAULT_MAX_EXAMPLES;
  const out = emptyReport();
  for (const r of reports) {
    for (const [k, v] of Object.entries(r.counters)) out.counters[k] = (out.counters[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.durations)) out.durations[k] = (out.durations[k] ?? 0) + v;
    for (const [k, e] of Object.entries(r.events)) {
      const into = (out.events[k] ??= { kind: e.kind, severity: e.severity, count: 0, examples: [] });
      into.count += e.count;
      for (const ex of e.examples) if (into.examples.length < max) into.examples.push(ex);
    }
    if (VERDICT_RANK[r.verdict] > VERDICT_RANK[out.verdict]) out.verdict = r.verdict;
    for (const why of r.verdictReasons) if (!out.verdictReasons.includes(why)) out.verdictReasons.push(why);
    if (r.startedAt && (!out.startedAt || r.startedAt < out.startedAt)) out.startedAt = r.startedAt;
    if (r.finishedAt && (!out.finishedAt || r.finishedAt > out.finishedAt)) out.finishedAt = r.finishedAt;
  }
  return judge(out, opts.thresholds);
}

/**
 * What a job's task uses to build its report. One bad record is an event, never an
 * exception (DESIGN.md invariant 6):
 *
 *   const r = new ReportBuilder();
 *   r.count('recordsScanned');
 *   r.event('malformed-value', 'error', { key, value: raw.slice(0, 200) });
 *   return { report: r.finish() };
 */
export class ReportBuilder {
  private readonly report = emptyReport();
  private readonly phaseStarts = new Map<string, number>();
  private readonly started: number;

  constructor(
    private readonly opts: { maxExamples?: number; thresholds?: ReportThresholds; now?: () => number } = {},
  ) {
    this.started = this.now();
    this.report.startedAt = new Date(this.started).toISOString();
  }

  private now(): number {
    return this.opts.now ? this.opts.now() : Date.now();
  }

  count(name: string, n = 1): this {
    this.report.counters[name] = (this.report.counters[name] ?? 0) + n;
    return this;
  }

  /**
   * Record `n` (default 1) occurrences of an event. `warning`/`error` also count a non-fatal error and
   * `fatal` a fatal one, so the counters and the histogram always agree.
   */
  event(kind: string, severity: Severity, example?: unknown, n = 1): this {
    const k = eventKey(severity, kind);
    const e = (this.report.events[k] ??= { kind, severity, count: 0, examples: [] });
    e.count += n;
    if (example !== undefined && e.examples.length < (this.opts.maxExamples ?? DEFAULT_MAX_EXAMPLES)) {
      e.examples.push(
        typeof example === 'string' && example.length > MAX_EXAMPLE_CHARS
          ? `${example.slice(0, MAX_EXAMPLE_CHARS)}…`
          : example,
      );
    }
    if (severity === 'warning' || severity === 'error') this.report.counters.nonFatalErrors += n;
    if (severity === 'fatal') this.report.counters.fatalErrors += n;
    return this;
  }

  /** Time a named phase: `const done = r.phase('scan'); …; done();` */
  phase(name: string): () => void {
    this.phaseStarts.set(name, this.now());
    return () => {
      const t0 = this.phaseStarts.get(name);
      if (t0 !== undefined)
        this.report.durations[name] = (this.report.durations[name] ?? 0) + this.now() - t0;
    };
  }

  /** Add an already merged report (e.g. a library's own report) into this one. */
  absorb(other: RunReport): this {
    const merged = mergeReports([this.report, other], this.opts);
    Object.assign(this.report, merged, { startedAt: this.report.startedAt });
    return this;
  }

  finish(): RunReport {
    this.report.durations.total = this.now() - this.started;
    this.report.finishedAt = new Date(this.now()).toISOString();
    return judge(structuredClone(this.report), this.opts.thresholds);
  }
}

/** One example as text for a terminal line (strings as they are, anything else as JSON). */
export function exampleText(example: unknown): string {
  return typeof example === 'string' ? example : JSON.stringify(example);
}
