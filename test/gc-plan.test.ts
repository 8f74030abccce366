/**
 * The GC decision (src/jobs/gc/gc.plan.ts) as tables of cases, with the original's worked
 * example (mola docs/gc-design-alternatives.md, MANTA-REFERENCE §3.1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideObject, type DeleteRecord, type GcOptions } from '../src/jobs/gc/gc.plan.js';
import { GcActions, PLAN_HEADER, planChunks, planLine, readPlanLine } from '../src/jobs/gc/gc.actions.js';

const OID = '0dbe2527-e6b2-e1bc-ecf6-f4fe07b2451d';
const OWNER = '074d493f-c3e5-cf02-bb85-c30c1bf85de5';
const CREATOR = '1b2c3d4e-0000-4000-8000-000000000009';
const H = 3_600_000;
const DAY = 24 * H;
const T0 = Date.parse('2026-11-20T00:00:00Z');

function del(
  shard: string,
  mtime: number,
  over: Record<string, unknown> = {},
  sharks = [
    { manta_storage_id: '1.stor', datacenter: 'dc1' },
    { manta_storage_id: '2.stor', datacenter: 'dc2' },
  ],
): DeleteRecord {
  return {
    shard,
    key: `/${OID}/${mtime}`,
    etag: 'ABCDEF01',
    mtime,
    value: JSON.stringify({
      objectId: OID,
      owner: OWNER,
      type: 'object',
      contentLength: 10,
      sharks,
      ...over,
    }),
  };
}

const opts = (now: number, earliestSnapshotMs = now - H): GcOptions => ({
  now,
  graceMs: 2 * DAY,
  earliestSnapshotMs,
});

function verdicts(live: { shard: string; key: string }[], deletes: DeleteRecord[], o: GcOptions) {
  return decideObject({ objectId: OID, live, deletes }, o).map((d) => ({
    shard: d.record.shard,
    verdict: d.verdict,
    cleanup: d.cleanup,
    tombstone: d.tombstone.map((c) => `${c.node}:${c.owner}`),
  }));
}

test('the worked example: two keys on two shards, deleted at t3 and t4', () => {
  // /k on shard A and /l on shard B point at one objectId; /k deleted at t3, /l at t4.
  const t3 = T0 + 3 * H;
  const t4 = T0 + 4 * H;
  const records = [del('A', t3), del('B', t4)];
  // The next day: A's record is redundant at once (a later record exists), B's waits for grace.
  assert.deepEqual(verdicts([], records, opts(T0 + DAY)), [
    { shard: 'A', verdict: 'superseded', cleanup: true, tombstone: [] },
    { shard: 'B', verdict: 'waiting-grace', cleanup: false, tombstone: [] },
  ]);
  // After the grace period, only B's record remains and the copies go.
  assert.deepEqual(verdicts([], [del('B', t4)], opts(t4 + 2 * DAY + 1)), [
    { shard: 'B', verdict: 'eligible', cleanup: true, tombstone: [`1.stor:${OWNER}`, `2.stor:${OWNER}`] },
  ]);
});

test('decision table', () => {
  const now = T0 + 10 * DAY;
  const old = now - 5 * DAY;
  type Case = [string, { shard: string; key: string }[], DeleteRecord[], GcOptions, string[]];
  const cases: Case[] = [
    [
      'a live reference anywhere makes the record redundant',
      [{ shard: 'B', key: '/x/stor/l' }],
      [del('A', old)],
      opts(now),
      ['live-reference+cleanup'],
    ],
    [
      'newer than the earliest snapshot: not provable, even with a live ref',
      [{ shard: 'B', key: '/x' }],
      [del('A', now - 10)],
      opts(now, now - H),
      ['not-provable'],
    ],
    ['inside the grace period: wait', [], [del('A', now - DAY)], opts(now), ['waiting-grace']],
    ['exactly at the grace period: still wait', [], [del('A', now - 2 * DAY)], opts(now), ['waiting-grace']],
    [
      'past the grace period: tombstone every copy, then clean up',
      [],
      [del('A', old)],
      opts(now),
      ['eligible+cleanup:2'],
    ],
    ['zero-byte: clean up only', [], [del('A', old, {}, [])], opts(now), ['zero-byte+cleanup']],
    [
      'zero-byte inside grace: clean up only (there is nothing to wait for)',
      [],
      [del('A', now - H, {}, [])],
      opts(now, now),
      ['zero-byte+cleanup'],
    ],
    [
      'a later record that is not provable yet still supersedes',
      [],
      [del('A', old), del('B', now - 10)],
      opts(now, now - H),
      ['superseded+cleanup', 'not-provable'],
    ],
    [
      'two records of the same instant both decide (copies deduplicated by the runner)',
      [],
      [del('A', old), del('B', old)],
      opts(now),
      ['eligible+cleanup:2', 'eligible+cleanup:2'],
    ],
    [
      'deleted in the very millisecond of the earliest snapshot: not proof yet',
      [],
      [del('A', now - 3 * DAY)],
      opts(now, now - 3 * DAY),
      ['not-provable'],
    ],
    [
      'a malformed later record does not supersede (it names no copies): the earlier one decides',
      [],
      [del('A', old), { ...del('B', old + H), value: '{nope' }],
      opts(now),
      ['eligible+cleanup:2', 'malformed'],
    ],
    [
      'a later record inside grace supersedes an eligible one; it waits',
      [],
      [del('A', old), del('B', now - 2 * H)],
      opts(now),
      ['superseded+cleanup', 'waiting-grace'],
    ],
    ['not JSON', [], [{ ...del('A', old), value: '{nope' }], opts(now), ['malformed']],
    ['no owner', [], [del('A', old, { owner: '' })], opts(now), ['malformed']],
    [
      'another objectId inside',
      [],
      [del('A', old, { objectId: 'ffffffff-0000-4000-8000-000000000000' })],
      opts(now),
      ['malformed'],
    ],
    [
      'a shark without a storage id',
      [],
      [del('A', old, {}, [{ manta_storage_id: '', datacenter: 'dc1' }])],
      opts(now),
      ['malformed'],
    ],
    ['sharks not a list', [], [del('A', old, { sharks: 'x' })], opts(now), ['malformed']],
    [
      'a key that is not /<objectId>/<ms>',
      [],
      [{ ...del('A', old), key: `/${OID}` }],
      opts(now),
      ['malformed'],
    ],
  ];
  for (const [name, live, deletes, o, want] of cases) {
    const got = decideObject({ objectId: OID, live, deletes }, o).map(
      (d) =>
        `${d.verdict}${d.cleanup ? '+cleanup' : ''}${d.tombstone.length ? `:${d.tombstone.length}` : ''}`,
    );
    assert.deepEqual(got, want, name);
  }
});

test('copies are named at the path they have: creator before owner', () => {
  const now = T0 + 10 * DAY;
  const [d] = decideObject(
    { objectId: OID, live: [], deletes: [del('A', now - 5 * DAY, { creator: CREATOR })] },
    opts(now),
  );
  assert.deepEqual(
    d!.tombstone.map((c) => c.owner),
    [CREATOR, CREATOR],
  );
  const [bad] = decideObject(
    { objectId: OID, live: [], deletes: [del('A', now - 5 * DAY, { creator: 'not-a-uuid' })] },
    opts(now),
  );
  assert.equal(bad!.verdict, 'malformed');
  assert.deepEqual(bad!.tombstone, []);
});

test('copies are named with the objectId as the record spells it (the file name on its node)', () => {
  const now = T0 + 10 * DAY;
  const upper = OID.toUpperCase();
  const [d] = decideObject(
    {
      objectId: OID,
      live: [],
      deletes: [{ ...del('A', now - 5 * DAY, { objectId: upper }), key: `/${upper}/${now - 5 * DAY}` }],
    },
    opts(now),
  );
  assert.equal(d!.verdict, 'eligible');
  assert.deepEqual(
    d!.tombstone.map((c) => c.objectId),
    [upper, upper],
  );
});

test('the plan in buffers: every line, in order, whole, in UTF-8 (multi-byte strings, a line over a buffer)', () => {
  const d = (key: string, node: string) => ({
    verdict: 'eligible' as const,
    record: { shard: 'A', key, etag: 'E', mtime: 1 },
    cleanup: true,
    copies: 1,
    tombstone: [{ node, owner: OWNER, objectId: OID }],
  });
  const decisions = [
    ...Array.from({ length: 5000 }, (_, i) => d(`/${OID}/${i}`, `n${i}.stör"\u2028${'😀'.repeat(100)}`)),
    d('/big', 'x'.repeat(3 << 20)),
    d('/after', 'é'),
  ];
  const chunks = planChunks(decisions);
  assert.ok(chunks.length > 2, 'more than one buffer');
  assert.equal(
    Buffer.concat(chunks).toString('utf8'),
    PLAN_HEADER + decisions.map((x) => `${planLine(x)}\n`).join(''),
  );
  assert.deepEqual(planChunks([]), [Buffer.from(PLAN_HEADER)]);
});

test('a plan line reads back as the decision, whatever its strings hold (tabs, newlines, backslashes escaped)', () => {
  const strings = [
    'A',
    '',
    'a\tb',
    'a\nb',
    'a\rb',
    'a\\b',
    '\\t',
    'a\\\tb',
    '\\',
    'stör',
    '\u2028',
    '😀',
    '\ud800x',
    '/x/1',
  ];
  for (const s of strings)
    for (const where of ['shard', 'key', 'etag', 'node', 'datacenter', 'owner', 'objectId'] as const) {
      const copy = (dc: string | undefined) => ({
        node: where === 'node' ? s : 'n1',
        ...(dc !== undefined ? { datacenter: dc } : {}),
        owner: where === 'owner' ? s : OWNER,
        objectId: where === 'objectId' ? s : OID,
      });
      const d = {
        verdict: 'eligible' as const,
        record: {
          shard: where === 'shard' ? s : 'A',
          key: where === 'key' ? s : `/${OID}/1`,
          etag: where === 'etag' ? s : 'E',
          mtime: 1,
        },
        cleanup: true,
        copies: 2,
        contentLength: 7,
        tombstone: [copy(where === 'datacenter' ? s : 'dc1'), copy(undefined)],
      };
      const line = planLine(d);
      assert.ok(!line.includes('\n') && !line.includes('\r'), `one line: ${where} = ${JSON.stringify(s)}`);
      assert.deepEqual(
        readPlanLine(line),
        {
          verdict: 'eligible',
          mtime: 1,
          copies: 2,
          contentLength: 7,
          shard: d.record.shard,
          key: d.record.key,
          etag: d.record.etag,
          objectId: where === 'objectId' ? s : OID,
          directory: where === 'owner' ? s : OWNER,
          // An empty datacenter reads as none.
          copiesOnNodes: d.tombstone.map((c) =>
            c.datacenter ? { node: c.node, datacenter: c.datacenter } : { node: c.node },
          ),
        },
        `${where} = ${JSON.stringify(s)}`,
      );
    }
  // A cleanup without copies: no objectId, directory or copy; no contentLength stays none.
  const zero = planLine({
    verdict: 'zero-byte',
    record: { shard: 'A', key: 'k', etag: 'E', mtime: 1 },
    cleanup: true,
    copies: 0,
    tombstone: [],
  });
  assert.equal(zero, 'zero-byte\t1\t0\t\tA\tk\tE\t\t');
  assert.deepEqual(readPlanLine(zero), {
    verdict: 'zero-byte',
    mtime: 1,
    copies: 0,
    shard: 'A',
    key: 'k',
    etag: 'E',
    objectId: '',
    directory: '',
    copiesOnNodes: [],
  });
  assert.equal(PLAN_HEADER.split('\t').length, 9 + 3, 'the header names the columns');
  assert.throws(() => readPlanLine('eligible\t1\t2'), /UsageError|not a gc plan line/);
});

test("the scan's acting lines are the plan as they came, in buffers cut after a line", () => {
  const line = (i: number) =>
    ['eligible', '1', '2', '7', 'A', `/${OID}/${i}`, 'E', OID, OWNER, 'n1', 'dc1', 'n2', ''].join('\t');
  const lines = Array.from({ length: 12_000 }, (_, i) => line(i));
  // Multi-byte strings; the last copy's empty datacenter is none.
  lines[9] = ['eligible', '1', '1', '', 'A', '/sté😀', 'E', OID, OWNER, 'n😀', 'dc'].join('\t');
  const text = lines.join('\n');
  const a = new GcActions();
  a.addLines(text);
  assert.equal(a.length, lines.length);
  assert.deepEqual(a.tombstone(9), [{ node: 'n😀', datacenter: 'dc', owner: OWNER, objectId: OID }]);
  assert.deepEqual(
    a.tombstone(0).map((c) => c.datacenter),
    ['dc1', undefined],
  );
  const chunks = [...a.planChunks()];
  assert.ok(chunks.length > 2, `${chunks.length} buffers`);
  assert.equal(Buffer.concat(chunks).toString('utf8'), `${PLAN_HEADER}${text}\n`);
  for (const c of chunks) assert.equal(c.at(-1), 0x0a, 'each buffer ends a line');
  assert.equal(a.planLine(9), lines[9]);
});
