/**
 * The error catalog. Every error Remora raises on purpose has a string code, a
 * message an operator can act on, an HTTP status (for the front door and storage
 * nodes) and a process exit code (for the CLI). Boundaries translate foreign
 * errors into one of these, keeping the original as `cause`.
 *
 * Which codes are worth retrying is a table (RETRYABLE), not scattered `if`s.
 */

export const ERROR_CATALOG = {
  // metadata tier
  EtagConflict: { status: 412, exit: 3, retryable: false },
  ObjectNotFound: { status: 404, exit: 4, retryable: false },
  RingChanged: { status: 500, exit: 5, retryable: false },
  ShardUnavailable: { status: 503, exit: 6, retryable: true },
  // storage nodes
  Md5Mismatch: { status: 469, exit: 7, retryable: true },
  InvalidPath: { status: 400, exit: 2, retryable: false },
  StorageNodeUnreachable: { status: 503, exit: 6, retryable: true },
  StorageNodeFull: { status: 507, exit: 6, retryable: false },
  TruncatedTransfer: { status: 400, exit: 7, retryable: true },
  RangeNotSatisfiable: { status: 416, exit: 2, retryable: false },
  MethodNotAllowed: { status: 405, exit: 2, retryable: false },
  // a mutating request to a storage node without the deployment's internal credential, or a wrong one
  InternalCredentialRefused: { status: 401, exit: 2, retryable: false },
  // a batched tombstone request naming more copies, or sending more bytes, than a node takes at once
  TombstoneBatchTooLarge: { status: 413, exit: 2, retryable: false },
  // a pull request (POST /pull) whose body is not a list of copies with md5, bytes and source URLs
  PullBatchInvalid: { status: 400, exit: 2, retryable: false },
  // a pull request naming more copies, or sending more bytes, than a node takes at once
  PullBatchTooLarge: { status: 413, exit: 2, retryable: false },
  // front door
  NotEnoughStorageNodes: { status: 503, exit: 6, retryable: true },
  Unauthorized: { status: 401, exit: 2, retryable: false },
  Forbidden: { status: 403, exit: 2, retryable: false },
  DirectoryNotFound: { status: 404, exit: 4, retryable: false },
  DirectoryNotEmpty: { status: 400, exit: 2, retryable: false },
  BadRequest: { status: 400, exit: 2, retryable: false },
  AllCopiesUnavailable: { status: 503, exit: 6, retryable: true },
  // configuration, CLI, dumps
  InvalidConfig: { status: 500, exit: 2, retryable: false },
  UsageError: { status: 400, exit: 2, retryable: false },
  StaleState: { status: 500, exit: 5, retryable: false },
  // a port the deployment must listen on is held by another process
  PortInUse: { status: 500, exit: 5, retryable: false },
  // a command that needs a deployment ran on a state directory that has none (only up/demo create one)
  NoDeployment: { status: 500, exit: 5, retryable: false },
  MalformedInput: { status: 400, exit: 8, retryable: false },
  // rebalance: no snapshot, or one older than the evacuated node's last write
  SnapshotTooOld: { status: 409, exit: 5, retryable: false },
  // rebalance: the plan's destination set is not the one the operator said to expect (--expect-destinations)
  UnexpectedDestinations: { status: 409, exit: 5, retryable: false },
  // audit/cruft: a snapshot not older than a node listing it is compared with (DESIGN.md invariant 5)
  InputsOutOfOrder: { status: 409, exit: 5, retryable: false },
  // pipeline: an attempt cut short (another attempt may well succeed)
  TaskTimeout: { status: 504, exit: 9, retryable: true },
  WorkerShutdown: { status: 503, exit: 9, retryable: true },
  // the attempt was declared lost (its heartbeat lapsed) and its task released to another attempt
  AttemptLost: { status: 503, exit: 9, retryable: true },
  // an attempt finished after it was declared lost (or after another attempt completed its task):
  // its result is discarded, it commits nothing (docs/pipeline.md "A lost attempt that keeps running")
  AttemptFenced: { status: 409, exit: 9, retryable: true },
  // a claim of a task another attempt is running (its heartbeat fresh): no second attempt starts,
  // the engine tries the job again later (docs/pipeline.md "A lost attempt that keeps running")
  TaskBusy: { status: 409, exit: 9, retryable: true },
  // `remora accounts …`: no account has that login
  AccountNotFound: { status: 404, exit: 4, retryable: false },
  // `remora compare`: Remora's report and the original's disagree (the differences are printed)
  ReportsDiffer: { status: 409, exit: 1, retryable: false },
  Internal: { status: 500, exit: 1, retryable: false },
} as const satisfies Record<string, { status: number; exit: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export class RemoraError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = code;
    this.code = code;
    this.details = options.details ?? {};
  }

  get status(): number {
    return ERROR_CATALOG[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CATALOG[this.code].exit;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details };
  }
}

