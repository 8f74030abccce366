/**
 * One partition of storage metering: the `manta` chunks of partition p of every index shard,
 * aggregated in DuckDB to partial sums per (owner, namespace). Everything an objectId needs
 * (all its keys, on every shard) is in this one partition, because unpack partitions by
 * objectId (DESIGN.md "Scale-out"), so the per-owner dedup is exact here and memory is bounded
 * by the partition, never by the largest account (RFD 16 problem 5).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { openDuck, sqlString } from '../../dumps/duckdb.js';
import { NAMESPACES } from '../../core/ids.js';
import type { ReportBuilder } from '../../pipeline/report.js';
import { MIN_SIZE, zeroUsage, type Usage, type UsageRow } from './storage-metering.rules.js';

const NS_LIST = NAMESPACES.map(sqlString).join(', ');
/** Examples of malformed rows kept per partition (the report keeps 5 per kind overall). */
const EXAMPLE_ROWS = 5;

/** A well-formed row: anything else is a `malformed-record` event. */
function wellFormed(): string {
  return `value_ok AND owner IS NOT NULL AND key IS NOT NULL
    AND (type = 'directory' OR (type = 'object' AND objectId IS NOT NULL))`;
}

/**
 * One pass over the partition's files. Every row gets
 *   rk   -1 malformed; 0 well-formed but not metered (uploads, …); 1..4 its namespace's
 *        position in NAMESPACES (an objectId counts in the lowest rank it has a key in)
 *   obj  an object key (else a directory)
 *   unm  a parsable row in a namespace that is not metered (reported, not charged)
 *   b    billed bytes of the object: max(contentLength, 128 KiB) × copies
 * and two small aggregates come back, told apart by `o`:
 *   true   per (owner, first rank): objects, bytes — from a group by (owner, objectId)
 *   false  per (owner, rk, obj, unm): row counts — scanned, malformed, unmetered, directories, keys
 * Measured (docs/pipeline.md "Bench"): the earlier plan (a count query, then dirs/keys/objects
 * CTEs joined back together) read the files twice and cost 1.3–1.8x the CPU per run.
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
        -- BIGINT arithmetic, HUGEINT only for a row whose product overflows (a HUGEINT multiply
        -- on every row cost a third of the query).
        coalesce(try(greatest(coalesce(contentLength, 0), ${MIN_SIZE}) * coalesce(${copies}, 0)),
          greatest(coalesce(contentLength, 0), ${MIN_SIZE})::HUGEINT * coalesce(${copies}, 0)) AS b
      FROM ${from}
    ),
    objs AS (SELECT owner, min(rk) AS rk, max(b) AS b FROM r WHERE obj AND rk > 0 GROUP BY owner, objectId)
    SELECT true AS o, owner, rk, NULL::BOOLEAN AS obj, NULL::BOOLEAN AS unm, count(*) AS n, sum(b) AS bytes
    FROM objs GROUP BY owner, rk
    UNION ALL
    SELECT false, owner, rk, obj, unm, count(*), NULL FROM r GROUP BY owner, rk, obj, unm`;
}

function malformedQuery(files: string[]): string {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  return `SELECT shard, _key, left(_value, 300) AS value FROM ${from}
    WHERE NOT coalesce(${wellFormed()}, false)
    LIMIT ${EXAMPLE_ROWS}`;
}

/**
 * One DuckDB instance per process, shared by the tasks a worker runs (each on its own
 * connection): opening and closing an instance per task cost ~60 ms, as much as scanning a
 * 60k-record partition, and one buffer pool for concurrent tasks bounds memory better than two.
 */
let shared: ReturnType<typeof openDuck> | undefined;

async function connect(): Promise<DuckDBConnection> {
  // One DuckDB thread per task: a worker runs `concurrency` tasks at once (2 on the target
  // machine), and two 2-thread queries on two cores cost ~25% more CPU than two 1-thread ones.
  shared ??= openDuck({ memoryLimit: '256MB', threads: 1 });
  try {
    return await (await shared).instance.connect();
  } catch (err) {
    shared = undefined;
    throw err;
  }
}

/** Close the shared DuckDB instance (tests, shutdown); the next scan opens a new one. */
export async function closeMeteringDuck(): Promise<void> {
  const s = shared;
  shared = undefined;
  if (s) (await s).close();
}

export interface ScanOptions {
  /**
   * The chunks have the `copies` column (manifest CHUNK_SCHEMA 2): read it instead of decoding
   * the `sharks` list, which was ~40% of the scan's CPU (docs/pipeline.md "Bench").
   */
  copiesColumn: boolean;
}

/** Scan one partition group's files; bad rows become events in `report`, never exceptions. */
export async function scanPartition(
  files: string[],
  report: ReportBuilder,
  opts: ScanOptions,
): Promise<UsageRow[]> {
  if (files.length === 0) return [];
  const conn = await connect();
  try {
    // Columns, not row objects: counts arrive as bigint (HUGEINT bytes too), no strings built.
    const [isObj, owner, rank, obj, unm, count, bytes] = (
      await conn.runAndReadAll(query(files, opts.copiesColumn ? 'copies' : 'len(sharks)'))
    ).getColumns() as [
      boolean[],
      (string | null)[],
      number[],
      (boolean | null)[],
      (boolean | null)[],
      bigint[],
      (bigint | null)[],
    ];
    let scanned = 0;
    let malformed = 0;
    let unmetered = 0;
    const usage = new Map<string, Usage>();
    const cell = (owner: string, rk: number): Usage => {
      const k = `${owner}\u0000${rk}`;
      let u = usage.get(k);
      if (!u) usage.set(k, (u = zeroUsage()));
      return u;
    };
    for (let i = 0; i < isObj.length; i++) {
      const rk = rank[i]!;
      const n = count[i]!;
      if (isObj[i]) {
        const u = cell(owner[i]!, rk);
        u.objects += n;
        u.bytes += bytes[i] ?? 0n;
        continue;
      }
      scanned += Number(n);
      if (rk < 0) malformed += Number(n);
      if (unm[i]) unmetered += Number(n);
      if (rk > 0) {
        const u = cell(owner[i]!, rk);
        if (obj[i]) u.keys += n;
        else u.directories += n;
      }
    }
    report
      .count('recordsScanned', scanned)
      .count('skipped', malformed)
      .count('processed', scanned - malformed);
    report.count('unmeteredNamespaceRows', unmetered);
    if (malformed > 0) {
      const examples = (await conn.runAndReadAll(malformedQuery(files))).getRowObjectsJson();
      for (const ex of examples) report.event('malformed-record', 'error', ex);
      // The remaining malformed rows are counted without examples.
      report.event('malformed-record', 'error', undefined, malformed - examples.length);
    }
    const out: UsageRow[] = [];
    for (const [k, u] of usage) {
      const i = k.indexOf('\u0000');
      out.push({
        owner: k.slice(0, i),
        namespace: NAMESPACES[Number(k.slice(i + 1)) - 1]!,
        ...u,
      });
    }
    // Owner, then namespace in NAMESPACES order: a stable partial file.
    return out.sort((a, b) =>
      a.owner < b.owner
        ? -1
        : a.owner > b.owner
          ? 1
          : NAMESPACES.indexOf(a.namespace) - NAMESPACES.indexOf(b.namespace),
    );
  } finally {
    conn.closeSync();
  }
}
