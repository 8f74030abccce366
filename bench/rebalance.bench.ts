/**
 * Rebalance mover throughput between loopback storage nodes, beside a baseline measured in the
 * same run: plain HTTP GET of the object's other copy + PUT to another node of the same bytes,
 * same concurrency, no metadata work. Figures: objects/s and MB/s, and their ratios. The two
 * alternate over REMORA_BENCH_REBALANCE_ROUNDS slices of the objects (default 4; baseline first in
 * even rounds), so neither gets the cold start nor a calmer moment of the shared machine alone.
 * Target (issue 16): ≥ 0.9 of the baseline for both sizes; both ratios are printed, with a profile
 * of the per-object storage requests measured in the same run (GET + PUT, and the tombstone that
 * the baseline does not pay: the single MOVE, and the batched request the runner uses).
 *
 * The four storage nodes run one process each (test/helpers/storage-node-child.ts), as on a deployment
 * where they are other machines; REMORA_BENCH_REBALANCE_NODES=inline runs them in this process
 * (the layout of the figures before 2026-12-02). Printed with the rates: the CPU per object of
 * this process (the runner, or the baseline's client), of PostgreSQL and of the nodes, for both,
 * and their ratios (all processes; the nodes alone — what a storage node pays per object moved).
 *   REMORA_BENCH_REBALANCE_SMALL (default 2000 objects of 4 KiB), REMORA_BENCH_REBALANCE_LARGE
 *   (default 24 objects of 16 MiB), REMORA_BENCH_REBALANCE_CONCURRENCY (default 8),
 *   REMORA_BENCH_REBALANCE_BATCH (objects per claim, fixed; default the runner's: sized by time,
 *   8 to 64 × concurrency, and 1 GiB),
 *   REMORA_BENCH_REBALANCE_STEP_CPU=1 (also the CPU per object of each step).
 * Also printed: the rebalance's time by step of its claim batches (from the runner's onStep seam), and how
 * busy the copy slots were on each side (copies in flight over concurrency × wall time, and the share
 * of the wall time with none in flight: the runner's metadata work not overlapped by any copy).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { cpuOfTree, ensureBenchPostgres } from './support.js';
import { SeededRandom } from '../src/core/clock.js';
import type { Deployment } from '../src/deployment/deployment.js';
import { objectValue } from '../src/frontdoor/records.js';
import { RebalancePlanner } from '../src/jobs/rebalance/rebalance.plan.js';
import { insertJob, insertObjects, migrateRebalance } from '../src/jobs/rebalance/rebalance.repository.js';
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BATCH_PER_SLOT,
  DEFAULT_BATCH_TARGET_MS,
  MAX_BATCH_PER_SLOT,
  runJob,
} from '../src/jobs/rebalance/rebalance.run.js';
import { eachLimit } from '../src/core/concurrency.js';
import type { ObjectGroup } from '../src/jobs/rebalance/rebalance.types.js';
import type { StorageClient } from '../src/storage/storage-client.js';

const SRC = { manta_storage_id: '1.stor.dc1.remora.local', datacenter: 'dc1' };
const OTHER = { manta_storage_id: '2.stor.dc2.remora.local', datacenter: 'dc2' };
const DEST = '3.stor.dc3.remora.local';
const BASELINE_DEST = '4.stor.dc3.remora.local';
const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('base64');

const ratios: string[] = [];
const INLINE_NODES = process.env.REMORA_BENCH_REBALANCE_NODES === 'inline';
const STEP_CPU = process.env.REMORA_BENCH_REBALANCE_STEP_CPU === '1';
const ROUNDS = Number(process.env.REMORA_BENCH_REBALANCE_ROUNDS ?? 4);

interface Case {
  label: string;
  count: number;
  bytes: number;
}

export default async function bench(): Promise<void> {
  const concurrency = Number(process.env.REMORA_BENCH_REBALANCE_CONCURRENCY ?? 8);
  const batch = process.env.REMORA_BENCH_REBALANCE_BATCH;
  const batchSize = batch ? Number(batch) : undefined;
  const cases: Case[] = [
    { label: '4 KiB', count: Number(process.env.REMORA_BENCH_REBALANCE_SMALL ?? 2000), bytes: 4096 },
    {
      label: '16 MiB',
      count: Number(process.env.REMORA_BENCH_REBALANCE_LARGE ?? 24),
      bytes: 16 * 1024 * 1024,
    },
  ];
  const stop = await ensureBenchPostgres();
  const { startTestDeployment } = await import('../test/helpers/deployment.js');
  const { d, cleanup } = await startTestDeployment({
    storage: {
      nodes: [
        SRC,
        OTHER,
        { manta_storage_id: DEST, datacenter: 'dc3' },
        { manta_storage_id: BASELINE_DEST, datacenter: 'dc3' },
      ].map((n) => ({ id: n.manta_storage_id, datacenter: n.datacenter })),
      heartbeatIntervalMs: 1000,
    },
  });
  try {
    await migrateRebalance(d.tier.control);
    const nodes = INLINE_NODES ? undefined : await startNodeProcesses(d);
    try {
      const url = (id: string) => nodes?.urls.get(id) ?? d.nodes.get(id)?.url;
      const cpuNow = () => {
        const c = cpuOfTree({ nodes: nodes?.pids ?? [] });
        return { self: c.self, pg: c.children, nodes: c.named.nodes ?? 0 };
      };
      console.log(
        `storage nodes: ${nodes ? 'one process each (as on a deployment: other machines)' : 'in this process'}`,
      );
      for (const c of cases) await runCase(d, url, cpuNow, c, concurrency, batchSize);
    } finally {
      nodes?.stop();
    }
    console.log(`rebalance ratios (rebalance / same-run GET+PUT baseline): ${ratios.join(', ')}`);
  } finally {
    await cleanup();
    await stop();
  }
}

/**
 * Copies in flight (a GET started, its PUT not yet answered), integrated over time: how busy the
 * copy slots are, and how long none is in flight (the runner's metadata steps alone).
 */
