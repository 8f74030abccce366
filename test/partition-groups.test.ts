/**
 * Automatic partition counts and partition groups: sources unpacked with different P still
 * join, because every objectId lands in one group (partitionGroups) in every source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../src/core/clock.js';
import {
  autoPartitions,
  inGroup,
  MAX_AUTO_PARTITIONS,
  partitionGroups,
  partitionOf,
} from '../src/dumps/partition.js';
import { groupChunks, groupsOf, type SourceManifest } from '../src/dumps/manifest.js';

test('autoPartitions: the smallest power of two keeping partitions at or under the target', () => {
  assert.equal(autoPartitions(0, 100), 1);
  assert.equal(autoPartitions(100, 100), 1);
  assert.equal(autoPartitions(101, 100), 2);
  assert.equal(autoPartitions(470_000, 131_072), 4);
  assert.equal(autoPartitions(1_500_000, 131_072), 16);
  assert.equal(autoPartitions(1e15, 1), MAX_AUTO_PARTITIONS);
});

test('partition groups: every objectId is in the same group in sources of different P', () => {
  const rnd = new SeededRandom(7);
  const cases = [
    [4, 16, 64],
    [6, 4],
    [16, 16],
    [3, 5],
  ];
  for (const ps of cases) {
    const g = partitionGroups(ps);
    assert.ok(
      ps.every((p) => p % g === 0),
      `${g} divides ${ps.join(',')}`,
    );
    for (let i = 0; i < 2000; i++) {
      const id = rnd.uuid();
      const group = partitionOf(id, g);
      for (const p of ps) assert.ok(inGroup(partitionOf(id, p), group, g), `${id} P=${p} G=${g}`);
    }
  }
  assert.equal(partitionGroups([6, 4]), 2);
  assert.equal(partitionGroups([16, 64, 4]), 4);
});

test('groupsOf ignores sources without rows of the table; groupChunks takes p ≡ g (mod G)', () => {
  const chunk = (partition: number) => ({
    path: `/c/${partition}`,
    partition,
    segment: 0,
    rows: 1,
    bytes: 1,
    sha256: '',
  });
  const m = (source: string, partitions: number, rows: number): SourceManifest =>
    ({
      source,
      partitions,
      tables: {
        manta: {
          kind: 'moray',
          rows,
          chunks: rows ? Array.from({ length: partitions }, (_, p) => chunk(p)) : [],
        },
      },
    }) as unknown as SourceManifest;
  const storage = m('1.moray', 1, 0);
  const a = m('2.moray', 4, 10);
  const b = m('3.moray', 8, 10);
  assert.equal(groupsOf([storage, a, b], 'manta'), 4);
  assert.equal(groupsOf([storage], 'manta'), undefined);
  assert.deepEqual(
    groupChunks(b, 'manta', 1, 4).map((c) => c.partition),
    [1, 5],
  );
});
