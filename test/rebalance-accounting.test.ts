/**
 * Every object accounted for (issue 16, item 3 of its list), as CLI processes: `rebalance status
 * --objects [--state] [--reason] [--json]`, `rebalance jobs [--json]`, the run's JSON-lines log
 * named by the run, rate 0 and ETA `done` once finished, and `rebalance run --metrics-port`
 * scraped while the run works.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pastLastWrite, snapshotAndUnpack, startCliDeployment } from './helpers/rebalance.js';
import { runCli } from './helpers/cli.js';
import type { Deployment } from '../src/deployment/deployment.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import type { ObjectLine, JobLine } from '../src/jobs/rebalance/rebalance.listing.js';
import type { JobStatus } from '../src/jobs/rebalance/rebalance.status.js';

const N1 = '1.stor.dc1.remora.local';
const ROOT = path.resolve(import.meta.dirname, '..');
/** Objects with a copy on N1: the job's size. */
const ON_N1 = 20;
const onN1 = (r: MantaObjectValue) => r.sharks.some((s) => s.manta_storage_id === N1);
const SIZE = 3000;

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;
let owner: string;
let jobId: string;
let corrupt: MantaObjectValue;

before(async () => {
  ({ d, cleanup, alice, owner } = await startCliDeployment());
  await alice.mkdirp('/alice/stor/acc');
  // Placement is random over every node: write until N1 holds ON_N1 copies, so the throttled run
  // spans at least two claim batches of 8 (one batch records its outcomes only as the run ends,
  // and CI saw a 4-object job finish between two scrapes).
  const recs: MantaObjectValue[] = [];
  for (let i = 0; recs.filter((r) => onN1(r)).length < ON_N1; i++) {
    assert.ok(i < 400, 'N1 gets copies');
    await alice.put(`/alice/stor/acc/o${i}`, crypto.randomBytes(SIZE));
    recs.push((await d.tier.getObject<MantaObjectValue>('manta', `/${owner}/stor/acc/o${i}`))!.value);
  }
  // One object with every copy corrupted (same size): it cannot move.
  corrupt = recs.find(onN1)!;
  assert.ok(corrupt, 'some object has a copy on N1');
  for (const s of corrupt.sharks)
    fs.writeFileSync(
      path.join(d.nodes.get(s.manta_storage_id)!.root, owner, corrupt.objectId),
      crypto.randomBytes(SIZE),
    );
  await disableWrites(d.tier, N1);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  const plan = await cli(['rebalance', 'plan', '--evacuate', N1, '--last-write-margin-ms', '0', '--json']);
  assert.equal(plan.status, 0, plan.stderr);
  jobId = (JSON.parse(plan.stdout) as { jobId: string }).jobId;
});
after(() => cleanup());

const cli = (args: string[]) => runCli(d.config.stateDir, args);

