/**
 * The dashboard's pages, rendered on the server from the same read models as `GET /api/…` and
 * the CLI's `--json` (src/pipeline/views.ts, src/deployment/views/). Every number on a page is a
 * field of its API answer.
 */
import type { RunGrid, RunPage } from '../pipeline/views.js';
import { CELL_ORDER } from '../pipeline/views.js';
import type { NodesView } from '../deployment/views/nodes.js';
import type { AuditView } from '../deployment/views/audit.js';
import type { CruftView } from '../deployment/views/cruft.js';
import type { NodeAccount } from '../jobs/cruft/cruft.scan.js';
import type { GcView } from '../deployment/views/gc.js';
import type { RebalanceView } from '../deployment/views/rebalance.js';
import { bytes, duration, esc, page, qs, table } from './html.js';

const LIVE_MS = 2000;
const num = (n: number) => n.toLocaleString('en-US');

export function runsPage(g: RunGrid): string {
  const active = Object.values(g.cells).some((row) =>
    Object.values(row).some((c) => c.cell === 'running' || c.cell === 'waiting'),
  );
  const key = CELL_ORDER.map((c) => `<span class="c-${c}">${c}</span>`).join('');
  const jobOpts = ['', ...g.jobs]
    .map(
      (j) =>
        `<option value="${esc(j)}"${j === (g.filters.job ?? '') ? ' selected' : ''}>${esc(j || 'all jobs')}</option>`,
    )
    .join('');
  const stateOpts = ['', ...CELL_ORDER]
    .map(
      (s) =>
        `<option value="${s}"${s === (g.filters.state ?? '') ? ' selected' : ''}>${s || 'any state'}</option>`,
    )
    .join('');
  const filters = `<form class="filters" method="get" action="/runs">
<label>job <select name="job">${jobOpts}</select></label>
<label>state <select name="state">${stateOpts}</select></label>
<label>days per page <input name="days" size="3" value="${g.pageDays}"></label>
<button type="submit">show</button></form>`;
  const head = `<tr><th>day</th>${g.jobs.map((j) => `<th>${esc(j)}</th>`).join('')}</tr>`;
  const rows = g.days
    .map((d) => {
      const cells = g.jobs
        .map((j) => {
          const c = g.cells[d]?.[j];
          if (!c) return '<td class="cell muted">·</td>';
          const parts =
            c.partitions > 1
              ? ` <span title="partitions">${Object.entries(c.byCell)
                  .map(([k, n]) => `${n} ${k}`)
                  .join(', ')}</span>`
              : '';
          return `<td class="cell c-${c.cell}" data-day="${d}" data-job="${esc(j)}" data-cell="${c.cell}"><a href="/runs/${c.runId}" title="run ${c.runId}"><b>${c.cell}</b>${parts}<br><span data-records>${num(c.records)}</span> rec · ${esc(duration(c.durationMs))}</a></td>`;
        })
        .join('');
      return `<tr><th>${d}</th>${cells}</tr>`;
    })
    .join('');
  const link = (p: number | null, label: string) =>
    p === null
      ? `<span class="muted">${label}</span>`
      : `<a href="/runs${qs({ page: p, days: g.pageDays, job: g.filters.job, state: g.filters.state })}">${label}</a>`;
  const body = `<h1>Runs</h1>
<p class="key">${key}</p>${filters}
<p class="pager">${link(g.newerPage, '← newer')} ${link(g.olderPage, 'older →')}
<span class="muted">${g.days.at(-1)} – ${g.days[0]}; first recorded day ${esc(g.firstDay ?? 'none')}</span></p>
<table class="grid"><thead>${head}</thead><tbody>${rows}</tbody></table>`;
  return page({
    title: 'Runs',
    section: '/runs',
    body,
    ...(active && g.page === 0 ? { live: LIVE_MS } : {}),
  });
}

