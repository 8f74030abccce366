/** Worker processes: a SIGKILLed worker's task is retried elsewhere; two workers share a run. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { runsBetween } from '../src/pipeline/runs.repository.js';
import { attemptsOfRun } from '../src/pipeline/tasks.repository.js';
import { openTestPipeline, spawnWorker, type TestPipeline } from './helpers/pipeline.js';
import { readText, SLOW_MARKER } from './helpers/pipeline-jobs.js';

const SHARDS = ['2.moray.remora.local', '3.moray.remora.local'] as const;
let tp: TestPipeline;
const children: ChildProcess[] = [];

before(async () => {
  tp = await openTestPipeline();
});
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await tp.close();
});

async function seed(day: string) {
  await tp.store.put(`/test/in/${day}/${SHARDS[0]}.txt`, ['1', '2', '3', '4', '5'].join('\n'));
  await tp.store.put(`/test/in/${day}/${SHARDS[1]}.txt`, ['10', '11', '12', '13'].join('\n'));
}

async function sumRunId(day: string): Promise<number> {
  return (await runsBetween(tp.rt.control, day, day)).find((r) => r.job === 'sum')!.id;
}

test('a worker SIGKILLed mid-task: the task is retried elsewhere and the output is identical', async () => {
  // Only the child worker is alive until it is killed; the reference run comes after.
  const day = '2024-06-01';
  await seed(day);
  await tp.store.put(SLOW_MARKER, '0'); // tasks of `sum` block until the marker goes
  const { child, name } = await spawnWorker(tp.config);
  children.push(child);
  await scheduleDay(tp.rt, day, 'test');
  const deadline = Date.now() + 20_000;
  let runId: number;
  for (;;) {
    await tp.coordinator.tick();
    const runs = await runsBetween(tp.rt.control, day, day);
    const sum = runs.find((r) => r.job === 'sum');
    if (sum?.state === 'running') {
      runId = sum.id;
      const attempts = await attemptsOfRun(tp.rt.control, runId);
      if (attempts.some((a) => a.worker === name && a.state === 'running')) break;
    }
    assert.ok(Date.now() < deadline, 'the child never started a sum task');
    await sleep(50);
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  await tp.store.delete(SLOW_MARKER);
  const local = await tp.startWorker();
  const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 30_000 });
  assert.ok(
    runs.every((r) => r.state === 'succeeded'),
    runs.map((r) => `${r.job}:${r.state}`).join(),
  );

  const attempts = await attemptsOfRun(tp.rt.control, runId);
  const lost = attempts.filter((a) => a.state === 'lost');
  assert.ok(lost.length >= 1, 'the killed attempts are recorded as lost');
  assert.ok(lost.every((a) => a.worker === name));
  for (const l of lost) {
    const retried = attempts.find((a) => a.taskKey === l.taskKey && a.state === 'succeeded')!;
    assert.notEqual(retried.worker, name, 'retried by another worker');
    assert.notEqual(retried.outputPrefix, l.outputPrefix, 'each attempt writes under its own name');
  }

  // Identical output: an uninterrupted run of the same input on another day.
  const refDay = '2024-06-02';
  await seed(refDay);
  await scheduleDay(tp.rt, refDay, 'test');
  await driveDays(tp.rt, tp.coordinator, [refDay], { timeoutMs: 20_000 });
  const got = await readText(tp.store, `/test/out/${day}/total.json`);
  assert.equal(got, await readText(tp.store, `/test/out/${refDay}/total.json`));
  assert.deepEqual(JSON.parse(got!), { total: 61, parts: 4 });
  await local.stop(); // the next test wants only child workers
});

test('two worker processes share one run’s tasks', async () => {
  const day = '2024-06-03';
  await seed(day);
  await tp.store.put(SLOW_MARKER, '300'); // each sum task takes ≥300 ms, so both workers get some
  try {
    const a = await spawnWorker(tp.config, { concurrency: 1 });
    const b = await spawnWorker(tp.config, { concurrency: 1 });
    children.push(a.child, b.child);
    await scheduleDay(tp.rt, day, 'test');
    const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 30_000 });
    assert.ok(runs.every((r) => r.state === 'succeeded'));
    const attempts = await attemptsOfRun(tp.rt.control, await sumRunId(day));
    const workers = new Set(attempts.filter((x) => x.state === 'succeeded').map((x) => x.worker));
    assert.equal(attempts.length, 4);
    assert.ok(workers.has(a.name) && workers.has(b.name), `tasks ran on ${[...workers].join(', ')}`);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
  } finally {
    await tp.store.delete(SLOW_MARKER);
  }
});
