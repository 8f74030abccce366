/**
 * The operator's dashboard (`remora dashboard`, also started by `remora up`): read-only pages
 * and the same data as JSON under `/api/…`, from the read models in src/pipeline/views.ts and
 * src/deployment/views/. Plain node:http, server-rendered HTML, one small script and one style
 * sheet served from here: the pages fetch nothing from another host.
 *
 *   GET /runs?page&days&job&state   days × jobs grid          GET /api/runs (same query)
 *   GET /runs/<id>                  one run's report          GET /api/runs/<id>
 *   GET /nodes                      storage nodes per DC      GET /api/nodes
 *   GET /rebalance?job=<id>         jobs, progress, problems  GET /api/rebalance
 *   GET /gc                         backlog, latest run       GET /api/gc
 *   GET /audit?date&limit           latest audit, problems    GET /api/audit (same query)
 *   GET /cruft                      daily runs, on-demand     GET /api/cruft
 *   GET /usage?date&days&account    per-account charts, a day  GET /api/usage (same query)
 *
 * Who may ask: src/web/auth.ts. Errors are the catalog's: `{code, message}` from the API, a
 * page with the same from the pages.
 */
import http from 'node:http';
import { dayOf, isDay } from '../core/days.js';
import { RemoraError, toRemoraError } from '../core/errors.js';
import { runGrid, runPage as runPageView } from '../pipeline/views.js';
import type { PipelineRuntime } from '../pipeline/runtime.js';
import { CELL_ORDER } from '../pipeline/views.js';
import { auditView, DEFAULT_AUDIT_PROBLEMS } from '../deployment/views/audit.js';
import { cruftView } from '../deployment/views/cruft.js';
import { gcView } from '../deployment/views/gc.js';
import { nodesView } from '../deployment/views/nodes.js';
import { rebalanceView } from '../deployment/views/rebalance.js';
import { DEFAULT_USAGE_DAYS, MAX_USAGE_DAYS, usageView } from '../deployment/views/usage.js';
import { closerOf, listenOn } from '../storage/listen.js';
import { CSS, JS } from './assets.js';
import { DashboardAuth, isLoopbackBind } from './auth.js';
import {
  auditPage,
  cruftPage,
  errorPage,
  gcPage,
  loginPage,
  nodesPage,
  notYetPage,
  rebalancePage,
  runPage,
  runsPage,
} from './pages.js';
import { usagePage } from './usage-page.js';

export const DEFAULT_PAGE_DAYS = 14;
/** A page of the grid covers at most this many days (a year and a bit). */
export const MAX_PAGE_DAYS = 400;

export interface DashboardOptions {
  rt: PipelineRuntime;
  bind: string;
  port: number;
  /** The operator token: required (and checked) when `bind` is not a loopback address. */
  operatorToken?: string;
  log?: (line: string) => void;
}

type Query = URLSearchParams;

interface Route {
  re: RegExp;
  api: (rt: PipelineRuntime, m: RegExpExecArray, q: Query) => Promise<unknown>;
  html: (data: never) => string;
}

function intParam(q: Query, name: string, dflt: number, max: number, min = 0): number {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n > max || n < min)
    throw new RemoraError(
      'BadRequest',
      `${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  return n;
}

function dayParam(v: string): string {
  if (!isDay(v)) throw new RemoraError('BadRequest', `date: expected YYYY-MM-DD, got ${JSON.stringify(v)}`);
  return v;
}

function gridQuery(rt: PipelineRuntime, q: Query) {
  const job = q.get('job') || undefined;
  const state = q.get('state') || undefined;
  if (job !== undefined && !rt.graph.has(job))
    throw new RemoraError(
      'BadRequest',
      `job: no such job ${JSON.stringify(job)} (jobs: ${rt.graph.names().join(', ')})`,
    );
  if (state !== undefined && !(CELL_ORDER as readonly string[]).includes(state))
    throw new RemoraError(
      'BadRequest',
      `state: expected one of ${CELL_ORDER.join(', ')}, got ${JSON.stringify(state)}`,
    );
  const pageDays = Math.max(1, intParam(q, 'days', DEFAULT_PAGE_DAYS, MAX_PAGE_DAYS));
  return {
    today: dayOf(rt.services.clock.now()),
    pageDays,
    page: intParam(q, 'page', 0, 100_000),
    ...(job ? { job } : {}),
    ...(state ? { state } : {}),
  };
}

const ROUTES: Record<string, Route> = {
  runs: {
    re: /^\/runs$/,
    api: (rt, _m, q) => runGrid(rt, gridQuery(rt, q)),
    html: runsPage,
  },
  run: {
    re: /^\/runs\/(\d{1,15})$/,
    api: async (rt, m) => {
      const p = await runPageView(rt, Number(m[1]));
      if (!p) throw new RemoraError('ObjectNotFound', `no run ${m[1]}`);
      return p;
    },
    html: runPage,
  },
  nodes: { re: /^\/nodes$/, api: (rt) => nodesView(rt), html: nodesPage },
  rebalance: {
    re: /^\/rebalance$/,
    api: (rt, _m, q) => rebalanceView(rt.services.tier, q.get('job') || undefined),
    html: rebalancePage,
  },
  gc: { re: /^\/gc$/, api: (rt) => gcView(rt), html: gcPage },
  audit: {
    re: /^\/audit$/,
    api: (rt, _m, q) => {
      const date = q.get('date') || undefined;
      return auditView(rt, {
        ...(date !== undefined ? { day: dayParam(date) } : {}),
        limit: intParam(q, 'limit', DEFAULT_AUDIT_PROBLEMS, 10_000),
      });
    },
    html: auditPage,
  },
  cruft: { re: /^\/cruft$/, api: (rt) => cruftView(rt), html: cruftPage },
  usage: {
    re: /^\/usage$/,
    api: (rt, _m, q) => {
      const date = q.get('date') || undefined;
      const account = q.get('account') || undefined;
      return usageView(rt, {
        ...(date !== undefined ? { date: dayParam(date) } : {}),
        days: intParam(q, 'days', DEFAULT_USAGE_DAYS, MAX_USAGE_DAYS, 1),
        ...(account !== undefined ? { account } : {}),
      });
    },
    html: usagePage,
  },
};

/** Sections whose job is still being built: an honest "not yet available" page (none today). */
const NOT_YET: Record<string, [string, string]> = {};

export class DashboardServer {
  private constructor(
    private readonly closer: () => Promise<void>,
    readonly url: string,
  ) {}

  static async start(o: DashboardOptions): Promise<DashboardServer> {
    const auth = new DashboardAuth(!isLoopbackBind(o.bind), o.operatorToken);
    const server = http.createServer((req, res) => {
      void handle(o, auth, req, res).catch((err: unknown) => {
        o.log?.(`dashboard: ${String(err)}`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    const closer = closerOf(server);
    const port = await listenOn(server, o.port, o.bind, 'dashboard', ' (choose another with --port)');
    const host = o.bind.includes(':') ? `[${o.bind}]` : o.bind;
    return new DashboardServer(closer, `http://${host}:${port}/`);
  }

  /** Stop listening and end every connection. */
  close(): Promise<void> {
    return this.closer();
  }
}

