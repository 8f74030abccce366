/**
 * The audit's read of one partition group (audit.rules.ts): every object record's copies from
 * the index shards' `manta` chunks, anti-joined with the nodes' listing chunks (`mako`) on
 * (objectId, node). Unpack and the manifests job partition both by objectId, so every record
 * and every file of an objectId are in the same group (src/dumps/partition-inputs.ts).
 *
 * The problems go straight from DuckDB to a local NDJSON file (a node that lost everything
 * gives as many lines as it had copies: they never pass through the JS heap); the counters and
 * the deep-audit sample (about 1/cycle of the present copies) come back as one JSON string.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlString } from '../../dumps/duckdb.js';
import { UPLOADS_KEY_SQL_RE } from './audit.rules.js';

/** One DuckDB scan over a set of chunk files (columns added in later chunk schemas read as NULL). */
export const parquet = (files: readonly string[]) =>
  `read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true)`;

export interface SampledCopy {
  objectId: string;
  node: string;
  owner: string;
  /** The record's contentMD5 (base64) and contentLength; null when the record has none. */
  md5: string | null;
  bytes: number | null;
  key: string;
  shard: string;
}

export interface GroupAudit {
  /** Object records read (links included), records excepted (uploads), rows not JSON. */
  records: number;
  uploadsExcepted: number;
  malformed: number;
  /** Copies checked (record × shark) and problems written, per kind and per node. */
  copies: number;
  problems: { kind: string; node: string; n: number }[];
  /** Up to 5 problem lines, for the report's examples. */
  examples: Record<string, unknown>[];
  sample: SampledCopy[];
}

export interface ScanOptions {
  /** Nodes that have a listing: a copy on any other node is `no-listing`, not `missing`. */
  listed: readonly string[];
  /** Deep sample: copies with h mod cycle = slot (audit.rules.ts); cycle 0: no sample. */
  cycle: number;
  slot: number;
}

/** The group's copies as a view `c` and the listing as `m` (temp views on this connection). */
function viewsSql(manta: readonly string[], mako: readonly string[]): string[] {
  const listing =
    mako.length === 0
      ? `SELECT NULL::VARCHAR AS oid, NULL::VARCHAR AS node WHERE false`
      : `SELECT DISTINCT lower(objectId) AS oid, manta_storage_id AS node FROM ${parquet(mako)}`;
  return [
    `CREATE OR REPLACE TEMP VIEW r AS SELECT * FROM ${parquet(manta)}`,
    `CREATE OR REPLACE TEMP VIEW c AS
      SELECT lower(objectId) AS oid, key, shard, coalesce(creator, owner) AS owner, contentMD5 AS md5,
        contentLength AS bytes, unnest(sharks).manta_storage_id AS node
      FROM r WHERE value_ok AND type = 'object' AND objectId IS NOT NULL
        AND NOT regexp_matches(key, ${sqlString(UPLOADS_KEY_SQL_RE)})`,
    `CREATE OR REPLACE TEMP TABLE m AS ${listing}`,
  ];
}

function problemsSql(listed: readonly string[]): string {
  const inList = listed.length === 0 ? 'false' : `c.node IN (${listed.map(sqlString).join(', ')})`;
  return `SELECT CASE WHEN ${inList} THEN 'missing' ELSE 'no-listing' END AS kind, c.oid AS objectId,
      c.node, c.key, c.shard, c.owner
    FROM c ANTI JOIN m ON m.oid = c.oid AND m.node = c.node
    ORDER BY c.node, c.oid, c.key`;
}

function countsSql(o: ScanOptions): string {
  const sample =
    o.cycle > 0
      ? `(SELECT coalesce(json_group_array(json_array(oid, node, owner, md5, bytes, key, shard)), '[]') FROM (
          SELECT c.oid, c.node, arg_min(c.owner, c.key) AS owner, arg_min(c.md5, c.key) AS md5,
            arg_min(c.bytes, c.key) AS bytes, min(c.key) AS key, arg_min(c.shard, c.key) AS shard
          FROM c SEMI JOIN m ON m.oid = c.oid AND m.node = c.node
          WHERE ('0x' || left(md5(c.oid || '@' || c.node), 8))::BIGINT % ${o.cycle} = ${o.slot}
          GROUP BY c.oid, c.node))`
      : `'[]'`;
  return `SELECT
      (SELECT count(*) FROM r WHERE value_ok AND type = 'object' AND objectId IS NOT NULL) AS records,
      (SELECT count(*) FROM r WHERE value_ok AND type = 'object' AND objectId IS NOT NULL
         AND regexp_matches(key, ${sqlString(UPLOADS_KEY_SQL_RE)})) AS uploads,
      (SELECT count(*) FROM r WHERE NOT value_ok) AS malformed,
      (SELECT count(*) FROM c) AS copies,
      ${sample} AS sample`;
}

/** Audit one group; problems are written to `problemsFile` (NDJSON, possibly empty). */
export async function auditGroup(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; mako: readonly string[] },
  o: ScanOptions,
  problemsFile: string,
): Promise<GroupAudit> {
  const empty: GroupAudit = {
    records: 0,
    uploadsExcepted: 0,
    malformed: 0,
    copies: 0,
    problems: [],
    examples: [],
    sample: [],
  };
  if (files.manta.length === 0) return empty;
  for (const s of viewsSql(files.manta, files.mako)) await conn.run(s);
  try {
    await conn.run(`COPY (${problemsSql(o.listed)}) TO ${sqlString(problemsFile)} (FORMAT JSON)`);
    const byKind = await conn.runAndReadAll(
      `SELECT kind, node, count(*) FROM read_json(${sqlString(problemsFile)}, format = 'newline_delimited',
         columns = {kind: 'VARCHAR', objectId: 'VARCHAR', node: 'VARCHAR', key: 'VARCHAR', shard: 'VARCHAR', owner: 'VARCHAR'})
       GROUP BY ALL ORDER BY ALL`,
    );
    const examples = await conn.runAndReadAll(
      `SELECT * FROM read_json(${sqlString(problemsFile)}, format = 'newline_delimited',
         columns = {kind: 'VARCHAR', objectId: 'VARCHAR', node: 'VARCHAR', key: 'VARCHAR', shard: 'VARCHAR', owner: 'VARCHAR'})
       LIMIT 5`,
    );
    const [records, uploads, malformed, copies, sample] = (
      await conn.runAndReadAll(countsSql(o))
    ).getRows()[0] as [bigint, bigint, bigint, bigint, string];
    type Row = [string, string, string, string | null, number | null, string, string];
    return {
      records: Number(records),
      uploadsExcepted: Number(uploads),
      malformed: Number(malformed),
      copies: Number(copies),
      problems: byKind
        .getRows()
        .map(([kind, node, n]) => ({ kind: String(kind), node: String(node), n: Number(n) })),
      examples: examples.getRowObjectsJson(),
      sample: (JSON.parse(sample) as Row[]).map(([objectId, node, owner, md5, bytes, key, shard]) => ({
        objectId,
        node,
        owner,
        md5,
        bytes,
        key,
        shard,
      })),
    };
  } finally {
    await conn.run('DROP TABLE IF EXISTS m');
    await conn.run('DROP VIEW IF EXISTS c');
    await conn.run('DROP VIEW IF EXISTS r');
  }
}
