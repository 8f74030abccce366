/**
 * Planning a job (I/O around the pure planner) and re-planning for `retry`.
 *
 * Plan: read the newest unpack of every index shard, refuse it if it is older than the evacuated
 * node's last write, decide every candidate objectId, store the decisions in `rebalance_objects`
 * and write the original's instruction files, one JSON line per key, per destination:
 *   /poseidon/stor/manta_rebalance/do/<newShark>/<jobId>      (mola kick_off_rebalance.js layout)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Clock, type Random, systemClock, systemRandom } from '../../core/clock.js';
import { RemoraError } from '../../core/errors.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { StorageClient } from '../../storage/storage-client.js';
import {
  destinationSurprise,
  type DestinationSummary,
  type ExpectedDestinations,
  type PlanOptions,
  RebalancePlanner,
} from './rebalance.plan.js';
import {
  activeJobsFor,
  commitDraft,
  deleteJob,
  insertJob,
  insertObjects,
  migrateRebalance,
  type NewObjectRow,
  plannedMoves,
  purgeDrafts,
  readJob,
  replanObject,
  retryCandidates,
  updateJobSummary,
} from './rebalance.repository.js';
import { readLive } from './rebalance.live.js';
import {
  eachCandidateGroup,
  checkSnapshotFresh,
  latestShardSnapshots,
  nodeLastWrite,
} from './rebalance.snapshot.js';
import { instructionLines, type ObjectGroup, type PlanDecision } from './rebalance.types.js';
import type { NodeUrl } from './rebalance.transfer.js';

export const INSTRUCTIONS_ROOT = '/poseidon/stor/manta_rebalance/do';
/** Rows per insert statement while planning, and per page when writing the instruction files. */
const INSERT_BATCH = 1000;
/**
 * A draft (a dry run) older than this is not committed (capacity and heartbeats have moved on: plan
 * again) and is dropped by the next plan, since a draft of a large node holds one row per object.
 */
export const DRAFT_TTL_MS = 24 * 3600_000;

export interface PlanDeps {
  tier: MetadataTier;
  store: ObjectStore;
  storage: StorageClient;
  nodeUrl: NodeUrl;
  clock?: Clock;
  random?: Random;
}

export interface PlanRequest {
  evacuate?: string;
  ignore?: string[];
  fixSingleDc?: boolean;
  maxFillPct: number;
  lagMs: number;
  /** Extra time between the node's last write and the snapshot (default 1 s). */
  lastWriteMarginMs?: number;
  /** Store the plan as a draft only: `commitPlan` (`plan --commit <id>`) stores it unchanged. */
  dryRun?: boolean;
  /** Plan even though another active job evacuates the same node. */
  force?: boolean;
  /** The gate: refuse to store a plan whose destination set is not this one. */
  expectDestinations?: ExpectedDestinations;
}

export interface PlanResult {
  /** The plan's id: a draft's id after a dry run, the job's id once stored (the same id). */
  jobId: string;
  dryRun: boolean;
  snapshots: { shard: string; snapshotTime: string }[];
  lastWrite?: { at: string | null; from: string };
  destinations: DestinationSummary[];
  counts: Record<string, number>;
  objects: number;
  bytes: number;
  instructionFiles: string[];
  /** Other active jobs evacuating the same node (a dry run reports them; `--force` overrode them). */
  activeJobs?: string[];
  /** A dry run whose destination set fails `expectDestinations`: the surprise, named. */
  refused?: string;
}

/**
 * Plan: decide every object and store the decisions as a draft; unless it is a dry run, commit
 * the draft (`commitPlan`). A dry run's draft is the plan `plan --commit <id>` stores, unchanged:
 * no second draw of the random choices, no second read of capacities.
 */
