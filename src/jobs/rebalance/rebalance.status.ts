/**
 * Watching and proving a job: `status` (objects and bytes done and left, rate, ETA, skips and
 * errors by reason — as text, JSON and Prometheus metrics) and `verify` (MANTA-REFERENCE §3.5:
 * the original's verification was a job grepping the dumps for the removed storage id; here it
 * asks the live metadata and the destinations).
 */
import client from 'prom-client';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { StorageClient } from '../../storage/storage-client.js';
import {
  countByState,
  migrateRebalance,
  movedObjects,
  readJob,
  recentCompletions,
} from './rebalance.repository.js';
import type { NodeUrl } from './rebalance.transfer.js';
import { eachLimit } from './rebalance.run.js';
import { RemoraError } from '../../core/errors.js';

/** The rate is measured over the completions of this last window. */
const RATE_WINDOW_MS = 60_000;

export interface JobStatus {
  jobId: string;
  createdAt: string;
  params: Record<string, unknown>;
  total: { objects: number; bytes: number };
  done: { objects: number; bytes: number };
  left: { objects: number; bytes: number };
  byState: Record<string, { objects: number; bytes: number }>;
  reasons: { state: string; reason: string; objects: number }[];
  skippedKeys: number;
  rate: { objectsPerSecond: number; bytesPerSecond: number };
  etaSeconds: number | null;
}

const DONE = new Set(['complete', 'post_processing']);
const LEFT = new Set(['unprocessed', 'assigned']);

export async function jobStatus(tier: MetadataTier, jobId?: string): Promise<JobStatus> {
  await migrateRebalance(tier.control);
  const job = await readJob(tier.control, jobId);
  if (!job) throw new RemoraError('UsageError', jobId ? `no rebalance job ${jobId}` : 'no rebalance job yet');
  const counts = await countByState(tier.control, job.id);
  const s: JobStatus = {
    jobId: job.id,
    createdAt: job.createdAt.toISOString(),
    params: job.params,
    total: { objects: 0, bytes: 0 },
    done: { objects: 0, bytes: 0 },
    left: { objects: 0, bytes: 0 },
    byState: {},
    reasons: [],
    skippedKeys: 0,
    rate: { objectsPerSecond: 0, bytesPerSecond: 0 },
    etaSeconds: null,
  };
  for (const c of counts) {
    add(s.total, c);
    if (DONE.has(c.state)) add(s.done, c);
    if (LEFT.has(c.state)) add(s.left, c);
    add((s.byState[c.state] ??= { objects: 0, bytes: 0 }), c);
    if (c.reason) s.reasons.push({ state: c.state, reason: c.reason, objects: c.objects });
    s.skippedKeys += c.skippedKeys;
  }
  const recent = await recentCompletions(tier.control, job.id, RATE_WINDOW_MS);
  if (recent.objects > 0 && recent.first) {
    const secs = Math.max(1, (Date.now() - recent.first.getTime()) / 1000);
    s.rate = { objectsPerSecond: recent.objects / secs, bytesPerSecond: recent.bytes / secs };
    s.etaSeconds = Math.round(s.left.objects / s.rate.objectsPerSecond);
  }
  return s;
}

function add(to: { objects: number; bytes: number }, c: { objects: number; bytes: number }): void {
  to.objects += c.objects;
  to.bytes += c.bytes;
}

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;

/** One line for the live display. */
export function progressLine(s: JobStatus): string {
  const reasons = s.reasons.map((r) => `${r.state}:${r.reason}=${r.objects}`).join(' ');
  const eta = s.etaSeconds === null ? '?' : `${s.etaSeconds}s`;
  return (
    `${s.jobId}: done ${s.done.objects}/${s.total.objects} objects (${mb(s.done.bytes)}/${mb(s.total.bytes)}), ` +
    `left ${s.left.objects}, ${s.rate.objectsPerSecond.toFixed(1)} obj/s ${mb(s.rate.bytesPerSecond)}/s, ETA ${eta}` +
    (reasons ? `, ${reasons}` : '') +
    (s.skippedKeys ? `, keys dropped ${s.skippedKeys}` : '')
  );
}

