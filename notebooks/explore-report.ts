// %% [markdown]
// # Walking through an experiment's data with arquero
//
// A percent-format notebook: each `// %%` line starts a cell. Run it as a script
// (`node --import ./scripts/ts-register.mjs notebooks/explore-report.ts [DIR]`, DIR defaults to
// reports/default, made by `npm start`), or open it in a tool that reads the percent format.
// It loads the stored runs of an experiment directory, rebuilds the tables the report is made
// of, asks a few questions of them, and reproduces the report's overhead chart.

// %%
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as aq from 'arquero';
import { overheadChart } from '../src/analysis/charts.js';
import { renderSvg } from '../src/analysis/render.js';
import { breakdownTable, eventsTable, loadExperiment, overheadTable, resultsTable, summaryTable } from '../src/analysis/tables.js';

const dir = process.argv[2] ?? 'reports/default';
if (!existsSync(join(dir, 'experiment.json'))) {
  console.error(`${dir}: no experiment here (run npm start, or pass an experiment directory)`);
  process.exit(2);
}
const e = loadExperiment(dir);
console.log(`${e.manifest.scenario.name}: ${e.manifest.units.length} units, ${e.results.size} stored`);

// %% [markdown]
// ## The results table
// One row per run; `slowdown` is the run's cycles over native's with the same workload,
// parameters, profile and seed.

// %%
const over = overheadTable(resultsTable(e));
over.filter((d: { status: string }) => d.status === 'ok')
  .select('workload', 'mode', 'profile', 'seed', 'cycles', 'nativeCycles', 'slowdown')
  .print({ limit: 8 });

// %% [markdown]
// ## Which mode is fastest on each CPU?
// The geometric mean of the slowdown over the base matrix's workloads (sweeps left out).

// %%
const base = summaryTable(over).filter((d: { sweep: string | null; modeName: string }) => d.sweep === null && d.modeName !== 'native');
base.groupby('profile', 'mode')
  .rollup({ workloads: aq.op.count(), geomean: (d: { slowdown: number }) => aq.op.exp(aq.op.mean(aq.op.log(d.slowdown))) })
  .orderby('profile', 'geomean')
  .print();

// %% [markdown]
// ## Where do the extra cycles go?
// Overhead cycles (everything but `guest` and `idle`) per category, summed over workloads, as
// a share of each mode's overhead.

// %%
const bd = breakdownTable(e, over)
  .filter((d: { sweep: string | null; category: string; modeName: string }) => d.sweep === null && d.modeName !== 'native' && d.category !== 'guest' && d.category !== 'idle');
bd.groupby('profile', 'mode', 'category')
  .rollup({ cycles: aq.op.sum('cycles') })
  .groupby('profile', 'mode')
  .derive({ share: (d: { cycles: number }) => d.cycles / aq.op.sum(d.cycles) })
  .filter((d: { share: number }) => d.share >= 0.05)
  .orderby('profile', 'mode', aq.desc('share'))
  .select('profile', 'mode', 'category', 'share')
  .print({ limit: 40 });

// %% [markdown]
// ## Exit reasons
// The five most frequent monitor events per mode and profile, per 1,000 guest instructions
// (mean over the workloads where the event occurs).

// %%
eventsTable(e)
  .groupby('profile', 'mode', 'kind', 'reason')
  .rollup({ per1k: aq.op.mean('per1kInstructions') })
  .groupby('profile', 'mode')
  .orderby(aq.desc('per1k'))
  .derive({ rank: aq.op.row_number() })
  .filter((d: { rank: number }) => d.rank <= 5)
  .ungroup()
  .orderby('profile', 'mode', 'rank')
  .print({ limit: 40 });

// %% [markdown]
// ## Reproducing the overhead chart
// The report's first chart, from the same table: the spec is built in code and rendered
// headlessly to SVG (compare with DIR/charts/overhead.svg: same bytes).

// %%
const svg = await renderSvg(overheadChart(summaryTable(over).objects() as Record<string, unknown>[]));
const out = join(dir, 'notebook-overhead.svg');
writeFileSync(out, svg);
console.log(`wrote ${out} (${svg.length} bytes); identical to the report's: ${existsSync(join(dir, 'charts/overhead.svg')) && (await import('node:fs')).readFileSync(join(dir, 'charts/overhead.svg'), 'utf8') === svg}`);
