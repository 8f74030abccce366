/**
 * Connecting a command to the metadata tier. Three cases:
 *   1. config.postgres.url is set          → an external PostgreSQL: connect to it.
 *   2. a deployment is up (`remora up`)    → its state file names the embedded server's URL.
 *   3. nothing is running                  → start the embedded server on the state directory
 *                                            for the duration of the command, then stop it.
 * Only `remora up` and `remora demo` create a deployment: a state directory with none of the
 * three (a mistyped --state-dir) is refused with NoDeployment, instead of initialising a new,
 * empty PostgreSQL cluster there and answering from it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RemoraConfig } from '../config/config.js';
import { RemoraError } from '../core/errors.js';
import { FrontDoorObjectStore } from '../objectstore/frontdoor-store.js';
import { defaultObjectStore, type ObjectStore } from '../objectstore/object-store.js';
import { FrontDoorClient } from '../frontdoor/client.js';
import { MetadataTier } from '../metadata/metadata-tier.js';
import { startEmbeddedPostgres } from '../metadata/postgres-server.js';
import { checkInternalToken, generateInternalToken } from '../storage/internal-auth.js';

/** What a running deployment writes to `<stateDir>/deployment.json`. */
export interface DeploymentState {
  pid: number;
  startedAt: string;
  postgresUrl: string;
  frontdoorUrl: string;
  /** The operator's control endpoint (`remora storage stop|start`; control.ts). */
  controlUrl?: string;
  /**
   * manta_storage_id → base URL of that storage node's HTTP server. A node stopped with
   * `remora storage stop` keeps its entry (and its address) with `running: false`.
   */
  storageNodes: Record<string, { url: string; datacenter: string; root: string; running?: boolean }>;
  operatorToken: string;
  /** Services started beside the deployment: name → URL (`dashboard`). */
  services?: Record<string, string>;
}

export function deploymentStatePath(config: RemoraConfig): string {
  return path.join(config.stateDir, 'deployment.json');
}

export function readDeploymentState(config: RemoraConfig): DeploymentState | undefined {
  const p = deploymentStatePath(config);
  if (!fs.existsSync(p)) return undefined;
  const state = JSON.parse(fs.readFileSync(p, 'utf8')) as DeploymentState;
  return isAlive(state.pid) ? state : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function embeddedDataDir(config: RemoraConfig): string {
  return path.join(config.stateDir, 'postgres', 'data');
}

/** Run `fn` with an open metadata tier, connecting as described above. */
export async function withMetadata<T>(
  config: RemoraConfig,
  fn: (tier: MetadataTier) => Promise<T>,
): Promise<T> {
  let url = config.postgres.url ?? readDeploymentState(config)?.postgresUrl;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    requireEmbeddedCluster(config);
    const server = await startEmbeddedPostgres(embeddedDataDir(config), config.postgres.port);
    url = server.url;
    stop = () => server.stop();
  }
  try {
    const tier = await MetadataTier.open(config, url);
    try {
      return await fn(tier);
    } finally {
      await tier.close();
    }
  } finally {
    if (stop) await stop();
  }
}

/**
 * The embedded PostgreSQL cluster a deployment created in the state directory (`remora up`),
 * or NoDeployment naming the directory looked at and how to create one.
 */
export function requireEmbeddedCluster(config: RemoraConfig): void {
  const dataDir = embeddedDataDir(config);
  if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return;
  throw new RemoraError(
    'NoDeployment',
    `no deployment in state directory ${config.stateDir}: no running deployment (${deploymentStatePath(config)}), ` +
      `no PostgreSQL cluster in ${dataDir}, and no external PostgreSQL (REMORA_PG_URL or postgres.url). ` +
      `Check --state-dir / REMORA_STATE_DIR, or create a deployment there with \`remora --state-dir ${config.stateDir} up\``,
    { details: { stateDir: config.stateDir } },
  );
}

/** Remove `<stateDir>/deployment.json` if this process wrote it (synchronous: safe in an exit handler). */
export function removeStateIfOurs(config: RemoraConfig): void {
  const p = deploymentStatePath(config);
  try {
    const s = JSON.parse(fs.readFileSync(p, 'utf8')) as DeploymentState;
    if (s.pid === process.pid) fs.rmSync(p);
  } catch {
    /* absent or unreadable: nothing of ours to remove */
  }
}

/** Where a deployment keeps the operator account's token. */
export function operatorTokenPath(config: RemoraConfig): string {
  return path.join(config.stateDir, 'operator-token');
}

