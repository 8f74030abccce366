/**
 * What the front door tells a client about a failed request. Issue 17: error bodies carried
 * storage-node URLs (a storage client's message) and other accounts' UUIDs (a moray key), and
 * with nothing more one account tombstoned both copies of another's object.
 *
 * The rules:
 *   1. The body is `{code, message, requestId}`. Never `details`, never a cause.
 *   2. A message the front door built from the request alone (its checks of the path, the
 *      token, the namespace, the parent directory, the range, the method) is shown. Those
 *      messages name paths as the client spelled them (`Resolved.shown`), never a moray key.
 *   3. An error from a storage node or about one (it carries `details.node` or `details.nodes`),
 *      from the metadata tier, or unexpected (`Internal`, a PostgreSQL message) is shown as a
 *      fixed message for its code, with the request id; the real message is logged by the server
 *      under that id (the audit line's `err`, and the deployment's log for 5xx).
 *   4. Last guard on every shown message: a URL, an IPv4 address or `host:port`, and any UUID
 *      the request did not itself contain (its path, its Location header, the caller's own
 *      account) are replaced by `<hidden>`.
 */
import { ERROR_CATALOG, type ErrorCode, type RemoraError } from '../core/errors.js';

/** Codes whose message the front door writes from the request alone (rule 2). */
const SHOWN_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'BadRequest',
  'InvalidPath',
  'ObjectNotFound',
  'DirectoryNotFound',
  'DirectoryNotEmpty',
  'Unauthorized',
  'Forbidden',
  'MethodNotAllowed',
  'RangeNotSatisfiable',
  'NotEnoughStorageNodes',
  'AllCopiesUnavailable',
  'Md5Mismatch',
  'TruncatedTransfer',
]);

/** Rule 3: what a client is told instead; a code not listed becomes `Internal`. */
const FIXED: Partial<Record<ErrorCode, string>> = {
  Md5Mismatch: 'the MD5 of the stored body does not match its Content-MD5 (or the copies disagree)',
  TruncatedTransfer: 'the body ended before Content-Length bytes arrived',
  StorageNodeFull: 'a storage node chosen for this object ran out of room; retry',
  StorageNodeUnreachable: 'a storage node did not answer; retry',
  AllCopiesUnavailable: 'no copy of the object could be read; retry later',
  NotEnoughStorageNodes: 'not enough storage nodes are available; retry later',
  EtagConflict: 'the object changed while this request ran; retry',
  ShardUnavailable: 'the metadata tier is unavailable; retry',
  Internal: 'internal error',
};

export interface PublicError {
  status: number;
  code: ErrorCode;
  message: string;
  /** Headers the status calls for: `Allow` on 405, `Content-Range` on 416. */
  headers: Record<string, string>;
  /** True when the message shown is not the error's own (rule 3): log the real one. */
  hidden: boolean;
}

/** What the request itself told us: UUIDs in it are no secret to its sender. */
export interface RequestFacts {
  requestId: string;
  /** The request target and the Location header, as sent. */
  texts: string[];
  callerUuid?: string;
}

const UUID_G = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const URL_G = /\b[a-z][a-z0-9+.-]*:\/\/[^\s,;)]+/gi;
const IPV4_G = /\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g;
const HOST_PORT_G = /\b[a-z0-9-]+(?:\.[a-z0-9-]+)*:\d{2,5}\b/gi;

export function publicError(err: RemoraError, facts: RequestFacts): PublicError {
  const aboutNodes = err.details.node !== undefined || err.details.nodes !== undefined;
  const shown = SHOWN_CODES.has(err.code) && !aboutNodes;
  let code: ErrorCode = err.code;
  let message: string;
  if (shown) message = redact(err.message, facts);
  else {
    if (FIXED[code] === undefined) code = 'Internal';
    message = `${FIXED[code]!} (request ${facts.requestId})`;
  }
  const headers: Record<string, string> = {};
  if (code === 'MethodNotAllowed' && typeof err.details.allow === 'string') headers.allow = err.details.allow;
  if (code === 'RangeNotSatisfiable' && typeof err.details.size === 'number')
    headers['content-range'] = `bytes */${err.details.size}`;
  return { status: ERROR_CATALOG[code].status, code, message, headers, hidden: !shown };
}

/** Rule 4: anything the request itself contained is no secret to its sender, and is kept. */
function redact(message: string, facts: RequestFacts): string {
  const texts = facts.texts.map(safeDecode);
  const own = (m: string) => texts.some((t) => t.toLowerCase().includes(m.toLowerCase()));
  const hide = (m: string) =>
    own(m) || m.toLowerCase() === facts.callerUuid?.toLowerCase() ? m : '<hidden>';
  return message.replace(URL_G, hide).replace(IPV4_G, hide).replace(HOST_PORT_G, hide).replace(UUID_G, hide);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
