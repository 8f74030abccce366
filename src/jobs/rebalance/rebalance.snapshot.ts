/**
 * What the plan reads (MANTA-REFERENCE §3.5 preconditions: "the latest moray dumps were taken
 * after the last write"):
 *  - the newest committed unpack of every index shard (docs/dumps.md: `manta` chunks partitioned
 *    by objectId, so one partition of every shard holds every key of an objectId);
 *  - the evacuated node's last write: the newest mtime of a copy in its manifest (live `GET
 *    /manifest`, else the listing stored at /poseidon/stor/mako/<id>). Tombstones and temp files
 *    are not writes of objects and are ignored.
 */
import readline from 'node:readline';
import type { DuckDBConnection } from '@duckdb/node-api';
import { RemoraError } from '../../core/errors.js';
import { openDuck, sqlString } from '../../dumps/duckdb.js';
import { makoPath } from '../../dumps/layout.js';
import { DAY_MS, dayOf } from '../../core/days.js';
import { readSourceManifest, type SourceManifest } from '../../dumps/manifest.js';
import { PartitionInputs } from '../../dumps/partition-inputs.js';
import type { ObjectStore } from '../../objectstore/object-store.js';
import { classifyMakoLine } from '../../dumps/mako.js';
import type { StorageClient } from '../../storage/storage-client.js';
import type { Shark } from '../../metadata/types.js';
import type { ObjectGroup } from './rebalance.types.js';

/** How far back to look for a shard's newest unpack. */
export const SNAPSHOT_LOOKBACK_DAYS = 14;

/** The newest committed unpack of each index shard, looking back day by day from `now`. */
export async function latestShardSnapshots(
  store: ObjectStore,
  shards: readonly string[],
  now: number,
): Promise<SourceManifest[]> {
  const out: SourceManifest[] = [];
  for (const shard of shards) {
    let found: SourceManifest | undefined;
    for (let i = 0; i <= SNAPSHOT_LOOKBACK_DAYS && !found; i++)
      found = await readSourceManifest(store, dayOf(new Date(now - i * DAY_MS)), shard);
    if (!found)
      throw new RemoraError(
        'SnapshotTooOld',
        `no unpacked snapshot of shard ${shard} in the last ${SNAPSHOT_LOOKBACK_DAYS} days: run \`remora snapshot\` and \`remora unpack\` first`,
      );
    out.push(found);
  }
  return out;
}

/**
 * The newest mtime (ms) of a copy on the node, or undefined when it holds none. Live listing
 * when the node answers, else the stored one (which is only as recent as its start instant).
 */
export async function nodeLastWrite(
  storage: StorageClient,
  store: ObjectStore,
  nodeId: string,
  nodeUrl: string | undefined,
): Promise<{ lastWriteMs: number | undefined; from: string }> {
  if (nodeUrl) {
    try {
      const m = await storage.manifest(nodeUrl);
      return { lastWriteMs: await newestCopy(m.lines), from: `live manifest of ${nodeUrl}` };
    } catch (err) {
      if (!(err instanceof RemoraError && err.code === 'StorageNodeUnreachable')) throw err;
    }
  }
  const p = makoPath(nodeId);
  if (!(await store.head(p)))
    throw new RemoraError(
      'SnapshotTooOld',
      `cannot tell when ${nodeId} was last written: it does not answer and ${p} does not exist ` +
        '(run `remora manifest --node` while it is up)',
    );
  const lines = readline.createInterface({ input: await store.get(p), crlfDelay: Infinity });
  return { lastWriteMs: await newestCopy(lines), from: p };
}

async function newestCopy(lines: AsyncIterable<string>): Promise<number | undefined> {
  let newest: number | undefined;
  for await (const line of lines) {
    const c = classifyMakoLine(line);
    if ('skip' in c) continue;
    const ms = Number(c.values[2]) * 1000;
    if (newest === undefined || ms > newest) newest = ms;
  }
  return newest;
}

/**
 * Refuse a snapshot older than the node's last write. The manifest floors mtimes to whole
 * seconds (MANTA-3854), so a write is only known to precede the snapshot when the snapshot is
 * at least one second plus `marginMs` (a front-door request still writing its record) later.
 */
export function checkSnapshotFresh(
  snapshots: readonly SourceManifest[],
  nodeId: string,
  lastWriteMs: number | undefined,
  marginMs: number,
): void {
  if (lastWriteMs === undefined) return;
  const needed = lastWriteMs + 1000 + marginMs;
  for (const s of snapshots) {
    if (Date.parse(s.snapshotTime) < needed)
      throw new RemoraError(
        'SnapshotTooOld',
        `the snapshot of ${s.source} (${s.snapshotTime}) is older than the last write to ${nodeId} ` +
          `(${new Date(lastWriteMs).toISOString()}, +${(1000 + marginMs) / 1000} s margin): disable writes on the node, ` +
          'then `remora snapshot` and `remora unpack` again before planning',
      );
  }
}

