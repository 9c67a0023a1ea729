/**
 * The report of an experiment directory, made from its stored results only (so `virtlab
 * report DIR` re-renders it at any time):
 *   results.csv/.json   one row per run (membership) with its native baseline and slowdown
 *   summary.csv         mean slowdown and 95% CI per workload, mode, profile, sweep point
 *                       (cycles after boot; whole-run figures as totalSlowdown, totalCycles)
 *   breakdown.csv       cycles per accounting category;  events.csv  exits and hypercalls
 *   charts/NAME.vl.json, .svg, .png
 *   index.html          self-contained, offline (vega, vega-lite, vega-embed inlined)
 *   summary.md
 */
import { refreshReportsIndex } from './report-index.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ColumnTable } from 'arquero';
import type { TopLevelSpec } from 'vega-lite';
import { listFigures, loadProfile } from '../profiles/index.js';
import { writeFileAtomic } from '../trace/run-record.js';
import { getPath } from '../experiment/scenario.js';
import { breakdownChart, eventsChart, overheadChart, sweepChart, timelineChart } from './charts.js';
import { findings } from './findings.js';
import { browserBuilds, renderChart } from './render.js';
import { breakdownTable, eventsTable, loadExperiment, overheadTable, resultsTable, summaryTable, type Experiment } from './tables.js';

type Row = Record<string, unknown>;

/** A chart of the report. */
export interface ReportChart {
  readonly name: string;
  readonly title: string;
  readonly spec: TopLevelSpec;
}

/** What `writeReport` produced. */
export interface ReportOutput {
  readonly files: string[];
  readonly findings: string[];
  readonly charts: readonly ReportChart[];
}

const esc = (s: unknown): string => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (x: unknown, d = 2): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '—');

/** Chooses the timeline's workload: the one whose slowdown varies most across modes. */
function timelineWorkload(summary: Row[]): string | null {
  const base = summary.filter((r) => r.sweep === null);
  let best: string | null = null, spread = -1;
  for (const w of new Set(base.map((r) => String(r.workload)))) {
    const s = base.filter((r) => r.workload === w).map((r) => Number(r.slowdown));
    const d = Math.max(...s) - Math.min(...s);
    if (d > spread) { spread = d; best = w; }
  }
  return best;
}

/** The report's charts, built from the tables. */
export function reportCharts(e: Experiment, summary: Row[], breakdown: Row[], events: Row[]): ReportChart[] {
  const charts: ReportChart[] = [
    { name: 'overhead', title: 'Relative execution time (cycles after boot)', spec: overheadChart(summary) },
    { name: 'breakdown', title: 'Cycle breakdown (after boot)', spec: breakdownChart(breakdown) },
  ];
  if (events.length) charts.push({ name: 'exits', title: 'Exits and hypercalls', spec: eventsChart(events) });
  for (const s of e.manifest.sweeps) {
    if (summary.some((r) => r.sweep === s.name)) charts.push({ name: `sweep-${s.name.replace(/[^A-Za-z0-9_-]+/g, '_')}`, title: `Sweep ${s.name}`, spec: sweepChart(summary, s) });
  }
  const tw = timelineWorkload(summary);
  if (tw !== null) charts.push({ name: 'timeline', title: `Timeline (${tw})`, spec: timelineChart(e, tw) });
  return charts;
}

/** Slowdown matrix (workloads × modes) of one profile, base matrix. */
function slowdownMatrix(summary: Row[], profile: string): { modes: string[]; rows: { workload: string; cells: Row[] }[] } {
  const base = summary.filter((r) => r.sweep === null && r.profile === profile);
  const modes = [...new Set(base.map((r) => String(r.mode)))];
  const rows = [...new Set(base.map((r) => String(r.workload)))].map((w) => ({ workload: w, cells: modes.map((m) => base.find((r) => r.workload === w && r.mode === m) ?? {}) }));
  return { modes, rows };
}

const cellText = (c: Row): string => (c.slowdown === undefined ? '—' : `${fmt(c.slowdown)}${Number(c.n) > 1 ? ` ±${fmt(c.ci)}` : ''}`);
const totalCellText = (c: Row): string => (c.totalSlowdown === undefined ? '—' : fmt(c.totalSlowdown));

/** What the slowdown tables measure (summary.md and index.html). */
const METRIC_NOTE = 'Slowdowns are in cycles after boot: the run\'s cycles minus those at the guest\'s first entry to user mode (where init starts the workload), ÷ native\'s, with the same inputs. Boot is not what the workloads measure, and it is not comparable across modes: pv\'s domain builder builds the initial page tables uncharged (as Xen\'s dom0 builder does) that the native kernel builds itself. Whole-run slowdowns (boot included) are the secondary table and the totalSlowdown column of summary.csv.';

