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
 *  - Every record on its own (issue 17): the datacenter count is a property of each record, not
 *    of the union of the records of an objectId. The records naming the old copy must all name
 *    the same copies (else `error DivergentRecords`); the move replaces the old copy by the new
 *    one in each of them, so they end agreeing.
 *  - Records that no longer name the old copy (the move finished for them; a link made during
 *    it was left behind and the object is being retried): the destination is the copy they name
 *    and nothing else, so every record ends naming the same copies. If that would leave the
 *    lagging records fewer datacenters, or no single move makes them agree: `DivergentRecords`.
 *  - Never two copies on one node: a node the records list is never a destination (Rust
 *    ObjectAlreadyOnDestShark).
 *  - Never fewer datacenters, counted per record: the records' datacenters after the move must be
 *    at least as many as before (Rust ObjectAlreadyInDatacenter), strictly more in single-DC
 *    mode; among those, a node that raises the count wins, then the one with the most room left
 *    (spreads load: Rust sorts by most available, MANTA-5190 fixed that order being backwards),
 *    then chance. Repair (`stable`) takes, among the nodes that raise the count most and have room,
 *    the highest rendezvous hash of (objectId, node): the same node on every run while it stays
 *    eligible, whatever the room reported in between.
 */
import crypto from 'node:crypto';
import type { Random } from '../../core/clock.js';
import type { Shark, StorageRecordValue } from '../../metadata/types.js';
import {
  copySet,
  dcCount,
  type Move,
  type ObjectGroup,
  type PlanDecision,
  sameShark,
} from './rebalance.types.js';

const MiB = 1024 * 1024;
/**
 * Room closer to the roomiest node's than this share of its size (at least 1 MiB) is a tie,
 * broken by chance. A node's room comes from its heartbeat and moves between two reports by far
 * more than a MiB on any busy node (other writers, nodes sharing a disk): a fixed 1 MiB made the
 * choice follow that noise and send a whole small plan to one node.
 */