export interface CandidateQuery {
  evacuate?: string;
  fixSingleDc?: boolean;
}

/**
 * Every objectId to consider, with all its keys on every shard, handed to `onGroup` one at a
 * time in objectId order, one partition group after the other. The group's rows are streamed
 * from DuckDB chunk by chunk (its sort is held by DuckDB, within its memory limit), never read
 * whole into JS: memory does not grow with the node's object count (RFD 16 problem 5).
 */
export async function eachCandidateGroup(
  store: ObjectStore,
  snapshots: readonly SourceManifest[],
  q: CandidateQuery,
  onGroup: (g: ObjectGroup) => Promise<void>,
): Promise<void> {
  const duck = await openDuck();
  try {
    // The same partition inputs every pipeline job reads (src/dumps/partition-inputs.ts).
    const inputs = PartitionInputs.of(store, snapshots);
    for (const { params } of inputs.tasks(['manta'])) {
      await inputs.withGroup(params, ['manta'], async ({ files }) => {
        if (files.manta!.length === 0) return;
        await streamObjectGroups(duck.conn, candidateSql(files.manta!, q), onGroup);
      });
    }
  } finally {
    duck.close();
  }
}

/**
 * The rows of `sql` (candidate rows sorted by objectId) as one ObjectGroup per objectId, read
 * from DuckDB one chunk at a time; an objectId whose rows span two chunks is still one group.
 */
export async function streamObjectGroups(
  conn: DuckDBConnection,
  sql: string,
  onGroup: (g: ObjectGroup) => Promise<void>,
): Promise<void> {
  const result = await conn.stream(sql);
  const grouper = new RowGrouper();
  for await (const rows of result.yieldRowObjectJson())
    for (const r of rows as unknown as CandidateRow[]) {
      const done = grouper.add(r);
      if (done) await onGroup(done);
    }
  const last = grouper.end();
  if (last) await onGroup(last);
}

function candidateSql(files: string[], q: CandidateQuery): string {
  const ids = 'list_transform(sharks, s -> s.manta_storage_id)';
  const evac = q.evacuate ? `list_contains(${ids}, ${sqlString(q.evacuate)})` : 'false';
  const oneDc = q.fixSingleDc
    ? 'len(sharks) >= 2 AND len(list_distinct(list_transform(sharks, s -> s.datacenter))) = 1'
    : 'false';
  // The files are read twice (the objectIds to take, then their rows) rather than through a
  // CTE: the CTE cost +38 MB more at 100k objects, as if every row of the group were held at once.
  const rows = `SELECT objectId, key, owner, creator, contentLength, contentMD5, etag, _etag, shard, sharks
        FROM read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true)
       WHERE type = 'object' AND objectId IS NOT NULL AND value_ok`;
  return `SELECT * FROM (${rows})
     WHERE objectId IN (SELECT objectId FROM (${rows}) WHERE ${evac} OR (${oneDc}))
     ORDER BY objectId, key`;
}

interface CandidateRow {
  objectId: string;
  key: string;
  owner: string;
  creator: string | null;
  contentLength: string | number | null;
  contentMD5: string | null;
  etag: string | null;
  _etag: string;
  shard: string;
  sharks: Shark[] | null;
}

/** Rows sorted by objectId → one ObjectGroup per objectId; `add` returns the group a new objectId ends. */
class RowGrouper {
  private g: ObjectGroup | undefined;

  add(r: CandidateRow): ObjectGroup | undefined {
    let done: ObjectGroup | undefined;
    if (!this.g || this.g.objectId !== r.objectId) {
      done = this.g;
      this.g = {
        objectId: r.objectId,
        copyOwner: r.creator || r.owner,
        md5: r.contentMD5 ?? '',
        contentLength: r.contentLength === null ? NaN : Number(r.contentLength),
        keys: [],
      };
    }
    this.g.keys.push({
      key: r.key,
      shard: r.shard,
      morayEtag: r._etag,
      etag: r.etag ?? '',
      owner: r.owner,
      sharks: (r.sharks ?? []).map((s) => ({
        datacenter: s.datacenter,
        manta_storage_id: s.manta_storage_id,
      })),
    });
    return done;
  }

  /** The last group. */
  end(): ObjectGroup | undefined {
    const done = this.g;
    this.g = undefined;
    return done;
  }
}
