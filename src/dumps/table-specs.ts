/**
 * How each kind of table becomes chunk columns.
 *
 *   moray     any bucket table (header has `_key` and `_value`): moray's fixed columns, typed, plus
 *             columns derived from `_value` (one JSON parse per row, in DuckDB). The dump's
 *             index columns (dirname, owner, objectid, …) are not kept: moray derives them from
 *             `_value`, which is kept whole. `manta_delete_log` chunks also carry `gc_clean`
 *             (deleteRecordCleanSql: GC may read the record from the typed columns).
 *   generic   any other table ("unknown column layout"): every column kept verbatim as text.
 *   mako      a storage node listing (MANTA-REFERENCE §2.4).
 *
 * Rows travel Node → an intermediate CSV per partition → DuckDB `COPY … TO parquet`, so the JSON
 * work runs in DuckDB's threads while Node parses the next rows.
 */
import { sqlString } from './duckdb.js';

export interface TableSpec {
  table: string;
  kind: 'moray' | 'generic' | 'mako';
  /** Columns of the intermediate CSV. */
  csvColumns: string[];
  /** Dump row → CSV values, or undefined when the row is skipped. */
  project(values: (string | null)[]): (string | null)[];
  /** Dump row → the string whose hash picks the partition. */
  partitionKey(values: (string | null)[]): string;
  /** SELECT producing the chunk's columns from a `read_csv(...)` expression. */
  select(from: string, source: string): string;
  /** Whether chunks carry `value_ok` (rows whose `_value` is not JSON are reported). */
  checksValues: boolean;
  /**
   * Moray tables: select() types the `_value` fields from a column `_fields`, which is `_value`
   * itself except in a large row (chunk-writer.ts LARGE_ROW_BYTES), where Node gives the JSON of
   * just the members `names` of `_value` (json-fields.ts; NULL when `_value` is not JSON): a JSON
   * function in DuckDB holds ~5-10x the document, and a 20 MB `_value` ran it out of memory.
   * `valueColumn`: the CSV column of `_value`.
   */
  valueFields?: { valueColumn: number; names: readonly string[] };
  /** Dump columns that must be integers (moray's `_id`, `_txn_snap`, `_mtime`, `_vnode`), by name. */
  integerColumns?: { index: number; name: string }[];
  /** Dump column of the row's `_key` (-1: none), to name a row in an event. */
  keyColumn: number;
  /**
   * Clean COPY rows kept as bytes (copy-rows.ts), read back with readTsvSql: the dump's width,
   * the dump column of each CSV column (-1: NULL), and the partition key: dump column `key`
   * unless NULL or empty, then `fallbackKey` (-1: the empty string) — as partitionKey().
   */
  raw?: { width: number; project: number[]; key: number; fallbackKey: number };
}

export const MORAY_CSV_COLUMNS = ['_id', '_txn_snap', '_key', '_value', '_etag', '_mtime', '_vnode'];
/** Moray's integer columns (BIGINT in the chunks: a value that is not an integer becomes NULL). */
const MORAY_INTEGER_COLUMNS = ['_id', '_txn_snap', '_mtime', '_vnode'];

/**
 * Tables moray keeps for itself in every shard's database, without `_key`/`_value`: a real
 * `pg_dump` of a moray database holds them. `buckets_config` (name, index, pre, post, options,
 * mtime) is each bucket's schema and version [moray lib/buckets/creat.js]. Kept verbatim like any
 * other table, but expected: an `info` event, not `unknown_layout`.
 */
export const MORAY_SYSTEM_TABLES: ReadonlySet<string> = new Set(['buckets_config']);

/**
 * `_value` fields pulled into typed columns. json_transform is lenient: a field of the wrong
 * type becomes NULL (the raw `_value` still holds it).
 */
const VALUE_FIELDS = {
  key: 'VARCHAR',
  dirname: 'VARCHAR',
  name: 'VARCHAR',
  owner: 'VARCHAR',
  creator: 'VARCHAR',
  type: 'VARCHAR',
  objectId: 'VARCHAR',
  contentLength: 'BIGINT',
  contentMD5: 'VARCHAR',
  contentType: 'VARCHAR',
  etag: 'VARCHAR',
  _etag: 'VARCHAR',
  mtime: 'BIGINT',
  createdFrom: 'VARCHAR',
  sharks: [{ datacenter: 'VARCHAR', manta_storage_id: 'VARCHAR', url: 'VARCHAR' }],
};
const VALUE_SHAPE = JSON.stringify(VALUE_FIELDS);
/** The `_value` members the chunks type (VALUE_SHAPE), in its order. */
export const VALUE_FIELD_NAMES: readonly string[] = Object.keys(VALUE_FIELDS);

