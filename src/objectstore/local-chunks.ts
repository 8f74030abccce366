/**
 * Chunks as local files, for DuckDB: the local backend's own files, or — from any other
 * backend (the front door) — copies downloaded into a scratch directory for the length of
 * one task, each checked against the sha256 its manifest recorded, and removed afterwards.
 * Chunk paths name their unpack run, so a copy is never stale while the task holds it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { eachLimit } from '../core/concurrency.js';
import { RemoraError } from '../core/errors.js';
import { checkObjectPath, hashingCounter, type ObjectStore } from './object-store.js';

export interface ChunkFile {
  path: string;
  bytes: number;
  sha256: string;
}

/** Chunks downloaded at once. */
const DOWNLOADS_IN_PARALLEL = 4;

export async function withLocalChunks<T>(
  store: ObjectStore,
  chunks: readonly ChunkFile[],
  fn: (files: string[]) => Promise<T>,
): Promise<T> {
  if (store.localPath) return fn(chunks.map((c) => store.localPath!(c.path)));
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'remora-chunks-'));
  try {
    const files = chunks.map((c) => path.join(dir, ...checkObjectPath(c.path)));
    await eachLimit(chunks, DOWNLOADS_IN_PARALLEL, (c, i) => download(store, c, files[i]!));
    return await fn(files);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

async function download(store: ObjectStore, chunk: ChunkFile, file: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const counter = hashingCounter();
  await pipeline(await store.get(chunk.path), counter.transform, fs.createWriteStream(file));
  const { bytes, sha256 } = counter.result();
  if (bytes !== chunk.bytes || sha256 !== chunk.sha256)
    throw new RemoraError(
      'MalformedInput',
      `chunk ${chunk.path}: read ${bytes} bytes with sha256 ${sha256}, its manifest recorded ${chunk.bytes} bytes ` +
        `and ${chunk.sha256}; the chunk was damaged or replaced — unpack that shard again`,
    );
}
