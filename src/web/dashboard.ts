/**
 * Starting the dashboard: on its own (`remora dashboard`: its own metadata connection and a
 * pipeline runtime without a worker), or beside a deployment (`remora up`: the deployment's tier).
 */
import type { RemoraConfig } from '../config/config.js';
import { clockFromEnv } from '../core/clock.js';
import {
  openObjectStore,
  readInternalToken,
  readOperatorToken,
  withMetadata,
  withObjectStore,
} from '../deployment/context.js';
import type { Deployment, DeploymentAddon } from '../deployment/deployment.js';
import { withDailyPipeline } from '../jobs/catalog.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import { DashboardServer } from './server.js';
import { isLoopbackBind } from './auth.js';
import { RemoraError } from '../core/errors.js';

export interface DashboardFlags {
  port: number;
  bind: string;
  log: (line: string) => void;
}

/** The operator token, required before anything is opened when the bind is not loopback. */
function tokenFor(config: RemoraConfig, bind: string): string | undefined {
  const token = readOperatorToken(config);
  if (!isLoopbackBind(bind) && token === undefined)
    throw new RemoraError(
      'UsageError',
      `--bind ${bind} is not a loopback address, so the dashboard needs the operator token, and there is none ` +
        `in ${config.stateDir} (no running deployment, no operator-token file): run it with the deployment's ` +
        `--state-dir, or bind to 127.0.0.1`,
    );
  return token;
}

/**
 * Serve the dashboard on `tier` until `stop`; `onUp` gets its URL once it listens. The pipeline
 * runtime is opened without a worker: the dashboard reads, it never runs a task.
 */
async function serveOn(
  config: RemoraConfig,
  tier: MetadataTier,
  store: ObjectStore,
  f: DashboardFlags & { internalToken?: string; operatorToken?: string },
  onUp: (url: string) => void,
  stop: Promise<void>,
): Promise<void> {
  await withDailyPipeline(
    config,
    tier,
    {
      log: f.log,
      store,
      clock: clockFromEnv(process.env),
      worker: false,
      ...(f.internalToken ? { internalToken: f.internalToken } : {}),
    },
    async (rt) => {
      const server = await DashboardServer.start({
        rt,
        bind: f.bind,
        port: f.port,
        log: f.log,
        ...(f.operatorToken ? { operatorToken: f.operatorToken } : {}),
      });
      try {
        onUp(server.url);
        await stop;
      } finally {
        await server.close();
      }
    },
  );
}

/** `remora dashboard`: serve until `stop` aborts. */
export async function runDashboard(
  config: RemoraConfig,
  f: DashboardFlags,
  onUp: (url: string) => void,
  stop: AbortSignal,
): Promise<void> {
  const operatorToken = tokenFor(config, f.bind);
  const internalToken = readInternalToken(config);
  const stopped = new Promise<void>((resolve) =>
    stop.aborted ? resolve() : stop.addEventListener('abort', () => resolve()),
  );
  await withObjectStore(config, (store) =>
    withMetadata(config, (tier) =>
      serveOn(
        config,
        tier,
        store,
        {
          ...f,
          ...(operatorToken ? { operatorToken } : {}),
          ...(internalToken ? { internalToken } : {}),
        },
        onUp,
        stopped,
      ),
    ),
  );
}

/** The dashboard as a service of `remora up`, on the deployment's own tier. */
export function dashboardAddon(f: DashboardFlags): DeploymentAddon {
  return {
    name: 'dashboard',
    start: (d: Deployment) =>
      new Promise((resolve, reject) => {
        let release: () => void = () => {};
        const stopped = new Promise<void>((r) => (release = r));
        const { store, close } = openObjectStore(d.config, { url: d.frontdoorUrl, token: d.operatorToken });
        const done = serveOn(
          d.config,
          d.tier,
          store,
          { ...f, operatorToken: d.operatorToken, internalToken: d.internalToken },
          (url) =>
            resolve({
              url,
              close: async () => {
                release();
                await done.catch(() => undefined);
              },
            }),
          stopped,
        ).finally(close);
        done.catch(reject);
      }),
  };
}
