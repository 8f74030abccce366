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

function scanSql(manta: readonly string[], deleteLog: readonly string[]): string {
  // A delete record whose _value is not JSON has no objectId column: its key names it.
  const deletes = `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid, _key, _etag,
      _mtime, _value, shard FROM ${parquet(deleteLog)}`;
  const live =
    manta.length === 0
      ? 'SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS key, NULL::VARCHAR AS shard WHERE false'
      : `SELECT lower(objectId) AS oid, min(key) AS key, arg_min(shard, key) AS shard FROM ${parquet(manta)}
          WHERE type = 'object' AND objectId IS NOT NULL AND lower(objectId) IN (SELECT oid FROM d)
          GROUP BY 1`;
  return `WITH d AS (${deletes}), l AS (${live})
    SELECT d.oid, d._key, d._etag, d._mtime, d._value, d.shard, l.key AS live_key, l.shard AS live_shard
      FROM d LEFT JOIN l USING (oid) ORDER BY d.oid, d._mtime, d._key`;
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
  const rows = (await conn.runAndReadAll(scanSql(files.manta, files.deleteLog))).getRows();
  const objects: GcInput[] = [];
  let cur: { objectId: string; live: GcInput['live'][number][]; deletes: DeleteRecord[] } | undefined;
  for (const r of rows) {
    const [oid, key, etag, mtime, value, shard, liveKey, liveShard] = r as [
      string,
      string,
      string | null,
      bigint | null,
      string | null,
      string,
      string | null,
      string | null,
    ];
    if (!cur || cur.objectId !== oid) {
      cur = { objectId: oid, live: [], deletes: [] };
      objects.push(cur);
      if (liveKey !== null) cur.live.push({ key: liveKey, shard: liveShard ?? '' });
    }
    cur.deletes.push({
      shard,
      key,
      etag: etag ?? '',
      mtime: mtime === null ? Number.NaN : Number(mtime),
      value: value ?? '',
    });
  }
  const malformedLive =
    files.manta.length === 0
      ? []
      : (await conn.runAndReadAll(malformedLiveSql(files.manta)))
          .getRows()
          .map(([k, s]) => ({ key: String(k), shard: String(s) }));
  return { objects, deleteRecords: rows.length, malformedLive };
}
