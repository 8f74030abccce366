/**
 * Unpack: one shard's dump (or the original unpacked table objects) → per-table Parquet
 * chunks partitioned by objectId, and the source manifest that commits them.
 * See docs/dumps.md for the layout and the chunk schema.
 */
import { RemoraError } from '../core/errors.js';
import { readDump, type DumpSink } from './dump-reader.js';
import { PartitionedChunkWriter, type ChunkContext } from './chunk-writer.js';
import { deleteSupersededAttempt, openChunkRun } from './chunk-run.js';
import type { DuckOptions } from './duckdb.js';
import {
  CHUNK_SCHEMA,
  type SourceManifest,
  readSourceManifest,
  writeSourceManifest,
  type TableManifest,
} from './manifest.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import { EntryObjectWriter } from './entry-objects.js';
import { entryObjectPath } from './layout.js';
import { dayOf } from '../core/days.js';
import { autoPartitions } from './partition.js';
import { ReportBuilder } from '../core/run-report.js';
import { genericTableSpec, morayTableSpec } from './table-specs.js';
import { resolveDumpInput, type ResolvedInput } from './dump-input.js';

export interface UnpackOptions {
  /** Shard name; default: from the dump's metadata, header or path. */
  shard?: string;
  /** P, or 'auto' (default): autoPartitions of the expected rows. */
  partitions?: number | 'auto';
  /** Rows the input holds (the snapshot counted them); else estimated from its size. */
  expectedRows?: number;
  /** For 'auto' (default DEFAULT_ROWS_PER_PARTITION). */
  rowsPerPartition?: number;
  /** Rows per segment before a background Parquet conversion (default 500k). */
  segmentRows?: number;
  /** Also write the original `{"entry"}` table objects next to a plain dump. */
  entryObjects?: boolean;
  duck?: DuckOptions;
}

export interface UnpackResult {
  manifestPath: string;
  manifest: SourceManifest;
  entryObjects: string[];
}

/** Rows per segment: ~350 MB of intermediate CSV, converted while the next one fills. */
const DEFAULT_SEGMENT_ROWS = 500_000;

/**
 * Bytes of input per row, for sizing P when the row count was not recorded: a gzip -1 dump of
 * ~900-byte moray rows (measured: 73 MB for 1M rows). An uncompressed input is overestimated
 * ~9x, which only makes partitions smaller.
 */
const INPUT_BYTES_PER_ROW = 80;

function choosePartitions(opts: UnpackOptions, inputs: ResolvedInput[]): number {
  const p = opts.partitions ?? 'auto';
  if (p !== 'auto') return p;
  const rows = opts.expectedRows ?? inputs.reduce((a, i) => a + (i.bytes ?? 0), 0) / INPUT_BYTES_PER_ROW;
  return autoPartitions(rows, opts.rowsPerPartition);
}

