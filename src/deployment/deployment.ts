/**
 * A whole Manta-compatible deployment in one process: PostgreSQL (embedded unless a URL is
 * configured), the metadata tier, one HTTP storage node per configured node with its
 * capacity heartbeat, the front door, and the operator account (`poseidon`).
 * Composition only: every piece lives in its own module.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { RemoraConfig } from '../config/config.js';
import { RemoraError } from '../core/errors.js';
import type { Clock, Random } from '../core/clock.js';
import { MetadataTier } from '../metadata/metadata-tier.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../metadata/postgres-server.js';
import { StorageNode } from '../storage/storage-node.js';
import { StorageClient } from '../storage/storage-client.js';
import { Heartbeat } from '../storage/heartbeat.js';
import { ObjectService } from '../frontdoor/object-service.js';
import { FrontDoorServer } from '../frontdoor/server.js';
import { AuditLog, hourKeyOf } from '../frontdoor/audit-log.js';
import { recordFrontDoorUp } from '../metadata/frontdoor-hours.repository.js';
import { accountByLogin, createAccount, OPERATOR_LOGIN } from '../frontdoor/accounts.js';
import { FrontDoorClient } from '../frontdoor/client.js';
import { publishFinishedHours } from './audit-publisher.js';
import { ControlServer, type NodeControlStatus, type NodeController } from './control.js';
import {
  type DeploymentState,
  deploymentStatePath,
  embeddedDataDir,
  ensureInternalToken,
  openObjectStore,
  operatorTokenPath,
  readDeploymentState,
  removeStateIfOurs,
} from './context.js';

export interface DeploymentOptions {
  log?: (line: string) => void;
  clock?: Clock;
  random?: Random;
  /** Write `<stateDir>/deployment.json` so other commands find this deployment (default true). */
  writeState?: boolean;
  frontdoorPort?: number;
}

/**
 * A service `remora up` starts beside the deployment and stops before it (the dashboard: a
 * higher layer, handed in by the entry point). `start` resolves once it serves at `url`.
 */
export interface DeploymentAddon {
  name: string;
  start(d: Deployment): Promise<{ url: string; close(): Promise<void> }>;
}

export function storageRoot(config: RemoraConfig, id: string): string {
  return path.join(config.stateDir, 'storage', id);
}

export function auditLogDir(config: RemoraConfig): string {
  return path.join(config.stateDir, 'logs', 'muskie');
}

/** How often finished hours of the audit log are published (muskie uploaded hourly). */
const LOG_PUBLISH_INTERVAL_MS = 60_000;

/** This deployment's one front door instance: its audit log objects are `<instance>.log`. */
export const FRONTDOOR_INSTANCE = 'frontdoor-0';

/**
 * How often the front door records that it is up (one row per hour: request metering waits for
 * the log of every instance that was up during the hour). Well under an hour, so an instance
 * that serves in an hour has recorded itself for it before the hour ends.
 */
const FRONTDOOR_UP_INTERVAL_MS = 15_000;

export class Deployment implements NodeController {
  private logTimer: NodeJS.Timeout | undefined;
  private upTimer: NodeJS.Timeout | undefined;
  /** The running storage nodes (a stopped node is not here; its address is kept, see stopNode). */
  readonly nodes = new Map<string, StorageNode>();
  /** The beating heartbeats (none for a stopped node or a paused heartbeat). */
  readonly heartbeats = new Map<string, Heartbeat>();
  /** The client of this deployment's storage nodes, with their internal credential. */
  readonly storage: StorageClient;
  private frontdoor: FrontDoorServer | undefined;
  private control: ControlServer | undefined;
  service!: ObjectService;
  frontdoorUrl = '';
  operatorToken = '';
  /** The operator's control endpoint (`remora storage stop|start`; src/deployment/control.ts). */
  controlUrl = '';
  private readonly startedAt = new Date().toISOString();
  /** URLs of the services started beside it (`dashboard`), written to deployment.json. */
  private readonly services: Record<string, string> = {};

  private constructor(
    readonly config: RemoraConfig,
    readonly tier: MetadataTier,
    private readonly pg: RunningPostgres | undefined,
    readonly postgresUrl: string,
    private readonly opts: DeploymentOptions,
    /** What every mutating request to a storage node must carry (docs/storage-nodes.md). */
    readonly internalToken: string,
  ) {
    this.storage = new StorageClient({ internalToken });
  }

