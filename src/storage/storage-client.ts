/**
 * The client of storage nodes, used by the front door and by jobs (rebalance, GC, audit).
 * node:http with one keep-alive Agent: a copy costs no TCP handshake (the original's nginx ran
 * with keepalive 0, MANTA-3084). Translation at this boundary:
 *   refused / reset / timeout / DNS      → StorageNodeUnreachable (cause kept)
 *   JSON `{code, message}` error bodies  → the RemoraError of that code (404 ObjectNotFound, 469 Md5Mismatch, …)
 * Every error it raises names the node (`details.node`, and the URL in the message): it is for
 * logs and operators. The front door never shows it to a user (frontdoor/public-error.ts).
 * Every request carries the deployment's internal credential (internal-auth.ts).
 *
 * The tombstone tree: `tombstone` (MOVE a copy in), `tombstoneDays` (list), `purgeTombstoneDay`,
 * `restore` (MOVE a copy back; tombstone-restore.ts finds the day).
 *
 * `pull` asks a node to fetch copies from other nodes itself (`POST /pull`, pull-handlers.ts):
 * the bytes go node to node, not through this process.
 */
import http from 'node:http';
import readline from 'node:readline';
import type { Readable } from 'node:stream';
import { ERROR_CATALOG, type ErrorCode, RemoraError } from '../core/errors.js';
import { checkInternalToken, internalAuthorization } from './internal-auth.js';
import {
  copyRequestPath,
  type CopyPath,
  MANIFEST_PATH,
  type MoveTree,
  TOMBSTONE_DIR,
  TOMBSTONE_PATH,
  tombstoneDayRequestPath,
  tombstoneDestination,
  tombstoneFileRequestPath,
} from './storage-paths.js';
import {
  MAX_TOMBSTONE_BATCH,
  type TombstoneBatchResult,
  type TombstoneDayUsage,
} from './tombstone-handlers.js';
import { MD5_PREFIX } from './storage-handlers.js';
import { MAX_PULL_BATCH, PULL_PATH, type PullCopy, type PullResult } from './pull-handlers.js';

export type { PullCopy, PullResult, TombstoneBatchResult, TombstoneDayUsage };

/** What a purge of one tombstone day freed; `existed: false` when the node had no such day. */
export interface TombstonePurge extends TombstoneDayUsage {
  existed: boolean;
}

export interface StorageClientOptions {
  /**
   * The deployment's internal credential, sent on every request (nodes refuse PUT, MOVE and the
   * manifest without it). Required, so no client can be made that silently lacks it.
   */
  internalToken: string;
  /** Idle time allowed on a socket (no bytes either way) before the request fails. */
  timeoutMs?: number;
  /** Sockets per node. */
  maxSockets?: number;
}

/** A node that sends nothing for this long is treated as unreachable; big bodies still flow. */
export const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_SOCKETS = 32;

interface Sent {
  res: http.IncomingMessage;
}

export class StorageClient {
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;
  private readonly authorization: string;

