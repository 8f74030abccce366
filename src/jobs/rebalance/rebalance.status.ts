/**
 * Watching and proving a job: `status` (objects and bytes done and left, rate, ETA, skips and
 * errors by reason — as text, JSON and Prometheus metrics) and `verify` (MANTA-REFERENCE §3.5:
 * the original's verification was a job grepping the dumps for the removed storage id; here it
 * asks the live metadata and the destinations).
 */
import client from 'prom-client';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { StorageClient } from '../../storage/storage-client.js';
import { ADDRESS_UNKNOWN, type NodeLookup } from '../../storage/node-directory.js';
import {
  countByState,
  jobNodes,
  migrateRebalance,
  nodeWasEvacuated,
  objectsOffNode,
  type PlannedOffNode,
  readJob,
  recentCompletions,
} from './rebalance.repository.js';
import { isMalformed, readLive, recordsMentioning } from './rebalance.live.js';
import { eachLimit } from '../../core/concurrency.js';
import { copySet, dcCount, hasDuplicate } from './rebalance.types.js';
import { RemoraError } from '../../core/errors.js';

/** The rate is measured over the completions of this last window. */
const RATE_WINDOW_MS = 60_000;

export interface JobStatus {
  jobId: string;
  /** `draft` (a dry run, not runnable) or `planned`. */
  state: string;
  createdAt: string;
  params: Record<string, unknown>;
  total: { objects: number; bytes: number };
  done: { objects: number; bytes: number };
  left: { objects: number; bytes: number };
  byState: Record<string, { objects: number; bytes: number }>;
  reasons: { state: string; reason: string; objects: number }[];
  skippedKeys: number;
  rate: { objectsPerSecond: number; bytesPerSecond: number };
  /** 0 once nothing is left (printed `done`); null while unknown. */
  etaSeconds: number | null;
  /** The job's nodes (evacuated and destinations) whose address is unknown (with a directory). */
  addressUnknown?: string[];
}

const DONE = new Set(['complete', 'post_processing']);
const LEFT = new Set(['unprocessed', 'assigned']);

