/**
 * Cruft's read of one partition group (cruft.rules.ts): the nodes' listed files older than the
 * cutoff whose objectId no `manta` object row and no `manta_delete_log` row of the group names.
 * Unpack and the manifests job partition every table by objectId, so the references that matter
 * are in the same group of every source (src/dumps/partition-inputs.ts).
 *
 * The same query accounts for every listed file, per node, in exactly one class (cruft.rules.ts
 * "accounted"): `live`, `gcPending`, `tooNew`, `cruft` (the candidates). The classes are counted
 * in DuckDB (files, bytes, per node): only the counts and the candidates come back to JavaScript.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { parquet } from '../audit/audit.scan.js';

export interface CruftCandidate {
  objectId: string;
  node: string;
  /** The file's directory on the node (creator or owner). */
  owner: string;
  bytes: number;
  /** Epoch seconds. */
  mtime: number;
}

export interface ClassCount {
  files: number;
  bytes: number;
}

/**
 * One node's listed files, each in exactly one class (files and bytes; the four add up to
 * `listed`). See cruft.rules.ts "accounted".
 */
export interface NodeAccount {
  node: string;
  listed: ClassCount;
  /** A live `manta` object row names the objectId; `notNamedHere`: none of them lists this node. */
  live: ClassCount & { notNamedHere: number };
  /**
   * Only `manta_delete_log` rows name the objectId (GC's, invariant 4). `notNamedHere`: no readable
   * delete record lists this node (GC will not move that file; once GC removed the records, cruft
   * can). `deletedFirstMs` / `deletedLastMs`: the earliest and latest, over these files, of the
   * newest readable delete record of the file's objectId (GC's grace counts from it).
   */
  gcPending: ClassCount & { notNamedHere: number; deletedFirstMs?: number; deletedLastMs?: number };
  /** Named by no record of the snapshots, newer than the cutoff: judged by a later run. */
  tooNew: ClassCount;
  /** Named by no record of the snapshots, at or before the cutoff: the candidates. */
  cruft: ClassCount;
}

export interface CruftScan {
  /** Listed files of the group, and those old enough to be judged. */
  files: number;
  old: number;
  candidates: CruftCandidate[];
  /** Every listed file of the group, per node, by class. */
  nodes: NodeAccount[];
}

export const emptyNodeAccount = (node: string): NodeAccount => ({
  node,
  listed: { files: 0, bytes: 0 },
  live: { files: 0, bytes: 0, notNamedHere: 0 },
  gcPending: { files: 0, bytes: 0, notNamedHere: 0 },
  tooNew: { files: 0, bytes: 0 },
  cruft: { files: 0, bytes: 0 },
});

/** Sum accounts of the same nodes (partition groups, tasks): files and bytes add, instants min/max. */
export function mergeNodeAccounts(lists: readonly (readonly NodeAccount[])[]): NodeAccount[] {
  const by = new Map<string, NodeAccount>();
  const add = (a: ClassCount, b: ClassCount) => {
    a.files += b.files;
    a.bytes += b.bytes;
  };
  for (const list of lists)
    for (const x of list) {
      let n = by.get(x.node);
      if (!n) by.set(x.node, (n = emptyNodeAccount(x.node)));
      add(n.listed, x.listed);
      add(n.live, x.live);
      n.live.notNamedHere += x.live.notNamedHere;
      add(n.gcPending, x.gcPending);
      n.gcPending.notNamedHere += x.gcPending.notNamedHere;
      if (x.gcPending.deletedFirstMs !== undefined)
        n.gcPending.deletedFirstMs = Math.min(
          n.gcPending.deletedFirstMs ?? Infinity,
          x.gcPending.deletedFirstMs,
        );
      if (x.gcPending.deletedLastMs !== undefined)
        n.gcPending.deletedLastMs = Math.max(
          n.gcPending.deletedLastMs ?? -Infinity,
          x.gcPending.deletedLastMs,
        );
      add(n.tooNew, x.tooNew);
      add(n.cruft, x.cruft);
    }
  return [...by.values()].sort((a, b) => a.node.localeCompare(b.node));
}

