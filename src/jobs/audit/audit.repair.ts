/**
 * Repair (docs/audit.md "Repair"): every problem of a day's audit, judged on live records and on
 * the nodes now, and healed with the rebalance move (rebalance.run.ts moveObjects) so the two
 * never differ in how a copy is placed, verified and recorded. Per batch of objectIds:
 *
 *   1. read every live record of the objectIds on every index shard (rebalance.live.ts)
 *        a problem copy no live record names any more              stale (counted; nothing to do)
 *        `no-listing` (a node the configuration does not know)      counted, never guessed at
 *   2. ask the nodes, for every copy the records name:
 *        the problem copy, `missing`: HEAD with size                present with that size: present-after-all
 *        the problem copy, `corrupt`, and every other copy: GET /md5 (hashed on the node)
 *        a copy whose MD5 and size equal the record's              good (a source)
 *        any other copy found absent or different                   bad too (repaired with the rest)
 *        a node that does not answer                                unknown (neither source nor bad)
 *   3. no good copy, every copy answered                            lost: a `fatal` event naming the
 *                                                                   objectId, its keys and nodes
 *   4. each bad copy: a destination by the rebalance planner's rules (RebalancePlanner.decide with
 *      the copy to replace: never a node a record names, keep or raise each record's
 *      datacenters, fresh heartbeat, room under the fill limit), then moveObjects: copy from a good
 *      copy → the destination verifies the MD5 before rename → etag-guarded update of every record
 *      naming the bad copy, on every shard (bad → new) → re-read → the bad copy MOVEs to
 *      `/quarantine/<day>/<objectId>` on its node (gc.apply.ts moveCopy; a missing one answers
 *      absent) → re-read. An object with two bad copies repairs them one round after the other.
 *
 * A dry run does 1–3 for real (they only read) and plans 4 without doing it (`copiesWouldRepair`).
 *
 * What a crash at each step leaves, and how the next run converges (it re-derives everything
 * from the live records and the nodes, no journal):
 *   before 4's copy        nothing changed                              → redone
 *   after the copy         a verified copy on the destination, records unchanged → the same
 *                          destination is picked (a rendezvous hash of objectId and node, not
 *                          room: RebalancePlanner `stable`) while it stays eligible, and the
 *                          copy is found complete (HEAD with its MD5) or written again
 *   during the update      some records name the new copy            → the planner's convergence
 *                          rule makes the others name the same copies (RebalancePlanner "settled")
 *   after the update       records clean, bad copy still in place    → the problem is stale; a
 *                          corrupt one no record names is quarantined then (absent: done)
 *   after the quarantine   done                                      → stale / present-after-all
 */
import { eachLimit } from '../../core/concurrency.js';
import { type Clock, SeededRandom } from '../../core/clock.js';
import { dayOf } from '../../core/days.js';
import { isRemoraError, RemoraError } from '../../core/errors.js';
import type { ReportBuilder } from '../../core/run-report.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { MantaObjectValue, Shark } from '../../metadata/types.js';
import type { StorageClient } from '../../storage/storage-client.js';
import { ByteThrottle } from '../../storage/throttle.js';
import { moveCopy, type GcApplyDeps } from '../gc/gc.apply.js';
import { DEFAULT_GC_OPTIONS } from '../gc/gc.job.js';
import { readLive } from '../rebalance/rebalance.live.js';
import type { LiveRow } from '../rebalance/rebalance.metadata.js';
import { RebalancePlanner } from '../rebalance/rebalance.plan.js';
import type { ObjectRow } from '../rebalance/rebalance.repository.js';
import { moveObjects, type RetireOldCopies, type RunOptions } from '../rebalance/rebalance.run.js';
import { replaceShark, type ObjectGroup } from '../rebalance/rebalance.types.js';
import type { Problem } from './audit.rules.js';

/** ObjectIds judged together (one indexed `objectid = ANY` read per shard). */
const REPAIR_BATCH = 200;
/** Nodes asked at once (a GET /md5 reads a whole file on its node). */
const PROBES_IN_PARALLEL = 8;
/** Objects copied at once (rebalance's default). */
const MOVES_IN_PARALLEL = 8;