export async function jobStatus(tier: MetadataTier, jobId?: string, nodes?: NodeLookup): Promise<JobStatus> {
  await migrateRebalance(tier.control);
  const job = await readJob(tier.control, jobId);
  if (!job) throw new RemoraError('UsageError', jobId ? `no rebalance job ${jobId}` : 'no rebalance job yet');
  const counts = await countByState(tier.control, job.id);
  const s: JobStatus = {
    jobId: job.id,
    state: job.state,
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
  // Finished (nothing unprocessed or claimed): the rate is 0 and the ETA "done", not a figure
  // decaying over the last minute's completions.
  if (s.left.objects === 0 && job.state !== 'draft') s.etaSeconds = 0;
  else if (recent.objects > 0 && recent.first) {
    const secs = Math.max(1, (Date.now() - recent.first.getTime()) / 1000);
    s.rate = { objectsPerSecond: recent.objects / secs, bytesPerSecond: recent.bytes / secs };
    s.etaSeconds = Math.round(s.left.objects / s.rate.objectsPerSecond);
  }
  if (nodes) {
    const evac = typeof job.params.evacuate === 'string' ? [job.params.evacuate] : [];
    const ids = [...new Set([...evac, ...(await jobNodes(tier.control, job.id))])].sort();
    s.addressUnknown = ids.filter((id) => !nodes.url(id));
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
  const eta =
    s.etaSeconds === null ? '?' : s.etaSeconds === 0 && s.left.objects === 0 ? 'done' : `${s.etaSeconds}s`;
  return (
    `${s.jobId}: done ${s.done.objects}/${s.total.objects} objects (${mb(s.done.bytes)}/${mb(s.total.bytes)}), ` +
    `left ${s.left.objects}, ${s.rate.objectsPerSecond.toFixed(1)} obj/s ${mb(s.rate.bytesPerSecond)}/s, ETA ${eta}` +
    (reasons ? `, ${reasons}` : '') +
    (s.skippedKeys ? `, keys dropped ${s.skippedKeys}` : '') +
    (s.addressUnknown?.length ? `, ${ADDRESS_UNKNOWN}: ${s.addressUnknown.join(' ')}` : '')
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
  const eta = gauge('remora_rebalance_eta_seconds', 'Estimated seconds left (-1 unknown, 0 done)');
  for (const [state, v] of Object.entries(s.byState)) {
    objects.set({ job: s.jobId, state }, v.objects);
    bytes.set({ job: s.jobId, state }, v.bytes);
  }
  for (const r of s.reasons) reasons.set({ job: s.jobId, state: r.state, reason: r.reason }, r.objects);
  rate.set({ job: s.jobId }, s.rate.bytesPerSecond);
  eta.set({ job: s.jobId }, s.etaSeconds ?? -1);
  return registry.metrics();
}

/** What `verify` tallies: a count and a few examples. */
export interface Tally {
  count: number;
  examples: string[];
}

/**
 * Checks that block SAFE (each a count with examples):
 *   namesNode         live records still naming the node
 *   unreadableNaming  malformed live records whose text mentions the node (cannot be proven not to)
 *   missing           a copy a live record names is not on its node (404), or has the wrong size
 *   wrongBytes        the node reports another MD5 than the record's
 *   unreachable       the node holding a copy does not answer
 *   addressUnknown    neither configuration nor a heartbeat record gives the node's address
 *   fewerDatacenters  a record has fewer datacenters than before the move (the plan recorded it;
 *                     for objects planned before that was recorded, fewer than min(2, copies,
 *                     datacenters of the deployment))
 *   duplicateNode     a record names one node twice
 *   recordsDisagree   the records of one objectId name different copies
 * Events that do not block (reported): `malformed`, a live record of a moved object that cannot be
 * read and does not mention the node.
 */
export const VERIFY_CHECKS = [
  'namesNode',
  'unreadableNaming',
  'missing',
  'wrongBytes',
  'unreachable',
  'addressUnknown',
  'fewerDatacenters',
  'duplicateNode',
  'recordsDisagree',
] as const;
export type VerifyCheck = (typeof VERIFY_CHECKS)[number];

const CHECK_WORDS: Record<VerifyCheck, string> = {
  namesNode: 'live record(s) still name it',
  unreadableNaming: 'unreadable live record(s) mention it',
  missing: 'cop(ies) missing or the wrong size',
  wrongBytes: 'cop(ies) with the wrong MD5',
  unreachable: 'cop(ies) on unreachable nodes',
  addressUnknown: 'cop(ies) on nodes whose address is unknown',
  fewerDatacenters: 'record(s) with fewer datacenters than before',
  duplicateNode: 'record(s) naming one node twice',
  recordsDisagree: 'object(s) whose records name different copies',
};

export interface VerifyResult {
  node: string;
  /** Live records naming the node, and a few of their keys. */
  liveRecords: number;
  liveExamples: string[];
  /** Objects the jobs evacuating the node planned, and how many of them moved. */
  planned: number;
  moved: number;
  tombstonesOwed: number;
  unfinished: number;
  recordsChecked: number;
  copiesChecked: number;
  present: number;
  /** Examples of missing copies (kept for scripts reading the old shape). */
  missing: string[];
  problems: Partial<Record<VerifyCheck, Tally>>;
  events: { malformed?: Tally };
  safe: boolean;
  verdict: string;
}

const EXAMPLES = 5;

function tally(t: Partial<Record<string, Tally>>, kind: string, example: string): void {
  const x = (t[kind] ??= { count: 0, examples: [] });
  x.count++;
  if (x.examples.length < EXAMPLES) x.examples.push(example);
}

export interface VerifyDeps {
  tier: MetadataTier;
  storage: StorageClient;
  /** Node addresses (storage/node-directory.ts): configuration, else heartbeat records. */
  nodes: NodeLookup;
}

/**
 * Prove a node can go. Refuses a node nobody knows (not configured, no heartbeat record, never
 * evacuated by a job): "SAFE" about a typo would be a lie. Reads every live record mentioning the
 * node, then, for every object the jobs evacuating it planned, every live record of that objectId:
 * each record's datacenters, duplicates, agreement, and each copy it names (HEAD: size, and MD5
 * where the node knows it).
 */
export async function verifyEvacuated(deps: VerifyDeps, node: string): Promise<VerifyResult> {
  await migrateRebalance(deps.tier.control);
  if (!deps.nodes.has(node) && !(await nodeWasEvacuated(deps.tier.control, node)))
    throw new RemoraError(
      'UsageError',
      `unknown storage node ${node}: not configured, no manta_storage record, and no rebalance job evacuated it`,
    );
  const v: VerifyResult = {
    node,
    liveRecords: 0,
    liveExamples: [],
    planned: 0,
    moved: 0,
    tombstonesOwed: 0,
    unfinished: 0,
    recordsChecked: 0,
    copiesChecked: 0,
    present: 0,
    missing: [],
    problems: {},
    events: {},
    safe: false,
    verdict: '',
  };
  const seenMalformed = new Set<string>();
  for await (const r of recordsMentioning(deps.tier, node)) {
    if (isMalformed(r)) {
      seenMalformed.add(`${r.shard}\t${r.key}`);
      tally(v.problems, 'unreadableNaming', `${r.key} on ${r.shard}: ${r.why}`);
    } else if (r.value.type === 'object' && r.value.sharks.some((s) => s.manta_storage_id === node)) {
      v.liveRecords++;
      if (v.liveExamples.length < EXAMPLES) v.liveExamples.push(r.key);
    }
  }
  if (v.liveRecords > 0) v.problems.namesNode = { count: v.liveRecords, examples: v.liveExamples };
  const deploymentDcs = new Set((await deps.tier.storageRecords()).map((r) => r.value.datacenter)).size;
  for (let after = ''; ;) {
    const page = await objectsOffNode(deps.tier.control, node, after, 500);
    if (page.length === 0) break;
    after = page[page.length - 1]!.objectId;
    await verifyPage(deps, page, deploymentDcs, v, seenMalformed);
  }
  v.safe = Object.keys(v.problems).length === 0;
  const checked = `${v.planned} planned object(s), ${v.recordsChecked} live record(s) and ${v.copiesChecked} cop(ies) checked`;
  v.verdict = v.safe
    ? `SAFE TO REMOVE ${node}: no live record names it; ${checked}: every record keeps its datacenters, ` +
      `the records of each object agree, every copy present with the right size` +
      (v.tombstonesOwed ? ` (${v.tombstonesOwed} old copies not tombstoned: the node was unreachable)` : '')
    : `NOT SAFE to remove ${node}: ` +
      VERIFY_CHECKS.filter((k) => v.problems[k])
        .map((k) => `${v.problems[k]!.count} ${CHECK_WORDS[k]} (e.g. ${v.problems[k]!.examples[0]})`)
        .join('; ') +
      `; ${checked}` +
      (v.unfinished
        ? `; ${v.unfinished} planned object(s) not finished (see \`remora rebalance status\`)`
        : '');
  if (v.events.malformed)
    v.verdict += `; ${v.events.malformed.count} unreadable record(s) of moved objects (e.g. ${v.events.malformed.examples[0]})`;
  return v;
}

async function verifyPage(
  deps: VerifyDeps,
  page: PlannedOffNode[],
  deploymentDcs: number,
  v: VerifyResult,
  seenMalformed: Set<string>,
): Promise<void> {
  v.planned += page.length;
  for (const o of page) {
    if (o.state === 'complete' || o.state === 'post_processing') v.moved++;
    else v.unfinished++;
    if (o.state === 'post_processing') v.tombstonesOwed++;
  }
  const live = await readLive(
    deps.tier,
    page.map((o) => o.objectId),
  );
  const heads: { o: PlannedOffNode; id: string }[] = [];
  for (const o of page) {
    for (const m of live.malformed.get(o.objectId) ?? [])
      if (!seenMalformed.has(`${m.shard}\t${m.key}`)) {
        seenMalformed.add(`${m.shard}\t${m.key}`);
        v.events.malformed ??= { count: 0, examples: [] };
        tally(v.events, 'malformed', `${m.key} on ${m.shard}: ${m.why}`);
      }
    const recs = (live.rows.get(o.objectId) ?? []).flatMap((r) =>
      r.value.type === 'object' ? [{ key: r.key, sharks: r.value.sharks }] : [],
    );
    if (recs.length === 0) continue; // overwritten or deleted since: nothing left to keep
    v.recordsChecked += recs.length;
    for (const r of recs) {
      const ids = r.sharks.map((s) => s.manta_storage_id);
      const want = o.dcsBefore ?? Math.min(2, ids.length, deploymentDcs);
      if (dcCount(r.sharks) < want)
        tally(v.problems, 'fewerDatacenters', `${r.key}: ${dcCount(r.sharks)} datacenter(s), had ${want}`);
      if (hasDuplicate(r.sharks)) tally(v.problems, 'duplicateNode', `${r.key}: ${ids.join(',')}`);
    }
    const sets = new Set(recs.map((r) => copySet(r.sharks)));
    if (sets.size > 1)
      tally(
        v.problems,
        'recordsDisagree',
        `${o.objectId}: ${[...sets].map((c) => `${recs.find((r) => copySet(r.sharks) === c)!.key} → ${c}`).join('; ')}`,
      );
    for (const id of new Set(recs.flatMap((r) => r.sharks.map((s) => s.manta_storage_id))))
      heads.push({ o, id });
  }
  await eachLimit(heads, 16, async ({ o, id }) => {
    v.copiesChecked++;
    const where = `${o.objectId} on ${id}`;
    const url = deps.nodes.url(id);
    if (!url) {
      tally(
        v.problems,
        'addressUnknown',
        `${where}: ${deps.nodes.has(id) ? ADDRESS_UNKNOWN : 'unknown node'}`,
      );
      return;
    }
    let h: Awaited<ReturnType<StorageClient['head']>>;
    try {
      h = await deps.storage.head(url, o.copyOwner, o.objectId);
    } catch (err) {
      const e = err as RemoraError;
      tally(v.problems, 'unreachable', `${where}: ${e.code ?? 'error'}: ${e.message}`);
      return;
    }
    if (!h || h.contentLength !== o.bytes) {
      tally(v.problems, 'missing', h ? `${where}: ${h.contentLength} bytes, expected ${o.bytes}` : where);
      if (v.missing.length < 20) v.missing.push(where);
    } else if (h.md5 !== undefined && o.md5 && h.md5 !== o.md5)
      tally(v.problems, 'wrongBytes', `${where}: MD5 ${h.md5}, the record says ${o.md5}`);
    else v.present++;
  });
}
