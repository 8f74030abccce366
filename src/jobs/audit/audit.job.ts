/**
 * The daily `audit` job (docs/audit.md): are all copies the metadata names on the nodes that
 * it names, and (deep audit) are the sampled ones still the bytes that were written?
 *
 *   inputs  the day's unpack of every index shard and the day's manifests of every node
 *   split   check like-with-like (audit.rules.ts, invariant 5), one task per partition group
 *   task    scan the group (audit.scan.ts: problems straight to NDJSON) → deep-audit the group's
 *           sample on the nodes (audit.deep.ts) → store the problems under the attempt's prefix
 *   commit  add the tasks' counts; the output names every task's problems file
 *
 * The problems list is what `remora audit show --date D` prints; the verdict is `degraded` when
 * there is any problem (one `error` event per kind, with examples), so the runs grid shows it —
 * the original's "non-empty output fires an alarm" (mola bin/kick_off_audit.js checkJobResults).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { PartitionInputs, type PartitionGroup, type UnpackRef } from '../../dumps/partition-inputs.js';
import { outputType, type JobDefinition, type TaskContext } from '../../pipeline/job.js';
import type { PipelineSettings } from '../../pipeline/settings.js';
import { ByteThrottle } from '../../storage/throttle.js';
import { deepAudit } from './audit.deep.js';
import { DEFAULT_DEEP_CYCLE_DAYS, deepSlot } from './audit.rules.js';
import { dayInputs } from './audit.inputs.js';
import { auditGroup } from './audit.scan.js';

export interface AuditJobOptions {
  /** Every copy is re-hashed once in this many days; 0 turns the deep audit off. */
  deepCycleDays: number;
  /** Bytes hashed per second on each node (the node reads them from its disk). */
  deepBytesPerSecondPerNode: number;
}

/** Defaults: a 30-day cycle, 32 MiB/s of reads per node (a fraction of one disk's bandwidth). */
export const DEFAULT_AUDIT_OPTIONS: AuditJobOptions = {
  deepCycleDays: DEFAULT_DEEP_CYCLE_DAYS,
  deepBytesPerSecondPerNode: 32 * 1024 * 1024,
};

/** The audit's options from `pipeline.jobs.audit` (src/config/config.ts JOB_SPECIFIC_SETTINGS). */
export function auditOptionsFrom(s: Pick<PipelineSettings, 'jobs'>): AuditJobOptions {
  const a = s.jobs.audit ?? {};
  return {
    deepCycleDays: a.deepCycleDays ?? DEFAULT_AUDIT_OPTIONS.deepCycleDays,
    deepBytesPerSecondPerNode: a.deepBytesPerSecondPerNode ?? DEFAULT_AUDIT_OPTIONS.deepBytesPerSecondPerNode,
  };
}

export interface AuditTaskParams extends PartitionGroup {
  sources: UnpackRef[];
  listings: UnpackRef[];
  cycle: number;
  slot: number;
  /** The instants compared (invariant 5), for the output. */
  times: Pick<AuditOutput, 'snapshots' | 'listings'>;
}

const counts = z.record(z.string(), z.number());
/** What a task returns: its problems file and its counts. */
interface TaskOutput {
  problems: string;
  records: number;
  copies: number;
  byKind: Record<string, number>;
  byNode: Record<string, number>;
}

export const auditOutput = outputType(
  'audit',
  z.object({
    /** One NDJSON file of problems per task (`{kind, objectId, node, key, shard, owner, …}` a line). */
    problemFiles: z.array(z.string()),
    problems: z.number(),
    byKind: counts,
    byNode: counts,
    recordsChecked: z.number(),
    copiesChecked: z.number(),
    snapshots: z.array(z.object({ shard: z.string(), snapshotTime: z.string() })),
    listings: z.array(z.object({ node: z.string(), startedAt: z.string() })),
  }),
);
export type AuditOutput = ReturnType<typeof auditOutput.parse>;

const EVENT_OF: Record<string, string> = {
  missing: 'missing-copy',
  corrupt: 'corrupt-copy',
  'no-listing': 'no-listing',
};

const add = (m: Record<string, number>, k: string, n: number) => {
  m[k] = (m[k] ?? 0) + n;
};

