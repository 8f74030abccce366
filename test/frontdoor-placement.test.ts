import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startTestDeployment } from './helpers/deployment.js';
import { testConfig } from './helpers/pg.js';
import { defaultStorageNodes } from '../src/config/config.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { disableWrites } from '../src/storage/storage-admin.js';
import { isRemoraError } from '../src/core/errors.js';
import type { MantaObjectValue } from '../src/metadata/types.js';

test('the front door never writes to a full node, a disabled node or a dead node, and spreads datacenters', async () => {
  const base = testConfig();
  const nodes = defaultStorageNodes().map((n, i) => (i === 0 ? { ...n, capacityMB: 1 } : n)); // 1.stor: 1 MB
  const { d, cleanup } = await startTestDeployment({
    storage: { ...base.storage, nodes, heartbeatIntervalMs: 300 },
  });
  try {
    const full = nodes[0]!.id;
    const disabled = nodes[1]!.id;
    const dead = nodes[2]!.id;
    await disableWrites(d.tier, disabled);
    await d.stopNode(dead);
    const { token, account } = await createAccount(d.tier, { login: 'placer' }, Date.now());
    const c = d.client(token);
    try {
      const used = new Map<string, number>();
      for (let i = 0; i < 24; i++) {
        await c.put(`/placer/stor/o${i}`, crypto.randomBytes(1_500_000));
        const row = await d.tier.getObject<MantaObjectValue>('manta', `/${account.uuid}/stor/o${i}`);
        const sharks = row!.value.sharks;
        assert.equal(sharks.length, 2);
        assert.equal(new Set(sharks.map((s) => s.datacenter)).size, 2, 'two datacenters');
        for (const s of sharks) used.set(s.manta_storage_id, (used.get(s.manta_storage_id) ?? 0) + 1);
      }
      assert.equal(used.has(full), false, 'the 1 MB node is too full for 1.5 MB objects');
      assert.equal(used.has(disabled), false, 'disabled node not written');
      assert.equal(used.has(dead), false, 'dead node not written (fallback tuple)');
      assert.deepEqual(
        [...used.keys()].sort(),
        nodes
          .slice(3)
          .map((n) => n.id)
          .sort(),
      );
      // four nodes can take a small object (the 1 MB node has room for 1 KB): five copies cannot be placed
      await assert.rejects(c.put('/placer/stor/five', crypto.randomBytes(1000), { copies: 5 }), (e) =>
        isRemoraError(e, 'NotEnoughStorageNodes'),
      );
      assert.equal(await d.tier.getObject('manta', `/${account.uuid}/stor/five`), undefined);
    } finally {
      c.close();
    }
  } finally {
    await cleanup();
  }
});