/**
 * `sharks` is LIST(STRUCT(datacenter, manta_storage_id)). Legacy 2012 shapes
 * `{url, server_uuid, zone_uuid}` have no manta_storage_id (MANTA-1144): the host of `url`
 * (`<zone>.stor.<domain>`) is used, which is how those nodes were named.
 */
const SHARKS_SQL = `list_transform(v.sharks, s -> {'datacenter': s.datacenter,
  'manta_storage_id': coalesce(s.manta_storage_id, regexp_extract(s.url, '^[a-z]+://([^/:]+)', 1))})`;

/** The table of delete records (GC's input): its chunks also carry `gc_clean` (CHUNK_SCHEMA 3). */
export const DELETE_LOG_TABLE = 'manta_delete_log';

/**
 * Separators of GC's text (src/jobs/gc/gc.actions.ts, and its plan): one record from the next,
 * one field from the next (a copy's node and datacenter are fields too). A record that is
 * `gc_clean` holds no control character in any field of its `gc_line`, so these two never occur
 * inside a field, and a clean record's line is a line of GC's tab-separated plan as it is.
 */
export const GC_LINE_SEPARATOR = '\n';
export const GC_FIELD_SEPARATOR = '\t';
/** A one-character string as DuckDB SQL (`chr(n)`): the separators above, which no literal should hold raw. */
export const sqlChr = (c: string) => `chr(${c.charCodeAt(0)})`;

/**
 * `gc_line` of a delete record (CHUNK_SCHEMA 5, on `manta_delete_log` chunks where `gc_clean`):
 * what GC's plan, apply and examples read of a clean record, as one string of GC_FIELD_SEPARATOR
 * separated fields — `_mtime copies contentLength shard _key _etag objectId dir`, then each
 * shark's `id datacenter` (contentLength and a datacenter empty for none; dir: the creator unless
 * null or empty, else the owner) — from the chunk's typed columns, named as in the chunk. Written
 * by unpack once, so GC reads one string per record instead of decoding the record's columns and
 * its `sharks` list and assembling this text every day (docs/gc.md); GC computes the same on older
 * chunks (gc.scan.ts). (CHUNK_SCHEMA 4 wrote it with control-character separators, which the plan
 * then had to map: GC computes the line on those chunks too.)
 */
export function gcLineSql(copies = 'copies'): string {
  const fs = sqlChr(GC_FIELD_SEPARATOR);
  return `concat_ws(${fs}, _mtime::VARCHAR, ${copies}::VARCHAR, coalesce(contentLength::VARCHAR, ''), shard, _key,
    _etag, objectId, CASE WHEN creator IS NOT NULL AND creator <> '' THEN creator ELSE owner END,
    CASE WHEN len(sharks) > 0 THEN array_to_string(list_transform(sharks, s -> s.manta_storage_id || ${fs} || coalesce(s.datacenter, '')), ${fs}) END)`;
}

/** The tables whose chunks carry `oid_uuid` (CHUNK_SCHEMA 4): the objectId as a UUID, for GC's live join. */
export const OID_UUID_TABLES: ReadonlySet<string> = new Set(['manta', DELETE_LOG_TABLE]);

/**
 * `oid_uuid` of a text objectId `x` (CHUNK_SCHEMA 4): the UUID it spells when it is a canonical
 * uuid in either case (8-4-4-4-12 hex digits), else NULL. DuckDB's cast also takes other spellings
 * (no dashes, braces); the round trip to `lower(x)` refuses them, so two objectIds equal as GC
 * compares them (lower-cased) have equal `oid_uuid`, two that differ never do, and every non-NULL
 * `oid_uuid` is the objectId's exact lower-case text. GC's live join compares these 16 bytes
 * instead of lower-casing every `manta` objectId (src/jobs/gc/gc.scan.ts); a NULL (an objectId that
 * is not a canonical uuid) goes GC's text way. The same expression serves the scan for a delete
 * record's objectId when the row holds none (its key names it).
 */
export function oidUuidSql(x: string): string {
  return `CASE WHEN TRY_CAST(${x} AS UUID)::VARCHAR = lower(${x}) THEN TRY_CAST(${x} AS UUID) END`;
}

