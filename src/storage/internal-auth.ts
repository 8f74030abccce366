/**
 * The deployment's internal credential: what every mutating request to a storage node (PUT,
 * MOVE, and any other method but GET and HEAD, including the manifest listing) must carry, as
 * `Authorization: Internal <token>`. Without it anyone who can reach a node could overwrite or
 * tombstone any copy (issue 17: one account tombstoned both copies of another's object with
 * nothing but what front-door errors revealed).
 *
 * The token is compared in constant time: both sides are hashed to 32 bytes first, so neither
 * the content nor the length of the expected token leaks through timing.
 */
import crypto from 'node:crypto';
import { RemoraError } from '../core/errors.js';

export const INTERNAL_AUTH_SCHEME = 'Internal';
/** A generated token: 32 random bytes, base64url (43 characters). */
const GENERATED_TOKEN_BYTES = 32;
/** A configured token must be at least this long: a short shared secret is guessable. */
export const MIN_INTERNAL_TOKEN_LENGTH = 16;
const TOKEN_RE = /^[\x21-\x7e]+$/; // visible ASCII: it travels in a header

export function generateInternalToken(): string {
  return crypto.randomBytes(GENERATED_TOKEN_BYTES).toString('base64url');
}

/** Refuse a token that is too short or cannot travel in a header. `where` names its source. */
export function checkInternalToken(token: string, where: string): string {
  if (token.length < MIN_INTERNAL_TOKEN_LENGTH || !TOKEN_RE.test(token))
    throw new RemoraError(
      'InvalidConfig',
      `${where}: the internal storage credential must be at least ${MIN_INTERNAL_TOKEN_LENGTH} visible ASCII characters without spaces`,
    );
  return token;
}

/** The request header a client sends. */
export function internalAuthorization(token: string): string {
  return `${INTERNAL_AUTH_SCHEME} ${token}`;
}

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s, 'utf8').digest();

/** The node's side: checks an `Authorization` header against the expected token. */
export class InternalCredential {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = digest(checkInternalToken(token, 'storage node'));
  }

  /** Throws InternalCredentialRefused unless the header is `Internal <the token>`. */
  check(header: string | undefined, what: string): void {
    const m = header === undefined ? null : /^Internal +(\S+)$/i.exec(header);
    if (!m)
      throw new RemoraError(
        'InternalCredentialRefused',
        `${what} needs the deployment's internal credential (Authorization: ${INTERNAL_AUTH_SCHEME} <token>)`,
      );
    if (!crypto.timingSafeEqual(digest(m[1]!), this.expected))
      throw new RemoraError('InternalCredentialRefused', `${what}: wrong internal credential`);
  }
}
