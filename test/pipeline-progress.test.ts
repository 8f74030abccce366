/**
 * `remora pipeline run --json` as a process with REMORA_LOG_FORMAT=json: stdout stays the one
 * JSON document; stderr has the progress as JSON lines — per running run its tasks done/left
 * and records/s, per day the runs finished and an ETA — printed only when a count changes, at
 * most every 2 s, and a final day line with every run finished.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openCliFixture, type CliFixture } from './helpers/pipeline-cli.js';

const P = '2024-04-01';
let f: CliFixture;

before(async () => {
  f = await openCliFixture({ dumpDays: [P] });
});
after(async () => f?.close());

test('pipeline run: task progress per running run and the day’s ETA on stderr; --json stdout unchanged', async () => {
  const started = Date.now();
  // No worker in the command, none yet elsewhere: the day's runs start and their tasks wait, so
  // the progress of running runs is printed whatever the speed of this machine; then a worker.
  const json = { REMORA_LOG_FORMAT: 'json' };
  const p = f.start(['--json', 'pipeline', 'run', '--date', P, '--no-worker', '--timeout', '120'], json);
  await p.waitForLog(/"msg":"progress run \d+ \S+ \S+: tasks 0 done, [1-9]\d* left/, 60_000);
  const worker = f.start(['worker', '--concurrency', '1'], json);
  const r = await p.exited;
  assert.equal((await worker.stop('SIGTERM')).code, 0);
  const elapsedS = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout) as { days: string[]; runs: { id: number; state: string }[] };
  assert.deepEqual(doc.days, [P]);
  assert.ok(doc.runs.length > 0 && doc.runs.every((x) => x.state === 'succeeded'));

  const lines = r.stderr
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const runLines = lines.filter((l) => typeof l.runId === 'number');
  const dayLines = lines.filter((l) => l.day === P && typeof l.runsTotal === 'number');
  assert.ok(runLines.length > 0, 'a running run’s progress is printed');
  const ids = new Set(doc.runs.map((x) => x.id));
  for (const l of runLines) {
    assert.ok(ids.has(Number(l.runId)), JSON.stringify(l));
    assert.equal(Number(l.tasksDone) + Number(l.tasksLeft) + Number(l.tasksFailed), l.tasksTotal);
    assert.equal(typeof l.recordsPerSecond, 'number');
    assert.match(
      String(l.msg),
      new RegExp(
        `^progress run ${String(l.runId)} ${String(l.job)} \\S+: tasks ${String(l.tasksDone)} done, ${String(l.tasksLeft)} left, [\\d.]+ records/s, ETA \\S+$`,
      ),
    );
  }
  // Sparse: a run's line only when its counts change (the same counts never twice in a row).
  const seen = new Map<unknown, string>();
  for (const l of runLines) {
    const k = `${String(l.tasksDone)}/${String(l.tasksFailed)}/${String(l.tasksTotal)}`;
    assert.notEqual(seen.get(l.runId), k, `run ${String(l.runId)} printed twice with ${k}`);
    seen.set(l.runId, k);
  }
  // At most every 2 s: the lines come in bursts (one tick's lines, written within a few ms),
  // the bursts 2 s apart but for the final one (printed as soon as nothing is active).
  const times = lines
    .filter((l) => String(l.msg).startsWith('progress'))
    .map((l) => Date.parse(String(l.time)))
    .sort((a, b) => a - b);
  const bursts: number[] = [];
  for (const t of times) if (bursts.length === 0 || t - bursts.at(-1)! > 500) bursts.push(t);
  assert.ok(bursts.length <= 2 + elapsedS / 2, `${bursts.length} bursts in ${elapsedS} s`);
  for (let i = 1; i < bursts.length - 1; i++)
    assert.ok(bursts[i]! - bursts[i - 1]! >= 2_000, `bursts ${i - 1} and ${i} within 2 s`);

  assert.ok(dayLines.length >= 1);
  const last = dayLines.at(-1)!;
  assert.deepEqual(
    [last.runsFinished, last.runsTotal, last.running, last.etaSeconds],
    [doc.runs.length, doc.runs.length, 0, 0],
    'the final day line: every run finished',
  );
  assert.match(
    String(last.msg),
    new RegExp(`^progress ${P}: \\d+/\\d+ runs finished, 0 running, 0 waiting, ETA 0s$`),
  );
});
