/**
 * A storage node ("mako"): one HTTP server over one root directory that plays `/manta`
 * (MANTA-REFERENCE §1.8). Routes:
 *
 *   PUT  /<owner>/<objectId>      store a copy (201, MD5 in `Content-MD5` / `x-remora-md5` and the body)
 *   GET  /<owner>/<objectId>      read it (Range → 206)
 *   HEAD /<owner>/<objectId>      size, and the MD5 when this node wrote the copy (see md5-cache.ts)
 *   MOVE /<owner>/<objectId>      with `Destination: /tombstone/YYYY-MM-DD/<objectId>` (204)
 *   GET  /manifest                the node's listing (MANTA-REFERENCE §2.4)
 *   GET  /md5/<owner>/<objectId>  the copy's MD5 computed from disk on the node (deep audit)
 *   /tombstone…                   list, purge a day, restore a copy (tombstone-handlers.ts)
 *   POST /pull                    fetch a batch of copies from other nodes onto this one (pull-handlers.ts)
 *
 * Every request but a GET or HEAD of a copy (so PUT, MOVE, any other method, and the manifest)
 * must carry the deployment's internal credential (internal-auth.ts), checked before the method
 * and the path: a client without it gets `401 InternalCredentialRefused` and learns nothing else.
 * Then an unsupported method is `405` with `Allow`, then a bad path `400 InvalidPath`.
 *
 * Errors answer `{code, message}` with the catalog's status. Keep-alive is on (the original ran
 * nginx with keepalive 0, MANTA-3084, which cost a TCP handshake per copy).
 */
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { type Clock, systemClock } from '../core/clock.js';
import { listenOn } from './listen.js';
import { RemoraError, toRemoraError } from '../core/errors.js';
import { CapacityTracker } from './capacity.js';
import { DEFAULT_MD5_CACHE_ENTRIES, Md5Cache } from './md5-cache.js';
import { InternalCredential } from './internal-auth.js';
import {
  type DurableFileOps,
  durableFileOps,
  handleGet,
  handleManifest,
  handleMd5,
  handleMove,
  isMd5Target,
  parseMd5Target,
  handlePut,
  type HandlerContext,
} from './storage-handlers.js';
import { MANIFEST_PATH, parseCopyTarget, TEMP_DIR, TOMBSTONE_DIR } from './storage-paths.js';
import { isTombstoneTarget, routeTombstone } from './tombstone-handlers.js';
import { handlePull, PULL_PATH, Puller } from './pull-handlers.js';

export interface StorageNodeOptions {
  /** The directory that plays `/manta`. Created if missing. */
  root: string;
  /** `manta_storage_id`, e.g. `1.stor.dc1.remora.local`. */
  id: string;
  datacenter: string;
  /** Cap in MB; undefined = the filesystem's capacity. */
  capacityMB?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  clock?: Clock;
  md5CacheEntries?: number;
  /** The deployment's internal credential: required on every request but GET/HEAD of a copy. */
  internalToken: string;
  /** Tests only: wraps the fsync and rename calls so a test can record their order. */
  fileOps?: DurableFileOps;
}

/** Methods that read a copy: the only ones served without the internal credential. */
const READ_METHODS = new Set(['GET', 'HEAD']);
const COPY_METHODS: readonly string[] = ['PUT', 'GET', 'HEAD', 'MOVE'];
const COPY_ALLOW = COPY_METHODS.join(', ');

/**
 * Idle keep-alive sockets are closed after this long. Longer than the client's idle time would
 * be ideal, but Node's Agent reads the `Keep-Alive: timeout=` hint and retires sockets first.
 */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;