export async function planJob(deps: PlanDeps, req: PlanRequest): Promise<PlanResult> {
  if (!req.evacuate && !req.fixSingleDc)
    throw new RemoraError('UsageError', 'nothing to plan: give --evacuate <node> and/or --fix-single-dc');
  const clock = deps.clock ?? systemClock;
  const records = (await deps.tier.storageRecords()).map((r) => r.value);
  if (req.evacuate && !records.some((r) => r.manta_storage_id === req.evacuate))
    throw new RemoraError(
      'UsageError',
      `unknown storage node ${req.evacuate}: it has no manta_storage record`,
    );
  // A mistyped --ignore would leave the node the operator meant to keep out a destination.
  const unknownIgnored = (req.ignore ?? []).filter((id) => !records.some((r) => r.manta_storage_id === id));
  if (unknownIgnored.length > 0)
    throw new RemoraError(
      'UsageError',
      `--ignore: unknown storage node(s) ${unknownIgnored.join(', ')}: no manta_storage record ` +
        `(known: ${records
          .map((r) => r.manta_storage_id)
          .sort()
          .join(', ')})`,
    );
  const db = deps.tier.control;
  await migrateRebalance(db);
  await purgeDrafts(db, DRAFT_TTL_MS);
  if (!req.dryRun && !req.force) refuseActive(await activeFor(db, req.evacuate), req.evacuate);
  const shards = deps.tier.indexShards.map((s) => s.name);
  const snapshots = await latestShardSnapshots(deps.store, shards, clock.now());
  let lastWrite: PlanResult['lastWrite'];
  if (req.evacuate) {
    const lw = await nodeLastWrite(deps.storage, deps.store, req.evacuate, deps.nodeUrl(req.evacuate));
    checkSnapshotFresh(snapshots, req.evacuate, lw.lastWriteMs, req.lastWriteMarginMs ?? 1000);
    lastWrite = {
      at: lw.lastWriteMs === undefined ? null : new Date(lw.lastWriteMs).toISOString(),
      from: lw.from,
    };
  }
  const opts: PlanOptions = {
    ...(req.evacuate ? { evacuate: req.evacuate } : {}),
    ignore: req.ignore ?? [],
    fixSingleDc: req.fixSingleDc === true,
    maxFillPct: req.maxFillPct,
    lagMs: req.lagMs,
    now: clock.now(),
    random: deps.random ?? systemRandom,
  };
  const planner = new RebalancePlanner(records, opts);
  const jobId = `${new Date(clock.now()).toISOString().replace(/[-:]/g, '').slice(0, 15)}-${crypto.randomBytes(3).toString('hex')}`;
  const { dryRun: _dry, force: _force, expectDestinations: _expect, ...kept } = req;
  const params = {
    ...kept,
    snapshots: snapshots.map((s) => ({ shard: s.source, snapshotTime: s.snapshotTime })),
    lastWrite,
  };
  const active = req.dryRun ? await activeFor(db, req.evacuate) : [];
  await insertJob(db, jobId, params, {}, 'draft');
  const result: PlanResult = {
    jobId,
    dryRun: true,
    snapshots: params.snapshots,
    ...(lastWrite ? { lastWrite } : {}),
    destinations: [],
    counts: {},
    objects: 0,
    bytes: 0,
    instructionFiles: [],
    ...(active.length > 0 ? { activeJobs: active.map((a) => a.id) } : {}),
  };
  try {
    let batch: NewObjectRow[] = [];
    await eachCandidateGroup(deps.store, snapshots, opts, async (g) => {
      const d = planner.decide(g);
      if (d.untouched) return;
      const key = d.reason ? `${d.state}:${d.reason}` : d.state;
      result.counts[key] = (result.counts[key] ?? 0) + 1;
      result.objects++;
      result.bytes += Number.isFinite(d.bytes) ? d.bytes : 0;
      batch.push(toRow(g, d));
      if (batch.length >= INSERT_BATCH) {
        await insertObjects(db, jobId, batch);
        batch = [];
      }
    });
    await insertObjects(db, jobId, batch);
    result.destinations = planner.summary();
    await updateJobSummary(db, jobId, { ...result });
  } catch (err) {
    await deleteJob(db, jobId).catch(() => {});
    throw err;
  }
  if (!req.dryRun)
    return commitPlan(deps, jobId, {
      force: req.force === true,
      ...(req.expectDestinations ? { expectDestinations: req.expectDestinations } : {}),
    });
  const surprise = req.expectDestinations && destinationSurprise(result.destinations, req.expectDestinations);
  return surprise ? { ...result, refused: surprise } : result;
}

/**
 * `plan --commit <id>`: store the draft a dry run printed, unchanged (the same objects, the same
 * destinations), after the gate and the one-active-job check (under the plan lock). Writes the
 * original's instruction files from the stored rows.
 */
