/**
 * A lost attempt that keeps running (docs/pipeline.md "A lost attempt that keeps running"): an
 * unpack attempt declared lost (its heartbeat late by more than staleAfterMs) while it still ran
 * finished after its retry had committed, rewrote the day's source manifest and deleted the
 * committed run's chunks, so every downstream task failed with StaleState (CI, two executions
 * 435 ms apart). Here the real executor and the real snapshot and unpack jobs replay it: a seam
 * in the object store holds the first attempt just before its manifest write (past its last
 * look at its signal: the process stalled there), the reaper declares it lost, the retry runs
 * and the run commits, then the first attempt goes on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import type { Readable } from 'node:stream';
import { LocalObjectStore, type ObjectMeta, type PutResult } from '../src/objectstore/object-store.js';
import { backupPath, unpackedDayDir } from '../src/dumps/layout.js';
import { readSourceManifest } from '../src/dumps/manifest.js';
import {
  commitStagedManifest,
  discardStagedManifest,
  stagedManifestPath,
} from '../src/dumps/source-commit.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { isRemoraError } from '../src/core/errors.js';
import { emptyReport } from '../src/core/run-report.js';
import { PartitionInputs, type UnpackRef } from '../src/dumps/partition-inputs.js';
import { snapshotJobWith } from '../src/jobs/snapshot/snapshot.job.js';
import { unpackJob } from '../src/jobs/unpack/unpack.job.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import { scheduleDay } from '../src/pipeline/operations.js';
import { latestRuns, SCHEMA, type RunRow } from '../src/pipeline/runs.repository.js';
import {
  attemptsOfRun,
  completeAttempt,
  fenceOf,
  getTask,
  reapLostAttempts,
  recordFencedAttempt,
  startAttempt,
  tasksOfRun,
} from '../src/pipeline/tasks.repository.js';
import { ENGINE_SCHEMA, TASK_JOB_KEY_PREFIX } from '../src/pipeline/engine.js';
import { openTestPipeline, type TestPipeline } from './helpers/pipeline.js';
import { copyBlock, plainDump, type Row } from './helpers/dump-text.js';

const DAY = '2024-06-03';

function mrow(i: number): Row {
  const objectId = `0000000${i}-aaaa-4bbb-8ccc-dddddddddddd`;
  const key = `/acct/stor/o${i}`;
  const value = JSON.stringify({ key, objectId, owner: 'acct', type: 'object', sharks: [] });
  return [String(i), null, key, value, 'AAAAAAAA', '1717394400000', '1', objectId];
}

/** Holds the first write of a source manifest of `source` (staged or committed) until released. */
class HoldingStore extends LocalObjectStore {
  source = '';
  held = false;
  release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));

  override async put(p: string, body: Readable | Buffer | string, meta?: ObjectMeta): Promise<PutResult> {
    const dir = `${unpackedDayDir(DAY)}/${this.source}/`;
    if (!this.held && this.source && p.startsWith(dir) && p.endsWith('/manifest.json')) {
      this.held = true;
      await this.gate;
    }
    return super.put(p, body, meta);
  }
}

async function until(what: string, ok: () => Promise<boolean>, tick?: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await ok()) return;
    await tick?.();
    await sleep(50);
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** Until the attempt is recorded as fenced (its end came after its task went to another). */
async function untilFenced(tp: TestPipeline, runId: number, attemptId: number): Promise<void> {
  await until(
    `attempt ${attemptId} is recorded as fenced`,
    async () =>
      (await attemptsOfRun(tp.rt.control, runId))
        .find((a) => a.id === attemptId)
        ?.error?.includes('AttemptFenced') ?? false,
  );
}

/** Its worker stalled: the attempt's heartbeat is late by more than any staleAfterMs. */
async function ageAttempt(tp: TestPipeline, attemptId: number): Promise<void> {
  await tp.rt.control.query(
    `UPDATE ${SCHEMA}.attempts SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`,
    [attemptId],
  );
}

/**
 * A day job `name` of one task per key running `body`, scheduled for DAY with a worker running
 * two attempts at a time; heartbeats far apart, so nothing is declared lost but what a test ages
 * by hand. `run()`: the job's latest run.
 */
