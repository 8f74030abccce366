/**
 * Configuration: loaded once (defaults ← optional JSON file ← environment), validated against
 * one schema (zod), frozen and passed down explicitly. Nothing else reads process.env.
 *
 * The schema below IS the configuration type: `RemoraConfig` is inferred from it, so a key is
 * declared, documented, typed and validated in one place. Objects are strict: an unknown key
 * (a typo) is refused at load with its path, as is a wrong type (`frontdoor.defaultCopies:
 * "two"`), instead of surfacing later as a failing PUT.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { RemoraError } from '../core/errors.js';
import { outputPrefixProblem } from '../core/published-path.js';

// ---------------------------------------------------------------------------------------------
// Building blocks

const positiveInt = z.int().min(1);
const nonNegativeInt = z.int().min(0);
const port = z.int().min(0).max(65535);

/**
 * A DNS-like name: lowercase labels of letters and digits (a `-` inside a label), joined by
 * single dots. Node ids and shard names become directory and database names, so nothing that
 * could leave a directory (`/`, `..`, a leading `.`) is accepted: a node id such as `../../evil`
 * would put the node's root outside the state directory.
 */
export const DNS_NAME_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;
const dnsName = (example: string) =>
  z
    .string()
    .max(253)
    .regex(DNS_NAME_RE, {
      error: `must be a DNS-like name: lowercase letters and digits, "-" inside a label, "." between labels, no "/" or ".." (e.g. ${example})`,
    });

const httpUrl = (what: string) => z.url({ protocol: /^https?$/, error: `${what} must be an http(s) URL` });

/** A PostgreSQL URL. The message never repeats the value: it may hold a password. */
const postgresUrl = z.url({
  protocol: /^postgres(ql)?$/,
  error: 'must be a PostgreSQL URL: postgres://user:password@host:port/database',
});

// ---------------------------------------------------------------------------------------------
// Per-job settings: `pipeline.jobs.<name>`

/** Keys every job accepts under `pipeline.jobs.<name>`, whatever its name. */
export const jobSettingsSchema = z.strictObject({
  /** Per-job switch (the original's METER_STORAGE_ENABLED, GC_ENABLED, … SAPI flags). */
  enabled: z.boolean().optional(),
  /** Past this long after its day starts, a run still waiting for inputs raises an alert. */
  deadlineMs: positiveInt.optional(),
  /**
   * Days of per-account reports a delivering job keeps (storage-metering, request-metering,
   * compute-metering, usage-summary, access-logs); default `pipeline.reportRetentionDays` (90).
   */
  reportRetentionDays: positiveInt.optional(),
});

/**
 * Job-specific settings. A job with keys of its own adds ONE entry here, extending the general
 * schema, e.g.
 *
 *   gc: jobSettingsSchema.extend({ graceDays: z.int().min(0).optional() }),
 *
 * and nothing else: its keys are then validated at load (an unknown or mistyped key under
 * `pipeline.jobs.gc` is refused with its path) and typed wherever the job reads them
 * (`config.pipeline?.jobs?.gc?.graceDays`, `pipelineSettings(config).jobs.gc?.graceDays`).
 * Jobs not listed here accept only the general keys.
 */
export const JOB_SPECIFIC_SETTINGS = {
  gc: jobSettingsSchema.extend({
    /** Days a delete record waits before its copies go to tombstone (mola's 2-day grace). */
    graceDays: z.number().min(0).optional(),
    /** Copies moved to tombstone per second on each storage node. */
    objectsPerSecondPerNode: z.number().positive().optional(),
    /** Bytes of copies moved to tombstone per second on each node (a MOVE is a rename: this paces the disk's metadata work, not a transfer). */
    bytesPerSecondPerNode: z.number().positive().optional(),
  }),
  'tombstone-purge': jobSettingsSchema.extend({
    /** Days a tombstone directory is kept before its node's purge removes it (mako's STORAGE_MAX_TOMBSTONE_DIRECTORIES, 21). */
    retentionDays: positiveInt.optional(),
  }),
  'compute-metering': jobSettingsSchema.extend({
    /** Minutes after an hour ends before its marlin-agent logs are read (the original's cron: :17). */
    settleMinutes: z.number().min(0).optional(),
    /** Agent logs (compute nodes) read by one task. */
    objectsPerTask: positiveInt.optional(),
  }),
  'request-metering': jobSettingsSchema.extend({
    /** Malformed lines tolerated per log object before the run is invalid: a count ("10") or a share ("1%") — the original's MALFORMED_LIMIT. */
    malformedLimit: z
      .union([
        z.int().min(0),
        z.string().regex(/^\d+(\.\d+)?%?$/, 'a count such as "10" or a share such as "1%"'),
      ])
      .optional(),
  }),
  audit: jobSettingsSchema.extend({
    /** Deep audit: every copy is re-hashed on its node once in this many days (0: off; default 30). */
    deepCycleDays: z.int().min(0).optional(),
    /** Deep audit: bytes hashed per second on each storage node (default 32 MiB/s). */
    deepBytesPerSecondPerNode: z.number().positive().optional(),
  }),
  cruft: jobSettingsSchema.extend({
    /** Files newer than the earliest snapshot minus this many days are never cruft (mola's tooNewSeconds, 2 days). */
    marginDays: z.number().min(0).optional(),
    /** Files moved to tombstone per second on each storage node (default GC's). */
    objectsPerSecondPerNode: z.number().positive().optional(),
    /** Bytes of files moved to tombstone per second on each node (default GC's). */
    bytesPerSecondPerNode: z.number().positive().optional(),
  }),
  'usage-summary': jobSettingsSchema.extend({
    /** Minutes after a day ends before its summary may run (its last hours are metered by then). */
    settleMinutes: z.number().min(0).optional(),
  }),
} satisfies Record<string, typeof jobSettingsSchema>;

