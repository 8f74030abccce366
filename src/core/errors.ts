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
  // pipeline: an attempt cut short (another attempt may well succeed)
  TaskTimeout: { status: 504, exit: 9, retryable: true },
  WorkerShutdown: { status: 503, exit: 9, retryable: true },
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

/** Wrap anything thrown into a RemoraError, keeping the original as cause. */
export function toRemoraError(err: unknown, fallback: ErrorCode = 'Internal'): RemoraError {
  if (err instanceof RemoraError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RemoraError(fallback, message, { cause: err });
}
