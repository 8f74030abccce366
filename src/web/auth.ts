/**
 * Who may see the dashboard. Bound to a loopback address (127.0.0.0/8, ::1, localhost) it answers
 * anyone on this machine, like the other local endpoints. Bound to any other address — 0.0.0.0
 * included, whatever address a request arrives on — every page and API needs the operator token
 * (`<state-dir>/operator-token`): `Authorization: Token <token>`, or the cookie the login form
 * sets. The decision is the bind's, not the request's: a request to 127.0.0.1 of a dashboard bound
 * to 0.0.0.0 needs the token too (anyone on the network reaches the same socket).
 */
import crypto from 'node:crypto';
import net from 'node:net';
import { RemoraError } from '../core/errors.js';

export const SESSION_COOKIE = 'remora_dashboard';

export function isLoopbackBind(addr: string): boolean {
  if (addr === 'localhost') return true;
  if (net.isIPv4(addr)) return addr.startsWith('127.');
  if (net.isIPv6(addr)) return addr === '::1' || addr.toLowerCase().startsWith('::ffff:127.');
  return false;
}

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s, 'utf8').digest();

export class DashboardAuth {
  private readonly expected: Buffer | undefined;
  /** The cookie's value: derived from the token, so the token itself never sits in a cookie. */
  private readonly session: string | undefined;

  constructor(
    readonly required: boolean,
    token: string | undefined,
  ) {
    if (required && !token)
      throw new RemoraError(
        'UsageError',
        'a dashboard bound to a non-loopback address needs the operator token, and none was found: ' +
          'run it where <state-dir>/operator-token exists (`remora up` creates it), or bind to 127.0.0.1',
      );
    this.expected = token === undefined ? undefined : digest(token);
    this.session =
      token === undefined
        ? undefined
        : crypto.createHmac('sha256', token).update('remora dashboard session').digest('base64url');
  }

  /** True when the token is right (constant time). */
  tokenMatches(candidate: string): boolean {
    return this.expected !== undefined && crypto.timingSafeEqual(digest(candidate), this.expected);
  }

  /** Whether a request may be answered: always when not required; else a right header or cookie. */
  allows(headers: { authorization?: string | undefined; cookie?: string | undefined }): boolean {
    if (!this.required) return true;
    const m = /^Token +(\S+)$/i.exec(headers.authorization ?? '');
    if (m && this.tokenMatches(m[1]!)) return true;
    const cookie = cookieValue(headers.cookie, SESSION_COOKIE);
    return (
      cookie !== undefined &&
      this.session !== undefined &&
      crypto.timingSafeEqual(digest(cookie), digest(this.session))
    );
  }

  sessionCookie(secure: boolean): string {
    return `${SESSION_COOKIE}=${this.session}; HttpOnly; SameSite=Strict; Path=/${secure ? '; Secure' : ''}`;
  }
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}
