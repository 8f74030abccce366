/**
 * `COPY … TO STDOUT` as a stream of large blocks of COPY text, for the snapshot.
 *
 * A node-postgres "submittable" (the same client hook pg-copy-streams uses): while the COPY
 * runs it reads the connection's socket itself, copies each CopyData payload straight into a
 * 4 MB block and pushes whole blocks; afterwards it hands the socket back to the client, which
 * reads CommandComplete and ReadyForQuery as usual. pg-copy-streams did the same through a
 * buffer list, which cost a Buffer per message and a concat per socket read: on 1M rows of
 * ~900 bytes, ~3.5 s of the main thread and 1.3 s of GC (docs/dumps.md "Bench").
 *
 * PostgreSQL sends one CopyData message per row in COPY TO, so `rows` counts messages; the
 * server's own count (CommandComplete `COPY n`) is kept in `serverRows` to cross-check.
 */
import { Readable } from 'node:stream';
import type { Connection, Submittable } from 'pg';

const COPY_DATA = 0x64; // d
const COPY_DONE = 0x63; // c
const ERROR_RESPONSE = 0x45; // E
/** Messages a server may send between CopyOutResponse and CopyDone (protocol-flow "COPY"). */
const COPY_OUT_MESSAGES = new Set([
  0x48, // H CopyOutResponse
  COPY_DATA,
  0x4e, // N NoticeResponse
  0x53, // S ParameterStatus
  0x41, // A NotificationResponse
]);

/** Bytes of COPY text per pushed block (the snapshot's gzip member size). */
export const COPY_OUT_BLOCK_BYTES = 4 << 20;

export class CopyOutBlocks extends Readable implements Submittable {
  /** CopyData messages received: rows. */
  rows = 0;
  /** Rows the server reported in CommandComplete, once the COPY has finished. */
  serverRows: number | undefined;
  /** Resolves when the client has read the server's ReadyForQuery after the COPY. */
  readonly settled: Promise<void>;

