/** Remora's own control database: the stored ring and node settings that must survive restarts. */
import { migrate, type MigrationList } from './migrations.js';
import type { Queryable } from './moray.repository.js';
import type { RingDefinition } from './ring.js';

/** Remora's control tables (src/metadata/migrations.ts): add a version at the end, never edit a released one. */
export const controlMigrations: MigrationList = {
  schema: 'control',
  migrations: [
    {
      version: 1,
      name: 'baseline',
      up: [
        `CREATE TABLE IF NOT EXISTS remora_ring (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    definition JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
  )`,
        `CREATE TABLE IF NOT EXISTS remora_storage_settings (
    manta_storage_id TEXT PRIMARY KEY,
    writes_enabled BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    reason TEXT
  )`,
      ],
    },
  ],
};

export async function migrateControl(db: Queryable): Promise<void> {
  await migrate(db, controlMigrations);
}

export async function readRing(db: Queryable): Promise<RingDefinition | undefined> {
  const r = await db.query<{ definition: RingDefinition }>('SELECT definition FROM remora_ring WHERE id = 1');
  return r.rows[0]?.definition;
}

/** Store the ring once; returns the ring that is stored afterwards (ours, or a racer's). */
export async function insertRingOnce(db: Queryable, def: RingDefinition): Promise<RingDefinition> {
  await db.query('INSERT INTO remora_ring (id, definition) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [
    JSON.stringify(def),
  ]);
  const stored = await readRing(db);
  if (!stored) throw new Error('ring vanished after insert');
  return stored;
}

export async function setWritesEnabled(
  db: Queryable,
  storageId: string,
  enabled: boolean,
  reason?: string,
): Promise<void> {
  await db.query(
    `INSERT INTO remora_storage_settings (manta_storage_id, writes_enabled, reason) VALUES ($1, $2, $3)
     ON CONFLICT (manta_storage_id) DO UPDATE SET writes_enabled = EXCLUDED.writes_enabled, reason = EXCLUDED.reason, updated_at = now()`,
    [storageId, enabled, reason ?? null],
  );
}

export async function readWritesEnabled(db: Queryable, storageId: string): Promise<boolean> {
  const r = await db.query<{ writes_enabled: boolean }>(
    'SELECT writes_enabled FROM remora_storage_settings WHERE manta_storage_id = $1',
    [storageId],
  );
  return r.rows[0]?.writes_enabled ?? true;
}
