/**
 * Gzip on more than one core: the input is cut into blocks, each compressed as an independent
 * gzip member on libuv's thread pool (zlib's async API), and the members are written in order.
 * Concatenated members are one valid gzip file (RFC 1952 §2.2): `gunzip`, `zcat` and Node's
 * createGunzip read it whole (pigz does the same). The cost is a member header per block and
 * a dictionary reset, ~0.3% in size at 4 MB blocks (measured on COPY text of `manta`).
 *
 * Memory: at most `inFlight` blocks and their compressed output.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const gzip = promisify(zlib.gzip);

/**
 * zlib's output buffer size for every stream and buffer call in Remora (Node's default: 16 KiB).
 * Each buffer is a thread-pool round trip and a JS callback: at 16 KiB, gunzipping a 906 MB
 * dump took 3.1 s and 3.2 CPU-s (half of it on the main thread); at 1 MiB, 1.0–1.2 s and 1.1
 * CPU-s (docs/dumps.md "Bench").
 */
export const ZLIB_CHUNK_BYTES = 1 << 20;

/** Input bytes per gzip member: large enough that member overhead is noise. */
export const GZIP_BLOCK_BYTES = 4 * 1024 * 1024;
/** Blocks compressed at once: the two cores of the target machine, plus one being filled. */
export const GZIP_IN_FLIGHT = 2;

export class ParallelGzip extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly queue: Promise<Buffer>[] = [];

  constructor(
    private readonly options: zlib.ZlibOptions = { level: 1 },
    private readonly blockBytes = GZIP_BLOCK_BYTES,
    private readonly inFlight = GZIP_IN_FLIGHT,
  ) {
    super();
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.pendingBytes < this.blockBytes) return cb();
    this.startBlock();
    this.drainTo(this.inFlight - 1).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    if (this.pendingBytes > 0 || this.queue.length === 0) this.startBlock();
    this.drainTo(0).then(() => cb(), cb);
  }

  private startBlock(): void {
    const block =
      this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const p = gzip(block, { chunkSize: ZLIB_CHUNK_BYTES, ...this.options });
    p.catch(() => {});
    this.queue.push(p);
  }

  /** Push finished members, in order, until at most `n` blocks are compressing. */
  private async drainTo(n: number): Promise<void> {
    while (this.queue.length > n) this.push(await this.queue.shift()!);
  }
}
