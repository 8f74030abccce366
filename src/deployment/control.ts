/**
 * The deployment's control endpoint: how `remora storage stop|start <id>` reaches the storage
 * nodes inside a running `remora up` process (they all live in that one process).
 *
 * A small HTTP server on 127.0.0.1 (a free port, written to `deployment.json` as `controlUrl`),
 * for the operator only: every request carries `Authorization: Token <operator token>` (the
 * token in `<state-dir>/operator-token`), compared in constant time; anything else is 401.
 *
 *   GET  /storage              every configured node: {id, datacenter, url, state, heartbeat}
 *   POST /storage/<id>/stop    stop the node's HTTP server and heartbeat, as if it died
 *   POST /storage/<id>/start   start it again on the same port and root (its files and address survive)
 *
 * Answers are JSON: the node's status, or `{code, message}` with the error catalog's status.
 * Why HTTP and not a signal plus a request file: the answer (done, or why not) comes back on the
 * same connection, two operators cannot race on one file, and nothing is left behind by a crash.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { RemoraConfig } from '../config/config.js';
import { ERROR_CATALOG, type ErrorCode, RemoraError, toRemoraError } from '../core/errors.js';
import { readDeploymentState } from './context.js';
import { closerOf, listenOn } from '../storage/listen.js';

export type NodeRunState = 'running' | 'stopped';

export interface NodeControlStatus {
  id: string;
  datacenter: string;
  /** The node's address; it keeps it while stopped (requests to it are refused). */
  url: string | undefined;
  state: NodeRunState;
  /** Whether its capacity heartbeat is beating (false while stopped or paused). */
  heartbeat: boolean;
}

/** What the endpoint drives: the deployment's own methods. */
export interface NodeController {
  stopNode(id: string): Promise<void>;
  startNode(id: string): Promise<unknown>;
  nodeStatus(): NodeControlStatus[];
}

export type NodeAction = 'stop' | 'start';

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s, 'utf8').digest();
const ROUTE_RE = /^\/storage\/([^/?#]+)\/(stop|start)$/;

export class ControlServer {
  private constructor(
    private readonly closer: () => Promise<void>,
    readonly url: string,
  ) {}

  static async start(controller: NodeController, operatorToken: string): Promise<ControlServer> {
    const expected = digest(operatorToken);
    const server = http.createServer((req, res) => {
      void handle(controller, expected, req, res);
    });
    const closer = closerOf(server);
    const port = await listenOn(server, 0, '127.0.0.1', 'control endpoint');
    return new ControlServer(closer, `http://127.0.0.1:${port}`);
  }

  close(): Promise<void> {
    return this.closer();
  }
}

async function handle(
  controller: NodeController,
  expected: Buffer,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    const m = /^Token +(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!m || !crypto.timingSafeEqual(digest(m[1]!), expected))
      throw new RemoraError('Unauthorized', 'the control endpoint needs the operator token');
    const target = req.url ?? '';
    if (target === '/storage') {
      if (req.method !== 'GET') throw notAllowed('GET');
      return send(res, 200, controller.nodeStatus());
    }
    const route = ROUTE_RE.exec(target);
    if (!route) throw new RemoraError('ObjectNotFound', `no such control resource ${target}`);
    if (req.method !== 'POST') throw notAllowed('POST');
    const id = decodeURIComponent(route[1]!);
    if (!controller.nodeStatus().some((n) => n.id === id))
      throw new RemoraError('UsageError', `unknown storage node "${id}"`);
    if (route[2] === 'stop') await controller.stopNode(id);
    else await controller.startNode(id);
    send(
      res,
      200,
      controller.nodeStatus().find((n) => n.id === id),
    );
  } catch (err) {
    const e = toRemoraError(err);
    send(res, e.status, { code: e.code, message: e.message });
  }
}

function notAllowed(allow: string): RemoraError {
  return new RemoraError('MethodNotAllowed', `only ${allow} here`, { details: { allow } });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The operator's side: ask the running deployment (found through `<state-dir>/deployment.json`)
 * to stop or start one storage node; resolves with the node's status afterwards.
 */
export async function controlStorageNode(
  config: RemoraConfig,
  id: string,
  act: NodeAction,
): Promise<NodeControlStatus> {
  return (await callControl(
    config,
    'POST',
    `/storage/${encodeURIComponent(id)}/${act}`,
  )) as NodeControlStatus;
}

/** Every node's run state, as the running deployment sees it. */
export async function storageNodeStates(config: RemoraConfig): Promise<NodeControlStatus[]> {
  return (await callControl(config, 'GET', '/storage')) as NodeControlStatus[];
}

async function callControl(config: RemoraConfig, method: string, path: string): Promise<unknown> {
  const s = readDeploymentState(config);
  if (!s)
    throw new RemoraError(
      'StaleState',
      `no deployment is running on ${config.stateDir}: start one with \`remora up --detach\``,
    );
  if (!s.controlUrl)
    throw new RemoraError(
      'StaleState',
      `the deployment running on ${config.stateDir} (pid ${s.pid}) has no control endpoint: restart it with this version`,
    );
  const res = await fetch(new URL(path, s.controlUrl), {
    method,
    headers: { authorization: `Token ${s.operatorToken}` },
  }).catch((err: unknown) => {
    throw new RemoraError('StaleState', `the deployment's control endpoint ${s.controlUrl} did not answer`, {
      cause: err,
    });
  });
  const body = (await res.json().catch(() => undefined)) as { code?: string; message?: string } | undefined;
  if (res.ok) return body;
  const code: ErrorCode = body?.code && body.code in ERROR_CATALOG ? (body.code as ErrorCode) : 'Internal';
  throw new RemoraError(code, body?.message ?? `control endpoint answered ${res.status}`);
}
