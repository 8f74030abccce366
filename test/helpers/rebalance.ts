/** Helpers for rebalance tests: snapshot + unpack, node addresses, copies as the records say. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { LocalObjectStore } from '../../src/objectstore/object-store.js';
import { snapshotAll } from '../../src/dumps/snapshot.js';
import { unpackDump } from '../../src/dumps/unpack.js';
import type { Deployment } from '../../src/deployment/deployment.js';
import type { MantaObjectValue } from '../../src/metadata/types.js';
import { TEMP_DIR } from '../../src/storage/storage-paths.js';
import { NodeDirectory } from '../../src/storage/node-directory.js';

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