export async function commitPlan(
  deps: Pick<PlanDeps, 'tier' | 'store'>,
  id: string,
  o: { force?: boolean; expectDestinations?: ExpectedDestinations } = {},
): Promise<PlanResult> {
  const db = deps.tier.control;
  await migrateRebalance(db);
  const job = await readJob(db, id);
  if (!job)
    throw new RemoraError('UsageError', `no plan ${id}: run \`remora rebalance plan --dry-run\` first`);
  if (job.state !== 'draft')
    throw new RemoraError(
      'UsageError',
      `plan ${id} is already stored: start it with \`remora rebalance run --job ${id}\``,
    );
  const summary = job.summary as unknown as PlanResult;
  if (!Array.isArray(summary.destinations))
    throw new RemoraError('UsageError', `plan ${id} was not finished (its planner stopped): plan again`);
  if (Date.now() - job.createdAt.getTime() > DRAFT_TTL_MS)
    throw new RemoraError(
      'UsageError',
      `plan ${id} is a draft from ${job.createdAt.toISOString()}, older than ${DRAFT_TTL_MS / 3600_000} h: ` +
        'capacities have moved on; plan again with --dry-run',
    );
  const surprise = o.expectDestinations && destinationSurprise(summary.destinations, o.expectDestinations);
  if (surprise)
    throw new RemoraError(
      'UnexpectedDestinations',
      `plan ${id} not stored: ${surprise}. It is kept as a draft: check its destination table ` +
        `(\`remora rebalance status --job ${id} --objects\`) and commit it with the right --expect-destinations, or plan again`,
    );
  const evacuate = typeof job.params.evacuate === 'string' ? job.params.evacuate : undefined;
  const result: PlanResult = { ...summary, jobId: id, dryRun: false, instructionFiles: [] };
  delete result.refused;
  const { active, committed } = await commitDraft(db, id, evacuate, o.force === true, { ...result });
  if (!committed) {
    refuseActive(active, evacuate);
    throw new RemoraError('UsageError', `plan ${id} was committed by another process meanwhile`);
  }
  if (active.length > 0) result.activeJobs = active.map((a) => a.id);
  else delete result.activeJobs;
  result.instructionFiles = await writeInstructions(deps.store, db, id);
  await updateJobSummary(db, id, { ...result });
  return result;
}

/** The original's instruction files, one JSON line per key, per destination, from the stored moves. */
async function writeInstructions(store: ObjectStore, db: PlanDeps['tier']['control'], id: string) {
  const writer = new InstructionWriter();
  try {
    for (let after = ''; ;) {
      const page = await plannedMoves(db, id, after, INSERT_BATCH);
      if (page.length === 0) break;
      after = page[page.length - 1]!.objectId;
      for (const r of page) {
        const lines = instructionLines({
          objectId: r.objectId,
          copyOwner: r.copyOwner,
          md5: r.md5,
          oldShark: r.oldShark!,
          newShark: r.newShark!,
          keys: r.keys,
        });
        await writer.add(r.newShark!.manta_storage_id, lines);
      }
    }
    return await writer.upload(store, id);
  } finally {
    await writer.close();
  }
}

async function activeFor(db: PlanDeps['tier']['control'], node: string | undefined) {
  return node ? activeJobsFor(db, node) : [];
}

/**
 * A second job evacuating a node while the first is active would plan the same copies again from
 * an older view of them: refused unless forced.
 */
function refuseActive(active: { id: string; open: number }[], node: string | undefined): void {
  if (active.length === 0) return;
  throw new RemoraError(
    'UsageError',
    `job ${active[0]!.id} is still active for ${node} (${active[0]!.open} object(s) not complete): ` +
      'finish it (`remora rebalance retry`, `remora rebalance status`) or plan again with --force',
  );
}

function toRow(g: ObjectGroup, d: PlanDecision): NewObjectRow {
  const m = d.move;
  return {
    objectId: g.objectId,
    state: d.state,
    reason: d.reason ?? null,
    detail: d.detail ?? null,
    bytes: Number.isFinite(g.contentLength) ? g.contentLength : 0,
    md5: g.md5,
    copyOwner: g.copyOwner,
    cause: m?.cause ?? null,
    oldShark: m?.oldShark ?? null,
    newShark: m?.newShark ?? null,
    keys: m?.keys ?? g.keys,
    dcsBefore: m?.dcsBefore ?? null,
  };
}

/** Instruction lines spooled to local files per destination, uploaded when the plan is stored. */
class InstructionWriter {
  private dir: string | undefined;
  private readonly files = new Map<string, fs.WriteStream>();