async function runGroup(
  ctx: TaskContext<AuditTaskParams>,
  o: AuditJobOptions,
  throttles: Map<string, ByteThrottle>,
): Promise<{ report: ReturnType<TaskContext['report']['finish']>; output: TaskOutput }> {
  const { sources, listings, cycle, slot, ...group } = ctx.task.params;
  const { store, duck, nodes } = ctx.services;
  const r = ctx.report;
  const inputs = await PartitionInputs.open(store, [...sources, ...listings]);
  const tmp = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'remora-audit-'));
  try {
    const file = path.join(tmp, 'problems.ndjson');
    const scanned = r.phase('scan');
    const listed = listings.map((l) => l.source);
    const g = await inputs.withGroup(
      group,
      ['manta', 'mako'],
      ({ files }) =>
        duck.run((conn) =>
          auditGroup(conn, { manta: files.manta!, mako: files.mako! }, { listed, cycle, slot }, file),
        ),
      r,
    );
    scanned();
    r.count('recordsScanned', g.records).count('recordsChecked', g.records - g.uploadsExcepted);
    r.count('copiesChecked', g.copies).count('uploadsExcepted', g.uploadsExcepted);
    if (g.malformed > 0)
      r.count('malformed', g.malformed).event(
        'malformed-record',
        'error',
        { rows: g.malformed },
        g.malformed,
      );

    let corrupt: Awaited<ReturnType<typeof deepAudit>> = [];
    if (g.sample.length > 0) {
      const deep = r.phase('deep');
      await nodes.refresh();
      if (!ctx.services.storage) {
        r.count('deepSkippedNoCredential', g.sample.length).event('deep-no-credential', 'warning', {
          why: 'this worker has no internal credential for the storage nodes (storage.internalToken)',
        });
      } else
        corrupt = await deepAudit(g.sample, {
          storage: ctx.services.storage,
          nodeUrl: (id) => nodes.url(id),
          throttle: (node) => {
            let t = throttles.get(node);
            // Real time: the pace is of real reads on a real disk.
            if (!t)
              throttles.set(node, (t = new ByteThrottle({ bytesPerSecond: o.deepBytesPerSecondPerNode })));
            return t;
          },
          report: r,
          signal: ctx.signal,
        });
      deep();
    }
    if (corrupt.length > 0)
      await fs.promises.appendFile(file, corrupt.map((p) => JSON.stringify(p) + '\n').join(''));

    const byKind: Record<string, number> = {};
    const byNode: Record<string, number> = {};
    for (const p of g.problems) {
      add(byKind, p.kind, p.n);
      add(byNode, p.node, p.n);
    }
    for (const p of corrupt) {
      add(byKind, 'corrupt', 1);
      add(byNode, p.node, 1);
    }
    for (const [kind, n] of Object.entries(byKind)) {
      r.count(`problems.${kind}`, n);
      const ex = [...g.examples, ...corrupt].filter((e) => e.kind === kind).slice(0, 5);
      ex.forEach((e, i) => r.event(EVENT_OF[kind] ?? kind, 'error', e, i === ex.length - 1 ? n - i : 1));
    }
    for (const [node, n] of Object.entries(byNode)) r.count(`problems.${node}`, n);

    const problems = `${ctx.outputPrefix}problems.ndjson`;
    const exists = await fs.promises.stat(file).then(
      () => true,
      () => false,
    );
    await store.put(problems, exists ? fs.createReadStream(file) : Buffer.alloc(0));
    return {
      report: r.finish(),
      output: { problems, records: g.records - g.uploadsExcepted, copies: g.copies, byKind, byNode },
    };
  } finally {
    await fs.promises.rm(tmp, { recursive: true, force: true });
  }
}

export function auditJob(
  o: AuditJobOptions = DEFAULT_AUDIT_OPTIONS,
): JobDefinition<AuditTaskParams, TaskOutput, AuditOutput> {
  const throttles = new Map<string, ByteThrottle>();
  return {
    name: 'audit',
    description: 'every copy the metadata names is on its node; a daily sample re-hashed on the nodes',
    partition: 'day',
    inputs: { upstream: ['unpack', 'manifests'] },
    deadlineMs: 12 * 3_600_000,
    maxAttempts: 5,
    taskTimeoutMs: 6 * 3_600_000,
    output: auditOutput,
    split: async (ctx) => {
      const { sources, listings, times, all } = await dayInputs(ctx);
      const cycle = o.deepCycleDays;
      const slot = cycle > 0 ? deepSlot(ctx.partition.day, cycle) : 0;
      return all
        .tasks(['manta', 'mako'])
        .map((t) => ({ key: t.key, params: { ...t.params, sources, listings, cycle, slot, times } }));
    },
    runTask: (ctx) => runGroup(ctx, o, throttles),
    commit: (ctx) => {
      const byKind: Record<string, number> = {};
      const byNode: Record<string, number> = {};
      for (const t of ctx.tasks) {
        for (const [k, n] of Object.entries(t.output.byKind)) add(byKind, k, n);
        for (const [k, n] of Object.entries(t.output.byNode)) add(byNode, k, n);
      }
      const times = ctx.tasks[0]?.params.times ?? { snapshots: [], listings: [] };
      return Promise.resolve({
        output: {
          problemFiles: ctx.tasks.map((t) => t.output.problems),
          problems: Object.values(byKind).reduce((a, b) => a + b, 0),
          byKind,
          byNode,
          recordsChecked: ctx.tasks.reduce((a, t) => a + t.output.records, 0),
          copiesChecked: ctx.tasks.reduce((a, t) => a + t.output.copies, 0),
          ...times,
        },
      });
    },
  };
}