async function startGatedJob(
  name: string,
  keys: string[],
  body: (key: string) => Promise<void>,
): Promise<{ tp: TestPipeline; run: () => Promise<RunRow | undefined> }> {
  const job: JobDefinition = {
    name,
    description: `${keys.length} task(s)`,
    partition: 'day',
    inputs: { external: [{ name: 'always', exists: () => Promise.resolve({ ready: true }) }] },
    deadlineMs: 120_000,
    split: () => Promise.resolve(keys.map((key) => ({ key }))),
    runTask: async (ctx) => {
      await body(ctx.task.key);
      return { report: ctx.report.finish() };
    },
    commit: () => Promise.resolve({ output: null }),
  };
  const tp = await openTestPipeline({
    jobs: [job],
    settings: { heartbeatMs: 60_000, staleAfterMs: 150_000, concurrency: 2 },
  });
  await scheduleDay(tp.rt, DAY, 'test');
  await tp.startWorker();
  return { tp, run: async () => (await latestRuns(tp.rt.control, name, [DAY]))[0] };
}

test('an unpack attempt declared lost that finishes after its retry committed replaces nothing: AttemptFenced', async () => {
  let store: HoldingStore | undefined;
  const unpack = unpackJob({ partitions: 2 });
  const settled = new Set<number>();
  const watched: JobDefinition = {
    ...unpack,
    runTask: async (ctx) => {
      try {
        return await unpack.runTask(ctx);
      } finally {
        settled.add(ctx.attemptId);
      }
    },
  };
  const tp = await openTestPipeline({
    jobs: [snapshotJobWith({}), watched],
    // Heartbeats far apart: the worker never learns by itself that its attempt was declared lost
    // (as when its process stalls), and nothing else is declared lost while the test runs.
    settings: { heartbeatMs: 60_000, staleAfterMs: 150_000 },
    store: (root) => (store = new HoldingStore(root)),
  });
  try {
    const s = store!;
    const shard = tp.config.shards.find((x) => x.role === 'index')!.name;
    s.source = shard;
    const rows = Array.from({ length: 8 }, (_, i) => mrow(i + 1));
    await tp.store.put(
      backupPath(shard, new Date(`${DAY}T06:00:00Z`)),
      zlib.gzipSync(plainDump([copyBlock('manta', rows)])),
    );
    await scheduleDay(tp.rt, DAY, 'test');
    await tp.startWorker();
    const key = `${DAY}/shard=${shard}`;
    const unpackRun = async () => (await latestRuns(tp.rt.control, 'unpack', [key]))[0];
    await until(
      'the first unpack attempt reaches its manifest write',
      () => Promise.resolve(s.held),
      () => tp.coordinator.tick(),
    );

    // Its worker stalled: the heartbeat is late by more than staleAfterMs, the reaper declares it lost.
    const run = (await unpackRun())!;
    const [first] = await attemptsOfRun(tp.rt.control, run.id);
    assert.equal(first!.state, 'running');
    await ageAttempt(tp, first!.id);
    await tp.coordinator.reap();

    // The retry runs, and the run commits while the first attempt still runs.
    await until(
      'the unpack run commits',
      async () => (await unpackRun())!.state !== 'running',
      () => tp.coordinator.tick(),
    );
    const committed = (await unpackRun())!;
    assert.equal(committed.state, 'succeeded', committed.error ?? '');
    const ref = committed.output as UnpackRef;
    const before = (await readSourceManifest(tp.store, DAY, shard))!;
    assert.equal(before.runId, ref.runId, 'the committed run is the one the manifest names');

    // The first attempt goes on, past the instant its task went to another attempt.
    s.release();
    await until('the first attempt finished', () => Promise.resolve(settled.has(first!.id)));
    const after = (await readSourceManifest(tp.store, DAY, shard))!;
    assert.equal(after.runId, ref.runId, 'the late attempt did not replace the committed manifest');
    for (const t of Object.values(after.tables))
      for (const c of t.chunks) assert.ok(await tp.store.head(c.path), `committed chunk ${c.path} is there`);
    // What gc, audit and storage-metering do with the reference they were handed.
    const inputs = await PartitionInputs.open(tp.store, [ref]);
    assert.equal(inputs.manifests[0]!.runId, ref.runId);

    await untilFenced(tp, run.id, first!.id);

    const attempts = await attemptsOfRun(tp.rt.control, run.id);
    const fenced = attempts.find((a) => a.id === first!.id)!;
    assert.equal(fenced.state, 'lost');
    assert.match(fenced.error ?? '', /AttemptFenced: attempt \d+ .*declared lost/);
    const event = Object.values(committed.report!.events).find((e) => e.kind === 'attempt_fenced');
    assert.ok(
      event,
      `the run report records the fenced attempt: ${JSON.stringify(committed.report!.events)}`,
    );
    assert.equal(event.severity, 'info');
    // Nothing of the late attempt is left beside the committed run's own files.
    const left = (await tp.store.list(`${unpackedDayDir(DAY)}/${shard}/`)).filter(
      (p) =>
        !p.startsWith(`${unpackedDayDir(DAY)}/${shard}/${ref.runId}/`) &&
        !p.endsWith(`${shard}/manifest.json`),
    );
    assert.deepEqual(left, [], 'the fenced attempt removed what it wrote');
  } finally {
    store?.release();
    await tp.close();
  }
});

