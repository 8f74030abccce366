/**
 * Connections to PostgreSQL, and what an operator is told when they fail.
 *
 * Every pool Remora makes comes from `openPool`: it listens for 'error' on the pool (an idle
 * client losing its server) AND on every client it creates (a checked-out client between two
 * queries of a transaction: node-postgres emits 'error' on it with no listener, which kills
 * the process with a raw stack trace). Failing to connect is `ShardUnavailable` naming the
 * server (host:port/database, never the password) and the reason: refused, unknown host,
 * timed out, login refused, no such database, shutting down.
 */
import pg from 'pg';
import { connectionFailure, RemoraError } from '../core/errors.js';

/** `PostgreSQL at host:port/database (user u)`: where a URL points, without its password. */
export function describeServer(url: string): string {
  try {
    const u = new URL(url);
    const db = u.pathname.replace(/^\//, '');
    const host = u.hostname || u.searchParams.get('host') || 'localhost';
    return `PostgreSQL at ${host}:${u.port || '5432'}${db ? `/${decodeURIComponent(db)}` : ''}${
      u.username ? ` (user ${decodeURIComponent(u.username)})` : ''
    }`;
  } catch {
    return 'PostgreSQL (unparseable URL)';
  }
}

/** `err` as ShardUnavailable naming the server, if it is a connection failure; else `err`. */
export function translateConnectionError(err: unknown, where: string): unknown {
  if (err instanceof RemoraError) return err;
  const reason = connectionFailure(err);
  return reason === undefined
    ? err
    : new RemoraError('ShardUnavailable', `${where}: ${reason}`, { cause: err });
}

type ConnectCallback = (
  err: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

/**
 * A pg.Pool whose connection failures are ShardUnavailable naming its server, and which never
 * lets a lost connection crash the process (see the file comment).
 */
export class ServerPool extends pg.Pool {
  /** The last connection error seen on an idle or checked-out client (for diagnostics). */
  lastConnectionError: Error | undefined;

  constructor(
    readonly where: string,
    config: pg.PoolConfig,
  ) {
    super(config);
    const remember = (err: Error) => {
      this.lastConnectionError = err;
    };
    this.on('error', remember);
    // Once per new client, for its whole life: pg-pool removes its own idle listener while a
    // client is checked out, and an 'error' with no listener throws.
    this.on('connect', (client) => client.on('error', remember));
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    // pool.query() connects through this method too (callback form).
    if (callback) {
      super.connect((err, client, done) =>
        callback(err ? (translateConnectionError(err, this.where) as Error) : err, client, done),
      );
      return;
    }
    return super.connect().catch((err: unknown) => {
      throw translateConnectionError(err, this.where);
    });
  }
}

/** A pool on `url`; `label` says what it is for (e.g. `shard 2.moray.remora.local`). */
export function openPool(url: string, opts: { max: number; label?: string }): ServerPool {
  const where = `${opts.label ? `${opts.label}: ` : ''}${describeServer(url)}`;
  return new ServerPool(where, { connectionString: url, max: opts.max });
}

/** Connect a single client (for administrative statements); failures as in `ServerPool`. */
export async function connectClient(url: string, timeoutMs = 10_000): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {
    /* the next query on it fails with the reason; the process must not die */
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw translateConnectionError(err, describeServer(url));
  }
  return client;
}