  static async start(config: RemoraConfig, opts: DeploymentOptions = {}): Promise<Deployment> {
    const log = opts.log ?? (() => {});
    fs.mkdirSync(config.stateDir, { recursive: true });
    guardSingleDeployment(config);
    const internalToken = ensureInternalToken(config);
    let pg: RunningPostgres | undefined;
    let url = config.postgres.url;
    if (!url) {
      pg = await startPostgresOrSayWhy(config, log);
      url = pg.url;
      log(`postgres: embedded, ${url.replace(/:[^:@/]+@/, ':***@')}`);
    }
    let tier: MetadataTier;
    try {
      tier = await MetadataTier.open(config, url);
    } catch (err) {
      await pg?.stop();
      throw err;
    }
    const d = new Deployment(config, tier, pg, url, opts, internalToken);
    try {
      await d.startAll();
    } catch (err) {
      await d.close();
      throw err;
    }
    return d;
  }

  private async startAll(): Promise<void> {
    const log = this.opts.log ?? (() => {});
    for (const n of this.config.storage.nodes) await this.startNode(n.id);
    await Promise.all([...this.heartbeats.values()].map((h) => h.idle()));
    log(
      `storage: ${this.nodes.size} nodes over ${new Set(this.config.storage.nodes.map((n) => n.datacenter)).size} datacenters`,
    );
    this.service = new ObjectService({
      tier: this.tier,
      storage: this.storage,
      nodeUrl: (id) => this.nodes.get(id)?.url ?? this.stoppedNodeUrls.get(id),
      policy: this.config.picker,
      defaultCopies: this.config.frontdoor.defaultCopies,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      ...(this.opts.random ? { random: this.opts.random } : {}),
    });
    this.frontdoor = new FrontDoorServer(
      this.tier,
      this.service,
      new AuditLog(auditLogDir(this.config), FRONTDOOR_INSTANCE),
      log,
    );
    // Recorded before the first request can be served, then every FRONTDOOR_UP_INTERVAL_MS.
    await this.recordUp();
    this.upTimer = setInterval(
      () => void this.recordUp().catch((e: unknown) => log(`front door registration: ${String(e)}`)),
      FRONTDOOR_UP_INTERVAL_MS,
    );
    this.upTimer.unref();
    this.frontdoorUrl = await this.frontdoor.listen(this.opts.frontdoorPort ?? this.config.frontdoor.port);
    this.operatorToken = await this.ensureOperator();
    log(`front door: ${this.frontdoorUrl}`);
    this.control = await ControlServer.start(this, this.operatorToken);
    this.controlUrl = this.control.url;
    this.logTimer = setInterval(
      () => void this.publishLogs().catch((e: unknown) => log(`audit log publish: ${String(e)}`)),
      LOG_PUBLISH_INTERVAL_MS,
    );
    this.logTimer.unref();
    if (this.opts.writeState !== false) this.writeState();
  }

  /**
   * Addresses of stopped nodes: a stopped node keeps its address, so requests to it are refused
   * as to a dead node, and it comes back on the same port.
   */
  private readonly stoppedNodeUrls = new Map<string, string>();
  /** One stop/start at a time per node (the control endpoint may get two at once). */
  private readonly nodeOps = new Map<string, Promise<unknown>>();

