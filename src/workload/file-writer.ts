/** The bulk loader's side of the file-writing worker thread (file-writer.worker.ts). */
import { Worker } from 'node:worker_threads';

export class FileWriter {
  // Under tsx the worker needs the TypeScript loader too; compiled, it is plain JS.
  private readonly worker = import.meta.url.endsWith('.ts')
    ? new Worker(
        `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(new URL('./file-writer.worker.ts', import.meta.url).href)}); })`,
        { eval: true },
      )
    : new Worker(new URL('./file-writer.worker.js', import.meta.url));
  private outstanding = 0;
  private waiters: (() => void)[] = [];
  private failure: Error | undefined;

  constructor() {
    this.worker.on('message', (n: number) => {
      this.outstanding -= n;
      if (this.outstanding === 0) this.waiters.splice(0).forEach((w) => w());
    });
    this.worker.on('error', (e) => {
      this.failure = e;
      this.waiters.splice(0).forEach((w) => w());
    });
  }

  send(files: [string, number][]): void {
    if (this.failure) throw this.failure;
    this.outstanding += files.length;
    this.worker.postMessage({ files });
  }

  async close(): Promise<void> {
    if (this.outstanding > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failure) throw this.failure;
    this.worker.postMessage('close');
    await this.worker.terminate();
  }
}
