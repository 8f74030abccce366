/**
 * The checked plan is the stored plan (issue 16, item 1), as an operator runs it: CLI processes.
 * `plan --dry-run` keeps its plan as a draft and prints its id; `plan --commit <id>` stores that
 * very plan (every object's destination unchanged); `--expect-destinations` refuses a plan whose
 * destination set is not the expected one, names the surprise and exits non-zero.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pastLastWrite, snapshotAndUnpack, startCliDeployment } from './helpers/rebalance.js';
import { runCli } from './helpers/cli.js';
import { testConfig } from './helpers/pg.js';
import { defaultStorageNodes } from '../src/config/config.js';
import type { Deployment } from '../src/deployment/deployment.js';
import type { FrontDoorClient } from '../src/frontdoor/client.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import type { PlanResult } from '../src/jobs/rebalance/rebalance.service.js';

const N1 = '1.stor.dc1.remora.local';
const OBJECTS = 60;

let d: Deployment;
let cleanup: () => Promise<void>;
let alice: FrontDoorClient;

before(async () => {
  // Equal capacities: every destination within EQUAL_ROOM of the roomiest, so placement is by chance.
  ({ d, cleanup, alice } = await startCliDeployment({
    storage: {
      ...testConfig().storage,
      nodes: defaultStorageNodes().map((n) => ({ ...n, capacityMB: 2000 })),
      heartbeatIntervalMs: 300,
    },
  }));
  await alice.mkdirp('/alice/stor/p');
  for (let i = 0; i < OBJECTS; i++) await alice.put(`/alice/stor/p/o${i}`, crypto.randomBytes(2000));
  await disableWrites(d.tier, N1);
  await pastLastWrite();
  await snapshotAndUnpack(d);
});
after(() => cleanup());

const cli = (args: string[]) => runCli(d.config.stateDir, args);

/** objectId → destination of every stored object of a plan (draft or job). */
async function assignments(id: string): Promise<Map<string, string | null>> {
  const r = await d.tier.control.query<{ object_id: string; dest: string | null }>(
    'SELECT object_id, dest FROM rebalance_objects WHERE job_id = $1 ORDER BY object_id',
    [id],
  );
  return new Map(r.rows.map((x) => [x.object_id, x.dest]));
}

async function jobState(id: string): Promise<string | undefined> {
  const r = await d.tier.control.query<{ state: string }>('SELECT state FROM rebalance_jobs WHERE id = $1', [
    id,
  ]);
  return r.rows[0]?.state;
}

const receiving = (p: PlanResult) =>
  p.destinations.filter((x) => x.objects > 0).map((x) => [x.manta_storage_id, x.objects] as const);

test('dry run, then commit: the stored assignments are the ones the dry run showed', async () => {
  const plan = ['rebalance', 'plan', '--evacuate', N1, '--last-write-margin-ms', '0'];
  const dry = await cli([...plan, '--dry-run', '--json']);
  assert.equal(dry.status, 0, dry.stderr);
  const shown = JSON.parse(dry.stdout) as PlanResult;
  assert.ok(shown.dryRun && shown.objects > 8, dry.stdout);
  const dests = receiving(shown);
  assert.ok(dests.length >= 3, `placement spreads over several nodes: ${JSON.stringify(dests)}`);
  assert.equal(await jobState(shown.jobId), 'draft');
  const drafted = await assignments(shown.jobId);
  assert.equal(drafted.size, shown.objects);
  // The table the dry run printed is the draft's content.
  for (const [node, n] of dests)
    assert.equal([...drafted.values()].filter((x) => x === node).length, n, node);
  assert.equal(shown.instructionFiles.length, 0);

  // A second dry run draws again: were `plan` to re-plan, its assignments would differ.
  const again = JSON.parse((await cli([...plan, '--dry-run', '--json'])).stdout) as PlanResult;
  const redrawn = await assignments(again.jobId);
  assert.ok(
    [...drafted].some(([id, dest]) => redrawn.get(id) !== dest),
    'two dry runs place differently (so the equality below is not luck)',
  );

  // A draft is not runnable.
  const run = await cli(['rebalance', 'run', '--job', shown.jobId, '--quiet']);
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, new RegExp(`${shown.jobId} is a dry run's draft.*--commit ${shown.jobId}`));

  // Human output names the draft and the command that stores it.
  const text = await cli([...plan, '--dry-run']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /dry run: plan (\S+) kept as a draft.*`remora rebalance plan --commit \1`/);

  const commit = await cli([
    'rebalance',
    'plan',
    '--commit',
    shown.jobId,
    '--expect-destinations',
    dests.map(([n]) => n).join(','),
    '--json',
  ]);
  assert.equal(commit.status, 0, commit.stderr);
  const stored = JSON.parse(commit.stdout) as PlanResult;
  assert.equal(stored.jobId, shown.jobId);
  assert.equal(stored.dryRun, false);
  assert.deepEqual(receiving(stored), dests);
  assert.deepEqual(await assignments(shown.jobId), drafted, 'every object keeps the destination shown');
  assert.equal(await jobState(shown.jobId), 'planned');
  assert.equal(stored.instructionFiles.length, dests.length);
  // The instruction files carry the same destinations (one line per key).
  for (const f of stored.instructionFiles) {
    const dest = f.split('/').at(-2)!;
    const lines = fs
      .readFileSync(path.join(d.config.stateDir, 'objects', f), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { objectId: string; newShark: { manta_storage_id: string } });
    assert.equal(lines.length, dests.find(([n]) => n === dest)![1], f);
    for (const l of lines) assert.equal(drafted.get(l.objectId), l.newShark.manta_storage_id);
  }
  // Committing twice is refused.
  const twice = await cli(['rebalance', 'plan', '--commit', shown.jobId]);
  assert.equal(twice.status, 2, twice.stderr);
  assert.match(twice.stderr, /already stored/);
  // The job runs (and other drafts evacuating the node never counted as active jobs).
  const ran = await cli(['rebalance', 'run', '--job', shown.jobId, '--quiet']);
  assert.equal(ran.status, 0, ran.stderr);
  assert.match(ran.stdout, new RegExp(`claimed ${shown.objects}: \\{"complete":${shown.objects}\\}`));
});