interface ProfileInfo { label: string; id: string; name: string; description: string; path: string; sha256: string; changed: { path: string; from: unknown; to: unknown; source: unknown }[]; figures: { path: string; value: unknown; source: string }[] }

function profileInfo(e: Experiment): ProfileInfo[] {
  return e.manifest.profiles.map((p) => {
    const lp = loadProfile(p.id);
    const json = JSON.parse(readFileSync(lp.path, 'utf8')) as unknown;
    const swept = e.manifest.sweeps.filter((s) => s.target === 'figure' && (s.profiles === null || s.profiles.includes(p.label)));
    const changed = [
      ...Object.entries(p.set).map(([path, to]) => ({ path, from: getPath(json, path), to, source: getPath(json, path.replace(/\.value$/, '.source')) })),
      ...swept.map((s) => ({ path: s.path, from: getPath(json, s.path), to: `swept: ${s.values.join(', ')}`, source: getPath(json, s.path.replace(/\.value$/, '.source')) })),
    ];
    return { label: p.label, id: p.id, name: lp.profile.name, description: lp.profile.description, path: lp.path, sha256: lp.sha256, changed, figures: listFigures(lp.profile) };
  });
}

/** Writes the report files into `dir` (an experiment directory). */
export async function writeReport(dir: string): Promise<ReportOutput> {
  const e = loadExperiment(dir);
  const results = resultsTable(e);
  const over = overheadTable(results);
  const summaryT = summaryTable(over);
  const breakdownT = breakdownTable(e, over);
  const eventsT = eventsTable(e);
  const objs = (t: ColumnTable): Row[] => t.objects() as Row[];
  const summary = objs(summaryT), breakdown = objs(breakdownT), events = objs(eventsT), rows = objs(over);
  const files: string[] = [];
  const put = (name: string, data: string | Uint8Array): void => { writeFileAtomic(join(dir, name), data as string); files.push(name); };
  put('results.csv', over.toCSV());
  put('results.json', JSON.stringify(rows, null, 1) + '\n');
  put('summary.csv', summaryT.toCSV());
  put('breakdown.csv', breakdownT.toCSV());
  put('events.csv', eventsT.toCSV());

  const charts = reportCharts(e, summary, breakdown, events);
  mkdirSync(join(dir, 'charts'), { recursive: true });
  for (const c of charts) {
    const { svg, png } = await renderChart(c.spec);
    put(`charts/${c.name}.vl.json`, JSON.stringify(c.spec, null, 1) + '\n');
    put(`charts/${c.name}.svg`, svg);
    writeFileSync(join(dir, `charts/${c.name}.png`), png);
    files.push(`charts/${c.name}.png`);
  }
  const found = [...findings(summary, breakdown, events, objs(results), e.manifest.sweeps), `Inputs: ${inputsSummary(e)}.`];
  const profiles = profileInfo(e);
  put('summary.md', summaryMarkdown(e, summary, found, charts, profiles));
  put('index.html', reportHtml(e, summary, found, charts, profiles, rows));
  refreshReportsIndex(dir);
  return { files, findings: found, charts };
}

function provenanceRows(e: Experiment): [string, string][] {
  const m = e.manifest, p = m.provenance;
  const images = new Map<string, string>();
  const traces = new Map<string, string>();
  for (const u of m.units) {
    const r = e.results.get(u.id);
    const name = `${u.spec.workload.name} ${Object.entries(u.spec.workload.params).map(([k, v]) => `${k}=${v}`).join(' ')}`.trim();
    if (r?.record) images.set(name, r.record.image.sha256);
    if (r?.trace) {
      const i = u.spec.input;
      const how = i?.kind === 'replay' && 'recipe' in i.trace ? ` (DIR/traces/${i.trace.key}.vlt, recorded natively under ${i.trace.recipe.profile.id}${Object.keys(i.trace.recipe.profile.set).length ? ' with changes' : ''} by virtlab ${i.trace.recipe.recorder})` : ' (the scenario\'s trace file)';
      traces.set(name, `sha256 ${r.trace.sha256}${how}`);
    }
  }
  return [
    ['scenario', `${m.scenario.name} — ${m.scenario.file}`],
    ['scenario sha256', m.scenario.sha256],
    ['virtlab version', p.virtlabVersion],
    ['git commit', p.gitCommit ? `${p.gitCommit}${p.gitDirty ? ' (with uncommitted changes)' : ''}` : 'not available (not a git checkout)'],
    ['Node.js', `${p.node} (${p.platform})`],
    ['seeds', m.seeds ? m.seeds.join(', ') : 'none (workloads at their default seed)'],
    ['runs', `${m.units.length} units, ${e.results.size} stored`],
    ['inputs', inputsSummary(e)],
    ...[...traces.entries()].map(([k, v]): [string, string] => [`trace ${k}`, v]),
    ...[...images.entries()].map(([k, v]): [string, string] => [`image ${k}`, v]),
  ];
}

