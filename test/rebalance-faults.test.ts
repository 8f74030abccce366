/**
 * Rebalance faults that need their own deployment: a destination that fills up (capacity caps in
 * the config), and the agent — a real `remora rebalance run` child process — SIGKILLed in the
 * middle of an object and started again.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDeployment } from './helpers/deployment.js';
import {
  md5,
  nodeDirectory,
  objectRecords,
  pastLastWrite,
  snapshotAndUnpack,
  storeOf,
  tempFiles,
} from './helpers/rebalance.js';
import { testConfig } from './helpers/pg.js';
import type { Deployment } from '../src/deployment/deployment.js';
import type { NodeDirectory } from '../src/storage/node-directory.js';
import { defaultStorageNodes } from '../src/config/config.js';
import { SeededRandom } from '../src/core/clock.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import { planJob, replanForRetry } from '../src/jobs/rebalance/rebalance.service.js';
import { runJob } from '../src/jobs/rebalance/rebalance.run.js';
import { jobStatus } from '../src/jobs/rebalance/rebalance.status.js';
import type { MantaObjectValue } from '../src/metadata/types.js';

const N1 = '1.stor.dc1.remora.local';
const N3 = '3.stor.dc3.remora.local';
const N4 = '4.stor.dc1.remora.local';
const N6 = '6.stor.dc3.remora.local';
const PICKER = { maxFillPct: 90, lagMs: 60_000 };
const ROOT = path.resolve(import.meta.dirname, '..');

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;
let nodeUrl: (id: string) => string | undefined;
let nodes: NodeDirectory;
let roots: Map<string, string>;

before(async () => {
  const base = testConfig();
  // Nodes 3 and 4 are small, so a destination can be filled; the seeded picker makes placement repeatable.
  const configured = defaultStorageNodes().map((n) =>
    n.id === N3 ? { ...n, capacityMB: 8 } : n.id === N4 ? { ...n, capacityMB: 5 } : n,
  );
  ({ d, cleanup } = await startTestDeployment(
    { ...base, storage: { nodes: configured, heartbeatIntervalMs: 300 } },
    { writeState: true, random: new SeededRandom(11) },
  ));
  fs.writeFileSync(path.join(d.config.stateDir, 'config.json'), JSON.stringify(d.config));
  const a = await createAccount(d.tier, { login: 'alice' }, Date.now());
  owner = a.account.uuid;
  alice = d.client(a.token);
  nodes = await nodeDirectory(d);
  nodeUrl = (id) => nodes.url(id);
  roots = new Map([...d.nodes].map(([id, n]) => [id, n.root]));
});
after(async () => {
  alice.close();
  await cleanup();
});

async function freshPlan(evacuate: string, ignore: string[] = []) {
  await disableWrites(d.tier, evacuate);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  return planJob(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    { evacuate, ignore, ...PICKER, lastWriteMarginMs: 0 },
  );
}

async function movesTo(jobId: string): Promise<Map<string, string>> {
  const r = await d.tier.control.query<{ object_id: string; dest: string }>(
    'SELECT object_id, dest FROM rebalance_objects WHERE job_id = $1 AND dest IS NOT NULL',
    [jobId],
  );
  return new Map(r.rows.map((x) => [x.object_id, x.dest]));
}

test('a destination that fills up: transfers refused (507, skipped), then never chosen again', async () => {
  await alice.mkdirp('/alice/stor/full');
  for (let i = 0; i < 24; i++) await alice.put(`/alice/stor/full/o${i}`, crypto.randomBytes(100_000));
  const p = await freshPlan(N1, [N6]);
  const planned = await movesTo(p.jobId);
  const toN3 = [...planned].filter(([, dest]) => dest === N3).map(([id]) => id);
  assert.ok(toN3.length > 0, `the plan uses ${N3}: ${JSON.stringify(p.destinations)}`);
  // Someone else fills N3 after the plan: its heartbeat has not said so yet.
  const cap = await d.storage.head(nodeUrl(N3)!, owner, toN3[0]!).catch(() => undefined);
  assert.equal(cap, undefined);
  const free = (await d.nodes.get(N3)!.capacity.snapshot()).availableBytes;
  await d.storage.put(nodeUrl(N3)!, owner, crypto.randomUUID(), crypto.randomBytes(free - 10_000));
  const t1 = await runJob({ tier: d.tier, storage: d.storage, nodeUrl }, { jobId: p.jobId, concurrency: 2 });
  assert.equal(t1.outcomes['skipped:DestinationInsufficientSpace'], toN3.length, JSON.stringify(t1));
  assert.deepEqual(tempFiles(roots), [], 'refused uploads leave no temp file');
  // Once the heartbeat reports it full, retry re-plans elsewhere.
  await new Promise((r) => setTimeout(r, 700));
  const rp = await replanForRetry(
    { tier: d.tier, store: storeOf(d), storage: d.storage, nodeUrl },
    p.jobId,
    PICKER,
  );
  assert.equal(rp.counts.unprocessed, toN3.length, JSON.stringify(rp.counts));
  const replanned = await movesTo(p.jobId);
  for (const id of toN3) assert.notEqual(replanned.get(id), N3, `${id} not planned to the full node again`);
  await runJob({ tier: d.tier, storage: d.storage, nodeUrl }, { jobId: p.jobId, concurrency: 2 });
  const s = await jobStatus(d.tier, p.jobId);
  assert.equal(s.done.objects, s.total.objects, JSON.stringify(s.reasons));
  for (const v of await objectRecords(d)) assert.ok(!v.sharks.some((x) => x.manta_storage_id === N1), v.key);
});

function agent(stateDir: string, jobId: string, extra: string[]): ReturnType<typeof spawn> {
  const env = { ...process.env };
  delete env.REMORA_CONFIG; // the child reads <stateDir>/config.json
  return spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/main/cli.ts',
      '--state-dir',
      stateDir,
      'rebalance',
      'run',
      '--job',
      jobId,
      '--quiet',
      '--lease-ms',
      '1000',
      ...extra,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env },
  );
}

async function exitOf(child: ReturnType<typeof spawn>): Promise<{ code: number | null; out: string }> {
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, out };
}

test('the agent SIGKILLed mid-object and restarted: converges, no duplicate or lost copy, no temp file', async () => {
  await alice.mkdirp('/alice/stor/big');
  const body = crypto.randomBytes(1024 * 1024);
  await alice.put('/alice/stor/big/blob', body);
  await alice.link('/alice/public/blob-link', '/alice/stor/big/blob');
  const rec = (await d.tier.getObject<MantaObjectValue>('manta', `/${owner}/stor/big/blob`))!.value;
  const evac = rec.sharks[0]!.manta_storage_id;
  const p = await freshPlan(evac);
  const dest = (await movesTo(p.jobId)).get(rec.objectId)!;
  assert.ok(dest, `${evac} ${JSON.stringify(p.counts)} ${JSON.stringify(p.destinations)}`);
  const destTemp = path.join(roots.get(dest)!, 'nginx_temp');
  const child = agent(d.config.stateDir, p.jobId, [
    '--concurrency',
    '1',
    '--max-bytes-per-second',
    String(200 * 1024),
  ]);
  let ended: { code: number | null; out: string } | undefined;
  const exited = exitOf(child).then((e) => (ended = e));
  const deadline = Date.now() + 30_000;
  while (!fs.readdirSync(destTemp).some((f) => f.startsWith(rec.objectId))) {
    assert.ok(Date.now() < deadline && !ended, `the transfer of the big object never started: ${ended?.out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 300)); // well inside the copy
  child.kill('SIGKILL');
  await exited;
  const again = await exitOf(agent(d.config.stateDir, p.jobId, []));
  assert.equal(again.code, 0, again.out);

  const s = await jobStatus(d.tier, p.jobId);
  assert.equal(s.byState.complete?.objects, s.total.objects, JSON.stringify(s.byState));
  for (const k of [`/${owner}/stor/big/blob`, `/${owner}/public/blob-link`]) {
    const v = (await d.tier.getObject<MantaObjectValue>('manta', k))!.value;
    const ids = v.sharks.map((x) => x.manta_storage_id);
    assert.equal(ids.length, rec.sharks.length, 'same number of copies');
    assert.equal(new Set(ids).size, ids.length, 'never two copies on one node');
    assert.ok(ids.includes(dest) && !ids.includes(evac), `${k}: ${ids.join(',')}`);
  }
  const holders = [...roots]
    .filter(([, r]) => fs.existsSync(path.join(r, owner, rec.objectId)))
    .map(([id]) => id);
  assert.deepEqual(
    holders.sort(),
    rec.sharks
      .map((x) => x.manta_storage_id)
      .filter((x) => x !== evac)
      .concat(dest)
      .sort(),
  );
  assert.equal(md5(fs.readFileSync(path.join(roots.get(dest)!, owner, rec.objectId))), md5(body));
  assert.deepEqual(tempFiles(roots), [], 'no orphan temp file');
  assert.equal(md5(await alice.get('/alice/public/blob-link')), md5(body));
});

function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  const env = { ...process.env };
  delete env.REMORA_CONFIG;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/main/cli.ts', '--state-dir', d.config.stateDir, ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    },
  );
  return exitOf(child);
}

test('CLI: status as metrics, verify verdict and exit code', async () => {
  const m = await cli(['rebalance', 'status', '--metrics']);
  assert.equal(m.code, 0, m.out);
  assert.match(m.out, /remora_rebalance_objects\{job="[^"]+",state="complete"\} \d+/);
  const ok = await cli(['rebalance', 'verify', '--node', N1]);
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, /^SAFE TO REMOVE 1\.stor\.dc1/m);
  const notOk = await cli(['rebalance', 'verify', '--node', N3]);
  assert.equal(notOk.code, 1, notOk.out);
  assert.match(notOk.out, /NOT SAFE/);
});

test('CLI: an unknown node is refused by verify, run and plan (UsageError, exit 2)', async () => {
  const runs = [
    ['rebalance', 'verify', '--node', 'nosuch.stor.remora.local'],
    ['rebalance', 'run', '--node', 'nosuch.stor.remora.local', '--quiet'],
    ['rebalance', 'plan', '--evacuate', 'nosuch.stor.remora.local'],
  ];
  const results = await Promise.all(runs.map((args) => cli(args)));
  for (const [i, r] of results.entries()) {
    assert.equal(r.code, 2, `${runs[i]!.join(' ')}: ${r.out}`);
    assert.match(r.out, /UsageError: unknown storage node nosuch\.stor\.remora\.local/, runs[i]!.join(' '));
  }
  // A mistyped --ignore is refused too (else the node meant to be kept out stays a destination).
  const ignore = await cli(['rebalance', 'plan', '--evacuate', N1, '--ignore', 'nosuch.stor', '--dry-run']);
  assert.equal(ignore.code, 2, ignore.out);
  assert.match(
    ignore.out,
    /UsageError: --ignore: unknown storage node\(s\) nosuch\.stor: no manta_storage record/,
  );
});

let n5Job: string | undefined;

test('CLI: one active job per evacuated node; --force plans anyway', async () => {
  await alice.mkdirp('/alice/stor/n5');
  for (let i = 0; i < 6; i++)
    await alice.put(`/alice/stor/n5/o${i}`, crypto.randomBytes(10_000), { copies: 3 });
  const N5 = '5.stor.dc2.remora.local';
  await disableWrites(d.tier, N5);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  const first = await cli(['rebalance', 'plan', '--evacuate', N5, '--last-write-margin-ms', '0']);
  assert.equal(first.code, 0, first.out);
  const job = /job (\S+) planned/.exec(first.out)?.[1];
  n5Job = job;
  assert.ok(job && /objects: [1-9]/.test(first.out), first.out);
  const second = await cli(['rebalance', 'plan', '--evacuate', N5, '--last-write-margin-ms', '0']);
  assert.equal(second.code, 2, second.out);
  assert.match(
    second.out,
    new RegExp(`UsageError: job ${job} is still active for ${N5.replace(/\./g, '\\.')}`),
  );
  const forced = await cli(['rebalance', 'plan', '--evacuate', N5, '--last-write-margin-ms', '0', '--force']);
  assert.equal(forced.code, 0, forced.out);
  assert.match(forced.out, /job \S+ planned/);
});

test('CLI: run and verify find nodes from their heartbeat records, without deployment.json', async () => {
  assert.ok(n5Job);
  const state = path.join(d.config.stateDir, 'deployment.json');
  fs.renameSync(state, `${state}.away`);
  try {
    const run = await cli(['rebalance', 'run', '--job', n5Job, '--quiet']);
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /claimed [1-9]\d*: \{"complete":[1-9]/);
    // The plan skipped the objects no destination could take (ObjectAlreadyInDatacenter): they
    // still name the node. verify says so, having reached every copy it checked.
    const v = await cli(['rebalance', 'verify', '--node', '5.stor.dc2.remora.local']);
    assert.equal(v.code, 1, v.out);
    assert.match(
      v.out,
      /^NOT SAFE to remove 5\.stor\.dc2\.remora\.local: \d+ live record\(s\) still name it/m,
    );
    assert.match(v.out, /[1-9]\d* cop\(ies\) checked/);
    assert.doesNotMatch(v.out, /unreachable|address unknown|missing/);
  } finally {
    fs.renameSync(`${state}.away`, state);
  }
});
