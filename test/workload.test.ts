import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { generateWorkload, DEFAULT_SPEC, type WorkloadSpec } from '../src/workload/generator.js';
import { runWorkload } from '../src/workload/driver.js';
import { bulkLoad } from '../src/workload/bulk.js';
import { startTestDeployment } from './helpers/deployment.js';
import { openTestTier } from './helpers/pg.js';
import type { MetadataTier } from '../src/metadata/metadata-tier.js';
import type { MantaValue } from '../src/metadata/types.js';
import { copyOwner } from '../src/frontdoor/records.js';

const spec: WorkloadSpec = { ...DEFAULT_SPEC, seed: 42, accounts: 3, objects: 150, maxObjectBytes: 20_000 };

test('the same seed gives the same operations; another seed does not', () => {
  const a = [...generateWorkload(spec)];
  const b = [...generateWorkload(spec)];
  const c = [...generateWorkload({ ...spec, seed: 43 })];
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  const kinds = new Set(a.map((o) => o.op));
  for (const k of ['account', 'mkdir', 'put', 'link', 'delete'])
    assert.ok(kinds.has(k as never), `workload has ${k}`);
  assert.ok(
    a.some((o) => o.op === 'put' && o.size === 0),
    'zero-byte objects',
  );
  assert.ok(
    a.some((o) => o.op === 'link' && o.path.split('/')[2] !== o.source.split('/')[2]),
    'a link across namespaces',
  );
  assert.ok(
    a.some((o) => o.op === 'link' && o.path.split('/')[1] !== o.source.split('/')[1]),
    'a link across accounts',
  );
  const puts = a.filter((o) => o.op === 'put').map((o) => (o as { path: string }).path);
  assert.ok(puts.length > new Set(puts).size, 'overwrites');
});

interface Shape {
  key: string;
  type: string;
  contentLength?: number;
  copies?: number;
  dcs?: number;
  createdFrom?: string;
}

async function shapes(tier: MetadataTier): Promise<{ rows: Shape[]; deleteLog: number }> {
  const rows: Shape[] = [];
  let deleteLog = 0;
  for (const s of tier.indexShards) {
    const r = await s.pool.query<{ _value: string }>('SELECT _value FROM manta');
    for (const { _value } of r.rows) {
      const v = JSON.parse(_value) as MantaValue;
      if (v.owner === undefined || v.key.split('/').length < 4) continue; // account roots
      rows.push(
        v.type === 'object'
          ? {
              key: v.key,
              type: v.type,
              contentLength: v.contentLength,
              copies: v.sharks.length,
              dcs: new Set(v.sharks.map((x) => x.datacenter)).size,
              ...(v.createdFrom ? { createdFrom: v.createdFrom } : {}),
            }
          : { key: v.key, type: v.type },
      );
    }
    deleteLog += Number(
      (await s.pool.query<{ n: string }>('SELECT count(*) n FROM manta_delete_log')).rows[0]!.n,
    );
  }
  rows.sort((a, b) => a.key.localeCompare(b.key));
  return { rows, deleteLog };
}

test('bulk mode writes what the front door writes for the same seed (records, delete log, files)', async () => {
  const front = await startTestDeployment();
  let viaFront: Awaited<ReturnType<typeof shapes>>;
  try {
    const w = await runWorkload(front.d.tier, front.d.frontdoorUrl, spec);
    assert.deepEqual(w.failures, []);
    viaFront = await shapes(front.d.tier);
  } finally {
    await front.cleanup();
  }
  const { tier, config, cleanup } = await openTestTier();
  try {
    const nodes = config.storage.nodes.map((n) => ({
      ...n,
      root: path.join(config.stateDir, 'nodes', n.id),
    }));
    const s = await bulkLoad(tier, { spec, nodes, writeFiles: true, batchSize: 37 });
    const viaBulk = await shapes(tier);
    assert.deepEqual(viaBulk.rows, viaFront.rows);
    assert.equal(viaBulk.deleteLog, viaFront.deleteLog);
    assert.equal(s.deleteLogRows, viaBulk.deleteLog);
    // every copy the records name is a file of the right size on that node
    let checked = 0;
    for (const sh of tier.indexShards) {
      for (const { _value } of (
        await sh.pool.query<{ _value: string }>("SELECT _value FROM manta WHERE type='object'")
      ).rows) {
        const v = JSON.parse(_value) as MantaValue;
        if (v.type !== 'object') continue;
        for (const c of v.sharks) {
          const file = path.join(config.stateDir, 'nodes', c.manta_storage_id, copyOwner(v), v.objectId);
          assert.equal(fs.statSync(file).size, v.contentLength, file);
          checked++;
        }
      }
    }
    assert.ok(checked > 100, `checked ${checked} copies`);
  } finally {
    await cleanup();
  }
});
