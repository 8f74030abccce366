/**
 * The GC decision: one objectId's rows → actions. Pure (no I/O, no clock): `now`, the grace
 * period and the earliest snapshot instant are inputs, so every rule is tested with tables of
 * cases (test/gc-plan.test.ts). DESIGN.md invariant 1; MANTA-REFERENCE §3.1.
 *
 * Inputs for one objectId, from partition group g of every index shard's unpack:
 *   live     every live `manta` object row naming it (snaplinks included), any shard
 *   deletes  every `manta_delete_log` row naming it, any shard
 *
 * Rules, in order, per delete record d (each verdict is counted and exampled in the report):
 *   malformed        d's `_value` is not a usable object record (not JSON, no owner, objectId
 *                    not the one its key names, sharks not a list of named nodes): no action,
 *                    an event. The original exited the job (gc.js process.exit(1)); one bad row
 *                    must not stop GC for everyone (invariant 6).
 *   not-provable     d is not older than the earliest snapshot of the shards read (its
 *                    instant or later): a link made before d could be missing from every
 *                    snapshot (mola drops these rows, gc_pg_row_transformer.js, with `>`; the
 *                    same millisecond is not proof either). Nothing now; a later run decides.
 *   live-reference   a live row names the objectId anywhere: d is redundant → clean up d, keep
 *                    the copies (mola: "the next row has the same objectId").
 *   superseded       a later well-formed delete record of the objectId exists (provable or
 *                    not): d is redundant → clean up d; the latest record carries the decision.
 *                    The original only looked at provable records; counting the newer ones too
 *                    is stricter and costs at most one day. A malformed later record does not
 *                    supersede: it names no copies, and cleaning d would lose where they are.
 *   zero-byte        no copies (`sharks: []`): clean up d only (mola emits only the moray line).
 *   waiting-grace    d is not older than the grace period: nothing now.
 *   eligible         otherwise: every copy d names goes to tombstone, then d is cleaned up.
 *
 * Copies are named at the path they really have, `/manta/<creator || owner>/<objectId>`
 * (gc.rules.ts copyPath). The runner re-checks live metadata before any move.
 */
import { isUuid } from '../../core/ids.js';

export interface LiveRef {
  shard: string;
  key: string;
}

/** One `manta_delete_log` row as read from a chunk. */
export interface DeleteRecord {
  shard: string;
  /** `_key`: `/<objectId>/<ms>`. */
  key: string;
  /** `_etag` of the delete-log row: its cleanup is conditional on it (invariant 3). */
  etag: string;
  /** `_mtime` (ms): when the object was deleted or overwritten. */
  mtime: number;
  /**
   * `_value`: the whole previous `manta` record, as text; or already parsed (the scan hands over
   * the fields the decision reads, as an object, when every one of them has its expected type).
   */
  value: string | Record<string, unknown>;
}

export interface CopyRef {
  node: string;
  datacenter?: string;
  /** `creator || owner`: the directory the copy is in on its node. */
  owner: string;
  objectId: string;
}

export type Verdict =
  'malformed' | 'not-provable' | 'live-reference' | 'superseded' | 'zero-byte' | 'waiting-grace' | 'eligible';

export interface RecordDecision {
  record: DeleteRecord;
  verdict: Verdict;
  /** Why (malformed), or which reference made it redundant. */
  detail?: string;
  /** Copies to move to tombstone (eligible only). */
  tombstone: CopyRef[];
  /** Whether the delete-log row is removed (redundant, zero-byte, eligible). */
  cleanup: boolean;
  /** Bytes of one copy, when the record says. */
  contentLength?: number;
  /** Copies the record names (whatever the verdict; 0 when malformed). */
  copies: number;
}

export interface GcInput {
  objectId: string;
  live: readonly LiveRef[];
  deletes: readonly DeleteRecord[];
}

export interface GcOptions {
  now: number;
  graceMs: number;
  /** The earliest snapshot instant (ms) of every index shard read. */
  earliestSnapshotMs: number;
}

interface ParsedRecord {
  /**
   * The objectId as the record spells it: the copy's file name on its node and what the live
   * re-check looks up (the indexed column holds this spelling; the scan groups lower-cased).
   */
  objectId: string;
  owner: string;
  creator?: string;
  sharks: { manta_storage_id: string; datacenter?: string }[];
  contentLength?: number;
}

