/**
 * `POST /pull`: the node fetches copies from other nodes onto its own disk, in batches (what
 * mako_rebalance.js did on the destination with `http.get` of the old shark, and what the Rust
 * rebalancer's agent did with an assignment of ≤ 50 tasks POSTed to the destination,
 * MANTA-REFERENCE §3.5, §8). The bytes go source → destination directly, never through the job
 * that asked for them. Credentialed (it writes copies, as PUT does).
 *
 *   body    `{"copies":[{"owner","objectId","md5","bytes","sources":[{"id","url"}…]}…],"concurrency"?:N,
 *           "bytesPerSecond"?:B}` (B: the request's bytes are read from the sources at most that fast, bursts
 *           up to one second's worth: the caller's `--max-bytes-per-second` holds on the wire too)
 *           (at most MAX_PULL_BATCH copies, MAX_PULL_SOURCES sources each, MAX_PULL_BATCH_BYTES of JSON)
 *   answer  200 `{"results":[…]}`, one per copy in request order:
 *             `{"owner","objectId","result":"ok","source":<id>,"md5","bytes"}`
 *             `{"owner","objectId","result":"failed","attempts":[{"source","kind","message"}…],
 *               "destination"?:{"kind":"full"|"write","message"}}`
 *           A source attempt's kind: `md5` (the bytes' MD5 is not the record's), `truncated` (the
 *           source cut the transfer short), `unreachable` (no answer, an error status, or a size
 *           that is not the record's). `destination` set: this node could not hold the copy
 *           (`full`: no room, StorageNodeFull; `write`: a write, fsync or rename failed) and no
 *           further source was tried.
 *
 * Each copy is written exactly as a PUT with Content-MD5 is (storage-handlers.ts handlePut):
 * room reserved for its size first, a temp file under nginx_temp, size and MD5 checked against
 * the request before anything is committed, the file fsynced, then renamed into place. Sources
 * are tried in order; a failed attempt's temp file is removed before the next. Group commit:
 * once every copy of the request is done, each directory that received a copy is fsynced ONCE
 * (the batched tombstone's "renames, then one fsync per directory"), and only then is the answer
 * written, so a copy is answered `ok` only when its rename is on disk. A copy whose directory
 * fsync failed is answered `failed` with `destination.kind` `write`.
 *
 * While the copies are fetched the node sends the answer's headers at once and a space every
 * PULL_KEEPALIVE_MS (JSON allows leading whitespace), so a long batch is not mistaken for a
 * silent node by the caller's idle timeout. A failure after that cuts the connection: the caller
 * then counts no copy of the request as done.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { eachLimit } from '../core/concurrency.js';
import { RemoraError } from '../core/errors.js';
import { ByteThrottle } from './throttle.js';
import { BASE64_MD5_RE, type HandlerContext, readBoundedBody, sizeOf } from './storage-handlers.js';
import { copyFile, type CopyPath, parseCopyTarget, TEMP_DIR } from './storage-paths.js';

export const PULL_PATH = '/pull';
/** Copies one pull request may name (a rebalance claim batch is at most 512 objects). */
export const MAX_PULL_BATCH = 1024;
/** Sources one copy may list. */
export const MAX_PULL_SOURCES = 16;
/** Bytes of one pull request's JSON body. */
export const MAX_PULL_BATCH_BYTES = 1024 * 1024;
/** Copies a node fetches at once within one request (the agent's workers_per_assignment, 4–8). */
export const MAX_PULL_CONCURRENCY = 8;
export const DEFAULT_PULL_CONCURRENCY = 4;
/** A space is sent this often while a batch is being fetched (the caller's idle timeout is 30 s). */
export const PULL_KEEPALIVE_MS = 5000;
/** A source that sends nothing for this long fails that attempt. */
export const PULL_SOURCE_TIMEOUT_MS = 30_000;

export interface PullSource {
  /** manta_storage_id, for messages. */
  id: string;
  /** Base URL of the node (`http://host:port`). */
  url: string;
}

export interface PullCopy extends CopyPath {
  md5: string;
  bytes: number;
  sources: PullSource[];
}

export type PullAttemptKind = 'md5' | 'truncated' | 'unreachable';
export interface PullAttempt {
  source: string;
  kind: PullAttemptKind;
  message: string;
}
export type PullDestinationKind = 'full' | 'write';

export type PullResult =
  | (CopyPath & { result: 'ok'; source: string; md5: string; bytes: number })
  | (CopyPath & {
      result: 'failed';
      attempts: PullAttempt[];
      destination?: { kind: PullDestinationKind; message: string };
    });

/** What one pull request fetches with: the node's agent, and a signal that stops it. */
export interface PullScope {
  readonly agent: http.Agent;
  readonly sourceTimeoutMs: number;
  readonly signal: AbortSignal;
}

