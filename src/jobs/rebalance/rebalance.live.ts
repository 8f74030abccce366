/**
 * Reading live `manta` records for rebalance (run, retry, verify) so that one malformed record is
 * an event, never a crash (DESIGN.md invariant 6): a `_value` that is not JSON, or an object
 * record whose `sharks` is not a list of `{manta_storage_id, datacenter}`, comes back as a
 * `MalformedRow` with the key, the shard and why, next to the well-formed ones.
 *
 * The metadata tier's own finders parse `_value` with JSON.parse and throw; these queries read
 * the same rows (every index shard, by the `objectid` index column) and parse each one alone.
 */
import type { RawRow as RawMorayRow } from '../../metadata/moray.repository.js';
import type { MetadataTier } from '../../metadata/metadata-tier.js';
import type { MantaValue, Shark } from '../../metadata/types.js';
import type { LiveRow } from './rebalance.metadata.js';

export interface MalformedRow {
  key: string;
  shard: string;
  /** The `objectid` index column (what the row claims to reference). */
  objectId: string | null;
  why: string;
  /** The raw `_value`, cut short (to tell whether it mentions a node). */
  raw: string;
}

export interface LiveRecords {
  rows: Map<string, LiveRow[]>;
  malformed: Map<string, MalformedRow[]>;
}

/** A `manta` row with its `objectid` index column. */
interface RawRow extends RawMorayRow {
  objectid: string | null;
}

/** Parse one raw row: a LiveRow, or why it cannot be used. */
export function parseLiveRow(r: RawRow, shard: string): LiveRow | MalformedRow {
  const bad = (why: string): MalformedRow => ({
    key: r._key,
    shard,
    objectId: r.objectid,
    why,
    raw: r._value.slice(0, 2000),
  });
  let value: unknown;
  try {
    value = JSON.parse(r._value);
  } catch (err) {
    return bad(`_value is not JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return bad('_value is not an object');
  const v = value as Record<string, unknown>;
  if (v.type === 'object') {
    if (typeof v.objectId !== 'string' || v.objectId === '') return bad('object record without objectId');
    if (!Array.isArray(v.sharks) || !v.sharks.every(isShark))
      return bad('sharks is not a list of {manta_storage_id, datacenter}');
  }
  return {
    bucket: 'manta',
    key: r._key,
    value: v as unknown as MantaValue,
    etag: r._etag,
    mtime: Number(r._mtime),
    vnode: r._vnode === null ? null : Number(r._vnode),
    id: Number(r._id),
    shard,
  };
}

function isShark(s: unknown): s is Shark {
  const x = s as Record<string, unknown> | null;
  return (
    !!x &&
    typeof x === 'object' &&
    typeof x.manta_storage_id === 'string' &&
    x.manta_storage_id !== '' &&
    typeof x.datacenter === 'string'
  );
}

export function isMalformed(r: LiveRow | MalformedRow): r is MalformedRow {
  return 'why' in r;
}

/** Every live record referencing each objectId, on every index shard, well-formed or not. */
export async function readLive(tier: MetadataTier, objectIds: readonly string[]): Promise<LiveRecords> {
  const out: LiveRecords = { rows: new Map(), malformed: new Map() };
  for (const id of objectIds) {
    out.rows.set(id, []);
    out.malformed.set(id, []);
  }
  if (objectIds.length === 0) return out;
  await Promise.all(
    tier.indexShards.map(async (s) => {
      const r = await s.pool.query<RawRow>(
        `SELECT _id, _key, _value, _etag, _mtime, _vnode, objectid FROM manta
          WHERE objectid = ANY($1::text[]) ORDER BY _key`,
        [objectIds],
      );
      for (const raw of r.rows) {
        const p = parseLiveRow(raw, s.name);
        if (isMalformed(p)) out.malformed.get(raw.objectid ?? '')?.push(p);
        // A record whose value names another objectId than its index column is not this object's.
        else if (p.value.type === 'object' && out.rows.has(p.value.objectId))
          out.rows.get(p.value.objectId)!.push(p);
      }
    }),
  );
  return out;
}

/**
 * Live records whose text mentions a node id, every index shard, in pages by key (memory stays
 * bounded whatever the count). The caller decides from the parsed value whether a record really
 * names the node; a malformed one that mentions it cannot be proven not to.
 */
export async function* recordsMentioning(
  tier: MetadataTier,
  node: string,
  pageSize = 1000,
): AsyncGenerator<LiveRow | MalformedRow> {
  const like = `%${node.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  for (const s of tier.indexShards) {
    for (let after = ''; ;) {
      const r = await s.pool.query<RawRow>(
        `SELECT _id, _key, _value, _etag, _mtime, _vnode, objectid FROM manta
          WHERE _value LIKE $1 AND _key > $2 ORDER BY _key LIMIT $3`,
        [like, after, pageSize],
      );
      for (const raw of r.rows) yield parseLiveRow(raw, s.name);
      if (r.rows.length < pageSize) break;
      after = r.rows[r.rows.length - 1]!._key;
    }
  }
}
