/**
 * Which front door instances were up during which hour, and whether each has published that
 * hour's audit log. Request metering waits for the log of every instance that was up
 * (docs/metering.md "Late logs"): an instance records itself here when it starts and every
 * few seconds after (one row per instance per hour), and its log publisher marks the hour
 * published once the hour's object is in the store — an empty one for a quiet hour, so a
 * reader can tell "no requests" from "log not here yet".
 *
 * The original had no such registry: mackerel's keygen metered whatever objects were in the
 * hour's directory at `:19` past the hour, so a muskie zone that uploaded late was simply
 * not billed for that hour (MANTA-REFERENCE §3.6, §5.1).
 */
import { migrate, type MigrationList } from './migrations.js';
import type { Queryable } from './moray.repository.js';

export const frontdoorHoursMigrations: MigrationList = {
  schema: 'frontdoor-hours',
  migrations: [
    {
      version: 1,
      name: 'front door instance hours',
      up: [
        `CREATE TABLE IF NOT EXISTS remora_frontdoor_hours (
    instance TEXT NOT NULL,
    hour TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    PRIMARY KEY (hour, instance)
  )`,
      ],
    },
  ],
};

const migrated = new WeakSet<object>();

async function ready(db: Queryable): Promise<void> {
  if (migrated.has(db)) return;
  await migrate(db, frontdoorHoursMigrations);
  migrated.add(db);
}

/** Record that `instance` is up during `hour` (`YYYY-MM-DDTHH`); idempotent. */
export async function recordFrontDoorUp(db: Queryable, instance: string, hour: string): Promise<void> {
  await ready(db);
  await db.query(
    `INSERT INTO remora_frontdoor_hours (instance, hour) VALUES ($1, $2)
     ON CONFLICT (hour, instance) DO UPDATE SET last_seen = now()`,
    [instance, hour],
  );
}

/** The instances that were up during `hour`, sorted. */
export async function frontDoorsUpDuring(db: Queryable, hour: string): Promise<string[]> {
  await ready(db);
  const r = await db.query<{ instance: string }>(
    'SELECT instance FROM remora_frontdoor_hours WHERE hour = $1 ORDER BY instance',
    [hour],
  );
  return r.rows.map((x) => x.instance);
}

/** Hours before `beforeHour` during which `instance` was up and whose log it has not published. */
export async function unpublishedHours(
  db: Queryable,
  instance: string,
  beforeHour: string,
): Promise<string[]> {
  await ready(db);
  const r = await db.query<{ hour: string }>(
    `SELECT hour FROM remora_frontdoor_hours
     WHERE instance = $1 AND hour < $2 AND published_at IS NULL ORDER BY hour`,
    [instance, beforeHour],
  );
  return r.rows.map((x) => x.hour);
}

export async function markHourPublished(db: Queryable, instance: string, hour: string): Promise<void> {
  await ready(db);
  await db.query(
    `INSERT INTO remora_frontdoor_hours (instance, hour, published_at) VALUES ($1, $2, now())
     ON CONFLICT (hour, instance) DO UPDATE SET published_at = now()`,
    [instance, hour],
  );
}

/** How long a published hour's row is kept: far past any rerun of that hour's metering. */
export const FRONTDOOR_HOURS_KEPT_DAYS = 90;

/**
 * Forget the published hours older than FRONTDOOR_HOURS_KEPT_DAYS before `now` (every instance's);
 * an hour not yet published is kept whatever its age (its instance still owes its log). Returns
 * how many rows went.
 */
export async function forgetOldPublishedHours(db: Queryable, now: Date): Promise<number> {
  await ready(db);
  const cutoff = new Date(now.getTime() - FRONTDOOR_HOURS_KEPT_DAYS * 86_400_000).toISOString().slice(0, 13);
  const r = await db.query(
    'DELETE FROM remora_frontdoor_hours WHERE hour < $1 AND published_at IS NOT NULL',
    [cutoff],
  );
  return r.rowCount ?? 0;
}
