/**
 * GC against an adversary (DESIGN.md invariant 1; issue 12 "must be true"): seeded random
 * histories through the front door and the metadata tier, with the daily pipeline (snapshot →
 * unpack → gc, and the tombstone purge) interleaved over simulated days (test/helpers/gc-world.ts).
 *
 * The adversary: puts (some zero-byte), overwrites, deletes, snaplinks within a directory, across
 * directories (so across shards) and across accounts (from the other account's /public); moves
 * (a link, then the source deleted); "walking" links made between two shards' snapshots, so the
 * only reference is in neither snapshot; stale links (the source read, then deleted, then the link
 * written from what was read: the front door's read-then-write race) written right after the
 * day's last snapshot, before gc's re-check; front-door operations running during the snapshots,
 * the unpack and gc; a storage node down for a day; a malformed delete record.
 *
 * After every gc run: every live record's copies exist, outside tombstone, on every node the
 * record names; and no record referenced a copy after the instant it moved (every MOVE into a
 * tombstone is recorded; a live record or a newer delete record naming it is a violation).
 * Every tombstone day older than the retention is gone from every node that answered.
 * After the history stops and grace + 2 days pass: every copy no live record references is in
 * tombstone or purged (0 leaked), and the delete log holds nothing gc could have removed (only
 * the malformed record, which gc reports and leaves).
 *
 * Seeds and sizes: REMORA_GC_SEEDS=1,2,… or 1-20 (default 1,2,3: grace 0, 1 and 2 days), REMORA_GC_DAYS (days with
 * operations, default 3), REMORA_GC_OPS (quiet-phase operations a day, default 20). The seed
 * fixes every choice: the operations between pipeline runs, and, during a run, four streams of
 * their own (before each snapshot, between two snapshots, beside the run, racing gc's tasks),
 * each with its own generator and its own copy of the keys, merged at the end of the day. What
 * the seed does not fix: which index shard the executor snapshots first (a walk depends on it),
 * where a concurrent operation lands against a snapshot or gc's re-check, and the rare operation
 * a concurrent one makes fail (counted as refused). A failure names the seed and the day. Larger: `REMORA_GC_SEEDS=1-20 REMORA_GC_DAYS=8
 * REMORA_GC_OPS=80 npm run test:only -- test/gc-random.test.ts`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SeededRandom } from '../src/core/clock.js';
import { addDays, DAY_MS, dayOf, dayStartMs } from '../src/core/days.js';
import { isRemoraError } from '../src/core/errors.js';
import { linkValue } from '../src/frontdoor/records.js';
import { gcJob } from '../src/jobs/gc/gc.job.js';
import { tombstonePurgeJob } from '../src/jobs/tombstone-purge/tombstone-purge.job.js';
import { purgeCutoff } from '../src/jobs/tombstone-purge/tombstone-purge.rules.js';
import { unpackJob } from '../src/jobs/unpack/unpack.job.js';
import { DELETE_LOG_BUCKET, MANTA_BUCKET } from '../src/metadata/buckets.js';
import { insertRowIfAbsent, listAll } from '../src/metadata/moray.repository.js';
import type { MantaObjectValue, MantaValue } from '../src/metadata/types.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import type { RunRow } from '../src/pipeline/runs.repository.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { openWorld, simSnapshotJob, type World } from './helpers/gc-world.js';
import { FAST } from './helpers/pipeline.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

function seedsFrom(s: string): number[] {
  return s.split(',').flatMap((part) => {
    const m = /^(\d+)-(\d+)$/.exec(part.trim());
    if (!m) return [Number(part)];
    const out: number[] = [];
    for (let i = Number(m[1]); i <= Number(m[2]); i++) out.push(i);
    return out;
  });
}
const SEEDS = seedsFrom(process.env.REMORA_GC_SEEDS ?? '1,2,3');
const DAYS = Number(process.env.REMORA_GC_DAYS ?? 3);
const OPS = Number(process.env.REMORA_GC_OPS ?? 20);
const START = Date.parse('2031-03-01T00:00:00Z');

const totals = {
  histories: 0,
  operations: 0,
  failedOperations: 0,
  byKind: {} as Record<string, number>,
  gcRuns: 0,
  copiesTombstoned: 0,
  recheckCancelled: 0,
  notProvable: 0,
  copiesLeftNodeDown: 0,
  filesPurged: 0,
  referencedRemoved: 0,
  leaked: 0,
  deleteRecordsLeft: 0,
  malformedKept: 0,
  /** Per history: seed, grace and retention days, the day a node was down. */
  configs: [] as string[],
};

