/**
 * Snapshot: one shard at one instant, as a gzipped pg_dump plain-format dump.
 *
 * One REPEATABLE READ, READ ONLY transaction per shard: every table is copied from the same
 * MVCC snapshot, so a writer that moves an object between two keys in one transaction shows
 * exactly one copy, and `manta` agrees with `manta_delete_log`. The snapshot is taken by the
 * transaction's first statement, which also reads `clock_timestamp()`: that is the recorded
 * instant (`m-snapshot-time` on the object, and a `-- remora-snapshot-time:` header comment).
 *
 * Tables stream `COPY … TO STDOUT` → gzip (level 1, as manatee's `gzip -1`, §2.1) → the object
 * store; nothing is held in memory. gzip runs as independent 4 MB members on the thread pool
 * (parallel-gzip.ts), so compression overlaps PostgreSQL's COPY and the COPY parsing; the file
 * is still one gzip file. embedded PostgreSQL ships no pg_dump (DEPENDENCY-NOTES),
 * and a real pg_dump's data section is exactly this `COPY … FROM stdin;` / rows / `\.` text.
 */
import { once } from 'node:events';
import type pg from 'pg';
import { RemoraError } from '../core/errors.js';
import { publishedPath } from '../core/published-path.js';
import { BUCKETS } from '../metadata/buckets.js';
import { connectShard, type MetadataTier, type ShardHandle } from '../metadata/metadata-tier.js';
import { backupPath } from './layout.js';
import { CopyOutBlocks } from './copy-out.js';
import { ParallelGzip } from './parallel-gzip.js';
import type { ObjectStore } from '../objectstore/object-store.js';

export interface SnapshotResult {
  shard: string;
  path: string;
  snapshotTime: Date;
  bytes: number;
  sha256: string;
  tables: Record<string, number>;
  /** Rows of every table: what sizes the unpack's automatic P. */
  rows: number;
}

/** The moray tables of a shard, in dump order (index: manta, manta_delete_log; storage: manta_storage, accounts). */
export function shardTables(role: 'index' | 'storage'): string[] {
  return BUCKETS.filter((b) => b.on === role).map((b) => b.name);
}

/**
 * Dump `shard` to `/poseidon/stor/manatee_backups/<shard>/YYYY/MM/DD/HH/moray-<instant>.gz`, or,
 * side by side with the original (`outputPrefix`), to `publishedPath` of it: never among the
 * dumps the original's manatee stores and its own pipeline lists.
 */
export async function snapshotShard(
  shard: ShardHandle,
  store: ObjectStore,
  opts: { outputPrefix?: string } = {},
): Promise<SnapshotResult> {
  const client = await connectShard(shard);
  const gzip = new ParallelGzip({ level: 1 });
  let put: Promise<{ bytes: number; sha256: string }> | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const r = await client.query<{ at: Date }>('SELECT clock_timestamp() AS at');
    const snapshotTime = r.rows[0]!.at;
    const path = publishedPath(opts.outputPrefix, backupPath(shard.name, snapshotTime));
    put = store.put(path, gzip, { 'm-shard': shard.name, 'm-snapshot-time': snapshotTime.toISOString() });
    put.catch(() => {});
    const write = async (s: string | Buffer) => {
      if (!gzip.write(s)) await Promise.race([once(gzip, 'drain'), put!.then(() => undefined)]);
    };
    await write(dumpHeader(shard.name, snapshotTime));
    const tables: Record<string, number> = {};
    for (const table of shardTables(shard.role)) {
      const columns = await tableColumns(client, table);
      if (columns.length === 0) continue;
      tables[table] = await copyTable(client, table, columns, write);
    }
    await write('--\n-- PostgreSQL database dump complete\n--\n\n');
    gzip.end();
    const stored = await put;
    await client.query('COMMIT');
    const rows = Object.values(tables).reduce((a, b) => a + b, 0);
    return {
      shard: shard.name,
      path,
      snapshotTime,
      bytes: stored.bytes,
      sha256: stored.sha256,
      tables,
      rows,
    };
  } catch (err) {
    gzip.destroy(err as Error);
    await put?.catch(() => {});
    await client.query('ROLLBACK').catch(() => {});
    throw err instanceof RemoraError
      ? err
      : new RemoraError('Internal', `snapshot of ${shard.name} failed: ${(err as Error).message}`, {
          cause: err,
        });
  } finally {
    client.release();
  }
}

/** Snapshot every shard (or one), shards in parallel: each has its own database and instant. */
export async function snapshotAll(
  tier: MetadataTier,
  store: ObjectStore,
  only?: string,
  opts: { outputPrefix?: string } = {},
): Promise<SnapshotResult[]> {
  const shards = only ? [tier.shard(only)] : [...tier.shards.values()];
  return Promise.all(shards.map((s) => snapshotShard(s, store, opts)));
}

function dumpHeader(shard: string, at: Date): string {
  return [
    '--',
    '-- PostgreSQL database dump (data only, written by Remora with COPY TO STDOUT)',
    '--',
    `-- remora-shard: ${shard}`,
    `-- remora-snapshot-time: ${at.toISOString()}`,
    '--',
    '',
    "SET client_encoding = 'UTF8';",
    'SET standard_conforming_strings = on;',
    '',
    '',
  ].join('\n');
}

async function tableColumns(client: pg.PoolClient, table: string): Promise<string[]> {
  const r = await client.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return r.rows.map((x) => x.column_name);
}

/** Stream one table as pg_dump does; returns its row count (one newline per row in COPY text). */
async function copyTable(
  client: pg.PoolClient,
  table: string,
  columns: string[],
  write: (s: string | Buffer) => Promise<void>,
): Promise<number> {
  const cols = columns.map((c) => client.escapeIdentifier(c)).join(', ');
  await write(`--\n-- Data for Name: ${table}; Type: TABLE DATA; Schema: public; Owner: -\n--\n\n`);
  await write(`COPY public.${table} (${columns.join(', ')}) FROM stdin;\n`);
  const copy = client.query(
    new CopyOutBlocks(`COPY public.${client.escapeIdentifier(table)} (${cols}) TO STDOUT`),
  );
  for await (const block of copy) await write(block as Buffer);
  await copy.settled;
  if (copy.serverRows !== undefined && copy.serverRows !== copy.rows)
    throw new RemoraError(
      'Internal',
      `COPY of ${table} sent ${copy.rows} rows but the server counted ${copy.serverRows}: the dump is not written`,
    );
  const rows = copy.rows;
  await write('\\.\n\n\n');
  return rows;
}
