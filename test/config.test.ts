/** The configuration schema: what loadConfig refuses, with which path, and what it keeps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import {
  defaultConfig,
  jobSettingsSchema,
  jobsSchemaWith,
  loadConfig,
  type RemoraConfig,
} from '../src/config/config.js';
import { isRemoraError } from '../src/core/errors.js';
import { jobEnabled, pipelineSettings } from '../src/pipeline/settings.js';

/** loadConfig on a fresh state directory holding `file` as config.json (or no file). */
function load(file?: unknown, env: Record<string, string> = {}): RemoraConfig {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-config-'));
  try {
    if (file !== undefined) fs.writeFileSync(path.join(stateDir, 'config.json'), JSON.stringify(file));
    return loadConfig({ REMORA_STATE_DIR: stateDir, ...env });
  } finally {
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

/** The InvalidConfig message loading `file` gives (fails the test if it loads). */
function refusal(file: unknown, env: Record<string, string> = {}): string {
  let message = '';
  assert.throws(
    () => load(file, env),
    (e) => {
      assert.ok(isRemoraError(e, 'InvalidConfig'), `expected InvalidConfig, got ${String(e)}`);
      message = e.message;
      return true;
    },
  );
  return message;
}

test('no file: the defaults, frozen', () => {
  const c = load();
  const stateDir = c.stateDir;
  assert.deepEqual({ ...c, stateDir: undefined }, { ...defaultConfig(stateDir), stateDir: undefined });
  assert.ok(Object.isFrozen(c.frontdoor));
});

test('every documented key loads (README "Configuration" and the pipeline section)', () => {
  const file = {
    postgres: {
      url: 'postgres://user:pw@db.example.com:5432/postgres',
      port: 15433,
      databasePrefix: 'rem_1',
    },
    shards: [
      { name: '1.moray.remora.local', role: 'storage' },
      { name: '2.moray.remora.local', role: 'index' },
    ],
    ring: { vnodes: 1024 },
    storage: {
      nodes: [
        { id: '1.stor.dc1.remora.local', datacenter: 'dc1', capacityMB: 1024 },
        { id: '2.stor.dc2.remora.local', datacenter: 'dc2', url: 'http://10.0.0.2:8080' },
      ],
      heartbeatIntervalMs: 5000,
      internalToken: 's3cret',
    },
    picker: { lagMs: 60000, maxUtilizationPct: 90, multiDC: false },
    frontdoor: { port: 8080, defaultCopies: 3 },
    objectStore: { backend: 'frontdoor', url: 'http://127.0.0.1:8080', token: 't' },
    pipeline: {
      jobs: { 'storage-metering': { enabled: false, deadlineMs: 28_800_000 }, snapshot: {} },
      tickIntervalMs: 500,
      concurrency: 4,
      workerPollIntervalMs: 1000,
      heartbeatMs: 1000,
      staleAfterMs: 5000,
      retentionDays: 10,
      reportRetentionDays: 60,
      catchUpDays: 3,
      thresholds: { maxMalformedShare: 0.05, minRecordsForShare: 10 },
      partitions: 16,
      rowsPerPartition: 1000,
      alertWebhook: 'https://ops.example.com/hooks/remora',
      metricsPort: 9464,
    },
  };
  const c = load(file);
  assert.equal(c.frontdoor.defaultCopies, 3);
  assert.equal(c.storage.nodes[1]?.url, 'http://10.0.0.2:8080');
  assert.equal(c.storage.internalToken, 's3cret');
  assert.equal(c.pipeline?.jobs?.['storage-metering']?.enabled, false);
  // pipelineSettings reads the typed section: defaults under it, the file's values on top.
  const s = pipelineSettings(c);
  assert.equal(jobEnabled(s, 'storage-metering'), false);
  assert.equal(jobEnabled(s, 'unpack'), true);
  assert.equal(s.jobs['storage-metering']?.deadlineMs, 28_800_000);
  assert.equal(s.concurrency, 4);
  assert.equal(s.partitions, 16);
  assert.deepEqual(s.thresholds, { maxMalformedShare: 0.05, minRecordsForShare: 10 });
  assert.equal(pipelineSettings(load({ pipeline: { concurrency: 3 } })).staleAfterMs, 10_000);
});

test('a wrong type is refused at load, with the key’s path', () => {
  const m = refusal({ frontdoor: { defaultCopies: 'two' } });
  assert.match(m, /frontdoor\.defaultCopies: .*expected number, received string/);
  assert.match(m, /config file .*config\.json/, 'says which file');
  assert.match(refusal({ frontdoor: { defaultCopies: 12 } }), /frontdoor\.defaultCopies: .*<=9/);
  assert.match(refusal({ picker: { multiDC: 'yes' } }), /picker\.multiDC: .*expected boolean/);
  assert.match(
    refusal({ storage: { nodes: [{ id: '1.stor.dc1.x', datacenter: 7 }] } }),
    /storage\.nodes\[0\]\.datacenter/,
  );
  assert.match(refusal({ ring: { vnodes: 0 } }), /ring\.vnodes/);
  assert.match(refusal({ frontdoor: 5 }), /frontdoor: .*expected object/);
  assert.match(refusal({ pipeline: { partitions: 'many' } }), /pipeline\.partitions/);
  assert.match(refusal({ pipeline: { concurrency: 0 } }), /pipeline\.concurrency: .*>=1/);
  assert.match(refusal({ pipeline: { alertWebhook: 'not a url' } }), /pipeline\.alertWebhook/);
  assert.match(
    refusal({ pipeline: { jobs: { gc: { enabled: 'no' } } } }),
    /pipeline\.jobs\.gc\.enabled: .*expected boolean/,
  );
  assert.match(
    refusal({ storage: { nodes: [{ id: 'a.b', datacenter: 'd', url: 'ftp://a' }] } }),
    /storage\.nodes\[0\]\.url/,
  );
  assert.match(refusal({ storage: { internalToken: 5 } }), /storage\.internalToken/);
  assert.match(refusal(null), /must hold a JSON object/);
});

test('unknown keys are refused, each with its path', () => {
  const m = refusal({ frontdoor: { port: 0, defaultCopeis: 2 }, pipelin: {} });
  assert.match(m, /frontdoor\.defaultCopeis: unknown key/);
  assert.match(m, /pipelin: unknown key/);
  assert.match(
    refusal({ storage: { nodes: [{ id: 'a.b', datacenter: 'd', size: 1 }] } }),
    /storage\.nodes\[0\]\.size: unknown key/,
  );
  assert.match(
    refusal({ pipeline: { jobs: { unpack: { graceDays: 3 } } } }),
    /pipeline\.jobs\.unpack\.graceDays: unknown key/,
  );
  assert.match(
    refusal({ pipeline: { thresholds: { maxMalformed: 1 } } }),
    /pipeline\.thresholds\.maxMalformed: unknown key/,
  );
});

test('node ids and shard names are DNS-like names: nothing that leaves a directory', () => {
  for (const id of ['../../evil', 'a/b', '..', '.hidden', 'a..b', 'UPPER.stor', 'a.b.', '-a', 'a b', '']) {
    const m = refusal({ storage: { nodes: [{ id, datacenter: 'dc1' }] } });
    assert.match(m, /storage\.nodes\[0\]\.id: must be a DNS-like name/, id);
  }
  assert.match(
    refusal({
      shards: [
        { name: '../x', role: 'storage' },
        { name: '2.moray', role: 'index' },
      ],
    }),
    /shards\[0\]\.name: must be a DNS-like name/,
  );
  const ok = load({ storage: { nodes: [{ id: '10.stor.us-east-1.example.com', datacenter: 'us-east-1' }] } });
  assert.equal(ok.storage.nodes[0]?.id, '10.stor.us-east-1.example.com');
});

test('the shard and node rules that need the whole list', () => {
  assert.match(
    refusal({ shards: [{ name: 'a', role: 'index' }] }),
    /shards: exactly one shard must have role "storage"/,
  );
  assert.match(
    refusal({ shards: [{ name: 'a', role: 'storage' }] }),
    /at least one shard must have role "index"/,
  );
  const n = { id: 'a.b', datacenter: 'dc1' };
  assert.match(
    refusal({ storage: { nodes: [n, n] } }),
    /storage\.nodes: storage node ids must be unique.*a\.b/,
  );
});

test('REMORA_CONFIG naming a missing file is refused; one that exists is read', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-config-env-'));
  try {
    const missing = path.join(dir, 'nope.json');
    assert.throws(
      () => loadConfig({ REMORA_STATE_DIR: dir, REMORA_CONFIG: missing }),
      (e) =>
        isRemoraError(e, 'InvalidConfig') && e.message.includes(missing) && /does not exist/.test(e.message),
    );
    const file = path.join(dir, 'remora.json');
    fs.writeFileSync(file, JSON.stringify({ frontdoor: { defaultCopies: 3 } }));
    assert.equal(loadConfig({ REMORA_STATE_DIR: dir, REMORA_CONFIG: file }).frontdoor.defaultCopies, 3);
    fs.writeFileSync(file, '{ not json');
    assert.throws(
      () => loadConfig({ REMORA_STATE_DIR: dir, REMORA_CONFIG: file }),
      (e) => isRemoraError(e, 'InvalidConfig') && /not valid JSON/.test(e.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('REMORA_PG_URL must be a PostgreSQL URL, and the message never repeats it', () => {
  const m = refusal({}, { REMORA_PG_URL: 'mysql://root:hunter2@db/x' });
  assert.match(m, /postgres\.url \(from REMORA_PG_URL\): must be a PostgreSQL URL/);
  assert.doesNotMatch(m, /hunter2/);
  assert.match(refusal({}, { REMORA_PG_URL: 'not a url' }), /REMORA_PG_URL/);
  assert.equal(load({}, { REMORA_PG_URL: 'postgresql://u:p@h:1/d' }).postgres.url, 'postgresql://u:p@h:1/d');
});

test('a stateDir key in the file must be the state directory in use', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-config-sd-'));
  try {
    // A dumped configuration (JSON.stringify(config)) loads back in its own directory …
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(defaultConfig(dir)));
    assert.equal(loadConfig({ REMORA_STATE_DIR: dir }).stateDir, dir);
    // … but cannot move the state directory somewhere else.
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ stateDir: '/elsewhere' }));
    assert.throws(
      () => loadConfig({ REMORA_STATE_DIR: dir }),
      (e) => isRemoraError(e, 'InvalidConfig') && /stateDir: "\/elsewhere"/.test(e.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a job adds its own keys in one place: validated and typed', () => {
  // What a gc job would add to JOB_SPECIFIC_SETTINGS in src/config/config.ts.
  const jobs = jobsSchemaWith({ gc: jobSettingsSchema.extend({ graceDays: z.int().min(0).optional() }) });
  const parsed = jobs.parse({ gc: { enabled: true, graceDays: 3 }, unpack: { deadlineMs: 1000 } });
  const graceDays: number | undefined = parsed.gc?.graceDays; // typed, no cast
  assert.equal(graceDays, 3);
  assert.equal(parsed.unpack?.deadlineMs, 1000);
  const bad = jobs.safeParse({ gc: { graceDays: 'three' } });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error?.issues[0]?.path, ['gc', 'graceDays']);
  // The key belongs to gc alone: another job refuses it.
  const other = jobs.safeParse({ unpack: { graceDays: 3 } });
  assert.equal(other.success, false);
  assert.equal(other.error?.issues[0]?.code, 'unrecognized_keys');
});

test('pipelineSettings: overrides from code are checked with the same schema', () => {
  const c = load();
  assert.equal(pipelineSettings(c, { concurrency: 5 }).concurrency, 5);
  assert.throws(
    () => pipelineSettings(c, { concurrency: 0 }),
    (e) => isRemoraError(e, 'InvalidConfig') && /pipeline\.concurrency/.test(e.message),
  );
  assert.throws(
    () => pipelineSettings(c, { heartbeatMs: 5000 }),
    (e) => isRemoraError(e, 'InvalidConfig') && /staleAfterMs must exceed two heartbeats/.test(e.message),
  );
});
