/**
 * The chaos day, small (docs/deployment.md "Chaos day"; the larger one is `npm run chaos`).
 * One seeded day end to end — a front-door workload, the daily pipeline run by two worker
 * processes with separate state directories, an evacuation with a retry — while a worker is
 * SIGKILLed, a storage node stopped and restarted, PostgreSQL restarted, a transfer corrupted,
 * a destination filled and a heartbeat left to go stale. Nothing may be lost.
 *
 * The seed is printed; REMORA_CHAOS_SEED=<n> replays another schedule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChaosDay, SMALL_DAY, type FaultKind } from './helpers/chaos-day.js';
import { defaultJobs } from '../src/jobs/catalog.js';
import { DEFAULT_SETTINGS } from '../src/pipeline/settings.js';

// 9: PostgreSQL restarts during unpack (front door, coordinator, workers and a workload all
// lose it), and the node being evacuated dies in the middle of its evacuation.
const SEED = Number(process.env.REMORA_CHAOS_SEED ?? 9);
const KINDS: FaultKind[] = [
  'sigkill-worker',
  'stop-storage-node',
  'restart-postgres',
  'corrupt-transfer',
  'fill-destination',
  'stale-heartbeat',
];

test(`a chaos day loses nothing (seed ${SEED})`, { timeout: 240_000 }, async (t) => {
  const lines: string[] = [];
  let r: Awaited<ReturnType<typeof runChaosDay>>;
  try {
    r = await runChaosDay({ seed: SEED, ...SMALL_DAY, log: (l) => lines.push(l) });
  } catch (err) {
    for (const l of lines.slice(-150)) t.diagnostic(l);
    throw err;
  }
  t.diagnostic(`seed ${SEED}: ${r.line}`);
  t.diagnostic(`timings (ms): ${JSON.stringify(r.timings)}`);
  const context = () =>
    [
      `seed ${SEED} (REMORA_CHAOS_SEED=${SEED} replays it): ${r.line}`,
      ...r.faults.map((f) => `${f.kind} ${f.phase} ${f.target} injected=${f.injected}: ${f.detail}`),
      ...lines.slice(-80),
    ].join('\n');

  // Every kind of fault happened, for real.
  for (const kind of KINDS)
    assert.ok(
      r.faults.some((f) => f.kind === kind && f.injected),
      `${kind} was injected\n${context()}`,
    );
  assert.deepEqual(
    r.faults.filter((f) => !f.injected),
    [],
    context(),
  );

  // Nothing lost: every copy of every live record read back with its MD5.
  assert.ok(r.copiesChecked > 100, `${r.copiesChecked} copies checked`);
  assert.deepEqual(r.copiesLost, [], context());
  assert.deepEqual(r.fewerDatacenters, [], context());
  assert.deepEqual(r.tombstonedReferenced, [], context());
  assert.deepEqual(r.divergentObjects, [], `records of one objectId name the same copies\n${context()}`);
  assert.match(
    r.line,
    /^faults injected \d+, runs completed (\d+)\/\1( \(\d+ failed truthfully and then rerun\))?, copies lost 0, records with fewer datacenters 0, referenced copies tombstoned 0$/,
  );

  // Every run completed, or failed truthfully (said why, never committed) and then succeeded on rerun.
  assert.equal(r.runsCompleted, r.runsTotal, context());
  // Every job of the daily pipeline ran (snapshot and unpack per shard, then one run each),
  // except the usage summary: the chaos day is today, and a day's summary runs once the day has
  // ended (docs/metering.md "Daily summary").
  assert.deepEqual(
    [...new Set(r.runs.map((x) => x.job))].sort(),
    defaultJobs(DEFAULT_SETTINGS)
      .map((j) => j.name)
      .filter((n) => n !== 'usage-summary')
      .sort(),
  );
  // gc ran with no grace: it tombstoned the morning's garbage, and no copy a live record names.
  const gc = r.runs.find((x) => x.job === 'gc');
  if (gc) assert.ok((gc.counters.copiesTombstoned ?? 0) > 0, JSON.stringify(gc.counters));
  for (const run of r.runs) {
    assert.equal(run.state, 'succeeded', `${run.job} ${run.partition}\n${context()}`);
    for (const f of run.failedBefore) assert.ok(f.truthful, `${run.job} run ${f.runId}: ${f.error}`);
  }
  assert.deepEqual(r.unexpectedExits, [], 'no worker process died by itself');

  // The SIGKILLed worker's task was retried by another worker process.
  assert.equal(r.killedAttempt?.state, 'lost', context());
  assert.ok(
    r.killedAttempt.retriedBy && r.killedAttempt.retriedBy !== r.killedAttempt.worker,
    `retried elsewhere: ${JSON.stringify(r.killedAttempt)}`,
  );
  // The corrupted transfer was refused by the destination's MD5 check: no node holds those bytes.
  assert.ok(r.corruptedReads.length > 0, context());
  for (const x of r.corruptedReads) assert.deepEqual(x.committedOn, [], `${JSON.stringify(x)}\n${context()}`);
  // The filled destination refused its copies (507), and the retry placed them elsewhere.
  const outcomes = r.rebalance.runs.map((x) => x.outcomes);
  assert.ok(
    outcomes.some((o) => (o['skipped:DestinationInsufficientSpace'] ?? 0) > 0),
    `a 507 was met: ${JSON.stringify(outcomes)}`,
  );
  // Users linked to, overwrote and deleted objects while they moved; the checks above cover them.
  assert.ok(r.duringMoves.links > 0, JSON.stringify(r.duringMoves));
  // The retry placed nothing on the node whose heartbeat went stale, nor on the full one.
  assert.deepEqual(r.rebalance.retryChoseUnfit, [], context());
  assert.ok(r.rebalance.safe, r.rebalance.verdict);
  assert.ok(r.rebalance.retryRounds >= 1);
});
