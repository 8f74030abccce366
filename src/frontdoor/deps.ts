/** What the front door is built from: its metadata tier, storage access, picker policy and clock. */
import type { Readable } from 'node:stream';
import type { Clock, Random } from '../core/clock.js';
import type { MetadataTier } from '../metadata/metadata-tier.js';
import type { PickerPolicy } from './picker.js';

/** What the front door needs from storage nodes (StorageClient implements it). */
export interface StorageAccess {
  put(
    nodeUrl: string,
    owner: string,
    objectId: string,
    body: Readable,
    opts?: { contentLength?: number; contentMD5?: string },
  ): Promise<{ md5: string; bytes: number }>;
  get(
    nodeUrl: string,
    owner: string,
    objectId: string,
    opts?: { range?: { start: number; end: number } },
  ): Promise<{ stream: Readable; contentLength: number; status: number }>;
  head(
    nodeUrl: string,
    owner: string,
    objectId: string,
  ): Promise<{ contentLength: number; md5?: string } | undefined>;
}

export interface FrontDoorDeps {
  tier: MetadataTier;
  storage: StorageAccess;
  /** manta_storage_id → base URL; undefined for an unknown node. */
  nodeUrl: (storageId: string) => string | undefined;
  policy: PickerPolicy;
  defaultCopies: number;
  clock?: Clock;
  random?: Random;
  /** How long the storage-record cache lives (muskie polls every storageInterval). */
  storageRefreshMs?: number;
  /** Size assumed for a streamed upload without Content-Length (muskie defaultMaxStreamingSizeMB). */
  maxStreamingSizeMB?: number;
}
