/**
 * The pipeline as code: the set of jobs and the graph their `inputs.upstream` draw.
 * Replaces the original's "we rely on time spacing" (MANTA-REFERENCE §5.1, MANTA-2452).
 */
import { RemoraError } from '../core/errors.js';
import type { JobDefinition } from './job.js';

export class JobGraph {
  private readonly jobs = new Map<string, JobDefinition>();
  private readonly order: string[];

  constructor(jobs: readonly JobDefinition[]) {
    for (const j of jobs) {
      if (this.jobs.has(j.name)) throw new RemoraError('InvalidConfig', `job ${j.name} is defined twice`);
      this.jobs.set(j.name, j);
    }
    for (const j of jobs) {
      for (const up of j.inputs.upstream ?? []) {
        if (!this.jobs.has(up)) {
          throw new RemoraError('InvalidConfig', `job ${j.name} depends on unknown job ${up}`);
        }
      }
    }
    this.order = this.topologicalOrder();
  }

  get(name: string): JobDefinition {
    const j = this.jobs.get(name);
    if (!j) {
      throw new RemoraError('UsageError', `unknown job ${name} (jobs: ${this.order.join(', ')})`);
    }
    return j;
  }

  has(name: string): boolean {
    return this.jobs.has(name);
  }

  /** Job names, every job after all of its upstreams (ties broken by declaration order). */
  names(): string[] {
    return [...this.order];
  }

  upstreamOf(name: string): string[] {
    return [...(this.get(name).inputs.upstream ?? [])];
  }

  /** Jobs that directly list `name` as an input. */
  downstreamOf(name: string): string[] {
    return this.order.filter((n) => (this.jobs.get(n)!.inputs.upstream ?? []).includes(name));
  }

  /** `name` and everything that (transitively) depends on it, in topological order. */
  closure(name: string): string[] {
    this.get(name);
    const seen = new Set([name]);
    for (const n of this.order) {
      if ((this.jobs.get(n)!.inputs.upstream ?? []).some((u) => seen.has(u))) seen.add(n);
    }
    return this.order.filter((n) => seen.has(n));
  }

  private topologicalOrder(): string[] {
    const out: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (name: string, path: string[]) => {
      const s = state.get(name);
      if (s === 'done') return;
      if (s === 'visiting') {
        throw new RemoraError('InvalidConfig', `job graph has a cycle: ${[...path, name].join(' -> ')}`);
      }
      state.set(name, 'visiting');
      for (const up of this.jobs.get(name)!.inputs.upstream ?? []) visit(up, [...path, name]);
      state.set(name, 'done');
      out.push(name);
    };
    for (const name of this.jobs.keys()) visit(name, []);
    return out;
  }
}