class SlotMeter {
  private n = 0;
  private since = performance.now();
  /** Slot-milliseconds with a copy in flight, and milliseconds with none. */
  busy = 0;
  idle = 0;
  private tick(): void {
    const now = performance.now();
    this.busy += this.n * (now - this.since);
    if (this.n === 0) this.idle += now - this.since;
    this.since = now;
  }
  start(): void {
    this.tick();
    this.n++;
  }
  end(): void {
    this.tick();
    this.n--;
  }
  read(): { busy: number; idle: number } {
    this.tick();
    return { busy: this.busy, idle: this.idle };
  }
}

/**
 * A storage client with its copies counted on `m`: the baseline's GET then PUT, and the runner's
 * pull requests (each counts as the copies the node fetches at once, for as long as the request
 * takes: an approximation, the node's lanes drain at the end); every other call unchanged.
 */
function metered(storage: StorageClient, m: SlotMeter): StorageClient {
  const s = Object.create(storage) as StorageClient;
  s.get = (...a: Parameters<StorageClient['get']>) => {
    m.start();
    return storage.get(...a).catch((err: unknown) => {
      m.end();
      throw err;
    });
  };
  s.put = (...a: Parameters<StorageClient['put']>) => storage.put(...a).finally(() => m.end());
  s.pull = (...a: Parameters<StorageClient['pull']>) => {
    const n = Math.min(a[1].length, a[2]?.concurrency ?? 4);
    for (let i = 0; i < n; i++) m.start();
    return storage.pull(...a).finally(() => {
      for (let i = 0; i < n; i++) m.end();
    });
  };
  return s;
}

interface Cpu {
  self: number;
  pg: number;
  nodes: number;
}
const zero = (): Cpu => ({ self: 0, pg: 0, nodes: 0 });
const addInto = (into: Cpu, c0: Cpu, c1: Cpu) => {
  into.self += c1.self - c0.self;
  into.pg += c1.pg - c0.pg;
  into.nodes += c1.nodes - c0.nodes;
};

