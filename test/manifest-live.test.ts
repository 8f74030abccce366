/**
 * `remora manifest`'s fetch path against running storage nodes: the listing each node serves,
 * ingested by objectId, holds exactly the copies the metadata names; tombstones are skipped
 * and counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestDeployment } from './helpers/deployment.js';
import { readChunkRows } from './helpers/chunks.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { ingestMakoListing } from '../src/dumps/mako.js';
import type { MantaObjectValue } from '../src/metadata/types.js';
import { copyOwner } from '../src/frontdoor/records.js';

test('live storage-node listings ingest to exactly the copies the records name; tombstones skipped', async () => {
  const { d, cleanup } = await startTestDeployment();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-manifest-'));
  try {
    const { token, account } = await createAccount(d.tier, { login: 'lister' }, Date.now());
    const c = d.client(token);
    const values: MantaObjectValue[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        await c.put(`/lister/stor/o${i}`, crypto.randomBytes(1000 + i));
        values.push(
          (await d.tier.getObject<MantaObjectValue>('manta', `/${account.uuid}/stor/o${i}`))!.value,
        );
      }
    } finally {
      c.close();
    }
    // one copy goes to tombstone: it must no longer count as a copy
    const gone = values[0]!;
    const goneNode = gone.sharks[0]!.manta_storage_id;
    assert.equal(
      await d.storage.tombstone(d.nodes.get(goneNode)!.url, copyOwner(gone), gone.objectId, '2026-11-23'),
      'moved',
    );
    const expected = new Set<string>();
    for (const v of values) for (const s of v.sharks) expected.add(`${s.manta_storage_id} ${v.objectId}`);
    expected.delete(`${goneNode} ${gone.objectId}`);

    const store = new LocalObjectStore(dir);
    const seen = new Set<string>();
    let tombstones = 0;
    for (const [id, node] of d.nodes) {
      const m = await d.storage.manifest(node.url);
      const r = await ingestMakoListing(store, { storageId: id, ...m }, { partitions: 4 });
      tombstones += r.manifest.report.counters['skipped.tombstone'] ?? 0;
      const head = await store.head(r.listingPath);
      assert.equal(head?.meta['m-mako-dump-time'], new Date(m.startedAt).toISOString());
      const rows = await readChunkRows(
        store,
        (r.manifest.tables.mako?.chunks ?? []).map((x) => x.path),
      );
      for (const row of rows) seen.add(`${row.manta_storage_id as string} ${row.objectId as string}`);
    }
    assert.deepEqual([...seen].sort(), [...expected].sort());
    assert.equal(tombstones, 1);
  } finally {
    await cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
