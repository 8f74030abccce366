/**
 * "What is stored where": the quick-start's closing table. Per account, the keys and
 * logical bytes the metadata holds; per storage node, the copies the metadata places there
 * and what the node's disk really holds. Aggregated in SQL per shard, so it stays cheap;
 * a copy is counted once per objectId and node across shards.
 */
import type { MetadataTier } from '../metadata/metadata-tier.js';
import { listAccounts } from '../frontdoor/accounts.js';

/** Moved to core (the workload's progress line uses it too); the old import path still works. */
export { formatBytes } from '../core/table.js';

/**
 * A row whose `_value` is not JSON (a malformed record: the jobs count those) is left out here
 * instead of failing the whole summary (PostgreSQL 16+: every supported server).
 */
const VALID_JSON = `pg_input_is_valid(_value, 'json')`;

export interface AccountSummary {
  login: string;
  directories: number;
  objects: number;
  logicalBytes: number;
}

export interface NodeSummary {
  node: string;
  datacenter: string;
  copies: number;
  bytes: number;
}

export async function summarizeAccounts(tier: MetadataTier): Promise<AccountSummary[]> {
  const byOwner = new Map<string, AccountSummary>();
  const accounts = await listAccounts(tier);
  for (const a of accounts)
    byOwner.set(a.uuid, { login: a.login, directories: 0, objects: 0, logicalBytes: 0 });
  for (const s of tier.indexShards) {
    const r = await s.pool.query<{ owner: string; type: string; n: string; bytes: string | null }>(
      `SELECT owner, type, count(*) AS n, sum(((_value::json)->>'contentLength')::bigint) AS bytes FROM manta
        WHERE ${VALID_JSON} GROUP BY owner, type`,
    );
    for (const row of r.rows) {
      const a = byOwner.get(row.owner);
      if (!a) continue;
      if (row.type === 'directory') a.directories += Number(row.n);
      else {
        a.objects += Number(row.n);
        a.logicalBytes += Number(row.bytes ?? 0);
      }
    }
  }
  return [...byOwner.values()].sort((x, y) => x.login.localeCompare(y.login));
}

export async function summarizeNodes(tier: MetadataTier): Promise<NodeSummary[]> {
  const seen = new Map<string, Map<string, number>>(); // node → objectId → bytes
  const dcs = new Map<string, string>();
  for (const s of tier.indexShards) {
    const r = await s.pool.query<{ node: string; dc: string; objectid: string; bytes: string }>(
      `SELECT sh->>'manta_storage_id' AS node, sh->>'datacenter' AS dc, objectid,
              ((_value::json)->>'contentLength') AS bytes
         FROM manta, json_array_elements((_value::json)->'sharks') AS sh
        WHERE type = 'object' AND ${VALID_JSON}`,
    );
    for (const row of r.rows) {
      dcs.set(row.node, row.dc);
      let m = seen.get(row.node);
      if (!m) seen.set(row.node, (m = new Map<string, number>()));
      m.set(row.objectid, Number(row.bytes));
    }
  }
  return [...seen.entries()]
    .map(([node, m]) => ({
      node,
      datacenter: dcs.get(node) ?? '',
      copies: m.size,
      bytes: [...m.values()].reduce((a, b) => a + b, 0),
    }))
    .sort((a, b) => a.node.localeCompare(b.node));
}
