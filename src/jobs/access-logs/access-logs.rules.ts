/**
 * Access-log rules (MANTA-REFERENCE §3.6 "Access logs"; mackerel deliver-access.js and
 * docs/reports.md). Each account receives the requests made to ITS objects (by `req.owner`,
 * whoever the caller was), failed ones included, as sanitized records:
 *
 *   kept       billable_operation; req.method, req.headers, req.httpVersion, req.caller.login;
 *              res.statusCode, res.headers — nothing else (the original's whitelist)
 *   renamed    req.url → req["request-uri"] (RFC 2616's name)
 *   dropped    req.headers.authorization, req.headers["x-forwarded-for"]
 *   added      remoteAddress: the FIRST address of x-forwarded-for (the load balancer's view of
 *              the client; 169.254.0.1 when absent), always IPv6: an IPv4 address as its
 *              IPv4-mapped form in ipaddr.js's notation (`::ffff:a03:5bec`); `unknown` when the
 *              first entry is empty, `unknown`, or not an address (MANTA-1918, MANTA-1886,
 *              MANTA-2756 "metering job failed on bogus IP in request header")
 *
 * Lines dropped as in the original: not audit, `/ping`, no `req.owner`, the operator's calls.
 * Key order is the original's: the whitelist's order, `request-uri` last in `req` and
 * `remoteAddress` last (where deliver-access added them).
 */
import { OPERATOR_CALLER } from '../request-metering/request-metering.rules.js';

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return x !== null && typeof x === 'object' && !Array.isArray(x);
}

/** Whether an audit record goes to its owner's access log (deliver-access.js shouldProcess). */
export function wantedForAccessLog(rec: Obj): rec is Obj & { req: Obj & { owner: string } } {
  if (String(rec.audit) !== 'true' || !isObj(rec.req)) return false;
  const req = rec.req;
  if (req.url === '/ping' || typeof req.owner !== 'string') return false;
  return !(isObj(req.caller) && req.caller.login === OPERATOR_CALLER);
}

/** The sanitized record an account receives. */
export function sanitize(rec: Obj): Obj {
  const out: Obj = {};
  if (typeof rec.billable_operation === 'string') out.billable_operation = rec.billable_operation;
  let headers: Obj | undefined;
  if (isObj(rec.req)) {
    const r = rec.req;
    const req: Obj = {};
    if (typeof r.method === 'string') req.method = r.method;
    if (typeof r.url === 'string') req.url = r.url;
    if (isObj(r.headers)) req.headers = headers = { ...r.headers };
    if (typeof r.httpVersion === 'string') req.httpVersion = r.httpVersion;
    if (isObj(r.caller) && typeof r.caller.login === 'string') req.caller = { login: r.caller.login };
    // As deliver-access.js: only a record with headers is renamed and stripped.
    if (headers) {
      req['request-uri'] = req.url;
      delete req.url;
      delete headers.authorization;
      delete headers['x-forwarded-for'];
    }
    out.req = req;
  }
  if (isObj(rec.res)) {
    const s = rec.res;
    const res: Obj = {};
    if (typeof s.statusCode === 'number') res.statusCode = s.statusCode;
    if (isObj(s.headers)) res.headers = s.headers;
    out.res = res;
  }
  if (headers && isObj(rec.req) && isObj(rec.req.headers)) {
    const xff = rec.req.headers['x-forwarded-for'];
    out.remoteAddress = clientAddress(typeof xff === 'string' ? xff : undefined);
  }
  return out;
}

/** The original's remoteAddress: first x-forwarded-for entry, as IPv6, or `unknown`. */
export function clientAddress(xForwardedFor: string | undefined): string {
  const first = (xForwardedFor || '169.254.0.1').split(',')[0]!.trim() || 'unknown';
  if (first === 'unknown') return 'unknown';
  const v4 = parseIPv4(first);
  if (v4) return formatIPv6([0, 0, 0, 0, 0, 0xffff, (v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!]);
  const v6 = parseIPv6(first);
  return v6 ? formatIPv6(v6) : 'unknown';
}

function parseIPv4(s: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  return parts.every((n) => n <= 255) ? parts : undefined;
}

function parseIPv6(s: string): number[] | undefined {
  let text = s;
  const tail: number[] = [];
  const v4 = /^(.*:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(text);
  if (v4) {
    const p = parseIPv4(v4[2]!);
    if (!p) return undefined;
    tail.push((p[0]! << 8) | p[1]!, (p[2]! << 8) | p[3]!);
    text = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const group = (g: string) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN);
  const side = (h: string) => (h === '' ? [] : h.split(':').map(group));
  const head = side(halves[0]!);
  const rest = halves.length === 2 ? side(halves[1]!) : [];
  const known = head.length + rest.length + tail.length;
  if ([...head, ...rest].some(Number.isNaN)) return undefined;
  if (halves.length === 1 && known !== 8) return undefined;
  if (halves.length === 2 && known > 7) return undefined;
  return [...head, ...Array<number>(8 - known).fill(0), ...rest, ...tail];
}

/** ipaddr.js 1.x `IPv6.toString()`: lower-case groups, the FIRST run of zero groups as `::`. */
export function formatIPv6(parts: number[]): string {
  return parts
    .map((p) => p.toString(16))
    .join(':')
    .replace(/((^|:)(0(:|$))+)/, '::');
}

/** `/<login>/reports/access-logs/YYYY/MM/DD/HH/hHH.json` for an hour key `YYYY-MM-DDTHH`. */
export function accessLogPath(login: string, hourKey: string): string {
  const hh = hourKey.slice(11, 13);
  return `${accessLogDir(login)}/${hourKey.slice(0, 10).replaceAll('-', '/')}/${hh}/h${hh}.json`;
}

export function accessLogDir(login: string): string {
  return `/${login}/reports/access-logs`;
}
