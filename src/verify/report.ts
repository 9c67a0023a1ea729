/**
 * The mutant table as a self-contained HTML report (`virtlab verify --mutants --html FILE`,
 * or `-o DIR` for DIR/index.html beside the chart files): a table (mutant, caught, property,
 * runs and seconds to the first counterexample, shrunk counterexample) and a Vega-Lite chart
 * of the mean time to failure per mutant. With `-o` the chart is rendered to SVG and PNG by
 * the experiment reports' renderer (src/analysis/render.ts) and the SVG is inlined; the HTML
 * also carries the spec and the inlined vega/vega-lite/vega-embed builds (offline, as the
 * experiment reports are), which draw it when no rendering is inlined.
 */
import { refreshReportsIndex } from '../analysis/report-index.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TopLevelSpec } from 'vega-lite';
import { browserBuilds } from '../analysis/render.js';
import type { MutantResult } from './mutation.js';

/** Vega-Lite bar chart: mean seconds to the first counterexample per mutant (log scale). */
export function timeToFailureChart(results: readonly MutantResult[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Mean time to the first counterexample per mutant',
    width: 520,
    data: { values: results.map((r) => ({ mutant: r.mutant, seconds: r.meanSeconds ?? null, runs: r.meanRuns ?? null, caught: r.caught ? `caught ${r.caughtSeeds}/${r.seeds}` : 'not caught', property: r.property ?? '' })) },
    // Seconds below 10 ms are drawn at 10 ms; a log-scale bar needs an explicit base (x2).
    transform: [{ calculate: 'datum.seconds === null ? null : max(datum.seconds, 0.01)', as: 'shown' }],
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'mutant', type: 'nominal', sort: null, title: null },
      x: { field: 'shown', type: 'quantitative', scale: { type: 'log', domainMin: 0.01 }, title: 'seconds (mean over the seeds that caught it, log)' },
      x2: { datum: 0.01 },
      color: { field: 'caught', type: 'nominal', title: null },
      tooltip: [{ field: 'mutant' }, { field: 'seconds', format: '.3f' }, { field: 'runs', format: '.1f' }, { field: 'property' }],
    },
  } as TopLevelSpec;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The HTML report (deterministic for the same results). */
export function mutantReportHtml(results: readonly MutantResult[], meta: { seeds: number; runs: number }, svg: string | null = null): string {
  const b = browserBuilds();
  const rows = results.map((r) => `<tr><td>${esc(r.mutant)}</td><td>${esc(r.description)}</td><td>${r.caught ? `yes (${r.caughtSeeds}/${r.seeds})` : '<b>no</b>'}</td>`
    + `<td>${esc(r.property ?? '')}</td><td>${r.meanRuns?.toFixed(1) ?? ''}</td><td>${r.meanSeconds?.toFixed(3) ?? ''}</td>`
    + `<td>${r.counterexample ? `${esc(r.counterexample.message)}<pre>${esc(r.counterexample.listing.join('\n'))}</pre>` : ''}`
    + `${r.counterexampleFile ? `file: <a href="${esc(r.counterexampleFile)}">${esc(r.counterexampleFile)}</a> (<code>virtlab verify --replay</code>)` : ''}</td></tr>`).join('\n');
  const caught = results.filter((r) => r.caught).length;
  const spec = JSON.stringify(timeToFailureChart(results)).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>virtlab: mutants</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}pre{margin:4px 0;font-size:12px}</style>
<script>${b.vega}</script><script>${b.vegaLite}</script><script>${b.vegaEmbed}</script>
</head><body>
<h1>Mutation analysis of the verifier</h1>
<p>${caught} of ${results.length} mutants caught; ${meta.seeds} seed(s), at most ${meta.runs} generated guests per property per seed (docs/verification.md). Each counterexample file replays with <code>virtlab verify --replay FILE</code>: it fails with its mutant and passes with <code>--mutant none</code>.</p>
<div id="chart">${svg ?? ''}</div>
${svg === null ? `<script>vegaEmbed('#chart', ${spec}, { actions: false, renderer: 'svg' });</script>` : '<p>Chart: <a href="charts/time-to-failure.svg">SVG</a>, <a href="charts/time-to-failure.png">PNG</a>, <a href="charts/time-to-failure.vl.json">Vega-Lite spec</a>; data: <a href="mutants.json">mutants.json</a>.</p>'}
<table><tr><th>mutant</th><th>bug</th><th>caught</th><th>by</th><th>mean runs</th><th>mean s</th><th>shrunk counterexample</th></tr>
${rows}
</table></body></html>
`;
}

/**
 * Writes the mutant report into `dir` (e.g. reports/verify): index.html, mutants.json and
 * charts/time-to-failure.{vl.json,svg,png}. The chart is rendered in a child process (see
 * render-chart.ts); if that fails the HTML falls back to drawing it in the browser, and the
 * error is returned. Returns the files written.
 */
export function writeMutantReport(dir: string, results: readonly MutantResult[], meta: { seeds: number; runs: number }): { files: string[]; renderError: string | null } {
  mkdirSync(join(dir, 'charts'), { recursive: true });
  const files: string[] = [];
  const put = (name: string, text: string): void => { writeFileSync(join(dir, name), text); files.push(name); };
  put('mutants.json', JSON.stringify({ schema: 'virtlab.mutants/1', ...meta, results }, null, 2) + '\n');
  const specFile = join(dir, 'charts/time-to-failure.vl.json');
  put('charts/time-to-failure.vl.json', JSON.stringify(timeToFailureChart(results), null, 1) + '\n');
  // The renderer next to this module (.ts when run from source through the ts loader, .js when built).
  const self = fileURLToPath(import.meta.url);
  const script = self.replace(/report\.(ts|js)$/, 'render-chart.$1');
  // From source, the child needs the TypeScript loader (present in execArgv under
  // `node --import ./scripts/ts-register.mjs`, absent under vitest).
  const root = join(dirname(self), '..', '..');
  const loader = script.endsWith('.ts') && !process.execArgv.some((a) => a.includes('ts-register') || a.includes('ts-node'))
    ? ['--import', pathToFileURL(join(root, 'scripts/ts-register.mjs')).href] : [];
  const r = spawnSync(process.execPath, [...process.execArgv, ...loader, script, resolve(specFile), resolve(dir, 'charts/time-to-failure')], { encoding: 'utf8', cwd: loader.length > 0 ? root : process.cwd() });
  let svg: string | null = null, renderError: string | null = null;
  if (r.status === 0) {
    svg = readFileSync(join(dir, 'charts/time-to-failure.svg'), 'utf8');
    files.push('charts/time-to-failure.svg', 'charts/time-to-failure.png');
  } else renderError = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n')[0]!;
  put('index.html', mutantReportHtml(results, meta, svg));
  refreshReportsIndex(dir);
  return { files, renderError };
}
