/**
 * A minimal run report for the dumps stages (DESIGN.md "Run reports"): counters and an event
 * histogram by kind and severity with a few examples each.
 *
 * Temporary: the executor's shared report type (src/pipeline/report.ts) will replace this;
 * the shape is kept close to it (`{counters, events:[{kind,severity,count,examples}]}`) so
 * the swap is mechanical.
 */

export type Severity = 'info' | 'warning' | 'error' | 'fatal';

export interface ReportEvent {
  kind: string;
  severity: Severity;
  count: number;
  examples: string[];
}

export interface DumpReport {
  counters: Record<string, number>;
  events: ReportEvent[];
}

/** Examples kept per event kind: enough to diagnose, bounded so a bad file cannot grow the report. */
const MAX_EXAMPLES = 5;
/** Characters kept of one example (a bad `_value` may be megabytes). */
const MAX_EXAMPLE_CHARS = 500;

export class ReportBuilder {
  private readonly counters = new Map<string, number>();
  private readonly events = new Map<string, ReportEvent>();

  count(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }

  event(kind: string, severity: Severity, example?: string, n = 1): void {
    const key = `${kind}\0${severity}`;
    let e = this.events.get(key);
    if (!e) {
      e = { kind, severity, count: 0, examples: [] };
      this.events.set(key, e);
    }
    e.count += n;
    if (example !== undefined && e.examples.length < MAX_EXAMPLES)
      e.examples.push(
        example.length > MAX_EXAMPLE_CHARS ? `${example.slice(0, MAX_EXAMPLE_CHARS)}…` : example,
      );
  }

  merge(other: DumpReport): void {
    for (const [k, v] of Object.entries(other.counters)) this.count(k, v);
    for (const e of other.events) {
      this.event(e.kind, e.severity, undefined, e.count);
      for (const ex of e.examples) this.event(e.kind, e.severity, ex, 0);
    }
  }

  build(): DumpReport {
    return {
      counters: Object.fromEntries([...this.counters].sort(([a], [b]) => a.localeCompare(b))),
      events: [...this.events.values()],
    };
  }
}
