/**
 * GC's read of one partition group: every delete record of the group's objectIds, each with
 * one live reference when any `manta` object row (snaplinks included) on any shard names its
 * objectId. Unpack partitions both tables by objectId, so the live rows that matter are in the
 * same group of every shard (src/dumps/partition-inputs.ts). Memory: the group's delete
 * records, and the live rows naming their objectIds, not the group's whole namespace.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../../dumps/duckdb.js';
import type { DeleteRecord, GcInput } from './gc.plan.js';

const parquet = (files: readonly string[]) =>
  `read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true)`;

/**
 * The fields of a delete record's `_value` the decision reads (gc.plan.ts parseDeleteValue), for
 * DuckDB's strict transform: a value where any of them is missing or of another type gives NULL.
 * Such a record travels as its raw text, to be judged exactly as before; the others travel as the
 * chunk's typed columns (unpack parsed them already, leniently: the strict check is what makes
 * them equal to the raw fields).
 */
const DECISION_FIELDS = sqlString(
  JSON.stringify({
    objectId: 'VARCHAR',
    owner: 'VARCHAR',
    creator: 'VARCHAR',
    contentLength: 'BIGINT',
    sharks: [{ manta_storage_id: 'VARCHAR', datacenter: 'VARCHAR' }],
  }),
);

/**
 * One row: a JSON array of every delete record of the group with its live reference, in
 * (objectId, _mtime, _key) order, each `[oid, _key, _etag, _mtime, shard, liveKey, liveShard,
 * then either objectId, owner, creator, contentLength, [node ids], [datacenters] or the raw
 * `_value`]`. One string parsed once in JS costs a fraction of converting every column of every
 * row, and the typed columns are a third of the `_value`s' bytes.
 */
function scanSql(manta: readonly string[], deleteLog: readonly string[]): string {
  // A delete record whose _value is not JSON has no objectId column: its key names it.
  const deletes = `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid, _key, _etag,
      _mtime, shard, try(json_transform_strict(_value, ${DECISION_FIELDS})) IS NOT NULL AS strict, _value,
      objectId, owner, creator, contentLength, sharks
      FROM ${parquet(deleteLog)}`;
  const live =
    manta.length === 0
      ? 'SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS key, NULL::VARCHAR AS shard WHERE false'
      : `SELECT lower(objectId) AS oid, min(key) AS key, arg_min(shard, key) AS shard FROM ${parquet(manta)}
          WHERE type = 'object' AND objectId IS NOT NULL AND lower(objectId) IN (SELECT oid FROM d)
          GROUP BY 1`;
  return `WITH d AS (${deletes}), l AS (${live}),
    j AS (SELECT d.oid, d._key, d._mtime, CASE WHEN d.strict
            THEN json_array(d.oid, d._key, d._etag, d._mtime, d.shard, l.key, l.shard, d.objectId, d.owner,
                   d.creator, d.contentLength, list_transform(d.sharks, s -> s.manta_storage_id),
                   list_transform(d.sharks, s -> s.datacenter))
            ELSE json_array(d.oid, d._key, d._etag, d._mtime, d.shard, l.key, l.shard, d._value) END AS line
          FROM d LEFT JOIN l USING (oid))
    SELECT '[' || coalesce(string_agg(line, ',' ORDER BY oid, _mtime, _key), '') || ']' AS rows, count(*) AS n
      FROM j`;
}

type Str = string | null;
/** A scanned row: the raw `_value` (8 fields), or the typed fields (13). */
type ScanRow =
  | [string, string, Str, number | null, string, Str, Str, Str]
  | [string, string, Str, number | null, string, Str, Str, Str, Str, Str, number | null, Str[], Str[]];

/** The decision's fields of a row, as parseDeleteValue reads them. */
function valueOf(r: ScanRow): string | Record<string, unknown> {
  if (r.length === 8) return r[7] ?? '';
  const [, , , , , , , objectId, owner, creator, contentLength, ids, dcs] = r;
  return {
    objectId,
    owner,
    ...(creator !== null ? { creator } : {}),
    ...(contentLength !== null ? { contentLength } : {}),
    sharks: ids.map((id, i) => ({ manta_storage_id: id, datacenter: dcs[i] })),
  };
}

/** `manta` rows of the group whose `_value` is not JSON: they may name any objectId. */
function malformedLiveSql(manta: readonly string[]): string {
  return `SELECT _key, shard FROM ${parquet(manta)} WHERE NOT value_ok LIMIT 5`;
}

export interface GroupScan {
  objects: GcInput[];
  deleteRecords: number;
  /** Examples (up to 5) of live rows whose `_value` is not JSON; the re-check still guards them. */
  malformedLive: { key: string; shard: string }[];
}

export async function scanGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
): Promise<GroupScan> {
  if (files.deleteLog.length === 0) return { objects: [], deleteRecords: 0, malformedLive: [] };
  const [text, n] = (await conn.runAndReadAll(scanSql(files.manta, files.deleteLog))).getRows()[0] as [
    string,
    bigint,
  ];
  const rows = JSON.parse(text) as ScanRow[];
  const objects: GcInput[] = [];
  let cur: { objectId: string; live: GcInput['live'][number][]; deletes: DeleteRecord[] } | undefined;
  for (const r of rows) {
    const [oid, key, etag, mtime, shard, liveKey, liveShard] = r;
    if (!cur || cur.objectId !== oid) {
      cur = { objectId: oid, live: [], deletes: [] };
      objects.push(cur);
      if (liveKey !== null) cur.live.push({ key: liveKey, shard: liveShard ?? '' });
    }
    cur.deletes.push({ shard, key, etag: etag ?? '', mtime: mtime ?? Number.NaN, value: valueOf(r) });
  }
  const malformedLive =
    files.manta.length === 0
      ? []
      : (await conn.runAndReadAll(malformedLiveSql(files.manta)))
          .getRows()
          .map(([k, s]) => ({ key: String(k), shard: String(s) }));
  return { objects, deleteRecords: Number(n), malformedLive };
}
