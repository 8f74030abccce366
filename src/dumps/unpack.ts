/**
 * Unpack: one shard's dump (or the original unpacked table objects) → per-table Parquet
 * chunks partitioned by objectId, and the source manifest that commits them.
 * See docs/dumps.md for the layout, the chunk schema and what bad input does.
 *
 * A dump that is empty or whose structure cannot be read, or whose rows are more than the
 * thresholds' share malformed, is `invalid`: nothing is committed — the previous manifest of that
 * shard and day and its chunks stay as they are, this attempt's chunks are deleted — and
 * unpackDump throws MalformedInput carrying the report (refusedUnpackReport).
 *
 * Commit: by default (the CLI) the manifest is written to the source's manifest path and the
 * chunks of the unpack it replaced are deleted, at once. With `commit: false` (the pipeline) the
 * manifest is only staged beside this run's chunks, and the unpack job's commit step switches it
 * (src/dumps/source-commit.ts): a pipeline attempt may be declared lost and keep running, so it
 * must not write the shared manifest nor delete another run's chunks (docs/pipeline.md "A lost
 * attempt that keeps running"). The signal checks below only save work; they are no fence.
 */
import { RemoraError, isRemoraError } from '../core/errors.js';
import { readDump, type DumpSink } from './dump-reader.js';
import { PartitionedChunkWriter, type ChunkContext, type ChunkInfo } from './chunk-writer.js';
import { deleteSupersededAttempt, openChunkRun } from './chunk-run.js';
import { sqlString, type DuckOptions } from './duckdb.js';
import {
  CHUNK_SCHEMA,
  type SourceManifest,
  readSourceManifest,
  writeSourceManifest,
  type TableManifest,
} from './manifest.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import { EntryObjectWriter } from './entry-objects.js';
import { entryObjectPath, sourceManifestPath, unpackedDayDir } from './layout.js';
import { stageSourceManifest } from './source-commit.js';
import { dayOf } from '../core/days.js';
import { autoPartitions } from './partition.js';
import { ReportBuilder, exampleText, type ReportThresholds, type RunReport } from '../core/run-report.js';
import { MORAY_SYSTEM_TABLES, genericTableSpec, morayTableSpec } from './table-specs.js';
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
  /** The malformed share that makes the result invalid (default DEFAULT_THRESHOLDS). */
  thresholds?: ReportThresholds;
  duck?: DuckOptions;
  /**
   * The pipeline attempt's signal (timed out, worker stopping, declared lost): checked between
   * inputs and right before the commit; an aborted unpack discards what it wrote, as a failed one
   * does. That saves work only — it is no fence: the process can stall between the check and the
   * write, which is why the pipeline stages (`commit: false`) and commits in the run's commit.
   */
  signal?: AbortSignal;
  /**
   * false: stage the manifest beside this run's chunks (stagedManifestPath) instead of committing
   * it; the caller commits it with commitStagedManifest (src/dumps/source-commit.ts). Default true.
   * Not with `entryObjects` (they are put in place with the commit).
   */
  commit?: boolean;
}

