/**
 * Documented contracts pinned to literal values, so a change to both the code and the constant
 * it is checked against cannot pass unnoticed:
 *  - the partition function (src/dumps/partition.ts, "STABLE CONTRACT"): fnv1a32 of the UTF-8
 *    of the lower-cased id, mod P — values computed by an independent implementation;
 *  - storage metering's 128 KiB minimum per copy (MANTA-REFERENCE §3.6).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partitionOfAsciiBytes } from '../src/dumps/copy-rows.js';
import { fnv1a32, partitionOf } from '../src/dumps/partition.js';
import { billedBytes, MIN_SIZE } from '../src/jobs/storage-metering/storage-metering.rules.js';

// [id, fnv1a32(lower(id)), id mod 16, id mod 1024] from a separate Python implementation.
const PINS: [string, number, number, number][] = [
  ['', 0x811c9dc5, 5, 453],
  ['a', 0xe40c292c, 12, 300],
  ['4ebc3ff1-dd83-40a6-bc38-9ca15a0cfbac', 0xb18a80e4, 4, 228],
  ['4EBC3FF1-DD83-40A6-BC38-9CA15A0CFBAC', 0xb18a80e4, 4, 228],
  ['/0c4e1b8a-5b1f-4a8e-9d6c-2f6c1a7e9b10/stor/a', 0xb2f35a28, 8, 552],
  ['ünïcode-obj', 0x0b91122f, 15, 559],
];

test('partition function: both implementations give the pinned values', () => {
  for (const [id, hash, p16, p1024] of PINS) {
    assert.equal(fnv1a32(id.toLowerCase()), hash, id);
    assert.equal(partitionOf(id, 16), p16, id);
    assert.equal(partitionOf(id, 1024), p1024, id);
    const bytes = Buffer.from(id, 'utf8');
    const ascii = [...id].every((c) => c.charCodeAt(0) < 0x80);
    // The byte path refuses non-ASCII (its caller then decodes and uses partitionOf).
    assert.equal(partitionOfAsciiBytes(bytes, 0, bytes.length, 16), ascii ? p16 : -1, id);
    if (ascii) assert.equal(partitionOfAsciiBytes(bytes, 0, bytes.length, 1024), p1024, id);
  }
});

test('storage metering bills at least 128 KiB per copy', () => {
  assert.equal(MIN_SIZE, 131_072);
  assert.equal(billedBytes(0, 2), 262_144n);
  assert.equal(billedBytes(1, 3), 393_216n);
  assert.equal(billedBytes(131_073, 2), 262_146n);
  assert.equal(billedBytes(5, 0), 0n);
});