/** What a node needs to fetch from others: one keep-alive agent, closed with the node. */
export class Puller implements PullScope {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  /** Aborted when the node closes: pulls in flight stop fetching and commit nothing more. */
  private readonly closing = new AbortController();
  constructor(readonly sourceTimeoutMs = PULL_SOURCE_TIMEOUT_MS) {}
  get signal(): AbortSignal {
    return this.closing.signal;
  }
  close(): void {
    this.closing.abort(new Error('the storage node is closing'));
    this.agent.destroy();
  }
}

/** `POST /pull` (the router checked the credential). */
export async function handlePull(
  ctx: HandlerContext,
  puller: Puller,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const { copies, concurrency, bytesPerSecond } = parsePull(
    await readBoundedBody(req, MAX_PULL_BATCH_BYTES, tooLarge),
  );
  // The caller gone (a runner killed mid-request): stop fetching, commit nothing more, and leave
  // no temp file, as a PUT whose connection drops does.
  const gone = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(new Error('the caller closed the connection'));
  });
  const scope: PullScope = {
    agent: puller.agent,
    sourceTimeoutMs: puller.sourceTimeoutMs,
    signal: AbortSignal.any([puller.signal, gone.signal]),
  };
  res.writeHead(200, { 'content-type': 'application/json' });
  const keepalive = setInterval(() => res.write(' '), PULL_KEEPALIVE_MS);
  try {
    const pace = bytesPerSecond === undefined ? undefined : new ByteThrottle({ bytesPerSecond });
    const results = await pullBatch(ctx, scope, copies, concurrency, pace);
    res.end(JSON.stringify({ results }));
  } finally {
    clearInterval(keepalive);
  }
}

interface Fetched {
  dest: string;
  md5: string;
  bytes: number;
  source: string;
}

/**
 * Fetch every copy (`concurrency` at a time), rename each into place, then fsync each directory
 * that received one, once; the answer per copy, in order.
 */
export async function pullBatch(
  ctx: HandlerContext,
  puller: PullScope,
  copies: PullCopy[],
  concurrency: number,
  /** Shared by the request's fetches: its bytes come in no faster than this allows. */
  pace?: ByteThrottle,
): Promise<PullResult[]> {
  const results: PullResult[] = new Array<PullResult>(copies.length);
  const renamedInto = new Map<string, number[]>(); // directory → indexes of copies renamed into it
  const landed: (Fetched | undefined)[] = new Array<Fetched | undefined>(copies.length);
  await eachLimit(copies, concurrency, async (c, i) => {
    let r: Awaited<ReturnType<typeof pullOne>>;
    try {
      r = await pullOne(ctx, puller, c, pace);
    } catch (err) {
      // Anything unforeseen (a statfs that failed) fails this copy alone, never its neighbours.
      results[i] = failed(c, [], { kind: 'write', message: messageOf(err) });
      return;
    }
    if ('failed' in r) {
      results[i] = r.failed;
      return;
    }
    const dir = path.dirname(r.dest);
    renamedInto.set(dir, [...(renamedInto.get(dir) ?? []), i]);
    landed[i] = r;
  });
  await Promise.all(
    [...renamedInto].map(async ([dir, indexes]) => {
      let failure: unknown;
      try {
        await ctx.files.fsync(dir, 'r'); // the renames themselves must survive a crash
      } catch (err) {
        failure = err;
      }
      for (const i of indexes) {
        const c = copies[i]!;
        const f = landed[i]!;
        if (failure !== undefined) {
          results[i] = failed(c, [], { kind: 'write', message: `fsync of ${dir}: ${messageOf(failure)}` });
          continue;
        }
        try {
          const st = await fs.promises.stat(f.dest);
          ctx.md5.set(f.dest, { md5: f.md5, size: st.size, mtimeMs: st.mtimeMs });
        } catch {
          // replaced or moved since the rename: HEAD just omits the MD5
        }
        results[i] = {
          owner: c.owner,
          objectId: c.objectId,
          result: 'ok',
          source: f.source,
          md5: f.md5,
          bytes: f.bytes,
        };
      }
    }),
  );
  return results;
}

