/**
 * Cruft's read of one partition group (cruft.rules.ts): the nodes' listed files older than the
 * cutoff whose objectId no `manta` object row and no `manta_delete_log` row of the group names.
 * Unpack and the manifests job partition every table by objectId, so the references that matter
 * are in the same group of every source (src/dumps/partition-inputs.ts).
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

export interface CruftScan {
  /** Listed files of the group, and those old enough to be judged. */
  files: number;
  old: number;
  candidates: CruftCandidate[];
}

export async function scanCruft(
  conn: DuckDBConnection,
  files: { manta: readonly string[]; deleteLog: readonly string[]; mako: readonly string[] },
  cutoffSeconds: number,
): Promise<CruftScan> {
  if (files.mako.length === 0) return { files: 0, old: 0, candidates: [] };
  const refs: string[] = [];
  if (files.manta.length > 0)
    refs.push(
      `SELECT lower(objectId) AS oid FROM ${parquet(files.manta)} WHERE type = 'object' AND objectId IS NOT NULL`,
    );
  // A delete record whose _value is not JSON still names its objectId in its key (/<objectId>/<ms>).
  if (files.deleteLog.length > 0)
    refs.push(
      `SELECT lower(coalesce(objectId, split_part(_key, '/', 2))) AS oid FROM ${parquet(files.deleteLog)}`,
    );
  // A manta row whose _value is not JSON could name any objectId: it is no reason to stop, the
  // live re-check guards every candidate.
  const referenced = refs.length > 0 ? refs.join(' UNION ALL ') : 'SELECT NULL::VARCHAR AS oid WHERE false';
  const sql = `WITH f AS (SELECT lower(objectId) AS oid, manta_storage_id AS node, owner, bytes, mtime FROM ${parquet(files.mako)}),
      old AS (SELECT * FROM f WHERE mtime <= ${Math.floor(cutoffSeconds)}),
      ref AS (${referenced}),
      c AS (SELECT * FROM old ANTI JOIN ref ON ref.oid = old.oid)
    SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM old),
      (SELECT coalesce('[' || string_agg(json_array(oid, node, owner, bytes, mtime)::VARCHAR, ',' ORDER BY node, oid) || ']', '[]') FROM c)`;
  const [n, old, list] = (await conn.runAndReadAll(sql)).getRows()[0] as [bigint, bigint, string];
  type Row = [string, string, string, number | null, number | null];
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
  };
}
