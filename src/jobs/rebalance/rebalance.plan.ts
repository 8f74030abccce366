/**
 * The rebalance planner: records + storage records → moves. Pure (no I/O): the clock reading and
 * the randomness are inputs, so every rule below is tested with tables of cases.
 *
 * Rules, and where they come from:
 *  - Which copy moves: the copy on the evacuated node (mola `-h`), else, in single-DC mode, the
 *    first copy of an object whose 2+ copies all sit in one datacenter (mola checkUniqueDcs,
 *    MANTA-1728). Every key referencing the objectId moves together (one decision per objectId,
 *    as mola's reducer reused the previous choice for rows sorted by objectId).
 *  - Destinations: fresh heartbeat (within the picker's lag: a disabled node is stale, §4.1), not
 *    the evacuated node, not `--ignore`d (mola `-i`). Unlike mola's choice "regardless if it has
 *    room" (§3.5), room is real: the Rust rebalancer's budget (evacuate.rs:2099-2160)
 *        total = availableMB / (1 − percentUsed/100);  budget = total × maxFill% − used − assigned
 *    counting bytes already assigned by this plan, so no destination is planned past the max fill.
 *  - Never two copies on one node: a node any record of the object lists is never a destination
 *    (Rust ObjectAlreadyOnDestShark).
 *  - Never fewer datacenters: the new set of DCs must be at least as large as before (Rust
 *    ObjectAlreadyInDatacenter), strictly larger in single-DC mode; among those, a node that
 *    raises the count wins, then the one with the most room left (spreads load: Rust sorts by
 *    most available, MANTA-5190 fixed that order being backwards), then chance.
 */
import type { Random } from '../../core/clock.js';
import type { Shark, StorageRecordValue } from '../../metadata/types.js';
import type { Move, ObjectGroup, PlanDecision } from './rebalance.types.js';

const MiB = 1024 * 1024;

export interface PlanOptions {
  /** manta_storage_id to evacuate (mola `-h`). */
  evacuate?: string;
  /** Also move one copy of every object whose copies all sit in one datacenter. */
  fixSingleDc?: boolean;
  /** Nodes never chosen as destinations (mola `-i`). */
  ignore?: readonly string[];
  /** No destination is planned past this fill (muskie maxUtilizationPct, default 90). */
  maxFillPct: number;
  /** A heartbeat older than this makes a node ineligible (muskie lag, 60 s). */
  lagMs: number;
  now: number;
  random: Random;
}

export type NodeRole = 'destination' | 'evacuated' | 'ignored' | 'stale' | 'full';

export interface NodeCapacity {
  shark: Shark;
  role: NodeRole;
  totalBytes: number;
  usedBytes: number;
  assignedBytes: number;
  assignedObjects: number;
}

export interface DestinationSummary {
  manta_storage_id: string;
  datacenter: string;
  role: NodeRole;
  objects: number;
  bytes: number;
  fillBeforePct: number;
  predictedFillPct: number;
}

function roleOf(r: StorageRecordValue, opts: PlanOptions, budget: number): NodeRole {
  if (r.manta_storage_id === opts.evacuate) return 'evacuated';
  if (opts.ignore?.includes(r.manta_storage_id)) return 'ignored';
  if (r.timestamp < opts.now - opts.lagMs) return 'stale';
  return budget > 0 ? 'destination' : 'full';
}

export class RebalancePlanner {
  readonly nodes: NodeCapacity[];

  constructor(
    records: readonly StorageRecordValue[],
    private readonly opts: PlanOptions,
  ) {
    this.nodes = records.map((r) => {
      const pct = Math.min(100, Math.max(0, r.percentUsed));
      const total = pct >= 100 ? r.availableMB * MiB : (r.availableMB * MiB) / (1 - pct / 100);
      const used = pct >= 100 ? total : total - r.availableMB * MiB;
      const budget = (total * opts.maxFillPct) / 100 - used;
      return {
        shark: { datacenter: r.datacenter, manta_storage_id: r.manta_storage_id },
        role: roleOf(r, opts, pct >= 100 ? 0 : budget),
        totalBytes: total,
        usedBytes: used,
        assignedBytes: 0,
        assignedObjects: 0,
      };
    });
  }

  /** The nodes this plan may write to (the original's sharks.json, with room). */
  get destinations(): NodeCapacity[] {
    return this.nodes.filter((n) => n.role === 'destination');
  }

  private budget(n: NodeCapacity): number {
    return (n.totalBytes * this.opts.maxFillPct) / 100 - n.usedBytes - n.assignedBytes;
  }

