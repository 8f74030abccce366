/**
 * A storage node in its own process, for benches that keep the nodes' work off the measured
 * process (as on a real deployment, where nodes are other machines). Argv: root, id, datacenter;
 * the internal token comes in REMORA_BENCH_INTERNAL_TOKEN. Prints `{"url": …}` once listening;
 * ends on SIGTERM.
 */
import { StorageNode } from '../src/storage/storage-node.js';

const [root, id, datacenter] = process.argv.slice(2);
const node = await StorageNode.start({
  root: root!,
  id: id!,
  datacenter: datacenter!,
  internalToken: process.env.REMORA_BENCH_INTERNAL_TOKEN!,
});
process.stdout.write(`${JSON.stringify({ url: node.url })}\n`);
process.once('SIGTERM', () => void node.close().then(() => process.exit(0)));