/** Unpack the inputs of ONE shard at one instant (a plain dump, or one entry object per table). */
export async function unpackDump(
  store: ObjectStore,
  inputPaths: string[],
  opts: UnpackOptions = {},
): Promise<UnpackResult> {
  if (inputPaths.length === 0) throw new RemoraError('UsageError', 'unpack: no input');
  const report = new ReportBuilder();
  const inputs: ResolvedInput[] = [];
  for (const p of inputPaths) inputs.push(await resolveDumpInput(store, p, report));
  const source = opts.shard ?? inputs.find((i) => i.shard)?.shard;
  if (!source)
    throw new RemoraError(
      'UsageError',
      `cannot tell which shard ${inputPaths.join(', ')} is from: pass --shard`,
    );
  const at = inputs.find((i) => i.snapshotTime && !i.guessed) ?? inputs[0]!;
  const snapshotTime = at.snapshotTime!;
  const day = dayOf(snapshotTime);
  const { ctx, close } = await openChunkRun(store, report, {
    day,
    source,
    partitions: choosePartitions(opts, inputs),
    segmentRows: opts.segmentRows ?? DEFAULT_SEGMENT_ROWS,
    duck: opts.duck,
  });
  const runId = ctx.runId;
  const partitions = ctx.partitions;
  const router = new TableRouter(ctx);
  try {
    const entryWriter = opts.entryObjects
      ? new EntryObjectWriter(store, (t) => entryObjectPath(source, snapshotTime, t))
      : undefined;
    for (const input of inputs) {
      const info = await readDump(
        await input.open(),
        router.withEntries(input.format === 'plain' ? entryWriter : undefined),
        report,
        input.path,
      );
      report.count('inputs');
      if (info.tables.length === 0) report.event('empty_input', 'warning', input.path);
    }
    const tables = await router.finish();
    const entryObjects = entryWriter ? await entryWriter.finish() : [];
    const previous = await readSourceManifest(store, day, source);
    const manifest: SourceManifest = {
      version: 1,
      source,
      kind: 'shard',
      day,
      runId,
      snapshotTime: snapshotTime.toISOString(),
      ...(at.guessed ? { snapshotTimeGuessed: true } : {}),
      input: inputs.map((i) => ({ path: i.path, bytes: i.bytes, sha256: i.sha256 })),
      partitions,
      chunkSchema: CHUNK_SCHEMA,
      partitionFunction: 'fnv1a32(utf8(lower(objectId or _key))) mod partitions',
      tables,
      report: report.finish(),
      verdict: 'ok',
      createdAt: new Date().toISOString(),
    };
    manifest.verdict = manifest.report.verdict;
    const manifestPath = await writeSourceManifest(store, manifest);
    await deleteSupersededAttempt(store, day, source, runId, previous);
    return { manifestPath, manifest, entryObjects };
  } catch (err) {
    router.abort();
    throw err;
  } finally {
    await close();
  }
}

/** Sends each table's rows to its chunk writer (and, optionally, to the entry-object writer). */
class TableRouter implements DumpSink {
  private readonly writers = new Map<string, PartitionedChunkWriter>();
  private current: PartitionedChunkWriter | undefined;
  private entries: EntryObjectWriter | undefined;
  /** The dump columns each writer's raw path was built for. */
  private readonly rawColumns = new Map<string, string>();
  private rawOk = false;

  constructor(private readonly ctx: ChunkContext) {}

  withEntries(entries: EntryObjectWriter | undefined): this {
    this.entries = entries;
    return this;
  }

  startTable(table: string, columns: string[]): void {
    let w = this.writers.get(table);
    if (w && w.spec.csvColumns.length !== columns.length && w.spec.kind === 'generic')
      throw new RemoraError('MalformedInput', `table ${table} appears twice with different columns`);
    if (!w) {
      const moray = columns.includes('_key') && columns.includes('_value');
      if (!moray)
        this.ctx.report.event(
          'unknown_layout',
          'warning',
          `${table}: columns ${columns.join(',')} (no _key/_value): kept verbatim as text`,
        );
      w = new PartitionedChunkWriter(
        moray ? morayTableSpec(table, columns) : genericTableSpec(table, columns),
        this.ctx,
      );
      this.writers.set(table, w);
    }
    this.current = w;
    // Raw rows are projected by position: only for the column layout the writer was made for.
    const layout = columns.join('\t');
    if (!this.rawColumns.has(table)) this.rawColumns.set(table, layout);
    this.rawOk = this.rawColumns.get(table) === layout;
    this.entries?.startTable(table, columns);
  }

  row(values: (string | null)[]): void {
    this.current!.add(values);
    this.entries?.row(values);
  }

  rawRow(buf: Buffer, start: number, end: number): boolean {
    // The entry-object writer needs decoded values.
    if (this.entries || !this.current || !this.rawOk) return false;
    return this.current.addRaw(buf, start, end);
  }

  endTable(): void {
    this.current = undefined;
    this.entries?.endTable();
  }

  async drain(): Promise<void> {
    await this.current?.drain();
    await this.entries?.drain();
  }

  async finish(): Promise<Record<string, TableManifest>> {
    const out: Record<string, TableManifest> = {};
    for (const [table, w] of this.writers) {
      const chunks = await w.finish();
      out[table] = { kind: w.spec.kind, rows: w.rows, chunks };
      this.ctx.report.count(`rows.${table}`, w.rows);
    }
    return out;
  }

  abort(): void {
    for (const w of this.writers.values()) w.abort();
  }
}