/** One copy: reserve room, then each source in order until one yields the right bytes; renamed into place. */
async function pullOne(
  ctx: HandlerContext,
  puller: PullScope,
  c: PullCopy,
  pace: ByteThrottle | undefined,
): Promise<Fetched | { failed: PullResult }> {
  const dest = copyFile(ctx.root, c);
  const attempts: PullAttempt[] = [];
  // An overwrite needs room only for the growth (the cap counts logical bytes, see capacity.ts).
  const growth = Math.max(0, c.bytes - (await sizeOf(dest)));
  if (!(await ctx.capacity.reserve(growth)))
    return {
      failed: failed(c, attempts, {
        kind: 'full',
        message: `StorageNodeFull: this storage node has no room for ${c.bytes} more bytes`,
      }),
    };
  try {
    for (const source of c.sources) {
      const tmp = path.join(ctx.root, TEMP_DIR, `${c.objectId}.${randomUUID()}`);
      let renamed = false;
      try {
        const got = await fetchTo(puller, c, source, tmp, pace);
        if ('kind' in got) {
          if (isDestinationFailure(got)) return { failed: failed(c, attempts, got) };
          attempts.push({ source: source.id, kind: got.kind, message: got.message });
          continue;
        }
        try {
          puller.signal.throwIfAborted();
          await ctx.files.fsync(tmp, 'r+');
          await fs.promises.mkdir(path.dirname(dest), { recursive: true });
          const previous = await sizeOf(dest);
          await ctx.files.rename(tmp, dest);
          renamed = true;
          ctx.capacity.commit(got.bytes - previous);
        } catch (err) {
          return { failed: failed(c, attempts, { kind: 'write', message: messageOf(err) }) };
        }
        return { dest, md5: got.md5, bytes: got.bytes, source: source.id };
      } finally {
        if (!renamed) await fs.promises.rm(tmp, { force: true });
      }
    }
    return { failed: failed(c, attempts) };
  } finally {
    ctx.capacity.release(growth);
  }
}

type DestinationFailure = { kind: PullDestinationKind; message: string };
type FetchFailure = { kind: PullAttemptKind; message: string } | DestinationFailure;

function isDestinationFailure(f: FetchFailure): f is DestinationFailure {
  return f.kind === 'full' || f.kind === 'write';
}

/** GET the copy from one source into `tmp`, checking its size and MD5 against the request. */
async function fetchTo(
  puller: PullScope,
  c: PullCopy,
  source: PullSource,
  tmp: string,
  pace: ByteThrottle | undefined,
): Promise<{ md5: string; bytes: number } | FetchFailure> {
  let res: http.IncomingMessage;
  try {
    res = await get(puller, new URL(`/${c.owner}/${c.objectId}`, source.url));
  } catch (err) {
    return { kind: 'unreachable', message: `StorageNodeUnreachable: ${source.url}: ${messageOf(err)}` };
  }
  if (res.statusCode !== 200) {
    const body = await readText(res).catch(() => '');
    return { kind: 'unreachable', message: `${source.url} answered ${res.statusCode}: ${errorText(body)}` };
  }
  const length = Number(res.headers['content-length']);
  if (length !== c.bytes) {
    res.destroy();
    return { kind: 'unreachable', message: `source copy has ${length} bytes, the record says ${c.bytes}` };
  }
  const hash = createHash('md5');
  let bytes = 0;
  let writeFailed: unknown;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const out = fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
  out.once('error', (e) => (writeFailed ??= e));
  try {
    await (pace ? pipeline(res, pace.stream(), meter, out) : pipeline(res, meter, out));
  } catch (err) {
    if (writeFailed !== undefined) {
      const code = (writeFailed as { code?: string }).code;
      if (code === 'ENOSPC')
        return {
          kind: 'full',
          message: `StorageNodeFull: no room writing the copy: ${messageOf(writeFailed)}`,
        };
      return { kind: 'write', message: `writing the copy: ${messageOf(writeFailed)}` };
    }
    return {
      kind: 'truncated',
      message: `source failed mid-transfer after ${bytes} of ${c.bytes} bytes: ${messageOf(err)}`,
    };
  }
  if (bytes !== c.bytes)
    return { kind: 'truncated', message: `source failed mid-transfer: ${bytes} of ${c.bytes} bytes` };
  const md5 = hash.digest('base64');
  if (md5 !== c.md5)
    return {
      kind: 'md5',
      message: `MD5 mismatch reading from ${source.id}: got ${md5}, the record says ${c.md5}`,
    };
  return { md5, bytes };
}

