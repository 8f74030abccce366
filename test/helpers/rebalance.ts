/** Helpers for rebalance tests: snapshot + unpack, node addresses, copies as the records say. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { LocalObjectStore } from '../../src/objectstore/object-store.js';
import { snapshotAll } from '../../src/dumps/snapshot.js';
import { unpackDump } from '../../src/dumps/unpack.js';
import type { Deployment } from '../../src/deployment/deployment.js';
import { defaultStorageNodes } from '../../src/config/config.js';
import type { MantaObjectValue } from '../../src/metadata/types.js';
import { TEMP_DIR } from '../../src/storage/storage-paths.js';
import { NodeDirectory } from '../../src/storage/node-directory.js';
import type { RemoraConfig } from '../../src/config/config.js';
import { createAccount } from '../../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../../src/frontdoor/client.js';
import { startTestDeployment } from './deployment.js';
import { disableWrites } from '../../src/storage/storage-admin.js';
import { planJob } from '../../src/jobs/rebalance/rebalance.service.js';
import { testConfig } from './pg.js';

export const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('base64');

export function storeOf(d: Deployment): LocalObjectStore {
  return new LocalObjectStore(path.join(d.config.stateDir, 'objects'));
}

/** Snapshot every shard and unpack the index shards (what `remora snapshot` + `remora unpack` do). */
export async function snapshotAndUnpack(d: Deployment, partitions = 4): Promise<void> {
  const store = storeOf(d);
  for (const r of await snapshotAll(d.tier, store)) {
    if (d.tier.shard(r.shard).role !== 'index') continue;
    await unpackDump(store, [r.path], { partitions });
  }
}

/**
 * Node addresses as jobs find them: the storage-node directory (configuration, else heartbeat
 * records). A stopped node keeps its record and its port, so requests to it are refused.
 */
export async function nodeDirectory(d: Deployment): Promise<NodeDirectory> {
  return NodeDirectory.load(d.config.storage.nodes, d.tier);
}

/** Every object record of the deployment (all index shards). */
export async function objectRecords(d: Deployment): Promise<MantaObjectValue[]> {
  const out: MantaObjectValue[] = [];
  for (const s of d.tier.indexShards) {
    const r = await s.pool.query<{ _value: string }>(`SELECT _value FROM manta WHERE type = 'object'`);
    for (const row of r.rows) out.push(JSON.parse(row._value) as MantaObjectValue);
  }
  return out;
}

/** Files (not tombstones) named objectId on each node. */
export function copiesOnDisk(
  d: Deployment,
  roots: Map<string, string>,
  owner: string,
  objectId: string,
): string[] {
  return [...roots].filter(([, root]) => fs.existsSync(path.join(root, owner, objectId))).map(([id]) => id);
}

export function tempFiles(roots: Map<string, string>): string[] {
  return [...roots.values()].flatMap((r) => {
    const dir = path.join(r, TEMP_DIR);
    return fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
  });
}

/** Wait until a second has passed since now, so a snapshot is provably after the last write (mtimes are whole seconds). */
export async function pastLastWrite(): Promise<void> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 1100));
}

/** Four nodes over two datacenters (issue 17's history): 1 and 3 in dc1, 2 and 4 in dc2. */
export const FOUR_NODES = defaultStorageNodes(4, ['dc1', 'dc2']);

export interface LiveObjectRecord {
  shard: string;
  key: string;
  value: MantaObjectValue;
}

/** Every well-formed live object record (all index shards), with its shard. Malformed ones are left out. */
export async function liveObjectRecords(d: Deployment): Promise<LiveObjectRecord[]> {
  const out: LiveObjectRecord[] = [];
  for (const s of d.tier.indexShards) {
    const r = await s.pool.query<{ _key: string; _value: string }>(
      `SELECT _key, _value FROM manta WHERE type = 'object' ORDER BY _key`,
    );
    for (const row of r.rows) {
      let value: MantaObjectValue;
      try {
        value = JSON.parse(row._value) as MantaObjectValue;
      } catch {
        continue; // a malformed record a test planted
      }
      if (Array.isArray(value.sharks)) out.push({ shard: s.name, key: row._key, value });
    }
  }
  return out;
}

/**
 * The durability invariants on the live metadata and the nodes' disks (DESIGN.md invariant 2),
 * as a list of violations (empty: all hold):
 *   - no record names one node twice;
 *   - no record has fewer datacenters than when first seen (`baseline`, key@objectId → count,
 *     updated with records seen for the first time);
 *   - no copy lost: every copy a live record names is a file on that node whose MD5 is the
 *     record's (read byte for byte).
 */
