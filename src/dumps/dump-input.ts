/**
 * Resolving an unpack input: an object-store path (`/poseidon/stor/manatee_backups/...`) or a
 * local file, with the shard and snapshot instant it carries.
 *
 * The snapshot instant, in order of trust: the object's `m-snapshot-time` metadata (Remora's
 * snapshot), the dump's `-- remora-snapshot-time:` header comment, the `YYYY-MM-DD-HH-MM-SS`
 * stamp in the name (manatee names dumps after their start, §2.1), and last the file's mtime
 * (reported: the instant is then only a guess).
 */
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { RemoraError } from '../core/errors.js';
import { parseDumpName } from './layout.js';
import type { ObjectStore } from '../objectstore/object-store.js';
import type { ReportBuilder } from '../core/run-report.js';

export interface ResolvedInput {
  path: string;
  bytes?: number;
  sha256?: string;
  shard?: string;
  snapshotTime?: Date;
  guessed?: boolean;
  format: 'plain' | 'entry';
  /** Set when the input's first bytes cannot be read (a corrupt gzip): why. */
  unreadable?: string;
  open(): Promise<Readable>;
}

/** Bytes of decompressed text searched for header comments. */
const HEADER_PEEK_BYTES = 64 * 1024;

export async function resolveDumpInput(
  store: ObjectStore,
  p: string,
  report: ReportBuilder,
): Promise<ResolvedInput> {
  const head = p.startsWith('/') ? await store.head(p).catch(() => undefined) : undefined;
  let open: () => Promise<Readable>;
  let mtime: Date;
  const out: Partial<ResolvedInput> = { path: p };
  if (head) {
    open = () => store.get(p);
    mtime = head.mtime;
    Object.assign(out, { bytes: head.bytes, sha256: head.sha256 });
    if (head.meta['m-shard']) out.shard = head.meta['m-shard'];
    if (head.meta['m-snapshot-time']) out.snapshotTime = new Date(head.meta['m-snapshot-time']);
  } else if (fs.existsSync(p)) {
    open = () => Promise.resolve(fs.createReadStream(p));
    const st = fs.statSync(p);
    mtime = st.mtime;
    out.bytes = st.size;
  } else throw new RemoraError('ObjectNotFound', `no object or file ${p}`);
  const { text: peek, error } = await peekText(await open());
  if (error) out.unreadable = error;
  const format = peek.trimStart().startsWith('{') ? 'entry' : 'plain';
  const named = parseDumpName(p);
  out.shard ??= /^-- remora-shard: (.+)$/m.exec(peek)?.[1]?.trim() ?? named.shard;
  const headerTime = /^-- remora-snapshot-time: (.+)$/m.exec(peek)?.[1]?.trim();
  out.snapshotTime ??= headerTime ? new Date(headerTime) : named.at;
  if (!out.snapshotTime || Number.isNaN(out.snapshotTime.getTime())) {
    out.snapshotTime = mtime;
    out.guessed = true;
    report.event(
      'snapshot_time_guessed',
      'warning',
      `${p}: no recorded snapshot instant; using the file's mtime ${mtime.toISOString()}`,
    );
  }
  return { ...(out as ResolvedInput), format, open };
}

/**
 * The first decompressed KB of the input, and why it could not be read when its gzip is corrupt
 * from the start (the real read reports every other error, with the shard known).
 */
async function peekText(stream: Readable): Promise<{ text: string; error?: string }> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const c of stream) {
      chunks.push(c as Buffer);
      bytes += (c as Buffer).length;
      if (bytes >= HEADER_PEEK_BYTES) break;
    }
  } finally {
    stream.destroy();
  }
  const b = Buffer.concat(chunks, bytes);
  if (b[0] !== 0x1f || b[1] !== 0x8b) return { text: b.subarray(0, HEADER_PEEK_BYTES).toString('utf8') };
  try {
    // A prefix of a gzip stream inflates up to where it stops, with a sync flush.
    const text = zlib.gunzipSync(b, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    return { text: text.subarray(0, HEADER_PEEK_BYTES).toString('utf8') };
  } catch (err) {
    return { text: '', error: `corrupt gzip: ${(err as Error).message}` };
  }
}
