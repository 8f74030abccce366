/** Starting an HTTP server on loopback (storage nodes, the front door): a taken port is PortInUse. */
import type http from 'node:http';
import type net from 'node:net';
import { RemoraError } from '../core/errors.js';

/**
 * Listen on `host:port` (0: any free port) and return the port bound. A port another process
 * holds is `PortInUse`, its message `<what>: port P on H is already in use by another process`
 * followed by `hint` (what the operator can change).
 */
export async function listenOn(
  server: http.Server,
  port: number,
  host: string,
  what: string,
  hint = '',
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new RemoraError(
              'PortInUse',
              `${what}: port ${port} on ${host} is already in use by another process${hint}`,
              { cause: err, details: { port, host } },
            )
          : err,
      );
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/**
 * Track a server's connections from now on; the function returned stops listening and ends every
 * connection, idle or busy, resolving once the server is closed.
 */
export function closerOf(server: http.Server): () => Promise<void> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
}