test('the fence: an attempt declared lost cannot complete its task even when it finishes first', async () => {
  const one: JobDefinition = {
    name: 'one',
    description: 'one task',
    partition: 'day',
    inputs: { external: [{ name: 'always', exists: () => Promise.resolve({ ready: true }) }] },
    deadlineMs: 60_000,
    split: () => Promise.resolve([{ key: 'only' }]),
    runTask: (ctx) => Promise.resolve({ report: ctx.report.finish() }),
    commit: () => Promise.resolve({ output: null }),
  };
  const tp = await openTestPipeline({ jobs: [one] });
  try {
    await scheduleDay(tp.rt, DAY, 'test');
    await tp.coordinator.tick(); // running, its task queued; no worker claims it
    const run = (await latestRuns(tp.rt.control, 'one', [DAY]))[0]!;
    const [task] = await tasksOfRun(tp.rt.control, run.id);
    const start = (worker: string) =>
      startAttempt(tp.rt.control, { taskId: task!.id, engineAttempt: 1, worker, engineWorker: null });
    const lost = await start('stalled');
    await ageAttempt(tp, lost);
    assert.deepEqual(
      (await reapLostAttempts(tp.rt.control, 1000)).map((l) => l.attemptId),
      [lost],
    );
    const retry = await start('retry');
    const done = (attemptId: number) =>
      completeAttempt(tp.rt.control, {
        taskId: task!.id,
        attemptId,
        output: { attemptId },
        report: emptyReport(),
      });
    assert.equal(await done(lost), false, 'the lost attempt is fenced though the task is still queued');
    assert.deepEqual(await fenceOf(tp.rt.control, lost), { attemptState: 'lost', winningAttempt: null });
    assert.equal((await getTask(tp.rt.control, task!.id))!.state, 'queued');
    assert.equal(await done(retry), true);
    const late = await start('late duplicate');
    assert.equal(await done(late), false, 'a task completes once');
    await recordFencedAttempt(tp.rt.control, lost, 'AttemptFenced: lost one');
    await recordFencedAttempt(tp.rt.control, late, 'AttemptFenced: duplicate');
    const after = await getTask(tp.rt.control, task!.id);
    assert.equal(after!.winningAttempt, retry);
    assert.deepEqual(after!.output, { attemptId: retry });
    const byId = new Map((await attemptsOfRun(tp.rt.control, run.id)).map((a) => [a.id, a]));
    assert.equal(byId.get(lost)!.state, 'lost');
    assert.match(byId.get(lost)!.error ?? '', /stopped heartbeating.*; then AttemptFenced: lost one/);
    assert.equal(byId.get(retry)!.state, 'succeeded');
    assert.equal(byId.get(late)!.state, 'failed');
    assert.equal(byId.get(late)!.error, 'AttemptFenced: duplicate');
  } finally {
    await tp.close();
  }
});

