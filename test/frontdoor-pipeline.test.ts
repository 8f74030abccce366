/**
 * The pipeline on the front-door object store (`objectStore.backend: "frontdoor"`): snapshot →
 * unpack → storage metering with every dump, chunk and report kept in the deployment itself
 * (as the original kept them under /poseidon/stor), chunks read back as verified local copies;
 * and what an operator sees when the backend is misconfigured.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestDeployment } from './helpers/deployment.js';
import { FAST } from './helpers/pipeline.js';
import { loadConfig } from '../src/config/config.js';
import { isRemoraError } from '../src/core/errors.js';
import { FrontDoorObjectStore } from '../src/objectstore/frontdoor-store.js';
import { withLocalChunks } from '../src/objectstore/local-chunks.js';
import { readSourceManifest } from '../src/dumps/manifest.js';
import { readObjectText } from '../src/objectstore/object-store.js';
import { createAccount } from '../src/frontdoor/accounts.js';
import { openObjectStore } from '../src/deployment/context.js';
import {
  MIN_SIZE,
  operatorReportPath,
  userLatestPath,
} from '../src/jobs/storage-metering/storage-metering.rules.js';
import { unpackOutput } from '../src/jobs/unpack/unpack.job.js';
import { driveDays, scheduleDay } from '../src/pipeline/operations.js';
import { dayOf } from '../src/core/days.js';
import { withDailyPipeline } from '../src/jobs/catalog.js';
import { defaultObjectStore } from '../src/objectstore/object-store.js';
import { ReportBuilder } from '../src/core/run-report.js';
import { deliverToAccounts } from '../src/jobs/usage-delivery/usage-delivery.js';
import { userSummaryDir, userSummaryPath } from '../src/jobs/usage-summary/usage-summary.rules.js';

test(
  'daily pipeline with the front door as its object store: reports in Manta, nothing local',
  { timeout: 180_000 },
  async () => {
    const { d, cleanup } = await startTestDeployment({ objectStore: { backend: 'frontdoor' } });
    const client = d.client();
    try {
      const { account, token } = await createAccount(d.tier, { login: 'fduser', reports: true }, Date.now());
      const user = d.client(token);
      for (let i = 0; i < 5; i++)
        await user.put(`/fduser/stor/o${i}`, Buffer.from(`hello ${i}`), { copies: 2 });

      const store = new FrontDoorObjectStore(client);
      const day = dayOf(Date.now());
      const runs = await withDailyPipeline(
        d.config,
        d.tier,
        { log: () => {}, store, settings: FAST, internalToken: d.internalToken },
        async (rt, c) => {
          await scheduleDay(rt, day, 'test');
          return driveDays(rt, c, [day], { timeoutMs: 150_000 });
        },
      );
      assert.ok(
        runs.every((r) => r.state === 'succeeded'),
        runs.map((r) => `${r.job}:${r.state}:${r.error ?? ''}`).join('\n'),
      );

      const lines = (await readObjectText(store, operatorReportPath(day)))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { owner: string; storage: Record<string, Record<string, string>> });
      const mine = lines.find((l) => l.owner === account.uuid);
      assert.ok(mine, 'the account is in the operator file');
      assert.deepEqual(
        [mine.storage.stor!.keys, mine.storage.stor!.objects, mine.storage.stor!.bytes],
        ['5', '5', String(5 * 2 * MIN_SIZE)],
      );
      assert.ok(
        await store.head(userLatestPath('fduser')),
        'the account report was delivered through the front door',
      );
      // The account reads it with its own token: its line, without owner, numbers as strings.
      const own = JSON.parse((await user.get(userLatestPath('fduser'))).toString()) as {
        owner?: string;
        storage: Record<string, Record<string, string>>;
        date: string;
      };
      assert.equal(own.owner, undefined);
      assert.deepEqual(own.storage, mine.storage);
      assert.equal(own.date, `${day}T00:00:00.000Z`);
      user.close();
      assert.ok(
        !fs.existsSync(path.join(d.config.stateDir, 'objects', 'poseidon')),
        'nothing was written to the local object directory',
      );

      // The chunks metering read were verified copies: a chunk whose manifest says otherwise is refused.
      const unpack = runs.find(
        (r) => r.job === 'unpack' && unpackOutput.parse(r.output).source === '2.moray.remora.local',
      );
      const m = (await readSourceManifest(store, day, unpackOutput.parse(unpack!.output).source))!;
      const chunk = m.tables.manta!.chunks[0]!;
      const seen: string[] = [];
      assert.equal(
        await withLocalChunks(store, [chunk], async (files) => {
          seen.push(...files);
          return (await fs.promises.stat(files[0]!)).size;
        }),
        chunk.bytes,
      );
      assert.ok(
        seen[0]!.startsWith(os.tmpdir()) && !fs.existsSync(seen[0]!),
        'the copy is removed afterwards',
      );
      await assert.rejects(
        withLocalChunks(store, [{ ...chunk, sha256: '0'.repeat(64) }], () => Promise.resolve(0)),
        (e) => isRemoraError(e, 'MalformedInput') && /unpack that shard again/.test((e as Error).message),
      );
    } finally {
      client.close();
      await cleanup();
    }
  },
);

test('with the local store, per-account reports go through the front door (reportsStore): the account GETs its own with its token', async () => {
  const { d, cleanup } = await startTestDeployment();
  const operator = d.client();
  try {
    const { account, token } = await createAccount(d.tier, { login: 'lou', reports: true }, Date.now());
    const local = defaultObjectStore(d.config.stateDir);
    const report = new ReportBuilder();
    await deliverToAccounts(
      { tier: d.tier, store: local, reportsStore: new FrontDoorObjectStore(operator) },
      report,
      {
        owners: [account.uuid],
        userDir: userSummaryDir,
        userPath: (login) => userSummaryPath(login, '2024-05-06'),
        userRecord: () => ({ storageGBHours: '3', date: '2024-05-06T00:00:00.000Z' }),
        period: '2024-05-06',
        keepFrom: '2024-02-06',
      },
    );
    assert.equal(report.finish().counters.delivered, 1);
    const user = d.client(token);
    assert.equal(
      (await user.get('/lou/reports/usage/summary/2024/05/06/d06.json')).toString(),
      '{"storageGBHours":"3","date":"2024-05-06T00:00:00.000Z"}\n',
    );
    assert.equal((await user.get('/lou/reports/usage/summary/latest')).toString().length > 0, true);
    user.close();
    assert.equal(await local.head(userSummaryPath('lou', '2024-05-06')), undefined, 'nothing local');
  } finally {
    operator.close();
    await cleanup();
  }
});

test('object store configuration: an unknown backend, or a front door nobody can name, is a clear error', () => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-objstore-'));
  try {
    assert.throws(
      () => loadConfig({ REMORA_STATE_DIR: stateDir }, { objectStore: { backend: 'nfs' as 'local' } }),
      (e) => isRemoraError(e, 'InvalidConfig') && /objectStore.backend/.test((e as Error).message),
    );
    assert.throws(
      () =>
        loadConfig({ REMORA_STATE_DIR: stateDir }, { objectStore: { backend: 'frontdoor', url: 'ftp://x' } }),
      (e) => isRemoraError(e, 'InvalidConfig') && /objectStore.url/.test((e as Error).message),
    );
    const config = loadConfig({ REMORA_STATE_DIR: stateDir }, { objectStore: { backend: 'frontdoor' } });
    assert.throws(
      () => openObjectStore(config),
      (e) => isRemoraError(e, 'UsageError') && /remora up/.test((e as Error).message),
    );
    const withUrl = loadConfig(
      { REMORA_STATE_DIR: stateDir },
      { objectStore: { backend: 'frontdoor', url: 'http://127.0.0.1:1' } },
    );
    assert.throws(
      () => openObjectStore(withUrl),
      (e) => isRemoraError(e, 'UsageError') && /operator token/.test((e as Error).message),
    );
    const local = openObjectStore(loadConfig({ REMORA_STATE_DIR: stateDir }));
    assert.equal(local.store.localPath?.('/a/b'), path.join(stateDir, 'objects', 'a', 'b'));
    local.close();
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
});
