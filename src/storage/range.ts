/**
 * `Range: bytes=…` for GET (RFC 9110 §14): one range only. A header we do not understand, or a
 * multi-range request, is ignored and the whole body is sent, as the RFC allows; a well-formed
 * range that starts past the end is 416 with `Content-Range: bytes *\/<size>`.
 */
import { RemoraError } from '../core/errors.js';

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

const RANGE_RE = /^bytes=(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = RANGE_RE.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  const unsatisfiable = () =>
    new RemoraError('RangeNotSatisfiable', `range ${header} is outside the object's ${size} bytes`, {
      details: { size },
    });
  if (m[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const last = m[2] === '' ? Infinity : Number(m[2]);
  if (last < start) return undefined; // syntactically invalid: ignore (RFC 9110 §14.1.1)
  if (start >= size) throw unsatisfiable();
  return { start, end: Math.min(last, size - 1) };
}