async function runCase(
  d: Deployment,
  url: (id: string) => string | undefined,
  cpuNow: () => Cpu,
  c: Case,
  concurrency: number,
  batchSize?: number,
): Promise<void> {
  const owner = crypto.randomUUID();
  const groups = await loadObjects(d, url, owner, c);
  // Rounds alternate the baseline and the rebalance over slices of the objects (baseline first in
  // even rounds, second in odd ones), so a change of the shared machine's load falls on both.
  const rounds = Math.max(1, Math.min(ROUNDS, Math.floor(c.count / 8)));
  const perRound = Math.ceil(groups.length / rounds);
  let base = 0;
  let moved = 0;
  const roundRatios: number[] = [];
  // Where the rebalance's time goes, per claim batch, from the runner's step seam: claim + read
  // (and the previous batch's late-link read + outcome update), copy, update, re-read + tombstone.
  const phases = { 'outcomes+claim+read': 0, copy: 0, update: 0, 'reread+tombstone': 0 };
  const stepCpu: Record<string, Cpu> = {};
  const phaseOf = {
    read: 'outcomes+claim+read',
    copied: 'copy',
    updated: 'update',
    tombstoned: 'reread+tombstone',
  } as const;
  const complete = { n: 0 };
  const claims: number[] = []; // objects per claim batch, in order
  // CPU (ms) spent by this process (the runner or the baseline's client), PostgreSQL, the nodes.
  const cpu = { baseline: zero(), rebalance: zero() };
  // Copy slots: slot-ms busy and ms with no copy in flight, per side.
  const slots = { baseline: { busy: 0, idle: 0 }, rebalance: { busy: 0, idle: 0 } };
  const meter = new SlotMeter();
  const addSlots = (which: keyof typeof slots, m0: { busy: number; idle: number }) => {
    const m1 = meter.read();
    slots[which].busy += m1.busy - m0.busy;
    slots[which].idle += m1.idle - m0.idle;
  };
  // Both sides' copies go through one metered client (the baseline's and the runner's).
  const meteredStorage = metered(d.storage, meter);
  const addCpu = (which: keyof typeof cpu, c0: Cpu) => addInto(cpu[which], c0, cpuNow());
  const baseline = async (slice: ObjectGroup[]) => {
    const c0 = cpuNow();
    const m0 = meter.read();
    const t0 = performance.now();
    await eachLimit(slice, concurrency, async (g) => {
      // From OTHER: a round's rebalance may already have moved SRC's copy to tombstone.
      const got = await meteredStorage.get(url(OTHER.manta_storage_id)!, owner, g.objectId);
      await meteredStorage.put(url(BASELINE_DEST)!, owner, g.objectId, got.stream, {
        contentLength: g.contentLength,
      });
    });
    const s = (performance.now() - t0) / 1000;
    addCpu('baseline', c0);
    addSlots('baseline', m0);
    return s;
  };
  const rebalance = async (slice: ObjectGroup[], round: number) => {
    const jobId = await planAll(d, slice, `${c.label} round ${round}`);
    const c0 = cpuNow();
    const m0 = meter.read();
    let lastCpu = c0;
    const t1 = performance.now();
    let last = t1;
    const totals = await runJob(
      { tier: d.tier, storage: meteredStorage, nodeUrl: url },
      {
        jobId,
        concurrency,
        ...(batchSize ? { batchSize } : {}),
        onOutcomes: (outs) => void claims.push(outs.length),
        onStep: (step) => {
          const now = performance.now();
          phases[phaseOf[step]] += now - last;
          last = now;
          if (STEP_CPU) {
            const now = cpuNow();
            addInto((stepCpu[phaseOf[step]] ??= zero()), lastCpu, now);
            lastCpu = now;
          }
          return Promise.resolve();
        },
      },
    );
    phases['outcomes+claim+read'] += performance.now() - last; // the last batch's outcomes, the empty claim
    complete.n += totals.outcomes.complete ?? 0;
    const s = (performance.now() - t1) / 1000;
    addCpu('rebalance', c0);
    addSlots('rebalance', m0);
    return s;
  };
  for (let r = 0; r < rounds; r++) {
    const slice = groups.slice(r * perRound, (r + 1) * perRound);
    if (slice.length === 0) break;
    let b: number;
    let m: number;
    if (r % 2 === 0) {
      b = await baseline(slice);
      m = await rebalance(slice, r);
    } else {
      m = await rebalance(slice, r);
      b = await baseline(slice);
    }
    base += b;
    moved += m;
    roundRatios.push(b / m);
  }
  if (complete.n !== c.count) throw new Error(`rebalance bench: ${complete.n} of ${c.count} complete`);
  if (c.count === 0) return;
  const mb = (c.count * c.bytes) / 1024 / 1024;
  const line = (name: string, s: number) =>
    `${name.padEnd(9)} ${(c.count / s).toFixed(1).padStart(8)} objects/s ${(mb / s).toFixed(1).padStart(8)} MB/s`;
  console.log(
    `rebalance ${c.label} × ${c.count} (concurrency ${concurrency}, ${roundRatios.length} alternating rounds):`,
  );
  console.log(`  ${line('baseline', base)}   (plain GET + PUT, no metadata)`);
  console.log(
    `  ${line('rebalance', moved)}   (copy + MD5 check + etag-guarded update + tombstone + progress)`,
  );
  const ratio = base / moved;
  console.log(`  ratio ${ratio.toFixed(2)} (target ≥ 0.9: ${ratio >= 0.9 ? 'met' : 'NOT met'})`);
  ratios.push(`${c.label} ${ratio.toFixed(2)}`);
  const sorted = [...roundRatios].sort((a, b) => a - b);
  console.log(
    `  per round ${roundRatios.map((x) => x.toFixed(2)).join(' ')} (median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)})`,
  );
  const us = (ms: number) => `${((1000 * ms) / c.count).toFixed(0)} µs`;
  const total = (x: Cpu) => x.self + x.pg + x.nodes;
  const perObject = (x: Cpu) =>
    `${us(total(x))} = this process ${us(x.self)} + PostgreSQL ${us(x.pg)} + nodes ${us(x.nodes)}`;
  console.log(`  CPU per object, baseline:  ${perObject(cpu.baseline)}`);
  console.log(`  CPU per object, rebalance: ${perObject(cpu.rebalance)}`);
  if (total(cpu.rebalance) > 0)
    console.log(
      `  CPU ratio ${(total(cpu.baseline) / total(cpu.rebalance)).toFixed(2)} (all processes); nodes only ` +
        `${cpu.rebalance.nodes > 0 ? (cpu.baseline.nodes / cpu.rebalance.nodes).toFixed(2) : 'n/a'}`,
    );
  if (STEP_CPU) for (const [k, v] of Object.entries(stepCpu)) console.log(`    step ${k}: ${perObject(v)}`);
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  console.log(
    `  copy slots busy (copies in flight / concurrency, over the wall time): baseline ` +
      `${pct(slots.baseline.busy / (concurrency * base * 1000))}, rebalance ` +
      `${pct(slots.rebalance.busy / (concurrency * moved * 1000))}; no copy in flight: ` +
      `baseline ${pct(slots.baseline.idle / (base * 1000))}, rebalance ${pct(slots.rebalance.idle / (moved * 1000))} of the wall time`,
  );
  const spent = Object.values(phases).reduce((a, b) => a + b, 0);
  console.log(
    `  rebalance time by step (claim batch ${batchSize ?? `sized by time: ${concurrency * DEFAULT_BATCH_PER_SLOT}–${concurrency * MAX_BATCH_PER_SLOT} objects, ~${DEFAULT_BATCH_TARGET_MS / 1000} s, ≤ ${DEFAULT_BATCH_BYTES / 2 ** 30} GiB`}; ${claims.length} claims, ${claims.length > 0 ? Math.round(c.count / claims.length) : 0} objects each on average, largest ${Math.max(0, ...claims)}): ` +
      Object.entries(phases)
        .map(([k, v]) => `${k} ${((100 * v) / spent).toFixed(0)}%`)
        .join(', '),
  );
  // Where the per-object time goes beyond GET + PUT: the tombstone of the old copy, timed alone on
  // fresh copies, as the single MOVE (a rename and a directory fsync per copy) and as the batched
  // request the runner sends per claim batch (renames, then one fsync per directory).
  const srcUrl = url(SRC.manta_storage_id)!;
  const fresh = async () => {
    const ids = Array.from({ length: Math.min(c.count, 400) }, () => crypto.randomUUID());
    await eachLimit(ids, concurrency, (id) =>
      d.storage.put(srcUrl, owner, id, Buffer.alloc(4096)).then(() => undefined),
    );
    return ids;
  };
  const single = await fresh();
  const t2 = performance.now();
  await eachLimit(single, concurrency, (id) =>
    d.storage.tombstone(srcUrl, owner, id, '2000-01-01').then(() => undefined),
  );
  const moveRate = single.length / ((performance.now() - t2) / 1000);
  const batched = await fresh();
  const perClaim = Math.min(c.count, concurrency * DEFAULT_BATCH_PER_SLOT); // the runner's first claim batch
  const t3 = performance.now();
  for (let i = 0; i < batched.length; i += perClaim)
    await d.storage.tombstoneBatch(
      srcUrl,
      '2000-01-02',
      batched.slice(i, i + perClaim).map((objectId) => ({ owner, objectId })),
    );
  const batchRate = batched.length / ((performance.now() - t3) / 1000);
  const baseRate = c.count / base;
  const bound = (r: number) =>
    `${(1 / (1 / baseRate + 1 / r)).toFixed(0)}/s (ratio ${(r / (baseRate + r)).toFixed(2)})`;
  console.log(
    `  profile: GET+PUT ${baseRate.toFixed(0)}/s; tombstone MOVE alone ${moveRate.toFixed(0)}/s → ` +
      `GET+PUT+MOVE bound ${bound(moveRate)}; batched tombstone (${perClaim}/request) ` +
      `${batchRate.toFixed(0)}/s → bound ${bound(batchRate)}; metadata steps are per claim batch`,
  );
}

