/**
 * HTTP client of the front door, as a user or the operator sees it (the workload driver,
 * tests, and the object-store backend that keeps pipeline files under /poseidon/stor).
 */
import http from 'node:http';
import { Readable } from 'node:stream';
import { RemoraError, type ErrorCode, ERROR_CATALOG } from '../core/errors.js';

export interface PutOptions {
  contentType?: string;
  contentMD5?: string;
  copies?: number;
  contentLength?: number;
  /** Extra request headers, e.g. Manta `m-*` user metadata. */
  headers?: Record<string, string>;
}

export interface HeadResult {
  status: number;
  headers: http.IncomingHttpHeaders;
}

export class FrontDoorClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  constructor(
    readonly url: string,
    private readonly token?: string,
  ) {}

  close(): void {
    this.agent.destroy();
  }

  private request(
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: Buffer | Readable,
  ): Promise<http.IncomingMessage> {
    const u = new URL(path.split('/').map(encodeURIComponent).join('/'), this.url);
    return new Promise((resolve, reject) => {
      const req = http.request(
        u,
        {
          method,
          agent: this.agent,
          headers: { ...headers, ...(this.token ? { authorization: `Token ${this.token}` } : {}) },
        },
        resolve,
      );
      req.on('error', (e) =>
        reject(
          new RemoraError('StorageNodeUnreachable', `front door ${this.url}: ${e.message}`, { cause: e }),
        ),
      );
      if (body instanceof Readable) body.pipe(req);
      else req.end(body);
    });
  }

  private async expectOk(res: http.IncomingMessage, what: string): Promise<void> {
    if (res.statusCode && res.statusCode < 300) return;
    const text = await readAll(res);
    let code: ErrorCode = 'Internal';
    let message = `${what}: HTTP ${res.statusCode}`;
    let requestId = headerOf(res, 'x-request-id');
    try {
      const j = JSON.parse(text.toString()) as { code?: string; message?: string; requestId?: string };
      if (j.code && j.code in ERROR_CATALOG) code = j.code as ErrorCode;
      if (j.message) message = `${what}: ${j.message}`;
      if (typeof j.requestId === 'string') requestId = j.requestId;
    } catch {
      /* not JSON: keep the status */
    }
    // The request id is what the operator looks up in the front door's log for the real cause.
    throw new RemoraError(code, message, {
      details: { status: res.statusCode, ...(requestId ? { requestId } : {}) },
    });
  }

  async put(
    path: string,
    body: Buffer | Readable,
    opts: PutOptions = {},
  ): Promise<{ objectId: string; md5: string }> {
    const headers: Record<string, string> = {
      ...opts.headers,
      'content-type': opts.contentType ?? 'application/octet-stream',
    };
    if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
    else if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
    if (opts.contentMD5) headers['content-md5'] = opts.contentMD5;
    if (opts.copies) headers['durability-level'] = String(opts.copies);
    const res = await this.request('PUT', path, headers, body);
    await this.expectOk(res, `PUT ${path}`);
    res.resume();
    return { objectId: String(res.headers['x-remora-object-id']), md5: String(res.headers['computed-md5']) };
  }

  async mkdir(path: string): Promise<void> {
    const res = await this.request('PUT', path, { 'content-type': 'application/json; type=directory' });
    await this.expectOk(res, `mkdir ${path}`);
    res.resume();
  }

  /** mmkdir -p: every missing directory below the account's namespace root. */
  async mkdirp(path: string): Promise<void> {
    const parts = path.split('/');
    for (let i = 4; i <= parts.length; i++) await this.mkdir(parts.slice(0, i).join('/'));
  }

  async link(path: string, source: string): Promise<void> {
    const res = await this.request('PUT', path, {
      'content-type': 'application/json; type=link',
      location: source,
    });
    await this.expectOk(res, `link ${path} → ${source}`);
    res.resume();
  }

  async get(path: string, range?: string): Promise<Buffer> {
    const res = await this.request('GET', path, range ? { range } : {});
    await this.expectOk(res, `GET ${path}`);
    return readAll(res);
  }

  async getStream(path: string): Promise<http.IncomingMessage> {
    const res = await this.request('GET', path, {});
    await this.expectOk(res, `GET ${path}`);
    return res;
  }

  async head(path: string): Promise<HeadResult | undefined> {
    const res = await this.request('HEAD', path, {});
    res.resume();
    if (res.statusCode === 404) return undefined;
    await this.expectOk(res, `HEAD ${path}`);
    return { status: res.statusCode ?? 0, headers: res.headers };
  }

  async list(path: string): Promise<{ name: string; type: string; size?: number }[]> {
    const text = (await this.get(path)).toString();
    return text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { name: string; type: string; size?: number });
  }

  async delete(path: string): Promise<void> {
    const res = await this.request('DELETE', path, {});
    await this.expectOk(res, `DELETE ${path}`);
    res.resume();
  }
}

function headerOf(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