const SECURITY_HEADERS = {
  // Nothing from another host: the browser enforces what the pages already do.
  'Content-Security-Policy': "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: http.OutgoingHttpHeaders = {},
) {
  res.writeHead(status, { 'Content-Type': type, ...SECURITY_HEADERS, ...extra });
  res.end(body);
}

const HTML = 'text/html; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

async function readForm(req: http.IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const c of req) {
    body += (c as Buffer).toString('utf8');
    if (body.length > 4096) throw new RemoraError('BadRequest', 'login form too large');
  }
  return new URLSearchParams(body);
}

async function handle(
  o: DashboardOptions,
  auth: DashboardAuth,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
  const path = url.pathname;
  const isApi = path.startsWith('/api/');
  if (path === '/static/dashboard.css') return send(res, 200, 'text/css; charset=utf-8', CSS);
  if (path === '/static/dashboard.js') return send(res, 200, 'text/javascript; charset=utf-8', JS);
  if (path === '/login' && auth.required) {
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (auth.tokenMatches(form.get('token') ?? ''))
        return send(res, 303, HTML, '', { Location: '/runs', 'Set-Cookie': auth.sessionCookie(false) });
      return send(res, 401, HTML, loginPage(true));
    }
    return send(res, 200, HTML, loginPage(false));
  }
  if (!auth.allows(req.headers)) {
    if (isApi)
      return send(
        res,
        401,
        JSON_TYPE,
        JSON.stringify({
          code: 'Unauthorized',
          message: 'this dashboard needs the operator token: Authorization: Token <token>',
        }),
      );
    if (req.method === 'GET' && !req.headers['x-remora-live'])
      return send(res, 303, HTML, '', { Location: '/login' });
    return send(res, 401, HTML, errorPage(401, 'Unauthorized', 'sign in with the operator token'));
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    const e = new RemoraError('MethodNotAllowed', 'the dashboard is read-only');
    return isApi
      ? send(res, 405, JSON_TYPE, JSON.stringify({ code: e.code, message: e.message }))
      : send(res, 405, HTML, errorPage(405, e.code, e.message));
  }
  if (path === '/' || path === '/api' || path === '/api/')
    return send(res, 303, HTML, '', { Location: isApi ? '/api/runs' : '/runs' });
  const notYet = NOT_YET[path];
  if (notYet) return send(res, 200, HTML, notYetPage(path, notYet[0], notYet[1]));
  const sub = isApi ? path.slice(4) : path;
  for (const r of Object.values(ROUTES)) {
    const m = r.re.exec(sub);
    if (!m) continue;
    try {
      const data = await r.api(o.rt, m, url.searchParams);
      return isApi
        ? send(res, 200, JSON_TYPE, JSON.stringify(data))
        : send(res, 200, HTML, r.html(data as never));
    } catch (err) {
      const e = toRemoraError(err);
      if (e.status >= 500) o.log?.(`dashboard ${path}: ${e.code}: ${e.message}`);
      return isApi
        ? send(res, e.status, JSON_TYPE, JSON.stringify({ code: e.code, message: e.message }))
        : send(res, e.status, HTML, errorPage(e.status, e.code, e.message));
    }
  }
  return isApi
    ? send(res, 404, JSON_TYPE, JSON.stringify({ code: 'ObjectNotFound', message: `no such API ${path}` }))
    : send(res, 404, HTML, errorPage(404, 'ObjectNotFound', `no such page ${path}`));
}
