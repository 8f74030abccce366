/**
 * Applying a GC plan, idempotently (a retried task redoes only what is not done). Order, per
 * objectId with copies to tombstone (DESIGN.md invariant 1):
 *
 *   1. re-check: every index shard is asked (indexed `objectid` lookup) whether a live record
 *      names the objectId now; a hit cancels every action of the objectId (counted, exampled).
 *      The next run sees the reference in its snapshot and cleans the record up as redundant.
 *   2. move each copy to `/manta/tombstone/<day>/<objectId>` on its node (MOVE). A copy already
 *      gone (moved by an earlier attempt, or never written) is "absent": done. A node that does
 *      not answer, or whose address is unknown, keeps its copies for the next run (counted), and
 *      the objectId's delete record stays so that run finds them again.
 *   3. clean up the delete record: a conditional delete on the shard that holds it (not the
 *      shard the ring would pick for its key), with the `_etag` read from the snapshot, one
 *      statement per shard and batch. A record already gone or changed is counted as already
 *      done / skipped.
 *
 * Redundant and zero-byte records go straight to step 3 (no copies move, no re-check needed:
 * removing a delete record never removes data).
 *
 * A dry run (`remora gc plan`) does step 1 for real (it only reads) and counts what steps 2 and 3
 * would do (`copiesWouldTombstone`, `deleteRecordsWouldRemove`) without doing it.
 *
 * What a crash at each step leaves, and how the next attempt converges:
 *   after 1         nothing changed                        → redone
 *   during 2        some copies in tombstone, others not   → moved ones are "absent", the rest move
 *   after 2         copies in tombstone, record still there → step 3 deletes it
 *   after 3         done                                   → the record is gone: already done
 */
import { eachLimit } from '../../core/concurrency.js';
import { isRemoraError } from '../../core/errors.js';
import type { ReportBuilder } from '../../core/run-report.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { StorageClient } from '../../storage/storage-client.js';
import type { MoveTree } from '../../storage/storage-paths.js';
import type { ByteThrottle } from '../../storage/throttle.js';
import { GcActions } from './gc.actions.js';
import type { CopyRef, RecordDecision } from './gc.plan.js';

export interface GcApplyDeps {
  tier: Pick<MetadataTier, 'findByObjectIds' | 'deleteManyOnShard'>;
  storage: Pick<StorageClient, 'tombstone'>;
  /** manta_storage_id → base URL (the node directory); undefined: address unknown. */
  nodeUrl(id: string): string | undefined;
  /** Per node: objects and bytes per second (the original moved everything at once). */
  throttle(node: string): { objects: ByteThrottle; bytes: ByteThrottle };
  /**
   * The tombstone directory's day: the day the copies move (mako_gc.sh's `date +%Y-%m-%d`), not
   * the run's partition day, so a backfilled or re-run old day still gives its copies the whole
   * retention before the purge (a copy moved today into an old day's directory would be purged
   * at once). A retried attempt on a later day finds the moved copies absent: nothing moves twice.
   */
  day: string;
  /**
   * Where moveCopy puts a copy: the tombstone tree (default), or repair's quarantine tree (its
   * counters are then `copiesQuarantined…` instead of `copiesTombstoned…`).
   */
  tree?: MoveTree;
  report: ReportBuilder;
  signal?: AbortSignal;
  /** Re-check only; count what would move and be removed. */
  dryRun?: boolean;
}

/**
 * What an apply left for the next run: eligible records whose copies did not all move (a dry
 * run: every record the re-check cleared, and all its copies).
 */
export interface ApplyLeft {
  records: number;
  copies: number;
  bytes: number;
}

/** ObjectIds asked about at once in the re-check (one indexed `IN` per shard). */
const RECHECK_BATCH = 500;
/** Delete records removed by one conditional statement. */
const CLEANUP_BATCH = 1000;
/** Copies moved at once per task (each MOVE is a rename on its node). */
const MOVES_IN_PARALLEL = 8;

interface ObjectWork {
  objectId: string;
  /** Its records (indexes into the actions). */
  records: number[];
  bytes: number;
}