export function runPage(p: RunPage): string {
  const r = p.run;
  const rep = r.report;
  const counters = rep
    ? table(
        ['counter', 'value'],
        Object.entries(rep.counters).map(([k, v]) => [
          esc(k),
          `<span data-counter="${esc(k)}">${num(v)}</span>`,
        ]),
        [1],
      )
    : '<p class="muted">no report yet</p>';
  const events = p.events.length
    ? table(
        ['severity', 'kind', 'count', 'examples'],
        p.events.map((e) => [
          `<span class="${e.severity === 'info' ? '' : 'bad'}">${esc(e.severity)}</span>`,
          esc(e.kind),
          `<span data-event="${esc(e.kind)}">${num(e.count)}</span>`,
          e.examples
            .map((x) => `<pre>${esc(typeof x === 'string' ? x : JSON.stringify(x, null, 1))}</pre>`)
            .join(''),
        ]),
        [2],
      )
    : '<p class="muted">no events</p>';
  const phases = p.phases.length
    ? table(
        ['phase', 'duration'],
        p.phases.map((x) => [esc(x.phase), esc(duration(x.ms))]),
        [1],
      )
    : '<p class="muted">none recorded</p>';
  const tasks = p.tasks.length
    ? table(
        ['task', 'state', 'attempts', 'error'],
        p.tasks.map((t) => [
          esc(t.key),
          esc(t.state),
          String(p.attempts.filter((a) => a.taskKey === t.key).length),
          esc(t.error ?? ''),
        ]),
        [2],
      )
    : '<p class="muted">no tasks</p>';
  const attempts = p.attempts.length
    ? table(
        ['attempt', 'task', 'try', 'worker', 'state', 'started', 'finished', 'error'],
        p.attempts.map((a) => [
          String(a.id),
          esc(a.taskKey),
          String(a.engineAttempt),
          esc(a.worker),
          esc(a.state),
          esc(new Date(a.startedAt).toISOString()),
          esc(a.finishedAt ? new Date(a.finishedAt).toISOString() : ''),
          esc(a.error ?? ''),
        ]),
      )
    : '<p class="muted">no attempts</p>';
  const alerts = p.alerts.length
    ? table(
        ['kind', 'message'],
        p.alerts.map((a) => [esc(a.kind), esc(a.message)]),
      )
    : '<p class="muted">no alerts</p>';
  const upstream = p.upstream.length
    ? table(
        ['job', 'partition', 'run', 'verdict'],
        p.upstream.map((u) => [
          esc(u.job),
          esc(u.partitionKey),
          `<a class="upstream" href="/runs/${u.runId}">run ${u.runId}</a>`,
          esc(u.verdict ?? ''),
        ]),
      )
    : '<p class="muted">none</p>';
  const state = r.state === 'succeeded' ? (r.verdict ?? 'ok') : r.state;
  const body = `<h1>Run ${r.id}: ${esc(r.job)} ${esc(r.partitionKey)}</h1>
<p>day <a href="/runs${qs({ job: r.job })}">${esc(r.day)}</a> · attempt ${r.seq} · trigger ${esc(r.trigger)} ·
state <b class="c-${esc(state)}" data-state>${esc(r.state)}</b> · verdict <b data-verdict>${esc(r.verdict ?? '')}</b></p>
${r.error ? `<p class="bad">${esc(r.error)}</p>` : ''}${r.waitingOn ? `<p class="muted">waiting on ${esc(r.waitingOn)}</p>` : ''}
${rep?.verdictReasons?.length ? `<ul>${rep.verdictReasons.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : ''}
<h2>Rerun</h2><p><code class="cmd">${esc(p.rerun.alone)}</code><br><code class="cmd">${esc(p.rerun.withDownstream)}</code></p>
<h2>Counters</h2>${counters}<h2>Events</h2>${events}<h2>Phases</h2>${phases}
<h2>Upstream runs</h2>${upstream}<h2>Tasks</h2>${tasks}<h2>Attempts</h2>${attempts}<h2>Alerts</h2>${alerts}`;
  const live = r.state === 'running' || r.state === 'waiting';
  return page({ title: `Run ${r.id}`, section: '/runs', body, ...(live ? { live: LIVE_MS } : {}) });
}

/**
 * A fill bar: an SVG whose filled part is a `width` attribute. Not `style="width:…"`: the
 * Content-Security-Policy's `style-src 'self'` refuses inline styles, and the bars were drawn
 * full whatever the figure (test-browser: barToScale).
 */
function fillBar(pct: number, hot: boolean): string {
  const w = Math.min(100, Math.max(0, pct)).toFixed(1);
  return `<svg class="bar" data-bar width="160" height="12" viewBox="0 0 100 12" preserveAspectRatio="none" aria-hidden="true"><rect width="100" height="12" class="bar-bg"/><rect data-bar-fill width="${w}" height="12" class="${hot ? 'bar-hot' : 'bar-fill'}"/></svg>`;
}

export function nodesPage(v: NodesView): string {
  const dcs = v.datacenters
    .map((dc) => {
      const rows = dc.nodes.map((n) => {
        const pct = n.percentUsed ?? 0;
        return [
          esc(n.id),
          n.percentUsed === null
            ? '<span class="muted">no heartbeat</span>'
            : `${fillBar(pct, pct > v.maxUtilizationPct)} <span data-fill>${pct}%</span>`,
          n.writesEnabled
            ? '<span class="good" data-writes>enabled</span>'
            : `<span class="bad" data-writes>disabled</span> <span class="muted">${esc(n.writesDisabledBecause)}</span>`,
          esc(n.heartbeatAgeMs === null ? '' : duration(n.heartbeatAgeMs)),
          `<span data-copies>${num(n.copies)}</span>`,
          esc(bytes(n.copyBytes)),
          n.tombstone.state === 'ok'
            ? `<span data-tombstone>${esc(bytes(n.tombstone.bytes))}</span> in ${n.tombstone.files} files`
            : `<span class="muted">${esc(n.tombstone.state)}</span>`,
          esc(n.tombstone.nextPurgeDay ?? ''),
          !n.manifest
            ? '<span class="muted">none</span>'
            : ('runId' in n.manifest
                ? `<a href="/runs/${n.manifest.runId}">${esc(n.manifest.startedAt)}</a>, <span data-manifest-files>${num(n.manifest.files)}</span> files`
                : '') +
              (n.manifest.notReached
                ? ` <a class="bad" href="/runs/${n.manifest.notReached.runId}">not reached ${esc(n.manifest.notReached.day)}</a>`
                : ''),
          n.auditProblems === null
            ? '<span class="muted">no audit</span>'
            : `<a href="/audit"${n.auditProblems > 0 ? ' class="bad"' : ''} data-audit-problems>${num(n.auditProblems)}</a>`,
        ];
      });
      return `<h2>Datacenter ${esc(dc.datacenter)}</h2>${table(
        [
          'node',
          'fill',
          'writes',
          'heartbeat age',
          'copies',
          'copy bytes',
          'tombstone',
          'next purge',
          'latest manifest',
          'audit problems',
        ],
        rows,
        [4, 5, 9],
      )}`;
    })
    .join('');
  const body = `<h1>Storage nodes</h1>
<p class="muted">writes go to nodes with a heartbeat younger than ${v.lagMs / 1000} s and at most ${v.maxUtilizationPct}% full</p>${dcs}`;
  return page({ title: 'Storage nodes', section: '/nodes', body, live: 5000 });
}

export function rebalancePage(v: RebalanceView): string {
  const jobs = v.jobs.length
    ? table(
        ['job', 'created', 'evacuate', 'objects', 'done', 'left', 'skipped/errors', ''],
        v.jobs.map((j) => [
          `<a href="/rebalance${qs({ job: j.jobId })}">${esc(j.jobId)}</a>`,
          esc(j.createdAt),
          esc(j.evacuate ?? ''),
          num(j.total),
          num(j.done),
          num(j.left),
          num(j.problems),
          j.active ? '<b>active</b>' : '',
        ]),
        [3, 4, 5, 6],
      )
    : '<p class="muted">no rebalance job yet</p>';
  let detail = '';
  const j = v.job;
  if (j) {
    const pct = j.total.objects ? (100 * j.done.objects) / j.total.objects : 0;
    const problems = j.problems.length
      ? j.problems
          .map(
            (p) =>
              `<h3>${esc(p.state)}: ${esc(p.reason)} (<span data-reason="${esc(p.reason)}">${num(p.objects)}</span>)</h3>${table(
                ['object', 'bytes', 'attempts', 'detail'],
                p.examples.map((o) => [
                  esc(o.objectId),
                  num(o.bytes),
                  String(o.attempts),
                  esc(o.detail ?? ''),
                ]),
                [1, 2],
              )}${p.objects > p.examples.length ? `<p class="muted">and ${num(p.objects - p.examples.length)} more</p>` : ''}`,
          )
          .join('')
      : '<p class="muted">none</p>';
    detail = `<h2>Job ${esc(j.jobId)}${j.active ? ' (active)' : ''}</h2>
<p>${fillBar(pct, false)}
done <b data-done>${num(j.done.objects)}</b> / <span data-total>${num(j.total.objects)}</span> objects
(${esc(bytes(j.done.bytes))} / ${esc(bytes(j.total.bytes))}), left <b data-left>${num(j.left.objects)}</b> (${esc(bytes(j.left.bytes))}),
rate ${j.rate.objectsPerSecond.toFixed(1)} obj/s ${esc(bytes(Math.round(j.rate.bytesPerSecond)))}/s,
ETA ${j.etaSeconds === null ? '?' : esc(duration(j.etaSeconds * 1000))}</p>
${table(
  ['state', 'objects', 'bytes'],
  Object.entries(j.byState).map(([s, c]) => [
    esc(s),
    `<span data-state-count="${esc(s)}">${num(c.objects)}</span>`,
    esc(bytes(c.bytes)),
  ]),
  [1, 2],
)}
<h2>Skipped and errors by reason</h2>${problems}`;
  }
  const body = `<h1>Rebalance</h1>${jobs}${detail}`;
  return page({ title: 'Rebalance', section: '/rebalance', body, ...(j?.active ? { live: LIVE_MS } : {}) });
}

export function gcPage(v: GcView): string {
  const l = v.latest;
  const latest = l
    ? `<p>latest committed run: <a href="/runs/${l.runId}">run ${l.runId}</a> for ${esc(l.day)}, verdict <b>${esc(l.verdict)}</b></p>
<pre data-gc-output>${esc(JSON.stringify(l.output, null, 2))}</pre>`
    : '<p class="muted">no gc run has committed yet</p>';
  const b = v.live;
  const live = table(
    ['backlog now', 'delete records', 'copies', 'bytes'],
    [
      [
        'waiting for grace',
        num(b.waitingForGrace.records),
        num(b.waitingForGrace.copies),
        esc(bytes(b.waitingForGrace.bytes)),
      ],
      [
        'past grace, next run moves',
        `<span data-eligible>${num(b.eligibleNotMoved.records)}</span>`,
        num(b.eligibleNotMoved.copies),
        esc(bytes(b.eligibleNotMoved.bytes)),
      ],
      ['past grace, record only', num(b.cleanupOnly.records), '', ''],
      ['malformed', num(b.malformed), '', ''],
    ],
    [1, 2, 3],
  );
  const tomb = table(
    ['node', 'state', 'days', 'files', 'bytes', 'oldest', 'next purge'],
    v.tombstone.map((t) => [
      esc(t.node),
      esc(t.state),
      num(t.days),
      num(t.files),
      esc(bytes(t.bytes)),
      esc(t.oldestDay ?? ''),
      esc(t.nextPurgeDay ?? ''),
    ]),
    [2, 3, 4],
  );
  const body = `<h1>Garbage collection</h1>
<p class="muted">grace ${duration(v.graceMs)}, tombstones kept ${v.retentionDays} days</p>
<h2>Latest run</h2>${latest}<h2>Live backlog</h2>${live}<h2>Tombstones</h2>${tomb}`;
  return page({ title: 'GC', section: '/gc', body });
}

export function auditPage(v: AuditView): string {
  const a = v.latest;
  if (!a)
    return page({
      title: 'Audit',
      section: '/audit',
      body: '<h1>Audit</h1><p class="muted">no audit has committed within the run retention</p>',
    });
  const x = a.output;
  const counts = (title: string, m: Record<string, number>) =>
    table(
      [title, 'problems'],
      Object.entries(m)
        .sort(([p], [q]) => p.localeCompare(q))
        .map(([k, n]) => [esc(k), `<span data-${title}="${esc(k)}">${num(n)}</span>`]),
      [1],
    );
  const list = table(
    ['kind', 'node', 'objectId', 'key', 'shard'],
    v.problems.map((p) => [esc(p.kind), esc(p.node), esc(p.objectId), esc(p.key), esc(p.shard)]),
  );
  const shown =
    x.problems > v.problems.length
      ? `<p class="muted">the first ${num(v.problems.length)} of <b>${num(x.problems)}</b> (more: <a href="/audit${qs({ date: a.day, limit: String(Math.min(10_000, x.problems)) })}">up to 10,000</a>, or <code>remora audit show --date ${esc(a.day)} --json</code>)</p>`
      : '';
  const body = `<h1>Audit</h1>
<p>audit of ${esc(a.day)}: <a href="/runs/${a.runId}">run ${a.runId}</a>, verdict <b>${esc(a.verdict)}</b></p>
${table(
  ['object records checked', 'copies checked', 'problems'],
  [
    [
      `<span data-records-checked>${num(x.recordsChecked)}</span>`,
      `<span data-copies-checked>${num(x.copiesChecked)}</span>`,
      `<span data-problems>${num(x.problems)}</span>`,
    ],
  ],
  [0, 1, 2],
)}
<p class="muted">compared: ${x.snapshots.map((s) => `snapshot ${esc(s.shard)} at ${esc(s.snapshotTime)}`).join('; ')}${x.listings.length ? '; ' : ''}${x.listings.map((l) => `listing ${esc(l.node)} started ${esc(l.startedAt)}`).join('; ')}</p>
<h2>By kind</h2>${counts('kind', x.byKind)}<h2>By node</h2>${counts('node', x.byNode)}
<h2>Problems</h2>${shown}${list}`;
  return page({ title: 'Audit', section: '/audit', body });
}

export function cruftPage(v: CruftView): string {
  const perNode = (nodes: CruftView['onDemand'][number]['nodes']) =>
    table(
      ['node', 'files', 'bytes'],
      nodes.map((n) => [
        esc(n.node),
        `<span data-cruft-files="${esc(n.node)}">${num(n.files)}</span>`,
        esc(bytes(n.bytes)),
      ]),
      [1, 2],
    );
  // Every listed file by class, as `remora cruft plan` prints it (live + gc-pending + too-new + cruft = listed).
  const classes = (nodes: NodeAccount[] | undefined) => {
    if (!nodes?.length) return '';
    const fb = (c: { files: number; bytes: number }) => `${num(c.files)} (${esc(bytes(c.bytes))})`;
    const cell = (node: string, cls: string, c: { files: number; bytes: number }) =>
      `<span data-class="${cls}" data-node="${esc(node)}">${fb(c)}</span>`;
    return `<p class="muted">every listed file, by class (live + gc-pending + too-new + cruft = listed; gc-pending files are GC's, never cruft's)</p>${table(
      ['node', 'listed', 'live', 'gc-pending', 'too-new', 'cruft'],
      nodes.map((n) => [
        esc(n.node),
        cell(n.node, 'listed', n.listed),
        cell(n.node, 'live', n.live),
        cell(n.node, 'gcPending', n.gcPending),
        cell(n.node, 'tooNew', n.tooNew),
        cell(n.node, 'cruft', n.cruft),
      ]),
      [1, 2, 3, 4, 5],
    )}`;
  };
  const examples = (xs: unknown[]) =>
    xs.length ? `<pre>${esc(xs.map((x) => JSON.stringify(x)).join('\n'))}</pre>` : '';
  const daily = v.runs.length
    ? v.runs
        .map(
          (
            r,
          ) => `<h3>${esc(r.day)}: <a href="/runs/${r.runId}">run ${r.runId}</a>, ${r.output.dryRun ? 'plan' : 'run'}, verdict <b>${esc(r.verdict)}</b></h3>
<p>${num(r.output.candidates)} candidates, <b>${num(r.files)}</b> files (${esc(bytes(r.bytes))}) confirmed${r.output.dryRun ? '' : ' and moved to tombstone'}; <b>${num(r.refused)}</b> refused by the live re-check</p>
${perNode(r.nodes)}${classes(r.output.nodes)}${r.events
            .map((e) => `<p>${esc(e.kind)} (${esc(e.severity)}, ${num(e.count)})</p>${examples(e.examples)}`)
            .join('')}`,
        )
        .join('')
    : `<p class="muted">${v.enabledDaily ? 'no daily cruft run has committed yet' : 'cruft does not run daily here (pipeline.jobs.cruft.enabled); see the on-demand plans and runs below'}</p>`;
  const manual = v.onDemand.length
    ? v.onDemand
        .map(
          (
            d,
          ) => `<h3 data-on-demand="${d.kind}">remora cruft ${d.kind} --date ${esc(d.day)} <span class="muted">at ${esc(d.at)}</span></h3>
<p><b data-candidates>${num(d.candidates)}</b> candidates before the live re-check${
            d.confirmed !== undefined
              ? `, <b data-confirmed>${num(d.confirmed)}</b> confirmed${d.kind === 'run' ? ' and moved to tombstone' : ''}`
              : ` (what the command printed says how many it confirmed${d.kind === 'run' ? ' and moved' : ''})`
          }</p>
${perNode(d.nodes)}${classes(d.classes)}${examples(d.examples)}`,
        )
        .join('')
    : '<p class="muted">no <code>remora cruft plan | run</code> yet</p>';
  const body = `<h1>Cruft</h1>
<p class="muted">files on the storage nodes that no record references, older than the earliest snapshot minus a margin (docs/audit.md "Cruft")</p>
<h2>Daily runs</h2>${daily}<h2>On-demand plans and runs</h2>${manual}`;
  return page({ title: 'Cruft', section: '/cruft', body });
}

/** A section whose job is being built elsewhere: an honest frame, clearly not data. */
export function notYetPage(section: string, title: string, what: string): string {
  const body = `<h1>${esc(title)}</h1>
<div class="placeholder" data-not-yet><b>Not yet available.</b> ${esc(what)} This page fills in when that job lands in the pipeline.</div>`;
  return page({ title, section, body });
}

export function loginPage(failed: boolean): string {
  const body = `<h1>Sign in</h1>
<p>This dashboard is bound to a non-loopback address: enter the operator token (<code>&lt;state-dir&gt;/operator-token</code>).</p>
${failed ? '<p class="bad">wrong token</p>' : ''}
<form method="post" action="/login"><input type="password" name="token" size="50" autofocus> <button type="submit">sign in</button></form>`;
  return page({ title: 'Sign in', section: '', body });
}

export function errorPage(status: number, code: string, message: string): string {
  return page({
    title: `${status}`,
    section: '',
    body: `<h1>${status} ${esc(code)}</h1><p>${esc(message)}</p>`,
  });
}
