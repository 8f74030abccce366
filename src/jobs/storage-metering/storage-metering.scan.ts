/**
 * One partition of storage metering: the `manta` chunks of partition p of every index shard,
 * aggregated in DuckDB to partial sums per (owner, namespace). Everything an objectId needs
 * (all its keys, on every shard) is in this one partition, because unpack partitions by
 * objectId (DESIGN.md "Scale-out"), so the per-owner dedup is exact here and memory is bounded
 * by the partition, never by the largest account (RFD 16 problem 5).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString, type DuckPool } from '../../dumps/duckdb.js';
import { NAMESPACES } from '../../core/ids.js';
import type { ReportBuilder } from '../../core/run-report.js';
import { MIN_SIZE, UNMETERED } from './storage-metering.rules.js';

const NS_LIST = NAMESPACES.map(sqlString).join(', ');
/** Examples of malformed rows kept per partition (the report keeps 5 per kind overall). */
const EXAMPLE_ROWS = 5;

/** A well-formed row: anything else is a `malformed-record` event. */
function wellFormed(): string {
  return `value_ok AND owner IS NOT NULL AND key IS NOT NULL
    AND (type = 'directory' OR (type = 'object' AND objectId IS NOT NULL))`;
}

/**
 * Billed bytes of an object row: max(contentLength, 128 KiB) × copies; a missing contentLength
 * bills the minimum, missing sharks bill 0 (docs/metering-compute.md "Storage metering edge
 * cases"). BIGINT arithmetic, HUGEINT only for a row whose product overflows (a HUGEINT
 * multiply on every row cost a third of the query).
 */
function billed(copies: string): string {
  return `coalesce(try(greatest(coalesce(contentLength, 0), ${MIN_SIZE}) * coalesce(${copies}, 0)),
    greatest(coalesce(contentLength, 0), ${MIN_SIZE})::HUGEINT * coalesce(${copies}, 0))`;
}

/**
 * One pass over the partition's files. Every row gets
 *   rk   -1 malformed; 0 well-formed but not metered (uploads, …); 1..4 its namespace's
 *        position in NAMESPACES (an objectId counts in the lowest rank it has a key in)
 *   obj  an object key (else a directory)
 *   unm  a parsable row in a namespace that is not metered (reported, not charged)
 *   b    billed bytes of the object: max(contentLength, 128 KiB) × copies
 * then, per (owner, rank): directories and keys (row counts), objects and bytes (from a group
 * by (owner, objectId): an object's first rank). One row comes back: the partition's counters
 * and its partial file, already written as JSON lines (owner, then namespace in NAMESPACES
 * order) by DuckDB.
 *
 * Measured (docs/pipeline.md "Bench"): the earlier plan (a count query, then dirs/keys/objects
 * CTEs joined back together) read the files twice and cost 1.3–1.8x the CPU per run; returning
 * the ~4k per-owner rows as columns and building the lines in JS cost 20–50 ms per partition on
 * the main thread (HUGEINT → bigint conversion), ~30% of a 235k-record partition's scan.
 */
function query(files: string[], copies: string): string {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  return `
    WITH r AS MATERIALIZED (
      SELECT owner, objectId,
        CASE WHEN ${wellFormed()}
          THEN coalesce(list_position([${NS_LIST}], namespace), 0) ELSE -1 END::TINYINT AS rk,
        type = 'object' AS obj,
        coalesce(value_ok AND namespace NOT IN (${NS_LIST}), false) AS unm,
        ${billed(copies)} AS b,
        -- Suspect rows (decisions in docs/metering-compute.md "Storage metering edge cases").
        obj AND ${copies} IS NULL AS nosh,
        obj AND contentLength IS NULL AS nocl
      FROM ${from}
    ),
    -- The keys of one objectId may disagree on size or copies: the largest is billed.
    objs AS (SELECT owner, min(rk) AS rk, max(b) AS b, min(b) <> max(b) AS split
      FROM r WHERE obj AND rk > 0 GROUP BY owner, objectId),
    o AS (SELECT owner, rk, count(*) AS objects, sum(b) AS bytes FROM objs GROUP BY owner, rk),
    -- An object's first rank is a rank where that owner has a key: every (owner, rk) of o is in k.
    k AS (SELECT owner, rk, count(*) FILTER (NOT obj) AS dirs, count(*) FILTER (obj) AS keys
      FROM r WHERE rk > 0 GROUP BY owner, rk),
    -- An owner with only unmetered rows here (e.g. only under uploads) gets a line of zeros, as
    -- the original's storage-reduce3 filled one: the owner is in the operator file.
    z AS (SELECT owner, 0::TINYINT AS rk, 0 AS dirs, 0 AS keys, 0 AS objects, 0 AS bytes
      FROM r WHERE rk >= 0 GROUP BY owner HAVING max(rk) = 0),
    u AS (SELECT owner, rk, dirs, keys, coalesce(objects, 0) AS objects, coalesce(bytes, 0) AS bytes
      FROM k LEFT JOIN o USING (owner, rk) UNION ALL SELECT * FROM z)
    SELECT count(*) AS scanned, count(*) FILTER (rk < 0) AS malformed, count(*) FILTER (unm) AS unmetered,
      (SELECT count(*) FROM u) AS lines,
      count(*) FILTER (rk >= 0 AND nosh) AS nosharks, count(*) FILTER (rk >= 0 AND nocl) AS nolength,
      (SELECT count(*) FROM objs WHERE split) AS split,
      -- Lines built with ||: format() with to_json() per line was ~10% of the whole scan. An owner
      -- of plain characters (a UUID) needs no JSON escaping; anything else goes through to_json.
      (SELECT string_agg('{"owner":' || CASE WHEN regexp_full_match(owner, '[0-9A-Za-z_.-]*')
            THEN '"' || owner || '"' ELSE to_json(owner)::VARCHAR END
          || ',"namespace":"' || coalesce([${NS_LIST}][rk], '${UNMETERED}') || '","directories":"' || dirs || '","keys":"' || keys
          || '","objects":"' || objects || '","bytes":"' || bytes || '"}', chr(10) ORDER BY owner, rk)
        FROM u) AS body
    FROM r`;
}

