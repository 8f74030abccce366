/**
 * The storage nodes as the dashboard shows them (`GET /api/nodes`): per datacenter, each node's
 * fill, whether the front door writes to it now (the picker's rule: a fresh heartbeat and fill
 * under the maximum), heartbeat age, the copies the metadata places there, and its tombstone
 * (bytes, next purge day), its latest manifest and its problems in the latest audit.
 */
import { purgeOptionsFrom } from '../../jobs/tombstone-purge/tombstone-purge.job.js';
import { tombstoneUsage, type NodeTombstone } from '../../jobs/gc/gc.status.js';
import type { PipelineRuntime } from '../../pipeline/runtime.js';
import { summarizeNodes } from '../summary.js';
import { auditView, latestManifests, type NodeManifestView } from './audit.js';

export interface NodeView {
  id: string;
  datacenter: string;
  url: string | null;
  /** From the node's last heartbeat (null: it never beat). */
  percentUsed: number | null;
  availableMB: number | null;
  heartbeatAgeMs: number | null;
  /** The front door places new copies here now. */
  writesEnabled: boolean;
  /** Why not, in words (stale heartbeat, full), or null. */
  writesDisabledBecause: string | null;
  copies: number;
  copyBytes: number;
  tombstone: NodeTombstone;
  /** The node's latest committed listing and/or a newer manifest that did not reach it (null: none within the run retention). */
  manifest: NodeManifestView | null;
  /** Problems on this node in the latest committed audit (null: no audit committed). */
  auditProblems: number | null;
}

export interface NodesView {
  now: number;
  lagMs: number;
  maxUtilizationPct: number;
  datacenters: { datacenter: string; nodes: NodeView[] }[];
}

export async function nodesView(rt: PipelineRuntime): Promise<NodesView> {
  const { tier, config, nodes, storage } = rt.services;
  const now = rt.services.clock.now();
  const { lagMs, maxUtilizationPct } = config.picker;
  await nodes.reload();
  const records = new Map(
    (await tier.storageRecords()).map((r) => [r.value.manta_storage_id || r.key, r.value]),
  );
  const copies = new Map((await summarizeNodes(tier)).map((n) => [n.node, n]));
  const tombs = new Map(
    (await tombstoneUsage(nodes, storage, purgeOptionsFrom(rt.settings).retentionDays)).map((t) => [
      t.node,
      t,
    ]),
  );
  const manifests = await latestManifests(rt);
  const audit = (await auditView(rt, { limit: 0 })).latest;
  const byDc = new Map<string, NodeView[]>();
  for (const e of nodes.list()) {
    const rec = records.get(e.id);
    const dc = e.datacenter ?? rec?.datacenter ?? '';
    const age = rec ? Math.max(0, now - rec.timestamp) : null;
    const why = !rec
      ? 'no heartbeat'
      : age! > lagMs
        ? `heartbeat older than ${lagMs / 1000} s`
        : rec.percentUsed > maxUtilizationPct
          ? `over ${maxUtilizationPct}% full`
          : null;
    const v: NodeView = {
      id: e.id,
      datacenter: dc,
      url: e.url ?? null,
      percentUsed: rec?.percentUsed ?? null,
      availableMB: rec?.availableMB ?? null,
      heartbeatAgeMs: age,
      writesEnabled: why === null,
      writesDisabledBecause: why,
      copies: copies.get(e.id)?.copies ?? 0,
      copyBytes: copies.get(e.id)?.bytes ?? 0,
      tombstone: tombs.get(e.id) ?? { node: e.id, state: 'address unknown', days: 0, files: 0, bytes: 0 },
      manifest: manifests.get(e.id) ?? null,
      auditProblems: audit ? (audit.output.byNode[e.id] ?? 0) : null,
    };
    const list = byDc.get(dc) ?? [];
    list.push(v);
    byDc.set(dc, list);
  }
  return {
    now,
    lagMs,
    maxUtilizationPct,
    datacenters: [...byDc.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([datacenter, list]) => ({ datacenter, nodes: list })),
  };
}