interface Ctx {
  w: World;
  rnd: SeededRandom;
  /** Keys the adversary believes exist (login form: /alice/stor/d1/o3). */
  keys: Set<string>;
  dirs: string[];
  /** New keys are `<dir>/<prefix><n>`: each stream of operations has its own prefix. */
  prefix: string;
  n: number;
  /** Stale links waiting for the day's last snapshot: [new key, the source's value]. */
  stale: { key: string; owner: string; value: MantaObjectValue }[];
  day: string;
  violations: string[];
  /** Operations started during a snapshot, awaited before the day's checks. */
  pending: Promise<void>[];
  /** Index shards snapshotted so far today. */
  indexSnapshotted: number;
}

const loginOf = (p: string) => p.split('/')[1]!;
function keyOf(c: Ctx, p: string): string {
  const a = c.w.accounts.find((x) => x.login === loginOf(p))!;
  return `/${a.uuid}${p.slice(a.login.length + 1)}`;
}
const clientOf = (c: Ctx, p: string) => c.w.accounts.find((x) => x.login === loginOf(p))!.client;
const shardOf = (c: Ctx, p: string) => c.w.tier.route(MANTA_BUCKET, keyOf(c, p)).shard.name;

function pickKey(c: Ctx, filter: (k: string) => boolean = () => true): string | undefined {
  const ks = [...c.keys].filter(filter);
  return ks.length === 0 ? undefined : c.rnd.pick(ks);
}
const newKey = (c: Ctx, dir: string) => `${dir}/${c.prefix}${c.n++}`;

/**
 * A stream of operations that runs during the pipeline: its own generator and its own copy of the
 * keys, so its choices depend on the seed only, never on how it interleaves with the others. Its
 * changes to the keys join the adversary's at the end of the day (mergeStream).
 */
function stream(c: Ctx, prefix: string, seed: number): Ctx {
  return { ...c, rnd: new SeededRandom(seed), keys: new Set(c.keys), prefix, n: 0 };
}

function mergeStream(c: Ctx, frozen: ReadonlySet<string>, s: Ctx): void {
  for (const k of frozen) if (!s.keys.has(k)) c.keys.delete(k);
  for (const k of s.keys) if (!frozen.has(k)) c.keys.add(k);
}

/** Operations a stream makes during the pipeline. */
const CONCURRENT_OPS = 6;
const DURING_GC_OPS = 4;
const ownDirs = (c: Ctx, login: string) => c.dirs.filter((d) => loginOf(d) === login);

function body(c: Ctx): Buffer {
  const size = c.rnd.next() < 0.1 ? 0 : 1 + c.rnd.int(3000);
  return Buffer.from(
    crypto.createHash('sha256').update(`${c.n}-${size}`).digest('hex').repeat(50).slice(0, size),
  );
}

async function op(c: Ctx, kind: string, fn: () => Promise<void>): Promise<void> {
  totals.operations++;
  totals.byKind[kind] = (totals.byKind[kind] ?? 0) + 1;
  try {
    await fn();
  } catch (err) {
    // A concurrent operation got there first (gone, or a directory): the adversary moves on.
    if (!isRemoraError(err)) throw err;
    totals.failedOperations++;
  }
}