/** Records on the index shards and copies on SRC and OTHER, as the front door would leave them. */
async function loadObjects(
  d: Deployment,
  url: (id: string) => string | undefined,
  owner: string,
  c: Case,
): Promise<ObjectGroup[]> {
  const body = crypto.randomBytes(c.bytes);
  const sum = md5(body);
  const groups: ObjectGroup[] = [];
  const ops = [];
  for (let i = 0; i < c.count; i++) {
    const objectId = crypto.randomUUID();
    const key = `/${owner}/stor/bench-${c.bytes}/${i % 64}/o${i}`;
    const v = objectValue({
      key,
      owner,
      objectId,
      contentLength: c.bytes,
      contentMD5: sum,
      contentType: 'application/octet-stream',
      sharks: [SRC, OTHER],
      mtime: Date.now(),
    });
    ops.push({ op: 'put' as const, bucket: 'manta', key, value: v as unknown as Record<string, unknown> });
    groups.push({ objectId, copyOwner: owner, md5: sum, contentLength: c.bytes, keys: [] });
  }
  for (let i = 0; i < ops.length; i += 500) await d.tier.batch(ops.slice(i, i + 500));
  await eachLimit(groups, 8, async (g) => {
    for (const s of [SRC, OTHER]) await d.storage.put(url(s.manta_storage_id)!, owner, g.objectId, body);
  });
  const live = await d.tier.findByObjectIds(groups.map((g) => g.objectId));
  for (const g of groups)
    for (const r of live.get(g.objectId) ?? [])
      if (r.value.type === 'object')
        g.keys.push({
          key: r.key,
          shard: r.shard,
          morayEtag: r.etag,
          etag: r.value.etag,
          owner,
          sharks: r.value.sharks,
        });
  return groups;
}

