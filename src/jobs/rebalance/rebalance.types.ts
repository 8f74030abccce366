/**
 * Glossary of rebalance (MANTA-REFERENCE §3.5 mola/mako, §6.3 the Rust rebalancer):
 *   job          one plan and its execution: evacuate a node (`-h`) and/or fix objects whose copies
 *                all sit in one datacenter (MANTA-1728); stored in `rebalance_jobs`
 *   object       one objectId to move, with every key (link) referencing it on any shard; one row of
 *                `rebalance_objects`, the unit of progress
 *   oldShark     the copy being moved away (the evacuated node, or `sharks[0]` of a one-DC object)
 *   newShark     its destination, chosen by the planner from real free space
 *   instruction  one JSON line per key, the original's fields (`key, morayEtag, newShark, oldShark,
 *                md5, objectId, owner, etag`), grouped per destination
 *   source       where the bytes are pulled from: the old copy, else another listed copy
 *
 * Object states (the Rust rebalancer's EvacuateObjectStatus, lower-cased):
 *   unprocessed      planned, not yet claimed
 *   assigned         claimed by a runner (lease in `claimed_at`; an expired lease is claimable again)
 *   post_processing  new copy verified and every record updated; the old copy's tombstone MOVE is
 *                    still owed (the original's "ECONNREFUSED on MOVE" case: retried later)
 *   skipped          a retryable reason (destination full, source unreachable, MD5 mismatch, etag
 *                    changed…): `remora rebalance retry` re-runs it, re-planning the destination
 *   error            needs a person (bad record) or kept failing (metadata tier)
 *   complete         new copy in place, every live record names it, old copy tombstoned
 */
import type { Shark } from '../../metadata/types.js';

export const OBJECT_STATES = [
  'unprocessed',
  'assigned',
  'post_processing',
  'skipped',
  'error',
  'complete',
] as const;
export type ObjectState = (typeof OBJECT_STATES)[number];

/**
 * Skip reasons: retryable. The Rust rebalancer's names where one fits (rebalancer/src/common.rs);
 * `EtagConflict` is added for "a record changed since the plan and still names the old copy",
 * `NoSource` for "no listed copy could be read".
 */
export const SKIP_REASONS = [
  'DestinationInsufficientSpace',
  'DestinationUnreachable',
  'ObjectAlreadyOnDestShark',
  'ObjectAlreadyInDatacenter',
  'MD5Mismatch',
  'SourceOtherError',
  'NoSource',
  'EtagConflict',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/**
 * Error reasons: not retried automatically (the Rust rebalancer's EvacuateObjectError names).
 * `DivergentRecords` (added): the records of the objectId name different sets of copies and no
 * single move can make them agree without a record losing a datacenter.
 */
export const ERROR_REASONS = [
  'BadMorayObject',
  'DuplicateShark',
  'MissingSharks',
  'DivergentRecords',
  'MetadataUpdateFailed',
  'InternalError',
] as const;
export type ErrorReason = (typeof ERROR_REASONS)[number];

/** Skip reasons whose cure is another destination: `retry` re-plans these objects. */
export const REPLAN_REASONS: ReadonlySet<string> = new Set<SkipReason>([
  'DestinationInsufficientSpace',
  'DestinationUnreachable',
  'ObjectAlreadyOnDestShark',
  'ObjectAlreadyInDatacenter',
]);

/** One key (link) referencing an object, as the snapshot showed it. */
export interface PlannedKey {
  key: string;
  shard: string;
  /** `_etag` of the row: the condition of the metadata update (DESIGN.md invariant 3). */
  morayEtag: string;
  /** `_value.etag` (the object's HTTP etag). */
  etag: string;
  owner: string;
  sharks: Shark[];
}

/** Every record of one objectId that the planner considers. */
export interface ObjectGroup {
  objectId: string;
  /** Directory of the copies on a node: creator || owner (muskie shark_client.js:156). */
  copyOwner: string;
  md5: string;
  contentLength: number;
  keys: PlannedKey[];
}

export interface Move {
  objectId: string;
  copyOwner: string;
  md5: string;
  bytes: number;
  oldShark: Shark;
  newShark: Shark;
  /** The records that name the old copy (they all name the same copies: the rule below). */
  keys: PlannedKey[];
  /** Why it moves: the evacuation, a one-datacenter object (MANTA-1728), or a repair (a bad copy). */
  cause: 'evacuate' | 'single_dc' | 'repair';
  /** Datacenters of each record before the move: no record may end with fewer (`verify` checks). */
  dcsBefore: number;
  /**
   * The destination already holds the copy: other records of the objectId name it (a move of
   * this object finished for them earlier), so it is the only choice that makes them agree.
   */
  converges?: boolean;
}

export interface PlanDecision {
  objectId: string;
  bytes: number;
  state: 'unprocessed' | 'skipped' | 'error';
  reason?: SkipReason | ErrorReason;
  /** Why, for a person (e.g. which records disagree). */
  detail?: string;
  move?: Move;
  /** Set when the object needs no move (not on the node, copies already spread). */
  untouched?: boolean;
}

/** The original's instruction line (mola rebalance.js output), one per key. */
export interface InstructionLine {
  key: string;
  morayEtag: string;
  newShark: Shark;
  oldShark: Shark;
  md5: string;
  objectId: string;
  owner: string;
  etag: string;
  /** Added: the shard holding the key and the copy directory, so an agent needs no ring. */
  shard: string;
  copyOwner: string;
}

export function instructionLines(
  m: Pick<Move, 'objectId' | 'copyOwner' | 'md5' | 'oldShark' | 'newShark' | 'keys'>,
): InstructionLine[] {
  return m.keys.map((k) => ({
    key: k.key,
    morayEtag: k.morayEtag,
    newShark: m.newShark,
    oldShark: m.oldShark,
    md5: m.md5,
    objectId: m.objectId,
    owner: k.owner,
    etag: k.etag,
    shard: k.shard,
    copyOwner: m.copyOwner,
  }));
}

export function sameShark(a: Shark, b: Shark): boolean {
  return a.manta_storage_id === b.manta_storage_id;
}

/** Number of distinct datacenters of a record's copies: a property of each record. */
export function dcCount(sharks: readonly Shark[]): number {
  return new Set(sharks.map((s) => s.datacenter)).size;
}

/** The node ids of a record's copies, sorted: two records name the same copies iff these are equal. */
export function copySet(sharks: readonly Shark[]): string {
  return [...new Set(sharks.map((s) => s.manta_storage_id))].sort().join(',');
}

/** Whether a record lists one node twice (two copies of one object on one node). */
export function hasDuplicate(sharks: readonly Shark[]): boolean {
  return new Set(sharks.map((s) => s.manta_storage_id)).size !== sharks.length;
}

/** The copies after moving `oldShark` to `newShark` (order kept). */
export function replaceShark(sharks: readonly Shark[], oldShark: Shark, newShark: Shark): Shark[] {
  return sharks.map((s) => (s.manta_storage_id === oldShark.manta_storage_id ? newShark : s));
}
