/**
 * The storage-node directory: manta_storage_id → base URL, for jobs that talk to storage nodes
 * (rebalance run, verify, status; later GC, audit, repair). Two sources, in this order:
 *   1. configuration: `storage.nodes[].url` when set (a node outside the bundled deployment, or
 *      one reached through another address than it announces);
 *   2. the node's heartbeat record in `manta_storage` on the storage shard, which carries its URL
 *      (storage/heartbeat.ts). A stale record still gives the address: a node whose writes are
 *      disabled keeps serving reads, and a dead one is then reported unreachable, not unknown.
 * Never the bundled deployment's state file (`deployment.json`): jobs must work against nodes
 * that deployment did not start (DESIGN.md "Storage nodes").
 *
 * A node is *known* when either source names it; a known node with neither address is reported
 * as "address unknown".
 */
import type { StorageNodeConfig } from '../config/config.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';

/** What a job prints for a known node whose address neither source gives. */
export const ADDRESS_UNKNOWN = 'address unknown';

/** The read side jobs depend on (a directory, or anything answering the same questions). */
export interface NodeLookup {
  /** Base URL, or undefined when neither configuration nor a heartbeat record gives one. */
  url(id: string): string | undefined;
  /** Whether the node is configured or has a `manta_storage` record. */
  has(id: string): boolean;
}

export interface NodeEntry {
  id: string;
  datacenter?: string;
  url?: string;
  /** Where the URL came from (`none`: known, address unknown). */
  source: 'config' | 'heartbeat' | 'none';
}

/** How long a loaded directory is trusted before `refresh()` reads the heartbeat records again. */
const DEFAULT_TTL_MS = 10_000;

export class NodeDirectory implements NodeLookup {
  private entries = new Map<string, NodeEntry>();
  private loadedAt = 0;

  private constructor(
    private readonly configured: readonly StorageNodeConfig[],
    private readonly tier: Pick<MetadataTier, 'storageRecords'>,
    private readonly ttlMs: number,
  ) {}

  /** Build the directory from the configured nodes and the storage shard's heartbeat records. */
  static async load(
    configured: readonly StorageNodeConfig[],
    tier: Pick<MetadataTier, 'storageRecords'>,
    opts: { ttlMs?: number } = {},
  ): Promise<NodeDirectory> {
    const d = new NodeDirectory(configured, tier, opts.ttlMs ?? DEFAULT_TTL_MS);
    await d.reload();
    return d;
  }

  /** Read the heartbeat records again (a node restarted on another port announces its new URL). */
  async reload(): Promise<void> {
    const out = new Map<string, NodeEntry>();
    for (const r of await this.tier.storageRecords()) {
      const v = r.value;
      const id = v.manta_storage_id || r.key;
      const url = typeof v.url === 'string' && v.url !== '' ? v.url : undefined;
      out.set(id, {
        id,
        datacenter: v.datacenter,
        ...(url ? { url } : {}),
        source: url ? 'heartbeat' : 'none',
      });
    }
    for (const n of this.configured) {
      const hb = out.get(n.id);
      if (n.url) out.set(n.id, { id: n.id, datacenter: n.datacenter, url: n.url, source: 'config' });
      else if (!hb) out.set(n.id, { id: n.id, datacenter: n.datacenter, source: 'none' });
    }
    this.entries = out;
    this.loadedAt = Date.now();
  }

  /** Reload when the directory is older than its TTL. */
  async refresh(): Promise<void> {
    if (Date.now() - this.loadedAt >= this.ttlMs) await this.reload();
  }

  url(id: string): string | undefined {
    return this.entries.get(id)?.url;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  entry(id: string): NodeEntry | undefined {
    return this.entries.get(id);
  }

  /** The URL, or "address unknown" (known node, no address), or "unknown node". */
  describe(id: string): string {
    const e = this.entries.get(id);
    if (!e) return 'unknown node';
    return e.url ?? ADDRESS_UNKNOWN;
  }

  list(): NodeEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id.localeCompare(b.id));
  }
}