export interface UnpackResult {
  /** The source's manifest path (where a staged manifest goes when it is committed). */
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

/** The report of an unpack that was refused as invalid (the MalformedInput unpackDump threw), if it is one. */
export function refusedUnpackReport(err: unknown): RunReport | undefined {
  if (!isRemoraError(err, 'MalformedInput')) return undefined;
  const r = err.details.report as RunReport | undefined;
  return r?.verdict === 'invalid' ? r : undefined;
}

/** Unpack the inputs of ONE shard at one instant (a plain dump, or one entry object per table). */
export async function unpackDump(
  store: ObjectStore,
  inputPaths: string[],
  opts: UnpackOptions = {},
): Promise<UnpackResult> {
  if (inputPaths.length === 0) throw new RemoraError('UsageError', 'unpack: no input');
  if (opts.commit === false && opts.entryObjects)
    throw new RemoraError(
      'UsageError',
      'unpack: entry objects are put in place when the unpack commits; a staged unpack (commit: false) cannot write them',
    );
  const report = new ReportBuilder(opts.thresholds ? { thresholds: opts.thresholds } : {});
  const inputs: ResolvedInput[] = [];
  for (const p of inputPaths) inputs.push(await resolveDumpInput(store, p, report));
  const source = opts.shard ?? inputs.find((i) => i.shard)?.shard;
  if (!source) {
    const bad = inputs.find((i) => i.unreadable);
    if (bad)
      throw new RemoraError(
        'MalformedInput',
        `${bad.path}: not readable (${bad.unreadable}), and nothing says which shard it is from: nothing unpacked`,
      );
    throw new RemoraError(
      'UsageError',
      `cannot tell which shard ${inputPaths.join(', ')} is from: pass --shard`,
    );
  }
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
  // Entry objects are written under this attempt's prefix and copied into place on commit only.
  const staged = new Map<string, string>();
  const entryWriter = opts.entryObjects
    ? new EntryObjectWriter(store, (t) => {
        const p = `${unpackedDayDir(day)}/${source}/${runId}/entry-objects/${t}.gz`;
        staged.set(entryObjectPath(source, snapshotTime, t), p);
        return p;
      })
    : undefined;
  let committed = false;
  try {
    let readable = true;
    for (const input of inputs) {
      readable = await readInput(input, router, entryWriter, report);
      opts.signal?.throwIfAborted();
      if (!readable) break;
    }
    let tables: Record<string, TableManifest> = {};
    if (readable) {
      tables = await router.finish();
      const checked = report.phase('duplicateKeys');
      await reportDuplicateKeys(ctx, router);
      checked();
    }
    const built = report.finish();
    opts.signal?.throwIfAborted();
    const previous = await readSourceManifest(store, day, source);
    if (built.verdict === 'invalid') throw refusal(built, inputs, source, day, previous);
    const entryObjects = entryWriter ? await commitEntryObjects(store, entryWriter, staged) : [];
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
      report: built,
      verdict: built.verdict,
      createdAt: new Date().toISOString(),
    };
    opts.signal?.throwIfAborted();
    if (opts.commit === false) {
      await stageSourceManifest(store, manifest);
      committed = true; // staged: the chunks stay for the commit (or discardStagedManifest)
      return { manifestPath: sourceManifestPath(day, source), manifest, entryObjects };
    }
    const manifestPath = await writeSourceManifest(store, manifest);
    committed = true;
    await deleteSupersededAttempt(store, day, source, runId, previous);
    return { manifestPath, manifest, entryObjects };
  } finally {
    if (!committed) {
      // Refused or failed: nothing of this attempt may stay (no manifest names it).
      const chunks = await router.discard();
      await entryWriter?.finish().catch(() => []);
      for (const p of [...chunks.map((c) => c.path), ...staged.values()])
        await store.delete(p).catch(() => {});
    }
    await close();
  }
}

/**
 * Read one input into the router. A structure that cannot be read (MalformedInput from the
 * reader, with its kind) and an input without any table are fatal events; false: stop reading.
 */
async function readInput(
  input: ResolvedInput,
  router: TableRouter,
  entryWriter: EntryObjectWriter | undefined,
  report: ReportBuilder,
): Promise<boolean> {
  try {
    const info = await readDump(
      await input.open(),
      router.withEntries(input.format === 'plain' ? entryWriter : undefined),
      report,
      input.path,
    );
    report.count('inputs');
    if (info.tables.length > 0) return true;
    const what =
      info.lines === 0 ? '0 bytes' : input.format === 'plain' ? 'no COPY block' : 'no {"name","keys"} header';
    report.event('empty_input', 'fatal', `${input.path}: ${what}: no table to unpack`);
  } catch (err) {
    if (!isRemoraError(err, 'MalformedInput')) throw err;
    const kind = err.details.kind;
    report.event(typeof kind === 'string' ? kind : 'unreadable_input', 'fatal', err.message);
  }
  return false;
}

/** The MalformedInput an invalid unpack is refused with: what was wrong, and what was kept. */
function refusal(
  report: RunReport,
  inputs: ResolvedInput[],
  source: string,
  day: string,
  previous: SourceManifest | undefined,
): RemoraError {
  const fatal = Object.values(report.events).find((e) => e.severity === 'fatal');
  const why = fatal?.examples[0] !== undefined ? `: ${exampleText(fatal.examples[0])}` : '';
  const kept = previous
    ? `the unpack committed by run ${previous.runId} stays`
    : 'there is no earlier unpack of it';
  return new RemoraError(
    'MalformedInput',
    `${inputs.map((i) => i.path).join(', ')} is invalid (${report.verdictReasons.join('; ')})${why}. ` +
      `Nothing committed for ${source} on ${day}: ${kept}`,
    { details: { source, day, kept: previous?.runId ?? null, report } },
  );
}