/**
 * The fields of a delete record's `_value` GC's decision reads (src/jobs/gc/gc.plan.ts
 * parseDeleteValue), each as its JSON text, for DuckDB's strict transform: a value missing any of
 * them, holding one twice, or not JSON gives NULL. JSON text, not VARCHAR: DuckDB casts a number
 * to VARCHAR where JSON.parse would see a number; the text's first character tells the type.
 */
const DELETE_RECORD_FIELDS = sqlString(
  JSON.stringify({
    objectId: 'JSON',
    owner: 'JSON',
    creator: 'JSON',
    contentLength: 'JSON',
    sharks: [{ manta_storage_id: 'JSON', datacenter: 'JSON' }],
  }),
);

/** A JSON string without escapes (no `"`, `\` or control character inside): its text is `"` + value + `"`. */
const PLAIN = String.raw`"[^"\\\x00-\x1f]*"`;
const PLAIN_NONEMPTY = String.raw`"[^"\\\x00-\x1f]+"`;
const plain = (x: string, re = PLAIN) => `coalesce(regexp_full_match(${x}::VARCHAR, '${re}'), false)`;
/** A JSON string's value, for a PLAIN one. */
const unquote = (x: string) => `(${x}::VARCHAR)[2:-2]`;
const UUID = '"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"';

/**
 * Whether one delete-log row may go to GC as typed columns (`gc_clean`): a SQL expression over the
 * columns named in `c` (`value`: the `_value` text; `key`, `etag`, `shard`: VARCHAR; `mtime`:
 * BIGINT). True only when each condition implies what GC's parseDeleteValue checks, and the
 * chunk's lenient typed columns (objectId, owner, creator, contentLength, sharks) then hold
 * exactly what JSON.parse of `_value` gives; anything else goes to GC as raw text, to be judged as
 * written:
 * - `_key` is `/<objectId>/<digits>` (ASCII, so DuckDB's lower() is JavaScript's), naming the
 *   value's objectId; `_mtime` an integer within ±2^53 (a JavaScript number, exactly), `_etag`
 *   and the shard present;
 * - `_value` parses, and strictly: DuckDB's JSON reader also takes trailing commas and NaN /
 *   Infinity, which JSON.parse refuses, so any text that could hold one is not clean; no member
 *   read given twice;
 * - objectId a string of ASCII letters, digits, dashes; owner a non-empty string; creator null or
 *   a string; contentLength null or an integer of at most 15 digits (Number() of its text is then
 *   the value JSON.parse gives; DuckDB writes -0 as 0, so a value of contentLength 0 that could
 *   hold the number -0 is not clean: a number token `-0` after `:`, `[` or `,` and whitespace,
 *   where JSON puts a value — not a `-0` inside a string, such as a uuid's `…-0a1b…`, which
 *   sent about a third of zero-byte records raw before); sharks a list of objects with a
 *   non-empty string id (not a legacy `url`) and a null or string datacenter; when there are
 *   copies, their directory (creator, else owner) is a uuid;
 * - no string GC's plan carries holds `"`, `\` or a control character (JSON escapes them).
 * Found necessary by testing DuckDB (docs/gc.md); the scan's equivalence test holds it to
 * parseDeleteValue (test/gc-scan.test.ts).
 */
