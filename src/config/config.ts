/**
 * Configuration: loaded once (defaults ← optional JSON file ← environment), validated,
 * frozen and passed down explicitly. Nothing else reads process.env.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RemoraError } from '../core/errors.js';

export interface ShardConfig {
  /** Moray shard name as Manta spells it, e.g. `2.moray.remora.local`. */
  name: string;
  role: 'index' | 'storage';
}

export interface StorageNodeConfig {
  /** `manta_storage_id`, e.g. `1.stor.dc1.remora.local`. */
  id: string;
  datacenter: string;
  /** Cap on the node's capacity in MB (so tests can fill a node); undefined = the filesystem's. */
  capacityMB?: number;
}

export interface RemoraConfig {
  /** Everything Remora keeps on disk lives under this directory. */
  stateDir: string;
  postgres: {
    /** External PostgreSQL (`postgres://user:pw@host:port/db`); unset = embedded under stateDir. */
    url?: string;
    /** Port of the embedded server. */
    port: number;
    /** Prefix of every database Remora creates (one per shard plus `control`). */
    databasePrefix: string;
  };
  shards: ShardConfig[];
  ring: { vnodes: number };
  storage: {
    nodes: StorageNodeConfig[];
    /** minnow's heartbeat interval (SAPI template: 5 s). */
    heartbeatIntervalMs: number;
    /**
     * The internal credential storage nodes require on PUT, MOVE and the manifest (docs/storage-nodes.md).
     * Unset = generated once into `<stateDir>/internal-token` (mode 0600).
     */
    internalToken?: string;
  };
  picker: {
    /** A node whose heartbeat is older than this is not written to (muskie SAPI template: 60 s). */
    lagMs: number;
    /** muskie MUSKIE_MAX_UTILIZATION_PCT default 90. */
    maxUtilizationPct: number;
    /** Spread copies over datacenters (muskie MUSKIE_MULTI_DC). */
    multiDC: boolean;
  };
  frontdoor: {
    port: number;
    defaultCopies: number;
  };
  /**
   * Where pipeline inputs and outputs (dumps, chunks, reports) live: `local` (the embedded
   * default, `<stateDir>/objects`) or `frontdoor`, the deployment's own front door as the
   * operator account, so workers on several machines share them (docs/dumps.md "Object store").
   * `url` and `token` default to the running deployment's (`deployment.json`, `operator-token`).
   */
  objectStore: { backend: 'local' | 'frontdoor'; url?: string; token?: string };
}

export const DEFAULT_DATACENTERS = ['dc1', 'dc2', 'dc3'] as const;

export function defaultStorageNodes(
  count = 6,
  datacenters: readonly string[] = DEFAULT_DATACENTERS,
): StorageNodeConfig[] {
  const nodes: StorageNodeConfig[] = [];
  for (let i = 1; i <= count; i++) {
    const dc = datacenters[(i - 1) % datacenters.length]!;
    nodes.push({ id: `${i}.stor.${dc}.remora.local`, datacenter: dc });
  }
  return nodes;
}

export function defaultConfig(stateDir = path.resolve('.state')): RemoraConfig {
  return {
    stateDir,
    postgres: { port: 15432, databasePrefix: 'remora' },
    shards: [
      { name: '1.moray.remora.local', role: 'storage' },
      { name: '2.moray.remora.local', role: 'index' },
      { name: '3.moray.remora.local', role: 'index' },
    ],
    ring: { vnodes: 8192 },
    storage: { nodes: defaultStorageNodes(), heartbeatIntervalMs: 5000 },
    picker: { lagMs: 60_000, maxUtilizationPct: 90, multiDC: true },
    frontdoor: { port: 0, defaultCopies: 2 },
    objectStore: { backend: 'local' },
  };
}

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};

export function mergeConfig(base: RemoraConfig, over: DeepPartial<RemoraConfig>): RemoraConfig {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? { ...b, ...v }
        : v;
  }
  return out as unknown as RemoraConfig;
}

/**
 * Load the configuration: defaults, then `<stateDir>/config.json` or REMORA_CONFIG,
 * then environment (REMORA_STATE_DIR, REMORA_PG_URL). Validated and frozen.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: DeepPartial<RemoraConfig> = {},
): RemoraConfig {
  const stateDir = path.resolve(overrides.stateDir ?? env.REMORA_STATE_DIR ?? '.state');
  let config = defaultConfig(stateDir);
  const file = env.REMORA_CONFIG ?? path.join(stateDir, 'config.json');
  if (fs.existsSync(file)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new RemoraError(
        'InvalidConfig',
        `config file ${file} is not valid JSON: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    config = mergeConfig(config, parsed as DeepPartial<RemoraConfig>);
  }
  if (env.REMORA_PG_URL) config = mergeConfig(config, { postgres: { url: env.REMORA_PG_URL } });
  config = mergeConfig(config, overrides);
  config.stateDir = stateDir;
  validateConfig(config);
  return deepFreeze(config);
}

export function validateConfig(c: RemoraConfig): void {
  const fail = (msg: string): never => {
    throw new RemoraError('InvalidConfig', msg);
  };
  if (c.shards.filter((s) => s.role === 'storage').length !== 1)
    fail('config: exactly one shard must have role "storage"');
  if (c.shards.filter((s) => s.role === 'index').length < 1)
    fail('config: at least one shard must have role "index"');
  const names = new Set(c.shards.map((s) => s.name));
  if (names.size !== c.shards.length) fail('config: shard names must be unique');
  const ids = new Set(c.storage.nodes.map((n) => n.id));
  if (ids.size !== c.storage.nodes.length)
    fail('config: storage node ids must be unique (MANTA-3827: a duplicate storage id misplaces objects)');
  if (!Number.isInteger(c.ring.vnodes) || c.ring.vnodes < 1)
    fail('config: ring.vnodes must be a positive integer');
  if (!/^[a-z][a-z0-9_]*$/.test(c.postgres.databasePrefix))
    fail('config: postgres.databasePrefix must match [a-z][a-z0-9_]*');
  if (c.frontdoor.defaultCopies < 1 || c.frontdoor.defaultCopies > 9)
    fail('config: frontdoor.defaultCopies must be 1..9 (muskie DEF_MAX_COPIES)');
  if (c.objectStore.backend !== 'local' && c.objectStore.backend !== 'frontdoor')
    fail(
      `config: objectStore.backend must be "local" or "frontdoor", got ${JSON.stringify(c.objectStore.backend)}`,
    );
  if (c.objectStore.url !== undefined && !/^https?:\/\/[^/]+/.test(c.objectStore.url))
    fail(
      `config: objectStore.url must be an http(s) URL of the front door, got ${JSON.stringify(c.objectStore.url)}`,
    );
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