test('a staged manifest is committed by the run commit, idempotently; a fenced one is discarded, the committed one never', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-fence-'));
  try {
    const store = new LocalObjectStore(root);
    const dump = path.join(root, 'in.sql');
    fs.writeFileSync(dump, plainDump([copyBlock('manta', [mrow(1), mrow(2), mrow(3)])]));
    const opts = { shard: 's.moray', partitions: 2, commit: false } as const;
    const a = await unpackDump(store, [dump], opts);
    const b = await unpackDump(store, [dump], opts);
    const refOf = (r: typeof a) => ({ day: r.manifest.day, source: 's.moray', runId: r.manifest.runId });
    assert.equal(await readSourceManifest(store, a.manifest.day, 's.moray'), undefined, 'staged only');
    const chunksOf = (r: typeof a) =>
      Object.values(r.manifest.tables).flatMap((t) => t.chunks.map((c) => c.path));

    await commitStagedManifest(store, refOf(a));
    assert.equal((await readSourceManifest(store, a.manifest.day, 's.moray'))!.runId, a.manifest.runId);
    assert.equal(await discardStagedManifest(store, refOf(a)), 0, 'the committed run is never discarded');
    for (const p of chunksOf(a)) assert.ok(await store.head(p), p);

    const c = await commitStagedManifest(store, refOf(b));
    assert.equal(c.replaced, a.manifest.runId);
    for (const p of chunksOf(a)) assert.equal(await store.head(p), undefined, `replaced chunk ${p} deleted`);
    assert.equal(
      await store.head(stagedManifestPath(a.manifest.day, 's.moray', a.manifest.runId)),
      undefined,
    );
    const again = await commitStagedManifest(store, refOf(b));
    assert.equal(again.replaced, undefined, 'a commit run again deletes nothing');
    for (const p of chunksOf(b)) assert.ok(await store.head(p), p);

    const fenced = await unpackDump(store, [dump], opts);
    assert.ok((await discardStagedManifest(store, refOf(fenced))) > 1);
    assert.deepEqual(
      (await store.list(`${unpackedDayDir(a.manifest.day)}/s.moray/${fenced.manifest.runId}/`)).length,
      0,
    );
    assert.equal((await readSourceManifest(store, a.manifest.day, 's.moray'))!.runId, b.manifest.runId);

    await assert.rejects(commitStagedManifest(store, refOf(fenced)), (e) => isRemoraError(e, 'StaleState'));
    // A staged manifest that is not the run's it is staged for (copied by hand, say) is refused.
    const wrong = { ...refOf(b), runId: 'not-this-run' };
    await store.put(stagedManifestPath(wrong.day, wrong.source, wrong.runId), JSON.stringify(b.manifest));
    await assert.rejects(
      commitStagedManifest(store, wrong),
      (e) => isRemoraError(e, 'MalformedInput') && /not the run it is staged for/.test(e.message),
    );
    assert.equal((await readSourceManifest(store, b.manifest.day, 's.moray'))!.runId, b.manifest.runId);
    await assert.rejects(
      unpackDump(store, [dump], { ...opts, entryObjects: true }),
      (e) => isRemoraError(e, 'UsageError') && /staged unpack/.test(e.message),
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('reaping a lost attempt releases only its own engine job: a live attempt of the same worker keeps its task', async () => {
  // One engine worker (a process's pool) holds the jobs of all its attempts. Releasing every job
  // of that worker when one of its attempts was declared lost let another claim re-run the live
  // attempt's task at the same time (fenced, but done twice).
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const started = new Map<string, number>();
  const { tp, run } = await startGatedJob('two', ['a', 'b'], async (key) => {
    const n = (started.get(key) ?? 0) + 1;
    started.set(key, n);
    if (n === 1) await gate; // each task's first attempt holds until released
  });
  try {
    await until(
      'both first attempts run',
      () => Promise.resolve(started.get('a') === 1 && started.get('b') === 1),
      () => tp.coordinator.tick(),
    );
    const r = (await run())!;
    const tasks = new Map((await tasksOfRun(tp.rt.control, r.id)).map((t) => [t.key, t.id]));
    const locks = async () =>
      new Map(
        (
          await tp.rt.control.query<{ key: string; locked_by: string | null }>(
            `SELECT key, locked_by FROM ${ENGINE_SCHEMA}.jobs WHERE key = ANY($1)`,
            [[...tasks.values()].map((id) => `${TASK_JOB_KEY_PREFIX}${id}`)],
          )
        ).rows.map((x) => [x.key, x.locked_by]),
      );
    const keyOf = (k: string) => `${TASK_JOB_KEY_PREFIX}${tasks.get(k)}`;
    const before = await locks();
    const pool = before.get(keyOf('a'));
    assert.ok(pool, 'a is held');
    assert.equal(before.get(keyOf('b')), pool, 'one engine worker holds both');

    const [a1] = (await attemptsOfRun(tp.rt.control, r.id)).filter((x) => x.taskKey === 'a');
    await ageAttempt(tp, a1!.id);
    await tp.coordinator.reap();
    const after = await locks();
    assert.equal(after.get(keyOf('a')), null, "the lost attempt's job is released");
    assert.equal(after.get(keyOf('b')), pool, "the live attempt's job stays with its worker");

    release();
    await until(
      'the run ends',
      async () => (await run())!.state !== 'running',
      () => tp.coordinator.tick(),
    );
    assert.equal((await run())!.state, 'succeeded');
    const attempts = await attemptsOfRun(tp.rt.control, r.id);
    assert.deepEqual(
      attempts.filter((x) => x.taskKey === 'b').map((x) => x.state),
      ['succeeded'],
      'b ran once',
    );
    assert.deepEqual(
      attempts
        .filter((x) => x.taskKey === 'a')
        .map((x) => x.state)
        .sort(),
      ['lost', 'succeeded'],
    );
    assert.equal(started.get('b'), 1);
  } finally {
    release();
    await tp.close();
  }
});

test("a fenced attempt's end does not start a third attempt while its retry runs in the same worker (TaskBusy)", async () => {
  // The lost attempt and its retry run in one engine worker. The lost one, fenced, ends with an
  // error; the engine records it as a failure of the job, matched by worker, so of the job its
  // retry now holds, which it unlocks: claimed again after the backoff, it must not start a
  // third attempt while the retry runs.
  const gates = [0, 1].map(() => {
    let release!: () => void;
    const p = new Promise<void>((r) => (release = r));
    return { p, release };
  });
  let started = 0;
  const { tp, run } = await startGatedJob('one', ['only'], async () => {
    const n = started++;
    if (n < 2) await gates[n]!.p;
  });
  try {
    await until(
      'the first attempt runs',
      () => Promise.resolve(started === 1),
      () => tp.coordinator.tick(),
    );
    const r = (await run())!;
    const [first] = await attemptsOfRun(tp.rt.control, r.id);
    await ageAttempt(tp, first!.id);
    await tp.coordinator.reap();
    await until(
      'the retry runs',
      () => Promise.resolve(started === 2),
      () => tp.coordinator.tick(),
    );
    const engineJob = async () =>
      (
        await tp.rt.control.query<{ locked_by: string | null; attempts: number; last_error: string | null }>(
          `SELECT locked_by, attempts, last_error FROM ${ENGINE_SCHEMA}.jobs WHERE key LIKE $1`,
          [`${TASK_JOB_KEY_PREFIX}%`],
        )
      ).rows[0]!;
    const held = await engineJob();
    assert.ok(held.locked_by, 'the retry holds the job');

    gates[0]!.release(); // the lost attempt ends: fenced
    await untilFenced(tp, r.id, first!.id);
    // Its end unlocked the retry's job (backoff e^attempts s): wait until the engine has claimed
    // it again and that claim has ended.
    await until(
      'the engine claimed the job again',
      async () => {
        const j = await engineJob();
        return (j.last_error ?? '').includes('not started twice') && j.locked_by === null;
      },
      () => sleep(200),
    );
    assert.equal(started, 2, 'no third attempt while the retry runs');
    assert.equal((await engineJob()).attempts, held.attempts, 'the busy claim used up no engine attempt');
    const attempts = await attemptsOfRun(tp.rt.control, r.id);
    assert.deepEqual(
      attempts.map((a) => a.state),
      ['lost', 'running'],
    );

    gates[1]!.release();
    await until(
      'the run ends',
      async () => (await run())!.state !== 'running',
      () => tp.coordinator.tick(),
    );
    assert.equal((await run())!.state, 'succeeded');
    assert.equal(started, 2);
  } finally {
    for (const g of gates) g.release();
    await tp.close();
  }
});
