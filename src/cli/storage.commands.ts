/**
 * `remora storage …`: manta-mako-adm (MANTA-REFERENCE §4.1) for Remora's storage nodes.
 * Thin: every decision is in src/storage/storage-admin.ts.
 */
import type { Command } from 'commander';
import { systemClock } from '../core/clock.js';
import type { RemoraConfig } from '../config/config.js';
import { readDeploymentState, withMetadata } from '../deployment/context.js';
import { controlStorageNode, type NodeAction } from '../deployment/control.js';
import {
  disableWrites,
  enableWrites,
  type StorageNodeStatus,
  storageStatus,
  waitForFreshRecord,
} from '../storage/storage-admin.js';
import { action, configFrom, printTable, usageError } from './cli-support.js';

/** manta-mako-adm enable-writes polled up to 30 s for a fresh record. */
const ENABLE_WAIT_MS = 30_000;

function nodeById(config: RemoraConfig, id: string): { id: string; datacenter: string } {
  const node = config.storage.nodes.find((n) => n.id === id);
  if (!node) {
    const known = config.storage.nodes.map((n) => n.id).join(', ') || '(none configured)';
    throw usageError(`unknown storage node "${id}"; known ids: ${known}`);
  }
  return node;
}

export function registerStorageCommands(program: Command): void {
  const storage = program
    .command('storage')
    .description(
      'Storage nodes (makos): show capacity and heartbeat, disable or enable writes, stop or start one node of a running deployment',
    );

  const stopStart = (act: NodeAction, description: string) =>
    storage
      .command(act)
      .description(description)
      .argument('<id>', 'manta_storage_id, e.g. 1.stor.dc1.remora.local')
      .action(
        action(async (id: string, _opts: unknown, cmd: Command) => {
          const config = configFrom(cmd);
          nodeById(config, id);
          const s = await controlStorageNode(config, id, act);
          process.stdout.write(
            s.state === 'running'
              ? `storage node "${id}": running at ${s.url ?? '?'}, heartbeat ${s.heartbeat ? 'beating' : 'paused'}\n`
              : `storage node "${id}": stopped (its address ${s.url ?? '?'} refuses connections; files kept)\n`,
          );
        }),
      );
  stopStart(
    'stop',
    'Stop one storage node of the deployment running on this state directory (`remora up`), as if it ' +
      'died: its HTTP server and its heartbeat stop, its files stay. Front doors read other copies and, ' +
      'once its record is older than the picker lag, place no copy on it. Asks the `up` process through ' +
      'its control endpoint on 127.0.0.1 (controlUrl in deployment.json), with the operator token.',
  );
  stopStart(
    'start',
    'Start a storage node stopped with `remora storage stop` again: same port, same root, so its files ' +
      'and address survive; its heartbeat beats at once.',
  );

  storage
    .command('disable-writes')
    .description(
      'Stop new objects from being placed on a node (manta-mako-adm disable-writes): persists the ' +
        'setting and makes its manta_storage record stale now; the node keeps serving reads, ' +
        'rebalance and GC. Survives restarts, unlike the original.',
    )
    .argument('<id>', 'manta_storage_id, e.g. 1.stor.dc1.remora.local')
    .option('--reason <text>', 'why, stored with the setting')
    .action(
      action(async (id: string, opts: { reason?: string }, cmd: Command) => {
        const config = configFrom(cmd);
        const node = nodeById(config, id);
        const hadRecord = await withMetadata(config, (tier) => disableWrites(tier, node.id, opts.reason));
        process.stdout.write(
          hadRecord
            ? `storage node "${id}": writes disabled; wrote a stale manta_storage record\n`
            : `storage node "${id}": writes disabled; it has no manta_storage record yet (its first heartbeat will be stale)\n`,
        );
        process.stdout.write(
          `front doors stop placing objects on it at their next storage poll (at most ${config.picker.lagMs / 1000} s)\n`,
        );
      }),
    );

  storage
    .command('enable-writes')
    .description(
      'Allow new objects on a node again (manta-mako-adm enable-writes): persists the setting and, ' +
        'when a deployment is running, waits up to 30 s for its heartbeat to write a fresh record.',
    )
    .argument('<id>', 'manta_storage_id, e.g. 1.stor.dc1.remora.local')
    .option('--reason <text>', 'why, stored with the setting')
    .option('--no-wait', 'do not wait for a fresh heartbeat record')
    .action(
      action(async (id: string, opts: { reason?: string; wait: boolean }, cmd: Command) => {
        const config = configFrom(cmd);
        const node = nodeById(config, id);
        const running = readDeploymentState(config) !== undefined;
        const fresh = await withMetadata(config, async (tier) => {
          await enableWrites(tier, node.id, opts.reason);
          if (!opts.wait || !running) return undefined;
          return waitForFreshRecord(tier, node.id, systemClock, config.picker.lagMs, ENABLE_WAIT_MS);
        });
        process.stdout.write(`storage node "${id}": writes enabled\n`);
        if (fresh === true) process.stdout.write('its heartbeat wrote a fresh manta_storage record\n');
        else if (fresh === false)
          process.stdout.write(
            `warning: no fresh heartbeat record after ${ENABLE_WAIT_MS / 1000} s: is the node up?\n`,
          );
        else process.stdout.write("the record becomes fresh at the node's next heartbeat\n");
      }),
    );

  storage
    .command('show')
    .description(
      'Show each storage node (or one): writes enabled/disabled, what the picker sees of its ' +
        'manta_storage record (fresh/stale/disabled/missing), heartbeat age, availableMB, percentUsed',
    )
    .argument('[id]', 'only this manta_storage_id')
    .option('--json', 'print JSON')
    .action(
      action(async (id: string | undefined, _opts: unknown, cmd: Command) => {
        const config = configFrom(cmd);
        const nodes = id === undefined ? config.storage.nodes : [nodeById(config, id)];
        const status = await withMetadata(config, (tier) =>
          storageStatus(tier, nodes, systemClock, config.picker.lagMs),
        );
        if (cmd.optsWithGlobals<{ json?: boolean }>().json) {
          process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
          return;
        }
        printTable(status.map(row), [
          'id',
          'dc',
          'writes',
          'record',
          'heartbeat',
          'availableMB',
          'percentUsed',
        ]);
        for (const s of status) if (s.warning) process.stdout.write(`warning: ${s.id}: ${s.warning}\n`);
      }),
    );
}

function row(s: StorageNodeStatus): Record<string, unknown> {
  return {
    id: s.id,
    dc: s.datacenter,
    writes: s.writesEnabled ? 'enabled' : 'disabled',
    record: s.record,
    heartbeat: s.heartbeatAgeMs === undefined ? '-' : `${(s.heartbeatAgeMs / 1000).toFixed(1)} s ago`,
    availableMB: s.availableMB ?? '-',
    percentUsed: s.percentUsed === undefined ? '-' : `${s.percentUsed}%`,
  };
}
