/**
 * Bulk mode: applies a generated workload straight to the shards (COPY) and the storage
 * nodes' directories (files), writing exactly what the front door would have written:
 * the same `manta` values (libmanta shape, vnode inside `_value`), delete-log rows for
 * overwrites and deletes, copies at `/manta/<owner>/<objectId>` spread over datacenters.
 * Fast enough for benchmark data (1M+ objects): rows stream through COPY per shard in
 * batches; files are written by a worker thread. No fsync: this builds test data.
 *
 * Overwrites and deletes of a key already flushed delete the old row before the batch's
 * COPY; the previous value comes from a bounded cache of recent writes, which the
 * generator's RECENT_WINDOW guarantees to hold.
 */
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pgCopy from 'pg-copy-streams';
import { SeededRandom } from '../core/clock.js';
import { morayEtag } from '../core/crc32.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { MantaObjectValue, MantaValue, Shark } from '../metadata/types.js';
import { createAccount, accountByLogin } from '../frontdoor/accounts.js';
import { directoryValue, EMPTY_MD5, linkValue, objectValue } from '../frontdoor/records.js';
import { type WorkloadSpec, generateWorkload, RECENT_WINDOW } from './generator.js';
import { copyLine } from './copy-text.js';
import { mantaDirname } from '../core/ids.js';
import { deferIndexes, restoreIndexes } from './bulk-indexes.js';
import { FileWriter } from './file-writer.js';
import { bulkMd5 } from './bulk-content.js';

export interface BulkNode {
  id: string;
  datacenter: string;
  /** Directory that maps to the node's `/manta`; undefined = records only, no files. */
  root?: string;
}

export interface BulkOptions {
  spec: WorkloadSpec;
  nodes: BulkNode[];
  writeFiles: boolean;
  /** Instant of the first operation; each later operation is 1 ms later. */
  startTime?: number;
  batchSize?: number;
}

export interface BulkSummary {
  accounts: number;
  directories: number;
  objects: number;
  links: number;
  overwrites: number;
  deletes: number;
  files: number;
  rows: number;
  deleteLogRows: number;
  bytes: number;
  seconds: number;
}

interface Pending {
  rows: Map<string, string | null>; // key → COPY line, null = deleted
  removeFlushed: Set<string>;
  deleteLog: string[];
}

const DEFAULT_BATCH = 20_000;
/** Files queued for the writer thread before generation waits (bounds memory when the disk is slow). */
const MAX_QUEUED_FILES = 60_000;

export async function bulkLoad(tier: MetadataTier, opts: BulkOptions): Promise<BulkSummary> {
  const started = Date.now();
  const r = new SeededRandom(opts.spec.seed ^ 0x5eed);
  const s: BulkSummary = {
    accounts: 0,
    directories: 0,
    objects: 0,
    links: 0,
    overwrites: 0,
    deletes: 0,
    files: 0,
    rows: 0,
    deleteLogRows: 0,
    bytes: 0,
    seconds: 0,
  };
  const byDc = groupByDc(opts.nodes);
  const recent = new Map<string, { value: MantaValue; flushed: boolean }>();
  const uuidOf = new Map<string, string>();
  const pending = new Map<string, Pending>();
  const writer = opts.writeFiles ? new FileWriter() : undefined;
  let files: [string, number][] = [];
  let t = opts.startTime ?? Date.now() - 86_400_000;
  let ops = 0;
  let inFlight: Promise<void> = Promise.resolve();

  const keyOf = (p: string): string => {
    const [, login, ...rest] = p.split('/');
    return ['', uuidOf.get(login!)!, ...rest].join('/');
  };
  // Keys of one directory share a vnode: hash each directory once (sha256 + BigInt per key
  // was the loader's largest CPU cost after JSON).
  const located = new Map<string, { vnode: number; shard: string }>();
  const shardOf = (key: string) => {
    const dir = mantaDirname(key);
    let loc = located.get(dir);
    if (!loc) located.set(dir, (loc = tier.ring.locate(key)));
    let p = pending.get(loc.shard);
    if (!p) pending.set(loc.shard, (p = { rows: new Map(), removeFlushed: new Set(), deleteLog: [] }));
    return { p, vnode: loc.vnode };
  };
  const write = (key: string, value: MantaValue, now: number) => {
    const { p, vnode } = shardOf(key);
    const prev = recent.get(key);
    if (prev) {
      if (prev.value.type === 'object' && (value.type !== 'object' || value.objectId !== prev.value.objectId))
        logDelete(p, prev.value, now);
      if (prev.flushed) p.removeFlushed.add(key);
    }
    p.rows.set(key, rowLine(key, { ...value, vnode }, now, vnode));
    remember(key, value);
  };
  const remember = (key: string, value: MantaValue) => {
    recent.delete(key);
    recent.set(key, { value, flushed: false });
    if (recent.size > 2 * RECENT_WINDOW + 1000) recent.delete(recent.keys().next().value!);
  };
  const logDelete = (p: Pending, prev: MantaObjectValue, now: number) => {
    const v = JSON.stringify(prev);
    p.deleteLog.push(copyLine([`/${prev.objectId}/${now}`, v, morayEtag(v), now, null, prev.objectId]));
    s.deleteLogRows++;
  };

  const deferred = await deferIndexes(tier);
  for (const op of generateWorkload(opts.spec)) {
    t++;
    ops++;
    if (op.op === 'account') {
      const existing = await accountByLogin(tier, op.login);
      const acct =
        existing ??
        (
          await createAccount(
            tier,
            { login: op.login, uuid: op.uuid, reports: op.reports, token: `token-${op.login}` },
            t,
          )
        ).account;
      uuidOf.set(op.login, acct.uuid);
      s.accounts++;
    } else if (op.op === 'mkdir') {
      const key = keyOf(op.path);
      write(key, directoryValue(key, key.split('/')[1]!, t), t);
      s.directories++;
    } else if (op.op === 'put') {
      const key = keyOf(op.path);
      const owner = key.split('/')[1]!;
      const objectId = r.uuid();
      const sharks = op.size === 0 ? [] : pickSharks(byDc, op.copies, r);
      if (recent.has(key)) s.overwrites++;
      write(
        key,
        objectValue({
          key,
          owner,
          objectId,
          contentLength: op.size,
          contentMD5: op.size === 0 ? EMPTY_MD5 : bulkMd5(op.size),
          contentType: 'application/octet-stream',
          sharks,
          mtime: t,
        }),
        t,
      );
      s.objects++;
      s.bytes += op.size;
      if (writer)
        for (const sh of sharks)
          files.push([path.join(byId(opts.nodes, sh.manta_storage_id).root!, owner, objectId), op.size]);
    } else if (op.op === 'link') {
      const src = recent.get(keyOf(op.source));
      if (!src || src.value.type !== 'object') continue; // source fell out of the window: skip, as a user would see 404
      const key = keyOf(op.path);
      write(key, linkValue(src.value, key, key.split('/')[1]!, t), t);
      s.links++;
    } else {
      const key = keyOf(op.path);
      const prev = recent.get(key);
      if (!prev) continue;
      const { p } = shardOf(key);
      if (prev.value.type === 'object') logDelete(p, prev.value, t);
      if (prev.flushed) p.removeFlushed.add(key);
      p.rows.set(key, null);
      recent.delete(key);
      s.deletes++;
    }
    if (ops % (opts.batchSize ?? DEFAULT_BATCH) === 0) {
      if (writer && files.length) {
        await writer.waitBelow(MAX_QUEUED_FILES);
        writer.send(files);
        s.files += files.length;
        files = [];
      }
      // Double buffering: this batch's COPY runs while the next batch is generated; at most
      // one flush is in flight, so a later batch never overtakes an earlier one.
      await inFlight;
      inFlight = flush(tier, new Map(pending)).then((n) => void (s.rows += n));
      pending.clear();
      for (const v of recent.values()) v.flushed = true;
    }
  }
  if (writer && files.length) {
    writer.send(files);
    s.files += files.length;
  }
  await inFlight;
  s.rows += await flush(tier, pending);
  if (writer) await writer.close();
  await restoreIndexes(tier, deferred);
  s.seconds = (Date.now() - started) / 1000;
  return s;
}

