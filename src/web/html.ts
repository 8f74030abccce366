/** HTML building blocks for the dashboard's server-rendered pages: escaping and the frame. */
export { formatBytes as bytes } from '../deployment/summary.js';

export function esc(v: string | number | boolean | null | undefined): string {
  return String(v ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A query string from the defined values. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export const NAV: { path: string; label: string }[] = [
  { path: '/runs', label: 'Runs' },
  { path: '/nodes', label: 'Storage nodes' },
  { path: '/rebalance', label: 'Rebalance' },
  { path: '/gc', label: 'GC' },
  { path: '/audit', label: 'Audit' },
  { path: '/cruft', label: 'Cruft' },
  { path: '/usage', label: 'Usage' },
];

/** The page frame; `live` (ms) makes the page refresh its `<main>` by itself. */
export function page(o: { title: string; section: string; body: string; live?: number }): string {
  const nav = NAV.map(
    (n) => `<a href="${n.path}"${n.path === o.section ? ' class="on"' : ''}>${esc(n.label)}</a>`,
  ).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(o.title)} · Remora</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="stylesheet" href="/static/dashboard.css"></head>
<body><header><span class="brand">Remora</span>${nav}</header>
<main${o.live ? ` data-live="${o.live}"` : ''}>${o.body}</main>
<script src="/static/dashboard.js"></script></body></html>`;
}

export function table(head: string[], rows: string[][], numeric: number[] = []): string {
  const th = head.map((h, i) => `<th${numeric.includes(i) ? ' class="num"' : ''}>${esc(h)}</th>`).join('');
  const body = rows
    .map(
      (r) =>
        `<tr>${r.map((c, i) => `<td${numeric.includes(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`,
    )
    .join('');
  return `<table><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s.toFixed(1)} s`;
  const m = s / 60;
  return m < 120 ? `${m.toFixed(1)} min` : `${(m / 60).toFixed(1)} h`;
}