/** Where a deployment keeps the internal credential of its storage nodes (when not configured). */
export function internalTokenPath(config: RemoraConfig): string {
  return path.join(config.stateDir, 'internal-token');
}

/**
 * The internal credential storage nodes require (docs/storage-nodes.md): `storage.internalToken`
 * from the configuration, else `<stateDir>/internal-token`; undefined when neither exists.
 */
export function readInternalToken(config: RemoraConfig): string | undefined {
  if (config.storage.internalToken !== undefined)
    return checkInternalToken(config.storage.internalToken, 'config storage.internalToken');
  const file = internalTokenPath(config);
  if (!fs.existsSync(file)) return undefined;
  return checkInternalToken(fs.readFileSync(file, 'utf8').trim(), file);
}

/** The credential for a client of storage nodes (jobs, CLI commands): refused when none is known. */
export function requireInternalToken(config: RemoraConfig): string {
  const token = readInternalToken(config);
  if (token === undefined)
    throw new RemoraError(
      'UsageError',
      `no internal storage credential: set storage.internalToken in the configuration, or run where ${internalTokenPath(config)} exists (\`remora up\` creates it)`,
    );
  return token;
}

/**
 * The credential a deployment starts its nodes with: the configured or stored one, else a new
 * one generated once and stored with mode 0600 (like the operator token). `wx` makes a race
 * between two starters end with one file, which both then read.
 */
export function ensureInternalToken(config: RemoraConfig): string {
  const existing = readInternalToken(config);
  if (existing !== undefined) return existing;
  const file = internalTokenPath(config);
  try {
    fs.writeFileSync(file, `${generateInternalToken()}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return checkInternalToken(fs.readFileSync(file, 'utf8').trim(), file);
}

/**
 * The object store the configuration names (`objectStore.backend`): the local directory, or
 * the front door as the operator account — at `objectStore.url` with `objectStore.token`, else
 * `frontDoor` (a deployment passes its own), else the running deployment's front door and
 * operator token. `close` releases its connections.
 */
export function openObjectStore(
  config: RemoraConfig,
  frontDoor?: { url: string; token: string },
): { store: ObjectStore; close: () => void } {
  const o = config.objectStore;
  if (o.backend === 'local') return { store: defaultObjectStore(config.stateDir), close: () => {} };
  const state = frontDoor ? undefined : readDeploymentState(config);
  const url = o.url ?? frontDoor?.url ?? state?.frontdoorUrl;
  if (!url)
    throw new RemoraError(
      'UsageError',
      'objectStore.backend is "frontdoor" but no front door is known: set objectStore.url, or start the deployment (remora up)',
    );
  const tokenFile = operatorTokenPath(config);
  const token =
    o.token ??
    frontDoor?.token ??
    state?.operatorToken ??
    (fs.existsSync(tokenFile) ? fs.readFileSync(tokenFile, 'utf8').trim() : undefined);
  if (!token)
    throw new RemoraError(
      'UsageError',
      `objectStore.backend is "frontdoor" but no operator token: set objectStore.token, or run where ${tokenFile} exists`,
    );
  const client = new FrontDoorClient(url, token);
  return { store: new FrontDoorObjectStore(client), close: () => client.close() };
}

/**
 * Run `fn` with where per-account reports go: the running deployment's front door (as the
 * operator), so an account reads its reports with its own token whatever the pipeline's own
 * store is; undefined when no deployment runs here, or when the store already is the front door.
 */
export async function withReportsStore<T>(
  config: RemoraConfig,
  fn: (store: ObjectStore | undefined) => Promise<T>,
): Promise<T> {
  const state = config.objectStore.backend === 'frontdoor' ? undefined : readDeploymentState(config);
  if (!state?.frontdoorUrl || !state.operatorToken) return fn(undefined);
  const client = new FrontDoorClient(state.frontdoorUrl, state.operatorToken);
  try {
    return await fn(new FrontDoorObjectStore(client));
  } finally {
    client.close();
  }
}

/** Run `fn` with the configured object store, closing it afterwards. */
export async function withObjectStore<T>(
  config: RemoraConfig,
  fn: (store: ObjectStore) => Promise<T>,
): Promise<T> {
  const { store, close } = openObjectStore(config);
  try {
    return await fn(store);
  } finally {
    close();
  }
}

/**
 * The operator token: `objectStore.token` is not it (that may be another account); the running
 * deployment's, else `<stateDir>/operator-token`; undefined when neither exists.
 */
export function readOperatorToken(config: RemoraConfig): string | undefined {
  const state = readDeploymentState(config);
  if (state?.operatorToken) return state.operatorToken;
  const file = operatorTokenPath(config);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() || undefined : undefined;
}
