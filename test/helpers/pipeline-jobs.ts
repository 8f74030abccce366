/**
 * Small jobs that exercise the executor in tests (its fixture, not a stand-in for real jobs):
 *
 *   extract (day-shard, index shards)  external input /test/in/<day>/<shard>.txt (numbers, one a line)
 *   sum     (day)                      upstream extract; one task per residue mod PARTS; commit
 *                                      writes /test/out/<day>/total.json
 *   publish (day)                      upstream sum; copies the total
 *
 * A task sleeps while /test/control/slow exists (so a test can kill its worker mid-task), and
 * records each execution in /test/executions/<job>/<day>/<task>-<attempt> (so a test can
 * count how often each ran).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { readObjectText, type ObjectStore } from '../../src/objectstore/object-store.js';
import type { JobDefinition, TaskContext } from '../../src/pipeline/job.js';

export const PARTS = 4;
export const SLOW_MARKER = '/test/control/slow';

export async function readText(store: ObjectStore, p: string): Promise<string | undefined> {
  if (!(await store.head(p))) return undefined;
  return readObjectText(store, p);
}

async function whileSlow(ctx: TaskContext): Promise<void> {
  const store = ctx.services.store;
  while (await store.head(SLOW_MARKER)) {
    if (ctx.signal.aborted) return;
    await sleep(50);
    const ms = Number((await readText(store, SLOW_MARKER)) ?? '0');
    if (ms > 0) {
      await sleep(ms);
      return;
    }
  }
}

async function recordExecution(ctx: TaskContext, job: string): Promise<void> {
  await ctx.services.store.put(
    `/test/executions/${job}/${ctx.partition.day}/${ctx.task.key}-${ctx.attemptId}`,
    'x',
  );
}

const extract: JobDefinition = {
  name: 'extract',
  description: 'read the day input of one shard',
  partition: 'day-shard',
  shardRole: 'index',
  inputs: {
    external: [
      {
        name: 'test input',
        exists: async ({ services, partition }) => {
          const p = `/test/in/${partition.day}/${partition.shard}.txt`;
          return { ready: (await services.store.head(p)) !== undefined, detail: p };
        },
      },
    ],
  },
  deadlineMs: 60_000,
  maxAttempts: 3,
  split: () => Promise.resolve([{ key: 'all' }]),
  runTask: async (ctx) => {
    await recordExecution(ctx, 'extract');
    const text =
      (await readText(ctx.services.store, `/test/in/${ctx.partition.day}/${ctx.partition.shard}.txt`)) ?? '';
    const good: number[] = [];
    for (const line of text.split('\n').filter(Boolean)) {
      ctx.report.count('recordsScanned');
      if (/^-?\d+$/.test(line)) {
        good.push(Number(line));
        ctx.report.count('processed');
      } else {
        ctx.report.count('malformed').event('malformed-line', 'error', line);
      }
    }
    const path = `${ctx.outputPrefix}numbers.json`;
    await ctx.services.store.put(path, JSON.stringify(good));
    return { report: ctx.report.finish(), output: { path } };
  },
  commit: (ctx) => Promise.resolve({ output: ctx.tasks[0]!.output }),
};

const sum: JobDefinition = {
  name: 'sum',
  description: 'sum every shard’s numbers, one task per residue',
  partition: 'day',
  inputs: { upstream: ['extract'] },
  deadlineMs: 60_000,
  maxAttempts: 3,
  split: () =>
    Promise.resolve(Array.from({ length: PARTS }, (_, i) => ({ key: `p${i}`, params: { residue: i } }))),
  runTask: async (ctx) => {
    await recordExecution(ctx, 'sum');
    await whileSlow(ctx);
    const { residue } = ctx.task.params as { residue: number };
    let total = 0;
    for (const u of ctx.upstream) {
      const nums = JSON.parse(
        (await readText(ctx.services.store, (u.output as { path: string }).path))!,
      ) as number[];
      for (const n of nums) {
        if (((n % PARTS) + PARTS) % PARTS !== residue) continue;
        total += n;
        ctx.report.count('recordsScanned');
      }
    }
    const path = `${ctx.outputPrefix}partial.json`;
    await ctx.services.store.put(path, JSON.stringify({ residue, total }));
    return { report: ctx.report.finish(), output: { path } };
  },
  commit: async (ctx) => {
    let total = 0;
    for (const t of ctx.tasks) {
      total += (
        JSON.parse((await readText(ctx.services.store, (t.output as { path: string }).path))!) as {
          total: number;
        }
      ).total;
    }
    const body = JSON.stringify({ total, parts: ctx.tasks.length });
    await ctx.services.store.put(`${ctx.runPrefix}total.json`, body);
    await ctx.services.store.put(`/test/out/${ctx.partition.day}/total.json`, body);
    return { output: { path: `${ctx.runPrefix}total.json`, total } };
  },
};

const publish: JobDefinition = {
  name: 'publish',
  description: 'publish the total',
  partition: 'day',
  inputs: { upstream: ['sum'] },
  deadlineMs: 60_000,
  split: () => Promise.resolve([{ key: 'all' }]),
  runTask: async (ctx) => {
    await recordExecution(ctx, 'publish');
    return { report: ctx.report.finish(), output: ctx.upstream[0]?.output };
  },
  commit: (ctx) => Promise.resolve({ output: ctx.tasks[0]!.output }),
};

export const TEST_JOBS: JobDefinition[] = [extract, sum, publish];
