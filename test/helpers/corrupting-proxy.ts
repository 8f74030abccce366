/**
 * An HTTP proxy in front of one storage node that flips one byte in the body of chosen PUTs: a
 * transfer corrupted on the wire (a bad NIC, a bad switch). Everything else passes unchanged,
 * headers included (Content-MD5, the internal credential), and the node's answer comes back
 * as it was. The node must refuse a corrupted body (469 Md5Mismatch) and keep nothing.
 */
import http from 'node:http';
import type net from 'node:net';
import { Transform } from 'node:stream';

export interface ProxiedPut {
  path: string;
  corrupted: boolean;
  /** The node's answer (undefined: the connection failed). */
  status?: number;
}

export class CorruptingProxy {
  readonly puts: ProxiedPut[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly agent = new http.Agent({ keepAlive: true });

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  /** Proxy to `target`; `corrupt(n)` says whether the n-th PUT (0-based) is corrupted. */
  static async start(target: string, corrupt: (n: number) => boolean): Promise<CorruptingProxy> {
    const ref: { proxy?: CorruptingProxy } = {};
    const server = http.createServer((req, res) => {
      const p = ref.proxy!;
      const record: ProxiedPut | undefined =
        req.method === 'PUT' ? { path: req.url ?? '', corrupted: corrupt(p.puts.length) } : undefined;
      if (record) p.puts.push(record);
      const headers = { ...req.headers };
      delete headers.host;
      const up = http.request(
        new URL(req.url ?? '/', target),
        { method: req.method, headers, agent: p.agent },
        (answer) => {
          if (record) record.status = answer.statusCode;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.on('aborted', () => up.destroy());
      if (record?.corrupted) req.pipe(flipFirstByte()).pipe(up);
      else req.pipe(up);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const proxy = new CorruptingProxy(server, `http://127.0.0.1:${port}`);
    ref.proxy = proxy;
    server.on('connection', (s) => {
      proxy.sockets.add(s);
      s.once('close', () => proxy.sockets.delete(s));
    });
    return proxy;
  }

  close(): Promise<void> {
    this.agent.destroy();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}

/** XOR the first byte of the stream with 0xff: same length, different MD5. */
function flipFirstByte(): Transform {
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (!done && chunk.length > 0) {
        chunk = Buffer.from(chunk);
        chunk[0] = chunk[0]! ^ 0xff;
        done = true;
      }
      cb(null, chunk);
    },
  });
}
