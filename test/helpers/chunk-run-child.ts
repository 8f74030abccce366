/**
 * A chunk run that never finishes, for the scratch-cleanup test: `node --import tsx
 * chunk-run-child.ts <store root>` opens a run (its scratch directory), prints it, and waits to
 * be killed — as an unpack killed mid-run leaves its directory behind.
 */
import { LocalObjectStore } from '../../src/objectstore/object-store.js';
import { openChunkRun } from '../../src/dumps/chunk-run.js';
import { ReportBuilder } from '../../src/core/run-report.js';

const store = new LocalObjectStore(process.argv[2]!);
const { ctx } = await openChunkRun(store, new ReportBuilder(), {
  day: '2024-03-05',
  source: 'child.moray',
  partitions: 1,
  segmentRows: 1000,
});
process.stdout.write(`scratch ${ctx.workDir}\n`);
setInterval(() => {}, 60_000);
