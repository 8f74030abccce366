/**
 * The front door registry's retention (remora_frontdoor_hours, docs/metering.md "Late logs"):
 * published hours older than FRONTDOOR_HOURS_KEPT_DAYS go when a publisher runs; an hour not yet
 * published stays whatever its age; recent hours stay.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { publishFinishedHours } from '../src/deployment/audit-publisher.js';
import {
  FRONTDOOR_HOURS_KEPT_DAYS,
  frontDoorsUpDuring,
  markHourPublished,
  recordFrontDoorUp,
} from '../src/metadata/frontdoor-hours.repository.js';
import { LocalObjectStore } from '../src/objectstore/object-store.js';
import { openTestTier } from './helpers/pg.js';

const DAY_MS = 86_400_000;
const hourAgo = (now: Date, days: number) =>
  new Date(now.getTime() - days * DAY_MS).toISOString().slice(0, 13);

test('published hours past the retention are forgotten by the publisher; unpublished and recent ones stay', async () => {
  const { tier, cleanup } = await openTestTier();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'remora-fdh-'));
  try {
    const db = tier.control;
    const now = new Date('2026-06-01T12:30:00Z');
    const old = hourAgo(now, FRONTDOOR_HOURS_KEPT_DAYS + 1);
    const edge = hourAgo(now, FRONTDOOR_HOURS_KEPT_DAYS - 1);
    await recordFrontDoorUp(db, 'a', old);
    await markHourPublished(db, 'a', old); // old, published: goes
    await recordFrontDoorUp(db, 'b', old); // old, never published by b: stays
    await recordFrontDoorUp(db, 'a', edge);
    await markHourPublished(db, 'a', edge); // published, inside the retention: stays
    fs.mkdirSync(path.join(dir, 'spool'));
    await publishFinishedHours(path.join(dir, 'spool'), new LocalObjectStore(path.join(dir, 'store')), now, {
      db,
      instance: 'c',
    });
    assert.deepEqual(await frontDoorsUpDuring(db, old), ['b']);
    assert.deepEqual(await frontDoorsUpDuring(db, edge), ['a']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await cleanup();
  }
});
