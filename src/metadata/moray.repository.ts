/**
 * One function per statement against a moray bucket table. Every function takes the
 * client (or transaction) first. Conditional semantics follow moray:
 *   etag undefined → unconditional; null → the key must not exist; string → `_etag` must equal it.
 * A failed condition is `EtagConflict` (moray's EtagConflictError).
 */
import type pg from 'pg';
import { RemoraError } from '../core/errors.js';
import { morayEtag } from '../core/crc32.js';
import { type BucketDefinition, columnOf, indexValues } from './buckets.js';
import type { EtagCondition, MorayRow } from './types.js';

export type Queryable = pg.ClientBase | pg.Pool;

/** A bucket row as PostgreSQL returns it (numbers as text). */
export interface RawRow {
  _id: string;
  _key: string;
  _value: string;
  _etag: string;
  _mtime: string;
  _vnode: string | null;
}

export function rowFromRaw<V>(bucket: string, r: RawRow): MorayRow<V> {
  return {
    bucket,
    key: r._key,
    value: JSON.parse(r._value) as V,
    etag: r._etag,
    mtime: Number(r._mtime),
    vnode: r._vnode === null ? null : Number(r._vnode),
    id: Number(r._id),
  };
}

const SELECT_COLS = '_id, _key, _value, _etag, _mtime, _vnode';

