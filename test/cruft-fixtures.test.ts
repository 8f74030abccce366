/**
 * Cruft on the original's own data, `cruft_rt_test` (mola data/: a mako manifest and the `manta`
 * and `manta_delete_log` dumps of one shard), read by Remora's unpack and listing ingest, judged
 * by Remora's cruft scan, against a line-by-line transcription of mola's cruft (MANTA-REFERENCE
 * §3.4: lib/cruft_row_transformer.js map with `filterTimestamp = floor(earliestMorayDump/1000) −
 * tooNewSeconds`, `sort -r`, lib/cruft_collector.js reduce).
 *
 * The sample's files are referenced by none of its records; the test adds listing lines that
 * the rules must keep out: files of objects the `manta` dump and the delete log name (old
 * mtimes), a tombstone path and a non-UUID owner. The cutoff falls inside the sample's mtimes
 * (the snapshot instant is chosen so that some real files are too new), with a file exactly on
 * the boundary second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DAY_MS } from '../src/core/days.js';
import { isUuid } from '../src/core/ids.js';
import { DuckPool } from '../src/dumps/duckdb.js';
import { ingestMakoListing } from '../src/dumps/mako.js';
import { PartitionInputs } from '../src/dumps/partition-inputs.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { cruftCutoffSeconds } from '../src/jobs/cruft/cruft.rules.js';
import { scanCruft } from '../src/jobs/cruft/cruft.scan.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';

const FIXTURES = process.env.REMORA_FIXTURES ?? path.resolve('test/fixtures/manta-samples');
const NODE = '1.stor.staging.joyent.us';

function objectIdsOf(file: string, objectsOnly: boolean): string[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const keys = (JSON.parse(lines[0]!) as { keys: string[] }).keys;
  const out: string[] = [];
  for (const l of lines.slice(1)) {
    const e = (JSON.parse(l) as { entry: string[] }).entry;
    const v = JSON.parse(e[keys.indexOf('_value')]!) as { type?: string; objectId?: string };
    if (v.objectId && (!objectsOnly || v.type === 'object')) out.push(v.objectId);
  }
  return out;
}

/** mola's cruft, transcribed. Output: `mako\t<storageId>\t<owner>\t<objectId>\t<bytes>\t<mtime>\t<KB>`. */
function originalCruft(
  listing: string[],
  live: string[],
  deleted: string[],
  filterTimestamp: number,
): string[] {
  const mapped: string[] = [];
  for (const line of listing) {
    const [p, bytes, mtime, kb] = line.split('\t');
    if (p!.includes('/tombstone/')) continue;
    const parts = p!.split('/');
    if (!isUuid(parts[2] ?? '')) continue;
    if (Number(mtime) > filterTimestamp) continue;
    mapped.push([parts[3], 'mako', NODE, parts[2], bytes, mtime, kb ?? ''].join('\t'));
  }
  for (const id of [...live, ...deleted]) mapped.push(`${id}\tmoray`);
  mapped.sort().reverse();
  const out: string[] = [];
  let moray = '';
  for (const line of mapped) {
    const f = line.split('\t');
    if (f[1] === 'moray') moray = f[0]!;
    else if (f[0] !== moray) out.push(['mako', f[2], f[3], f[0], f[4], f[5], f[6]].join('\t'));
  }
  return out;
}

test('cruft on cruft_rt_test agrees with the original rules', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-cruft-fx-'));
  const store = new LocalObjectStore(path.join(tmp, 'objects'));
  const duck = new DuckPool();
  try {
    const mantaDump = path.join(FIXTURES, 'cruft_rt_test/moray-manta_sample');
    const deleteDump = path.join(FIXTURES, 'cruft_rt_test/moray-manta_delete_log_sample');
    const live = objectIdsOf(mantaDump, true);
    const deleted = objectIdsOf(deleteDump, false);
    const sample = fs
      .readFileSync(path.join(FIXTURES, 'cruft_rt_test/mako_sample'), 'utf8')
      .split('\n')
      .filter(Boolean);
    const mtimes = sample.map((l) => Number(l.split('\t')[2])).sort((a, b) => a - b);
    // The snapshot two days after a real file's mtime: that file sits exactly on the boundary.
    const boundary = mtimes[Math.floor(mtimes.length / 2)]!;
    const snapshotMs = boundary * 1000 + 2 * DAY_MS;
    const cutoff = cruftCutoffSeconds(snapshotMs);
    assert.equal(cutoff, boundary);
    const owner = sample[0]!.split('\t')[0]!.split('/')[2]!;
    const listing = [
      ...sample,
      ...live.slice(0, 4).map((id) => `/manta/${owner}/${id}\t10\t1300000000\t4`),
      ...deleted.slice(0, 4).map((id) => `/manta/${owner}/${id}\t10\t1300000000\t4`),
      `/manta/tombstone/2014-04-01/00000000-1111-4222-8333-444444444444\t10\t1300000000\t4`,
      `/manta/poseidon/00000000-1111-4222-8333-555555555555\t10\t1300000000\t4`,
    ];
    const expected = originalCruft(listing, live, deleted, cutoff);
    const tooNew = sample.filter((l) => Number(l.split('\t')[2]) > cutoff).length;
    assert.ok(expected.length > 5 && tooNew > 5, `${expected.length} cruft, ${tooNew} too new`);

    const manifests = [
      (await unpackDump(store, [mantaDump], { shard: 'x.moray', partitions: 4 })).manifest,
      (await unpackDump(store, [deleteDump], { shard: 'y.moray', partitions: 2 })).manifest,
    ];
    async function* lines() {
      for (const l of listing) yield await Promise.resolve(l);
    }
    manifests.push(
      (
        await ingestMakoListing(
          store,
          { storageId: NODE, startedAt: new Date(snapshotMs + 3_600_000).toISOString(), lines: lines() },
          { partitions: 8 },
        )
      ).manifest,
    );
    const inputs = PartitionInputs.of(store, manifests);
    const found: string[] = [];
    for (const t of inputs.tasks(['manta', 'manta_delete_log', 'mako'])) {
      const scan = await inputs.withGroup(t.params, ['manta', 'manta_delete_log', 'mako'], ({ files }) =>
        duck.run((conn) =>
          scanCruft(
            conn,
            { manta: files.manta!, deleteLog: files.manta_delete_log!, mako: files.mako! },
            cutoff,
          ),
        ),
      );
      for (const c of scan.candidates) {
        const kb = listing.find((l) => l.includes(c.objectId))!.split('\t')[3] ?? '';
        found.push(['mako', c.node, c.owner, c.objectId, c.bytes, c.mtime, kb].join('\t'));
      }
    }
    console.log(
      `cruft_rt_test: ${listing.length} listed, ${tooNew} too new; the original finds ${expected.length}, Remora ${found.length}`,
    );
    assert.deepEqual(found.sort(), expected.sort());
  } finally {
    await duck.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
