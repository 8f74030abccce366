/**
 * A storage node in its own process: for tests that kill one mid-request (SIGKILL: no cleanup
 * runs), and for benches that keep the nodes' work off the measured process (as on a deployment,
 * where nodes are other machines; SIGTERM closes it). Argv: root, the delay in ms added before
 * each rename (0: none), so a test can land its kill in the middle of a batch, then optionally
 * the node's id and datacenter (default 1.stor.dc1.remora.local, dc1). The internal token is
 * REMORA_CHILD_INTERNAL_TOKEN (default the tests' TEST_INTERNAL_TOKEN). Prints `{"url": …}` on
 * one line once listening.
 */
import fs from 'node:fs';
import { StorageNode } from '../../src/storage/storage-node.js';
import { durableFileOps } from '../../src/storage/storage-handlers.js';
import { TEST_INTERNAL_TOKEN } from './internal-token.js';

const [root, delay, id, datacenter] = process.argv.slice(2);
const renameDelayMs = Number(delay ?? 0);
const node = await StorageNode.start({
  root: root!,
  id: id ?? '1.stor.dc1.remora.local',
  datacenter: datacenter ?? 'dc1',
  internalToken: process.env.REMORA_CHILD_INTERNAL_TOKEN ?? TEST_INTERNAL_TOKEN,
  fileOps: {
    fsync: (p, flags) => durableFileOps.fsync(p, flags),
    rename: async (from, to) => {
      if (renameDelayMs > 0) await new Promise((r) => setTimeout(r, renameDelayMs));
      await fs.promises.rename(from, to);
    },
  },
});
process.stdout.write(`${JSON.stringify({ url: node.url })}\n`);
process.once('SIGTERM', () => void node.close().then(() => process.exit(0)));
