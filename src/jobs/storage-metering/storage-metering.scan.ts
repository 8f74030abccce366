/**
 * One partition of storage metering: the `manta` chunks of partition p of every index shard,
 * aggregated in DuckDB to partial sums per (owner, namespace). Everything an objectId needs
 * (all its keys, on every shard) is in this one partition, because unpack partitions by
 * objectId (DESIGN.md "Scale-out"), so the per-owner dedup is exact here and memory is bounded
 * by the partition, never by the largest account (RFD 16 problem 5).
 */
import { openDuck, sqlString } from '../../dumps/duckdb.js';
import { NAMESPACES, type Namespace } from '../../core/ids.js';
import type { ReportBuilder } from '../../pipeline/report.js';
import { MIN_SIZE, type UsageRow } from './storage-metering.rules.js';

const NS_LIST = NAMESPACES.map(sqlString).join(', ');
/** Examples of malformed rows kept per partition (the report keeps 5 per kind overall). */
const EXAMPLE_ROWS = 5;

function query(files: string[]): string {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  // rank = position in NAMESPACES: an objectId counts in the first namespace it has a key in.
  return `
    WITH rows AS (
      SELECT owner, namespace, type, objectId, contentLength, coalesce(len(sharks), 0) AS copies,
        list_position([${NS_LIST}], namespace) AS rank
      FROM ${from}
      WHERE value_ok AND owner IS NOT NULL AND key IS NOT NULL
        AND (type = 'directory' OR (type = 'object' AND objectId IS NOT NULL))
    ),
    metered AS (SELECT * FROM rows WHERE rank IS NOT NULL AND rank > 0),
    dirs AS (SELECT owner, namespace, count(*) AS n FROM metered WHERE type = 'directory' GROUP BY ALL),
    keys AS (SELECT owner, namespace, count(*) AS n FROM metered WHERE type = 'object' GROUP BY ALL),
    objs AS (
      SELECT owner, objectId, arg_min(namespace, rank) AS namespace,
        max(greatest(coalesce(contentLength, 0), ${MIN_SIZE})::HUGEINT * copies) AS bytes
      FROM metered WHERE type = 'object' GROUP BY owner, objectId
    ),
    per_ns AS (SELECT owner, namespace, count(*) AS objects, sum(bytes) AS bytes FROM objs GROUP BY ALL),
    owners AS (
      SELECT owner, namespace FROM dirs UNION SELECT owner, namespace FROM keys UNION SELECT owner, namespace FROM per_ns
    )
    SELECT o.owner, o.namespace, coalesce(d.n, 0)::VARCHAR AS directories, coalesce(k.n, 0)::VARCHAR AS keys,
      coalesce(p.objects, 0)::VARCHAR AS objects, coalesce(p.bytes, 0)::VARCHAR AS bytes
    FROM owners o
    LEFT JOIN dirs d USING (owner, namespace) LEFT JOIN keys k USING (owner, namespace)
    LEFT JOIN per_ns p USING (owner, namespace)
    ORDER BY o.owner, o.namespace`;
}

function countsQuery(files: string[]): string {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  return `SELECT count(*)::VARCHAR AS scanned,
      count(*) FILTER (WHERE NOT (value_ok AND owner IS NOT NULL AND key IS NOT NULL
        AND (type = 'directory' OR (type = 'object' AND objectId IS NOT NULL))))::VARCHAR AS malformed,
      count(*) FILTER (WHERE value_ok AND namespace NOT IN (${NS_LIST}))::VARCHAR AS unmetered
    FROM ${from}`;
}

function malformedQuery(files: string[]): string {
  const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
  return `SELECT shard, _key, left(_value, 300) AS value FROM ${from}
    WHERE NOT (value_ok AND owner IS NOT NULL AND key IS NOT NULL
      AND (type = 'directory' OR (type = 'object' AND objectId IS NOT NULL)))
    LIMIT ${EXAMPLE_ROWS}`;
}

/** Scan one partition's files; bad rows become events in `report`, never exceptions. */
export async function scanPartition(files: string[], report: ReportBuilder): Promise<UsageRow[]> {
  if (files.length === 0) return [];
  const duck = await openDuck({ memoryLimit: '256MB' });
  try {
    const counts = (await duck.conn.runAndReadAll(countsQuery(files))).getRowObjectsJson()[0]!;
    const scanned = Number(counts.scanned);
    const malformed = Number(counts.malformed);
    report
      .count('recordsScanned', scanned)
      .count('skipped', malformed)
      .count('processed', scanned - malformed);
    report.count('unmeteredNamespaceRows', Number(counts.unmetered));
    if (malformed > 0) {
      const examples = (await duck.conn.runAndReadAll(malformedQuery(files))).getRowObjectsJson();
      for (const ex of examples) report.event('malformed-record', 'error', ex);
      // The remaining malformed rows are counted without examples.
      report.event('malformed-record', 'error', undefined, malformed - examples.length);
    }
    const rows = (await duck.conn.runAndReadAll(query(files))).getRowObjectsJson();
    // Every selected column is VARCHAR (counts cast in SQL, so no precision is lost to JSON).
    return rows.map((row) => {
      const r = row as Record<string, string>;
      return {
        owner: r.owner!,
        namespace: r.namespace as Namespace,
        directories: BigInt(r.directories!),
        keys: BigInt(r.keys!),
        objects: BigInt(r.objects!),
        bytes: BigInt(r.bytes!),
      };
    });
  } finally {
    duck.close();
  }
}
