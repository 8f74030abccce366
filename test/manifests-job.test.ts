/**
 * The `manifests` job and the node's MD5 endpoint on real loopback storage nodes and real
 * PostgreSQL:
 *   - one run per node per day, after the day's snapshots; each stores the raw listing at
 *     /poseidon/stor/mako/<id> with its start instant and ingests it (the source manifest, whose
 *     snapshotTime is the listing's start, later than every snapshot: invariant 5);
 *   - a node that does not answer keeps only its own run waiting (saying why); once it answers,
 *     the run goes on;
 *   - `GET /md5/<owner>/<objectId>` hashes the file on disk (a byte flipped under the node shows),
 *     needs the internal credential, answers 404 for no copy and 400 for a bad path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { dayOf } from '../src/core/days.js';
import { isRemoraError } from '../src/core/errors.js';
import { readSourceManifest } from '../src/dumps/manifest.js';
import { makoPath } from '../src/dumps/layout.js';
import { manifestsJob, manifestsOutput } from '../src/jobs/manifests/manifests.job.js';
import { snapshotJob, snapshotOutput } from '../src/jobs/snapshot/snapshot.job.js';
import { defaultObjectStore } from '../src/objectstore/object-store.js';
import { scheduleDay } from '../src/pipeline/operations.js';
import { latestRuns } from '../src/pipeline/runs.repository.js';
import { withPipelineSession } from '../src/pipeline/session.js';
import { StorageClient } from '../src/storage/storage-client.js';
import { StorageNode } from '../src/storage/storage-node.js';
import { openTestTier, testConfig } from './helpers/pg.js';
import { FAST } from './helpers/pipeline.js';
import { freePort } from './helpers/net.js';
import { TEST_INTERNAL_TOKEN } from './helpers/internal-token.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const oid = (n: number) => `c0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

test('md5 endpoint: hashes the file on disk, credentialed, 404 without a copy, 400 on a bad path', async () => {
  const base = testConfig();
  const node = await StorageNode.start({
    root: path.join(base.stateDir, 'n'),
    id: '1.stor.dc1.remora.local',
    datacenter: 'dc1',
    internalToken: TEST_INTERNAL_TOKEN,
  });
  const client = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN });
  const stranger = new StorageClient({ internalToken: 'not-the-token-of-this-deployment' });
  try {
    const body = crypto.randomBytes(300_000);
    const put = await client.put(node.url, OWNER, oid(1), body);
    assert.deepEqual(await client.md5(node.url, OWNER, oid(1)), { md5: put.md5, bytes: body.length });
    // A byte flipped under the node (same size, same mtime): the endpoint reads the disk, not a cache.
    const file = path.join(node.root, OWNER, oid(1));
    const st = fs.statSync(file);
    body[12345] = body[12345]! ^ 0xff;
    fs.writeFileSync(file, body);
    fs.utimesSync(file, st.atime, st.mtime);
    const flipped = await client.md5(node.url, OWNER, oid(1));
    assert.equal(flipped?.md5, crypto.createHash('md5').update(body).digest('base64'));
    assert.notEqual(flipped?.md5, put.md5);
    assert.equal(await client.md5(node.url, OWNER, oid(2)), undefined, 'no copy: undefined (404)');
    await assert.rejects(stranger.md5(node.url, OWNER, oid(1)), (e) =>
      isRemoraError(e, 'InternalCredentialRefused'),
    );
    const bad = await fetch(`${node.url}/md5/${OWNER}/..%2f${oid(1)}`, {
      headers: { authorization: `Internal ${TEST_INTERNAL_TOKEN}` },
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, 'InvalidPath');
    const post = await fetch(`${node.url}/md5/${OWNER}/${oid(1)}`, {
      method: 'POST',
      headers: { authorization: `Internal ${TEST_INTERNAL_TOKEN}` },
    });
    assert.equal(post.status, 405);
    const anonymous = await fetch(`${node.url}/md5/${OWNER}/${oid(1)}`);
    assert.equal(anonymous.status, 401, 'hashing needs the credential');
  } finally {
    client.close();
    stranger.close();
    await node.close();
    fs.rmSync(base.stateDir, { recursive: true, force: true });
  }
});

test(
  'manifests: one run per node after the snapshots; a node that does not answer waits alone, then goes on',
  { timeout: 120_000 },
  async () => {
    const base = testConfig();
    const roots = ['1', '2', '3'].map((i) => path.join(base.stateDir, `node${i}`));
    const ids = ['1.stor.dc1.remora.local', '2.stor.dc2.remora.local', '3.stor.dc1.remora.local'];
    const ports = await Promise.all(ids.map(() => freePort()));
    const start = (i: number) =>
      StorageNode.start({
        root: roots[i]!,
        id: ids[i]!,
        datacenter: `dc${(i % 2) + 1}`,
        port: ports[i]!,
        internalToken: TEST_INTERNAL_TOKEN,
      });
    const up = [await start(0), await start(1)];
    const config = {
      ...base,
      storage: {
        ...base.storage,
        nodes: [
          ...ids.map((id, i) => ({
            id,
            datacenter: `dc${(i % 2) + 1}`,
            url: `http://127.0.0.1:${ports[i]}`,
          })),
          // Configured, but neither a url nor a heartbeat record: a warning, nothing to wait for.
          { id: '4.stor.dc2.remora.local', datacenter: 'dc2' },
        ],
      },
    };
    const { tier, cleanup } = await openTestTier(config);
    const client = new StorageClient({ internalToken: TEST_INTERNAL_TOKEN });
    try {
      for (let n = 1; n <= 5; n++) await client.put(up[n % 2]!.url, OWNER, oid(n), Buffer.alloc(n * 10, n));
      fs.mkdirSync(path.join(roots[0]!, 'nginx_temp'), { recursive: true });
      fs.writeFileSync(path.join(roots[0]!, 'nginx_temp', 'x'), 'partial');
      const day = dayOf(Date.now());
      const keys = [...ids, '4.stor.dc2.remora.local'].map((id) => `${day}/node=${id}`);
      await withPipelineSession(
        config,
        tier,
        {
          jobs: () => [snapshotJob, manifestsJob({ partitions: 4 })],
          settings: FAST,
          internalToken: TEST_INTERNAL_TOKEN,
          log: () => {},
        },
        async (rt, c) => {
          assert.equal((await scheduleDay(rt, day, 'test')).length, config.shards.length + ids.length + 1);
          const runsNow = () => latestRuns(rt.control, 'manifests', keys);
          const until = async (ok: (rs: Awaited<ReturnType<typeof runsNow>>) => boolean) => {
            for (let i = 0; i < 600; i++) {
              await c.tick();
              const rs = await runsNow();
              if (ok(rs)) return rs;
              await new Promise((r) => setTimeout(r, 50));
            }
            throw new Error(
              `timed out: ${(await runsNow()).map((r) => `${r.partitionKey} ${r.state}`).join(', ')}`,
            );
          };
          const first = await until((rs) => rs.filter((r) => r.state === 'succeeded').length === 3);
          const dead = first.find((r) => r.partitionKey === keys[2])!;
          assert.equal(dead.state, 'waiting');
          assert.match(
            dead.waitingOn ?? '',
            /3\.stor\.dc1\.remora\.local at http:\/\/127\.0\.0\.1:\d+ does not answer/,
          );

          const snaps = await latestRuns(
            rt.control,
            'snapshot',
            config.shards.map((s) => `${day}/shard=${s.name}`),
          );
          const latestSnapshot = Math.max(
            ...snaps.map((s) => Date.parse(snapshotOutput.parse(s.output)!.snapshotTime)),
          );
          const store = defaultObjectStore(config.stateDir);
          for (const r of first.filter((x) => x.state === 'succeeded' && x.partitionKey !== keys[3])) {
            const o = manifestsOutput.parse(r.output).listing!;
            assert.ok(Date.parse(o.startedAt) > latestSnapshot, 'the listing started after every snapshot');
            const m = (await readSourceManifest(store, o.day, o.source))!;
            assert.equal(m.runId, o.runId);
            assert.equal(m.snapshotTime, o.startedAt);
            assert.equal(m.partitions, 4);
            const head = (await store.head(makoPath(o.source)))!;
            assert.equal(head.meta['m-mako-dump-time'], o.startedAt);
            assert.equal(head.meta['m-run-id'], o.runId, "the shared listing is the committed run's");
          }
          const o1 = manifestsOutput.parse(first.find((r) => r.partitionKey === keys[0])!.output).listing!;
          assert.deepEqual(
            [o1.files, o1.lines],
            [2, 3],
            'node 1: two copies kept, nginx_temp listed and skipped',
          );

          const unknown = first.find((r) => r.partitionKey === keys[3])!;
          assert.equal(unknown.verdict, 'degraded');
          assert.equal(unknown.report!.events['warning:node-address-unknown']?.count, 1);
          assert.deepEqual(manifestsOutput.parse(unknown.output), {
            node: '4.stor.dc2.remora.local',
            reached: false,
          });

          up.push(await start(2));
          const after = await until((rs) => rs.every((r) => r.state === 'succeeded'));
          assert.equal(after.length, 4);
        },
      );
    } finally {
      client.close();
      for (const n of up) await n.close();
      await cleanup();
    }
  },
);
