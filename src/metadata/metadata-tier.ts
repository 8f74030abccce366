/**
 * The metadata tier: one PostgreSQL database per shard plus Remora's control database.
 * Routes `manta` keys through the ring (electric-moray), runs conditional puts and
 * deletes, writes the delete log in the same transaction as an overwrite or delete
 * (libmanta recordDeleteLog), and finds every record referencing an objectId on all shards.
 */
import pg from 'pg';
import { RemoraError, toRemoraError } from '../core/errors.js';
import { type Clock, systemClock } from '../core/clock.js';
import type { RemoraConfig } from '../config/config.js';
import { ensureDatabase, databaseUrl } from './postgres-server.js';
import { describeServer, openPool, translateConnectionError } from './pg-connection.js';
import {
  ACCOUNTS_BUCKET,
  type BucketDefinition,
  BUCKETS,
  bucketByName,
  bucketDdl,
  DELETE_LOG_BUCKET,
  MANTA_BUCKET,
  STORAGE_BUCKET,
} from './buckets.js';
import {
  checkEtag,
  deleteRow,
  findRowsBy,
  findRowsIn,
  getRow,
  insertRowIfAbsent,
  upsertRow,
  updateRowsIfEtag,
  type ConditionalReplace,
} from './moray.repository.js';
import { morayEtag } from '../core/crc32.js';
import { createRing, Ring, ringDifference } from './ring.js';
import { insertRingOnce, migrateControl, readRing } from './control.repository.js';
import type { EtagCondition, MantaValue, MorayRow } from './types.js';

/** What a conditional delete did to one row (MetadataTier.deleteManyOnShard). */
export type ConditionalDeleteOutcome = 'removed' | 'gone' | 'changed';

export interface PutOptions {
  etag?: EtagCondition;
}

export type BatchOp =
  | { op: 'put'; bucket: string; key: string; value: Record<string, unknown>; etag?: EtagCondition }
  | { op: 'delete'; bucket: string; key: string; etag?: EtagCondition };

export interface ShardHandle {
  name: string;
  role: 'index' | 'storage';
  database: string;
  url: string;
  pool: pg.Pool;
}

// PostgreSQL error codes worth translating (serialization failure, deadlock).
const PG_RETRY_CODES = new Set(['40001', '40P01']);

export class MetadataTier {
  private closed = false;

  private constructor(
    readonly config: RemoraConfig,
    readonly serverUrl: string,
    readonly control: pg.Pool,
    readonly shards: ReadonlyMap<string, ShardHandle>,
    readonly ring: Ring,
    private readonly clock: Clock,
  ) {}

