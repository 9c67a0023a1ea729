/**
 * The mutant table as a self-contained HTML report (`virtlab verify --mutants --html FILE`):
 * a table (mutant, caught, property, runs and seconds to the first counterexample, shrunk
 * counterexample) and a Vega-Lite chart of the mean time to failure per mutant, rendered in
 * the browser by the inlined vega/vega-lite/vega-embed builds (offline, as the experiment
 * reports are).
 */
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
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'mutant', type: 'nominal', sort: null, title: null },
      // Seconds below 10 ms are shown at 10 ms (log scale).
      x: { field: 'seconds', type: 'quantitative', scale: { type: 'log', domainMin: 0.01 }, title: 'seconds (mean over the seeds that caught it, log)' },
      color: { field: 'caught', type: 'nominal', title: null },
      tooltip: [{ field: 'mutant' }, { field: 'seconds', format: '.3f' }, { field: 'runs', format: '.1f' }, { field: 'property' }],
    },
  } as TopLevelSpec;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The HTML report (deterministic for the same results). */
export function mutantReportHtml(results: readonly MutantResult[], meta: { seeds: number; runs: number }): string {
  const b = browserBuilds();
  const rows = results.map((r) => `<tr><td>${esc(r.mutant)}</td><td>${esc(r.description)}</td><td>${r.caught ? `yes (${r.caughtSeeds}/${r.seeds})` : '<b>no</b>'}</td>`
    + `<td>${esc(r.property ?? '')}</td><td>${r.meanRuns?.toFixed(1) ?? ''}</td><td>${r.meanSeconds?.toFixed(3) ?? ''}</td>`
    + `<td>${r.counterexample ? `${esc(r.counterexample.message)}<pre>${esc(r.counterexample.listing.join('\n'))}</pre>` : ''}</td></tr>`).join('\n');
  const caught = results.filter((r) => r.caught).length;
  const spec = JSON.stringify(timeToFailureChart(results)).replace(/</g, '\\u003c');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>virtlab: mutants</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;vertical-align:top;font-size:13px}pre{margin:4px 0;font-size:12px}</style>
<script>${b.vega}</script><script>${b.vegaLite}</script><script>${b.vegaEmbed}</script>
</head><body>
<h1>Mutation analysis of the verifier</h1>
<p>${caught} of ${results.length} mutants caught; ${meta.seeds} seed(s), at most ${meta.runs} generated guests per property per seed (docs/verification.md).</p>
<div id="chart"></div>
<script>vegaEmbed('#chart', ${spec}, { actions: false });</script>
<table><tr><th>mutant</th><th>bug</th><th>caught</th><th>by</th><th>mean runs</th><th>mean s</th><th>shrunk counterexample</th></tr>
${rows}
</table></body></html>
`;
}
