/**
 * A storage node in its own process, for tests that kill one mid-request (SIGKILL: no cleanup
 * runs). Argv: root, then the delay in ms added before each rename (0: none), so a test can
 * land its kill in the middle of a batch. Prints `{"url": …}` on one line once listening.
 */
import fs from 'node:fs';
import { StorageNode } from '../../src/storage/storage-node.js';
import { durableFileOps } from '../../src/storage/storage-handlers.js';
import { TEST_INTERNAL_TOKEN } from './internal-token.js';

const [root, delay] = process.argv.slice(2);
const renameDelayMs = Number(delay ?? 0);
const node = await StorageNode.start({
  root: root!,
  id: '1.stor.dc1.remora.local',
  datacenter: 'dc1',
  internalToken: TEST_INTERNAL_TOKEN,
  fileOps: {
    fsync: (p, flags) => durableFileOps.fsync(p, flags),
    rename: async (from, to) => {
      if (renameDelayMs > 0) await new Promise((r) => setTimeout(r, renameDelayMs));
      await fs.promises.rename(from, to);
    },
  },
});
process.stdout.write(`${JSON.stringify({ url: node.url })}\n`);
