/** Test helpers: dumps as pg_dump writes them, in plain text, for unpack's readers. */
import { escapeCopyField } from '../../src/dumps/copy-text.js';

/** The moray columns of a table's COPY block. */
export const COLS = ['_id', '_txn_snap', '_key', '_value', '_etag', '_mtime', '_vnode', 'objectid'];

export type Row = (string | null)[];

export function copyBlock(table: string, rows: Row[], cols = COLS): string[] {
  return [
    `COPY public.${table} (${cols.join(', ')}) FROM stdin;`,
    ...rows.map((r) => r.map(escapeCopyField).join('\t')),
    '\\.',
    '',
  ];
}

/** A plain dump as pg_dump writes one: header comments, COPY blocks, the trailer. */
export function plainDump(blocks: string[][], extra: { afterTrailer?: string[] } = {}): string {
  return [
    '--',
    '-- PostgreSQL database dump',
    '--',
    '',
    ...blocks.flat(),
    '--',
    '-- PostgreSQL database dump complete',
    '--',
    '',
    ...(extra.afterTrailer ?? []),
  ].join('\n');
}