/** One random front-door operation (safe to run concurrently with anything). */
async function frontDoorOp(c: Ctx): Promise<void> {
  const r = c.rnd.next();
  const dir = c.rnd.pick(c.dirs);
  if (r < 0.3 || c.keys.size < 4) {
    const k = newKey(c, dir);
    return op(c, 'put', async () => {
      await clientOf(c, k).put(k, body(c));
      c.keys.add(k);
    });
  }
  if (r < 0.45) {
    const k = pickKey(c);
    if (!k) return;
    return op(c, 'overwrite', () =>
      clientOf(c, k)
        .put(k, body(c))
        .then(() => undefined),
    );
  }
  if (r < 0.6) {
    const k = pickKey(c);
    if (!k) return;
    c.keys.delete(k);
    return op(c, 'delete', () => clientOf(c, k).delete(k));
  }
  if (r < 0.85) {
    // A link in this account's namespace, from its own key or from the other account's /public.
    const login = c.rnd.pick(c.w.accounts).login;
    const cross = c.rnd.next() < 0.3;
    const src = pickKey(c, (k) =>
      cross ? loginOf(k) !== login && k.includes('/public/') : loginOf(k) === login,
    );
    if (!src) return;
    const sameDir = c.rnd.next() < 0.3;
    const d = sameDir && !cross ? src.slice(0, src.lastIndexOf('/')) : c.rnd.pick(ownDirs(c, login));
    const k = newKey(c, d);
    // Half the cross-account links outlive their source: the copies stay under the creator's
    // directory while only the other account's record names them.
    const handOver = cross && c.rnd.next() < 0.5;
    const kind = handOver
      ? 'link-cross-account-source-deleted'
      : cross
        ? 'link-cross-account'
        : sameDir
          ? 'link-same-dir'
          : 'link-other-dir';
    return op(c, kind, async () => {
      await clientOf(c, k).link(k, src);
      c.keys.add(k);
      if (handOver) {
        c.keys.delete(src);
        await clientOf(c, src).delete(src);
      }
    });
  }
  // A move: link elsewhere, then delete the source.
  const src = pickKey(c);
  if (!src) return;
  const k = newKey(c, c.rnd.pick(ownDirs(c, loginOf(src))));
  return op(c, 'move', async () => {
    await clientOf(c, k).link(k, src);
    c.keys.add(k);
    c.keys.delete(src);
    await clientOf(c, src).delete(src);
  });
}

/** Read a source, delete it, and keep what was read to write a link from it later. */
async function staleLinkRead(c: Ctx): Promise<void> {
  const src = pickKey(c);
  if (!src) return;
  const row = await c.w.tier.getObject<MantaValue>('manta', keyOf(c, src));
  if (row?.value.type !== 'object') return;
  const k = newKey(c, c.rnd.pick(ownDirs(c, loginOf(src))));
  const owner = c.w.accounts.find((a) => a.login === loginOf(k))!.uuid;
  await op(c, 'stale-link', async () => {
    c.keys.delete(src);
    await clientOf(c, src).delete(src);
    c.stale.push({ key: k, owner, value: row.value as MantaObjectValue });
  });
}

async function writeStaleLinks(c: Ctx): Promise<void> {
  for (const s of c.stale.splice(0)) {
    const key = keyOf(c, s.key);
    await c.w.tier.putObject('manta', key, linkValue(s.value, key, s.owner, c.w.clock.now()) as never);
    c.keys.add(s.key);
  }
}

/**
 * Between two index shards' snapshots: a link made on the shard already snapshotted, from a
 * source on the one not yet snapshotted, then the source deleted. The reference is in neither
 * snapshot; the source's delete record is, newer than the earliest snapshot.
 */
async function walk(c: Ctx, snapshotted: string): Promise<void> {
  const src = pickKey(c, (k) => shardOf(c, k) !== snapshotted);
  const dir = c.dirs.find(
    (d) => loginOf(d) === (src ? loginOf(src) : '') && shardOf(c, `${d}/x`) === snapshotted,
  );
  if (!src || !dir) return;
  const k = newKey(c, dir);
  await op(c, 'walk', async () => {
    await clientOf(c, k).link(k, src);
    c.keys.add(k);
    c.keys.delete(src);
    await clientOf(c, src).delete(src);
  });
}

/** The job, calling `onTask` as each of its tasks starts. */
function duringGc<P, T, O>(job: JobDefinition<P, T, O>, onTask: () => void): JobDefinition<P, T, O> {
  return {
    ...job,
    runTask: (ctx) => {
      onTask();
      return job.runTask(ctx);
    },
  };
}

async function liveObjects(w: World): Promise<MantaObjectValue[]> {
  const rows = (
    await Promise.all(w.tier.indexShards.map((s) => listAll<MantaValue>(s.pool, MANTA_BUCKET)))
  ).flat();
  return rows.map((r) => r.value).filter((v): v is MantaObjectValue => v.type === 'object');
}