export const EQUAL_ROOM = 0.01;

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
  /**
   * Choose among the candidates by rendezvous hash of (objectId, node) instead of most room, then
   * chance: an object gets the same destination for as long as that node stays eligible, however
   * the nodes' reported room moves between two runs (repair, whose rerun after a crash must find
   * the copy it already made: src/jobs/audit/audit.repair.ts).
   */
  stable?: boolean;
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

  /**
   * Decide one object; assigns capacity when it moves. `replace`: the copy to move is this one
   * (repair: a missing or corrupt copy, src/jobs/audit/audit.repair.ts), not the evacuated node's.
   */
  decide(g: ObjectGroup, replace?: Shark): PlanDecision {
    const base = { objectId: g.objectId, bytes: g.contentLength };
    if (g.keys.length === 0) return { ...base, state: 'unprocessed', untouched: true };
    const bad = validate(g);
    if (bad) return { ...base, state: 'error', reason: bad };
    const old = replace
      ? g.keys.some((k) => k.sharks.some((s) => sameShark(s, replace)))
        ? { shark: replace, cause: 'repair' as const }
        : undefined
      : this.oldCopy(g);
    if (!old) return { ...base, state: 'unprocessed', untouched: true };
    const diverge = (detail: string): PlanDecision => ({
      ...base,
      state: 'error',
      reason: 'DivergentRecords',
      detail,
    });
    // Every record is judged on its own copies. The records naming the old copy must name the
    // same ones, so that one move leaves them agreeing.
    const movers = g.keys.filter((k) => k.sharks.some((s) => sameShark(s, old.shark)));
    const settled = g.keys.filter((k) => !movers.includes(k));
    const first = movers[0]!;
    const before = first.sharks;
    const odd = movers.find((k) => copySet(k.sharks) !== copySet(before));
    if (odd)
      return diverge(`${first.key} names ${copySet(before)} but ${odd.key} names ${copySet(odd.sharks)}`);
    const rest = before.filter((s) => !sameShark(s, old.shark));
    const dcsBefore = dcCount(before);
    const keepsDcs = (dcs: number) => (old.cause === 'single_dc' ? dcs > dcsBefore : dcs >= dcsBefore);
    const moveTo = (newShark: Shark, converges: boolean): PlanDecision => ({
      ...base,
      state: 'unprocessed',
      move: {
        objectId: g.objectId,
        copyOwner: g.copyOwner,
        md5: g.md5,
        bytes: g.contentLength,
        oldShark: old.shark,
        newShark,
        keys: movers,
        cause: old.cause,
        dcsBefore,
        ...(converges ? { converges } : {}),
      },
    });
    if (settled.length > 0) {
      // Other records no longer name the old copy (a move finished for them, and a link made
      // during it was left behind): the only destination is the copy they name, so all agree.
      const target = settled[0]!;
      const other = settled.find((k) => copySet(k.sharks) !== copySet(target.sharks));
      if (other)
        return diverge(
          `${target.key} names ${copySet(target.sharks)} but ${other.key} names ${copySet(other.sharks)}`,
        );
      const extra = target.sharks.filter((t) => !rest.some((s) => sameShark(s, t)));
      if (extra.length !== 1 || copySet([...rest, extra[0]!]) !== copySet(target.sharks))
        return diverge(
          `${first.key} names ${copySet(before)} and ${target.key} names ${copySet(target.sharks)}: ` +
            'no single move makes them agree',
        );
      const dest = extra[0]!;
      if (!keepsDcs(dcCount([...rest, dest])))
        return diverge(
          `${target.key} names ${copySet(target.sharks)}: moving ${first.key} there would leave it ` +
            `fewer than ${dcsBefore} datacenter(s)`,
        );
      return moveTo({ datacenter: dest.datacenter, manta_storage_id: dest.manta_storage_id }, true);
    }
    // Never a node that already holds a copy (Rust ObjectAlreadyOnDestShark).
    const held = new Set(before.map((s) => s.manta_storage_id));
    const dcOk = this.destinations
      .filter((n) => !held.has(n.shark.manta_storage_id))
      .map((n) => ({ n, dcs: dcCount([...rest, n.shark]) }))
      .filter((c) => keepsDcs(c.dcs));
    if (dcOk.length === 0) {
      // Say why: the nodes that would keep the datacenters may exist but be full or stale
      // right now (a retry after an outage that aged every heartbeat), which a later retry fixes.
      const wouldKeep = (role: NodeRole) =>
        this.nodes.some(
          (n) =>
            n.role === role && !held.has(n.shark.manta_storage_id) && keepsDcs(dcCount([...rest, n.shark])),
        );
      if (wouldKeep('full'))
        return {
          ...base,
          state: 'skipped',
          reason: 'DestinationInsufficientSpace',
          detail: 'every node that keeps the datacenters is full',
        };
      if (wouldKeep('stale'))
        return {
          ...base,
          state: 'skipped',
          reason: 'DestinationUnreachable',
          detail: 'every node that keeps the datacenters has a stale heartbeat',
        };
      return { ...base, state: 'skipped', reason: 'ObjectAlreadyInDatacenter' };
    }
    const roomy = dcOk.filter((c) => this.budget(c.n) >= g.contentLength);
    if (roomy.length === 0) return { ...base, state: 'skipped', reason: 'DestinationInsufficientSpace' };
    const best = this.opts.stable ? this.stableBest(roomy, g.objectId) : this.best(roomy);
    best.assignedBytes += g.contentLength;
    best.assignedObjects++;
    return moveTo(best.shark, false);
  }

  /**
   * The copy to move: the one on the evacuated node, if any record names it; else, in single-DC
   * mode, the first copy of the first record whose 2+ copies all sit in one datacenter.
   */
  private oldCopy(g: ObjectGroup): { shark: Shark; cause: Move['cause'] } | undefined {
    for (const k of g.keys) {
      const evac = k.sharks.find((s) => s.manta_storage_id === this.opts.evacuate);
      if (evac) return { shark: evac, cause: 'evacuate' };
    }
    if (!this.opts.fixSingleDc) return undefined;
    const oneDc = g.keys.find((k) => k.sharks.length >= 2 && dcCount(k.sharks) === 1);
    return oneDc && { shark: oneDc.sharks[0]!, cause: 'single_dc' };
  }

  /** Most datacenters after the move, then most room left, then chance. */
  private best(cands: { n: NodeCapacity; dcs: number }[]): NodeCapacity {
    const maxDcs = Math.max(...cands.map((c) => c.dcs));
    const top = cands.filter((c) => c.dcs === maxDcs).map((c) => c.n);
    let roomiest = top[0]!;
    for (const n of top) if (this.budget(n) > this.budget(roomiest)) roomiest = n;
    // Nodes within EQUAL_ROOM of the roomiest are equals: chance spreads objects among them.
    const slack = Math.max(MiB, roomiest.totalBytes * EQUAL_ROOM);
    const room = this.budget(roomiest);
    const equals = top.filter((n) => room - this.budget(n) <= slack);
    return equals[Math.floor(this.opts.random.next() * equals.length)]!;
  }

  /** Most datacenters after the move, then the highest hash of (objectId, node). */
  private stableBest(cands: { n: NodeCapacity; dcs: number }[], objectId: string): NodeCapacity {
    const maxDcs = Math.max(...cands.map((c) => c.dcs));
    let best: { n: NodeCapacity; w: string } | undefined;
    for (const c of cands) {
      if (c.dcs !== maxDcs) continue;
      const w = crypto
        .createHash('sha1')
        .update(`${objectId.toLowerCase()}\0${c.n.shark.manta_storage_id}`)
        .digest('hex');
      if (!best || w > best.w) best = { n: c.n, w };
    }
    return best!.n;
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

/**
 * The operator's expectation of where the copies go (`--expect-destinations`): the exact set of
 * nodes receiving at least one object, or how many there are. The seed's "verify that the set of
 * mako nodes you expect is exactly this list", as a gate instead of a reading.
 */
export type ExpectedDestinations = { ids: string[] } | { count: number };

/**
 * What differs between the plan's destination set and the expected one, named for a person, or
 * undefined when they match. A node expected but receiving nothing is named with its role (e.g.
 * `stale`: its heartbeat is old), which is usually the reason.
 */
export function destinationSurprise(
  dests: readonly DestinationSummary[],
  want: ExpectedDestinations,
): string | undefined {
  const receiving = dests.filter((d) => d.objects > 0);
  if ('count' in want)
    return receiving.length === want.count
      ? undefined
      : `the plan sends objects to ${receiving.length} node(s), not ${want.count}: ` +
          (receiving.map((d) => `${d.manta_storage_id} (${d.objects})`).join(', ') || 'none');
  const expected = new Set(want.ids);
  const unexpected = receiving.filter((d) => !expected.has(d.manta_storage_id));
  const missing = want.ids.filter((id) => !receiving.some((d) => d.manta_storage_id === id));
  if (unexpected.length === 0 && missing.length === 0) return undefined;
  const parts: string[] = [];
  if (unexpected.length > 0)
    parts.push(
      `unexpected destination(s) ${unexpected.map((d) => `${d.manta_storage_id} (${d.objects} objects)`).join(', ')}`,
    );
  if (missing.length > 0)
    parts.push(
      `expected but receiving nothing: ${missing
        .map((id) => `${id} (${dests.find((d) => d.manta_storage_id === id)?.role ?? 'unknown node'})`)
        .join(', ')}`,
    );
  return parts.join('; ');
}

function pct(part: number, total: number): number {
  return total > 0 ? Math.round((part / total) * 1000) / 10 : 100;
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
