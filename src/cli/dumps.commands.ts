/**
 * `remora snapshot | unpack | manifest`: the daily inputs (MANTA-REFERENCE §2; docs/dumps.md).
 * Thin: the work is in src/dumps/.
 */
import type { Command } from 'commander';
import { requireInternalToken, withMetadata, withObjectStore } from '../deployment/context.js';
import { snapshotAll, type SnapshotResult } from '../dumps/snapshot.js';
import type { RemoraConfig } from '../config/config.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import { pipelineSettings } from '../pipeline/settings.js';
import { refusedUnpackReport, unpackDump } from '../dumps/unpack.js';
import { ingestMakoListing, ingestMakoObject, type MakoIngestResult } from '../dumps/mako.js';
import type { SourceManifest } from '../dumps/manifest.js';
import { exampleText } from '../core/run-report.js';
import { DEFAULT_PARTITIONS } from '../dumps/partition.js';
import { StorageClient } from '../storage/storage-client.js';
import { ADDRESS_UNKNOWN, NodeDirectory } from '../storage/node-directory.js';
import {
  action,
  configFrom,
  parsePositiveInt,
  printJson,
  printTable,
  usageError,
  wantsJson,
} from './cli-support.js';

/** As `pipeline.partitions` (src/config/config.ts). */
const MAX_PARTITIONS = 9999;