async function deleteRecords(w: World) {
  const rows = await Promise.all(
    w.tier.indexShards.map((s) => listAll<Record<string, unknown>>(s.pool, DELETE_LOG_BUCKET)),
  );
  return rows.flat();
}

/** After a gc run: every live record's copies in place; nothing referenced a copy after it moved. */
async function checkAfterGc(c: Ctx, movesFrom: number): Promise<void> {
  const live = await liveObjects(c.w);
  for (const v of live)
    for (const s of v.sharks) {
      const f = path.join(c.w.nodes.get(s.manta_storage_id)!.root, v.creator || v.owner, v.objectId);
      if (!fs.existsSync(f))
        c.violations.push(`${c.day}: ${v.key} names ${s.manta_storage_id}, whose copy is gone`);
    }
  const moved = c.w.moves.slice(movesFrom);
  if (moved.length === 0) return;
  const names = (v: { objectId?: unknown; sharks?: unknown }, oid: string, node: string) =>
    v.objectId === oid &&
    Array.isArray(v.sharks) &&
    v.sharks.some((s: { manta_storage_id?: string }) => s.manta_storage_id === node);
  const dels = await deleteRecords(c.w);
  for (const m of moved) {
    const ref = live.find((v) => names(v, m.objectId, m.node));
    if (ref) c.violations.push(`${c.day}: ${m.node} ${m.objectId} moved while ${ref.key} references it`);
    const later = dels.find((d) => d.mtime > m.at && names(d.value, m.objectId, m.node));
    if (later)
      c.violations.push(
        `${c.day}: ${m.node} ${m.objectId} moved; ${later.key} shows a record named it after`,
      );
  }
}