  async add(dest: string, lines: object[]): Promise<void> {
    this.dir ??= await fs.promises.mkdtemp(path.join(os.tmpdir(), 'remora-rebalance-'));
    let f = this.files.get(dest);
    if (!f) {
      f = fs.createWriteStream(path.join(this.dir, dest));
      this.files.set(dest, f);
    }
    const ok = f.write(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    if (!ok) await new Promise<void>((r) => f.once('drain', () => r()));
  }

  async upload(store: ObjectStore, jobId: string): Promise<string[]> {
    const out: string[] = [];
    for (const [dest, f] of this.files) {
      await new Promise<void>((resolve, reject) =>
        f.end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
      const p = `${INSTRUCTIONS_ROOT}/${dest}/${jobId}`;
      await store.put(p, fs.createReadStream(path.join(this.dir!, dest)));
      out.push(p);
    }
    return out;
  }

  async close(): Promise<void> {
    for (const f of this.files.values()) f.destroy();
    if (this.dir) await fs.promises.rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * `retry`: re-plan skipped and errored objects from LIVE records (their `_etag`s and copies may
 * have changed since the snapshot) and fresh heartbeats, so a destination that filled up or went
 * away is no longer chosen, and set them back to unprocessed.
 */
export async function replanForRetry(
  deps: PlanDeps,
  jobId: string | undefined,
  req: { maxFillPct: number; lagMs: number; reason?: string },
): Promise<{ jobId: string; counts: Record<string, number> }> {
  const db = deps.tier.control;
  await migrateRebalance(db);
  const job = await readJob(db, jobId);
  if (!job)
    throw new RemoraError(
      'UsageError',
      jobId ? `no rebalance job ${jobId}` : 'no rebalance job: run `remora rebalance plan` first',
    );
  if (job.state === 'draft')
    throw new RemoraError(
      'UsageError',
      `${job.id} is a dry run's draft: store it with \`remora rebalance plan --commit ${job.id}\``,
    );
  const p = job.params as { evacuate?: string; ignore?: string[]; fixSingleDc?: boolean };
  const records = (await deps.tier.storageRecords()).map((r) => r.value);
  const planner = new RebalancePlanner(records, {
    ...(p.evacuate ? { evacuate: p.evacuate } : {}),
    ignore: p.ignore ?? [],
    fixSingleDc: p.fixSingleDc === true,
    maxFillPct: req.maxFillPct,
    lagMs: req.lagMs,
    now: (deps.clock ?? systemClock).now(),
    random: deps.random ?? systemRandom,
  });
  const rows = await retryCandidates(db, job.id, req.reason);
  const live = await readLive(
    deps.tier,
    rows.map((r) => r.objectId),
  );
  const counts: Record<string, number> = {};
  for (const row of rows) {
    // Every live record of the objectId, all keys, all shards: the planner judges each one.
    const g: ObjectGroup = {
      objectId: row.objectId,
      copyOwner: row.copyOwner,
      md5: row.md5,
      contentLength: row.bytes,
      keys: (live.rows.get(row.objectId) ?? []).flatMap((r) =>
        r.value.type === 'object'
          ? [
              {
                key: r.key,
                shard: r.shard,
                morayEtag: r.etag,
                etag: r.value.etag,
                owner: r.value.owner,
                sharks: r.value.sharks,
              },
            ]
          : [],
      ),
    };
    const bad = live.malformed.get(row.objectId)?.[0];
    if (bad) {
      await replanObject(db, job.id, {
        ...toRow(g, { objectId: row.objectId, bytes: row.bytes, state: 'error', reason: 'BadMorayObject' }),
        detail: `${bad.key} on ${bad.shard} cannot be read: ${bad.why}`,
      });
      counts['error:BadMorayObject'] = (counts['error:BadMorayObject'] ?? 0) + 1;
      continue;
    }
    const d = planner.decide(g);
    // Nothing names the old copy any more (moved, overwritten, deleted): nothing is left to do.
    const state = d.untouched ? 'complete' : d.state;
    await replanObject(db, job.id, {
      ...toRow(g, d),
      state,
      reason: d.untouched ? null : (d.reason ?? null),
      detail: d.untouched ? 'nothing left to move at retry' : (d.detail ?? null),
    });
    const key = d.reason && !d.untouched ? `${state}:${d.reason}` : state;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return { jobId: job.id, counts };
}