  /** Create (if needed) and open every shard database, apply DDL, load or create the ring. */
  static async open(
    config: RemoraConfig,
    serverUrl: string,
    opts: { clock?: Clock; poolSize?: number } = {},
  ): Promise<MetadataTier> {
    const prefix = config.postgres.databasePrefix;
    const controlDb = `${prefix}_control`;
    try {
      await ensureDatabase(serverUrl, controlDb);
    } catch (err) {
      throw translateConnectionError(err, describeServer(serverUrl));
    }
    // Pools that translate connection failures and survive a lost connection (pg-connection.ts).
    const control = openPool(databaseUrl(serverUrl, controlDb), { max: 4, label: 'control database' });
    const shards = new Map<string, ShardHandle>();
    try {
      await migrateControl(control);
      for (const s of config.shards) {
        const database = `${prefix}_${shardSlug(s.name)}`;
        await ensureDatabase(serverUrl, database);
        const url = databaseUrl(serverUrl, database);
        const pool = openPool(url, { max: opts.poolSize ?? 8, label: `shard ${s.name}` });
        shards.set(s.name, { name: s.name, role: s.role, database, url, pool });
        for (const b of BUCKETS) {
          if (b.on !== s.role) continue;
          for (const stmt of bucketDdl(b)) await pool.query(stmt);
        }
      }
      const indexShards = config.shards.filter((s) => s.role === 'index').map((s) => s.name);
      let def = await readRing(control);
      if (!def) def = await insertRingOnce(control, createRing(config.ring.vnodes, indexShards));
      const diff = ringDifference(def, { vnodes: config.ring.vnodes, shards: indexShards });
      if (diff) {
        throw new RemoraError(
          'RingChanged',
          `the hash ring was created with a different layout (${diff}). The ring must never change after deploy: ` +
            `restore the original shard list and vnode count in the configuration.`,
        );
      }
      return new MetadataTier(config, serverUrl, control, shards, new Ring(def), opts.clock ?? systemClock);
    } catch (err) {
      await control.end();
      for (const s of shards.values()) await s.pool.end();
      throw translateConnectionError(err, describeServer(serverUrl));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.control.end();
    for (const s of this.shards.values()) await s.pool.end();
  }

  get indexShards(): ShardHandle[] {
    return [...this.shards.values()].filter((s) => s.role === 'index');
  }

  get storageShard(): ShardHandle {
    const s = [...this.shards.values()].find((x) => x.role === 'storage');
    if (!s) throw new Error('no storage shard');
    return s;
  }

  shard(name: string): ShardHandle {
    const s = this.shards.get(name);
    if (!s) throw new RemoraError('ShardUnavailable', `unknown shard ${name}`);
    return s;
  }

  /** The shard and vnode for a key of a bucket. */
  route(bucket: BucketDefinition, key: string): { shard: ShardHandle; vnode: number | null } {
    if (bucket.on === 'storage') return { shard: this.storageShard, vnode: null };
    const { shard, vnode } = this.ring.locate(key);
    return { shard: this.shard(shard), vnode };
  }

  async getObject<V = MantaValue>(bucketName: string, key: string): Promise<MorayRow<V> | undefined> {
    const b = bucketByName(bucketName);
    const { shard } = this.route(b, key);
    return getRow<V>(shard.pool, b, key);
  }

  /** moray putObject: conditional on `etag`; for `manta`, writes the delete log in the same transaction. */
  async putObject(
    bucketName: string,
    key: string,
    value: Record<string, unknown>,
    opts: PutOptions = {},
  ): Promise<string> {
    const results = await this.batch([{ op: 'put', bucket: bucketName, key, value, etag: opts.etag }]);
    return results[0]!;
  }

  async deleteObject(bucketName: string, key: string, opts: PutOptions = {}): Promise<void> {
    await this.batch([{ op: 'delete', bucket: bucketName, key, etag: opts.etag }]);
  }

  /**
   * Delete rows from the shard that holds them, not the shard the ring picks for their keys (a
   * delete-log row lives where the deleted key was; GC cleans it up there), each only if its
   * etag is still the one given (invariant 3). One statement for the whole list (GC removes
   * thousands per task): a row is removed only where `_key` and `_etag` both match. Per key:
   * `removed`; `gone` (no such row: an earlier attempt removed it); `changed` (the row exists
   * with another etag: kept). Not for `manta` rows: those go through batch(), which writes the
   * delete log.
   */
  async deleteManyOnShard(
    shardName: string,
    bucketName: string,
    rows: readonly { key: string; etag: string }[],
  ): Promise<Map<string, ConditionalDeleteOutcome>> {
    const b = bucketByName(bucketName);
    if (b === MANTA_BUCKET)
      throw new RemoraError(
        'Internal',
        'deleteManyOnShard is not for manta rows: use deleteObject (delete log)',
      );
    const out = new Map<string, ConditionalDeleteOutcome>();
    if (rows.length === 0) return out;
    const keys = rows.map((r) => r.key);
    return this.inTransaction(this.shard(shardName), async (tx) => {
      const del = await tx.query<{ _key: string }>(
        `DELETE FROM ${b.name} t USING unnest($1::text[], $2::text[]) AS u(k, e)
           WHERE t._key = u.k AND t._etag = u.e RETURNING t._key`,
        [keys, rows.map((r) => r.etag)],
      );
      const removed = new Set(del.rows.map((r) => r._key));
      const rest = keys.filter((k) => !removed.has(k));
      const kept =
        rest.length === 0
          ? new Set<string>()
          : new Set(
              (
                await tx.query<{ _key: string }>(`SELECT _key FROM ${b.name} WHERE _key = ANY($1::text[])`, [
                  rest,
                ])
              ).rows.map((r) => r._key),
            );
      for (const k of keys) out.set(k, removed.has(k) ? 'removed' : kept.has(k) ? 'changed' : 'gone');
      return out;
    });
  }

  /**
   * Replace many rows, each only if it still has the etag it was read with and keeps its index
   * columns (a rebalance or repair rewrites `sharks` and nothing else): one UPDATE per shard, in a
   * transaction per shard, all or nothing there. A row that changed, is gone or would change
   * identity (a new objectId needs the delete log: use batch()) aborts its shard's transaction as
   * EtagConflict, as batch() does, so the caller falls back to judging records one by one.
   * Returns each row's new etag, in input order.
   */
  async replaceManyIfEtag(
    bucketName: string,
    ops: readonly { key: string; value: Record<string, unknown>; etag: string }[],
  ): Promise<string[]> {
    const b = bucketByName(bucketName);
    const byShard = new Map<ShardHandle, { i: number; row: ConditionalReplace }[]>();
    ops.forEach((op, i) => {
      const { shard, vnode } = this.route(b, op.key);
      const value = vnode === null ? op.value : { ...op.value, vnode };
      const list = byShard.get(shard) ?? [];
      list.push({ i, row: { key: op.key, etag: op.etag, serialized: JSON.stringify(value), vnode } });
      byShard.set(shard, list);
    });
    const out = new Array<string>(ops.length).fill('');
    for (const [shard, list] of byShard) {
      const rows = list.map((x) => x.row);
      await this.inTransaction(shard, async (tx) => {
        const done = new Set(await updateRowsIfEtag(tx, b, rows, this.clock.now()));
        const missed = rows.find((r) => !done.has(r.key));
        if (missed)
          throw new RemoraError(
            'EtagConflict',
            `${b.name} ${missed.key}: changed since it was read (expected etag ${missed.etag}); ` +
              `${rows.length - done.size} of ${rows.length} row(s) on ${shard.name} not replaced`,
            { details: { bucket: b.name, key: missed.key, expected: missed.etag } },
          );
      });
      for (const { i, row } of list) out[i] = morayEtag(row.serialized);
    }
    return out;
  }

  /**
   * Run operations; all operations on one shard run in one transaction (moray batch).
   * Returns the new etag of each put ('' for deletes), in input order. Any etag conflict
   * aborts that shard's transaction and is thrown as EtagConflict.
   */
  async batch(ops: BatchOp[]): Promise<string[]> {
    const byShard = new Map<ShardHandle, { i: number; op: BatchOp; vnode: number | null }[]>();
    ops.forEach((op, i) => {
      const { shard, vnode } = this.route(bucketByName(op.bucket), op.key);
      const list = byShard.get(shard) ?? [];
      list.push({ i, op, vnode });
      byShard.set(shard, list);
    });
    const out = new Array<string>(ops.length).fill('');
    for (const [shard, list] of byShard) {
      await this.inTransaction(shard, async (tx) => {
        for (const { i, op, vnode } of list) out[i] = await this.applyOp(tx, op, vnode);
      });
    }
    return out;
  }

  private async applyOp(tx: pg.PoolClient, op: BatchOp, vnode: number | null): Promise<string> {
    const b = bucketByName(op.bucket);
    const now = this.clock.now();
    const existing = await getRow<Record<string, unknown>>(tx, b, op.key, true);
    checkEtag(b.name, op.key, existing, op.etag);
    if (op.op === 'put') {
      // electric-moray stores the vnode inside `_value` as well as in `_vnode`.
      const value = vnode === null ? op.value : { ...op.value, vnode };
      const serialized = JSON.stringify(value);
      if (b === MANTA_BUCKET && existing) await this.recordDeleteLog(tx, existing, op.value, now);
      if (op.etag === null) {
        // "must not exist": a concurrent insert that won the race surfaces here.
        if (!(await insertRowIfAbsent(tx, b, op.key, serialized, now, vnode))) {
          checkEtag(b.name, op.key, await getRow(tx, b, op.key), null);
        }
        return (await getRow(tx, b, op.key))!.etag;
      }
      return upsertRow(tx, b, op.key, serialized, now, vnode);
    }
    if (!existing) {
      if (op.etag !== undefined) checkEtag(b.name, op.key, existing, op.etag);
      throw new RemoraError('ObjectNotFound', `${b.name} ${op.key} does not exist`, {
        details: { key: op.key },
      });
    }
    if (b === MANTA_BUCKET) await this.recordDeleteLog(tx, existing, undefined, now);
    await deleteRow(tx, b, op.key);
    return '';
  }

  /**
   * libmanta recordDeleteLog: on overwrite or delete of a row that had an objectId, unless the
   * new value keeps the same objectId. `_key = /<prevObjectId>/<ms>`, `_value` = the whole previous
   * record (with its `_etag`, as muskie's copy carried it). Two deletes of the same objectId in the
   * same millisecond on one shard would collide on `_key`: the later one takes the next free ms.
   */
  private async recordDeleteLog(
    tx: pg.PoolClient,
    prev: MorayRow<Record<string, unknown>>,
    next: Record<string, unknown> | undefined,
    now: number,
  ): Promise<void> {
    const prevId = prev.value.objectId;
    if (typeof prevId !== 'string' || prevId === '') return;
    if (next && next.objectId === prevId) return;
    const serialized = JSON.stringify({ ...prev.value, _etag: prev.etag });
    for (let ms = now; ; ms++) {
      if (await insertRowIfAbsent(tx, DELETE_LOG_BUCKET, `/${prevId}/${ms}`, serialized, ms, null)) return;
    }
  }

  async inTransaction<T>(shard: ShardHandle, fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await connectShard(shard);
    try {
      await client.query('BEGIN');
      const r = await fn(client);
      await client.query('COMMIT');
      return r;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      const code = (err as { code?: string }).code;
      if (code && PG_RETRY_CODES.has(code))
        throw new RemoraError('ShardUnavailable', `shard ${shard.name}: ${(err as Error).message}`, {
          cause: err,
        });
      throw toRemoraError(translateConnectionError(err, `shard ${shard.name}`));
    } finally {
      client.release();
    }
  }

  /** Every `manta` record (on every index shard) that references an objectId. */
  async findByObjectId(objectId: string): Promise<MorayRow<MantaValue>[]> {
    const all = await Promise.all(
      this.indexShards.map((s) => findRowsBy<MantaValue>(s.pool, MANTA_BUCKET, 'objectId', objectId)),
    );
    return all.flat();
  }

  /** References for many objectIds at once: objectId → records (all shards). */
  async findByObjectIds(
    objectIds: string[],
  ): Promise<Map<string, (MorayRow<MantaValue> & { shard: string })[]>> {
    const out = new Map<string, (MorayRow<MantaValue> & { shard: string })[]>();
    for (const id of objectIds) out.set(id, []);
    await Promise.all(
      this.indexShards.map(async (s) => {
        for (const row of await findRowsIn<MantaValue>(s.pool, MANTA_BUCKET, 'objectId', objectIds)) {
          const v = row.value as { objectId?: string };
          if (v.objectId) out.get(v.objectId)?.push({ ...row, shard: s.name });
        }
      }),
    );
    return out;
  }

  /** Directory listing (findObjects on `dirname`): every entry of a directory lives on one shard. */
  async listDirectory(dirKey: string, limit = 10_000): Promise<MorayRow<MantaValue>[]> {
    const { shard } = this.ring.locate(`${dirKey}/x`);
    return findRowsBy<MantaValue>(this.shard(shard).pool, MANTA_BUCKET, 'dirname', dirKey, limit);
  }

  async storageRecords(): Promise<MorayRow<import('./types.js').StorageRecordValue>[]> {
    const r = await this.storageShard.pool.query<{
      _id: string;
      _key: string;
      _value: string;
      _etag: string;
      _mtime: string;
      _vnode: null;
    }>('SELECT _id, _key, _value, _etag, _mtime, _vnode FROM manta_storage ORDER BY _key');
    return r.rows.map((row) => ({
      bucket: STORAGE_BUCKET.name,
      key: row._key,
      value: JSON.parse(row._value) as import('./types.js').StorageRecordValue,
      etag: row._etag,
      mtime: Number(row._mtime),
      vnode: null,
      id: Number(row._id),
    }));
  }

  accountsBucket(): BucketDefinition {
    return ACCOUNTS_BUCKET;
  }
}

/** A client of the shard's pool; an unreachable shard is `ShardUnavailable`, naming it. */
export async function connectShard(shard: ShardHandle): Promise<pg.PoolClient> {
  try {
    return await shard.pool.connect();
  } catch (err) {
    if (err instanceof RemoraError) throw err; // already names the shard and its server
    throw new RemoraError(
      'ShardUnavailable',
      `shard ${shard.name} is unreachable: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

function shardSlug(name: string): string {
  return name
    .replace(/[^a-z0-9]+/gi, '_')
    .toLowerCase()
    .slice(0, 40);
}