/** Which runs replayed a recording (paired with native's inputs) and which ran directly. */
export function inputsSummary(e: Experiment): string {
  const by = new Map<string, { replay: number; direct: number; diverged: number }>();
  for (const u of e.manifest.units) {
    const r = e.results.get(u.id);
    const kind = r?.input ?? u.spec.input?.kind;
    if (!kind) continue;
    const c = by.get(u.spec.mode) ?? { replay: 0, direct: 0, diverged: 0 };
    c[kind]++;
    if (r?.divergence) c.diverged++;
    by.set(u.spec.mode, c);
  }
  if (by.size === 0) return 'no runs stored';
  const replayed = [...by].filter(([, c]) => c.replay > 0).map(([m, c]) => `${m} ${c.replay}${c.diverged ? ` (${c.diverged} diverged: failed)` : ''}`);
  const direct = [...by].filter(([, c]) => c.direct > 0).map(([m, c]) => `${m} ${c.direct}`);
  return [
    replayed.length ? `paired by replay of one native recording per workload, parameters and seed: ${replayed.join(', ')}` : 'no run replayed a recording',
    direct.length ? `run directly with the same parameters and seed (not paired: their inputs' timing is their own): ${direct.join(', ')}` : 'no run executed directly',
  ].join('; ');
}

function summaryMarkdown(e: Experiment, summary: Row[], found: string[], charts: readonly ReportChart[], profiles: ProfileInfo[]): string {
  const L: string[] = [`# ${e.manifest.scenario.name}`, ''];
  if (e.manifest.scenario.description) L.push(e.manifest.scenario.description, '');
  L.push('## Findings', '', ...found.map((f) => (f.startsWith('  ') ? f : `- ${f}`)), '');
  if (summary.length) L.push(METRIC_NOTE, '');
  for (const p of profiles) {
    const { modes, rows } = slowdownMatrix(summary, p.label);
    if (!rows.length) continue;
    L.push(`## Slowdown relative to native (cycles after boot): ${p.label}`, '', `| workload | ${modes.join(' | ')} |`, `|---|${modes.map(() => '---:').join('|')}|`);
    for (const r of rows) L.push(`| ${r.workload} | ${r.cells.map(cellText).join(' | ')} |`);
    L.push('');
    L.push(`### Whole-run slowdown (boot included): ${p.label}`, '', `| workload | ${modes.join(' | ')} |`, `|---|${modes.map(() => '---:').join('|')}|`);
    for (const r of rows) L.push(`| ${r.workload} | ${r.cells.map(totalCellText).join(' | ')} |`);
    L.push('');
  }
  L.push('## Charts', '', ...charts.map((c) => `![${c.title}](charts/${c.name}.svg)`), '');
  L.push('## Provenance', '', '| | |', '|---|---|', ...provenanceRows(e).map(([k, v]) => `| ${k} | ${v.replace(/\|/g, '\\|')} |`), '');
  L.push('### Profiles', '');
  for (const p of profiles) {
    L.push(`- **${p.label}** (${p.name}): ${p.path}, sha256 ${p.sha256}`);
    for (const c of p.changed) L.push(`  - ${c.path}: ${String(c.from)} → ${String(c.to)} (source of the original: ${String(c.source ?? '—')})`);
  }
  L.push('');
  return L.join('\n');
}