export async function scanCruft(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[]; mako: readonly string[] },
  cutoffSeconds: number,
): Promise<CruftScan> {
  if (files.mako.length === 0) return { files: 0, old: 0, candidates: [], nodes: [] };
  const none = (cols: string) => `SELECT ${cols} WHERE false`;
  // Live references: every `manta` row of type object (its objectId), and the nodes it lists.
  const live =
    files.manta.length > 0
      ? `SELECT lower(objectId) AS oid, sharks FROM ${parquet(files.manta)} WHERE type = 'object' AND objectId IS NOT NULL`
      : none(`NULL::VARCHAR AS oid, NULL::STRUCT(manta_storage_id VARCHAR)[] AS sharks`);
  // A delete record whose _value is not JSON still names its objectId in its key (/<objectId>/<ms>);
  // only a readable one (value_ok) names nodes and counts for GC's grace.
  const deletes =
    files.deleteLog.length > 0
      ? `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid,
           CASE WHEN value_ok THEN sharks END AS sharks, CASE WHEN value_ok THEN _mtime END AS ms
         FROM ${parquet(files.deleteLog)}`
      : none(`NULL::VARCHAR AS oid, NULL::STRUCT(manta_storage_id VARCHAR)[] AS sharks, NULL::BIGINT AS ms`);
  // A manta row whose _value is not JSON could name any objectId: it is no reason to stop, the
  // live re-check guards every candidate.
  const sql = `WITH f AS (SELECT lower(objectId) AS oid, manta_storage_id AS node, owner, bytes, mtime FROM ${parquet(files.mako)}),
      l AS (${live}),
      d AS (${deletes}),
      lref AS (SELECT DISTINCT oid FROM l),
      lcopy AS (SELECT DISTINCT oid, unnest(sharks).manta_storage_id AS node FROM l),
      dref AS (SELECT oid, max(ms) AS ms FROM d GROUP BY oid),
      dcopy AS (SELECT DISTINCT oid, unnest(sharks).manta_storage_id AS node FROM d),
      k AS MATERIALIZED (
        SELECT f.oid, f.node, f.owner, f.bytes, f.mtime, f.mtime <= ${Math.floor(cutoffSeconds)} AS old,
          CASE WHEN lref.oid IS NOT NULL THEN 'live' WHEN dref.oid IS NOT NULL THEN 'gcPending'
            WHEN f.mtime <= ${Math.floor(cutoffSeconds)} THEN 'cruft' ELSE 'tooNew' END AS class,
          CASE WHEN lref.oid IS NOT NULL THEN lcopy.oid IS NOT NULL ELSE dcopy.oid IS NOT NULL END AS named,
          CASE WHEN lref.oid IS NULL THEN dref.ms END AS deleted
        FROM f LEFT JOIN lref ON lref.oid = f.oid LEFT JOIN dref ON dref.oid = f.oid
          LEFT JOIN lcopy ON lcopy.oid = f.oid AND lcopy.node = f.node
          LEFT JOIN dcopy ON dcopy.oid = f.oid AND dcopy.node = f.node),
      acc AS (SELECT node, class, count(*) AS n, coalesce(sum(bytes), 0) AS b,
          count(*) FILTER (WHERE NOT named) AS unnamed, min(deleted) AS first, max(deleted) AS last
        FROM k GROUP BY node, class)
    SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM k WHERE old),
      (SELECT coalesce('[' || string_agg(json_array(oid, node, owner, bytes, mtime)::VARCHAR, ',' ORDER BY node, oid) || ']', '[]')
         FROM k WHERE class = 'cruft'),
      (SELECT coalesce(json_group_array(json_array(node, class, n, b, unnamed, first, last)), '[]') FROM acc)`;
  const [n, old, list, accounts] = (await conn.runAndReadAll(sql)).getRows()[0] as [
    bigint,
    bigint,
    string,
    string,
  ];
  type Row = [string, string, string, number | null, number | null];
  type Acc = [
    string,
    'live' | 'gcPending' | 'tooNew' | 'cruft',
    number,
    number,
    number,
    number | null,
    number | null,
  ];
  const nodes = new Map<string, NodeAccount>();
  for (const [node, cls, files, bytes, unnamed, first, last] of JSON.parse(accounts) as Acc[]) {
    let a = nodes.get(node);
    if (!a) nodes.set(node, (a = emptyNodeAccount(node)));
    a.listed.files += files;
    a.listed.bytes += bytes;
    a[cls].files += files;
    a[cls].bytes += bytes;
    if (cls === 'live') a.live.notNamedHere += unnamed;
    if (cls === 'gcPending') {
      a.gcPending.notNamedHere += unnamed;
      if (first !== null) a.gcPending.deletedFirstMs = first;
      if (last !== null) a.gcPending.deletedLastMs = last;
    }
  }
  return {
    files: Number(n),
    old: Number(old),
    candidates: (JSON.parse(list) as Row[]).map(([objectId, node, owner, bytes, mtime]) => ({
      objectId,
      node,
      owner,
      bytes: bytes ?? 0,
      mtime: mtime ?? 0,
    })),
    nodes: [...nodes.values()].sort((x, y) => x.node.localeCompare(y.node)),
  };
}