test('run: metrics served while it works, a JSON-lines log it names, then rate 0 and ETA done', async () => {
  const env = { ...process.env };
  delete env.REMORA_CONFIG;
  const logFile = path.join(d.config.stateDir, 'my-run.jsonl');
  // Throttled so the run lasts ~20 s (claim batches of 8, one object a second): the metrics are scraped
  // while it works, after the first batch is recorded.
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/main/cli.ts',
      '--state-dir',
      d.config.stateDir,
      'rebalance',
      'run',
      '--job',
      jobId,
      '--quiet',
      '--concurrency',
      '1',
      '--max-bytes-per-second',
      String(SIZE),
      '--metrics-port',
      '0',
      '--log',
      logFile,
    ],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  let url: string | undefined;
  const deadline = Date.now() + 60_000;
  while (!(url = /metrics: (http:\S+)/.exec(err)?.[1])) {
    assert.ok(Date.now() < deadline, `no metrics URL printed: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(err, new RegExp(`log: ${logFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  let scraped = '';
  while (!/remora_rebalance_runner_objects_total\{[^}]*outcome="complete"\} [1-9]/.test(scraped)) {
    assert.ok(Date.now() < deadline, `no runner figures while running: ${scraped}`);
    scraped = await fetch(url).then(
      (r) => r.text(),
      (e: Error) =>
        assert.fail(
          `scrape failed (${String(e.cause)}); last: ${scraped}; stderr: ${err}; stdout: ${out}; ` +
            `log: ${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '(none)'}`,
        ),
    );
    await new Promise((r) => setTimeout(r, 200));
  }
  // Scraped mid-run: the job's figures show work done and work left.
  assert.match(scraped, new RegExp(`remora_rebalance_objects\\{job="${jobId}",state="complete"\\} [1-9]`));
  assert.match(
    scraped,
    new RegExp(`remora_rebalance_objects\\{job="${jobId}",state="(unprocessed|assigned)"\\} [1-9]`),
  );
  assert.match(scraped, /remora_rebalance_eta_seconds\{job="[^"]+"\} /);
  assert.equal((await fetch(url.replace('/metrics', '/other'))).status, 404);
  const code = await exited;
  assert.equal(code, 0, err);
  assert.ok(out.includes(`log: ${logFile}`), out);
  await assert.rejects(fetch(url), 'the metrics server stops with the run');

  // The log: a start line, one line per object (errors and skips at their level), a finish line.
  const lines = fs
    .readFileSync(logFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines[0]!.msg, 'run started');
  assert.equal(lines.at(-1)!.msg, 'run finished');
  const perObject = lines.filter((l) => typeof l.objectId === 'string');
  const planned = await d.tier.control.query('SELECT 1 FROM rebalance_objects WHERE job_id = $1', [jobId]);
  assert.equal(perObject.length, planned.rowCount, 'one line per object');
  assert.equal(new Set(perObject.map((l) => l.objectId)).size, perObject.length);
  const warn = perObject.filter((l) => l.level === 'warn');
  assert.deepEqual(
    warn.map((l) => [l.objectId, l.state, l.reason, l.source]),
    [[corrupt.objectId, 'skipped', 'MD5Mismatch', N1]],
  );
  assert.match(String(warn[0]!.detail), /MD5 mismatch/);
  for (const l of perObject.filter((x) => x.level === 'info')) {
    assert.equal(l.state, 'complete');
    assert.equal(l.source, N1);
    assert.ok(typeof l.destination === 'string' && l.destination !== N1);
    assert.equal(l.job, jobId);
  }

  // Finished: rate 0, ETA done (not a figure decaying over the last minute).
  const st = await cli(['rebalance', 'status', '--json']);
  assert.equal(st.status, 0, st.stderr);
  const s = JSON.parse(st.stdout) as JobStatus;
  assert.equal(s.left.objects, 0);
  assert.deepEqual(s.rate, { objectsPerSecond: 0, bytesPerSecond: 0 });
  assert.equal(s.etaSeconds, 0);
  const text = await cli(['rebalance', 'status']);
  assert.match(text.stdout, /0\.0 obj\/s 0\.0 MB\/s, ETA done/);

  // Without --log, the run names the file it wrote under the state directory.
  const again = await cli(['rebalance', 'run', '--job', jobId, '--quiet']);
  assert.equal(again.status, 0, again.stderr);
  const named = /^log: (\S+)$/m.exec(again.stdout)?.[1];
  assert.ok(named && named.startsWith(path.join(d.config.stateDir, 'logs', 'rebalance')), again.stdout);
  assert.match(fs.readFileSync(named, 'utf8'), /"msg":"run finished"/);
});

test('status --objects lists every object with key, source, destination, state, reason, detail', async () => {
  const all = await cli(['rebalance', 'status', '--objects', '--json']);
  assert.equal(all.status, 0, all.stderr);
  const objs = all.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ObjectLine);
  const planned = await d.tier.control.query<{ object_id: string }>(
    'SELECT object_id FROM rebalance_objects WHERE job_id = $1 ORDER BY object_id',
    [jobId],
  );
  assert.deepEqual(
    objs.map((o) => o.objectId),
    planned.rows.map((r) => r.object_id),
  );
  for (const o of objs) {
    assert.match(o.key, new RegExp(`^/${owner}/stor/acc/o\\d+$`));
    assert.equal(o.source, N1);
    assert.ok(o.destination && o.destination !== N1);
  }
  const skipped = await cli(['rebalance', 'status', '--objects', '--state', 'skipped', '--json']);
  const sk = skipped.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as ObjectLine);
  assert.equal(sk.length, 1, skipped.stdout);
  assert.equal(sk[0]!.objectId, corrupt.objectId);
  assert.equal(sk[0]!.reason, 'MD5Mismatch');
  assert.match(sk[0]!.detail ?? '', /MD5 mismatch/);
  const byReason = await cli(['rebalance', 'status', '--objects', '--reason', 'MD5Mismatch']);
  assert.equal(byReason.status, 0, byReason.stderr);
  const rows = byReason.stdout.trim().split('\n');
  assert.equal(rows[0], 'objectId\tkey\tsource\tdestination\tstate\treason\tdetail');
  assert.equal(rows.length, 2, byReason.stdout);
  assert.ok(
    rows[1]!.startsWith(`${corrupt.objectId}\t/${owner}/stor/acc/`) &&
      rows[1]!.includes('\tskipped\tMD5Mismatch\t'),
  );
  const none = await cli(['rebalance', 'status', '--objects', '--reason', 'EtagConflict', '--json']);
  assert.equal(none.status, 0);
  assert.equal(none.stdout, '');

  for (const [args, want] of [
    [['--objects', '--state', 'nosuch'], /--state: unknown state nosuch; one of unprocessed/],
    [['--objects', '--reason', 'Nope'], /--reason: unknown reason Nope; one of Destination/],
    [['--state', 'skipped'], /give --objects too/],
    [['--objects', '--metrics'], /not with --metrics/],
  ] as const) {
    const r = await cli(['rebalance', 'status', ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
  }
});

test('jobs lists jobs and drafts with their state and counts; --metrics-port refuses a bad port', async () => {
  const dry = await cli([
    'rebalance',
    'plan',
    '--evacuate',
    N1,
    '--last-write-margin-ms',
    '0',
    '--dry-run',
    '--json',
  ]);
  assert.equal(dry.status, 0, dry.stderr);
  const draft = (JSON.parse(dry.stdout) as { jobId: string }).jobId;
  const j = await cli(['rebalance', 'jobs', '--json']);
  assert.equal(j.status, 0, j.stderr);
  const jobs = JSON.parse(j.stdout) as JobLine[];
  const mine = jobs.find((x) => x.jobId === jobId)!;
  assert.equal(mine.state, 'needs-retry');
  assert.equal(mine.evacuate, N1);
  assert.equal(mine.byState.skipped, 1);
  assert.equal(mine.byState.complete, mine.objects - 1);
  assert.equal(jobs.find((x) => x.jobId === draft)?.state, 'draft');
  const text = await cli(['rebalance', 'jobs']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    new RegExp(`${jobId}\\s+needs-retry\\s+\\S+\\s+${N1.replace(/\./g, '\\.')}\\s+${mine.objects}\\s`),
  );
  const help = await cli(['rebalance', 'jobs', '--help']);
  assert.match(help.stdout, /draft, active,\s+needs-retry, done/);
  const bad = await cli(['rebalance', 'run', '--metrics-port', '70000']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--metrics-port: expected an integer from 0 to 65535/);
});