export async function durabilityViolations(d: Deployment, baseline: Map<string, number>): Promise<string[]> {
  const bad: string[] = [];
  const md5Of = new Map<string, string | undefined>();
  for (const { key, value: v } of await liveObjectRecords(d)) {
    const ids = v.sharks.map((s) => s.manta_storage_id);
    if (new Set(ids).size !== ids.length) bad.push(`${key} names one node twice: ${ids.join(',')}`);
    const dcs = new Set(v.sharks.map((s) => s.datacenter)).size;
    const id = `${key}@${v.objectId}`;
    const was = baseline.get(id);
    if (was === undefined) baseline.set(id, dcs);
    else if (dcs < was) bad.push(`${key} has ${dcs} datacenter(s), had ${was}: ${ids.join(',')}`);
    for (const s of v.sharks) {
      const node = d.nodes.get(s.manta_storage_id);
      const file = path.join(
        node?.root ?? path.join(d.config.stateDir, 'storage', s.manta_storage_id),
        v.creator || v.owner,
        v.objectId,
      );
      if (!md5Of.has(file)) md5Of.set(file, fs.existsSync(file) ? md5(fs.readFileSync(file)) : undefined);
      const got = md5Of.get(file);
      if (got === undefined) bad.push(`${key}: copy on ${s.manta_storage_id} lost (${v.objectId})`);
      else if (got !== v.contentMD5)
        bad.push(`${key}: copy on ${s.manta_storage_id} has MD5 ${got}, not ${v.contentMD5}`);
    }
  }
  return bad;
}

/** objectIds whose live records name different copies, with the sets. */
export async function disagreements(d: Deployment): Promise<string[]> {
  const sets = new Map<string, Map<string, string>>();
  for (const { key, value: v } of await liveObjectRecords(d)) {
    const set = [...new Set(v.sharks.map((s) => s.manta_storage_id))].sort().join(',');
    const m = sets.get(v.objectId) ?? new Map<string, string>();
    m.set(set, key);
    sets.set(v.objectId, m);
  }
  return [...sets]
    .filter(([, m]) => m.size > 1)
    .map(([id, m]) => `${id}: ${[...m].map(([set, key]) => `${key} → ${set}`).join('; ')}`);
}

/**
 * A deployment the CLI drives as child processes: state written, `config.json` in the state
 * directory for the children, heartbeats every 300 ms, and the account `alice` with a client.
 */
export async function startCliDeployment(over: Partial<RemoraConfig> = {}): Promise<{
  d: Deployment;
  cleanup: () => Promise<void>;
  alice: FrontDoorClient;
  owner: string;
}> {
  const base = testConfig();
  const { d, cleanup } = await startTestDeployment(
    { ...base, storage: { ...base.storage, heartbeatIntervalMs: 300 }, ...over },
    { writeState: true },
  );
  fs.writeFileSync(path.join(d.config.stateDir, 'config.json'), JSON.stringify(d.config));
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  const alice = d.client(a.token);
  return {
    d,
    alice,
    owner: a.account.uuid,
    cleanup: async () => {
      alice.close();
      await cleanup();
    },
  };
}

/** The evacuation's first steps for one node, as a test needs them: disable writes, snapshot, plan. */
export async function planEvacuation(
  d: Deployment,
  node: string,
): Promise<{ jobId: string; nodeUrl: (id: string) => string | undefined }> {
  await disableWrites(d.tier, node);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  const nodes = await nodeDirectory(d);
  const nodeUrl = (id: string) => nodes.url(id);
  const plan = await planJob(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    { evacuate: node, maxFillPct: 90, lagMs: 60_000, lastWriteMarginMs: 0 },
  );
  return { jobId: plan.jobId, nodeUrl };
}

/**
 * A four-node deployment (two datacenters, heartbeats every 300 ms) with the account `alice`, a
 * client, and `key` turning `/alice/…` into the record key; `dir` is created under `/alice/stor`.
 */
export async function withFourNodesAndAlice(
  dir: string,
  fn: (w: { d: Deployment; alice: FrontDoorClient; key: (p: string) => string }) => Promise<void>,
): Promise<void> {
  const { d, cleanup } = await startTestDeployment({
    storage: { nodes: FOUR_NODES, heartbeatIntervalMs: 300 },
  });
  let alice: FrontDoorClient | undefined;
  try {
    const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
    alice = d.client(a.token);
    await alice.mkdirp(`/alice/stor/${dir}`);
    await fn({ d, alice, key: (p) => p.replace('/alice/', `/${a.account.uuid}/`) });
  } finally {
    alice?.close();
    await cleanup();
  }
}
