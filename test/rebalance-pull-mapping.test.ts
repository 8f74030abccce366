/**
 * The runner's copy step (rebalance.transfer.ts copyObjects) against a scripted storage client:
 * how the destination's per-copy answers map to the skip reasons the single-object copy gave
 * (MD5Mismatch, SourceOtherError, NoSource, DestinationUnreachable,
 * DestinationInsufficientSpace), how copies are grouped by destination and split into pull
 * requests, and that a throttle is paid before a request is sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { copyObjects, type CopyRequest, PULL_BATCH_BYTES } from '../src/jobs/rebalance/rebalance.transfer.js';
import type { PullCopy, PullResult, StorageClient } from '../src/storage/storage-client.js';
import { RemoraError } from '../src/core/errors.js';
import { ByteThrottle } from '../src/storage/throttle.js';

const OWNER = '4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac';
const URLS: Record<string, string> = {
  '1.stor': 'http://n1',
  '2.stor': 'http://n2',
  '3.stor': 'http://n3',
  '4.stor': 'http://n4',
};
const nodeUrl = (id: string) => URLS[id];
const shark = (id: string) => ({ manta_storage_id: id, datacenter: 'dc1' });

function req(sources: string[], dest = '3.stor', bytes = 4096): CopyRequest {
  return {
    objectId: crypto.randomUUID(),
    copyOwner: OWNER,
    md5: '1B2M2Y8AsgTpgAmY7PhCfg==',
    bytes,
    sources: sources.map(shark),
    dest: shark(dest),
  };
}

/** One copy's answer without its names (distributed over the union). */
type Answer = PullResult extends infer T
  ? T extends PullResult
    ? Omit<T, 'owner' | 'objectId'>
    : never
  : never;

/** A storage client whose pull answers with `answer(copy)` per copy, recording each request. */
function scripted(answer: (c: PullCopy, url: string) => Answer | Error) {
  const calls: { url: string; copies: PullCopy[]; concurrency?: number; bytesPerSecond?: number }[] = [];
  const storage = {
    pull: (url: string, copies: PullCopy[], opts: { concurrency?: number; bytesPerSecond?: number } = {}) => {
      calls.push({ url, copies, ...opts });
      const out: PullResult[] = [];
      for (const c of copies) {
        const a = answer(c, url);
        if (a instanceof Error) return Promise.reject(a);
        out.push({ owner: c.owner, objectId: c.objectId, ...a });
      }
      return Promise.resolve(out);
    },
  } as unknown as StorageClient;
  return { storage, calls };
}

test('per-copy answers map to the single-object copy’s reasons', async () => {
  const ok = req(['1.stor', '2.stor']);
  const md5Then = req(['1.stor', '2.stor']);
  const allBad = req(['1.stor', '2.stor']);
  const full = req(['1.stor']);
  const write = req(['1.stor']);
  const unknownThenBad = req(['9.stor', '1.stor']);
  const byId = new Map<string, Answer>([
    [ok.objectId, { result: 'ok', source: '1.stor', md5: ok.md5, bytes: ok.bytes }],
    [
      md5Then.objectId,
      {
        result: 'failed',
        attempts: [
          { source: '1.stor', kind: 'md5', message: 'MD5 mismatch reading from 1.stor' },
          { source: '2.stor', kind: 'truncated', message: 'source failed mid-transfer' },
        ],
      },
    ],
    [
      allBad.objectId,
      {
        result: 'failed',
        attempts: [
          { source: '1.stor', kind: 'unreachable', message: 'answered 404' },
          { source: '2.stor', kind: 'truncated', message: 'source failed mid-transfer' },
        ],
      },
    ],
    [
      full.objectId,
      { result: 'failed', attempts: [], destination: { kind: 'full', message: 'StorageNodeFull: no room' } },
    ],
    [write.objectId, { result: 'failed', attempts: [], destination: { kind: 'write', message: 'EIO' } }],
    [
      unknownThenBad.objectId,
      { result: 'failed', attempts: [{ source: '1.stor', kind: 'unreachable', message: 'answered 404' }] },
    ],
  ]);
  const { storage, calls } = scripted((c) => byId.get(c.objectId)!);
  const noSource = req([]);
  const onlyUnknown = req(['9.stor']);
  const destUnknown = req(['1.stor'], '9.stor');
  const reqs = [ok, md5Then, allBad, full, write, unknownThenBad, noSource, onlyUnknown, destUnknown];
  const r = await copyObjects({ storage, nodeUrl }, reqs, 8);
  assert.deepEqual(
    r.map((x) => (x.ok ? 'ok' : x.reason)),
    [
      'ok',
      'MD5Mismatch',
      'SourceOtherError',
      'DestinationInsufficientSpace',
      'DestinationUnreachable',
      'SourceOtherError',
      'NoSource',
      'SourceOtherError',
      'DestinationUnreachable',
    ],
  );
  const detail = (i: number) => (r[i]!.ok ? '' : (r[i] as { detail: string }).detail);
  assert.equal(detail(2), '1.stor: answered 404; 2.stor: source failed mid-transfer');
  assert.equal(detail(5), '9.stor: address unknown; 1.stor: answered 404', 'every source, in order');
  assert.equal(detail(6), 'no source copy listed');
  assert.equal(detail(8), '9.stor: address unknown');
  // The unknown source is not sent; the copies without any source, or destination, are not sent at all.
  const sent = calls.flatMap((c) => c.copies);
  assert.deepEqual(sent.find((c) => c.objectId === unknownThenBad.objectId)?.sources, [
    { id: '1.stor', url: 'http://n1' },
  ]);
  for (const x of [noSource, onlyUnknown, destUnknown])
    assert.ok(!sent.some((c) => c.objectId === x.objectId));
});