function printManifest(m: SourceManifest, manifestPath: string, json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify({ manifestPath, ...m })}\n`);
    return;
  }
  process.stdout.write(
    `${m.source}: snapshot ${m.snapshotTime}, ${m.partitions} partitions, verdict ${m.verdict}\n`,
  );
  printTable(
    Object.entries(m.tables).map(([table, t]) => ({
      table,
      rows: t.rows,
      chunks: t.chunks.length,
      bytes: t.chunks.reduce((s, c) => s + c.bytes, 0),
    })),
  );
  for (const e of Object.values(m.report.events))
    process.stdout.write(
      `  ${e.severity} ${e.kind} ×${e.count}${e.examples[0] !== undefined ? `: ${exampleText(e.examples[0])}` : ''}\n`,
    );
  process.stdout.write(`wrote ${manifestPath}\n`);
}

/**
 * `snapshot --unpack`: unpack every index shard's new dump as the pipeline's unpack job would
 * (its partitions and rows per partition), so jobs run by hand (a rebalance plan) read what the
 * pipeline would. The storage shard is skipped: it holds no `manta` table.
 */
async function unpackIndexShards(
  config: RemoraConfig,
  store: ObjectStore,
  snaps: SnapshotResult[],
  cmd: Command,
): Promise<void> {
  const settings = pipelineSettings(config);
  const json = cmd.optsWithGlobals<{ json?: boolean }>().json;
  for (const r of snaps) {
    if (config.shards.find((s) => s.name === r.shard)?.role !== 'index') {
      process.stderr.write(`${r.shard}: storage shard, not unpacked\n`);
      continue;
    }
    const u = await unpackDump(store, [r.path], {
      shard: r.shard,
      partitions: settings.partitions,
      rowsPerPartition: settings.rowsPerPartition,
      expectedRows: r.rows,
    });
    printManifest(u.manifest, u.manifestPath, json);
  }
}

export function registerDumpsCommands(program: Command): void {
  program
    .command('snapshot')
    .description(
      'Snapshot every shard (or one) at one instant each: a REPEATABLE READ transaction streamed with ' +
        'COPY into a gzipped pg_dump plain dump at /poseidon/stor/manatee_backups/<shard>/YYYY/MM/DD/HH/moray-<time>.gz',
    )
    .option('--shard <name>', 'only this shard, e.g. 2.moray.remora.local')
    .option(
      '--unpack',
      "then unpack each index shard's new dump with the pipeline's partitions (pipeline.partitions); " +
        'the storage shard is snapshotted but not unpacked (it holds no namespace)',
    )
    .action(
      action(async (opts: { shard?: string; unpack?: boolean }, cmd: Command) => {
        const config = configFrom(cmd);
        if (opts.shard !== undefined && !config.shards.some((s) => s.name === opts.shard))
          throw usageError(
            `--shard: unknown shard ${JSON.stringify(opts.shard)}; configured: ${config.shards.map((s) => s.name).join(', ')}`,
          );
        const results = await withObjectStore(config, (store) =>
          withMetadata(config, async (tier) => {
            const snaps = await snapshotAll(tier, store, opts.shard, {
              outputPrefix: config.pipeline?.outputPrefix,
            });
            if (opts.unpack) await unpackIndexShards(config, store, snaps, cmd);
            return snaps;
          }),
        );
        if (wantsJson(cmd))
          return printJson(
            results.map((r) => ({
              shard: r.shard,
              snapshotTime: r.snapshotTime.toISOString(),
              tables: r.tables,
              bytes: r.bytes,
              path: r.path,
            })),
          );
        printTable(
          results.map((r) => ({
            shard: r.shard,
            instant: r.snapshotTime.toISOString(),
            rows: Object.entries(r.tables)
              .map(([t, n]) => `${t}=${n}`)
              .join(' '),
            bytes: r.bytes,
            path: r.path,
          })),
        );
      }),
    );

  program
    .command('unpack')
    .description(
      'Unpack one shard\'s dump (an object path or a local file; or the original {"entry"} table objects, ' +
        'one per table) into Parquet chunks partitioned by objectId, and commit its manifest under ' +
        '/poseidon/stor/remora/unpacked/YYYY/MM/DD/<shard>/',
    )
    .argument('<dump...>', 'dump object path(s) or file(s), all from one shard and instant')
    .option(
      '--partitions <P>',
      'partitions per table, or "auto": the power of two that keeps ~128k rows per partition ' +
        '(sources with different P still join, by the gcd of their P)',
      'auto',
    )
    .option('--shard <name>', 'shard name, when the dump does not say')
    .option('--entry-objects', 'also write the original per-table {"entry"} objects next to the dump')
    .action(
      action(
        async (
          dumps: string[],
          opts: { partitions: string; shard?: string; entryObjects?: boolean },
          cmd: Command,
        ) => {
          const partitions =
            opts.partitions === 'auto'
              ? 'auto'
              : parsePositiveInt(opts.partitions, '--partitions', MAX_PARTITIONS);
          const config = configFrom(cmd);
          const r = await withObjectStore(config, (store) =>
            unpackDump(store, dumps, {
              partitions,
              ...(opts.shard ? { shard: opts.shard } : {}),
              entryObjects: opts.entryObjects === true,
            }),
          ).catch((err: unknown) => {
            // Refused as invalid: what was wrong, then the MalformedInput (exit 8) as every error.
            for (const e of Object.values(refusedUnpackReport(err)?.events ?? {}))
              process.stderr.write(
                `  ${e.severity} ${e.kind} ×${e.count}${e.examples[0] !== undefined ? `: ${exampleText(e.examples[0])}` : ''}\n`,
              );
            throw err;
          });
          printManifest(r.manifest, r.manifestPath, cmd.optsWithGlobals<{ json?: boolean }>().json);
          for (const p of r.entryObjects) process.stdout.write(`wrote ${p}\n`);
        },
      ),
    );

  program
    .command('manifest')
    .description(
      "Fetch each running storage node's listing (GET /manifest), store it at /poseidon/stor/mako/<id> " +
        'with its start instant, and ingest it into chunks partitioned by objectId',
    )
    .option('--node <id>', 'only this storage node')
    .option(
      '--partitions <P>',
      "partitions of the listing's chunks (any P joins the shards' chunks, by the gcd of their P)",
      String(DEFAULT_PARTITIONS),
    )
    .option(
      '--from-store',
      'ingest the listing already stored at /poseidon/stor/mako/<id> instead of fetching',
    )
    .action(
      action(async (opts: { node?: string; partitions: string; fromStore?: boolean }, cmd: Command) => {
        const partitions = parsePositiveInt(opts.partitions, '--partitions', MAX_PARTITIONS);
        const config = configFrom(cmd);
        const ids = opts.node ? [opts.node] : config.storage.nodes.map((n) => n.id);
        const results: MakoIngestResult[] = [];
        await withObjectStore(config, async (store) => {
          if (opts.fromStore) {
            for (const id of ids) results.push(await ingestMakoObject(store, id, { partitions }));
          } else {
            // Addresses from the node directory (configuration, else heartbeat records), never
            // from the bundled deployment's state file: listings work against any node.
            const nodes = await withMetadata(config, (tier) =>
              NodeDirectory.load(config.storage.nodes, tier),
            );
            const client = new StorageClient({ internalToken: requireInternalToken(config) });
            try {
              for (const id of ids) {
                if (!nodes.has(id))
                  throw usageError(`unknown storage node ${id}: not configured, no heartbeat record`);
                const url = nodes.url(id);
                if (!url)
                  throw usageError(
                    `storage node ${id}: ${ADDRESS_UNKNOWN} (set storage.nodes[].url, or let the node heartbeat)`,
                  );
                const m = await client.manifest(url);
                // Side by side (pipeline.outputPrefix): stored under the prefix, not over the original's listing.
                const outputPrefix = config.pipeline?.outputPrefix;
                results.push(
                  await ingestMakoListing(store, { storageId: id, ...m }, { partitions, outputPrefix }),
                );
              }
            } finally {
              client.close();
            }
          }
        });
        for (const r of results) {
          process.stdout.write(`stored ${r.listingPath}\n`);
          printManifest(r.manifest, r.manifestPath, cmd.optsWithGlobals<{ json?: boolean }>().json);
        }
      }),
    );
}
