/**
 * The manifests job's raw listing, fenced like its manifest (src/dumps/source-commit.ts): a task
 * stages the listing beside its chunks, only the run's commit copies it to the shared
 * `/poseidon/stor/mako/<id>`. So an attempt declared lost that lists the node late can neither
 * replace the committed listing nor the committed manifest; discarding it removes only its own
 * files; committing again changes nothing; a later run's commit replaces it and removes the old
 * run's staged files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ingestMakoListing } from '../src/dumps/mako.js';
import { makoPath } from '../src/dumps/layout.js';
import { readSourceManifest } from '../src/dumps/manifest.js';
import {
  commitStagedManifest,
  discardStagedManifest,
  publishStagedListing,
  stagedListingPath,
} from '../src/dumps/source-commit.js';
import { LocalObjectStore, readObjectText } from '../src/objectstore/object-store.js';
import { isRemoraError } from '../src/core/errors.js';

const NODE = '1.stor.dc1.remora.local';
const OWNER = '11111111-1111-4111-8111-111111111111';
const oid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

const linesOf = (ns: number[]) =>
  Readable.from(ns.map((n) => `/manta/${OWNER}/${oid(n)}\t${n * 10}\t1700000000\t1`));

test('the raw listing is published by the run commit only: a late lost attempt replaces nothing', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-listing-fence-'));
  try {
    const store = new LocalObjectStore(dir);
    const shared = makoPath(NODE);
    const attempt = (startedAt: string, ns: number[]) =>
      ingestMakoListing(
        store,
        { storageId: NODE, startedAt, lines: linesOf(ns) },
        { partitions: 2, commit: false },
      );
    const ref = (r: Awaited<ReturnType<typeof attempt>>) => ({
      day: r.manifest.day,
      source: NODE,
      runId: r.manifest.runId,
    });

    // Attempt 1 is declared lost while listing; attempt 2 (its retry) lists and is committed.
    const retry = await attempt('2026-12-02T10:00:05.000Z', [1, 2, 3]);
    assert.equal(await store.head(shared), undefined, 'a task never writes the shared listing');
    assert.equal(retry.listingPath, stagedListingPath(retry.manifest.day, NODE, retry.manifest.runId));
    await commitStagedManifest(store, ref(retry));
    await publishStagedListing(store, ref(retry), shared);
    const committed = await readObjectText(store, shared);
    assert.equal(committed.trim().split('\n').length, 3);
    const head = (await store.head(shared))!;
    assert.equal(head.meta['m-mako-dump-time'], '2026-12-02T10:00:05.000Z');
    assert.equal(head.meta['m-run-id'], retry.manifest.runId);

    // The lost attempt finishes late, with its own (older, shorter) listing of the node.
    const late = await attempt('2026-12-02T10:00:00.000Z', [1, 2]);
    assert.equal(await readObjectText(store, shared), committed, 'the late attempt replaced the listing');
    assert.equal((await readSourceManifest(store, late.manifest.day, NODE))!.runId, retry.manifest.runId);
    // Its result is discarded (the fence): only its own files go.
    const lateFiles = fs.readdirSync(path.join(dir, path.dirname(late.listingPath)));
    assert.ok(lateFiles.includes('listing') && lateFiles.includes('manifest.json'), lateFiles.join(','));
    assert.ok((await discardStagedManifest(store, ref(late))) >= 3);
    assert.equal(await store.head(late.listingPath), undefined);
    assert.ok(await store.head(retry.listingPath), "the committed run's staged listing is kept");

    // Committing again (a coordinator that stopped before its own pointer) is idempotent.
    await commitStagedManifest(store, ref(retry));
    await publishStagedListing(store, ref(retry), shared);
    assert.equal(await readObjectText(store, shared), committed);

    // The next run replaces it and removes the replaced run's staged listing and chunks.
    const next = await attempt('2026-12-02T11:00:00.000Z', [1, 2, 3, 4]);
    await commitStagedManifest(store, ref(next));
    await publishStagedListing(store, ref(next), shared);
    assert.equal((await readObjectText(store, shared)).trim().split('\n').length, 4);
    assert.equal(await store.head(retry.listingPath), undefined, "the replaced run's listing is removed");
    for (const t of Object.values(retry.manifest.tables))
      for (const c of t.chunks) assert.equal(await store.head(c.path), undefined, c.path);

    // A run whose staged listing is gone, and which never published: a named error, nothing written.
    const lost = await attempt('2026-12-02T12:00:00.000Z', [9]);
    await store.delete(lost.listingPath);
    await assert.rejects(
      publishStagedListing(store, ref(lost), shared),
      (e: unknown) => isRemoraError(e) && e.code === 'StaleState' && /staged listing of run/.test(e.message),
    );
    assert.equal((await readObjectText(store, shared)).trim().split('\n').length, 4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
