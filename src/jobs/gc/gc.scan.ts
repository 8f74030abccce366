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
    // As its JSON text: a strict BIGINT would take 1.5 and round it, where the raw value says 1.5.
    contentLength: 'JSON',
    sharks: [{ manta_storage_id: 'VARCHAR', datacenter: 'VARCHAR' }],
  }),
);

/** Separators of the scan's one string: records, fields, and a shark's id and datacenter. */
const RS = '\x1d';
const FS = '\x1f';
const SS = '\x1e';
const chr = (c: string) => `chr(${c.charCodeAt(0)})`;

/**
 * One row: every delete record of the group with its live reference, in (objectId, _mtime, _key)
 * order, as one string (records split by RS, fields by FS). A record whose decision fields pass
 * DuckDB's strict transform, and none of whose text holds a separator, travels as its typed
 * columns: `T oid _key _etag _mtime shard liveKey liveShard objectId owner creator contentLength
 * sharks` (sharks: id SS datacenter SS id …; liveKey and liveShard as JSON, `null` for none). Any
 * other record travels as its raw text, every field JSON-encoded: `R oid _key _etag _mtime shard
 * liveKey liveShard _value`, to be judged exactly as before. Splitting one delimited string costs a
 * fraction of building and parsing JSON for every record (the typed fields are a third of the
 * `_value`s' bytes); the separators are control characters, which JSON always escapes.
 */
function scanSql(manta: readonly string[], deleteLog: readonly string[]): string {
  // A delete record whose _value is not JSON has no objectId column: its key names it.
  const deletes = `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid, _key, _etag,
      _mtime, shard, try(json_transform_strict(_value, ${DECISION_FIELDS})) AS fields, _value,
      objectId, owner, creator, contentLength, sharks
      FROM ${parquet(deleteLog)}`;
  const live =
    manta.length === 0
      ? 'SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS key, NULL::VARCHAR AS shard WHERE false'
      : `SELECT lower(objectId) AS oid, min(key) AS key, arg_min(shard, key) AS shard FROM ${parquet(manta)}
          WHERE type = 'object' AND objectId IS NOT NULL AND lower(objectId) IN (SELECT oid FROM d)
          GROUP BY 1`;
  const json = (x: string) => `coalesce(to_json(${x})::VARCHAR, 'null')`;
  const separators = `'[' || chr(28) || '-' || chr(31) || ']'`;
  const typed = `d.fields IS NOT NULL
      AND (d.contentLength IS NULL OR regexp_full_match(d.fields.contentLength::VARCHAR, '-?[0-9]+')) AND d._etag IS NOT NULL AND d._mtime IS NOT NULL AND d.objectId IS NOT NULL
      AND d.owner IS NOT NULL AND NOT list_contains(list_transform(d.sharks, s -> s.manta_storage_id IS NULL), true)
      AND NOT regexp_matches(concat(d._key, d._etag, d.shard, d.objectId, d.owner, coalesce(d.creator, ''),
        array_to_string(list_transform(d.sharks, s -> s.manta_storage_id || coalesce(s.datacenter, '')), '')),
        ${separators})`;
  return `WITH d AS (${deletes}), l AS (${live}),
    j AS (SELECT d.oid, d._key, d._mtime, CASE WHEN ${typed}
            THEN concat_ws(${chr(FS)}, 'T', d.oid, d._key, d._etag, d._mtime::VARCHAR, d.shard, ${json('l.key')},
                   ${json('l.shard')}, d.objectId, d.owner, coalesce(d.creator, ''),
                   coalesce(d.contentLength::VARCHAR, ''),
                   array_to_string(list_transform(d.sharks,
                     s -> s.manta_storage_id || ${chr(SS)} || coalesce(s.datacenter, '')), ${chr(SS)}))
            ELSE concat_ws(${chr(FS)}, 'R', ${json('d.oid')}, ${json('d._key')}, ${json('d._etag')},
                   coalesce(d._mtime::VARCHAR, ''), ${json('d.shard')}, ${json('l.key')}, ${json('l.shard')},
                   ${json('d._value')}) END AS line
          FROM d LEFT JOIN l USING (oid))
    SELECT coalesce(string_agg(line, ${chr(RS)} ORDER BY oid, _mtime, _key), '') AS rows, count(*) AS n
      FROM j`;
}