function rowLine(key: string, value: MantaValue & { vnode: number }, mtime: number, vnode: number): string {
  const v = JSON.stringify(value);
  const objectId = value.type === 'object' ? value.objectId : null;
  return copyLine([
    key,
    v,
    morayEtag(v),
    mtime,
    vnode,
    value.dirname,
    value.name,
    value.owner,
    objectId,
    value.type,
  ]);
}

async function flush(tier: MetadataTier, pending: Map<string, Pending>): Promise<number> {
  let rows = 0;
  await Promise.all(
    [...pending.entries()].map(async ([shardName, p]) => {
      const lines = [...p.rows.values()].filter((x): x is string => x !== null);
      rows += lines.length;
      await tier.inTransaction(tier.shard(shardName), async (tx) => {
        // Test data: losing the last batch on a crash is acceptable, waiting for WAL flushes is not.
        await tx.query('SET LOCAL synchronous_commit = off');
        if (p.removeFlushed.size)
          await tx.query('DELETE FROM manta WHERE _key = ANY($1::text[])', [[...p.removeFlushed]]);
        if (p.deleteLog.length) {
          await pipeline(
            Readable.from(p.deleteLog),
            tx.query(
              pgCopy.from('COPY manta_delete_log (_key, _value, _etag, _mtime, _vnode, objectid) FROM STDIN'),
            ),
          );
        }
        if (lines.length) {
          await pipeline(
            Readable.from(lines),
            tx.query(
              pgCopy.from(
                'COPY manta (_key, _value, _etag, _mtime, _vnode, dirname, name, owner, objectid, type) FROM STDIN',
              ),
            ),
          );
        }
      });
    }),
  );
  pending.clear();
  return rows;
}

function groupByDc(nodes: BulkNode[]): Map<string, BulkNode[]> {
  const m = new Map<string, BulkNode[]>();
  for (const n of nodes) m.set(n.datacenter, [...(m.get(n.datacenter) ?? []), n]);
  return m;
}

function byId(nodes: BulkNode[], id: string): BulkNode {
  return nodes.find((n) => n.id === id)!;
}

/** As the picker would: datacenters round-robin from a shuffled order, never a node twice. */
function pickSharks(byDc: Map<string, BulkNode[]>, copies: number, r: SeededRandom): Shark[] {
  const dcs = [...byDc.keys()];
  const start = r.int(dcs.length);
  const out: Shark[] = [];
  const used = new Set<string>();
  for (let i = 0; out.length < copies && i < copies * dcs.length * 4; i++) {
    const dc = dcs[(start + i) % dcs.length]!;
    const free = byDc.get(dc)!.filter((n) => !used.has(n.id));
    if (free.length === 0) continue;
    const n = free[r.int(free.length)]!;
    used.add(n.id);
    out.push({ datacenter: n.datacenter, manta_storage_id: n.id });
  }
  return out;
}