/** The same figures as Prometheus text (the Rust rebalancer exposed its progress as metrics). */
export async function statusMetrics(s: JobStatus): Promise<string> {
  const registry = new client.Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new client.Gauge({ name, help, labelNames: ['job', ...labelNames], registers: [registry] });
  const objects = gauge('remora_rebalance_objects', 'Objects of the job by state', ['state']);
  const bytes = gauge('remora_rebalance_bytes', 'Bytes of the job by state', ['state']);
  const reasons = gauge('remora_rebalance_reason_objects', 'Skipped and errored objects by reason', [
    'state',
    'reason',
  ]);
  const rate = gauge('remora_rebalance_rate_bytes_per_second', 'Bytes moved per second, last minute');
  const eta = gauge('remora_rebalance_eta_seconds', 'Estimated seconds left (-1 unknown)');
  for (const [state, v] of Object.entries(s.byState)) {
    objects.set({ job: s.jobId, state }, v.objects);
    bytes.set({ job: s.jobId, state }, v.bytes);
  }
  for (const r of s.reasons) reasons.set({ job: s.jobId, state: r.state, reason: r.reason }, r.objects);
  rate.set({ job: s.jobId }, s.rate.bytesPerSecond);
  eta.set({ job: s.jobId }, s.etaSeconds ?? -1);
  return registry.metrics();
}

export interface VerifyResult {
  node: string;
  liveRecords: number;
  liveExamples: string[];
  moved: number;
  present: number;
  missing: string[];
  tombstonesOwed: number;
  unfinished: number;
  safe: boolean;
  verdict: string;
}

/** Live records naming the node (every index shard; a full scan, as the original's grep of the dumps). */
async function liveReferences(tier: MetadataTier, node: string): Promise<{ n: number; examples: string[] }> {
  let n = 0;
  const examples: string[] = [];
  const pattern = JSON.stringify([{ manta_storage_id: node }]);
  for (const s of tier.indexShards) {
    const r = await s.pool.query<{ n: string; ex: string[] | null }>(
      `SELECT count(*) AS n, (array_agg(_key ORDER BY _key))[1:5] AS ex FROM manta
        WHERE type = 'object' AND (_value::jsonb -> 'sharks') @> $1::jsonb`,
      [pattern],
    );
    n += Number(r.rows[0]!.n);
    examples.push(...(r.rows[0]!.ex ?? []));
  }
  return { n, examples: examples.slice(0, 5) };
}

export async function verifyEvacuated(
  deps: { tier: MetadataTier; storage: StorageClient; nodeUrl: NodeUrl },
  node: string,
): Promise<VerifyResult> {
  await migrateRebalance(deps.tier.control);
  const refs = await liveReferences(deps.tier, node);
  const v: VerifyResult = {
    node,
    liveRecords: refs.n,
    liveExamples: refs.examples,
    moved: 0,
    present: 0,
    missing: [],
    tombstonesOwed: 0,
    unfinished: 0,
    safe: false,
    verdict: '',
  };
  for (let after = ''; ;) {
    const page = await movedObjects(deps.tier.control, node, after, 500);
    if (page.length === 0) break;
    after = page[page.length - 1]!.objectId;
    const moved = page.filter((o) => o.state === 'complete' || o.state === 'post_processing');
    v.unfinished += page.filter((o) => !['complete', 'post_processing'].includes(o.state)).length;
    v.tombstonesOwed += page.filter((o) => o.state === 'post_processing').length;
    v.moved += moved.length;
    await eachLimit(moved, 16, async (o) => {
      const url = o.newShark && deps.nodeUrl(o.newShark.manta_storage_id);
      const h = url
        ? await deps.storage.head(url, o.copyOwner, o.objectId).catch(() => undefined)
        : undefined;
      if (h && h.contentLength === o.bytes) v.present++;
      else if (v.missing.length < 20)
        v.missing.push(`${o.objectId} on ${o.newShark?.manta_storage_id ?? '?'}`);
    });
  }
  v.safe = v.liveRecords === 0 && v.present === v.moved;
  v.verdict = v.safe
    ? `SAFE TO REMOVE ${node}: no live record names it; ${v.present}/${v.moved} moved copies present with the right size` +
      (v.tombstonesOwed ? ` (${v.tombstonesOwed} old copies not tombstoned: the node was unreachable)` : '')
    : `NOT SAFE to remove ${node}: ${v.liveRecords} live record(s) still name it` +
      `${v.liveExamples.length ? ` (e.g. ${v.liveExamples[0]})` : ''}; ${v.moved - v.present} moved cop(ies) missing or the wrong size` +
      (v.unfinished
        ? `; ${v.unfinished} planned object(s) not finished (see \`remora rebalance status\`)`
        : '');
  return v;
}
