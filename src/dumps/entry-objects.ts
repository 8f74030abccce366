/**
 * Optional output for operators whose tooling still reads mola's unpacked table objects
 * (MANTA-REFERENCE §2.2): per table, gzip of a `{"name","keys"}` line then one
 * `{"entry":[…]}` line per row, values as strings, SQL NULL as `\N`, stored next to the dump
 * as `<table>-YYYY-MM-DD-HH-MM-SS.gz`.
 *
 * Difference from sqltojson (named on purpose): values are fully decoded from COPY text, not
 * only `\\` → `\` (MANATEE-120), so a key with a real tab reads back as a tab.
 */
import { once } from 'node:events';
import zlib from 'node:zlib';
import { ZLIB_CHUNK_BYTES } from './parallel-gzip.js';
import type { ObjectStore, PutResult } from '../objectstore/object-store.js';

export class EntryObjectWriter {
  private gzip: zlib.Gzip | undefined;
  private readonly puts: Promise<PutResult>[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly pathOf: (table: string) => string,
  ) {}

  startTable(table: string, columns: string[]): void {
    this.endTable();
    const gzip = zlib.createGzip({ level: 1, chunkSize: ZLIB_CHUNK_BYTES });
    const put = this.store.put(this.pathOf(table), gzip);
    put.catch(() => {});
    this.puts.push(put);
    this.gzip = gzip;
    this.write(JSON.stringify({ name: table, keys: columns }) + '\n');
  }

  row(values: (string | null)[]): void {
    this.write(JSON.stringify({ entry: values.map((v) => (v === null ? '\\N' : v)) }) + '\n');
  }

  endTable(): void {
    this.gzip?.end();
    this.gzip = undefined;
  }

  /**
   * Wait while the current table's gzip is over its buffer. Asked of the stream itself
   * (`writableNeedDrain`), not remembered from a write: a 'drain' that already happened, or a
   * flag left from the previous table's stream, made this wait for an event that never came.
   */
  async drain(): Promise<void> {
    if (this.gzip?.writableNeedDrain) await once(this.gzip, 'drain');
  }

  async finish(): Promise<string[]> {
    this.endTable();
    return (await Promise.all(this.puts)).map((p) => p.path);
  }

  private write(s: string): void {
    this.gzip?.write(s);
  }
}
