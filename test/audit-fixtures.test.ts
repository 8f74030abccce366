/**
 * The original's audit semantics on its own data: mola's `cruft_rt_test` moray `manta` table
 * dump (2014 layout, unpacked `{"entry":[…]}` format, read by Remora's unpack) against mako
 * manifests in the original formats (the real `mako_sample`, plus `audit_rt_test`-style listings
 * built from the dump's own objects: 4-column and pre-2014 3-column lines, a tombstone path and a
 * non-UUID owner naming copies the audit must still miss, an nginx_temp file). One node named by
 * the records has no manifest at all.
 *
 * The reference is a line-by-line transcription of mola's audit (MANTA-REFERENCE §3.3:
 * lib/audit_row_transformer.js map lines, plain `sort`, lib/auditor.js reduce, MANTA-3410's
 * uploads exception). Remora must report the same (objectId, storage node, key) problems; the
 * copies on a node with no manifest are the original's problems too, here of kind `no-listing`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isUuid } from '../src/core/ids.js';
import { DuckPool } from '../src/dumps/duckdb.js';
import { ingestMakoListing } from '../src/dumps/mako.js';
import { PartitionInputs } from '../src/dumps/partition-inputs.js';
import { unpackDump } from '../src/dumps/unpack.js';
import { auditGroup } from '../src/jobs/audit/audit.scan.js';
import { UPLOADS_RE } from '../src/jobs/audit/audit.rules.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';

const FIXTURES = process.env.REMORA_FIXTURES ?? path.resolve('test/fixtures/manta-samples');
const SHARD = '1.moray.staging.joyent.us';

interface Row {
  _key: string;
  value: { type?: string; objectId?: string; sharks?: { manta_storage_id?: string }[] };
}

function readDump(file: string): Row[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const keys = (JSON.parse(lines[0]!) as { keys: string[] }).keys;
  return lines.slice(1).map((l) => {
    const e = (JSON.parse(l) as { entry: string[] }).entry;
    return { _key: e[keys.indexOf('_key')]!, value: JSON.parse(e[keys.indexOf('_value')]!) as Row['value'] };
  });
}

/** mola's audit, transcribed: map (transformer), sort, reduce (auditor). Problem lines split. */
function originalAudit(rows: Row[], listings: Map<string, string[]>): string[][] {
  const mapped: string[] = [];
  for (const [storageId, lines] of listings)
    for (const line of lines) {
      const p = line.split('\t')[0]!;
      if (p.includes('/tombstone/')) continue;
      const parts = p.split('/');
      if (!isUuid(parts[2] ?? '')) continue;
      mapped.push(`${parts[parts.length - 1]}\t${storageId}\tmako`);
    }
  for (const r of rows)
    if (r.value.type === 'object')
      for (const s of r.value.sharks ?? [])
        mapped.push(`${r.value.objectId}\t${s.manta_storage_id}\tmoray\t${r._key}\t${SHARD}`);
  mapped.sort();
  const problems: string[][] = [];
  let current = '';
  let seen = new Set<string>();
  for (const line of mapped) {
    const f = line.split('\t');
    if (f[0] !== current) {
      current = f[0]!;
      seen = new Set();
    }
    if (f[2] === 'mako') seen.add(f[1]!);
    else if (!seen.has(f[1]!) && !UPLOADS_RE.test(f[3]!)) problems.push(f);
  }
  return problems;
}

test('audit on the original fixtures reports the problems the original auditor would', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-audit-fx-'));
  const store = new LocalObjectStore(path.join(tmp, 'objects'));
  const duck = new DuckPool();
  try {
    const dump = path.join(FIXTURES, 'cruft_rt_test/moray-manta_sample');
    const rows = readDump(dump);
    const objects = rows.filter((r) => r.value.type === 'object');
    const on = (node: string) =>
      objects.filter((r) => (r.value.sharks ?? []).some((s) => s.manta_storage_id === node));
    const n1 = on('1.stor.staging.joyent.us');
    const n2 = on('2.stor.staging.joyent.us');
    assert.ok(n1.length >= 6 && n2.length >= 4, `${n1.length} ${n2.length}`);
    const file = (r: Row) =>
      `/manta/${(r.value as { creator?: string; owner?: string }).owner}/${r.value.objectId}`;

    const listings = new Map<string, string[]>([
      [
        '1.stor.staging.joyent.us',
        [
          ...fs
            .readFileSync(path.join(FIXTURES, 'cruft_rt_test/mako_sample'), 'utf8')
            .split('\n')
            .filter(Boolean),
          ...n1.slice(0, n1.length - 3).map((r) => `${file(r)}\t416\t1397169595\t4`),
          // Named, but only in tombstone or under a non-UUID owner: still missing for the original.
          `/manta/tombstone/2014-08-14/${n1[n1.length - 3]!.value.objectId}\t416\t1397169595\t4`,
          `/manta/poseidon/${n1[n1.length - 2]!.value.objectId}\t416\t1397169595\t4`,
          `/manta/nginx_temp/${n1[n1.length - 1]!.value.objectId}\t416\t1397169595\t4`,
        ],
      ],
      // Pre-2014 three-column lines (MANTA-2410 added the KB column).
      ['2.stor.staging.joyent.us', n2.slice(1).map((r) => `${file(r)}\t12067\t1368123676`)],
    ]);
    const expected = originalAudit(rows, listings);
    assert.ok(expected.length > 5, `the original finds ${expected.length} problems`);

    const unpacked = await unpackDump(store, [dump], { shard: SHARD, partitions: 4 });
    const manifests = [unpacked.manifest];
    for (const [storageId, lines] of listings) {
      async function* gen() {
        for (const l of lines) yield await Promise.resolve(l);
      }
      const r = await ingestMakoListing(
        store,
        { storageId, startedAt: '2014-08-15T08:01:00.000Z', lines: gen() },
        { partitions: 2 },
      );
      manifests.push(r.manifest);
    }
    const inputs = PartitionInputs.of(store, manifests);
    const found: string[][] = [];
    const listed = [...listings.keys()];
    for (const t of inputs.tasks(['manta', 'mako'])) {
      const out = path.join(tmp, `${t.key}.ndjson`);
      await inputs.withGroup(t.params, ['manta', 'mako'], ({ files }) =>
        duck.run((conn) =>
          auditGroup(conn, { manta: files.manta!, mako: files.mako! }, { listed, cycle: 0, slot: 0 }, out),
        ),
      );
      for (const l of fs.readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
        const p = JSON.parse(l) as {
          kind: string;
          objectId: string;
          node: string;
          key: string;
          shard: string;
        };
        assert.equal(p.kind, listed.includes(p.node) ? 'missing' : 'no-listing');
        found.push([p.objectId, p.node, 'moray', p.key, p.shard]);
      }
    }
    const key = (f: string[]) => f.join('\t');
    console.log(
      `fixture audit: ${objects.length} object records; the original finds ${expected.length} problems, Remora ${found.length}`,
    );
    assert.deepEqual(found.map(key).sort(), expected.map(key).sort());
  } finally {
    await duck.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
