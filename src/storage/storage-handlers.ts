/**
 * The request handlers of a storage node: what mako's nginx does with `dav_methods PUT MOVE`,
 * `create_full_put_path on`, `fsync on`, `put_always_respond_md5 on` and
 * `content_md5_fail_status 469` (MANTA-REFERENCE §1.8). DELETE is not enabled, as in the original:
 * copies leave only by MOVE to the tombstone tree.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RemoraError } from '../core/errors.js';
import type { CapacityTracker } from './capacity.js';
import { formatManifestLine, listManifest } from './manifest.js';
import { Md5Cache } from './md5-cache.js';
import { parseRange } from './range.js';
import {
  copyFile,
  type CopyPath,
  invalidPath,
  parseCopyTarget,
  parseTombstoneDestination,
  TEMP_DIR,
  tombstoneFile,
} from './storage-paths.js';

export interface HandlerContext {
  root: string;
  datacenter: string;
  capacity: CapacityTracker;
  md5: Md5Cache;
  now: () => number;
  files: DurableFileOps;
}

/**
 * The calls whose order makes a stored copy survive a crash: fsync the temp file, then rename
 * it into place, then fsync the directory (so the rename itself is on disk). Every fsync and
 * rename of a copy goes through this object, so a test can wrap it and record the order
 * (test/storage-node.test.ts "fsync before rename"); a node uses `durableFileOps` otherwise.
 */
export interface DurableFileOps {
  /** Open `p` with `flags` and fsync it (a file with 'r+', a directory with 'r'). */
  fsync(p: string, flags: 'r' | 'r+'): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

export const durableFileOps: DurableFileOps = {
  fsync: fsyncPath,
  rename: (from, to) => fs.promises.rename(from, to),
};

/** Batch manifest lines into chunks of about this size: one write per line would cost a syscall each. */
const MANIFEST_CHUNK_BYTES = 64 * 1024;
/** A Content-MD5: the base64 of a 16-byte MD5 digest. */
export const BASE64_MD5_RE = /^[A-Za-z0-9+/]{22}==$/;

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** PUT: temp file → fsync → rename into place; answers the MD5 (nginx put_always_respond_md5). */
export async function handlePut(
  ctx: HandlerContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  copy: CopyPath,
): Promise<void> {
  const lengthHeader = header(req, 'content-length');
  const expected = lengthHeader === undefined ? undefined : Number(lengthHeader);
  const wantMd5 = header(req, 'content-md5');
  if (wantMd5 !== undefined && !BASE64_MD5_RE.test(wantMd5))
    throw new RemoraError('BadRequest', 'Content-MD5 must be the base64 of a 16-byte MD5 digest');
  let reserved = 0;
  if (expected !== undefined) {
    // An overwrite needs room only for the growth (the cap counts logical bytes, see capacity.ts).
    const growth = Math.max(0, expected - (await sizeOf(copyFile(ctx.root, copy))));
    if (!(await ctx.capacity.reserve(growth))) throw nodeFull(expected);
    reserved = growth;
  }
  const tmp = path.join(ctx.root, TEMP_DIR, `${copy.objectId}.${randomUUID()}`);
  const hash = createHash('md5');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      // Without a Content-Length the size is only known as it arrives: reserve chunk by chunk.
      if (expected === undefined) {
        if (!ctx.capacity.reserveCapped(chunk.length)) return cb(nodeFull(bytes));
        reserved += chunk.length;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    try {
      await pipeline(req, meter, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    } catch (err) {
      if (err instanceof RemoraError) throw err;
      if ((err as { code?: string }).code === 'ENOSPC') throw nodeFull(bytes, err);
      throw truncated(bytes, expected, err);
    }
    if (expected !== undefined && bytes !== expected) throw truncated(bytes, expected);
    const md5 = hash.digest('base64');
    if (wantMd5 !== undefined && wantMd5 !== md5)
      throw new RemoraError('Md5Mismatch', `Content-MD5 ${wantMd5} does not match the body's MD5 ${md5}`, {
        details: { expected: wantMd5, actual: md5 },
      });
    await ctx.files.fsync(tmp, 'r+');
    const dest = copyFile(ctx.root, copy);
    await fs.promises.mkdir(path.dirname(dest), { recursive: true }); // nginx create_full_put_path
    const previous = await sizeOf(dest);
    await ctx.files.rename(tmp, dest);
    await ctx.files.fsync(path.dirname(dest), 'r'); // the rename itself must survive a crash
    ctx.capacity.commit(bytes - previous);
    const st = await fs.promises.stat(dest);
    ctx.md5.set(dest, { md5, size: st.size, mtimeMs: st.mtimeMs });
    const body = JSON.stringify({ md5, bytes });
    res.writeHead(201, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'content-md5': md5,
      'x-remora-md5': md5,
    });
    res.end(body);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  } finally {
    ctx.capacity.release(reserved);
  }
}

/** GET and HEAD, with single `Range: bytes=…` (206) support. */
export async function handleGet(
  ctx: HandlerContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  copy: CopyPath,
): Promise<void> {
  const file = copyFile(ctx.root, copy);
  const fh = await openCopy(file, copy);
  let streaming = false;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notFound(copy);
    const range = parseRange(header(req, 'range'), st.size);
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'application/octet-stream',
      'accept-ranges': 'bytes',
      'last-modified': st.mtime.toUTCString(),
    };
    const md5 = ctx.md5.get(file, st);
    if (md5 !== undefined && range === undefined) headers['content-md5'] = md5;
    const start = range?.start ?? 0;
    const end = range?.end ?? st.size - 1;
    headers['content-length'] = st.size === 0 ? 0 : end - start + 1;
    if (range) headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD' || st.size === 0) {
      res.end();
      return;
    }
    streaming = true;
    await pipeline(fh.createReadStream({ start, end }), res);
  } finally {
    // createReadStream closes the handle itself (autoClose) once it was handed over.
    if (!streaming) await fh.close();
  }
}