function reportHtml(e: Experiment, summary: Row[], found: string[], charts: readonly ReportChart[], profiles: ProfileInfo[], rows: Row[]): string {
  const libs = browserBuilds();
  // Inlined code must not close the <script> element early.
  const inline = (js: string): string => js.replace(/<\/(script)/gi, '<\\/$1');
  const json = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');
  const md = (s: string): string => esc(s).replace(/\*\*(.+?)\*\*/g, '<b>$1</b>').replace(/`(.+?)`/g, '<code>$1</code>');
  const H: string[] = [];
  H.push('<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">', `<title>${esc(e.manifest.scenario.name)} — virtlab report</title>`,
    '<style>body{font-family:"DejaVu Sans",system-ui,sans-serif;margin:2em auto;max-width:1300px;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}.chart{margin:1.5em 0;overflow-x:auto}code{background:#f4f4f4;padding:0 3px}details{margin:.5em 0}.fail{color:#a00}</style>',
    `<script>${inline(libs.vega)}</script>`, `<script>${inline(libs.vegaLite)}</script>`, `<script>${inline(libs.vegaEmbed)}</script>`,
    '</head><body>', `<h1>${esc(e.manifest.scenario.name)}</h1>`);
  if (e.manifest.scenario.description) H.push(`<p>${esc(e.manifest.scenario.description)}</p>`);
  H.push('<h2>Findings</h2><ul>');
  for (const f of found) H.push(f.startsWith('  ') ? `<ul><li>${md(f.trim().replace(/^- /, ''))}</li></ul>` : `<li>${md(f)}</li>`);
  H.push('</ul>');
  for (const c of charts) H.push(`<h2>${esc(c.title)}</h2><div class="chart" id="chart-${esc(c.name)}"></div><script type="application/json" id="spec-${esc(c.name)}">${json(c.spec)}</script>`);
  if (summary.length) H.push(`<p>${esc(METRIC_NOTE)}</p>`);
  for (const p of profiles) {
    const { modes, rows: mrows } = slowdownMatrix(summary, p.label);
    if (!mrows.length) continue;
    H.push(`<h2>Slowdown relative to native (cycles after boot): ${esc(p.label)}</h2><table><tr><th>workload</th>${modes.map((m) => `<th>${esc(m)}</th>`).join('')}</tr>`);
    for (const r of mrows) H.push(`<tr><td>${esc(r.workload)}</td>${r.cells.map((c) => `<td>${esc(cellText(c))}</td>`).join('')}</tr>`);
    H.push('</table>');
    H.push(`<details><summary>Whole-run slowdown (boot included): ${esc(p.label)}</summary><table><tr><th>workload</th>${modes.map((m) => `<th>${esc(m)}</th>`).join('')}</tr>`);
    for (const r of mrows) H.push(`<tr><td>${esc(r.workload)}</td>${r.cells.map((c) => `<td>${esc(totalCellText(c))}</td>`).join('')}</tr>`);
    H.push('</table></details>');
  }
  const failed = rows.filter((r) => r.status !== 'ok');
  if (failed.length) {
    H.push('<h2>Failed runs</h2><table><tr><th>workload</th><th>mode</th><th>profile</th><th>error</th></tr>');
    for (const r of failed) H.push(`<tr class="fail"><td>${esc(r.workload)}</td><td>${esc(r.mode)}</td><td>${esc(r.profile)}</td><td style="text-align:left">${esc(r.error ?? r.status)}</td></tr>`);
    H.push('</table>');
  }
  H.push('<p>Data: <a href="results.csv">results.csv</a>, <a href="summary.csv">summary.csv</a>, <a href="breakdown.csv">breakdown.csv</a>, <a href="events.csv">events.csv</a>, <a href="summary.md">summary.md</a>, run files in <code>runs/</code>.</p>');
  H.push('<h2>Provenance</h2><table>', ...provenanceRows(e).map(([k, v]) => `<tr><th>${esc(k)}</th><td style="text-align:left"><code>${esc(v)}</code></td></tr>`), '</table>');
  H.push('<h3>Profiles</h3>');
  for (const p of profiles) {
    H.push(`<details><summary><b>${esc(p.label)}</b> — ${esc(p.name)}: ${esc(p.description)} (<code>${esc(p.path)}</code>, sha256 <code>${esc(p.sha256)}</code>)</summary>`);
    if (p.changed.length) H.push('<p>Changed or swept figures:</p><ul>', ...p.changed.map((c) => `<li><code>${esc(c.path)}</code>: ${esc(c.from)} → ${esc(c.to)} (source of the original: ${esc(c.source ?? '—')})</li>`), '</ul>');
    H.push('<table><tr><th>figure</th><th>value</th><th>source</th></tr>', ...p.figures.map((f) => `<tr><td>${esc(f.path)}</td><td>${esc(f.value)}</td><td style="text-align:left">${esc(f.source)}</td></tr>`), '</table></details>');
  }
  H.push(`<details><summary>Scenario (as given)</summary><pre>${esc(JSON.stringify(e.manifest.scenario.content, null, 2))}</pre></details>`);
  H.push(`<script>
(function () {
  var names = ${json(charts.map((c) => c.name))};
  names.forEach(function (n) {
    var spec = JSON.parse(document.getElementById('spec-' + n).textContent);
    vegaEmbed('#chart-' + n, spec, { actions: false, renderer: 'svg' }).catch(function (err) {
      var el = document.getElementById('chart-' + n);
      el.className += ' render-error';
      el.textContent = 'chart failed to render: ' + err;
      console.error(err);
    });
  });
})();
</script>`, '</body></html>', '');
  return H.join('\n');
}