async function history(seed: number): Promise<void> {
  const rnd = new SeededRandom(seed);
  // Every grace the test knows (0: the re-check alone guards; 1, 2: the next snapshots too) and
  // retention, in turn by seed, so any three consecutive seeds cover them all.
  const graceDays = (seed - 1) % 3;
  const retentionDays = 1 + (seed % 3);
  const w = await openWorld(START + seed * 100 * DAY_MS + 300_000, seed, ['alice', 'bob']);
  const c: Ctx = {
    w,
    rnd,
    keys: new Set(),
    dirs: [],
    prefix: 'o',
    n: 0,
    stale: [],
    day: '',
    violations: [],
    pending: [],
    indexSnapshotted: 0,
  };
  let world = w;
  let background = false;
  /** Today's streams of operations during the pipeline (undefined on a quiet day or a node's down day). */
  let today:
    { snap: Ctx; walks: Ctx; bg: Ctx; gc: Ctx; gcStarted: boolean; batch: Promise<void>[] } | undefined;
  try {
    for (const a of w.accounts)
      for (const d of ['stor/d0', 'stor/d1', 'stor/d2/e', 'public/p0', 'public/p1']) {
        await a.client.mkdirp(`/${a.login}/${d}`);
        c.dirs.push(`/${a.login}/${d}`);
      }
    // Both index shards hold directories of both accounts (keys hash by directory).
    assert.equal(
      new Set(c.dirs.map((d) => shardOf(c, `${d}/x`))).size,
      2,
      `seed ${seed}: directories on both shards`,
    );
    const jobs = [
      simSnapshotJob(() => world, {
        before: async () => {
          // Operations during the snapshot (not awaited here: they race its transaction).
          if (!today) return;
          await Promise.all(today.batch.splice(0));
          for (let i = 0; i < 3; i++) today.batch.push(frontDoorOp(today.snap));
          c.pending.push(...today.batch);
        },
        after: async (shard, i) => {
          // Between the two index shards' snapshots: a walking link.
          const first = w.tier.shard(shard).role === 'index' && c.indexSnapshotted++ === 0;
          if (first && today && today.walks.rnd.next() < 0.8) await walk(today.walks, shard);
          // After the day's last snapshot, before gc's re-check: the stale links.
          if (i % w.config.shards.length === w.config.shards.length - 1) await writeStaleLinks(c);
        },
      }),
      unpackJob({ partitions: 2 }),
      duringGc(
        gcJob({
          graceMs: graceDays * DAY_MS,
          objectsPerSecondPerNode: 10_000,
          bytesPerSecondPerNode: 1024 ** 3,
        }),
        () => {
          // Operations racing gc's scan, re-check and moves (once a day, from its first task).
          if (!today || today.gcStarted) return;
          today.gcStarted = true;
          const s = today.gc;
          c.pending.push(
            (async () => {
              for (let i = 0; i < DURING_GC_OPS; i++) await frontDoorOp(s);
            })(),
          );
        },
      ),
      tombstonePurgeJob({ retentionDays, maxAttempts: 1 }),
    ];
    const quietDays = graceDays + 2;
    totals.configs.push(`${seed}:g${graceDays}r${retentionDays}`);
    const downDay = DAYS > 1 ? 1 + rnd.int(DAYS - 1) : -1;
    const downNode = rnd.pick([...w.nodes.keys()]);
    await withPipelineSession(
      w.config,
      w.tier,
      {
        jobs: () => jobs,
        settings: { ...FAST, partitions: 2 },
        clock: w.clock,
        store: w.store,
        internalToken: TEST_INTERNAL_TOKEN,
        log: () => {},
      },
      async (rt, co) => {
        for (let k = 0; k < DAYS + quietDays; k++) {
          const day = addDays(dayOf(START + seed * 100 * DAY_MS), k);
          c.day = `seed ${seed} ${day} (grace ${graceDays}, retention ${retentionDays})`;
          w.clock.jumpTo(dayStartMs(day) + 300_000);
          await w.beat();
          const active = k < DAYS;
          if (active) {
            for (let i = 0; i < OPS; i++) {
              if (rnd.next() < 0.1) await staleLinkRead(c);
              else await frontDoorOp(c);
            }
            if (k === 0) {
              // A malformed delete record (no owner): an event every run, never an action.
              const oid = crypto.randomUUID();
              const shard = w.tier.indexShards[0]!;
              const v = {
                objectId: oid,
                owner: '',
                type: 'object',
                sharks: [{ manta_storage_id: downNode }],
              };
              await insertRowIfAbsent(
                shard.pool,
                DELETE_LOG_BUCKET,
                `/${oid}/${w.clock.now() - DAY_MS}`,
                JSON.stringify(v),
                w.clock.now() - DAY_MS,
                null,
              );
            }
          }
          const down = k === downDay;
          if (down) await w.stopNode(downNode);
          const movesFrom = w.moves.length;
          c.indexSnapshotted = 0;
          background = active && !down;
          const frozen = new Set(c.keys);
          const base = seed * 100_000 + k * 10;
          today = background
            ? {
                snap: stream(c, `s${k}-`, base + 1),
                walks: stream(c, `w${k}-`, base + 2),
                bg: stream(c, `b${k}-`, base + 3),
                gc: stream(c, `g${k}-`, base + 4),
                gcStarted: false,
                batch: [],
              }
            : undefined;
          const bgStream = today?.bg;
          const bg = (async () => {
            for (let i = 0; bgStream && i < CONCURRENT_OPS; i++) {
              await frontDoorOp(bgStream);
              await new Promise((r) => setTimeout(r, 25));
            }
          })();
          let runs: RunRow[];
          try {
            await scheduleDay(rt, day, 'test');
            runs = await driveDays(rt, co, [day], { timeoutMs: 120_000 });
          } finally {
            background = false;
            await bg;
            await Promise.all(c.pending.splice(0));
          }
          if (today) for (const x of [today.snap, today.walks, today.bg, today.gc]) mergeStream(c, frozen, x);
          today = undefined;
          if (down) await w.startNode(downNode);
          const gc = runs.find((r) => r.job === 'gc');
          assert.equal(
            gc?.state,
            'succeeded',
            `${c.day}: gc ${gc?.state} ${gc?.error ?? ''}\n${runs.map((r) => `${r.job}:${r.partitionKey}:${r.state}`).join('\n')}`,
          );
          const gcc = gc.report!.counters;
          totals.gcRuns++;
          totals.copiesTombstoned += gcc.copiesTombstoned ?? 0;
          totals.recheckCancelled += gcc.recheckCancelled ?? 0;
          totals.notProvable += gcc.notProvableYet ?? 0;
          totals.copiesLeftNodeDown +=
            (gcc.copiesLeftNodeUnreachable ?? 0) + (gcc.copiesLeftAddressUnknown ?? 0);
          await checkAfterGc(c, movesFrom);
          const cutoff = purgeCutoff(day, retentionDays);
          for (const r of runs.filter((x) => x.job === 'tombstone-purge')) {
            const node = r.partitionKey.slice(day.length + '/node='.length);
            if (node === downNode && down) {
              assert.equal(r.state, 'failed', `${c.day}: the purge of a node down fails`);
              continue;
            }
            assert.equal(r.state, 'succeeded', `${c.day}: purge ${node}: ${r.error ?? ''}`);
            totals.filesPurged += r.report!.counters.filesFreed ?? 0;
            const t = path.join(w.nodes.get(node)!.root, 'tombstone');
            for (const d of fs.readdirSync(t))
              assert.ok(d > cutoff, `${c.day}: ${node} still holds tombstone ${d} (cutoff ${cutoff})`);
          }
        }
      },
    );
    totals.referencedRemoved += c.violations.length;
    assert.deepEqual(c.violations, [], `seed ${seed}: referenced copies removed`);

    // The history stopped grace + 2 days ago: nothing unreferenced is left in place.
    const referenced = new Set<string>();
    for (const v of await liveObjects(w))
      for (const s of v.sharks) referenced.add(`${s.manta_storage_id}/${v.creator || v.owner}/${v.objectId}`);
    const leaked: string[] = [];
    for (const [id, n] of w.nodes)
      for (const dir of fs.readdirSync(n.root).filter((x) => /^[0-9a-f-]{36}$/.test(x)))
        for (const oid of fs.readdirSync(path.join(n.root, dir)))
          if (!referenced.has(`${id}/${dir}/${oid}`)) leaked.push(`${id}/${dir}/${oid}`);
    const left = (await deleteRecords(w)).filter((d) => (d.value as { owner?: string }).owner !== '');
    const malformed = (await deleteRecords(w)).length - left.length;
    totals.leaked += leaked.length;
    totals.deleteRecordsLeft += left.length;
    totals.malformedKept += malformed;
    if (process.env.REMORA_GC_DEBUG && left.length > 0) {
      const live = await liveObjects(w);
      for (const d of left)
        process.stderr.write(
          `LEFT ${d.key} mtime ${new Date(d.mtime).toISOString()} ${JSON.stringify(d.value)}\n  live: ${JSON.stringify(live.filter((v) => v.objectId === (d.value as { objectId?: string }).objectId).map((v) => v.key))}\n`,
        );
    }
    assert.deepEqual(leaked, [], `seed ${seed}: copies nothing references, still in place`);
    assert.deepEqual(
      left.map((d) => d.key),
      [],
      `seed ${seed}: delete records gc could have removed`,
    );
    assert.equal(malformed, 1, 'the malformed record is reported and left, never acted on');
    totals.histories++;
  } finally {
    background = false;
    world = w;
    await w.close();
  }
}

test(
  `gc against an adversary: seeds ${SEEDS.join(',')}, ${DAYS} days of ${OPS}+ operations`,
  { timeout: 600_000 },
  async () => {
    for (const seed of SEEDS) await history(seed);
    process.stdout.write(
      `gc-random: ${totals.histories} histories (seed:grace,retention ${totals.configs.join(' ')}), ${totals.operations} operations (${totals.failedOperations} refused by a concurrent one) ` +
        `${JSON.stringify(totals.byKind)}; ${totals.gcRuns} gc runs, ${totals.copiesTombstoned} copies tombstoned, ` +
        `${totals.recheckCancelled} re-check cancellations, ${totals.notProvable} not provable yet, ` +
        `${totals.copiesLeftNodeDown} copies left for a node down, ${totals.filesPurged} files purged; ` +
        `referenced copies removed: ${totals.referencedRemoved}, leaked: ${totals.leaked}, ` +
        `delete records left: ${totals.deleteRecordsLeft} (malformed kept: ${totals.malformedKept})\n`,
    );
  },
);