export function isRemoraError(err: unknown, code?: ErrorCode): err is RemoraError {
  return err instanceof RemoraError && (code === undefined || err.code === code);
}

/** True when an error is worth retrying: a catalog code marked retryable, or a network reset. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RemoraError) return ERROR_CATALOG[err.code].retryable;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NETWORK_RETRYABLE.has(code);
}

const NETWORK_RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET']);

/**
 * Wrap anything thrown into a RemoraError, keeping the original as cause. A lost or refused
 * PostgreSQL connection that nothing below translated (src/metadata/pg-connection.ts names the
 * server where it can) is ShardUnavailable, never Internal.
 */
export function toRemoraError(err: unknown, fallback: ErrorCode = 'Internal'): RemoraError {
  if (err instanceof RemoraError) return err;
  const reason = connectionFailure(err, { socket: false });
  if (reason !== undefined)
    return new RemoraError('ShardUnavailable', `PostgreSQL unavailable: ${reason}`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new RemoraError(fallback, message, { cause: err });
}

// PostgreSQL SQLSTATEs that mean "cannot talk to this server" rather than "this statement
// failed" (class 08 is connection exceptions as a whole).
const CONNECTION_SQLSTATES: Record<string, string> = {
  '28P01': 'login refused (wrong password)',
  '28000': 'login refused',
  '3D000': 'the database does not exist',
  '53300': 'too many connections',
  '57P01': 'the server is shutting down, or terminated the connection',
  '57P02': 'the server crashed',
  '57P03': 'the server is not accepting connections yet (starting up or shutting down)',
};

// Socket errors: a PostgreSQL connection's only when the caller knows the socket was one
// (src/metadata/pg-connection.ts); a storage node's reset is not a database's.
const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is PostgreSQL running and listening there?)',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'host name lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
};

// node-postgres's own words for a connection that went away or never came.
const PG_CLIENT_MESSAGES = [
  /^Connection terminated/,
  /connection error and is not queryable/,
  /^Client was closed and is not queryable/,
  /timeout exceeded when trying to connect/,
];

/**
 * The reason, when `err` says a PostgreSQL server cannot be reached or used at all (login
 * refused, no such database, shutting down, connection lost; with `socket`, also refused,
 * unknown host, timed out), as opposed to one statement failing; undefined otherwise.
 * Duck-typed: core imports no driver. A server's error carries a SQLSTATE and a severity.
 */
export function connectionFailure(err: unknown, { socket = true } = {}): string | undefined {
  if (!(err instanceof Error) || err instanceof RemoraError) return undefined;
  const { code, severity } = err as { code?: unknown; severity?: unknown };
  if (typeof code === 'string') {
    if (typeof severity === 'string' && (code in CONNECTION_SQLSTATES || /^08[0-9A-Z]{3}$/.test(code)))
      return `${CONNECTION_SQLSTATES[code] ?? 'connection failure'}: ${err.message}`;
    // A host with several addresses fails with an AggregateError whose message is empty.
    if (socket && code in NETWORK_CODES)
      return `${NETWORK_CODES[code]}${err.message ? `: ${err.message}` : ''}`;
  }
  if (PG_CLIENT_MESSAGES.some((re) => re.test(err.message))) return err.message;
  return undefined;
}