export class StorageNode {
  private readonly sockets = new Set<net.Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly id: string,
    readonly datacenter: string,
    readonly root: string,
    readonly capacity: CapacityTracker,
    private readonly server: http.Server,
    readonly url: string,
    private readonly puller: Puller,
  ) {}

  /** Prepare the root, count its bytes when capped, and listen. */
  static async start(opts: StorageNodeOptions): Promise<StorageNode> {
    const auth = new InternalCredential(opts.internalToken);
    const root = path.resolve(opts.root);
    await fs.promises.mkdir(path.join(root, TOMBSTONE_DIR), { recursive: true });
    // Temp files left by a crash are never renamed into place; nothing else writes there.
    await fs.promises.rm(path.join(root, TEMP_DIR), { recursive: true, force: true });
    await fs.promises.mkdir(path.join(root, TEMP_DIR), { recursive: true });
    const capacity = await CapacityTracker.open(root, opts.capacityMB);
    const clock = opts.clock ?? systemClock;
    const ctx: HandlerContext = {
      root,
      datacenter: opts.datacenter,
      capacity,
      md5: new Md5Cache(opts.md5CacheEntries ?? DEFAULT_MD5_CACHE_ENTRIES),
      now: () => clock.now(),
      files: opts.fileOps ?? durableFileOps,
    };
    const puller = new Puller();
    const server = http.createServer({ keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
      void route(ctx, auth, puller, req, res);
    });
    const host = opts.host ?? '127.0.0.1';
    const port = await listenOn(server, opts.port ?? 0, host, `storage node ${opts.id}`);
    const node = new StorageNode(
      opts.id,
      opts.datacenter,
      root,
      capacity,
      server,
      `http://${host}:${port}`,
      puller,
    );
    server.on('connection', (s) => {
      node.sockets.add(s);
      s.once('close', () => node.sockets.delete(s));
    });
    return node;
  }

  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** Stop listening and end every connection, idle or busy. Uploads in flight remove their temp files. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const s of this.sockets) s.destroy();
      this.puller.close(); // pulls in flight fail their sources and remove their temp files
    });
    return this.closing;
  }
}

async function route(
  ctx: HandlerContext,
  auth: InternalCredential,
  puller: Puller,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    const target = req.url ?? '';
    const method = req.method ?? '';
    // The tombstone tree (list, purge, restore): every method needs the credential.
    if (isTombstoneTarget(target)) {
      auth.check(req.headers.authorization, 'the tombstone tree');
      return await routeTombstone(ctx, req, res, target);
    }
    // Pulling writes copies, as PUT does.
    if (target === PULL_PATH) {
      auth.check(req.headers.authorization, 'pulling copies');
      if (method !== 'POST') throw methodNotAllowed(method, 'POST');
      return await handlePull(ctx, puller, req, res);
    }
    const manifest = target === MANIFEST_PATH || target.startsWith(`${MANIFEST_PATH}?`);
    // The manifest names every account's UUID and every objectId on the node: what a caller
    // would need to aim a MOVE. Only jobs read it, and they carry the credential.
    if (manifest || !READ_METHODS.has(method))
      auth.check(req.headers.authorization, manifest ? 'the manifest' : method || '?');
    // Hashing a copy costs the node a read of the whole file: credentialed, like the manifest.
    if (isMd5Target(target)) {
      auth.check(req.headers.authorization, 'hashing a copy');
      if (method !== 'GET') throw methodNotAllowed(method, 'GET');
      return await handleMd5(ctx, res, parseMd5Target(target));
    }
    if (manifest) {
      if (method !== 'GET') throw methodNotAllowed(method, 'GET');
      return await handleManifest(ctx, res);
    }
    if (!COPY_METHODS.includes(method)) throw methodNotAllowed(method, COPY_ALLOW);
    const copy = parseCopyTarget(target);
    switch (method) {
      case 'PUT':
        return await handlePut(ctx, req, res, copy);
      case 'GET':
      case 'HEAD':
        return await handleGet(ctx, req, res, copy);
      case 'MOVE':
        return await handleMove(ctx, req, res, copy);
      default:
        throw methodNotAllowed(method, COPY_ALLOW);
    }
  } catch (err) {
    sendError(req, res, err);
  }
}

function methodNotAllowed(method: string | undefined, allow: string): RemoraError {
  return new RemoraError('MethodNotAllowed', `${method ?? '?'} is not supported here (allowed: ${allow})`, {
    details: { allow },
  });
}

function sendError(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    // Mid-body failure: cutting the connection is the only honest signal left to the client.
    res.destroy();
    return;
  }
  const e = toRemoraError(err);
  const body = JSON.stringify({ code: e.code, message: e.message });
  const headers: http.OutgoingHttpHeaders = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  };
  if (e.code === 'RangeNotSatisfiable' && typeof e.details.size === 'number')
    headers['content-range'] = `bytes */${e.details.size}`;
  if (e.code === 'MethodNotAllowed' && typeof e.details.allow === 'string') headers.allow = e.details.allow;
  if (e.code === 'InternalCredentialRefused') headers['www-authenticate'] = 'Internal';
  // An unread request body (rejected before upload) would otherwise be drained to keep the socket.
  if (!req.complete && hasBody(req)) headers.connection = 'close';
  res.writeHead(e.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
