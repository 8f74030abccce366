/**
 * The worker and the error catalog's retryable flag: a retryable error is tried again, a
 * non-retryable one fails the task at its first attempt; and when a task completes twice (a
 * worker thought lost comes back), the first successful attempt wins.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RemoraError } from '../src/core/errors.js';
import { emptyReport } from '../src/core/run-report.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import {
  attemptsOfRun,
  completeAttempt,
  getTask,
  startAttempt,
  tasksOfRun,
} from '../src/pipeline/tasks.repository.js';
import { openTestPipeline, type TestPipeline } from './helpers/pipeline.js';

/** Per day: how the task fails before it succeeds. */
const BEHAVIOUR: Record<string, { code: 'StorageNodeUnreachable' | 'MalformedInput'; failures: number }> = {
  '2024-05-01': { code: 'StorageNodeUnreachable', failures: 1 },
  '2024-05-02': { code: 'MalformedInput', failures: 1 },
};
const tries = new Map<string, number>();

const flaky: JobDefinition = {
  name: 'flaky',
  description: 'fails as BEHAVIOUR says, then succeeds',
  partition: 'day',
  inputs: {},
  deadlineMs: 60_000,
  maxAttempts: 4,
  split: () => Promise.resolve([{ key: 'only' }]),
  runTask: (ctx) => {
    const b = BEHAVIOUR[ctx.partition.day]!;
    const n = (tries.get(ctx.partition.day) ?? 0) + 1;
    tries.set(ctx.partition.day, n);
    if (n <= b.failures) throw new RemoraError(b.code, `try ${n} fails`);
    return Promise.resolve({ report: ctx.report.finish(), output: { try: n } });
  },
  commit: (ctx) => Promise.resolve({ output: ctx.tasks[0]?.output }),
};

let tp: TestPipeline;
before(async () => {
  // Engine retries wait exp(attempts) seconds; keep the retryable case to one failure (~3 s).
  tp = await openTestPipeline({ jobs: [flaky] });
  await tp.startWorker();
});
after(() => tp.close());

test('a retryable error is tried again until it succeeds', async () => {
  const day = '2024-05-01';
  await scheduleDay(tp.rt, day, 'test');
  const [run] = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 60_000 });
  assert.equal(run!.state, 'succeeded');
  const attempts = await attemptsOfRun(tp.rt.control, run!.id);
  assert.deepEqual(
    attempts.map((a) => a.state),
    ['failed', 'succeeded'],
  );
});

test('a non-retryable error fails the task at its first attempt', async () => {
  const day = '2024-05-02';
  await scheduleDay(tp.rt, day, 'test');
  const [run] = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 30_000 });
  assert.equal(run!.state, 'failed');
  const attempts = await attemptsOfRun(tp.rt.control, run!.id);
  assert.equal(attempts.length, 1, JSON.stringify(attempts));
  const [task] = await tasksOfRun(tp.rt.control, run!.id);
  assert.match(task!.error ?? '', /MalformedInput is not retryable/);
  assert.equal(tries.get(day), 1);
});

test('a task completed twice keeps the first successful attempt', async () => {
  const day = '2024-05-01';
  const [run] = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 1000 });
  const [task] = await tasksOfRun(tp.rt.control, run!.id);
  // Re-open the task as if two attempts were still running, then let both complete.
  await tp.rt.control.query(`UPDATE remora_pipeline.tasks SET state = 'queued' WHERE id = $1`, [task!.id]);
  const a1 = await startAttempt(tp.rt.control, {
    taskId: task!.id,
    engineAttempt: 9,
    worker: 'w1',
    engineWorker: null,
  });
  const a2 = await startAttempt(tp.rt.control, {
    taskId: task!.id,
    engineAttempt: 9,
    worker: 'w2',
    engineWorker: null,
  });
  const won1 = await completeAttempt(tp.rt.control, {
    taskId: task!.id,
    attemptId: a1,
    output: { who: 1 },
    report: emptyReport(),
  });
  const won2 = await completeAttempt(tp.rt.control, {
    taskId: task!.id,
    attemptId: a2,
    output: { who: 2 },
    report: emptyReport(),
  });
  assert.deepEqual([won1, won2], [true, false]);
  const after = await getTask(tp.rt.control, task!.id);
  assert.equal(after!.winningAttempt, a1);
  assert.deepEqual(after!.output, { who: 1 });
});