  constructor(opts: StorageClientOptions) {
    this.authorization = internalAuthorization(checkInternalToken(opts.internalToken, 'storage client'));
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? DEFAULT_MAX_SOCKETS });
  }

  /** Store a copy. With `contentMD5` the node refuses a body that does not match (469 → Md5Mismatch). */
  async put(
    nodeUrl: string,
    owner: string,
    objectId: string,
    body: Readable | Buffer,
    opts: { contentLength?: number; contentMD5?: string } = {},
  ): Promise<{ md5: string; bytes: number }> {
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream' };
    const length = Buffer.isBuffer(body) ? body.length : opts.contentLength;
    if (length !== undefined) headers['content-length'] = length;
    if (opts.contentMD5 !== undefined) headers['content-md5'] = opts.contentMD5;
    const { res } = await this.send(nodeUrl, 'PUT', copyRequestPath(owner, objectId), headers, body);
    if (res.statusCode !== 201) throw await errorFrom(nodeUrl, res);
    const parsed = JSON.parse(await readAll(res)) as { md5: string; bytes: number };
    return { md5: parsed.md5, bytes: parsed.bytes };
  }

  /** Read a copy (or one byte range of it). The caller must consume or destroy `stream`. */
  async get(
    nodeUrl: string,
    owner: string,
    objectId: string,
    opts: { range?: { start: number; end: number } } = {},
  ): Promise<{ stream: Readable; contentLength: number; status: number; md5?: string }> {
    const headers: http.OutgoingHttpHeaders = {};
    if (opts.range) headers.range = `bytes=${opts.range.start}-${opts.range.end}`;
    const { res } = await this.send(nodeUrl, 'GET', copyRequestPath(owner, objectId), headers);
    const status = res.statusCode ?? 0;
    if (status !== 200 && status !== 206) throw await errorFrom(nodeUrl, res);
    const md5 = headerOf(res, 'content-md5');
    return {
      stream: res,
      contentLength: Number(res.headers['content-length'] ?? 0),
      status,
      ...(md5 ? { md5 } : {}),
    };
  }

  /** Size (and MD5 when the node knows it) of a copy; undefined when the node has none. */
  async head(
    nodeUrl: string,
    owner: string,
    objectId: string,
  ): Promise<{ contentLength: number; md5?: string } | undefined> {
    const { res } = await this.send(nodeUrl, 'HEAD', copyRequestPath(owner, objectId), {});
    res.resume();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw errorWithoutBody(nodeUrl, res);
    const md5 = headerOf(res, 'content-md5');
    return { contentLength: Number(res.headers['content-length'] ?? 0), ...(md5 ? { md5 } : {}) };
  }

  /**
   * The MD5 (base64) and size of a copy, computed by the node from its disk (`GET
   * /md5/<owner>/<objectId>`): the bytes never cross the network. Undefined when the node has none.
   */
  async md5(
    nodeUrl: string,
    owner: string,
    objectId: string,
  ): Promise<{ md5: string; bytes: number } | undefined> {
    const { res } = await this.send(nodeUrl, 'GET', `${MD5_PREFIX}${copyRequestPath(owner, objectId)}`, {});
    if (res.statusCode !== 200) {
      const err = await errorFrom(nodeUrl, res);
      if (err.code === 'ObjectNotFound') return undefined;
      throw err;
    }
    const body = (await jsonBody(nodeUrl, res)) as { md5?: unknown; bytes?: unknown };
    if (typeof body.md5 !== 'string' || !Number.isSafeInteger(body.bytes))
      throw malformedAnswer(nodeUrl, 'an MD5 answer without {md5,bytes}');
    return { md5: body.md5, bytes: body.bytes as number };
  }

  /**
   * MOVE a copy to `/tombstone/<day>/<objectId>` on the same node (`tree` quarantine: to
   * `/quarantine/<day>/<objectId>`, repair's corrupt copies). 'absent' when it was not there.
   */
  async tombstone(
    nodeUrl: string,
    owner: string,
    objectId: string,
    day: string,
    tree: MoveTree = TOMBSTONE_DIR,
  ): Promise<'moved' | 'absent'> {
    const headers = { destination: tombstoneDestination(day, objectId, tree) };
    const { res } = await this.send(nodeUrl, 'MOVE', copyRequestPath(owner, objectId), headers);
    if (res.statusCode === 204) {
      res.resume();
      return 'moved';
    }
    const err = await errorFrom(nodeUrl, res);
    if (err.code === 'ObjectNotFound') return 'absent';
    throw err;
  }

  /**
   * MOVE many copies to `/tombstone/<day>/` on one node (`POST /tombstone/<day>`): one request
   * and one fsync per directory instead of one of each per copy, with the single MOVE's
   * durability. One answer per copy, in order: 'moved', 'absent', or 'error' with the node's
   * code and message (the copy may still be in place). More than MAX_TOMBSTONE_BATCH copies go
   * as several requests. A failed request throws (no answer for any copy of that request).
   */
  async tombstoneBatch(nodeUrl: string, day: string, copies: CopyPath[]): Promise<TombstoneBatchResult[]> {
    return this.postBatches(nodeUrl, tombstoneDayRequestPath(day), copies, MAX_TOMBSTONE_BATCH, {
      body: (part) => ({ copies: part.map((c) => ({ owner: c.owner, objectId: c.objectId })) }),
      matches: isBatchResult,
      what: 'a tombstone batch answer that does not match the request',
    });
  }

  /**
   * Ask the node at `nodeUrl` to fetch `copies` from their sources onto its disk (`POST /pull`),
   * `concurrency` at a time on the node. One answer per copy, in order: 'ok' (the copy is in
   * place with the given size and MD5, its directory fsynced) or 'failed' with each source's
   * failure and the destination's own, if any. More than MAX_PULL_BATCH copies go as several
   * requests. A failed request throws (no copy of that request is answered).
   */
  async pull(
    nodeUrl: string,
    copies: PullCopy[],
    opts: { concurrency?: number; bytesPerSecond?: number } = {},
  ): Promise<PullResult[]> {
    return this.postBatches(nodeUrl, PULL_PATH, copies, MAX_PULL_BATCH, {
      body: (part) => ({
        copies: part.map((c) => ({
          owner: c.owner,
          objectId: c.objectId,
          md5: c.md5,
          bytes: c.bytes,
          sources: c.sources.map((s) => ({ id: s.id, url: s.url })),
        })),
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
        ...(opts.bytesPerSecond !== undefined ? { bytesPerSecond: opts.bytesPerSecond } : {}),
      }),
      matches: isPullResult,
      what: 'a pull answer that does not match the request',
    });
  }

  /**
   * POST `copies` to a batched route, at most `max` a request, in order; each answer must be
   * `{results:[…]}` with one result per copy that `matches` it, else MalformedAnswer (`what`).
   */
  private async postBatches<C extends CopyPath, R>(
    nodeUrl: string,
    route: string,
    copies: C[],
    max: number,
    o: { body: (part: C[]) => object; matches: (r: unknown, c: C) => r is R; what: string },
  ): Promise<R[]> {
    const out: R[] = [];
    for (let i = 0; i < copies.length; i += max) {
      const part = copies.slice(i, i + max);
      for (const c of part) copyRequestPath(c.owner, c.objectId); // a bad id fails here, not on the wire
      const body = Buffer.from(JSON.stringify(o.body(part)));
      const headers = { 'content-type': 'application/json', 'content-length': body.length };
      const { res } = await this.send(nodeUrl, 'POST', route, headers, body);
      if (res.statusCode !== 200) throw await errorFrom(nodeUrl, res);
      const answer = (await jsonBody(nodeUrl, res)) as { results?: unknown };
      const results = answer?.results;
      if (
        !Array.isArray(results) ||
        results.length !== part.length ||
        !results.every((r, j) => o.matches(r, part[j]!))
      )
        throw malformedAnswer(nodeUrl, o.what);
      out.push(...results);
    }
    return out;
  }

  /** The node's tombstone days, oldest first, with the files and bytes each holds. */
  async tombstoneDays(nodeUrl: string): Promise<TombstoneDayUsage[]> {
    const { res } = await this.send(nodeUrl, 'GET', TOMBSTONE_PATH, {});
    if (res.statusCode !== 200) throw await errorFrom(nodeUrl, res);
    const body = await jsonBody(nodeUrl, res);
    const days = (body as { days?: unknown }).days;
    if (!Array.isArray(days) || !days.every(isDayUsage))
      throw malformedAnswer(nodeUrl, 'a tombstone listing without {days:[{day,files,bytes}]}');
    return days;
  }

  /** Remove one tombstone day directory from the node; what it freed (nothing when it had none). */
  async purgeTombstoneDay(nodeUrl: string, day: string): Promise<TombstonePurge> {
    const { res } = await this.send(nodeUrl, 'DELETE', tombstoneDayRequestPath(day), {});
    if (res.statusCode === 200) {
      const body = await jsonBody(nodeUrl, res);
      if (!isDayUsage(body) || body.day !== day)
        throw malformedAnswer(nodeUrl, `a purge of ${day} answered without {day,files,bytes}`);
      return { day, files: body.files, bytes: body.bytes, existed: true };
    }
    const err = await errorFrom(nodeUrl, res);
    if (err.code === 'ObjectNotFound') return { day, files: 0, bytes: 0, existed: false };
    throw err;
  }

  /**
   * MOVE a tombstoned copy (`/tombstone/<day>/<objectId>`) back to `/<owner>/<objectId>` on the
   * same node. 'absent': that day does not hold it; 'exists': a copy is already in place (the
   * node never overwrites one).
   */
  async restore(
    nodeUrl: string,
    owner: string,
    objectId: string,
    day: string,
  ): Promise<'restored' | 'absent' | 'exists'> {
    const headers = { destination: copyRequestPath(owner, objectId) };
    const { res } = await this.send(nodeUrl, 'MOVE', tombstoneFileRequestPath(day, objectId), headers);
    if (res.statusCode === 204) {
      res.resume();
      return 'restored';
    }
    const err = await errorFrom(nodeUrl, res);
    if (err.code === 'ObjectNotFound') return 'absent';
    if (err.code === 'EtagConflict') return 'exists';
    throw err;
  }

  /** The node's manifest, line by line (streamed: memory does not grow with the node). */
  async manifest(
    nodeUrl: string,
  ): Promise<{ startedAt: string; datacenter?: string; lines: AsyncIterable<string> }> {
    const { res } = await this.send(nodeUrl, 'GET', MANIFEST_PATH, {});
    if (res.statusCode !== 200) throw await errorFrom(nodeUrl, res);
    const startedAt = headerOf(res, 'm-mako-dump-time');
    if (!startedAt) {
      res.destroy();
      throw new RemoraError('MalformedInput', `${nodeUrl} sent a manifest without m-mako-dump-time`, {
        details: { node: nodeUrl },
      });
    }
    const datacenter = headerOf(res, 'm-datacenter');
    return { startedAt, ...(datacenter ? { datacenter } : {}), lines: strictLines(nodeUrl, res) };
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * One request. A bodyless or Buffer request that fails on a reused keep-alive socket (the node
   * closed it while idle) is retried once on a fresh one; a streamed body cannot be replayed.
   */
  private async send(
    nodeUrl: string,
    method: string,
    reqPath: string,
    headers: http.OutgoingHttpHeaders,
    body?: Readable | Buffer,
  ): Promise<Sent> {
    try {
      return await this.sendOnce(nodeUrl, method, reqPath, headers, body);
    } catch (err) {
      const replayable = body === undefined || Buffer.isBuffer(body);
      if (replayable && (err as { reusedSocket?: boolean }).reusedSocket)
        return this.sendOnce(nodeUrl, method, reqPath, headers, body);
      throw err;
    }
  }

  private sendOnce(
    nodeUrl: string,
    method: string,
    reqPath: string,
    headers: http.OutgoingHttpHeaders,
    body?: Readable | Buffer,
  ): Promise<Sent> {
    const url = new URL(reqPath, nodeUrl);
    return new Promise<Sent>((resolve, reject) => {
      const req = http.request(url, {
        method,
        headers: { ...headers, authorization: this.authorization },
        agent: this.agent,
        timeout: this.timeoutMs,
      });
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        const e = unreachable(nodeUrl, method, err);
        (e as { reusedSocket?: boolean }).reusedSocket = req.reusedSocket && isReset(err);
        reject(e);
      };
      req.on('timeout', () => req.destroy(new Error(`no data for ${this.timeoutMs} ms`)));
      req.on('error', fail);
      req.on('response', (res) => {
        settled = true;
        res.on('error', () => {}); // surfaced to whoever reads the body
        resolve({ res });
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        // A failing source aborts the upload; the node then discards its temp file.
        body.once('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }
}

/**
 * The listing's lines. The line reader is created on the first `next()`, not before: a reader
 * made earlier starts the body flowing, and if the caller is slow to begin (opening DuckDB),
 * every line and the close go by with nobody listening, and the iteration never ends.
 */
async function* strictLines(nodeUrl: string, res: http.IncomingMessage): AsyncGenerator<string> {
  const lines = readline.createInterface({ input: res, crlfDelay: Infinity });
  // A cut connection ends the body early: surface it as an error, never as a shorter listing.
  res.on('aborted', () => lines.close());
  for await (const line of lines) yield line;
  if (!res.complete)
    throw new RemoraError('StorageNodeUnreachable', `${nodeUrl} cut the manifest short`, {
      details: { node: nodeUrl },
    });
}

function headerOf(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function isReset(err: Error): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

function unreachable(nodeUrl: string, method: string, cause: Error): RemoraError {
  return new RemoraError('StorageNodeUnreachable', `storage node ${nodeUrl} (${method}): ${cause.message}`, {
    cause,
    details: { node: nodeUrl },
  });
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function jsonBody(nodeUrl: string, res: http.IncomingMessage): Promise<unknown> {
  let text: string;
  try {
    text = await readAll(res);
  } catch (err) {
    throw unreachable(nodeUrl, 'read body', err as Error);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw malformedAnswer(nodeUrl, 'an answer that is not JSON');
  }
}

function isDayUsage(v: unknown): v is TombstoneDayUsage {
  const o = v as Partial<TombstoneDayUsage> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.day === 'string' &&
    Number.isSafeInteger(o.files) &&
    Number.isSafeInteger(o.bytes)
  );
}

function isBatchResult(v: unknown, asked: CopyPath): v is TombstoneBatchResult {
  const o = v as Partial<{ owner: unknown; objectId: unknown; result: unknown; code: unknown }> | null;
  if (typeof o !== 'object' || o === null || o.owner !== asked.owner || o.objectId !== asked.objectId)
    return false;
  return (
    o.result === 'moved' || o.result === 'absent' || (o.result === 'error' && typeof o.code === 'string')
  );
}

function isPullResult(v: unknown, asked: PullCopy): v is PullResult {
  const o = v as Partial<{
    owner: unknown;
    objectId: unknown;
    result: unknown;
    source: unknown;
    md5: unknown;
    bytes: unknown;
    attempts: unknown;
  }> | null;
  if (typeof o !== 'object' || o === null || o.owner !== asked.owner || o.objectId !== asked.objectId)
    return false;
  // An 'ok' must be for exactly the bytes asked for: the node checked them, this checks the node.
  if (o.result === 'ok')
    return typeof o.source === 'string' && o.md5 === asked.md5 && o.bytes === asked.bytes;
  return (
    o.result === 'failed' &&
    Array.isArray(o.attempts) &&
    o.attempts.every(
      (a: { source?: unknown; kind?: unknown; message?: unknown } | null) =>
        typeof a?.source === 'string' && typeof a.kind === 'string' && typeof a.message === 'string',
    )
  );
}

function malformedAnswer(nodeUrl: string, what: string): RemoraError {
  return new RemoraError('MalformedInput', `${nodeUrl} sent ${what}`, { details: { node: nodeUrl } });
}

/** Translate a node's `{code, message}` body; an unknown code keeps the HTTP status as a hint. */
async function errorFrom(nodeUrl: string, res: http.IncomingMessage): Promise<RemoraError> {
  let text: string;
  try {
    text = await readAll(res);
  } catch (err) {
    return unreachable(nodeUrl, 'read error body', err as Error);
  }
  let code: string | undefined;
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof parsed.code === 'string') code = parsed.code;
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // not JSON (a proxy's page, say): fall back to the status
  }
  return new RemoraError(codeFor(code, res.statusCode ?? 0), `${nodeUrl}: ${message}`, {
    details: { node: nodeUrl, status: res.statusCode },
  });
}

function errorWithoutBody(nodeUrl: string, res: http.IncomingMessage): RemoraError {
  return new RemoraError(codeFor(undefined, res.statusCode ?? 0), `${nodeUrl}: HTTP ${res.statusCode}`, {
    details: { node: nodeUrl, status: res.statusCode },
  });
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'BadRequest',
  401: 'InternalCredentialRefused',
  404: 'ObjectNotFound',
  405: 'MethodNotAllowed',
  413: 'TombstoneBatchTooLarge', // or PullBatchTooLarge: the body names which
  416: 'RangeNotSatisfiable',
  469: 'Md5Mismatch',
  507: 'StorageNodeFull',
  502: 'StorageNodeUnreachable',
  503: 'StorageNodeUnreachable',
  504: 'StorageNodeUnreachable',
};

function codeFor(code: string | undefined, status: number): ErrorCode {
  if (code !== undefined && code in ERROR_CATALOG) return code as ErrorCode;
  return STATUS_CODES[status] ?? 'Internal';
}
