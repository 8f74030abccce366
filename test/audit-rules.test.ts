/**
 * The audit's pure rules: like-with-like (invariant 5) as a table of cases, and the deep sample:
 * over any `cycle` consecutive days every copy is sampled exactly once (the hash is DuckDB's, as
 * the scan computes it), about 1/cycle of the copies each day.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { addDays } from '../src/core/days.js';
import { isRemoraError } from '../src/core/errors.js';
import { DuckPool } from '../src/dumps/duckdb.js';
import { checkLikeWithLike, deepSlot, UPLOADS_RE } from '../src/jobs/audit/audit.rules.js';

test('like with like: every snapshot strictly older than every listing, else InputsOutOfOrder naming both', () => {
  const s = (shard: string, t: string) => ({ shard, snapshotTime: t });
  const l = (node: string, t: string) => ({ node, startedAt: t });
  const cases: {
    name: string;
    snaps: ReturnType<typeof s>[];
    lists: ReturnType<typeof l>[];
    bad?: RegExp;
  }[] = [
    {
      name: 'all before',
      snaps: [s('1', '2024-03-01T00:01:00Z'), s('2', '2024-03-01T00:02:00Z')],
      lists: [l('n1', '2024-03-01T00:03:00Z')],
    },
    { name: 'no listings', snaps: [s('1', '2024-03-01T00:01:00Z')], lists: [] },
    {
      name: 'one snapshot after one listing',
      snaps: [s('1', '2024-03-01T00:01:00Z'), s('2', '2024-03-01T00:05:00Z')],
      lists: [l('n1', '2024-03-01T00:09:00Z'), l('n2', '2024-03-01T00:04:00Z')],
      bad: /snapshot of 2 .* listing of n2/,
    },
    {
      name: 'same instant is not older',
      snaps: [s('1', '2024-03-01T00:01:00Z')],
      lists: [l('n1', '2024-03-01T00:01:00Z')],
      bad: /not older/,
    },
  ];
  for (const c of cases) {
    const run = () => checkLikeWithLike('2024-03-01', c.snaps, c.lists);
    if (c.bad)
      assert.throws(
        run,
        (e) => isRemoraError(e, 'InputsOutOfOrder') && c.bad!.test((e as Error).message),
        c.name,
      );
    else assert.doesNotThrow(run, c.name);
  }
});

test('uploads exception: /<uuid>/uploads/… only', () => {
  const u = crypto.randomUUID();
  assert.ok(UPLOADS_RE.test(`/${u}/uploads/a1/${u}/0`));
  assert.ok(!UPLOADS_RE.test(`/${u}/stor/uploads/x`));
  assert.ok(!UPLOADS_RE.test(`/poseidon/uploads/x`));
});

test('deep sample: every copy exactly once in any window of `cycle` days, ~1/cycle a day', async () => {
  const duck = new DuckPool();
  try {
    const cycle = 30;
    const copies = Array.from({ length: 3000 }, (_, i) => [
      crypto.randomUUID(),
      `${(i % 6) + 1}.stor.dc1.remora.local`,
    ]);
    const values = copies.map(([o, n]) => `('${o}', '${n}')`).join(', ');
    const seen = new Map<string, number>();
    const start = '2024-02-20';
    const perDay: number[] = [];
    for (let i = 0; i < cycle; i++) {
      const slot = deepSlot(addDays(start, i), cycle);
      const rows = await duck.run(async (conn) =>
        (
          await conn.runAndReadAll(
            `SELECT oid, node FROM (VALUES ${values}) t(oid, node)
             WHERE ('0x' || left(md5(oid || '@' || node), 8))::BIGINT % ${cycle} = ${slot}`,
          )
        ).getRows(),
      );
      perDay.push(rows.length);
      for (const [o, n] of rows)
        seen.set(`${String(o)}@${String(n)}`, (seen.get(`${String(o)}@${String(n)}`) ?? 0) + 1);
    }
    assert.equal(seen.size, copies.length, 'every copy sampled');
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      'exactly once',
    );
    assert.ok(Math.max(...perDay) < (3 * copies.length) / cycle, `balanced: ${perDay.join(' ')}`);
    assert.equal(deepSlot('2024-02-20', 30), (deepSlot('2024-02-19', 30) + 1) % 30);
  } finally {
    await duck.close();
  }
});
