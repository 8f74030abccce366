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
  private waiters: { below: number; resolve: () => void }[] = [];
  private failure: Error | undefined;

  constructor() {
    this.worker.on('message', (n: number) => {
      this.outstanding -= n;
      this.wake();
    });
    this.worker.on('error', (e) => {
      this.failure = e;
      this.wake();
    });
  }

  send(files: [string, number][]): void {
    if (this.failure) throw this.failure;
    this.outstanding += files.length;
    this.worker.postMessage({ files });
  }

  /**
   * Backpressure: resolve once at most `limit` files are queued. When the disk is slower than
   * record generation, batches would otherwise pile up in the worker's queue without bound.
   */
  async waitBelow(limit: number): Promise<void> {
    if (this.outstanding > limit && !this.failure) {
      await new Promise<void>((resolve) => this.waiters.push({ below: limit, resolve }));
    }
    if (this.failure) throw this.failure;
  }

  private wake(): void {
    this.waiters = this.waiters.filter((w) => {
      const ready = this.failure !== undefined || this.outstanding <= w.below;
      if (ready) w.resolve();
      return !ready;
    });
  }

  async close(): Promise<void> {
    await this.waitBelow(0);
    this.worker.postMessage('close');
    await this.worker.terminate();
  }
}