/** Copy the staged entry objects into place (after the result was judged usable). */
async function commitEntryObjects(
  store: ObjectStore,
  writer: EntryObjectWriter,
  staged: Map<string, string>,
): Promise<string[]> {
  await writer.finish();
  const out: string[] = [];
  for (const [final, stage] of staged) {
    await store.put(final, await store.get(stage));
    await store.delete(stage);
    out.push(final);
  }
  return out;
}

/**
 * Duplicate primary keys (`_key`) within one moray table of the dump: each extra row is
 * malformed, reported with its key; the rows are kept as they are. Moray's `_key` is the
 * table's primary key, so a dump holding one twice is damaged (or two dumps run together).
 * The check is DuckDB's: the keys of every chunk, grouped by hash first (memory: one hash table
 * of 64-bit hashes, spilled to disk past the memory limit), then only the colliding keys by value.
 */
async function reportDuplicateKeys(ctx: ChunkContext, router: TableRouter): Promise<void> {
  for (const w of router.writers.values()) {
    if (w.spec.kind !== 'moray' || w.rows < 2) continue;
    const files = w.keyFiles();
    if (files.length === 0) continue;
    const from = `read_parquet([${files.map(sqlString).join(', ')}])`;
    const dups = `WITH k AS (SELECT _key FROM ${from} WHERE _key IS NOT NULL),
      h AS (SELECT hash(_key) AS h FROM k GROUP BY 1 HAVING count(*) > 1)
      SELECT _key, count(*) AS n FROM k WHERE hash(_key) IN (SELECT h FROM h) GROUP BY _key HAVING count(*) > 1`;
    const rows = await ctx.withDuck(async (conn) => {
      const r = await conn.runAndReadAll(
        `SELECT count(*)::INTEGER AS keys, coalesce(sum(n - 1), 0)::BIGINT AS extra FROM (${dups})`,
      );
      const s = r.getRowObjectsJson()[0]!;
      if (Number(s.keys) === 0) return undefined;
      const ex = await conn.runAndReadAll(
        `SELECT _key, n::INTEGER AS n FROM (${dups}) ORDER BY _key LIMIT 5`,
      );
      const examples = ex.getRowObjectsJson().map((e) => ({ key: String(e._key as string), n: Number(e.n) }));
      return { keys: Number(s.keys), extra: Number(s.extra), examples };
    });
    if (!rows) continue;
    for (const [i, e] of rows.examples.entries())
      ctx.report.event(
        'duplicate_key',
        'error',
        `${w.spec.table} ${e.key}: ${e.n} rows with this _key (all kept)`,
        i === 0 ? rows.extra - (rows.examples.length - 1) : 1,
      );
    ctx.report.count('malformed', rows.extra).count(`duplicateKeys.${w.spec.table}`, rows.keys);
  }
}

/** Sends each table's rows to its chunk writer (and, optionally, to the entry-object writer). */
class TableRouter implements DumpSink {
  readonly writers = new Map<string, PartitionedChunkWriter>();
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
      throw new RemoraError('MalformedInput', `table ${table} appears twice with different columns`, {
        details: { kind: 'table_layout_changed' },
      });
    if (!w) {
      const moray = columns.includes('_key') && columns.includes('_value');
      if (!moray && MORAY_SYSTEM_TABLES.has(table))
        this.ctx.report.event(
          'moray_system_table',
          'info',
          `${table}: moray's own table, kept verbatim as text`,
        );
      else if (!moray)
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
      this.ctx.report.count(`rows.${table}`, w.rows).count('recordsScanned', w.rows);
    }
    return out;
  }

  /** Stop every writer (waiting for conversions in flight); the chunks they put in the store. */
  async discard(): Promise<ChunkInfo[]> {
    const out: ChunkInfo[] = [];
    for (const w of this.writers.values()) out.push(...(await w.discard()));
    return out;
  }
}