/** The planner over the loaded objects (all bound for DEST: BASELINE_DEST is ignored). */
async function planAll(d: Deployment, groups: ObjectGroup[], label: string): Promise<string> {
  const records = (await d.tier.storageRecords()).map((r) => r.value);
  const planner = new RebalancePlanner(records, {
    evacuate: SRC.manta_storage_id,
    ignore: [BASELINE_DEST],
    maxFillPct: 99,
    lagMs: 600_000,
    now: Date.now(),
    random: new SeededRandom(1),
  });
  const jobId = `bench-${label.replace(/\W/g, '')}-${Date.now()}`;
  await insertJob(d.tier.control, jobId, { bench: true }, {});
  const rows = groups.map((g) => {
    const m = planner.decide(g).move!;
    if (m.newShark.manta_storage_id !== DEST) throw new Error(`planned ${m.newShark.manta_storage_id}`);
    return {
      objectId: g.objectId,
      state: 'unprocessed' as const,
      reason: null,
      detail: null,
      bytes: g.contentLength,
      md5: g.md5,
      copyOwner: g.copyOwner,
      cause: m.cause,
      oldShark: m.oldShark,
      newShark: m.newShark,
      keys: m.keys,
    };
  });
  for (let i = 0; i < rows.length; i += 1000)
    await insertObjects(d.tier.control, jobId, rows.slice(i, i + 1000));
  return jobId;
}

/**
 * The four nodes again, each in its own process on its own root, at the ids the deployment knows
 * (records, capacity, the planner's choice): the nodes' CPU is then off the measured process.
 */
async function startNodeProcesses(
  d: Deployment,
): Promise<{ urls: Map<string, string>; pids: number[]; stop(): void }> {
  const children: ChildProcess[] = [];
  const roots: string[] = [];
  const urls = new Map<string, string>();
  const stop = () => {
    for (const ch of children) ch.kill('SIGTERM');
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  };
  try {
    for (const [id, n] of d.nodes) {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-bench-node-'));
      roots.push(root);
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(import.meta.dirname, '../test/helpers/storage-node-child.ts'),
          root,
          '0',
          id,
          n.datacenter,
        ],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: { ...process.env, REMORA_CHILD_INTERNAL_TOKEN: d.internalToken },
        },
      );
      children.push(child);
      const line = await new Promise<string>((resolve, reject) => {
        readline.createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) =>
          reject(new Error(`storage node ${id} exited (${code}) before listening`)),
        );
      });
      urls.set(id, (JSON.parse(line) as { url: string }).url);
    }
  } catch (err) {
    stop();
    throw err;
  }
  return { urls, pids: children.map((c) => c.pid!), stop };
}

if (import.meta.url === `file://${process.argv[1]}`) await bench();
