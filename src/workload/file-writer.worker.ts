/**
 * Worker thread of the bulk loader: writes object files so that file creation (kernel
 * time) overlaps record generation and COPY on the main thread. Content depends only on
 * the size (bulkContent), which is what lets the main thread cache each size's MD5.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import { bulkContent } from './bulk-content.js';

const madeDirs = new Set<string>();
parentPort!.on('message', (batch: { files: [string, number][] } | 'close') => {
  if (batch === 'close') {
    parentPort!.close();
    return;
  }
  for (const [file, size] of batch.files) {
    const dir = path.dirname(file);
    if (!madeDirs.has(dir)) {
      fs.mkdirSync(dir, { recursive: true });
      madeDirs.add(dir);
    }
    fs.writeFileSync(file, bulkContent(size));
  }
  parentPort!.postMessage(batch.files.length);
});
