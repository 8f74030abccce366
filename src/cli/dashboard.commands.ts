/**
 * `remora dashboard [--port P] [--bind ADDR]`: the operator's read-only dashboard (src/web/).
 * The server lives in the web layer, which the CLI may not import: the entry point hands it in.
 */
import type { Command } from 'commander';
import type { RemoraConfig } from '../config/config.js';
import { action, configFrom, parsePort } from './cli-support.js';
import { untilStopSignal } from './pipeline.commands.js';
import { initLog, log } from './log.js';

export const DEFAULT_DASHBOARD_PORT = 7180;

export type DashboardRunner = (
  config: RemoraConfig,
  flags: { port: number; bind: string; log: (line: string) => void },
  onUp: (url: string) => void,
  stop: AbortSignal,
) => Promise<void>;

export function registerDashboardCommands(program: Command, run: DashboardRunner): void {
  program
    .command('dashboard')
    .description('serve the read-only operator dashboard: runs, run reports, storage nodes, rebalance, GC')
    .option('--port <port>', 'TCP port (0: any free port)', String(DEFAULT_DASHBOARD_PORT))
    .option('--bind <addr>', 'address to listen on', '127.0.0.1')
    .addHelpText(
      'after',
      `
Bound to a loopback address (the default) it answers anyone on this machine. Bound to any other
address (0.0.0.0 included) every page and every /api/ answer needs the operator token, the one in
<state-dir>/operator-token: sign in with it in the browser, or send "Authorization: Token <token>".
Without a token in the state directory such a bind is refused.

Every page's data is also JSON: /api/runs, /api/runs/<id>, /api/nodes, /api/rebalance, /api/gc.
Stops cleanly (exit code 0) on SIGTERM or SIGINT.`,
    )
    .action(
      action(async (o: { port: string; bind: string }, cmd: Command) => {
        const port = parsePort(o.port, '--port');
        initLog();
        const config = configFrom(cmd);
        await untilStopSignal((stop) =>
          run(config, { port, bind: o.bind, log }, (url) => process.stdout.write(`dashboard ${url}\n`), stop),
        );
      }),
    );
}
