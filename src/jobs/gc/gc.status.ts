/**
 * `remora gc status`: GC's backlog, from three places (docs/gc.md "The operator's view"):
 *
 *   latest run  the newest committed gc run's output and report: what it scanned, moved, left
 *               (waiting for grace with bytes and oldest, not provable yet, eligible not moved)
 *   live        every index shard's delete log now, against the grace period: waiting for grace;
 *               past grace with no live reference (the next run moves their copies); past grace
 *               with a live reference or no copies (the next run only removes the record)
 *   tombstone   per storage node: days, files and bytes in tombstone, and the next purge day
 *
 * The live view reads the delete log a page at a time and asks every shard about the objectIds
 * past grace (indexed lookup); its memory is one page plus the objectIds of the eligible backlog
 * (counted once each however many records name them).
 */
import { addDays } from '../../core/days.js';
import { isRemoraError } from '../../core/errors.js';
import type { RunReport } from '../../core/run-report.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import { getRun, readPointer } from '../../pipeline/runs.repository.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';
import type { NodeDirectory } from '../../storage/node-directory.js';
import type { StorageClient } from '../../storage/storage-client.js';
import { purgeDayOf } from '../tombstone-purge/tombstone-purge.rules.js';
import { gcOutput, type GcOutput } from './gc.job.js';
import { parseDeleteValue } from './gc.plan.js';
import { deleteLogPage } from './gc.repository.js';

export interface LatestGcRun {
  day: string;
  runId: number;
  verdict: string;
  output: GcOutput;
  report?: RunReport;
}

/** The newest gc run that committed an output, looking back `lookbackDays` from `today`. */
export async function latestGcRun(
  rt: PipelineRuntime,
  today: string,
  lookbackDays: number,
): Promise<LatestGcRun | undefined> {
  for (let i = 0; i <= lookbackDays; i++) {
    const day = addDays(today, -i);
    const p = await readPointer(rt.control, 'gc', day);
    if (!p) continue;
    const run = await getRun(rt.control, p.runId);
    return {
      day,
      runId: p.runId,
      verdict: p.verdict,
      output: gcOutput.parse(p.output),
      ...(run?.report ? { report: run.report } : {}),
    };
  }
  return undefined;
}

interface Bucket {
  records: number;
  copies: number;
  bytes: number;
  oldestMs?: number;
}

export interface LiveBacklog {
  asOf: number;
  graceMs: number;
  scanned: number;
  waitingForGrace: Bucket;
  /** Past grace, no live reference now: the next run moves these copies (objectIds counted once). */
  eligibleNotMoved: Bucket & { objectIds: number };
  /** Past grace, with a live reference or no copies: the next run only removes the record. */
  cleanupOnly: { records: number };
  malformed: number;
}

const PAGE = 1000;

const bucket = (): Bucket => ({ records: 0, copies: 0, bytes: 0 });
function add(b: Bucket, copies: number, bytes: number, mtime: number): void {
  b.records++;
  b.copies += copies;
  b.bytes += copies * bytes;
  b.oldestMs = b.oldestMs === undefined ? mtime : Math.min(b.oldestMs, mtime);
}

/** The delete logs of every index shard against the grace period, now. */
export async function liveBacklog(
  tier: Pick<MetadataTier, 'indexShards' | 'findByObjectIds'>,
  now: number,
  graceMs: number,
): Promise<LiveBacklog> {
  const out: LiveBacklog = {
    asOf: now,
    graceMs,
    scanned: 0,
    waitingForGrace: bucket(),
    eligibleNotMoved: { ...bucket(), objectIds: 0 },
    cleanupOnly: { records: 0 },
    malformed: 0,
  };
  const counted = new Set<string>();
  for (const shard of tier.indexShards) {
    let after: string | undefined;
    for (;;) {
      const page = await deleteLogPage(shard.pool, shard.name, after, PAGE);
      if (page.length === 0) break;
      after = page.at(-1)!.key;
      out.scanned += page.length;
      const pastGrace: { objectId: string; copies: number; bytes: number; mtime: number }[] = [];
      for (const r of page) {
        const objectId = (r.objectId ?? r.key.split('/')[1] ?? '').toLowerCase();
        const parsed = parseDeleteValue(objectId, r);
        if ('malformed' in parsed) {
          out.malformed++;
          continue;
        }
        const copies = parsed.sharks.length;
        const bytes = parsed.contentLength ?? 0;
        if (now - r.mtime <= graceMs) add(out.waitingForGrace, copies, bytes, r.mtime);
        else if (copies === 0) out.cleanupOnly.records++;
        else pastGrace.push({ objectId, copies, bytes, mtime: r.mtime });
      }
      const live = await tier.findByObjectIds([...new Set(pastGrace.map((p) => p.objectId))]);
      for (const p of pastGrace) {
        if ((live.get(p.objectId) ?? []).length > 0) out.cleanupOnly.records++;
        else if (counted.has(p.objectId)) out.eligibleNotMoved.records++;
        else {
          counted.add(p.objectId);
          add(out.eligibleNotMoved, p.copies, p.bytes, p.mtime);
        }
      }
      if (page.length < PAGE) break;
    }
  }
  out.eligibleNotMoved.objectIds = counted.size;
  return out;
}

export interface NodeTombstone {
  node: string;
  state: 'ok' | 'unreachable' | 'address unknown' | 'no credential' | 'refused';
  detail?: string;
  days: number;
  files: number;
  bytes: number;
  oldestDay?: string;
  /** The day whose purge run removes the oldest directory. */
  nextPurgeDay?: string;
}

/** Per storage node: what its tombstone holds and when the purge next removes something. */
export async function tombstoneUsage(
  nodes: NodeDirectory,
  storage: StorageClient | undefined,
  retentionDays: number,
): Promise<NodeTombstone[]> {
  const out: NodeTombstone[] = [];
  for (const e of nodes.list()) {
    const base = { node: e.id, days: 0, files: 0, bytes: 0 };
    if (!e.url) {
      out.push({ ...base, state: 'address unknown' });
      continue;
    }
    if (!storage) {
      out.push({ ...base, state: 'no credential' });
      continue;
    }
    try {
      const days = await storage.tombstoneDays(e.url);
      const oldest = days[0]?.day;
      out.push({
        ...base,
        state: 'ok',
        days: days.length,
        files: days.reduce((n, d) => n + d.files, 0),
        bytes: days.reduce((n, d) => n + d.bytes, 0),
        ...(oldest ? { oldestDay: oldest, nextPurgeDay: purgeDayOf(oldest, retentionDays) } : {}),
      });
    } catch (err) {
      if (!isRemoraError(err)) throw err;
      out.push({
        ...base,
        state: err.code === 'StorageNodeUnreachable' ? 'unreachable' : 'refused',
        detail: `${err.code}: ${err.message}`,
      });
    }
  }
  return out;
}

/** "2024-05-01T…Z (3.2 days ago)" */
export function describeInstant(ms: number | undefined, now: number): string {
  if (ms === undefined) return '-';
  const days = (now - ms) / 86_400_000;
  return `${new Date(ms).toISOString()} (${days.toFixed(1)} days ago)`;
}
