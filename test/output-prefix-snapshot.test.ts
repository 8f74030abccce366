/**
 * The snapshot job side by side with the original (`pipeline.outputPrefix`,
 * src/jobs/snapshot/snapshot.job.ts): today's dump is written under the prefix, not among the
 * original's manatee dumps; a past day uses Remora's own dump under the prefix when there is
 * one, else the original's (read, never written). Real shards, the executor, a manual clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/core/clock.js';
import { backupPath } from '../src/dumps/layout.js';
import { snapshotJobWith, type SnapshotOutput } from '../src/jobs/snapshot/snapshot.job.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { openTestPipeline } from './helpers/pipeline.js';

const PREFIX = '/poseidon/stor/side-by-side';
const TODAY = '2024-06-03';
const OURS_DAY = '2024-06-01';
const THEIRS_DAY = '2024-06-02';

test("snapshot with an output prefix: today's dump under the prefix; a past day prefers Remora's own dump, else reads the original's", async () => {
  const tp = await openTestPipeline({ jobs: [snapshotJobWith({ outputPrefix: PREFIX })] });
  tp.rt.services.clock = new ManualClock(Date.parse(`${TODAY}T06:00:00Z`));
  try {
    const shards = [...tp.rt.services.tier.shards.keys()];
    const at = (day: string) => new Date(`${day}T01:00:00Z`);
    const original = new Map<string, string>();
    for (const shard of shards) {
      // The original's dumps of both past days, and Remora's own of one, under the prefix.
      for (const day of [OURS_DAY, THEIRS_DAY]) {
        const p = backupPath(shard, at(day));
        const body = `-- the original's dump of ${shard} ${day}\n`;
        await tp.store.put(p, body, { 'm-snapshot-time': at(day).toISOString() });
        original.set(p, body);
      }
      await tp.store.put(`${PREFIX}${backupPath(shard, at(OURS_DAY))}`, `-- Remora's dump of ${shard}\n`, {
        'm-snapshot-time': at(OURS_DAY).toISOString(),
      });
    }
    const originalDirs = shards.map((s) => `/poseidon/stor/manatee_backups/${s}/`);
    const before = new Set((await Promise.all(originalDirs.map((d) => tp.store.list(d)))).flat());

    for (const day of [TODAY, OURS_DAY, THEIRS_DAY]) await scheduleDay(tp.rt, day, 'test');
    await tp.startWorker();
    const runs = await driveDays(tp.rt, tp.coordinator, [TODAY, OURS_DAY, THEIRS_DAY], { timeoutMs: 60_000 });
    assert.equal(runs.length, 3 * shards.length);
    assert.ok(
      runs.every((r) => r.state === 'succeeded'),
      runs.map((r) => r.state).join(),
    );
    for (const r of runs) {
      const out = r.output as SnapshotOutput;
      if (r.day === TODAY) {
        // Named by the shard's own clock (the instant of the snapshot), not the test's.
        const under = `${PREFIX}/poseidon/stor/manatee_backups/${out.shard}/`;
        assert.ok(out.path.startsWith(under), `${out.path}: today's dump under the prefix`);
        assert.equal((await tp.store.head(out.path))?.meta['m-shard'], out.shard, 'a dump Remora took');
      } else if (r.day === OURS_DAY) {
        assert.equal(out.path, `${PREFIX}${backupPath(out.shard, at(OURS_DAY))}`, "Remora's own dump first");
      } else {
        assert.equal(out.path, backupPath(out.shard, at(THEIRS_DAY)), "else the original's");
      }
    }
    // Nothing was added to, or changed in, the original's dump directories.
    const after = new Set((await Promise.all(originalDirs.map((d) => tp.store.list(d)))).flat());
    assert.deepEqual([...after].sort(), [...before].sort());
    for (const [p, body] of original) assert.equal(await readObjectText(tp.store, p), body, p);
  } finally {
    await tp.close();
  }
});