/** What a node said about one copy (step 2). */
export type CopyState = 'good' | 'present' | 'missing' | 'corrupt' | 'unknown';

export interface RepairDeps {
  tier: MetadataTier;
  /** Undefined: this process has no internal credential; fine until a node must be asked. */
  storage: StorageClient | undefined;
  nodeUrl: (id: string) => string | undefined;
  refreshNodes?: () => Promise<void>;
  clock: Clock;
  report: ReportBuilder;
  signal?: AbortSignal;
  /** Called between the move's steps (rebalance.run.ts RunStep): a seam for crash tests. */
  onStep?: RunOptions['onStep'];
}

export interface RepairOptions {
  dryRun: boolean;
  /** The picker's rules (config `picker`): heartbeat lag, fill limit. */
  lagMs: number;
  maxFillPct: number;
}

/** An object with no good copy left (step 3). */
export interface LostObject {
  objectId: string;
  keys: { key: string; shard: string }[];
  nodes: { node: string; state: CopyState }[];
}

export interface RepairResult {
  lost: LostObject[];
  /** Bad copies not repaired (no destination, node unreachable, a record changed…): run again. */
  left: number;
}

interface ObjectWork {
  objectId: string;
  records: LiveRow[];
  /** The problem copies the records still name, by node, with the audit's kind. */
  targets: Map<string, Problem['kind']>;
  /** Every copy the records name, and what its node said. */
  sharks: Shark[];
  state: Map<string, CopyState>;
  /** The planned moves, in order (old → new), and the verified sources. */
  moves: { oldShark: Shark; newShark: Shark }[];
  good: Shark[];
  failed?: boolean;
}

const value = (r: LiveRow) => r.value as MantaObjectValue;

/** The copies the records name, one per node, in the order the records list them. */
function sharksOf(records: readonly LiveRow[]): Shark[] {
  const m = new Map<string, Shark>();
  for (const r of records)
    for (const s of value(r).sharks) if (!m.has(s.manta_storage_id)) m.set(s.manta_storage_id, s);
  return [...m.values()];
}

/** The records as the rebalance planner reads them (every live record of the objectId). */
export function groupOf(objectId: string, records: readonly LiveRow[]): ObjectGroup {
  const v = value(records[0]!);
  return {
    objectId,
    copyOwner: v.creator || v.owner,
    md5: v.contentMD5,
    contentLength: v.contentLength,
    keys: records.map((r) => ({
      key: r.key,
      shard: r.shard,
      morayEtag: r.etag,
      etag: value(r).etag,
      owner: value(r).owner,
      sharks: value(r).sharks,
    })),
  };
}

/** The repair of one set of problems (a day's audit, file by file). */
export class Repairer {
  private readonly lost: LostObject[] = [];
  private left = 0;
  private readonly throttles = new Map<string, { objects: ByteThrottle; bytes: ByteThrottle }>();

  constructor(
    private readonly deps: RepairDeps,
    private readonly o: RepairOptions,
  ) {}

  /** Repair the problems of one audit task (every problem of an objectId is in the same task). */
  async repairGroup(problems: readonly Problem[]): Promise<void> {
    const r = this.deps.report;
    r.count('problemsRead', problems.length);
    const byObject = new Map<string, Problem[]>();
    for (const p of problems) {
      const id = p.objectId.toLowerCase();
      byObject.set(id, [...(byObject.get(id) ?? []), p]);
    }
    const ids = [...byObject.keys()];
    for (let i = 0; i < ids.length; i += REPAIR_BATCH) {
      if (this.deps.signal?.aborted) return;
      await this.repairBatch(ids.slice(i, i + REPAIR_BATCH), byObject);
    }
  }

  finish(): RepairResult {
    return { lost: this.lost, left: this.left };
  }

