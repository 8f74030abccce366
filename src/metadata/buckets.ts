/**
 * Moray bucket definitions and their DDL (moray lib/buckets/creat.js; MANTA-REFERENCE §1.1).
 * Every bucket is one table with moray's fixed columns plus one column per indexed field;
 * PostgreSQL lower-cases index column names (`objectId` → `objectid`).
 */

export interface IndexColumn {
  /** Field name in `_value`. */
  field: string;
  type: 'string' | 'number';
}

export interface BucketDefinition {
  name: string;
  index: IndexColumn[];
  /** Which shards hold this bucket. */
  on: 'index' | 'storage';
}

export const MANTA_BUCKET: BucketDefinition = {
  name: 'manta',
  on: 'index',
  index: [
    { field: 'dirname', type: 'string' },
    { field: 'name', type: 'string' },
    { field: 'owner', type: 'string' },
    { field: 'objectId', type: 'string' },
    { field: 'type', type: 'string' },
  ],
};

export const DELETE_LOG_BUCKET: BucketDefinition = {
  name: 'manta_delete_log',
  on: 'index',
  index: [{ field: 'objectId', type: 'string' }],
};

export const STORAGE_BUCKET: BucketDefinition = {
  name: 'manta_storage',
  on: 'storage',
  index: [
    { field: 'hostname', type: 'string' },
    { field: 'availableMB', type: 'number' },
    { field: 'percentUsed', type: 'number' },
    { field: 'server_uuid', type: 'string' },
    { field: 'timestamp', type: 'number' },
    { field: 'zone_uuid', type: 'string' },
    { field: 'manta_compute_id', type: 'string' },
    { field: 'manta_storage_id', type: 'string' },
    { field: 'datacenter', type: 'string' },
  ],
};

export const ACCOUNTS_BUCKET: BucketDefinition = {
  name: 'accounts',
  on: 'storage',
  index: [
    { field: 'uuid', type: 'string' },
    { field: 'login', type: 'string' },
    { field: 'tokenHash', type: 'string' },
  ],
};

export const BUCKETS: readonly BucketDefinition[] = [
  MANTA_BUCKET,
  DELETE_LOG_BUCKET,
  STORAGE_BUCKET,
  ACCOUNTS_BUCKET,
];

export function bucketByName(name: string): BucketDefinition {
  const b = BUCKETS.find((x) => x.name === name);
  if (!b) throw new Error(`unknown bucket ${name}`);
  return b;
}

export function columnOf(field: string): string {
  return field.toLowerCase();
}

export function bucketDdl(b: BucketDefinition): string[] {
  const cols = b.index.map((i) => `${columnOf(i.field)} ${i.type === 'number' ? 'NUMERIC' : 'TEXT'}`);
  const stmts = [
    `CREATE SEQUENCE IF NOT EXISTS ${b.name}_serial`,
    `CREATE TABLE IF NOT EXISTS ${b.name} (
      _id BIGINT DEFAULT nextval('${b.name}_serial'),
      _txn_snap INTEGER,
      _key TEXT PRIMARY KEY,
      _value TEXT NOT NULL,
      _etag CHAR(8) NOT NULL,
      _mtime BIGINT DEFAULT CAST(EXTRACT(EPOCH FROM NOW()) * 1000 AS BIGINT),
      _vnode BIGINT${cols.map((c) => `,\n      ${c}`).join('')}
    )`,
    `CREATE UNIQUE INDEX IF NOT EXISTS ${b.name}__id_idx ON ${b.name} (_id)`,
  ];
  for (const i of b.index) {
    const c = columnOf(i.field);
    stmts.push(`CREATE INDEX IF NOT EXISTS ${b.name}_${c}_idx ON ${b.name} (${c})`);
  }
  return stmts;
}

/** The index column values of a value, in bucket index order. */
export function indexValues(b: BucketDefinition, value: Record<string, unknown>): (string | number | null)[] {
  return b.index.map((i) => {
    const v = value[i.field];
    if (v === undefined || v === null) return null;
    if (i.type === 'number') return typeof v === 'number' ? v : Number(v);
    return typeof v === 'string' ? v : JSON.stringify(v);
  });
}