  private connection: Connection | undefined;
  private pgDataHandler: ((b: Buffer) => void) | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.parse(chunk);
    if (!this.wanted && !this.discarding) this.connection?.stream.pause();
  };
  private readonly header = Buffer.alloc(5);
  private headerBytes = 0;
  private code = 0;
  /** Payload bytes of the current message still to come; -1 between messages. */
  private remaining = -1;
  private block: Buffer;
  private used = 0;
  private wanted = false;
  /** Destroyed before the COPY ended: the rest is read and dropped (see _destroy). */
  private discarding = false;
  private settle!: () => void;

  constructor(
    private readonly text: string,
    private readonly blockBytes = COPY_OUT_BLOCK_BYTES,
  ) {
    // Object mode: each block is read as it was pushed (a byte stream's reader would join
    // buffered blocks into a new Buffer); one block may wait while the next one fills.
    super({ objectMode: true, highWaterMark: 1 });
    this.block = Buffer.allocUnsafe(blockBytes);
    this.settled = new Promise((resolve) => (this.settle = resolve));
  }

  /** Called by `client.query(submittable)`. */
  submit(connection: Connection): void {
    this.connection = connection;
    const stream = connection.stream;
    const handlers = stream.listeners('data') as ((b: Buffer) => void)[];
    if (handlers.length !== 1)
      throw new Error(`COPY TO: expected one socket data listener, found ${handlers.length}`);
    this.pgDataHandler = handlers[0];
    stream.removeListener('data', this.pgDataHandler!);
    // 'data' events, not read(): read() joins whatever the socket has buffered into a new Buffer.
    stream.on('data', this.onData);
    connection.query(this.text);
  }

  override _read(): void {
    this.wanted = true;
    this.connection?.stream.resume();
  }

  /**
   * A reader that stops early (its write failed) must not leave the COPY half read: the client
   * would wait forever for the end of it, and so would the ROLLBACK queued behind it. The rest
   * of the COPY is read and dropped, then the socket goes back to the client as usual.
   */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.connection) {
      this.discarding = true;
      this.connection.stream.resume();
    }
    cb(err);
  }

  private parse(c: Buffer): void {
    let i = 0;
    while (i < c.length) {
      if (this.remaining < 0) {
        if (this.headerBytes === 0 && !this.discarding) {
          i = this.copyWholeMessages(c, i);
          if (i === c.length) return;
        }
        const n = Math.min(5 - this.headerBytes, c.length - i);
        c.copy(this.header, this.headerBytes, i, i + n);
        this.headerBytes += n;
        i += n;
        if (this.headerBytes < 5) return;
        this.headerBytes = 0;
        this.code = this.header[0]!;
        if (this.code === ERROR_RESPONSE) {
          // The client parses the error (and what follows) and calls handleError.
          this.detach(Buffer.concat([this.header, c.subarray(i)]));
          return;
        }
        this.remaining = this.header.readUInt32BE(1) - 4;
        if (this.code === COPY_DATA) this.rows++;
      }
      const n = Math.min(this.remaining, c.length - i);
      if (this.code === COPY_DATA) this.append(c, i, i + n);
      i += n;
      this.remaining -= n;
      if (this.remaining > 0) return;
      this.remaining = -1;
      if (this.code === COPY_DONE || !COPY_OUT_MESSAGES.has(this.code)) {
        if (this.used > 0 && !this.discarding) this.push(this.block.subarray(0, this.used));
        this.detach(c.subarray(i));
        if (!this.discarding) this.push(null);
        return;
      }
    }
  }

  /**
   * The common case, from a message start at `i`: a run of CopyData messages wholly inside `c`
   * that fits the block is copied with one copy, then moved together in place over its 5-byte
   * headers. A copy per row (~900 bytes) cost ~0.5 s per 1M rows in call overhead and the
   * short-lived views it allocates; `copyWithin` allocates nothing. Returns where the run
   * ended: at the first message that is not CopyData, is cut by the end of `c`, or would not
   * fit; the message-by-message path takes it from there.
   */
  private copyWholeMessages(c: Buffer, i: number): number {
    const room = this.blockBytes - this.used;
    let end = i;
    let count = 0;
    while (end + 5 <= c.length && c[end] === COPY_DATA) {
      const next = end + 1 + c.readUInt32BE(end + 1);
      if (next > c.length || next - i > room) break;
      end = next;
      count++;
    }
    if (count === 0) return i;
    const block = this.block;
    c.copy(block, this.used, i, end);
    let dst = this.used;
    for (let at = i; at < end;) {
      const payload = c.readUInt32BE(at + 1) - 4;
      const src = this.used + (at - i) + 5;
      block.copyWithin(dst, src, src + payload);
      dst += payload;
      at += 5 + payload;
    }
    this.used = dst;
    this.rows += count;
    this.pushIfFull();
    return end;
  }

  private append(src: Buffer, start: number, end: number): void {
    if (this.discarding) return;
    while (start < end) {
      const n = Math.min(end - start, this.blockBytes - this.used);
      src.copy(this.block, this.used, start, start + n);
      this.used += n;
      start += n;
      this.pushIfFull();
    }
  }

  /** A full block goes to the reader; the next rows go to a new one. */
  private pushIfFull(): void {
    if (this.used < this.blockBytes) return;
    this.wanted = this.push(this.block);
    this.block = Buffer.allocUnsafe(this.blockBytes);
    this.used = 0;
  }

  /** Give the socket back to the client, with the bytes it has not seen yet. */
  private detach(unread: Buffer): void {
    const connection = this.connection!;
    const handler = this.pgDataHandler!;
    this.connection = undefined;
    connection.stream.removeListener('data', this.onData);
    connection.stream.on('data', handler);
    if (unread.length > 0) handler(unread);
    process.nextTick(() => connection.stream.resume());
  }

  handleError(err: Error): void {
    this.destroy(err);
    this.settle();
  }

  handleCommandComplete(msg: { text?: string } | undefined): void {
    const m = /COPY (\d+)/.exec(msg?.text ?? '');
    if (m) this.serverRows = Number(m[1]);
  }

  handleReadyForQuery(): void {
    this.settle();
  }
}