  private serialized<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.nodeOps.get(id) ?? Promise.resolve()).catch(() => undefined).then(fn);
    this.nodeOps.set(id, next);
    return next;
  }

  private nodeConfig(id: string) {
    const n = this.config.storage.nodes.find((x) => x.id === id);
    if (!n) throw new RemoraError('UsageError', `unknown storage node ${id}`);
    return n;
  }

  /**
   * Start one node: its HTTP server on its root and its heartbeat (first beat at once). A node
   * stopped by stopNode comes back on the same port, with its files. Starting a running node
   * changes nothing. Refused with PortInUse when another process took the port meanwhile.
   */
  startNode(id: string): Promise<StorageNode> {
    return this.serialized(id, async () => {
      const n = this.nodeConfig(id);
      const running = this.nodes.get(id);
      if (running) return running;
      const prevUrl = this.stoppedNodeUrls.get(id);
      const node = await StorageNode.start({
        id: n.id,
        datacenter: n.datacenter,
        root: storageRoot(this.config, n.id),
        internalToken: this.internalToken,
        ...(n.capacityMB !== undefined ? { capacityMB: n.capacityMB } : {}),
        ...(prevUrl ? { port: Number(new URL(prevUrl).port) } : {}),
        ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      });
      this.stoppedNodeUrls.delete(id);
      this.nodes.set(id, node);
      this.beginHeartbeat(id);
      this.stateChanged();
      return node;
    });
  }

  /**
   * Stop one node, as if it died: its heartbeat stops (its record goes stale after the picker's
   * lag), then its server closes every connection (uploads in flight remove their temp files).
   * Its files stay. Stopping a stopped node changes nothing.
   */
  stopNode(id: string): Promise<void> {
    return this.serialized(id, async () => {
      this.nodeConfig(id);
      const node = this.nodes.get(id);
      if (!node) return;
      await this.endHeartbeat(id);
      await node.close();
      this.nodes.delete(id);
      this.stoppedNodeUrls.set(id, node.url);
      this.stateChanged();
    });
  }

  /**
   * Stop only the heartbeat of a running node: it keeps serving, but its `manta_storage` record
   * ages, so after the picker's lag no front door places copies on it and no rebalance plan
   * chooses it (what a stuck minnow did). `resumeHeartbeat` starts it again.
   */
  pauseHeartbeat(id: string): Promise<void> {
    return this.serialized(id, () => {
      this.nodeConfig(id);
      return this.endHeartbeat(id);
    });
  }

  /** Start the heartbeat of a running node again (a beat at once); nothing for a stopped node. */
  resumeHeartbeat(id: string): Promise<void> {
    return this.serialized(id, async () => {
      this.nodeConfig(id);
      if (this.nodes.has(id) && !this.heartbeats.has(id)) await this.beginHeartbeat(id).idle();
    });
  }

  /** Every configured node: running or stopped, its address, whether its heartbeat beats. */
  nodeStatus(): NodeControlStatus[] {
    return this.config.storage.nodes.map((n) => ({
      id: n.id,
      datacenter: n.datacenter,
      url: this.nodes.get(n.id)?.url ?? this.stoppedNodeUrls.get(n.id),
      state: this.nodes.has(n.id) ? 'running' : 'stopped',
      heartbeat: this.heartbeats.has(n.id),
    }));
  }

  private beginHeartbeat(id: string): Heartbeat {
    const n = this.nodeConfig(id);
    const node = this.nodes.get(id)!;
    const hb = Heartbeat.start({
      tier: this.tier,
      id: n.id,
      datacenter: n.datacenter,
      capacity: node.capacity,
      url: node.url,
      intervalMs: this.config.storage.heartbeatIntervalMs,
      ...(this.opts.clock ? { clock: this.opts.clock } : {}),
      onError: (e) => (this.opts.log ?? (() => {}))(`heartbeat ${n.id}: ${e.message}`),
    });
    this.heartbeats.set(id, hb);
    return hb;
  }

  private async endHeartbeat(id: string): Promise<void> {
    const hb = this.heartbeats.get(id);
    this.heartbeats.delete(id);
    await hb?.stop();
  }

  /** Record the URL of a service started beside the deployment (deployment.json `services`). */
  announce(name: string, url: string): void {
    this.services[name] = url;
    this.stateChanged();
  }

  /** Keep deployment.json's view of the nodes current once the deployment is up. */
  private stateChanged(): void {
    if (this.frontdoorUrl && this.opts.writeState !== false) this.writeState();
  }

  private async ensureOperator(): Promise<string> {
    const tokenFile = operatorTokenPath(this.config);
    const existing = await accountByLogin(this.tier, OPERATOR_LOGIN);
    if (existing && fs.existsSync(tokenFile)) return fs.readFileSync(tokenFile, 'utf8').trim();
    if (existing) {
      throw new RemoraError(
        'StaleState',
        `the ${OPERATOR_LOGIN} account exists but ${tokenFile} is missing; restore it or reset the state directory`,
      );
    }
    const { token } = await createAccount(
      this.tier,
      { login: OPERATOR_LOGIN, operator: true, reports: false },
      Date.now(),
    );
    fs.writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    return token;
  }

  client(token = this.operatorToken): FrontDoorClient {
    return new FrontDoorClient(this.frontdoorUrl, token);
  }

  state(): DeploymentState {
    const storageNodes: DeploymentState['storageNodes'] = {};
    for (const n of this.nodeStatus())
      if (n.url)
        storageNodes[n.id] = {
          url: n.url,
          datacenter: n.datacenter,
          root: storageRoot(this.config, n.id),
          running: n.state === 'running',
        };
    return {
      pid: process.pid,
      startedAt: this.startedAt,
      postgresUrl: this.postgresUrl,
      frontdoorUrl: this.frontdoorUrl,
      controlUrl: this.controlUrl,
      storageNodes,
      operatorToken: this.operatorToken,
      ...(Object.keys(this.services).length ? { services: { ...this.services } } : {}),
    };
  }

  private writeState(): void {
    const p = deploymentStatePath(this.config);
    // It holds the operator token: readable by its owner only, like the token files.
    fs.rmSync(`${p}.tmp`, { force: true });
    fs.writeFileSync(`${p}.tmp`, JSON.stringify(this.state(), null, 2), { mode: 0o600 });
    fs.renameSync(`${p}.tmp`, p);
  }

  /** Record that the front door is up during the current hour (docs/metering.md "Late logs"). */
  private async recordUp(now = new Date()): Promise<void> {
    await recordFrontDoorUp(this.tier.control, FRONTDOOR_INSTANCE, hourKeyOf(now));
  }

  /** Move finished hours of the front door's audit log into the object store (muskie's hourly upload). */
  async publishLogs(now = new Date()): Promise<string[]> {
    // Where the pipeline reads them: the configured store (through this front door, if so).
    const { store, close } = openObjectStore(this.config, {
      url: this.frontdoorUrl,
      token: this.operatorToken,
    });
    try {
      return await publishFinishedHours(auditLogDir(this.config), store, now, {
        db: this.tier.control,
        instance: FRONTDOOR_INSTANCE,
      });
    } finally {
      close();
    }
  }

  async close(): Promise<void> {
    if (this.logTimer) clearInterval(this.logTimer);
    if (this.upTimer) clearInterval(this.upTimer);
    await this.control?.close();
    // Logs published through the front door go before it closes; to a local directory, after
    // (so they hold the requests that finished while it closed).
    const viaFrontDoor = this.config.objectStore.backend === 'frontdoor';
    if (viaFrontDoor) await this.publishLogs().catch(() => undefined);
    await this.frontdoor?.close();
    if (!viaFrontDoor) await this.publishLogs().catch(() => undefined);
    for (const h of this.heartbeats.values()) await h.stop();
    for (const n of this.nodes.values()) await n.close();
    this.storage.close();
    await this.tier.close();
    await this.pg?.stop();
    if (this.opts.writeState !== false) removeStateIfOurs(this.config);
  }
}