  private async repairBatch(ids: string[], byObject: Map<string, Problem[]>): Promise<void> {
    const r = this.deps.report;
    r.count('objects', ids.length);
    const live = await readLive(this.deps.tier, ids);
    const work: ObjectWork[] = [];
    const staleCorrupt: { node: string; owner: string; objectId: string }[] = [];
    for (const objectId of ids) {
      const problems = byObject.get(objectId)!;
      const nodes = new Map<string, Problem>();
      for (const p of problems) if (!nodes.has(p.node)) nodes.set(p.node, p);
      r.count('copiesWithProblems', nodes.size);
      const bad = live.malformed.get(objectId)?.[0];
      if (bad) {
        this.left += nodes.size;
        r.count('copiesSkippedMalformed', nodes.size).event('malformed-record', 'error', {
          objectId,
          key: bad.key,
          shard: bad.shard,
          why: bad.why,
        });
        continue;
      }
      const records = live.rows.get(objectId) ?? [];
      const named = new Set(records.flatMap((x) => value(x).sharks.map((s) => s.manta_storage_id)));
      const targets = new Map<string, Problem['kind']>();
      for (const [node, p] of nodes) {
        if (!named.has(node)) {
          r.count('copiesStale').event('stale', 'info', { objectId, node, kind: p.kind });
          if (p.kind === 'corrupt') staleCorrupt.push({ node, owner: p.owner ?? '', objectId });
        } else if (p.kind === 'no-listing') {
          this.left++;
          r.count('copiesNoListing').event('no-listing-not-repaired', 'warning', {
            objectId,
            node,
            key: p.key,
          });
        } else targets.set(node, p.kind);
      }
      if (targets.size === 0) continue;
      work.push({
        objectId,
        records,
        targets,
        sharks: sharksOf(records),
        state: new Map(),
        moves: [],
        good: [],
      });
    }
    if (!this.deps.storage) {
      // As the deep audit: a worker without the nodes' credential cannot ask them; say so, go on.
      const n = work.reduce((a, w) => a + w.targets.size, 0);
      this.left += n;
      if (n > 0)
        r.count('copiesSkippedNoCredential', n).event('repair-no-credential', 'warning', {
          why: 'this worker has no internal credential for the storage nodes (storage.internalToken)',
        });
      return;
    }
    await this.quarantineStale(staleCorrupt);
    await this.probe(work);
    const planned = work.filter((w) => this.judge(w));
    if (planned.length === 0) return;
    await this.plan(planned);
    if (!this.o.dryRun) await this.move(planned);
  }

  /** The storage-node client; UsageError when this process has no credential (pipeline/job.ts). */
  private storage(): StorageClient {
    if (this.deps.storage) return this.deps.storage;
    throw new RemoraError(
      'UsageError',
      'repair must ask the storage nodes and this process has no internal credential for them: set ' +
        "storage.internalToken in its configuration (or run it with the deployment's state directory)",
    );
  }

  /** Step 2: what each node says about each copy the records name. */
  private async probe(work: ObjectWork[]): Promise<void> {
    const { nodeUrl } = this.deps;
    const storage = this.storage();
    const jobs = work.flatMap((w) => w.sharks.map((s) => ({ w, s })));
    await eachLimit(jobs, PROBES_IN_PARALLEL, async ({ w, s }) => {
      const v = value(w.records[0]!);
      const owner = v.creator || v.owner;
      const url = nodeUrl(s.manta_storage_id);
      let state: CopyState;
      try {
        if (!url) state = 'unknown';
        else if (w.targets.get(s.manta_storage_id) === 'missing') {
          const h = await storage.head(url, owner, w.objectId);
          state = !h ? 'missing' : h.contentLength === v.contentLength ? 'present' : 'corrupt';
        } else {
          const m = await storage.md5(url, owner, w.objectId);
          state = !m ? 'missing' : m.md5 === v.contentMD5 && m.bytes === v.contentLength ? 'good' : 'corrupt';
        }
      } catch (err) {
        if (!isRemoraError(err, 'StorageNodeUnreachable')) throw err;
        state = 'unknown';
      }
      w.state.set(s.manta_storage_id, state);
    });
  }

