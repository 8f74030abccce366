import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickTuples, TUPLES } from '../src/frontdoor/picker.js';
import { SeededRandom } from '../src/core/clock.js';
import { isRemoraError } from '../src/core/errors.js';
import { WRITES_DISABLED_TIMESTAMP, type StorageRecordValue } from '../src/metadata/types.js';

const NOW = 1_800_000_000_000;
const policy = { lagMs: 60_000, maxUtilizationPct: 90, multiDC: true };

function node(id: number, dc: string, over: Partial<StorageRecordValue> = {}): StorageRecordValue {
  return {
    manta_storage_id: `${id}.stor.${dc}.remora.local`,
    datacenter: dc,
    hostname: `${id}`,
    availableMB: 10_000,
    percentUsed: 10,
    timestamp: NOW - 1000,
    filesystem: '/manta',
    ...over,
  };
}

const six = [node(1, 'dc1'), node(2, 'dc2'), node(3, 'dc3'), node(4, 'dc1'), node(5, 'dc2'), node(6, 'dc3')];

test('picker never puts two copies on one node and spreads datacenters', () => {
  for (let seed = 0; seed < 500; seed++) {
    for (const replicas of [1, 2, 3, 4, 6]) {
      const tuples = pickTuples(six, { size: 1000, replicas }, NOW, policy, new SeededRandom(seed));
      assert.equal(tuples.length, TUPLES);
      for (const t of tuples) {
        assert.equal(t.length, replicas);
        assert.equal(new Set(t.map((s) => s.manta_storage_id)).size, replicas, 'no node twice');
        const dcs = new Set(t.map((s) => s.datacenter));
        assert.equal(dcs.size, Math.min(replicas, 3), `seed ${seed}: copies over as many DCs as possible`);
      }
    }
  }
});

test('picker skips stale, disabled, too-full and too-small nodes', () => {
  const records = [
    node(1, 'dc1', { timestamp: NOW - 61_000 }), // stale
    node(2, 'dc2', { timestamp: WRITES_DISABLED_TIMESTAMP }), // disable-writes
    node(3, 'dc3', { percentUsed: 91 }), // over max fill
    node(4, 'dc1', { availableMB: 1 }), // no room for 5 MB
    node(5, 'dc2'),
    node(6, 'dc3'),
  ];
  const seen = new Set<string>();
  for (let seed = 0; seed < 200; seed++) {
    for (const t of pickTuples(
      records,
      { size: 5 * 1024 * 1024, replicas: 2 },
      NOW,
      policy,
      new SeededRandom(seed),
    )) {
      for (const s of t) seen.add(s.manta_storage_id);
    }
  }
  assert.deepEqual([...seen].sort(), ['5.stor.dc2.remora.local', '6.stor.dc3.remora.local']);
});

test('picker refuses when not enough nodes qualify, or all are in one datacenter', () => {
  assert.throws(
    () =>
      pickTuples(
        [node(1, 'dc1'), node(2, 'dc1', { percentUsed: 99 })],
        { size: 1, replicas: 2 },
        NOW,
        policy,
        new SeededRandom(1),
      ),
    (e) => isRemoraError(e, 'NotEnoughStorageNodes'),
  );
  assert.throws(
    () =>
      pickTuples(
        [node(1, 'dc1'), node(2, 'dc1')],
        { size: 1, replicas: 2 },
        NOW,
        policy,
        new SeededRandom(1),
      ),
    (e) => isRemoraError(e, 'NotEnoughStorageNodes') && /2 datacenters/.test(e.message),
  );
  const single = pickTuples(
    [node(1, 'dc1'), node(2, 'dc1')],
    { size: 1, replicas: 2 },
    NOW,
    { ...policy, multiDC: false },
    new SeededRandom(1),
  );
  assert.equal(new Set(single[0]!.map((s) => s.manta_storage_id)).size, 2);
});

test('picker uses every eligible node over many picks (load spreads)', () => {
  const counts = new Map<string, number>();
  for (let seed = 0; seed < 600; seed++) {
    for (const s of pickTuples(six, { size: 1, replicas: 2 }, NOW, policy, new SeededRandom(seed))[0]!) {
      counts.set(s.manta_storage_id, (counts.get(s.manta_storage_id) ?? 0) + 1);
    }
  }
  assert.equal(counts.size, 6);
  for (const n of counts.values()) assert.ok(n > 100, `each node picked often (${n})`);
});
