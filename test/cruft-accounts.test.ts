/**
 * The per-node accounts `remora cruft plan` prints (every listed file by class), merged over the
 * tasks, with the instants GC's grace lets it take the gc-pending files — and none of those
 * instants when GC is disabled (`pipeline.jobs.gc.enabled` false: nothing takes them), as
 * cruftOptionsFrom reads it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cruftOptionsFrom, nodeAccountsWithGc } from '../src/jobs/cruft/cruft.job.js';
import { emptyNodeAccount, type NodeAccount } from '../src/jobs/cruft/cruft.scan.js';

const DAY = 86_400_000;
const T0 = Date.parse('2026-11-20T00:00:00Z');

function account(node: string, gcFiles: number, first?: number, last?: number): NodeAccount {
  const a = emptyNodeAccount(node);
  a.listed = { files: gcFiles + 1, bytes: gcFiles * 10 + 5 };
  a.live = { files: 1, bytes: 5, notNamedHere: 0 };
  a.gcPending = {
    files: gcFiles,
    bytes: gcFiles * 10,
    notNamedHere: 0,
    ...(first !== undefined ? { deletedFirstMs: first } : {}),
    ...(last !== undefined ? { deletedLastMs: last } : {}),
  };
  return a;
}

test('cruft accounts: merged per node over tasks; gc dates from the grace, none when gc is disabled', () => {
  const lists = [[account('n1', 2, T0, T0 + DAY)], [account('n1', 1, T0 - DAY, T0), account('n2', 0)]];
  const on = nodeAccountsWithGc(lists, 2 * DAY);
  const n1 = on.find((a) => a.node === 'n1')!;
  assert.deepEqual([n1.listed.files, n1.gcPending.files, n1.live.files], [5, 3, 2]);
  assert.equal(
    n1.gcPending.gcFrom,
    new Date(T0 - DAY + 2 * DAY).toISOString(),
    'the earliest delete + grace',
  );
  assert.equal(
    n1.gcPending.gcAllFrom,
    new Date(T0 + DAY + 2 * DAY).toISOString(),
    'the latest delete + grace',
  );
  const n2 = on.find((a) => a.node === 'n2')!;
  assert.equal(n2.gcPending.gcFrom, undefined, 'no gc-pending file, no date');

  const off = nodeAccountsWithGc(lists, 2 * DAY, false);
  const m1 = off.find((a) => a.node === 'n1')!;
  assert.equal(m1.gcPending.files, 3);
  assert.equal(m1.gcPending.gcFrom, undefined, 'gc disabled: no date GC would take them');
  assert.equal(m1.gcPending.gcAllFrom, undefined);

  assert.equal(cruftOptionsFrom({ jobs: {} }).gcEnabled, true);
  assert.equal(cruftOptionsFrom({ jobs: { gc: { enabled: false } } }).gcEnabled, false);
});