/** The `pipeline.jobs` schema for a set of job-specific entries (exported for tests). */
export function jobsSchemaWith<S extends Record<string, typeof jobSettingsSchema>>(specific: S) {
  const shape = Object.fromEntries(Object.entries(specific).map(([k, v]) => [k, v.optional()])) as {
    [K in keyof S]: z.ZodOptional<S[K]>;
  };
  return z.object(shape).catchall(jobSettingsSchema);
}

const jobsSchema = jobsSchemaWith(JOB_SPECIFIC_SETTINGS);
export type JobSettings = z.output<typeof jobSettingsSchema>;
export type JobsConfig = z.output<typeof jobsSchema>;

// ---------------------------------------------------------------------------------------------
// The pipeline section: every key optional here; defaults are in src/pipeline/settings.ts.

export const pipelineConfigSchema = z.strictObject({
  jobs: jobsSchema.optional(),
  /** Coordinator tick: how often waiting runs re-check their inputs and running runs their tasks. */
  tickIntervalMs: positiveInt.optional(),
  /** Tasks each worker process runs at once. */
  concurrency: positiveInt.optional(),
  /** graphile-worker poll for retries whose backoff has expired (new tasks arrive by NOTIFY). */
  workerPollIntervalMs: positiveInt.optional(),
  /** How often a worker heartbeats its running attempts. */
  heartbeatMs: positiveInt.optional(),
  /** An attempt without a heartbeat for this long is lost (must exceed two heartbeats). */
  staleAfterMs: positiveInt.optional(),
  /** Run history and per-run outputs older than this many days are removed. */
  retentionDays: positiveInt.optional(),
  /** Per-account usage reports older than this many days are removed (RFD 16 problem 7). */
  reportRetentionDays: positiveInt.optional(),
  /**
   * Side-by-side mode (RFD 16 rollout): every file Remora publishes where the original system
   * also writes goes under this prefix instead (src/core/published-path.ts has the mapping;
   * docs/metering.md "Side by side with the original"). Unset: the original's paths.
   */
  outputPrefix: z
    .string()
    .superRefine((value, ctx) => {
      const problem = outputPrefixProblem(value);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  /** How many days back the scheduler looks for missed days on start. */
  catchUpDays: nonNegativeInt.optional(),
  /** "More than X% malformed → invalid" (src/core/run-report.ts). */
  thresholds: z
    .strictObject({
      maxMalformedShare: z.number().min(0).max(1).optional(),
      minRecordsForShare: nonNegativeInt.optional(),
    })
    .optional(),
  /** Partitions P of unpacked chunks, or "auto" (docs/dumps.md "Choosing P"). */
  partitions: z.union([z.literal('auto'), z.int().min(1).max(9999)]).optional(),
  /** Rows per partition that "auto" aims for. */
  rowsPerPartition: positiveInt.optional(),
  /** Alerts are also POSTed here as JSON. */
  alertWebhook: httpUrl('pipeline.alertWebhook').optional(),
  /** Serve Prometheus metrics on this port. */
  metricsPort: port.optional(),
});
export type PipelineConfig = z.output<typeof pipelineConfigSchema>;

// ---------------------------------------------------------------------------------------------
// The whole configuration

const shardSchema = z.strictObject({
  /** Moray shard name as Manta spells it, e.g. `2.moray.remora.local`. */
  name: dnsName('2.moray.remora.local'),
  role: z.enum(['index', 'storage']),
});

const storageNodeSchema = z.strictObject({
  /** `manta_storage_id`, e.g. `1.stor.dc1.remora.local`: also the node's directory name. */
  id: dnsName('1.stor.dc1.remora.local'),
  datacenter: z.string().min(1),
  /** Cap on the node's capacity in MB (so tests can fill a node); undefined = the filesystem's. */
  capacityMB: z.number().positive().optional(),
  /** The node's base URL, for nodes Remora does not run itself (else: its heartbeat record). */
  url: httpUrl('storage.nodes[].url').optional(),
});

export const configSchema = z
  .strictObject({
    /** Everything Remora keeps on disk lives under this directory (set by --state-dir). */
    stateDir: z.string().min(1),
    postgres: z.strictObject({
      /** External PostgreSQL (`postgres://user:pw@host:port/db`); unset = embedded under stateDir. */
      url: postgresUrl.optional(),
      /** Port of the embedded server. */
      port: z.int().min(1).max(65535),
      /** Prefix of every database Remora creates (one per shard plus `control`). */
      databasePrefix: z.string().regex(/^[a-z][a-z0-9_]*$/, { error: 'must match [a-z][a-z0-9_]*' }),
    }),
    shards: z.array(shardSchema).min(1),
    ring: z.strictObject({ vnodes: positiveInt }),
    storage: z.strictObject({
      nodes: z.array(storageNodeSchema),
      /** minnow's heartbeat interval (SAPI template: 5 s). */
      heartbeatIntervalMs: positiveInt,
      /**
       * The internal credential storage nodes require on PUT, MOVE and the manifest (docs/storage-nodes.md).
       * Unset = generated once into `<stateDir>/internal-token` (mode 0600).
       */
      internalToken: z.string().min(1).optional(),
    }),
    picker: z.strictObject({
      /** A node whose heartbeat is older than this is not written to (muskie SAPI template: 60 s). */
      lagMs: positiveInt,
      /** muskie MUSKIE_MAX_UTILIZATION_PCT default 90. */
      maxUtilizationPct: z.number().gt(0).max(100),
      /** Spread copies over datacenters (muskie MUSKIE_MULTI_DC). */
      multiDC: z.boolean(),
    }),
    frontdoor: z.strictObject({
      port,
      /** Copies of an object without a `durability-level` header (muskie DEF_MAX_COPIES: 1..9). */
      defaultCopies: z.int().min(1).max(9),
    }),
    /**
     * Where pipeline inputs and outputs (dumps, chunks, reports) live: `local` (the embedded
     * default, `<stateDir>/objects`) or `frontdoor`, the deployment's own front door as the
     * operator account, so workers on several machines share them (docs/dumps.md "Object store").
     * `url` and `token` default to the running deployment's (`deployment.json`, `operator-token`).
     */
    objectStore: z.strictObject({
      backend: z.enum(['local', 'frontdoor']),
      url: httpUrl('objectStore.url (the front door)').optional(),
      token: z.string().min(1).optional(),
    }),
    /** The daily pipeline (docs/pipeline.md): per-job switches and settings, timings, retention. */
    pipeline: pipelineConfigSchema.optional(),
  })
  .superRefine((c, ctx) => {
    if (c.shards.filter((s) => s.role === 'storage').length !== 1)
      ctx.addIssue({
        code: 'custom',
        path: ['shards'],
        message: 'exactly one shard must have role "storage"',
      });
    if (!c.shards.some((s) => s.role === 'index'))
      ctx.addIssue({
        code: 'custom',
        path: ['shards'],
        message: 'at least one shard must have role "index"',
      });
    const dup = duplicates(c.shards.map((s) => s.name));
    if (dup.length > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['shards'],
        message: `shard names must be unique: ${dup.join(', ')}`,
      });
    const dupNodes = duplicates(c.storage.nodes.map((n) => n.id));
    if (dupNodes.length > 0)
      ctx.addIssue({
        code: 'custom',
        path: ['storage', 'nodes'],
        message: `storage node ids must be unique (MANTA-3827: a duplicate storage id misplaces objects): ${dupNodes.join(', ')}`,
      });
  });

export type RemoraConfig = z.output<typeof configSchema>;
export type ShardConfig = RemoraConfig['shards'][number];
export type StorageNodeConfig = RemoraConfig['storage']['nodes'][number];

function duplicates(xs: string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const x of xs) (seen.has(x) ? dup : seen).add(x);
  return [...dup];
}