test('the expected-destinations gate refuses a surprise, names it, exits non-zero, stores nothing', async () => {
  // Another node to evacuate, so no active job stands in the way.
  const N2 = '2.stor.dc2.remora.local';
  await disableWrites(d.tier, N2);
  await pastLastWrite();
  await snapshotAndUnpack(d);
  const plan = ['rebalance', 'plan', '--evacuate', N2, '--last-write-margin-ms', '0'];
  const dry = await cli([...plan, '--dry-run', '--json']);
  assert.equal(dry.status, 0, dry.stderr);
  const shown = JSON.parse(dry.stdout) as PlanResult;
  const dests = receiving(shown).map(([n]) => n);
  assert.ok(dests.length >= 2, JSON.stringify(shown.destinations));
  const [surprise, ...expected] = dests;

  // A node the operator did not expect receives objects: refused, the node named, still a draft.
  const r1 = await cli([
    'rebalance',
    'plan',
    '--commit',
    shown.jobId,
    '--expect-destinations',
    expected.join(','),
  ]);
  assert.equal(r1.status, 5, r1.stderr);
  assert.match(r1.stderr, /UnexpectedDestinations: plan \S+ not stored: unexpected destination\(s\) /);
  assert.ok(r1.stderr.includes(`${surprise} (`), r1.stderr);
  assert.equal(await jobState(shown.jobId), 'draft');

  // An expected node receiving nothing is named with its role (N1 was disabled: stale).
  const r2 = await cli([
    'rebalance',
    'plan',
    '--commit',
    shown.jobId,
    '--expect-destinations',
    [...dests, N1].join(','),
  ]);
  assert.equal(r2.status, 5, r2.stderr);
  assert.ok(r2.stderr.includes(`expected but receiving nothing: ${N1} (stale)`), r2.stderr);
  assert.equal(await jobState(shown.jobId), 'draft');

  // A count works too, and the gate also judges a dry run and a plain plan. A fresh plan picks
  // anew (its count of destinations may differ from the first's), so the count is one no plan can
  // reach: every node of the deployment, the evacuated one included.
  const r3 = await cli([...plan, '--dry-run', '--expect-destinations', String(defaultStorageNodes().length)]);
  assert.equal(r3.status, 5, r3.stderr);
  assert.match(r3.stdout, /refused by --expect-destinations: the plan sends objects to \d+ node\(s\)/);
  const jobsBefore = await d.tier.control.query("SELECT id FROM rebalance_jobs WHERE state = 'planned'");
  // A fresh plan picks its destinations anew: expect only N1 (disabled, receives nothing), so
  // every node it picks is a surprise whichever it picks.
  const r4 = await cli([...plan, '--expect-destinations', N1]);
  assert.equal(r4.status, 5, r4.stderr);
  assert.match(r4.stderr, /unexpected destination\(s\)/);
  const jobsAfter = await d.tier.control.query("SELECT id FROM rebalance_jobs WHERE state = 'planned'");
  assert.equal(jobsAfter.rowCount, jobsBefore.rowCount, 'a refused plan is not stored as a job');

  // Bad flags: usage errors before anything is opened.
  const bad = await cli(['rebalance', 'plan', '--commit', shown.jobId, '--evacuate', N2]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--commit stores plan \S+ unchanged: --evacuate would change it/);
  const empty = await cli([...plan, '--expect-destinations', ' , ']);
  assert.equal(empty.status, 2, empty.stderr);
  const none = await cli(['rebalance', 'plan', '--commit', 'nosuch']);
  assert.equal(none.status, 2, none.stderr);
  assert.match(none.stderr, /no plan nosuch/);

  // The right expectation stores it.
  const ok = await cli([
    'rebalance',
    'plan',
    '--commit',
    shown.jobId,
    '--expect-destinations',
    dests.join(','),
  ]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`job ${shown.jobId} planned`));
});