/**
 * MOVE to `/tombstone/YYYY-MM-DD/<objectId>` (mako/v1 bin/mako_gc.sh), or to
 * `/quarantine/YYYY-MM-DD/<objectId>` (repair's corrupt copies): a rename within the node, then an
 * fsync of the destination directory and of the source directory.
 */
export async function handleMove(
  ctx: HandlerContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  copy: CopyPath,
): Promise<void> {
  const { tree, day, objectId } = parseTombstoneDestination(header(req, 'destination'));
  if (objectId !== copy.objectId)
    throw invalidPath('a tombstone keeps the objectId of the copy it holds', `${day}/${objectId}`);
  const src = copyFile(ctx.root, copy);
  const dest = tombstoneFile(ctx.root, day, objectId, tree);
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(src);
  } catch (err) {
    throw notFoundOr(err, copy);
  }
  if (!st.isFile()) throw notFound(copy);
  await fs.promises.mkdir(path.dirname(dest), { recursive: true });
  try {
    await ctx.files.rename(src, dest);
  } catch (err) {
    throw notFoundOr(err, copy);
  }
  // Both directories, as the batched tombstone does: the copy's new name and its old name's
  // removal each survive a crash before the answer says 'moved'.
  await ctx.files.fsync(path.dirname(dest), 'r');
  await ctx.files.fsync(path.dirname(src), 'r');
  ctx.md5.delete(src);
  res.writeHead(204);
  res.end();
}

/**
 * Where a copy's MD5 is computed on the node itself (deep audit, docs/audit.md): `GET
 * /md5/<owner>/<objectId>` → `{"md5":"<base64>","bytes":N}`, 404 when the node has no such copy.
 * The file is read from disk every time (never the MD5 cache: the point is to find bytes that
 * changed under the node), so only the answer crosses the network, not the copy. Credentialed
 * (it costs the node a read of the whole file); the caller paces it (ByteThrottle per node).
 */
export const MD5_PREFIX = '/md5';

export function isMd5Target(target: string): boolean {
  return target === MD5_PREFIX || target.startsWith(`${MD5_PREFIX}/`);
}

/** `/md5/<owner>/<objectId>` → the copy; anything else under /md5 is InvalidPath. */
export function parseMd5Target(target: string): CopyPath {
  return parseCopyTarget(target.slice(MD5_PREFIX.length));
}

/** The MD5 (base64, as Content-MD5) and size of a copy as it is on disk now. */
export async function handleMd5(
  ctx: HandlerContext,
  res: http.ServerResponse,
  copy: CopyPath,
): Promise<void> {
  const fh = await openCopy(copyFile(ctx.root, copy), copy);
  const hash = createHash('md5');
  let bytes = 0;
  try {
    if (!(await fh.stat()).isFile()) throw notFound(copy);
    for await (const chunk of fh.createReadStream({ autoClose: false, highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } finally {
    await fh.close();
  }
  const body = JSON.stringify({ md5: hash.digest('base64'), bytes });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The manifest (MANTA-REFERENCE §2.4), streamed. An error mid-walk cuts the connection. */
export async function handleManifest(ctx: HandlerContext, res: http.ServerResponse): Promise<void> {
  const listing = listManifest(ctx.root, ctx.now);
  res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'm-mako-dump-time': listing.startedAt,
    'm-datacenter': ctx.datacenter,
  });
  async function* chunks(): AsyncGenerator<string> {
    let buf = '';
    for await (const e of listing.entries) {
      buf += formatManifestLine(e);
      if (buf.length >= MANIFEST_CHUNK_BYTES) {
        yield buf;
        buf = '';
      }
    }
    if (buf) yield buf;
  }
  await pipeline(Readable.from(chunks()), res);
}

/** Open a copy for reading; ObjectNotFound when the node has none. */
async function openCopy(file: string, copy: CopyPath): Promise<fs.promises.FileHandle> {
  try {
    return await fs.promises.open(file, 'r');
  } catch (err) {
    throw notFoundOr(err, copy);
  }
}

function notFound(copy: CopyPath): RemoraError {
  return new RemoraError('ObjectNotFound', `no copy /${copy.owner}/${copy.objectId} on this node`, {
    details: { owner: copy.owner, objectId: copy.objectId },
  });
}

function notFoundOr(err: unknown, copy: CopyPath): unknown {
  const code = (err as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' ? notFound(copy) : err;
}

function nodeFull(bytes: number, cause?: unknown): RemoraError {
  return new RemoraError('StorageNodeFull', `this storage node has no room for ${bytes} more bytes`, {
    cause,
  });
}

function truncated(bytes: number, expected: number | undefined, cause?: unknown): RemoraError {
  const of = expected === undefined ? '' : ` of ${expected}`;
  return new RemoraError('TruncatedTransfer', `upload ended after ${bytes}${of} bytes`, { cause });
}

/**
 * A request's whole body as text, refused with `tooLarge(what)` beyond `maxBytes`, declared
 * (Content-Length) or sent: the batched routes' JSON bodies (tombstone, pull).
 */
export async function readBoundedBody(
  req: http.IncomingMessage,
  maxBytes: number,
  tooLarge: (what: string) => RemoraError,
): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw tooLarge(`${declared} bytes`);
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > maxBytes) throw tooLarge(`more than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The size of a file, 0 when there is none. */
export async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.promises.stat(file)).size;
  } catch {
    return 0;
  }
}

async function fsyncPath(p: string, flags: 'r' | 'r+'): Promise<void> {
  const fh = await fs.promises.open(p, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