// ---------------------------------------------------------------------------------------------
// Defaults and loading

export const DEFAULT_DATACENTERS = ['dc1', 'dc2', 'dc3'] as const;

export function defaultStorageNodes(
  count = 6,
  datacenters: readonly string[] = DEFAULT_DATACENTERS,
): StorageNodeConfig[] {
  const nodes: StorageNodeConfig[] = [];
  for (let i = 1; i <= count; i++) {
    const dc = datacenters[(i - 1) % datacenters.length]!;
    nodes.push({ id: `${i}.stor.${dc}.remora.local`, datacenter: dc });
  }
  return nodes;
}

export function defaultConfig(stateDir = path.resolve('.state')): RemoraConfig {
  return {
    stateDir,
    postgres: { port: 15432, databasePrefix: 'remora' },
    shards: [
      { name: '1.moray.remora.local', role: 'storage' },
      { name: '2.moray.remora.local', role: 'index' },
      { name: '3.moray.remora.local', role: 'index' },
    ],
    ring: { vnodes: 8192 },
    storage: { nodes: defaultStorageNodes(), heartbeatIntervalMs: 5000 },
    picker: { lagMs: 60_000, maxUtilizationPct: 90, multiDC: true },
    frontdoor: { port: 0, defaultCopies: 2 },
    objectStore: { backend: 'local' },
  };
}

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};

