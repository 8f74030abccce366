/**
 * The usage page: per account, small bar charts of the window's daily summaries (inline SVG drawn
 * here: no chart library, no script, nothing from another host; colours are SVG presentation
 * attributes, which the Content-Security-Policy's `style-src 'self'` allows), and the chosen
 * day's per-account table with the summary file's numbers (`data-usage` names each one's field).
 */
import { BILLABLE_OPERATIONS } from '../jobs/request-metering/request-metering.rules.js';
import { USAGE_TABLE_COLUMNS } from '../jobs/usage-summary/usage-summary.rules.js';
import {
  USAGE_METRICS,
  type SummaryDay,
  type UsageMetric,
  type UsageView,
} from '../deployment/views/usage.js';
import { bytes, esc, page, qs, table } from './html.js';

const big = (s: string) => BigInt(s).toLocaleString('en-US');

const METRIC_LABEL: Record<UsageMetric, string> = {
  storageGBHours: 'storage GB-hours',
  requests: 'requests',
  bandwidthIn: 'bandwidth in',
  bandwidthOut: 'bandwidth out',
  computeGBSeconds: 'compute GB-seconds',
};
const IS_BYTES: Record<UsageMetric, boolean> = {
  storageGBHours: false,
  requests: false,
  bandwidthIn: true,
  bandwidthOut: true,
  computeGBSeconds: false,
};

const CHART_W = 240;
const CHART_H = 72;
/** Room above the bars for the label line. */
const CHART_TOP = 16;
const BAR = '#4a7bd0';
const BAR_ON = '#1d2433';
const GAP = '#e6e9ef';

function shown(m: UsageMetric, v: string): string {
  return IS_BYTES[m] ? bytes(Number(v)) : big(v);
}

/** One metric of one account over the window: a bar a day; a grey full-height band where no summary exists. */
export function usageChart(
  v: Pick<UsageView, 'days' | 'date'>,
  account: string,
  m: UsageMetric,
  values: (string | null)[],
): string {
  const n = v.days.length;
  const w = CHART_W / n;
  const plot = CHART_H - CHART_TOP;
  const max = values.reduce<number>((x, s) => (s === null ? x : Math.max(x, Number(s))), 0);
  const bars = values
    .map((s, i) => {
      const day = v.days[i]!;
      const x = (i * w).toFixed(2);
      const width = Math.max(1, w - (w > 3 ? 1 : 0)).toFixed(2);
      if (s === null)
        return `<rect data-day="${day}" data-gap x="${x}" y="${CHART_TOP}" width="${width}" height="${plot}" fill="${GAP}"><title>${day}: no summary</title></rect>`;
      const h = max > 0 ? Math.max(Number(s) > 0 ? 1 : 0, (Number(s) / max) * plot) : 0;
      return `<rect data-day="${day}" data-value="${esc(s)}" x="${x}" y="${(CHART_H - h).toFixed(2)}" width="${width}" height="${h.toFixed(2)}" fill="${day === v.date ? BAR_ON : BAR}"><title>${day}: ${esc(shown(m, s))}</title></rect>`;
    })
    .join('');
  const label = `${METRIC_LABEL[m]} · max ${max > 0 ? esc(IS_BYTES[m] ? bytes(max) : max.toLocaleString('en-US')) : '0'}`;
  return `<svg class="chart" data-chart="${m}" data-account="${esc(account)}" role="img" aria-label="${esc(account)}: ${esc(METRIC_LABEL[m])}, ${v.days[0]} to ${v.days.at(-1)}" width="${CHART_W}" height="${CHART_H}" viewBox="0 0 ${CHART_W} ${CHART_H}">
<text x="2" y="11" font-size="11" fill="#1d2433">${label}</text>
<line x1="0" y1="${CHART_H - 0.5}" x2="${CHART_W}" y2="${CHART_H - 0.5}" stroke="#b9c0cc" stroke-width="1"/>${bars}</svg>`;
}

