/**
 * The quarantine tree repair MOVEs corrupt copies into (docs/audit.md "Repair"): the storage
 * node's MOVE accepts `/quarantine/YYYY-MM-DD/<objectId>` exactly as it accepts the tombstone's,
 * and nothing looser.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { isRemoraError } from '../src/core/errors.js';
import {
  parseTombstoneDestination,
  tombstoneDestination,
  tombstoneFile,
} from '../src/storage/storage-paths.js';

const ID = '0b1e2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';

test('MOVE Destination: the quarantine tree, the same shapes as the tombstone', () => {
  assert.deepEqual(parseTombstoneDestination(`/quarantine/2026-12-01/${ID}`), {
    tree: 'quarantine',
    day: '2026-12-01',
    objectId: ID,
  });
  assert.deepEqual(parseTombstoneDestination(`/manta/quarantine/2026-12-01/${ID}`).tree, 'quarantine');
  assert.deepEqual(parseTombstoneDestination(`/tombstone/2026-12-01/${ID}`).tree, 'tombstone');
  assert.equal(tombstoneDestination('2026-12-01', ID, 'quarantine'), `/quarantine/2026-12-01/${ID}`);
  assert.equal(
    tombstoneFile('/r', '2026-12-01', ID, 'quarantine'),
    path.resolve('/r/quarantine/2026-12-01', ID),
  );
  for (const bad of [
    `/quarantine/2026-02-30/${ID}`,
    `/quarantine/2026-12-01/not-a-uuid`,
    `/quarantine/2026-12-01/../${ID}`,
    `/quarantine/../tombstone/2026-12-01/${ID}`,
    `/quarantined/2026-12-01/${ID}`,
    `/quarantine/2026-12-01/${ID.toUpperCase()}`,
    `/quarantine/2026-12-01/${ID}/x`,
  ])
    assert.throws(
      () => parseTombstoneDestination(bad),
      (e: unknown) => isRemoraError(e, 'InvalidPath'),
      bad,
    );
});