/** Section by section: a section given as an object is merged key by key into the base's. */
export function mergeConfig(base: RemoraConfig, over: DeepPartial<RemoraConfig>): RemoraConfig {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = (base as unknown as Record<string, unknown>)[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? { ...b, ...v }
        : v;
  }
  // Not a RemoraConfig until loadConfig has validated it against the schema.
  return out as unknown as RemoraConfig;
}

/**
 * Load the configuration: defaults, then `<stateDir>/config.json` or REMORA_CONFIG (which must
 * exist when set), then environment (REMORA_STATE_DIR, REMORA_PG_URL), then `overrides`.
 * Validated against the schema and frozen; any problem is `InvalidConfig` naming the key.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: DeepPartial<RemoraConfig> = {},
): RemoraConfig {
  const stateDir = path.resolve(overrides.stateDir ?? env.REMORA_STATE_DIR ?? '.state');
  let config = defaultConfig(stateDir);
  const sources: string[] = [];
  const file = env.REMORA_CONFIG || path.join(stateDir, 'config.json');
  if (env.REMORA_CONFIG && !fs.existsSync(file))
    throw new RemoraError('InvalidConfig', `REMORA_CONFIG names ${file}, which does not exist`);
  if (fs.existsSync(file)) {
    const parsed = readConfigFile(file);
    if ('stateDir' in parsed) {
      // A file may carry the state directory it was written for (a dumped config), but the
      // directory in use comes from --state-dir / REMORA_STATE_DIR, never from the file.
      const own = parsed.stateDir;
      if (typeof own !== 'string' || path.resolve(stateDir, own) !== stateDir)
        throw new RemoraError(
          'InvalidConfig',
          `config file ${file}: stateDir: ${JSON.stringify(own)} is not the state directory in use (${stateDir}); ` +
            'the state directory is set by --state-dir or REMORA_STATE_DIR: remove the key',
        );
    }
    config = mergeConfig(config, parsed);
    sources.push(`config file ${file}`);
  }
  if (env.REMORA_PG_URL) {
    config = mergeConfig(config, { postgres: { url: env.REMORA_PG_URL } });
    sources.push('REMORA_PG_URL');
  }
  config = mergeConfig(config, overrides);
  config.stateDir = stateDir;
  return deepFreeze(validateConfig(config, sources));
}

function readConfigFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new RemoraError(
      'InvalidConfig',
      `config file ${file} is not valid JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new RemoraError('InvalidConfig', `config file ${file} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * Check a whole configuration against the schema; returns the parsed copy. Every problem is
 * listed with its key's path (`frontdoor.defaultCopies: …`); `sources` say where the values came
 * from (the file, REMORA_PG_URL) so the operator knows what to edit.
 */
export function validateConfig(c: unknown, sources: string[] = []): RemoraConfig {
  const r = configSchema.safeParse(c);
  if (r.success) return r.data;
  let fromEnvOnly = true;
  const problems = r.error.issues.flatMap((issue) => {
    const at = formatPath(issue.path);
    if (at === 'postgres.url' && sources.includes('REMORA_PG_URL'))
      return [`postgres.url (from REMORA_PG_URL): ${issue.message}`];
    fromEnvOnly = false;
    if (issue.code === 'unrecognized_keys')
      return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`);
    return [`${at || '(top level)'}: ${issue.message}`];
  });
  const from = fromEnvOnly ? [] : sources.filter((s) => s !== 'REMORA_PG_URL');
  throw new RemoraError(
    'InvalidConfig',
    `invalid configuration${from.length > 0 ? ` (${from.join(', ')})` : ''}: ${problems.join('; ')}`,
    { details: { problems } },
  );
}

/** `storage.nodes[0].id` */
function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : `${out ? '.' : ''}${String(k)}`;
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