  /** Decide one object; assigns capacity when it moves. */
  decide(g: ObjectGroup): PlanDecision {
    const base = { objectId: g.objectId, bytes: g.contentLength };
    if (g.keys.length === 0) return { ...base, state: 'unprocessed', untouched: true };
    const bad = validate(g);
    if (bad) return { ...base, state: 'error', reason: bad };
    const holders = unionSharks(g);
    const old = this.oldCopy(holders);
    if (!old) return { ...base, state: 'unprocessed', untouched: true };
    const others = holders.filter((s) => s.manta_storage_id !== old.shark.manta_storage_id);
    const dcsBefore = new Set(holders.map((s) => s.datacenter)).size;
    const held = new Set(holders.map((s) => s.manta_storage_id));
    const dcOk = this.destinations
      .filter((n) => !held.has(n.shark.manta_storage_id))
      .map((n) => ({ n, dcs: new Set([...others.map((s) => s.datacenter), n.shark.datacenter]).size }))
      .filter((c) => (old.cause === 'single_dc' ? c.dcs > dcsBefore : c.dcs >= dcsBefore));
    if (dcOk.length === 0) return { ...base, state: 'skipped', reason: 'ObjectAlreadyInDatacenter' };
    const roomy = dcOk.filter((c) => this.budget(c.n) >= g.contentLength);
    if (roomy.length === 0) return { ...base, state: 'skipped', reason: 'DestinationInsufficientSpace' };
    const best = this.best(roomy);
    best.assignedBytes += g.contentLength;
    best.assignedObjects++;
    const move: Move = {
      objectId: g.objectId,
      copyOwner: g.copyOwner,
      md5: g.md5,
      bytes: g.contentLength,
      oldShark: old.shark,
      newShark: best.shark,
      keys: g.keys.filter((k) => k.sharks.some((s) => s.manta_storage_id === old.shark.manta_storage_id)),
      cause: old.cause,
    };
    return { ...base, state: 'unprocessed', move };
  }

  private oldCopy(holders: Shark[]): { shark: Shark; cause: Move['cause'] } | undefined {
    const evac = holders.find((s) => s.manta_storage_id === this.opts.evacuate);
    if (evac) return { shark: evac, cause: 'evacuate' };
    const dcs = new Set(holders.map((s) => s.datacenter));
    if (this.opts.fixSingleDc && holders.length >= 2 && dcs.size === 1)
      return { shark: holders[0]!, cause: 'single_dc' };
    return undefined;
  }

  /** Most datacenters after the move, then most room left, then chance. */
  private best(cands: { n: NodeCapacity; dcs: number }[]): NodeCapacity {
    const maxDcs = Math.max(...cands.map((c) => c.dcs));
    const top = cands.filter((c) => c.dcs === maxDcs).map((c) => c.n);
    const room = Math.max(...top.map((n) => this.budget(n)));
    // Nodes within 1 MiB of the roomiest are equals: chance spreads small objects among them.
    const equals = top.filter((n) => room - this.budget(n) <= MiB);
    return equals[Math.floor(this.opts.random.next() * equals.length)]!;
  }

  /** Per node: objects and bytes assigned, fill before and predicted after (the dry-run table). */
  summary(): DestinationSummary[] {
    return this.nodes.map((n) => ({
      manta_storage_id: n.shark.manta_storage_id,
      datacenter: n.shark.datacenter,
      role: n.role,
      objects: n.assignedObjects,
      bytes: n.assignedBytes,
      fillBeforePct: pct(n.usedBytes, n.totalBytes),
      predictedFillPct: pct(n.usedBytes + n.assignedBytes, n.totalBytes),
    }));
  }
}

function pct(part: number, total: number): number {
  return total > 0 ? Math.round((part / total) * 1000) / 10 : 100;
}

/** Every node any record of the object lists, in the order first seen. */
export function unionSharks(g: ObjectGroup): Shark[] {
  const out = new Map<string, Shark>();
  for (const k of g.keys)
    for (const s of k.sharks) if (!out.has(s.manta_storage_id)) out.set(s.manta_storage_id, s);
  return [...out.values()];
}

function validate(g: ObjectGroup): PlanDecision['reason'] | undefined {
  if (!g.md5 || !Number.isFinite(g.contentLength) || g.contentLength < 0 || !g.copyOwner)
    return 'BadMorayObject';
  for (const k of g.keys) {
    const ids = k.sharks.map((s) => s.manta_storage_id);
    if (new Set(ids).size !== ids.length) return 'DuplicateShark';
  }
  if (g.contentLength > 0 && g.keys.every((k) => k.sharks.length === 0)) return 'MissingSharks';
  return undefined;
}
