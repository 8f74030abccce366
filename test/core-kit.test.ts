/**
 * The job kit's small shared pieces: eachLimit, withBackoff, the byte throttle, day arithmetic
 * and the run report's malformed-share rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../src/core/clock.js';
import { eachLimit, mapLimit, Slots } from '../src/core/concurrency.js';
import { addDays, assertDay, daysBetween, isDay } from '../src/core/days.js';
import { isRemoraError, RemoraError } from '../src/core/errors.js';
import { withBackoff } from '../src/core/retry.js';
import { ReportBuilder } from '../src/core/run-report.js';
import { ByteThrottle } from '../src/storage/throttle.js';

test('eachLimit: never more than the limit at once, every item once, results in order', async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  const out = await mapLimit([...Array(20).keys()], 3, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setImmediate(r));
    seen.push(n);
    running--;
    return n * 2;
  });
  assert.equal(peak, 3);
  assert.deepEqual(
    [...seen].sort((a, b) => a - b),
    [...Array(20).keys()],
  );
  assert.deepEqual(
    out,
    [...Array(20).keys()].map((n) => n * 2),
  );
});

test('eachLimit: the first error stops new items, running ones finish, then it is thrown', async () => {
  const started: number[] = [];
  const finished: number[] = [];
  await assert.rejects(
    eachLimit([...Array(10).keys()], 2, async (n) => {
      started.push(n);
      await new Promise((r) => setImmediate(r));
      if (n === 1) throw new Error('boom 1');
      finished.push(n);
    }),
    /boom 1/,
  );
  assert.ok(started.length <= 3, `no new item after the failure: ${started.join(',')}`);
  assert.ok(finished.includes(0), 'the sibling running beside the failure finished');
  await assert.rejects(
    eachLimit([1], 0, () => Promise.resolve()),
    RangeError,
  );
});

test('Slots: callers sharing it never run more than its size at once, waiters go first in first served', async () => {
  const slots = new Slots(2);
  let running = 0;
  let most = 0;
  const order: string[] = [];
  const job = (name: string) =>
    slots.run(async () => {
      order.push(name);
      most = Math.max(most, ++running);
      await new Promise((r) => setImmediate(r));
      running--;
      if (name === 'a2') throw new Error('a2 failed');
      return name;
    });
  // Two callers (as two claim loops) each start their items with their own limit of 2.
  const a = Promise.allSettled([eachLimit(['a1', 'a2', 'a3'], 2, (n) => job(n).then(() => undefined))]);
  const b = Promise.all(['b1', 'b2'].map(job));
  assert.deepEqual(await b, ['b1', 'b2']);
  await a;
  assert.equal(most, 2);
  // a1 and a2 took both slots; b1, b2 waited and went in the order they came; a failure frees its slot.
  assert.deepEqual(order.slice(0, 4), ['a1', 'a2', 'b1', 'b2']);
  assert.throws(() => new Slots(0), RangeError);
});

test('withBackoff: retries retryable errors with growing waits, stops at once on others', async () => {
  const waits: number[] = [];
  const sleep = (ms: number) => {
    waits.push(ms);
    return Promise.resolve();
  };
  let tries = 0;
  const v = await withBackoff(
    () => {
      if (++tries < 3) throw new RemoraError('StorageNodeUnreachable', 'down');
      return Promise.resolve('ok');
    },
    { attempts: 5, baseDelayMs: 10, sleep },
  );
  assert.equal(v, 'ok');
  assert.deepEqual(waits, [10, 40]);
  tries = 0;
  await assert.rejects(
    withBackoff(
      () => {
        tries++;
        throw new RemoraError('UsageError', 'bad flag');
      },
      { attempts: 5, baseDelayMs: 10, sleep },
    ),
    (e) => isRemoraError(e) && e.code === 'UsageError',
  );
  assert.equal(tries, 1, 'a non-retryable error is not retried');
  tries = 0;
  await assert.rejects(
    withBackoff(
      () => {
        tries++;
        throw new RemoraError('StorageNodeUnreachable', 'down');
      },
      { attempts: 3, baseDelayMs: 1, sleep },
    ),
  );
  assert.equal(tries, 3, 'gives up after the attempts');
});

test('ByteThrottle: bytes pass at the configured rate after the burst', async () => {
  const clock = new ManualClock(0);
  const slept: number[] = [];
  const t = new ByteThrottle({
    bytesPerSecond: 1000,
    clock,
    sleep: (ms) => {
      slept.push(ms);
      clock.advance(ms);
      return Promise.resolve();
    },
  });
  await t.take(1000); // the burst
  assert.deepEqual(slept, []);
  await t.take(500);
  assert.deepEqual(slept, [500]);
  await t.take(2000);
  assert.deepEqual(slept, [500, 2000]);
  // 3,500 bytes in 2.5 s: one second of burst plus 2.5 s at 1,000 bytes/s.
  assert.equal(clock.now(), 2500);
  assert.throws(() => new ByteThrottle({ bytesPerSecond: 0 }), RangeError);
});

test('days: only calendar days; ranges inclusive and oldest first', () => {
  for (const bad of ['2026-02-30', '2026-13-45', '2026-1-1', 'abc', '2026-02-29', ''])
    assert.equal(isDay(bad), false, bad);
  assert.equal(isDay('2028-02-29'), true);
  assert.throws(
    () => assertDay('2026-02-30', '--date'),
    (e) => isRemoraError(e) && e.code === 'UsageError' && /--date/.test(e.message),
  );
  assert.equal(addDays('2026-12-31', 1), '2027-01-01');
  assert.deepEqual(daysBetween('2026-02-27', '2026-03-01'), ['2026-02-27', '2026-02-28', '2026-03-01']);
});

test('run report: malformed records past the share invalidate; skipped ones never do', () => {
  const skipped = new ReportBuilder().count('recordsScanned', 1000).count('skipped', 900).finish();
  assert.equal(skipped.verdict, 'ok');
  const malformed = new ReportBuilder().count('recordsScanned', 1000).count('malformed', 11).finish();
  assert.equal(malformed.verdict, 'invalid');
  assert.match(malformed.verdictReasons.join(' '), /malformed/);
  const few = new ReportBuilder().count('recordsScanned', 1000).count('malformed', 10).finish();
  assert.equal(few.verdict, 'ok');
  const long = new ReportBuilder().event('bad', 'error', 'x'.repeat(10_000)).finish();
  assert.equal((long.events['error:bad']!.examples[0] as string).length, 501);
});
