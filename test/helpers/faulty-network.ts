/**
 * A faulty network between storage nodes: one loopback HTTP proxy in front of each node, and a
 * `nodeUrl` that names the proxies instead of the nodes. Give that `nodeUrl` to a rebalance run:
 * the destinations then pull every copy through a proxy, which may hand the body of a copy's
 * GET to a test's `fault` (a bad NIC flipping bits, a link cut mid-transfer, a node dying while
 * it sends). Everything else passes unchanged, headers included, both ways.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { pipeline, Transform } from 'node:stream';

/** What a test does to a copy's bytes on their way from `source`; `attempt` counts this object's reads (0-based). */
export type TransferFault = (info: {
  objectId: string;
  source: { manta_storage_id: string };
  attempt: number;
}) => Transform | undefined;

export interface ProxiedRead {
  objectId: string;
  source: string;
  /** The fault wrapped this read's body. */
  faulted: boolean;
  /** The MD5 (base64) of the bytes that left the proxy, once they all did (faulted reads only). */
  sentMd5?: string;
}

const COPY_RE = /^\/[0-9a-f-]{36}\/([0-9a-f-]{36})$/;

export class FaultyNetwork {
  readonly reads: ProxiedRead[] = [];
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly proxies = new Map<string, string>();
  private readonly attempts = new Map<string, number>();

  private constructor(
    private readonly realUrl: (id: string) => string | undefined,
    private readonly fault: TransferFault,
  ) {}

  /** A proxy for each of `ids`; a node `realUrl` does not know (stopped) is one that refuses. */
  static async start(
    ids: readonly string[],
    realUrl: (id: string) => string | undefined,
    fault: TransferFault,
  ): Promise<FaultyNetwork> {
    const n = new FaultyNetwork(realUrl, fault);
    for (const id of ids) n.proxies.set(id, await n.listen(id));
    return n;
  }

  /** The node's proxy while the node is known, else undefined (as the real directory says). */
  readonly nodeUrl = (id: string): string | undefined =>
    this.realUrl(id) === undefined ? undefined : (this.proxies.get(id) ?? this.realUrl(id));

  private async listen(id: string): Promise<string> {
    const server = http.createServer((req, res) => this.forward(id, req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.servers.push(server);
    return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  }

  private forward(id: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    const target = this.realUrl(id);
    if (!target) {
      req.socket.destroy(); // a node that is down: the connection goes nowhere
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    const up = http.request(
      new URL(req.url ?? '/', target),
      { method: req.method, headers, agent: this.agent },
      (answer) => {
        const copy = req.method === 'GET' && answer.statusCode === 200 ? COPY_RE.exec(req.url ?? '') : null;
        let fault: Transform | undefined;
        let read: ProxiedRead | undefined;
        if (copy) {
          const objectId = copy[1]!;
          const attempt = this.attempts.get(objectId) ?? 0;
          this.attempts.set(objectId, attempt + 1);
          fault = this.fault({ objectId, source: { manta_storage_id: id }, attempt });
          read = { objectId, source: id, faulted: fault !== undefined };
          this.reads.push(read);
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const cut = (err: unknown) => {
          if (err) res.destroy(); // cut the reader off as the source cut us off
        };
        if (fault) {
          const hash = crypto.createHash('md5');
          const meter = new Transform({
            transform(chunk: Buffer, _e, cb) {
              hash.update(chunk);
              cb(null, chunk);
            },
            flush(cb) {
              read!.sentMd5 = hash.digest('base64');
              cb();
            },
          });
          pipeline(answer, fault, meter, res, cut);
        } else pipeline(answer, res, cut);
      },
    );
    up.on('error', () => res.destroy());
    req.on('aborted', () => up.destroy());
    req.pipe(up);
  }

  close(): Promise<void> {
    this.agent.destroy();
    for (const s of this.sockets) s.destroy();
    return Promise.all(
      this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
    ).then(() => undefined);
  }
}