export async function getRow<V>(
  db: Queryable,
  b: BucketDefinition,
  key: string,
  forUpdate = false,
): Promise<MorayRow<V> | undefined> {
  const r = await db.query<RawRow>(
    `SELECT ${SELECT_COLS} FROM ${b.name} WHERE _key = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [key],
  );
  const row = r.rows[0];
  return row ? rowFromRaw<V>(b.name, row) : undefined;
}

export function checkEtag(
  bucket: string,
  key: string,
  existing: MorayRow | undefined,
  etag: EtagCondition,
): void {
  if (etag === undefined) return;
  if (etag === null && existing === undefined) return;
  if (etag !== null && existing !== undefined && existing.etag === etag) return;
  throw new RemoraError(
    'EtagConflict',
    `${bucket} ${key}: expected etag ${etag === null ? '(none: must not exist)' : etag}, found ${existing ? existing.etag : '(no record)'}`,
    { details: { bucket, key, expected: etag, actual: existing?.etag ?? null } },
  );
}

/** INSERT of one row with its index columns; `conflict` is what to do when `_key` exists. */
function insertStatement(
  b: BucketDefinition,
  key: string,
  serialized: string,
  mtime: number,
  vnode: number | null,
  conflict: 'update' | 'nothing',
): { sql: string; params: unknown[]; etag: string } {
  const etag = morayEtag(serialized);
  const idx = indexValues(b, JSON.parse(serialized) as Record<string, unknown>);
  const cols = b.index.map((i) => columnOf(i.field));
  const params: unknown[] = [key, serialized, etag, mtime, vnode, ...idx];
  const placeholders = params.map((_, i) => `$${i + 1}`).join(', ');
  const onConflict =
    conflict === 'nothing'
      ? 'DO NOTHING'
      : `DO UPDATE SET ${['_value', '_etag', '_mtime', '_vnode', ...cols].map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`;
  const sql = `INSERT INTO ${b.name} (_key, _value, _etag, _mtime, _vnode${cols.map((c) => `, ${c}`).join('')})
     VALUES (${placeholders}) ON CONFLICT (_key) ${onConflict}`;
  return { sql, params, etag };
}

/** Insert or replace a row. The caller has checked the etag condition under FOR UPDATE. */
export async function upsertRow(
  db: Queryable,
  b: BucketDefinition,
  key: string,
  serialized: string,
  mtime: number,
  vnode: number | null,
): Promise<string> {
  const { sql, params, etag } = insertStatement(b, key, serialized, mtime, vnode, 'update');
  await db.query(sql, params);
  return etag;
}

/** One row of `updateRowsIfEtag`: the key, the etag it must still have, and its new value. */
export interface ConditionalReplace {
  key: string;
  etag: string;
  serialized: string;
  vnode: number | null;
}

/**
 * Replace many rows in ONE statement, each only if it still has the etag it was read with and its
 * index columns (for `manta`: owner, name, objectId, type, dirname) stay what they were, so no
 * row changes identity and none needs a delete-log record. Returns the keys replaced; the caller
 * decides what a shortfall means (MetadataTier.replaceManyIfEtag: all or nothing).
 */
export async function updateRowsIfEtag(
  db: Queryable,
  b: BucketDefinition,
  rows: readonly ConditionalReplace[],
  mtime: number,
): Promise<string[]> {
  if (rows.length === 0) return [];
  const cols = b.index.map((i) => columnOf(i.field));
  const idx = rows.map((r) => indexValues(b, JSON.parse(r.serialized) as Record<string, unknown>));
  const params: unknown[] = [
    rows.map((r) => r.key),
    rows.map((r) => r.etag),
    rows.map((r) => r.serialized),
    rows.map((r) => morayEtag(r.serialized)),
    rows.map((r) => r.vnode),
    ...b.index.map((_, c) => idx.map((v) => (v[c] === null ? null : String(v[c])))),
  ];
  // Index columns compare as text (NUMERIC ones through their text form): IS NOT DISTINCT FROM,
  // since an absent field is NULL on both sides.
  const same = cols.map((c, i) => `t.${c}::text IS NOT DISTINCT FROM u.c${i}`).join(' AND ');
  const r = await db.query<{ _key: string }>(
    `UPDATE ${b.name} t SET _value = u.v, _etag = u.ne, _mtime = $${params.length + 1}, _vnode = u.vn
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]${cols.map((_, i) => `, $${i + 6}::text[]`).join('')})
            AS u(k, e, v, ne, vn${cols.map((_, i) => `, c${i}`).join('')})
      WHERE t._key = u.k AND t._etag = u.e${same ? ` AND ${same}` : ''}
      RETURNING t._key`,
    [...params, mtime],
  );
  return r.rows.map((x) => x._key);
}

/** Insert a row that must not exist; false when the key is already taken. */
export async function insertRowIfAbsent(
  db: Queryable,
  b: BucketDefinition,
  key: string,
  serialized: string,
  mtime: number,
  vnode: number | null,
): Promise<boolean> {
  const { sql, params } = insertStatement(b, key, serialized, mtime, vnode, 'nothing');
  const r = await db.query(sql, params);
  return r.rowCount === 1;
}

export async function deleteRow(db: Queryable, b: BucketDefinition, key: string): Promise<number> {
  const r = await db.query(`DELETE FROM ${b.name} WHERE _key = $1`, [key]);
  return r.rowCount ?? 0;
}

/** Rows whose index column equals a value (moray findObjects with one equality filter). */
export async function findRowsBy<V>(
  db: Queryable,
  b: BucketDefinition,
  field: string,
  value: string | number,
  limit = 10_000,
): Promise<MorayRow<V>[]> {
  if (!b.index.some((i) => i.field === field)) throw new Error(`${b.name} has no index on ${field}`);
  const r = await db.query<RawRow>(
    `SELECT ${SELECT_COLS} FROM ${b.name} WHERE ${columnOf(field)} = $1 ORDER BY _key LIMIT $2`,
    [value, limit],
  );
  return r.rows.map((row) => rowFromRaw<V>(b.name, row));
}

/** Rows whose index column is one of several values (findObjects with an OR filter). */
export async function findRowsIn<V>(
  db: Queryable,
  b: BucketDefinition,
  field: string,
  values: string[],
): Promise<MorayRow<V>[]> {
  if (values.length === 0) return [];
  const r = await db.query<RawRow>(
    `SELECT ${SELECT_COLS} FROM ${b.name} WHERE ${columnOf(field)} = ANY($1::text[]) ORDER BY _key`,
    [values],
  );
  return r.rows.map((row) => rowFromRaw<V>(b.name, row));
}

export async function listAll<V>(db: Queryable, b: BucketDefinition): Promise<MorayRow<V>[]> {
  const r = await db.query<RawRow>(`SELECT ${SELECT_COLS} FROM ${b.name} ORDER BY _key`);
  return r.rows.map((row) => rowFromRaw<V>(b.name, row));
}

export async function countRows(db: Queryable, b: BucketDefinition): Promise<number> {
  const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${b.name}`);
  return Number(r.rows[0]?.n ?? 0);
}
