/**
 * The front door's HTTP surface (a small muskie):
 *   PUT    /<account>/<ns>/path                      object (streamed; Content-MD5, durability-level)
 *   PUT    … Content-Type: application/json; type=directory   mkdir
 *   PUT    … Content-Type: application/json; type=link + Location: /<account>/<ns>/src   snaplink
 *   GET    object bytes (Range) or, for a directory, one JSON line per entry
 *   HEAD   metadata headers; DELETE object or empty directory
 * Auth: `Authorization: Token <token>`. One muskie audit line per request.
 *
 * Every response carries `x-request-id`. A failure answers `{code, message, requestId}` under
 * the rules of public-error.ts: no storage-node address and no other account's UUID ever
 * reaches the client; the real error is logged under the request id. Checked in this order:
 * the method (405 with `Allow`), the token (401), the path (400 InvalidPath: bad encoding,
 * control characters such as NUL, `.`/`..`), then the operation (a Range past the end: 416 with
 * `Content-Range: bytes *\/<size>`).
 */
import http from 'node:http';
import crypto from 'node:crypto';
import { listenOn } from '../storage/listen.js';
import { RemoraError, toRemoraError } from '../core/errors.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { MantaObjectValue, MantaValue } from '../metadata/types.js';
import { parseRange } from '../storage/range.js';
import { accountByToken } from './accounts.js';
import { type AuditEntry, type AuditLog, headerLength } from './audit-log.js';
import type { Caller, ObjectService, Resolved } from './object-service.js';
import { publicError } from './public-error.js';

/** The methods the front door serves; anything else is 405 with this `Allow`. */
const METHODS: readonly string[] = ['GET', 'HEAD', 'PUT', 'DELETE'];
const ALLOW = METHODS.join(', ');

interface Outcome {
  operation: string;
  billable: string;
  owner?: string;
  objectId?: string;
  prevObjectId?: string;
  sharksContacted?: { shark: string; result: string }[];
  bytes: number;
}

export class FrontDoorServer {
  private server: http.Server | undefined;
  url = '';

  constructor(
    private readonly tier: MetadataTier,
    private readonly service: ObjectService,
    private readonly audit: AuditLog | undefined,
    /** The server's own log: the real error behind every hidden or 5xx answer, by request id. */
    private readonly serverLog: (line: string) => void = () => {},
  ) {}

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5000;
    const bound = await listenOn(server, port, host, 'front door', ': stop it, or set frontdoor.port');
    this.server = server;
    this.url = `http://${host}:${bound}`;
    return this.url;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async caller(req: http.IncomingMessage): Promise<Caller | undefined> {
    const h = req.headers.authorization;
    if (!h) return undefined;
    const m = /^Token\s+(\S+)$/i.exec(h);
    if (!m) throw new RemoraError('Unauthorized', 'Authorization must be `Token <token>`');
    const account = await accountByToken(this.tier, m[1]!);
    if (!account) throw new RemoraError('Unauthorized', 'unknown token');
    return { account };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const reqId = crypto.randomUUID();
    const outcome: Outcome = { operation: 'unknown', billable: req.method ?? 'GET', bytes: 0 };
    let caller: Caller | undefined;
    let err: RemoraError | undefined;
    res.setHeader('x-request-id', reqId);
    try {
      const method = req.method ?? '';
      if (!METHODS.includes(method))
        throw new RemoraError('MethodNotAllowed', `${method} is not supported (allowed: ${ALLOW})`, {
          details: { allow: ALLOW },
        });
      caller = await this.caller(req);
      const pathname = (req.url ?? '/').split('?')[0]!;
      if (pathname === '/ping') {
        outcome.operation = 'ping';
        head(res, 200, { 'content-type': 'application/json' }).end('{"ok":true}');
        return;
      }
      const r = await this.service.resolve(pathname);
      outcome.owner = r.owner.uuid;
      await this.route(req, res, r, caller, outcome);
    } catch (e) {
      err = toRemoraError(e);
      const location = req.headers.location;
      const pub = publicError(err, {
        requestId: reqId,
        texts: [req.url ?? '', ...(typeof location === 'string' ? [location] : [])],
        ...(caller ? { callerUuid: caller.account.uuid } : {}),
      });
      if (pub.hidden || pub.status >= 500) this.serverLog(`front door request ${reqId}: ${describe(err)}`);
      if (!res.headersSent) {
        const body = JSON.stringify({ code: pub.code, message: pub.message, requestId: reqId });
        head(res, pub.status, {
          ...pub.headers,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        }).end(body);
      } else {
        res.destroy(err);
      }
      req.resume();
    } finally {
      if (res.writableFinished || err) this.log(req, res, caller, outcome, started, reqId, err);
      else res.once('finish', () => this.log(req, res, caller, outcome, started, reqId, err));
    }
  }