  /** Step 3: true when the object has bad copies and a good one to repair them from. */
  private judge(w: ObjectWork): boolean {
    const r = this.deps.report;
    const st = (s: Shark) => w.state.get(s.manta_storage_id) ?? 'unknown';
    for (const [node] of w.targets) {
      const s = w.state.get(node);
      if (s === 'good' || s === 'present')
        r.count('copiesPresentAfterAll').event('present-after-all', 'info', { objectId: w.objectId, node });
      if (s === 'unknown') {
        this.left++;
        r.count('copiesSkippedNodeUnreachable').event('node-unreachable', 'warning', {
          objectId: w.objectId,
          node,
        });
      }
    }
    const bad = w.sharks.filter((s) => st(s) === 'missing' || st(s) === 'corrupt');
    for (const s of bad)
      if (!w.targets.has(s.manta_storage_id))
        r.count('copiesFoundBad').event('found-bad-copy', 'warning', {
          objectId: w.objectId,
          node: s.manta_storage_id,
          state: st(s),
        });
    if (bad.length === 0) return false;
    w.good = w.sharks.filter((s) => st(s) === 'good');
    if (w.good.length > 0) return true;
    const nodes = w.sharks.map((s) => ({ node: s.manta_storage_id, state: st(s) }));
    if (nodes.some((n) => n.state === 'unknown' || n.state === 'present')) {
      // Not proven lost: a node did not answer, or a copy was only seen by size.
      this.left += bad.length;
      r.count('copiesUndetermined', bad.length).event('no-verified-source', 'warning', {
        objectId: w.objectId,
        nodes,
      });
      return false;
    }
    const lost: LostObject = {
      objectId: w.objectId,
      keys: w.records.map((x) => ({ key: x.key, shard: x.shard })),
      nodes,
    };
    this.lost.push(lost);
    r.count('objectsLost').count('copiesLost', bad.length).event('lost-object', 'fatal', lost);
    return false;
  }

  /** Step 4's choice: one destination per bad copy, each decided on the records as they will be. */
  private async plan(work: ObjectWork[]): Promise<void> {
    const r = this.deps.report;
    // Fresh heartbeats and capacities for every batch: a node that stopped answering an hour into
    // a long run is not chosen again.
    const records = (await this.deps.tier.storageRecords()).map((x) => x.value);
    const planner = new RebalancePlanner(records, {
      maxFillPct: this.o.maxFillPct,
      lagMs: this.o.lagMs,
      now: this.deps.clock.now(),
      // Unused with `stable`, which picks by hash so that a rerun after a crash finds its copy.
      random: new SeededRandom(0),
      stable: true,
    });
    for (const w of work) {
      let g = groupOf(w.objectId, w.records);
      const bad = w.sharks.filter((s) => {
        const st = w.state.get(s.manta_storage_id);
        return st === 'missing' || st === 'corrupt';
      });
      for (const [i, old] of bad.entries()) {
        const d = planner.decide(g, old);
        if (!d.move) {
          this.left += bad.length - i;
          r.count('copiesSkipped', bad.length - i).event(`skipped:${d.reason ?? 'unknown'}`, 'warning', {
            objectId: w.objectId,
            node: old.manta_storage_id,
            ...(d.detail ? { detail: d.detail } : {}),
          });
          break;
        }
        w.moves.push({ oldShark: old, newShark: d.move.newShark });
        g = {
          ...g,
          keys: g.keys.map((k) => ({ ...k, sharks: replaceShark(k.sharks, old, d.move!.newShark) })),
        };
        if (this.o.dryRun)
          r.count('copiesWouldRepair')
            .count(`copiesWouldRepair.${d.move.newShark.manta_storage_id}`)
            .event('would-repair', 'info', {
              objectId: w.objectId,
              from: old.manta_storage_id,
              to: d.move.newShark.manta_storage_id,
              state: w.state.get(old.manta_storage_id),
            });
      }
    }
  }