export function deleteRecordCleanSql(c: {
  f: string;
  value: string;
  key: string;
  etag: string;
  mtime: string;
  shard: string;
}): string {
  const f = c.f;
  const dir = `CASE WHEN ${f}.creator IS NOT NULL AND ${f}.creator::VARCHAR <> '""' THEN ${f}.creator ELSE ${f}.owner END`;
  return `coalesce(${f} IS NOT NULL AND ${c.mtime} IS NOT NULL AND abs(${c.mtime}) < 9007199254740992
  AND ${c.etag} IS NOT NULL AND ${c.shard} IS NOT NULL
  AND coalesce(regexp_full_match(${c.key}, '/[0-9A-Za-z-]+/[0-9]+'), false)
  AND NOT coalesce(regexp_matches(${c.etag} || ${c.shard}, '${String.raw`["\\\x00-\x1f]`}'), true)
  AND NOT coalesce(regexp_matches(${c.value}, '${String.raw`(?i),\s*[}\]]|[:\[,]\s*[-+]?(?:nan|inf)`}'), true)
  AND coalesce(regexp_full_match(${f}.objectId::VARCHAR, '"[0-9A-Za-z-]+"'), false)
  AND lower(${unquote(`${f}.objectId`)}) = lower(split_part(${c.key}, '/', 2))
  AND ${plain(`${f}.owner`, PLAIN_NONEMPTY)}
  AND (${f}.creator IS NULL OR ${plain(`${f}.creator`)})
  AND (${f}.contentLength IS NULL OR coalesce(regexp_full_match(${f}.contentLength::VARCHAR, '0|-?[1-9][0-9]{0,14}'), false))
  AND NOT (${f}.contentLength::VARCHAR = '0' AND coalesce(regexp_matches(${c.value}, '${String.raw`[:\[,]\s*-0`}'), true))
  AND ${f}.sharks IS NOT NULL
  AND coalesce(list_bool_and(list_transform(${f}.sharks, s -> s IS NOT NULL
    AND ${plain('s.manta_storage_id', PLAIN_NONEMPTY)} AND (s.datacenter IS NULL OR ${plain('s.datacenter')}))), true)
  AND (len(${f}.sharks) = 0 OR coalesce(regexp_full_match((${dir})::VARCHAR, '${UUID}'), false)), false)`;
}

/** deleteRecordCleanSql's `f`: the fields of `_value` it checks, by DuckDB's strict transform (NULL: not JSON, or a field missing or given twice). */
export function deleteRecordFieldsSql(value: string): string {
  return `try(json_transform_strict(${value}, ${DELETE_RECORD_FIELDS}))`;
}

export function morayTableSpec(table: string, columns: string[]): TableSpec {
  const idx = MORAY_CSV_COLUMNS.map((c) => columns.indexOf(c));
  const keyIdx = columns.indexOf('_key');
  const objIdx = columns.findIndex((c) => c.toLowerCase() === 'objectid');
  return {
    table,
    kind: 'moray',
    csvColumns: MORAY_CSV_COLUMNS,
    checksValues: true,
    valueFields: { valueColumn: MORAY_CSV_COLUMNS.indexOf('_value'), names: VALUE_FIELD_NAMES },
    integerColumns: MORAY_INTEGER_COLUMNS.map((name) => ({ index: columns.indexOf(name), name })).filter(
      (c) => c.index >= 0,
    ),
    keyColumn: keyIdx,
    raw: { width: columns.length, project: idx, key: objIdx < 0 ? keyIdx : objIdx, fallbackKey: keyIdx },
    project: (values) => idx.map((i) => (i < 0 ? null : (values[i] ?? null))),
    partitionKey: (values) => {
      const id = objIdx < 0 ? null : values[objIdx];
      return id ? id : (values[keyIdx] ?? '');
    },
    select: (from, source) => {
      const select = `
      WITH t AS (SELECT *, try(json_transform(_fields, ${sqlString(VALUE_SHAPE)})) AS v FROM ${from}),
      u AS (SELECT *, CASE WHEN _value IS NOT NULL THEN v IS NOT NULL END AS value_ok${
        table === DELETE_LOG_TABLE
          ? `,
        ${gcFields()} AS gf`
          : ''
      } FROM t)
      SELECT coalesce(v.key, _key) AS key, v.owner AS owner, v.creator AS creator,
        nullif(split_part(coalesce(v.key, _key), '/', 3), '') AS namespace, v.type AS type,
        v.objectId AS objectId, v.contentLength AS contentLength, v.contentMD5 AS contentMD5,
        v.contentType AS contentType, v.etag AS etag, v.createdFrom AS createdFrom,
        v.dirname AS dirname, v.name AS name, ${SHARKS_SQL} AS sharks,
        len(v.sharks)::INTEGER AS copies, v.mtime AS mtime,
        _key, _etag, TRY_CAST(_mtime AS BIGINT) AS _mtime, TRY_CAST(_id AS BIGINT) AS _id,
        TRY_CAST(_vnode AS BIGINT) AS _vnode, TRY_CAST(_txn_snap AS BIGINT) AS _txn_snap,
        ${sqlString(source)} AS shard, _value, value_ok${
          OID_UUID_TABLES.has(table)
            ? `,
        ${oidUuidSql('v.objectId')} AS oid_uuid`
            : ''
        }${
          table === DELETE_LOG_TABLE
            ? `,
        ${gcClean(source)} AS gc_clean`
            : ''
        }
      FROM u`;
      // gc_line over the chunk's own columns, for the records GC may read as typed columns.
      return table === DELETE_LOG_TABLE
        ? `SELECT *, CASE WHEN gc_clean THEN ${gcLineSql()} END AS gc_line FROM (${select})`
        : select;
    },
  };
}

/**
 * `gc_clean` of a delete-log row in unpack (deleteRecordCleanSql). A large row's `_fields` is
 * not its `_value` (chunk-writer.ts LARGE_ROW_BYTES: Node picked the members): false, so GC reads
 * it raw and no JSON function runs on a long `_value`.
 */
function gcClean(source: string): string {
  return deleteRecordCleanSql({
    f: 'gf',
    value: '_value',
    key: '_key',
    etag: '_etag',
    mtime: 'TRY_CAST(_mtime AS BIGINT)',
    shard: sqlString(source),
  });
}
const gcFields = () =>
  `CASE WHEN _fields IS NOT DISTINCT FROM _value THEN ${deleteRecordFieldsSql('_value')} END`;

/** Column names as DuckDB identifiers (verbatim, double quotes doubled). */
export const ident = (c: string) => `"${c.replaceAll('"', '""')}"`;

export function genericTableSpec(table: string, columns: string[]): TableSpec {
  return {
    table,
    kind: 'generic',
    csvColumns: columns,
    checksValues: false,
    keyColumn: columns.indexOf('_key'),
    raw: { width: columns.length, project: columns.map((_, i) => i), key: 0, fallbackKey: -1 },
    project: (values) => values,
    partitionKey: (values) => values[0] ?? '',
    select: (from, source) =>
      `SELECT ${columns.map(ident).join(', ')}, ${sqlString(source)} AS shard FROM ${from}`,
  };
}

export const MAKO_CSV_COLUMNS = ['path', 'bytes', 'mtime', 'kb', 'owner', 'objectId'];

/** Listing rows: one per file on a node. `owner` is the directory: the creator, or the owner (§1.8). */
export function makoTableSpec(): TableSpec {
  return {
    table: 'mako',
    kind: 'mako',
    csvColumns: MAKO_CSV_COLUMNS,
    checksValues: false,
    keyColumn: -1,
    project: (values) => values,
    partitionKey: (values) => values[5] ?? '',
    select: (from, source) => `
      SELECT ${sqlString(source)} AS manta_storage_id, owner, objectId, TRY_CAST(bytes AS BIGINT) AS bytes,
        TRY_CAST(mtime AS BIGINT) AS mtime, TRY_CAST(kb AS BIGINT) AS kb, path FROM ${from}`,
  };
}

/**
 * read_csv's buffer for a file whose longest line is `longestLine` bytes: a power of two above
 * it, at least 2 MiB. DuckDB needs the buffer to hold the longest line (`max_line_size`), and each
 * conversion thread holds buffers of this size: a fixed 16 MB (for 8 MB lines) cost ~65 MB of the
 * unpack's peak RSS (docs/dumps.md "Session 4"), while moray rows are a few KB.
 */
function csvBufferBytes(longestLine: number): number {
  let b = MIN_CSV_BUFFER_BYTES;
  while (b <= longestLine + 1) b *= 2;
  return b;
}
const MIN_CSV_BUFFER_BYTES = 2 << 20;

function sizeOptions(longestLine: number): string {
  const b = csvBufferBytes(longestLine);
  return `max_line_size = ${b}, buffer_size = ${b}`;
}

/** The `read_csv` expression for an intermediate file (all columns text; `""` = empty, bare = NULL). */
export function readCsvSql(file: string, columns: string[], longestLine: number): string {
  const cols = columns.map((c) => `${sqlString(c)}: 'VARCHAR'`).join(', ');
  return `read_csv(${sqlString(file)}, header = false, delim = ',', quote = '"', escape = '"',
    allow_quoted_nulls = false, new_line = '\\n', ${sizeOptions(longestLine)}, columns = {${cols}})`;
}

/**
 * A SELECT of `columns` from an intermediate file of raw COPY rows (copy-rows.ts): tab-separated,
 * no quoting, `\N` = NULL, every other byte literal (the rows were checked to hold no escape).
 */
export function readTsvSql(
  file: string,
  width: number,
  project: number[],
  columns: string[],
  longestLine: number,
): string {
  const cols = Array.from({ length: width }, (_, i) => `'c${i}': 'VARCHAR'`).join(', ');
  const from = `read_csv(${sqlString(file)}, header = false, delim = '\\t', quote = '', escape = '',
    nullstr = '\\N', new_line = '\\n', ${sizeOptions(longestLine)}, columns = {${cols}})`;
  const select = project.map((i, k) => `${i < 0 ? 'NULL::VARCHAR' : `c${i}`} AS ${ident(columns[k]!)}`);
  return `SELECT ${select.join(', ')} FROM ${from}`;
}