/** applyActions on decisions (only those that act are applied). */
export function applyDecisions(decisions: readonly RecordDecision[], deps: GcApplyDeps): Promise<ApplyLeft> {
  return applyActions(GcActions.of(decisions), deps);
}

/**
 * The copies of an objectId's records, each node's once (two records of one instant name the
 * same copies), in the order the records name them.
 */
function copiesOf(a: GcActions, w: ObjectWork): CopyRef[] {
  const out: CopyRef[] = [];
  for (const i of w.records) for (const c of a.tombstone(i)) if (!hasNode(out, c.node)) out.push(c);
  return out;
}

/**
 * The records that move copies, by objectId, as columns (no object or array per objectId: a
 * 1M group has ~23k, and the dry run only counts them): per objectId its text, its largest
 * size, and its records as a chain (`first`, then `next` of each record, -1 ends it).
 */
class ByObject {
  readonly ids: string[] = [];
  readonly bytes: number[] = [];
  readonly first: number[] = [];
  private readonly last: number[] = [];
  private readonly index = new Map<string, number>();
  readonly next: Int32Array;

  constructor(records: number) {
    this.next = new Int32Array(records).fill(-1);
  }

  add(objectId: string, record: number, bytes: number): void {
    const k = this.index.get(objectId);
    if (k === undefined) {
      this.index.set(objectId, this.ids.length);
      this.ids.push(objectId);
      this.bytes.push(bytes);
      this.first.push(record);
      this.last.push(record);
      return;
    }
    this.next[this.last[k]!] = record;
    this.last[k] = record;
    // Records of one objectId that disagree on its size (two shards' metadata): the largest,
    // so the figure does not depend on the order the records come in.
    if (bytes > this.bytes[k]!) this.bytes[k] = bytes;
  }

  records(k: number): number[] {
    const out: number[] = [];
    for (let i = this.first[k]!; i >= 0; i = this.next[i]!) out.push(i);
    return out;
  }
}