function summaryLine(s: SummaryDay): string {
  const run =
    s.runId !== null
      ? `<a href="/runs/${s.runId}">run ${s.runId}</a>, verdict <b data-summary-verdict>${esc(s.verdict)}</b>`
      : `<span class="muted">its run is past the run retention</span>`;
  const missing = s.missing.length
    ? `<p class="bad" data-missing="${s.missing.length}">Incomplete: the summary ran past its deadline without ${s.missing.length} input(s): ${esc(s.missing.slice(0, 6).join(', '))}${s.missing.length > 6 ? ` and ${s.missing.length - 6} more` : ''}.</p>`
    : '';
  return `<p>summary of <b data-summary-day>${esc(s.day)}</b>: ${run} · <code>${esc(s.path)}</code></p>${missing}`;
}

function dayTable(v: UsageView): string {
  if (v.date === null) return '<p class="muted">no usage summary has committed in these days</p>';
  const s = v.table.summary;
  if (!s)
    return `<p class="muted" data-no-summary>no committed usage summary for ${esc(v.date)} (a day's summary runs once the day has ended and its metering hours have committed)</p>`;
  const cell = (acc: string, field: string, value: string) =>
    `<span data-usage="${field}" data-account="${esc(acc)}">${big(value)}</span>`;
  const rows = v.table.rows.map((r) => [
    esc(r.account),
    cell(r.account, 'storageGBHours', r.storageGBHours),
    ...BILLABLE_OPERATIONS.map((op) => cell(r.account, `requests.${op}`, r.requests[op] ?? '0')),
    cell(r.account, 'bandwidthBytes.in', r.bandwidthBytes.in),
    cell(r.account, 'bandwidthBytes.out', r.bandwidthBytes.out),
    cell(r.account, 'computeGBSeconds', r.computeGBSeconds),
    cell(r.account, 'computeBandwidthBytes.in', r.computeBandwidthBytes.in),
    cell(r.account, 'computeBandwidthBytes.out', r.computeBandwidthBytes.out),
  ]);
  const head = USAGE_TABLE_COLUMNS;
  return (
    summaryLine(s) +
    (rows.length
      ? table(
          head,
          rows,
          head.map((_, i) => i).filter((i) => i > 0),
        )
      : '<p class="muted">no account had usage that day</p>')
  );
}

export function usagePage(v: UsageView): string {
  const have = v.summaries.filter((s) => s !== null);
  const degraded = have.filter((s) => s.missing.length > 0).map((s) => s.day);
  const filters = `<form class="filters" method="get" action="/usage">
<label>day <input name="date" size="10" value="${esc(v.date ?? '')}" placeholder="YYYY-MM-DD"></label>
<label>days <input name="days" size="3" value="${v.days.length}"></label>
<label>account <input name="account" size="12" value="${esc(v.account ?? '')}" placeholder="all"></label>
<button type="submit">show</button></form>`;
  const charts = v.accounts.length
    ? v.accounts
        .map(
          (a) =>
            `<section class="usage-account" data-account-charts="${esc(a.account)}"><h3><a href="/usage${qs({ account: a.account, days: v.days.length, date: v.date })}">${esc(a.account)}</a></h3><div class="charts">${USAGE_METRICS.map((m) => usageChart(v, a.account, m, a.series[m])).join('')}</div></section>`,
        )
        .join('')
    : '<p class="muted">no account in these days\' summaries</p>';
  const body = `<h1>Usage</h1>${filters}
<p class="muted">the committed daily usage summaries (usage-summary; docs/metering.md "Daily summary") of
${esc(v.days[0])} – ${esc(v.days.at(-1))}: <b data-summary-days>${have.length}</b> of ${v.days.length} days have one;
grey bands are days without a summary (not zero)${degraded.length ? `; <span class="bad">incomplete: ${esc(degraded.join(', '))}</span>` : ''}</p>
<h2>The day's table${v.date ? `: ${esc(v.date)}` : ''}</h2>${dayTable(v)}
<h2>Per account, ${v.days.length} days</h2>${charts}`;
  return page({ title: 'Usage', section: '/usage', body });
}
