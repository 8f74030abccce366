/**
 * A small Manta-compatible world on simulated days, for GC's randomized test: the metadata tier,
 * storage nodes with their heartbeats, and the front door, all on one injected clock; the daily
 * pipeline (snapshot → unpack → gc, tombstone-purge) on the same clock.
 *
 * The clock: real time plus an offset that jumps a day at a time between days (`SimClock`). Within
 * a day it runs with real time, so records, delete records and snapshots keep the order they
 * really had: a frozen ManualClock would give every operation of a day the same instant. The one
 * instant not taken from it is a snapshot's (PostgreSQL's `clock_timestamp()`): the test's
 * snapshot job stores each dump again at its instant in the simulated frame (real + the day's
 * offset), as manatee's dump of that day would have been, and the real unpack reads it.
 *
 * Every MOVE into a tombstone on every node is recorded with the simulated instant (through the
 * node's file-operation seam), so the test can prove no record referenced a copy after it moved.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Clock } from '../../src/core/clock.js';
import { SeededRandom } from '../../src/core/clock.js';
import { dayStartMs } from '../../src/core/days.js';
import { RemoraError } from '../../src/core/errors.js';
import type { RemoraConfig } from '../../src/config/config.js';
import { backupPath } from '../../src/dumps/layout.js';
import { snapshotShard } from '../../src/dumps/snapshot.js';
import { AuditLog } from '../../src/frontdoor/audit-log.js';
import { createAccount } from '../../src/frontdoor/accounts.js';
import { FrontDoorClient } from '../../src/frontdoor/client.js';
import { ObjectService } from '../../src/frontdoor/object-service.js';
import { FrontDoorServer } from '../../src/frontdoor/server.js';
import { snapshotOutput, type SnapshotOutput } from '../../src/jobs/snapshot/snapshot.job.js';
import { MetadataTier } from '../../src/metadata/metadata-tier.js';
import { LocalObjectStore } from '../../src/objectstore/object-store.js';
import type { JobDefinition } from '../../src/pipeline/job.js';
import { Heartbeat } from '../../src/storage/heartbeat.js';
import { durableFileOps, type DurableFileOps } from '../../src/storage/storage-handlers.js';
import { StorageClient } from '../../src/storage/storage-client.js';
import { StorageNode } from '../../src/storage/storage-node.js';
import { TEST_INTERNAL_TOKEN } from './internal-token.js';
import { freePort } from './net.js';
import { dropDatabases, testConfig, testPgUrl } from './pg.js';

/** Real time plus an offset that only ever jumps forward (between simulated days). */
export class SimClock implements Clock {
  offset: number;
  constructor(startMs: number) {
    this.offset = startMs - Date.now();
  }
  now(): number {
    return Date.now() + this.offset;
  }
  /** Jump to `ms` (never back). */
  jumpTo(ms: number): void {
    const next = ms - Date.now();
    if (next > this.offset) this.offset = next;
  }
}

export interface Move {
  node: string;
  objectId: string;
  /** Simulated instant of the rename into the tombstone. */
  at: number;
}

export interface World {
  config: RemoraConfig;
  clock: SimClock;
  tier: MetadataTier;
  store: LocalObjectStore;
  nodes: Map<string, { root: string; url: string; node?: StorageNode; heartbeat?: Heartbeat }>;
  /** Every MOVE into a tombstone so far. */
  moves: Move[];
  frontdoorUrl: string;
  storage: StorageClient;
  accounts: { login: string; uuid: string; client: FrontDoorClient }[];
  stopNode(id: string): Promise<void>;
  startNode(id: string): Promise<void>;
  /** One heartbeat of every running node now (after a jump, so the picker sees them fresh). */
  beat(): Promise<void>;
  close(): Promise<void>;
}

const NODES = [
  { id: '1.stor.dc1.remora.local', datacenter: 'dc1' },
  { id: '2.stor.dc2.remora.local', datacenter: 'dc2' },
  { id: '3.stor.dc1.remora.local', datacenter: 'dc1' },
  { id: '4.stor.dc2.remora.local', datacenter: 'dc2' },
];

