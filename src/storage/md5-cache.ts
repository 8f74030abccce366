/**
 * MD5s of copies this node wrote, so HEAD and GET can answer `Content-MD5` without reading the
 * file. Decision: no sidecar files (the manifest lists every file under /manta, so a sidecar
 * would show up as cruft in every consumer) and no lazy hashing on HEAD (a HEAD must stay cheap).
 * An entry is trusted only while the file's size and mtime are unchanged; after a restart, or
 * for files written by something else, HEAD simply omits the MD5. Bounded, least recently used
 * first out.
 */

export interface Md5Entry {
  md5: string;
  size: number;
  mtimeMs: number;
}

/** Enough for the recent writes a rebalance or front door re-checks; ~150 bytes per entry. */
export const DEFAULT_MD5_CACHE_ENTRIES = 100_000;

export class Md5Cache {
  private readonly entries = new Map<string, Md5Entry>();

  constructor(private readonly maxEntries = DEFAULT_MD5_CACHE_ENTRIES) {}

  set(file: string, e: Md5Entry): void {
    this.entries.delete(file);
    this.entries.set(file, e);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  /** The MD5 if known and the file still has the size and mtime it had when it was written. */
  get(file: string, st: { size: number; mtimeMs: number }): string | undefined {
    const e = this.entries.get(file);
    if (!e) return undefined;
    if (e.size !== st.size || e.mtimeMs !== st.mtimeMs) {
      this.entries.delete(file);
      return undefined;
    }
    return e.md5;
  }

  delete(file: string): void {
    this.entries.delete(file);
  }
}