/**
 * Start the embedded PostgreSQL; when that fails and its port is held by another process, say
 * so (PortInUse, naming the port and the key to change) instead of the generic start failure.
 */
async function startPostgresOrSayWhy(
  config: RemoraConfig,
  log: (l: string) => void,
): Promise<RunningPostgres> {
  const port = config.postgres.port;
  try {
    return await startEmbeddedPostgres(embeddedDataDir(config), port, log);
  } catch (err) {
    if (!(await portTaken(port, '127.0.0.1'))) throw err;
    throw new RemoraError(
      'PortInUse',
      `port ${port} (embedded PostgreSQL, postgres.port) is already in use on 127.0.0.1 by another process: ` +
        `stop it, or set postgres.port in ${path.join(config.stateDir, 'config.json')}`,
      { cause: err, details: { port } },
    );
  }
}

/** True when something else listens on host:port right now. */
function portTaken(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EADDRINUSE'));
    probe.listen(port, host, () => probe.close(() => resolve(false)));
  });
}

/** Two deployments on one state directory would share one PostgreSQL data directory: refuse. */
function guardSingleDeployment(config: RemoraConfig): void {
  const s = readDeploymentState(config); // undefined when absent or its process is gone
  if (s && s.pid !== process.pid) {
    throw new RemoraError(
      'StaleState',
      `a deployment (pid ${s.pid}) is already running on ${config.stateDir}; stop it with \`remora down\` first`,
    );
  }
  fs.rmSync(deploymentStatePath(config), { force: true }); // left by a crash
}