type Str = string | null;

/** One scanned record: its grouping key, the delete record, and the live reference of its objectId. */
function decodeRecord(line: string): { oid: string; record: DeleteRecord; liveKey: Str; liveShard: Str } {
  const f = line.split(FS);
  const mtime = (x: string) => (x === '' ? Number.NaN : Number(x));
  if (f[0] === 'T') {
    const sharks: { manta_storage_id: string; datacenter?: string }[] = [];
    if (f[12] !== '') {
      const s = f[12]!.split(SS);
      for (let i = 0; i < s.length; i += 2)
        sharks.push(
          s[i + 1] ? { manta_storage_id: s[i]!, datacenter: s[i + 1] } : { manta_storage_id: s[i]! },
        );
    }
    return {
      oid: f[1]!,
      liveKey: f[6] === 'null' ? null : (JSON.parse(f[6]!) as Str),
      liveShard: f[7] === 'null' ? null : (JSON.parse(f[7]!) as Str),
      record: {
        key: f[2]!,
        etag: f[3]!,
        mtime: mtime(f[4]!),
        shard: f[5]!,
        value: {
          objectId: f[8],
          owner: f[9],
          ...(f[10] ? { creator: f[10] } : {}),
          ...(f[11] !== '' ? { contentLength: Number(f[11]) } : {}),
          sharks,
        },
      },
    };
  }
  const j = (x: string | undefined) => JSON.parse(x!) as Str;
  return {
    oid: j(f[1]) ?? '',
    liveKey: j(f[6]),
    liveShard: j(f[7]),
    record: {
      key: j(f[2]) ?? '',
      etag: j(f[3]) ?? '',
      mtime: mtime(f[4]!),
      shard: j(f[5]) ?? '',
      value: j(f[8]) ?? '',
    },
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

/** What DuckDB answers for a group: the records as one string (decodeGroup reads it). */
export interface GroupRows {
  text: string;
  deleteRecords: number;
  malformedLive: { key: string; shard: string }[];
}

/**
 * The group's query, alone: callers hold the process's DuckDB turn only for this, and decode the
 * string after releasing it, so one task's JavaScript overlaps the next task's query.
 */
export async function queryGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
): Promise<GroupRows> {
  if (files.deleteLog.length === 0) return { text: '', deleteRecords: 0, malformedLive: [] };
  const [text, n] = (await conn.runAndReadAll(scanSql(files.manta, files.deleteLog))).getRows()[0] as [
    string,
    bigint,
  ];
  const malformedLive =
    files.manta.length === 0
      ? []
      : (await conn.runAndReadAll(malformedLiveSql(files.manta)))
          .getRows()
          .map(([k, s]) => ({ key: String(k), shard: String(s) }));
  return { text, deleteRecords: Number(n), malformedLive };
}

/** The group's objects, each with its delete records and live reference, from queryGroup's string. */
export function decodeGroup(rows: GroupRows): GroupScan {
  const objects: GcInput[] = [];
  let cur: { objectId: string; live: GcInput['live'][number][]; deletes: DeleteRecord[] } | undefined;
  for (const line of rows.text === '' ? [] : rows.text.split(RS)) {
    const { oid, record, liveKey, liveShard } = decodeRecord(line);
    if (!cur || cur.objectId !== oid) {
      cur = { objectId: oid, live: [], deletes: [] };
      objects.push(cur);
      if (liveKey !== null) cur.live.push({ key: liveKey, shard: liveShard ?? '' });
    }
    cur.deletes.push(record);
  }
  return { objects, deleteRecords: rows.deleteRecords, malformedLive: rows.malformedLive };
}

/** queryGroup then decodeGroup, on one connection. */
export async function scanGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[] },
): Promise<GroupScan> {
  return decodeGroup(await queryGroup(conn, files));
}