test('a destination that refuses the connection, or fails the request: every copy of it DestinationUnreachable', async () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const { storage } = scripted((_c, url) =>
    url === 'http://n3'
      ? new RemoraError('StorageNodeUnreachable', 'storage node http://n3 (POST): connect ECONNREFUSED', {
          cause: refused,
        })
      : { result: 'ok', source: '1.stor', md5: '1B2M2Y8AsgTpgAmY7PhCfg==', bytes: 4096 },
  );
  const a = req(['1.stor', '2.stor']);
  const b = req(['1.stor'], '4.stor');
  const r = await copyObjects({ storage, nodeUrl }, [a, b], 8);
  assert.equal(r[0]!.ok, false);
  assert.equal(!r[0]!.ok && r[0]!.reason, 'DestinationUnreachable');
  assert.match(!r[0]!.ok ? r[0]!.detail : '', /StorageNodeUnreachable: .*ECONNREFUSED/);
  assert.equal(r[1]!.ok, true, 'another destination is not affected');
});

test('grouped by destination, split so `concurrency` copies are in flight; a request stays bounded in bytes', async () => {
  const { storage, calls } = scripted((c) => ({
    result: 'ok',
    source: '1.stor',
    md5: c.md5,
    bytes: c.bytes,
  }));
  const small = Array.from({ length: 20 }, (_, i) => req(['1.stor'], i % 2 ? '3.stor' : '4.stor'));
  await copyObjects({ storage, nodeUrl }, small, 8);
  // 8 in flight: 4 per request on the node, 2 requests at once; 10 copies per destination.
  assert.deepEqual(calls.map((c) => [c.url, c.copies.length, c.concurrency]).sort(), [
    ['http://n3', 10, 4],
    ['http://n4', 10, 4],
  ]);
  calls.length = 0;
  await copyObjects({ storage, nodeUrl }, small.slice(0, 3), 1);
  assert.deepEqual(
    calls.map((c) => [c.copies.length, c.concurrency]),
    [
      [2, 1],
      [1, 1],
    ],
    'concurrency 1: one copy at a time',
  );
  calls.length = 0;
  const big = Array.from({ length: 5 }, () => req(['1.stor'], '3.stor', 30 * 1024 * 1024));
  await copyObjects({ storage, nodeUrl }, big, 8);
  for (const c of calls)
    assert.ok(
      c.copies.length === 1 || c.copies.reduce((n, x) => n + x.bytes, 0) <= PULL_BATCH_BYTES,
      `request of ${c.copies.length} copies`,
    );
  assert.deepEqual(
    calls.map((c) => c.copies.length),
    [2, 2, 1],
  );
  // The same objectId twice for one destination (never in a claim batch): never in one request.
  calls.length = 0;
  const once = req(['1.stor']);
  await copyObjects({ storage, nodeUrl }, [once, { ...once }], 8);
  assert.deepEqual(
    calls.map((c) => c.copies.length),
    [1, 1],
  );
});

test('a throttle is paid for a request’s bytes before it is sent, and bounds a request to a second’s worth', async () => {
  const order: string[] = [];
  const throttle = new ByteThrottle({ bytesPerSecond: 10_000, sleep: () => Promise.resolve() });
  const take = throttle.take.bind(throttle);
  throttle.take = (bytes: number) => {
    order.push(`take ${bytes}`);
    return take(bytes);
  };
  const { storage, calls } = scripted((c) => {
    order.push(`pull ${c.objectId.slice(0, 4)}`);
    return { result: 'ok', source: '1.stor', md5: c.md5, bytes: c.bytes };
  });
  const reqs = Array.from({ length: 3 }, () => req(['1.stor'], '3.stor', 4096));
  await copyObjects({ storage, nodeUrl, throttle }, reqs, 1);
  // And the node reads each request's bytes no faster than the throttle's rate.
  assert.deepEqual(
    calls.map((c) => c.bytesPerSecond),
    [10_000, 10_000],
  );
  // 4096 × 2 ≤ 10 000 < 4096 × 3: two requests, each paid before it is sent.
  assert.deepEqual(
    order.map((x) => x.split(' ')[0]),
    ['take', 'pull', 'pull', 'take', 'pull'],
  );
  assert.deepEqual(
    order.filter((x) => x.startsWith('take')),
    ['take 8192', 'take 4096'],
  );
});