function get(puller: PullScope, url: URL): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {
      agent: puller.agent,
      timeout: puller.sourceTimeoutMs,
      signal: puller.signal,
    });
    req.on('timeout', () => req.destroy(new Error(`no data for ${puller.sourceTimeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      // A silent source mid-body: the idle timeout above still applies to the socket.
      resolve(res);
    });
  });
}

function failed(
  c: CopyPath,
  attempts: PullAttempt[],
  destination?: { kind: PullDestinationKind; message: string },
): PullResult {
  return {
    owner: c.owner,
    objectId: c.objectId,
    result: 'failed',
    attempts,
    ...(destination ? { destination } : {}),
  };
}

/** The request body → copies; anything malformed is PullBatchInvalid naming the entry, nothing fetched. */
export function parsePull(text: string): {
  copies: PullCopy[];
  concurrency: number;
  bytesPerSecond?: number;
} {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalid('the body is not JSON');
  }
  const b = body as { copies?: unknown; concurrency?: unknown; bytesPerSecond?: unknown } | null;
  const list = b?.copies;
  if (!Array.isArray(list))
    throw invalid('the body must be {"copies":[{"owner","objectId","md5","bytes","sources"},…]}');
  if (list.length > MAX_PULL_BATCH) throw tooLarge(`${list.length} copies`);
  let concurrency = DEFAULT_PULL_CONCURRENCY;
  if (b!.concurrency !== undefined) {
    const n = b!.concurrency;
    if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > MAX_PULL_CONCURRENCY)
      throw invalid(`concurrency must be an integer from 1 to ${MAX_PULL_CONCURRENCY}`);
    concurrency = n as number;
  }
  let bytesPerSecond: number | undefined;
  if (b!.bytesPerSecond !== undefined) {
    const n = b!.bytesPerSecond;
    if (!Number.isSafeInteger(n) || (n as number) < 1)
      throw invalid('bytesPerSecond must be a positive integer');
    bytesPerSecond = n as number;
  }
  const seen = new Set<string>();
  const copies = list.map((entry, i): PullCopy => {
    const e = entry as Partial<Record<keyof PullCopy, unknown>> | null;
    if (typeof e?.owner !== 'string' || typeof e.objectId !== 'string')
      throw invalid(`copies[${i}] must have owner and objectId (strings)`);
    let copy: CopyPath;
    try {
      copy = parseCopyTarget(`/${e.owner}/${e.objectId}`);
    } catch {
      throw invalid(`copies[${i}] is not a copy path: owner and objectId are lower-case UUIDs`);
    }
    // Two fetches of one copy in a request would race on the same rename.
    if (seen.has(copy.objectId)) throw invalid(`copies[${i}]: objectId ${copy.objectId} is named twice`);
    seen.add(copy.objectId);
    if (typeof e.md5 !== 'string' || !BASE64_MD5_RE.test(e.md5))
      throw invalid(`copies[${i}].md5 must be the base64 of a 16-byte MD5 digest`);
    if (!Number.isSafeInteger(e.bytes) || (e.bytes as number) < 0)
      throw invalid(`copies[${i}].bytes must be a non-negative integer`);
    if (!Array.isArray(e.sources) || e.sources.length > MAX_PULL_SOURCES)
      throw invalid(`copies[${i}].sources must be a list of at most ${MAX_PULL_SOURCES} {"id","url"}`);
    const sources = e.sources.map((s, j) => parseSource(s, `copies[${i}].sources[${j}]`));
    return { ...copy, md5: e.md5, bytes: e.bytes as number, sources };
  });
  return { copies, concurrency, ...(bytesPerSecond !== undefined ? { bytesPerSecond } : {}) };
}

function parseSource(s: unknown, where: string): PullSource {
  const o = s as { id?: unknown; url?: unknown } | null;
  if (typeof o?.id !== 'string' || o.id.length === 0 || o.id.length > 256 || typeof o.url !== 'string')
    throw invalid(`${where} must be {"id","url"} (strings)`);
  let u: URL;
  try {
    u = new URL(o.url);
  } catch {
    throw invalid(`${where}.url is not a URL`);
  }
  // A node's base URL only: the path of the copy is the node's to make, never the caller's.
  if (u.protocol !== 'http:' || u.username || u.password || u.pathname !== '/' || u.search || u.hash)
    throw invalid(`${where}.url must be a storage node's base URL (http://host:port)`);
  return { id: o.id, url: u.origin };
}

function invalid(why: string): RemoraError {
  return new RemoraError('PullBatchInvalid', `malformed pull request: ${why}; nothing was fetched`);
}

function tooLarge(what: string): RemoraError {
  return new RemoraError(
    'PullBatchTooLarge',
    `a pull request takes at most ${MAX_PULL_BATCH} copies and ${MAX_PULL_BATCH_BYTES} bytes ` +
      `(got ${what}); split it — nothing was fetched`,
    { details: { maxCopies: MAX_PULL_BATCH, maxBytes: MAX_PULL_BATCH_BYTES } },
  );
}

function messageOf(err: unknown): string {
  return String((err as Error)?.message ?? err);
}

/** A node's `{code, message}` error body as `code: message`; anything else, its first 200 characters. */
function errorText(body: string): string {
  try {
    const p = JSON.parse(body) as { code?: unknown; message?: unknown };
    if (typeof p.code === 'string') return `${p.code}: ${typeof p.message === 'string' ? p.message : ''}`;
  } catch {
    // not JSON
  }
  return body.slice(0, 200);
}

async function readText(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    if (n < 4096) chunks.push(c as Buffer);
    n += (c as Buffer).length;
  }
  return Buffer.concat(chunks).toString('utf8');
}