/** The previous record inside a delete-log row, or why it cannot be used. */
export function parseDeleteValue(objectId: string, r: DeleteRecord): ParsedRecord | { malformed: string } {
  const keyId = /^\/([^/]+)\/\d+$/.exec(r.key)?.[1];
  if (keyId === undefined) return { malformed: `key is not /<objectId>/<ms>: ${r.key}` };
  if (keyId.toLowerCase() !== objectId.toLowerCase())
    return { malformed: `key names ${keyId}, the row is indexed under ${objectId}` };
  if (!Number.isFinite(r.mtime)) return { malformed: `_mtime is not a number` };
  let v: unknown = r.value;
  if (typeof r.value === 'string')
    try {
      v = JSON.parse(r.value);
    } catch {
      return { malformed: '_value is not JSON' };
    }
  if (typeof v !== 'object' || v === null) return { malformed: '_value is not an object' };
  const o = v as Record<string, unknown>;
  if (typeof o.objectId !== 'string' || o.objectId.toLowerCase() !== objectId.toLowerCase())
    return { malformed: `_value.objectId ${JSON.stringify(o.objectId)} is not ${objectId}` };
  if (typeof o.owner !== 'string' || o.owner === '') return { malformed: '_value has no owner' };
  if (o.creator !== undefined && o.creator !== null && typeof o.creator !== 'string')
    return { malformed: '_value.creator is not a string' };
  if (!Array.isArray(o.sharks)) return { malformed: '_value.sharks is not a list' };
  const sharks: ParsedRecord['sharks'] = [];
  for (const s of o.sharks as unknown[]) {
    const id = (s as { manta_storage_id?: unknown } | null)?.manta_storage_id;
    if (typeof id !== 'string' || id === '') return { malformed: 'a shark without manta_storage_id' };
    const dc = (s as { datacenter?: unknown }).datacenter;
    sharks.push(typeof dc === 'string' ? { manta_storage_id: id, datacenter: dc } : { manta_storage_id: id });
  }
  // Copies live under the creator's (or owner's) uuid: anything else is not a path on a node.
  const dir = (typeof o.creator === 'string' && o.creator) || o.owner;
  if (sharks.length > 0 && !isUuid(dir)) return { malformed: `copy owner ${dir} is not a uuid` };
  return {
    objectId: o.objectId,
    owner: o.owner,
    ...(typeof o.creator === 'string' && o.creator ? { creator: o.creator } : {}),
    sharks,
    ...(typeof o.contentLength === 'number' ? { contentLength: o.contentLength } : {}),
  };
}

/** Decide every delete record of one objectId. */
export function decideObject(input: GcInput, o: GcOptions): RecordDecision[] {
  const deletes = input.deletes;
  const parsed = deletes.map((record) => parseDeleteValue(input.objectId, record));
  let latestMtime = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < deletes.length; i++)
    if (!('malformed' in parsed[i]!) && deletes[i]!.mtime > latestMtime) latestMtime = deletes[i]!.mtime;
  const live = input.live[0];
  return deletes.map((record, i) => decideRecord(record, parsed[i]!, latestMtime, live, o));
}

function decideRecord(
  record: DeleteRecord,
  parsed: ParsedRecord | { malformed: string },
  latestMtime: number,
  live: LiveRef | undefined,
  o: GcOptions,
): RecordDecision {
  if ('malformed' in parsed)
    return {
      record,
      tombstone: [],
      cleanup: false,
      copies: 0,
      verdict: 'malformed',
      detail: parsed.malformed,
    };
  if (record.mtime >= o.earliestSnapshotMs) return decision(record, parsed, 'not-provable', false);
  if (live) return decision(record, parsed, 'live-reference', true, `${live.key} on ${live.shard}`);
  if (record.mtime < latestMtime)
    return decision(record, parsed, 'superseded', true, `a later delete record (${latestMtime})`);
  // Two records of the same instant (two shards): both carry the decision; the copies they
  // name are tombstoned once each (the runner deduplicates by node).
  if (parsed.sharks.length === 0) return decision(record, parsed, 'zero-byte', true);
  if (o.now - record.mtime <= o.graceMs) return decision(record, parsed, 'waiting-grace', false);
  const owner = parsed.creator ?? parsed.owner;
  const d = decision(record, parsed, 'eligible', true);
  d.tombstone = parsed.sharks.map((s) =>
    s.datacenter
      ? { node: s.manta_storage_id, datacenter: s.datacenter, owner, objectId: parsed.objectId }
      : { node: s.manta_storage_id, owner, objectId: parsed.objectId },
  );
  return d;
}

/** A decision without copies to move (the eligible one gets them after). */
function decision(
  record: DeleteRecord,
  parsed: ParsedRecord,
  verdict: Verdict,
  cleanup: boolean,
  detail?: string,
): RecordDecision {
  const d: RecordDecision = { record, verdict, tombstone: [], cleanup, copies: parsed.sharks.length };
  if (detail !== undefined) d.detail = detail;
  if (parsed.contentLength !== undefined) d.contentLength = parsed.contentLength;
  return d;
}
