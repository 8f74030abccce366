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

/** Which delete record a decision is about: where it is, and what its cleanup is conditional on. */
export type RecordRef = Pick<DeleteRecord, 'shard' | 'key' | 'etag' | 'mtime'>;

export interface RecordDecision {
  record: RecordRef;
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

/**
 * What the rules after `malformed` read of one well-formed delete record: the same facts whether
 * they come from the record's parsed text (decideObject) or were computed by the scan in DuckDB
 * (gc.scan.ts: the objectId's live reference and its latest record, for objectIds all of whose
 * records pass the scan's checks; tested equal in test/gc-scan.test.ts).
 */
export interface RecordFacts {
  /** `_mtime` of the record. */
  mtime: number;
  /** The latest `_mtime` of the objectId's well-formed delete records (this one included). */
  latestMtime: number;
  /** A live row naming the objectId, on any shard. */
  live: LiveRef | undefined;
  /** Copies the record names. */
  copies: number;
}

/**
 * The comparisons the rules make on a record's facts: its class. The scan has DuckDB compute
 * these for the records it decides in SQL (gc.scan.ts, each bit as written here) and maps each
 * class to its verdict with verdictOfClass: the rules themselves are only here.
 */
export interface FactClass {
  /** Not older than the earliest snapshot. */
  notProvable: boolean;
  /** A live row names the objectId. */
  live: boolean;
  /** A later well-formed record of the objectId exists. */
  later: boolean;
  /** No copies. */
  noCopies: boolean;
  /** Not older than the grace period. */
  inGrace: boolean;
}

export function classOf(f: RecordFacts, o: GcOptions): FactClass {
  return {
    notProvable: f.mtime >= o.earliestSnapshotMs,
    live: f.live !== undefined,
    later: f.mtime < f.latestMtime,
    noCopies: f.copies === 0,
    inGrace: o.now - f.mtime <= o.graceMs,
  };
}

/** The rules after `malformed`, in order (the table at the top of this file), on a record's class. */
export function verdictOfClass(c: FactClass): Exclude<Verdict, 'malformed'> {
  if (c.notProvable) return 'not-provable';
  if (c.live) return 'live-reference';
  if (c.later) return 'superseded';
  // Two records of the same instant (two shards): both carry the decision; the copies they
  // name are tombstoned once each (the runner deduplicates by node).
  if (c.noCopies) return 'zero-byte';
  if (c.inGrace) return 'waiting-grace';
  return 'eligible';
}

/** The rules after `malformed` on a record's facts. */
export function verdictOf(f: RecordFacts, o: GcOptions): Exclude<Verdict, 'malformed'> {
  return verdictOfClass(classOf(f, o));
}

/** FactClass's members in the order of their bits (class number = Σ 2^i for each true member i). */
export const FACT_CLASS_BITS: readonly (keyof FactClass)[] = [
  'notProvable',
  'live',
  'later',
  'noCopies',
  'inGrace',
];

/** The verdict of every class number (FACT_CLASS_BITS), by verdictOfClass. */
export const VERDICT_BY_CLASS: readonly Exclude<Verdict, 'malformed'>[] = Array.from(
  { length: 1 << FACT_CLASS_BITS.length },
  (_, n) =>
    verdictOfClass(
      Object.fromEntries(FACT_CLASS_BITS.map((b, i) => [b, (n & (1 << i)) !== 0])) as unknown as FactClass,
    ),
);

/** Whether a verdict removes the delete record. */
export const CLEANS_UP: Readonly<Record<Verdict, boolean>> = {
  malformed: false,
  'not-provable': false,
  'live-reference': true,
  superseded: true,
  'zero-byte': true,
  'waiting-grace': false,
  eligible: true,
};

/** Which reference made a record redundant (the report's examples). */
export function detailOf(verdict: Verdict, f: RecordFacts): string | undefined {
  if (verdict === 'live-reference') return `${f.live!.key} on ${f.live!.shard}`;
  if (verdict === 'superseded') return `a later delete record (${f.latestMtime})`;
  return undefined;
}

/**
 * A well-formed record's decision. `copies` names the record's copies (node, datacenter) when it
 * is eligible; `owner` is the copies' directory (`creator || owner`), `objectId` as the record
 * spells it.
 */
export function decisionOf(
  record: RecordRef,
  verdict: Exclude<Verdict, 'malformed'>,
  f: RecordFacts,
  contentLength: number | undefined,
  copies: () => readonly { node: string; datacenter?: string | undefined }[],
  owner: string,
  objectId: string,
): RecordDecision {
  const d: RecordDecision = { record, verdict, tombstone: [], cleanup: CLEANS_UP[verdict], copies: f.copies };
  const detail = detailOf(verdict, f);
  if (detail !== undefined) d.detail = detail;
  if (contentLength !== undefined) d.contentLength = contentLength;
  if (verdict === 'eligible')
    d.tombstone = copies().map((s) =>
      s.datacenter
        ? { node: s.node, datacenter: s.datacenter, owner, objectId }
        : { node: s.node, owner, objectId },
    );
  return d;
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
  const f: RecordFacts = { mtime: record.mtime, latestMtime, live, copies: parsed.sharks.length };
  return decisionOf(
    record,
    verdictOf(f, o),
    f,
    parsed.contentLength,
    () => parsed.sharks.map((s) => ({ node: s.manta_storage_id, datacenter: s.datacenter })),
    parsed.creator ?? parsed.owner,
    parsed.objectId,
  );
}