  private async route(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    r: Resolved,
    caller: Caller | undefined,
    o: Outcome,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    if (method === 'PUT') {
      this.service.authorize(caller, r, true);
      o.billable = 'PUT';
      const ctype = req.headers['content-type'] ?? '';
      if (/type=directory/.test(ctype)) {
        o.operation = 'putdirectory';
        await this.service.mkdir(r, caller?.account.uuid);
        req.resume();
        head(res, 204, {}).end();
        return;
      }
      if (/type=link/.test(ctype)) {
        o.operation = 'putlink';
        const loc = req.headers.location;
        if (!loc)
          throw new RemoraError('BadRequest', 'a link needs a Location header naming the source object');
        const source = await this.service.resolve(loc);
        this.service.authorize(caller, source, false);
        const out = await this.service.link(r, source);
        o.objectId = out.objectId;
        if (out.prevObjectId) o.prevObjectId = out.prevObjectId;
        req.resume();
        head(res, 204, { 'x-remora-object-id': out.objectId }).end();
        return;
      }
      o.operation = 'putobject';
      const len = req.headers['content-length'];
      const copies = req.headers['durability-level'] ?? req.headers['x-durability-level'];
      const out = await this.service.putObject(r, req, {
        ...(len !== undefined ? { contentLength: Number(len) } : {}),
        ...(typeof req.headers['content-md5'] === 'string' ? { contentMD5: req.headers['content-md5'] } : {}),
        contentType: ctype || 'application/octet-stream',
        headers: userHeaders(req.headers),
        ...(typeof copies === 'string' ? { copies: Number(copies) } : {}),
        ...(caller && caller.account.uuid !== r.owner.uuid ? { creator: caller.account.uuid } : {}),
      });
      o.objectId = out.objectId;
      o.bytes = out.bytes;
      o.sharksContacted = out.sharksContacted;
      if (out.prevObjectId) o.prevObjectId = out.prevObjectId;
      head(res, 204, {
        etag: out.objectId,
        'computed-md5': out.md5,
        'x-remora-object-id': out.objectId,
        'durability-level': String(out.sharks.length),
      }).end();
      return;
    }
    if (method === 'GET' || method === 'HEAD') {
      this.service.authorize(caller, r, false);
      const v = await this.service.head(r);
      if (v.type === 'directory') {
        o.operation = method === 'GET' ? 'getdirectory' : 'headdirectory';
        o.billable = method === 'GET' ? 'LIST' : 'HEAD';
        const headers = {
          'content-type': 'application/x-json-stream; type=directory',
          'last-modified': new Date(v.mtime).toUTCString(),
        };
        if (method === 'HEAD') return void head(res, 200, headers).end();
        const entries = await this.service.list(r);
        const body =
          entries.map((e) => JSON.stringify(listEntry(e))).join('\n') + (entries.length ? '\n' : '');
        o.bytes = Buffer.byteLength(body);
        head(res, 200, { ...headers, 'result-set-size': String(entries.length) }).end(body);
        return;
      }
      o.operation = method === 'GET' ? 'getobject' : 'headobject';
      o.billable = method;
      o.objectId = v.objectId;
      const headers = objectHeaders(v);
      if (method === 'HEAD')
        return void head(res, 200, { ...headers, 'content-length': String(v.contentLength) }).end();
      const range = parseRange(req.headers.range, v.contentLength);
      const got = await this.service.open(v, range, r.shown);
      head(res, range ? 206 : 200, {
        ...headers,
        'content-length': String(got.contentLength),
        ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${v.contentLength}` } : {}),
      });
      got.stream.on('data', (c: Buffer) => (o.bytes += c.length));
      got.stream.pipe(res);
      await new Promise<void>((resolve, reject) => {
        res.on('finish', resolve);
        got.stream.on('error', reject);
      });
      return;
    }
    if (method === 'DELETE') {
      this.service.authorize(caller, r, true);
      o.billable = 'DELETE';
      o.operation = 'deleteobject';
      const out = await this.service.delete(r);
      if (out.prevObjectId) o.objectId = out.prevObjectId;
      head(res, 204, {}).end();
      return;
    }
    throw new RemoraError('MethodNotAllowed', `${method} is not supported (allowed: ${ALLOW})`, {
      details: { allow: ALLOW },
    });
  }

  private log(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    caller: Caller | undefined,
    o: Outcome,
    started: number,
    reqId: string,
    err?: RemoraError,
  ): void {
    if (!this.audit) return;
    const resHeaders = res.getHeaders();
    const entry: AuditEntry = {
      operation: o.operation,
      billable_operation: o.billable,
      req: {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: { ...req.headers, authorization: undefined, 'x-forwarded-for': forwardedFor(req) },
        httpVersion: req.httpVersion,
        ...(o.owner ? { owner: o.owner } : {}),
        ...(caller
          ? { caller: { login: caller.account.login, uuid: caller.account.uuid, groups: [], user: null } }
          : {}),
      },
      res: { statusCode: res.statusCode, headers: resHeaders },
      reqHeaderLength: headerLength(req.headers),
      resHeaderLength: headerLength(resHeaders),
      bytesTransferred: o.bytes,
      latency: Date.now() - started,
      remoteAddress: req.socket.remoteAddress ?? '',
      remotePort: req.socket.remotePort ?? 0,
      req_id: reqId,
      ...(o.objectId ? { objectId: o.objectId } : {}),
      ...(o.prevObjectId ? { prevObjectId: o.prevObjectId } : {}),
      ...(o.sharksContacted ? { sharksContacted: o.sharksContacted } : {}),
      // The real error, not what the client was shown: this log is the operator's.
      ...(err ? { err: { code: err.code, message: describe(err) } } : {}),
    };
    this.audit.write(entry, new Date());
  }
}

/**
 * The front door is also its own load balancer: like haproxy's `option forwardfor` in front of
 * muskie, it appends the peer's address to `x-forwarded-for` in the audit line, which is where
 * access logs take the client's address from (mackerel deliver-access.js; docs/metering.md).
 */
function forwardedFor(req: http.IncomingMessage): string | undefined {
  const peer = req.socket.remoteAddress;
  const h = req.headers['x-forwarded-for'];
  const sent = Array.isArray(h) ? h.join(', ') : h;
  if (!peer) return sent;
  return sent ? `${sent}, ${peer}` : peer;
}

/** Manta keeps `m-*` request headers with the object and returns them on GET and HEAD. */
function userHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (k.startsWith('m-') && typeof v === 'string') out[k] = v;
  return out;
}

function objectHeaders(v: MantaObjectValue): Record<string, string> {
  return {
    ...userHeaders(v.headers),
    'content-type': v.contentType,
    'content-md5': v.contentMD5,
    etag: v.etag,
    'last-modified': new Date(v.mtime).toUTCString(),
    'durability-level': String(v.sharks.length),
    'x-remora-object-id': v.objectId,
  };
}

function listEntry(v: MantaValue): Record<string, unknown> {
  const base = { name: v.name, type: v.type, mtime: new Date(v.mtime).toISOString() };
  return v.type === 'object'
    ? { ...base, size: v.contentLength, etag: v.etag, durability: v.sharks.length }
    : base;
}

/** An error for the server's log: its message, the failures it collected, and its cause. */
function describe(err: RemoraError): string {
  const failures = Array.isArray(err.details.failures) ? ` [${err.details.failures.join('; ')}]` : '';
  const cause =
    err.cause instanceof Error && err.cause.message !== err.message ? ` (cause: ${err.cause.message})` : '';
  return `${err.code}: ${err.message}${failures}${cause}`;
}

/** writeHead through setHeader, so the audit line can read back what was sent (getHeaders). */
function head(
  res: http.ServerResponse,
  status: number,
  headers: Record<string, string | number>,
): http.ServerResponse {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  return res.writeHead(status);
}