export async function openWorld(startMs: number, seed: number, logins: string[]): Promise<World> {
  const clock = new SimClock(startMs);
  const base = testConfig();
  const ports = await Promise.all(NODES.map(() => freePort()));
  const config: RemoraConfig = {
    ...base,
    storage: {
      ...base.storage,
      heartbeatIntervalMs: 300,
      nodes: NODES.map((n, i) => ({ ...n, url: `http://127.0.0.1:${ports[i]}` })),
    },
  };
  const tier = await MetadataTier.open(config, testPgUrl(), { clock });
  const store = new LocalObjectStore(path.join(config.stateDir, 'objects'));
  const moves: Move[] = [];
  const nodes: World['nodes'] = new Map();
  const storage = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN });
  const recording = (id: string): DurableFileOps => ({
    fsync: (p, flags) => durableFileOps.fsync(p, flags),
    async rename(from, to) {
      await durableFileOps.rename(from, to);
      const m = /\/tombstone\/\d{4}-\d{2}-\d{2}\/([0-9a-f-]{36})$/.exec(to);
      if (m) moves.push({ node: id, objectId: m[1]!, at: clock.now() });
    },
  });
  const startNode = async (id: string) => {
    const n = NODES.find((x) => x.id === id)!;
    const entry = nodes.get(id)!;
    const node = await StorageNode.start({
      id,
      datacenter: n.datacenter,
      root: entry.root,
      port: Number(new URL(entry.url).port),
      internalToken: TEST_INTERNAL_TOKEN,
      clock,
      fileOps: recording(id),
    });
    entry.node = node;
    entry.heartbeat = Heartbeat.start({
      tier,
      id,
      datacenter: n.datacenter,
      capacity: node.capacity,
      url: node.url,
      intervalMs: config.storage.heartbeatIntervalMs,
      clock,
    });
    await entry.heartbeat.idle();
  };
  for (const n of config.storage.nodes)
    nodes.set(n.id, { root: path.join(config.stateDir, 'storage', n.id), url: n.url! });
  for (const id of nodes.keys()) await startNode(id);
  const service = new ObjectService({
    tier,
    storage,
    nodeUrl: (id) => nodes.get(id)?.url,
    policy: config.picker,
    defaultCopies: 2,
    clock,
    random: new SeededRandom(seed),
  });
  const server = new FrontDoorServer(tier, service, new AuditLog(path.join(config.stateDir, 'logs'), 'fd'));
  const frontdoorUrl = await server.listen(0);
  const accounts: World['accounts'] = [];
  for (const login of logins) {
    const a = await createAccount(tier, { login }, clock.now());
    accounts.push({ login, uuid: a.account.uuid, client: new FrontDoorClient(frontdoorUrl, a.token) });
  }
  return {
    config,
    clock,
    tier,
    store,
    nodes,
    moves,
    frontdoorUrl,
    storage,
    accounts,
    startNode,
    stopNode: async (id) => {
      const e = nodes.get(id)!;
      await e.heartbeat?.stop();
      await e.node?.close();
      delete e.heartbeat;
      delete e.node;
    },
    beat: async () => {
      for (const e of nodes.values()) if (e.heartbeat) await e.heartbeat.beat();
    },
    close: async () => {
      for (const a of accounts) a.client.close();
      await server.close();
      for (const e of nodes.values()) {
        await e.heartbeat?.stop();
        await e.node?.close();
      }
      storage.close();
      await tier.close();
      await dropDatabases(config.postgres.databasePrefix);
      fs.rmSync(config.stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * The test's snapshot job: the real snapshot (`snapshotShard`), stored again at its instant in
 * the simulated frame. Shards are snapshotted one at a time (a lock), with hooks before and
 * after each, so the test can act between two shards' snapshots ("walking" links) and during one.
 */
export function simSnapshotJob(
  w: () => World,
  hooks: {
    before?(shard: string): Promise<void> | void;
    after?(shard: string, index: number): Promise<void> | void;
  },
): JobDefinition<unknown, SnapshotOutput | undefined, SnapshotOutput | undefined> {
  let lock: Promise<unknown> = Promise.resolve();
  let taken = 0;
  return {
    name: 'snapshot',
    description: 'test: a consistent snapshot, stamped in the simulated frame',
    partition: 'day-shard',
    inputs: {
      external: [
        {
          name: 'the day has begun',
          exists: ({ services, partition }) =>
            Promise.resolve({ ready: services.clock.now() >= dayStartMs(partition.day) }),
        },
      ],
    },
    deadlineMs: 3_600_000,
    maxAttempts: 1,
    output: snapshotOutput,
    split: () => Promise.resolve([{ key: 'dump' }]),
    runTask: (ctx) => {
      const turn = lock.then(async () => {
        const world = w();
        const shard = ctx.partition.shard!;
        await hooks.before?.(shard);
        const r = await snapshotShard(world.tier.shard(shard), world.store);
        const sim = new Date(r.snapshotTime.getTime() + world.clock.offset);
        const chunks: Buffer[] = [];
        for await (const c of await world.store.get(r.path)) chunks.push(c as Buffer);
        const at = backupPath(shard, sim);
        await world.store.put(at, Buffer.concat(chunks), {
          'm-shard': shard,
          'm-snapshot-time': sim.toISOString(),
        });
        if (at !== r.path) await world.store.delete(r.path);
        await hooks.after?.(shard, taken++);
        const out: SnapshotOutput = { shard, path: at, snapshotTime: sim.toISOString(), rows: r.rows };
        return { report: ctx.report.count('recordsScanned', r.rows).finish(), output: out };
      });
      lock = turn.catch(() => {});
      return turn;
    },
    commit: (ctx) => {
      if (!ctx.tasks[0]) throw new RemoraError('Internal', 'no snapshot task');
      return Promise.resolve({ output: ctx.tasks[0].output });
    },
  };
}