  /** Step 4: the rebalance move, one round per bad copy of an object. */
  private async move(work: ObjectWork[]): Promise<void> {
    const r = this.deps.report;
    const { tier, nodeUrl, clock } = this.deps;
    const storage = this.storage();
    const runDeps = { tier, storage, nodeUrl, clock };
    const byId = new Map(work.map((w) => [w.objectId, w]));
    const retire = this.quarantine(byId);
    const rounds = Math.max(0, ...work.map((w) => w.moves.length));
    for (let round = 0; round < rounds; round++) {
      if (this.deps.signal?.aborted) return;
      const now = work.filter((w) => !w.failed && w.moves[round]);
      const rows: ObjectRow[] = now.map((w) => {
        const v = value(w.records[0]!);
        const m = w.moves[round]!;
        return {
          objectId: w.objectId,
          state: 'assigned',
          reason: null,
          detail: null,
          bytes: v.contentLength,
          md5: v.contentMD5,
          copyOwner: v.creator || v.owner,
          cause: 'repair',
          oldShark: m.oldShark,
          newShark: m.newShark,
          // No planned keys: every live record naming the bad copy is adopted with the `_etag`
          // moveObjects reads (analyze), and judged record by record there.
          keys: [],
          // > 1: a destination already holding the verified copy (a crash after the copy) is reused.
          attempts: 2,
          dcsBefore: null,
        };
      });
      await this.deps.refreshNodes?.();
      const outs = await moveObjects(runDeps, { storage, nodeUrl }, rows, {
        concurrency: MOVES_IN_PARALLEL,
        sources: (row) => byId.get(row.objectId)!.good,
        retire,
        ...(this.deps.onStep ? { onStep: this.deps.onStep } : {}),
      });
      for (const [i, out] of outs.entries()) {
        const w = now[i]!;
        const m = w.moves[round]!;
        if (out.state === 'complete' || out.state === 'post_processing') {
          w.good.push(m.newShark);
          r.count('copiesRepaired').count(`copiesRepaired.${m.newShark.manta_storage_id}`);
          r.event('repaired', 'info', {
            objectId: w.objectId,
            from: m.oldShark.manta_storage_id,
            to: m.newShark.manta_storage_id,
          });
          if (out.state === 'post_processing')
            r.count('quarantineOwed').event('quarantine-owed', 'warning', {
              objectId: w.objectId,
              node: m.oldShark.manta_storage_id,
              detail: out.detail,
            });
        } else {
          w.failed = true;
          const left = w.moves.length - round;
          this.left += left;
          r.count('copiesSkipped', left).event(`${out.state}:${out.reason ?? 'unknown'}`, 'warning', {
            objectId: w.objectId,
            node: m.oldShark.manta_storage_id,
            ...(out.detail ? { detail: out.detail } : {}),
          });
        }
      }
    }
  }

  /** Step 4's MOVE of a bad copy to `/quarantine/<day>/<objectId>` on its node (GC's moveCopy). */
  private quarantine(byId: Map<string, ObjectWork>): RetireOldCopies {
    return {
      tree: 'quarantine',
      move: async (node, _url, day, copies) => {
        const out = [];
        for (const c of copies) {
          const bytes = value(byId.get(c.objectId)!.records[0]!).contentLength;
          const ok = await moveCopy({ node, owner: c.owner, objectId: c.objectId }, bytes, this.gcDeps(day));
          out.push(
            ok
              ? { ...c, result: 'moved' as const }
              : {
                  ...c,
                  result: 'error' as const,
                  code: 'StorageNodeUnreachable',
                  message: 'left for the next run',
                },
          );
        }
        return out;
      },
    };
  }

  /** A corrupt copy no record names any more (a run that stopped after the update): quarantine it. */
  private async quarantineStale(copies: { node: string; owner: string; objectId: string }[]): Promise<void> {
    if (this.o.dryRun || copies.length === 0) return;
    const day = dayOf(new Date(this.deps.clock.now()));
    for (const c of copies) if (c.owner) await moveCopy(c, 0, this.gcDeps(day));
  }

  private gcDeps(day: string): GcApplyDeps {
    const { tier, nodeUrl, report } = this.deps;
    return {
      tier,
      storage: this.storage(),
      nodeUrl,
      day,
      tree: 'quarantine',
      report,
      throttle: (node) => {
        let t = this.throttles.get(node);
        if (!t)
          this.throttles.set(
            node,
            (t = {
              objects: new ByteThrottle({ bytesPerSecond: DEFAULT_GC_OPTIONS.objectsPerSecondPerNode }),
              bytes: new ByteThrottle({ bytesPerSecond: DEFAULT_GC_OPTIONS.bytesPerSecondPerNode }),
            }),
          );
        return t;
      },
    };
  }
}