function malformedQuery(files: string[]): string {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  return `SELECT shard, _key, left(_value, 300) AS value FROM ${from}
    WHERE NOT coalesce(${wellFormed()}, false)
    LIMIT ${EXAMPLE_ROWS}`;
}

export interface ScanOptions {
  /**
   * The chunks have the `copies` column (manifest CHUNK_SCHEMA 2): read it instead of decoding
   * the `sharks` list, which was ~40% of the scan's CPU (docs/pipeline.md "Bench").
   */
  copiesColumn: boolean;
}

/** A partition's partial sums: one JSON line per (owner, namespace) with counts as decimal strings. */
export interface PartialSums {
  body: string;
  lines: number;
}

/** Scan one partition group's files; bad rows become events in `report`, never exceptions. */
export async function scanPartition(
  duck: DuckPool,
  files: string[],
  report: ReportBuilder,
  opts: ScanOptions,
): Promise<PartialSums> {
  if (files.length === 0) return { body: '', lines: 0 };
  // Time spent waiting for this process's other queries is a phase of its own in the report.
  return duck.run((conn) => scanFiles(conn, files, report, opts), report.phase('queued'));
}

async function scanFiles(
  conn: DuckDBConnection,
  files: string[],
  report: ReportBuilder,
  opts: ScanOptions,
): Promise<PartialSums> {
  const [row] = (
    await conn.runAndReadAll(query(files, opts.copiesColumn ? 'copies' : 'len(sharks)'))
  ).getRows();
  const [scanned, malformed, unmetered, lines, nosharks, nolength, split, body] = row as [
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    bigint,
    string | null,
  ];
  report
    .count('recordsScanned', Number(scanned))
    .count('malformed', Number(malformed))
    .count('processed', Number(scanned - malformed));
  report.count('unmeteredNamespaceRows', Number(unmetered));
  if (malformed > 0n) {
    const examples = (await conn.runAndReadAll(malformedQuery(files))).getRowObjectsJson();
    for (const ex of examples) report.event('malformed-record', 'error', ex);
    // The remaining malformed rows are counted without examples.
    report.event('malformed-record', 'error', undefined, Number(malformed) - examples.length);
  }
  await suspectRows(conn, files, report, opts, { nosharks, nolength, split });
  return { body: body ?? '', lines: Number(lines) };
}

/**
 * Rows that are counted but whose data is suspect: a warning event each, with examples (read
 * again only when there are some). Decisions: docs/metering-compute.md "Storage metering edge cases".
 */
async function suspectRows(
  conn: DuckDBConnection,
  files: string[],
  report: ReportBuilder,
  opts: ScanOptions,
  n: { nosharks: bigint; nolength: bigint; split: bigint },
): Promise<void> {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  const copies = opts.copiesColumn ? 'copies' : 'len(sharks)';
  const kinds: [string, bigint, string][] = [
    [
      'object-without-sharks',
      n.nosharks,
      `SELECT shard, _key, left(_value, 300) AS value FROM ${from}
        WHERE ${wellFormed()} AND type = 'object' AND ${copies} IS NULL LIMIT ${EXAMPLE_ROWS}`,
    ],
    [
      'object-without-content-length',
      n.nolength,
      `SELECT shard, _key, left(_value, 300) AS value FROM ${from}
        WHERE ${wellFormed()} AND type = 'object' AND contentLength IS NULL LIMIT ${EXAMPLE_ROWS}`,
    ],
    [
      'objectid-keys-disagree',
      n.split,
      `SELECT owner, objectId, list(_key ORDER BY _key) AS keys,
          list(DISTINCT contentLength ORDER BY contentLength) AS contentLengths,
          list(DISTINCT ${copies} ORDER BY ${copies}) AS copies
        FROM ${from} WHERE ${wellFormed()} AND type = 'object'
          AND coalesce(list_position([${NS_LIST}], namespace), 0) > 0
        GROUP BY owner, objectId
        HAVING min(${billed(copies)}) <> max(${billed(copies)})
        ORDER BY owner, objectId LIMIT ${EXAMPLE_ROWS}`,
    ],
  ];
  for (const [kind, count, sql] of kinds) {
    if (count === 0n) continue;
    const examples = (await conn.runAndReadAll(sql)).getRowObjectsJson();
    for (const ex of examples) report.event(kind, 'warning', ex);
    report.event(kind, 'warning', undefined, Number(count) - examples.length);
  }
}
