/**
 * CopyOutBlocks' protocol parsing, byte by byte: the server's messages arrive cut at every
 * possible place (TCP decides), and blocks of several sizes make rows straddle blocks.
 * The connection is a stand-in that carries bytes only; dumps-snapshot.test.ts runs the same
 * class against PostgreSQL.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { Connection } from 'pg';
import { CopyOutBlocks } from '../src/dumps/copy-out.js';

function message(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** A COPY TO STDOUT as the server sends it, and what follows the COPY. */
function copyResponse(rows: Buffer[]): { bytes: Buffer; after: Buffer } {
  const after = Buffer.concat([
    message('C', Buffer.from(`COPY ${rows.length}\0`)),
    message('Z', Buffer.from('I')),
  ]);
  const bytes = Buffer.concat([
    message('H', Buffer.from([0, 0, 2, 0, 0, 0, 0])),
    ...rows.map((r, i) =>
      // A notice in the middle, as a server may send one.
      i === 7 ? Buffer.concat([message('N', Buffer.from('Snotice\0\0')), message('d', r)]) : message('d', r),
    ),
    message('c', Buffer.alloc(0)),
    after,
  ]);
  return { bytes, after };
}

class FakeSocket extends EventEmitter {
  pause(): void {}
  resume(): void {}
}

/** Feed `bytes` cut into pieces of `piece` bytes; returns the blocks and what the client got back. */
async function run(bytes: Buffer, piece: number, blockBytes: number) {
  const stream = new FakeSocket();
  const returned: Buffer[] = [];
  stream.on('data', (b: Buffer) => returned.push(Buffer.from(b)));
  const copy = new CopyOutBlocks('COPY t TO STDOUT', blockBytes);
  copy.submit({ stream, query: () => {} } as unknown as Connection);
  const blocks: Buffer[] = [];
  copy.on('data', (b: Buffer) => blocks.push(Buffer.from(b)));
  const ended = new Promise((resolve) => copy.on('end', resolve));
  for (let i = 0; i < bytes.length; i += piece) stream.emit('data', bytes.subarray(i, i + piece));
  await ended;
  return { blocks, returned: Buffer.concat(returned), rows: copy.rows };
}

test('COPY TO blocks: rows and headers cut anywhere arrive whole, in full blocks, and the rest goes back to the client', async () => {
  const rows = Array.from({ length: 60 }, (_, i) =>
    Buffer.from(`${i}\t${'x'.repeat((i * 37) % 250)}\t\\\\N\n`),
  );
  const { bytes, after } = copyResponse(rows);
  const expected = Buffer.concat(rows);
  for (const blockBytes of [64, 301, 1000, 1 << 20])
    for (let piece = 1; piece <= 700; piece += piece < 12 ? 1 : 37) {
      const { blocks, returned, rows: n } = await run(bytes, piece, blockBytes);
      const what = `block ${blockBytes}, pieces of ${piece}`;
      assert.equal(Buffer.concat(blocks).toString(), expected.toString(), what);
      assert.equal(n, rows.length, what);
      assert.ok(
        blocks.slice(0, -1).every((b) => b.length === blockBytes),
        `${what}: full blocks until the last`,
      );
      assert.equal(returned.toString('latin1'), after.toString('latin1'), what);
    }
});
