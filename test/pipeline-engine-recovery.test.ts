/**
 * Two ways the chaos day (docs/deployment.md "Chaos day") stranded pipeline tasks, each replayed:
 *
 *  - a worker claimed an engine job and died before it recorded an attempt: no attempt
 *    heartbeat covers the job, and graphile-worker unlocks it only after 4 hours; the reaper now
 *    releases a job locked past `staleAfterMs` whose task has no running attempt;
 *  - PostgreSQL went away as a task ended: graphile-worker 0.17.3 could not record the job's end
 *    and left that promise unhandled, which killed the worker process; now the engine's runner
 *    shuts down instead, the worker starts another, and the task is retried.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FAST, openTestPipeline, servicesFor } from './helpers/pipeline.js';
import { readText, SLOW_MARKER, TEST_JOBS } from './helpers/pipeline-jobs.js';
import { testConfig } from './helpers/pg.js';
import { freePort } from './helpers/net.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { runsBetween } from '../src/pipeline/runs.repository.js';
import { attemptsOfRun } from '../src/pipeline/tasks.repository.js';
import { ENGINE_SCHEMA } from '../src/pipeline/engine.js';
import { Coordinator } from '../src/pipeline/coordinator.js';
import { openRuntime } from '../src/pipeline/runtime.js';
import { PipelineWorker } from '../src/pipeline/worker.js';
import { MetadataTier } from '../src/metadata/metadata-tier.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../src/metadata/postgres-server.js';
import type { ObjectStore } from '../src/objectstore/object-store.js';
import type { JobDefinition } from '../src/pipeline/job.js';
import { SCHEMA } from '../src/pipeline/runs.repository.js';
import { isRemoraError } from '../src/core/errors.js';

const SHARDS = ['2.moray.remora.local', '3.moray.remora.local'] as const;

async function seed(store: ObjectStore, day: string): Promise<void> {
  await store.put(`/test/in/${day}/${SHARDS[0]}.txt`, ['1', '2', '3', '4', '5'].join('\n'));
  await store.put(`/test/in/${day}/${SHARDS[1]}.txt`, ['10', '11', '12', '13'].join('\n'));
}

test('a job locked by a worker that died before recording its attempt is released, not left for 4 hours', async () => {
  const tp = await openTestPipeline();
  try {
    const day = '2024-07-01';
    await seed(tp.store, day);
    await scheduleDay(tp.rt, day, 'test');
    await tp.coordinator.tick(); // the extract runs start: their engine jobs are queued
    // What that worker left: a lock on one job, and no attempt row.
    const locked = await tp.rt.control.query<{ key: string }>(
      `UPDATE ${ENGINE_SCHEMA}._private_jobs SET locked_at = now(), locked_by = 'ghost-worker'
        WHERE id = (SELECT min(id) FROM ${ENGINE_SCHEMA}._private_jobs) RETURNING key`,
    );
    assert.equal(locked.rowCount, 1);
    await tp.startWorker();
    const runs = await driveDays(tp.rt, tp.coordinator, [day], { timeoutMs: 30_000 });
    assert.ok(
      runs.every((r) => r.state === 'succeeded'),
      runs.map((r) => `${r.job}:${r.state}`).join(),
    );
    // Released by whichever reaped first: the coordinator's tick or the worker's heartbeat.
    assert.ok(
      tp.logs.some((l) => /released/.test(l) && l.includes('ghost-worker')),
      tp.logs.join('\n'),
    );
    assert.deepEqual(JSON.parse((await readText(tp.store, `/test/out/${day}/total.json`))!), {
      total: 61,
      parts: 4,
    });
  } finally {
    await tp.close();
  }
});

test(
  'PostgreSQL restarted as a task ends: the worker outlives it and the task is done',
  { timeout: 120_000 },
  async () => {
    // A private PostgreSQL, so this test can stop it.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-engine-pg-'));
    fs.chmodSync(dir, 0o755);
    const port = await freePort();
    let pg: RunningPostgres | undefined = await startEmbeddedPostgres(path.join(dir, 'data'), port);
    const base = testConfig();
    const config = { ...base, postgres: { ...base.postgres, url: pg.url, databasePrefix: 'recovery' } };
    const logs: string[] = [];
    try {
      const tier = await MetadataTier.open(config, pg.url);
      const services = await servicesFor(config, tier, logs);
      const rt = await openRuntime(services, TEST_JOBS, FAST);
      const coordinator = new Coordinator(rt);
      const worker = new PipelineWorker(rt);
      try {
        await worker.start();
        const day = '2024-07-02';
        await seed(services.store, day);
        await services.store.put(SLOW_MARKER, '0'); // sum tasks wait until it goes
        await scheduleDay(rt, day, 'test');
        const deadline = Date.now() + 30_000;
        for (;;) {
          await coordinator.tick();
          const sum = (await runsBetween(rt.control, day, day)).find((r) => r.job === 'sum');
          const running = sum && (await attemptsOfRun(rt.control, sum.id)).some((a) => a.state === 'running');
          if (running) break;
          assert.ok(Date.now() < deadline, 'no sum task started');
          await sleep(50);
        }
        await pg.stop();
        pg = undefined;
        // The waiting tasks end now, with PostgreSQL gone: neither their attempt nor their job's
        // end can be recorded (graphile-worker's failJob used to take the process with it).
        await services.store.delete(SLOW_MARKER);
        const until = Date.now() + 30_000;
        while (!logs.some((l) => l.startsWith('job engine: Failed task'))) {
          assert.ok(Date.now() < until, `no task ended:\n${logs.join('\n')}`);
          await sleep(50);
        }
        pg = await startEmbeddedPostgres(path.join(dir, 'data'), port);
        const runs = await driveDays(rt, coordinator, [day], { timeoutMs: 60_000 });
        assert.ok(
          runs.every((r) => r.state === 'succeeded'),
          `${runs.map((r) => `${r.job}:${r.state}`).join()}\n${logs.join('\n')}`,
        );
        // The runner that could not record the job's end stopped, and another took over.
        assert.ok(
          logs.some((l) => l.includes('job engine stopped by itself')),
          logs.join('\n'),
        );
        assert.deepEqual(JSON.parse((await readText(services.store, `/test/out/${day}/total.json`))!), {
          total: 61,
          parts: 4,
        });
      } finally {
        await worker.stop();
        await services.duck.close();
        await tier.close();
      }
    } finally {
      await pg?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(config.stateDir, { recursive: true, force: true });
    }
  },
);

test('an attempt declared lost while its worker still runs it is stopped (AttemptLost), so its side effects never land after its retry', async () => {
  let reason: unknown;
  let started = false;
  const hold: JobDefinition = {
    name: 'hold',
    description: 'runs until stopped',
    deadlineMs: 60_000,
    maxAttempts: 1,
    partition: 'day',
    inputs: { external: [{ name: 'always', exists: () => Promise.resolve({ ready: true }) }] },
    split: () => Promise.resolve([{ key: 'hold' }]),
    runTask: async (ctx) => {
      started = true;
      const until = Date.now() + 60_000;
      while (!ctx.signal.aborted && Date.now() < until) await sleep(20);
      reason = ctx.signal.reason;
      return { report: ctx.report.finish() };
    },
    commit: () => Promise.resolve({ output: null }),
  };
  const tp = await openTestPipeline({ jobs: [hold] });
  try {
    await scheduleDay(tp.rt, '2024-07-03', 'test');
    await tp.coordinator.tick();
    await tp.startWorker();
    for (let i = 0; i < 500 && !started; i++) await sleep(20);
    assert.ok(started, 'the task started');
    // What a reaper elsewhere does when this process stalls past staleAfterMs.
    const lost = await tp.rt.control.query(
      `UPDATE ${SCHEMA}.attempts SET state = 'lost', finished_at = now() WHERE state = 'running'`,
    );
    assert.equal(lost.rowCount, 1);
    for (let i = 0; i < 500 && reason === undefined; i++) await sleep(20);
    assert.ok(isRemoraError(reason, 'AttemptLost'), `stopped with ${String(reason)}`);
  } finally {
    await tp.close();
  }
});