export async function applyActions(a: GcActions, deps: GcApplyDeps): Promise<ApplyLeft> {
  const r = deps.report;
  const byObject = new ByObject(a.length);
  const cleanupOnly: number[] = [];
  for (let i = 0; i < a.length; i++) {
    if (!a.movesCopies(i)) cleanupOnly.push(i);
    else byObject.add(a.objectId(i), i, a.contentLength(i) ?? 0);
  }

  // 1. Re-check live metadata.
  const ids = byObject.ids;
  const cleared: number[] = [];
  for (let i = 0; i < ids.length; i += RECHECK_BATCH) {
    const batch = ids.slice(i, i + RECHECK_BATCH);
    const live = await deps.tier.findByObjectIds(batch);
    for (let k = i; k < i + batch.length; k++) {
      const refs = live.get(ids[k]!) ?? [];
      if (refs.length > 0) {
        r.count('recheckCancelled').event('recheck-cancelled', 'info', {
          objectId: ids[k]!,
          reference: `${refs[0]!.key} on ${refs[0]!.shard}`,
        });
      } else cleared.push(k);
    }
  }

  const left: ApplyLeft = { records: 0, copies: 0, bytes: 0 };
  if (deps.dryRun) {
    const perNode = new Map<string, { copies: number; bytes: number }>();
    const nodes: string[] = [];
    let records = 0;
    for (const k of cleared) {
      nodes.length = 0;
      for (let i = byObject.first[k]!; i >= 0; i = byObject.next[i]!) {
        a.addNodes(i, nodes);
        records++;
      }
      const b = byObject.bytes[k]!;
      for (const node of nodes) {
        const n = perNode.get(node);
        if (n === undefined) perNode.set(node, { copies: 1, bytes: b });
        else {
          n.copies++;
          n.bytes += b;
        }
      }
      left.copies += nodes.length;
      left.bytes += nodes.length * b;
    }
    left.records = records;
    for (const [node, n] of perNode)
      r.count('copiesWouldTombstone', n.copies)
        .count(`copiesWouldTombstone.${node}`, n.copies)
        .count('bytesWouldTombstone', n.bytes)
        .count(`bytesWouldTombstone.${node}`, n.bytes);
    r.count('deleteRecordsWouldRemove', cleanupOnly.length + records);
    // Nothing moved: everything the re-check cleared is eligible and not moved yet (counted above).
    return left;
  }
  const work: ObjectWork[] = cleared.map((k) => ({
    objectId: ids[k]!,
    records: byObject.records(k),
    bytes: byObject.bytes[k]!,
  }));

  // 2. Move copies; an objectId whose copies all moved (or were gone) gets its records cleaned up.
  const done: number[] = [...cleanupOnly];
  await eachLimit(work, MOVES_IN_PARALLEL, async (w) => {
    if (deps.signal?.aborted) return;
    const copies = copiesOf(a, w);
    let moved = 0;
    for (const c of copies) if (await moveCopy(c, w.bytes, deps)) moved++;
    if (moved === copies.length) done.push(...w.records);
    else {
      left.records += w.records.length;
      left.copies += copies.length - moved;
      left.bytes += (copies.length - moved) * w.bytes;
    }
  });

  // 3. Clean up delete records on the shard that holds each: one conditional statement per
  // shard and batch (a retried batch finds its removed rows `gone`).
  const byShard = new Map<string, number[]>();
  for (const i of done) {
    const shard = a.shard(i);
    const list = byShard.get(shard);
    if (list === undefined) byShard.set(shard, [i]);
    else list.push(i);
  }
  for (const [shard, list] of byShard)
    for (let i = 0; i < list.length; i += CLEANUP_BATCH) {
      if (deps.signal?.aborted) return left;
      const batch = list.slice(i, i + CLEANUP_BATCH);
      const outcome = await deps.tier.deleteManyOnShard(
        shard,
        'manta_delete_log',
        batch.map((j) => ({ key: a.key(j), etag: a.etag(j) })),
      );
      for (const j of batch) {
        const key = a.key(j);
        const o = outcome.get(key);
        if (o === 'removed') r.count('deleteRecordsRemoved');
        else if (o === 'gone') r.count('deleteRecordsAlreadyGone');
        // Changed since the snapshot (moray rewrote it?): left for the next run, which reads the new one.
        else
          r.count('deleteRecordsChanged').event('delete-record-changed', 'warning', {
            shard,
            key,
          });
      }
    }
  return left;
}

function hasNode(copies: readonly CopyRef[], node: string): boolean {
  for (const c of copies) if (c.node === node) return true;
  return false;
}

/** Move one copy to tombstone; false when it is left for the next run. */
export async function moveCopy(c: CopyRef, bytes: number, deps: GcApplyDeps): Promise<boolean> {
  const r = deps.report;
  const url = deps.nodeUrl(c.node);
  if (!url) {
    r.count('copiesLeftAddressUnknown').event('node-address-unknown', 'warning', {
      node: c.node,
      objectId: c.objectId,
    });
    return false;
  }
  const t = deps.throttle(c.node);
  await t.objects.take(1);
  await t.bytes.take(bytes);
  try {
    const outcome = deps.tree
      ? await deps.storage.tombstone(url, c.owner, c.objectId, deps.day, deps.tree)
      : await deps.storage.tombstone(url, c.owner, c.objectId, deps.day);
    if (outcome === 'moved') {
      const n = deps.tree === 'quarantine' ? 'Quarantined' : 'Tombstoned';
      r.count(`copies${n}`).count(`copies${n}.${c.node}`).count(`bytes${n}`, bytes);
      r.count(`bytes${n}.${c.node}`, bytes);
    } else
      r.count('copiesAlreadyGone').event('copy-already-gone', 'info', { node: c.node, objectId: c.objectId });
    return true;
  } catch (err) {
    if (isRemoraError(err, 'StorageNodeUnreachable')) {
      r.count('copiesLeftNodeUnreachable').event('node-unreachable', 'warning', {
        node: c.node,
        objectId: c.objectId,
      });
      return false;
    }
    throw err;
  }
}
