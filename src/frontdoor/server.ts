/**
 * The front door's HTTP surface (a small muskie):
 *   PUT    /<account>/<ns>/path                      object (streamed; Content-MD5, durability-level)
 *   PUT    … Content-Type: application/json; type=directory   mkdir
 *   PUT    … Content-Type: application/json; type=link + Location: /<account>/<ns>/src   snaplink
 *   GET    object bytes (Range) or, for a directory, one JSON line per entry
 *   HEAD   metadata headers; DELETE object or empty directory
 * Auth: `Authorization: Token <token>`. One muskie audit line per request.
 */
import http from 'node:http';
import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { RemoraError, toRemoraError } from '../core/errors.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { MantaObjectValue, MantaValue } from '../metadata/types.js';
import { accountByToken } from './accounts.js';
import { type AuditEntry, type AuditLog, headerLength } from './audit-log.js';
import type { Caller, ObjectService, Resolved } from './object-service.js';

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
  ) {}

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve) => this.server!.listen(port, host, resolve));
    this.url = `http://${host}:${(this.server.address() as AddressInfo).port}`;
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
    try {
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
      if (!res.headersSent) {
        const body = JSON.stringify(err.toJSON());
        head(res, err.status, {
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
      const got = await this.service.open(v, range);
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
    throw new RemoraError('BadRequest', `method ${method} is not supported`);
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
        headers: { ...req.headers, authorization: undefined },
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
      ...(err ? { err: { code: err.code, message: err.message } } : {}),
    };
    this.audit.write(entry, new Date());
  }
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

export function parseRange(h: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!h) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw new RemoraError('BadRequest', `unsupported Range ${h}`);
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size)
    throw new RemoraError('BadRequest', `Range ${h} is outside the object (${size} bytes)`);
  return { start, end };
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
