/**
 * Vega-Lite specs of a report, built in code from the analysis tables. Data is inlined
 * (`data.values`), so a spec renders on its own (headless in render.ts, in the browser in
 * the HTML report).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { UnitResult } from '../experiment/execute.js';
import type { Experiment } from './tables.js';

type Row = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
/** Fonts the PNG renderer has (render.ts): the browser falls back to its sans-serif. */
const CONFIG = { font: 'DejaVu Sans', view: { stroke: '#ddd' }, axis: { labelFontSize: 10, titleFontSize: 11 }, legend: { labelFontSize: 10, labelLimit: 260 } };

const order = (rows: Row[], field: string): string[] => [...new Set(rows.map((r) => String(r[field])))];

/**
 * Adds `<field>Order` (first-appearance rank) to each row for the facet fields, so a facet
 * can be sorted by it: vega-lite 6 can draw a facet's headers and cells in different orders
 * when the facet is sorted by an explicit array.
 */
function withOrder(rows: Row[], ...fields: string[]): Row[] {
  const ranks = fields.map((f) => new Map(order(rows, f).map((v, i) => [v, i])));
  return rows.map((r) => ({ ...r, ...Object.fromEntries(fields.map((f, i) => [`${f}Order`, ranks[i]!.get(String(r[f]))])) }));
}
/**
 * Completes a row × column facet grid with an invisible zero row for every missing pair:
 * vega-lite lays out the cells of a sparse grid (e.g. a mode that runs on one profile only)
 * under the wrong headers.
 */
function fillGrid(rows: Row[], rowField: string, colField: string, filler: Row): Row[] {
  const have = new Set(rows.map((r) => `${String(r[rowField])}\u0000${String(r[colField])}`));
  const out = [...rows];
  for (const a of order(rows, rowField)) {
    for (const b of order(rows, colField)) if (!have.has(`${a}\u0000${b}`)) out.push({ ...filler, [rowField]: a, [colField]: b });
  }
  return out;
}
const facetSort = (field: string): { field: string; op: 'min' } => ({ field: `${field}Order`, op: 'min' });

/**
 * Normalized execution time per workload and mode (native = 1), grouped bars per workload, one
 * panel per profile: the layout of the Xen paper's relative-performance figure (Barham et al.,
 * SOSP 2003, Figure 3), drawn as slowdown rather than relative score. Error bars: 95% CI over seeds.
 */
export function overheadChart(summary: Row[]): TopLevelSpec {
  const values = withOrder(summary.filter((r) => r.sweep === null), 'profile');
  const modes = order(values, 'mode');
  const withCi = values.some((r) => Number(r.n) > 1);
  const tooltip = [
    { field: 'workload' }, { field: 'mode' }, { field: 'profile' },
    { field: 'slowdown', format: '.3f', title: 'slowdown (× native)' },
    { field: 'n', title: 'seeds' }, { field: 'lo', format: '.3f', title: '95% CI low' }, { field: 'hi', format: '.3f', title: '95% CI high' },
    { field: 'cycles', format: ',.0f', title: 'cycles after boot (mean)' },
    { field: 'totalSlowdown', format: '.3f', title: 'whole-run slowdown (boot included)' },
  ];
  return {
    $schema: SCHEMA,
    title: { text: 'Execution time relative to native', subtitle: ['cycles after boot (from the guest\'s first entry to user mode, where the workload starts) under each mode ÷ native\'s, same workload, parameters, profile and seed', 'boot excluded: pv\'s domain builder does the boot\'s page-table work uncharged, as Xen\'s dom0 does'] },
    data: { values },
    facet: { row: { field: 'profile', type: 'nominal', title: null, sort: facetSort('profile') } },
    spec: {
      width: { step: 10 } as unknown as number,
      height: 180,
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            x: { field: 'workload', type: 'nominal', sort: order(values, 'workload'), title: null, axis: { labelAngle: -40 } },
            xOffset: { field: 'mode', type: 'nominal', sort: modes },
            y: { field: 'slowdown', type: 'quantitative', title: 'slowdown (× native)' },
            color: { field: 'mode', type: 'nominal', sort: modes, title: 'mode' },
            tooltip,
          },
        },
        ...(withCi ? [{
          mark: { type: 'rule' as const, color: 'black' },
          encoding: {
            x: { field: 'workload', type: 'nominal' as const, sort: order(values, 'workload') },
            xOffset: { field: 'mode', type: 'nominal' as const, sort: modes },
            y: { field: 'lo', type: 'quantitative' as const }, y2: { field: 'hi' },
          },
        }] : []),
        { mark: { type: 'rule', color: '#444', strokeDash: [3, 3] }, encoding: { y: { datum: 1 } } },
      ],
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/**
 * Keeps the `keep` largest categories (by total) and folds the rest by kind: `exit:*` into
 * "exit:other", `hypercall:*` into "hypercall:other", anything else into "other".
 */
function foldCategories(rows: Row[], field: string, weight: string, keep: number): Row[] {
  const tot = new Map<string, number>();
  for (const r of rows) tot.set(String(r[field]), (tot.get(String(r[field])) ?? 0) + Number(r[weight] ?? 0));
  const top = new Set([...tot.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, keep).map(([k]) => k));
  const fold = (c: string): string => (/^(exit|hypercall):/.test(c) ? `${c.slice(0, c.indexOf(':'))}:other` : 'other');
  return rows.map((r) => (top.has(String(r[field])) ? r : { ...r, [field]: fold(String(r[field])) }));
}

/**
 * Where the cycles go: per workload and mode, the cycles of each accounting category divided
 * by native's total, stacked (so each stack is the slowdown). Base matrix, mean over seeds.
 */
export function breakdownChart(breakdown: Row[]): TopLevelSpec {
  const base = breakdown.filter((r) => r.sweep === null && r.normalized !== null);
  // Mean over seeds: sum per (workload, mode, profile, category) ÷ number of seeds there.
  const acc = new Map<string, Row & { sum: number; seeds: Set<unknown> }>();
  for (const r of foldCategories(base, 'category', 'cycles', 13)) {
    const k = `${r.workload}|${r.mode}|${r.profile}|${r.category}`;
    let a = acc.get(k);
    if (!a) { a = { workload: r.workload, mode: r.mode, profile: r.profile, category: r.category, sum: 0, seeds: new Set() }; acc.set(k, a); }
    a.sum += Number(r.normalized);
    a.seeds.add(r.seed);
  }
  // guest at the bottom of each stack, then the rest by name.
  const means = [...acc.values()].map(({ sum, seeds, ...r }) => ({ ...r, normalized: sum / seeds.size, stackOrder: r.category === 'guest' ? 0 : String(r.category).endsWith('other') ? 2 : 1 }));
  const values = withOrder(fillGrid(means, 'profile', 'workload', { mode: order(base, 'mode')[0], category: 'guest', normalized: 0, stackOrder: 0 }), 'profile', 'workload');
  const modes = order(base, 'mode');
  return {
    $schema: SCHEMA,
    title: { text: 'Where the cycles go (after boot)', subtitle: 'cycles per accounting category after the guest\'s first entry to user mode ÷ native cycles after boot (a stack is the slowdown)' },
    data: { values },
    facet: {
      row: { field: 'profile', type: 'nominal', title: null, sort: facetSort('profile') },
      column: { field: 'workload', type: 'nominal', title: null, sort: facetSort('workload'), header: { labelAngle: -40, labelAlign: 'right', labelOrient: 'bottom' } },
    },
    spec: {
      width: { step: 11 } as unknown as number,
      height: 160,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'mode', type: 'nominal', sort: modes, axis: { title: null, labelAngle: -60, labelFontSize: 8, labelLimit: 90 } },
        y: { field: 'normalized', type: 'quantitative', aggregate: 'sum', title: 'cycles after boot ÷ native', stack: 'zero' },
        color: { field: 'category', type: 'nominal', title: 'category', scale: { scheme: 'tableau20' } },
        order: { field: 'stackOrder', type: 'quantitative' },
        tooltip: [{ field: 'workload' }, { field: 'mode' }, { field: 'profile' }, { field: 'category' }, { field: 'normalized', aggregate: 'sum', format: '.3f', title: '× native cycles' }],
      },
    },
    resolve: { scale: { x: 'independent' } },
    config: { ...CONFIG, facet: { spacing: 4 } },
  } as TopLevelSpec;
}

/** Exits and hypercalls per 1,000 guest instructions, by reason, per workload and mode. */
export function eventsChart(events: Row[]): TopLevelSpec {
  // Mean over seeds, computed here: a stacked mean would not be a mean of stacks.
  const folded = foldCategories(events.map((r) => ({ ...r, reason: `${r.kind}:${r.reason}` })), 'reason', 'count', 15);
  const acc = new Map<string, Row & { count: number; per1kInstructions: number; seeds: Set<unknown> }>();
  for (const r of folded) {
    const k = `${r.workload}|${r.mode}|${r.profile}|${r.reason}`;
    let a = acc.get(k);
    if (!a) { a = { workload: r.workload, mode: r.mode, profile: r.profile, reason: r.reason, count: 0, per1kInstructions: 0, seeds: new Set() }; acc.set(k, a); }
    a.count += Number(r.count); a.per1kInstructions += Number(r.per1kInstructions); a.seeds.add(r.seed);
  }
  const means = [...acc.values()].map(({ seeds, ...r }) => ({ ...r, count: r.count / seeds.size, per1kInstructions: r.per1kInstructions / seeds.size }));
  const values = withOrder(fillGrid(means, 'profile', 'mode', { workload: (means[0] as Row | undefined)?.workload ?? '', reason: (means[0] as Row | undefined)?.reason ?? '', count: 0, per1kInstructions: 0 }), 'profile', 'mode');
  return {
    $schema: SCHEMA,
    title: { text: 'VM exits and hypercalls', subtitle: 'events per 1,000 guest instructions, by reason (monitor counters; mean over seeds)' },
    data: { values },
    facet: { row: { field: 'profile', type: 'nominal', title: null, sort: facetSort('profile') }, column: { field: 'mode', type: 'nominal', title: null, sort: facetSort('mode') } },
    spec: {
      width: 200,
      height: { step: 9 } as unknown as number,
      mark: { type: 'bar' },
      encoding: {
        y: { field: 'workload', type: 'nominal', sort: order(values, 'workload'), title: null },
        x: { field: 'per1kInstructions', type: 'quantitative', aggregate: 'sum', title: 'per 1,000 instructions', stack: 'zero' },
        color: { field: 'reason', type: 'nominal', title: 'reason', scale: { scheme: 'tableau20' } },
        tooltip: [{ field: 'workload' }, { field: 'mode' }, { field: 'reason' }, { field: 'count', aggregate: 'sum', format: ',.0f', title: 'count' }, { field: 'per1kInstructions', aggregate: 'sum', format: '.2f', title: 'per 1k instructions' }],
      },
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Slowdown against the swept value, one line per workload and mode (native, = 1, left out). */
export function sweepChart(summary: Row[], sweep: { name: string; path: string; target: string }): TopLevelSpec {
  const values = summary.filter((r) => r.sweep === sweep.name && r.modeName !== 'native');
  const axisTitle = sweep.target === 'figure' ? `profile figure ${sweep.path}` : `workload parameter ${sweep.path}`;
  return {
    $schema: SCHEMA,
    title: { text: `Sweep "${sweep.name}": slowdown against ${sweep.path}`, subtitle: 'cycles after boot; each point: mean over seeds; native at the same point = 1' },
    data: { values },
    facet: { column: { field: 'profile', type: 'nominal', title: null } },
    spec: {
      width: 300, height: 200,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'sweepValue', type: 'quantitative', title: axisTitle },
        y: { field: 'slowdown', type: 'quantitative', title: 'slowdown (× native)', scale: { zero: false } },
        color: { field: 'workload', type: 'nominal' },
        strokeDash: { field: 'mode', type: 'nominal' },
        tooltip: [{ field: 'workload' }, { field: 'mode' }, { field: 'sweepValue', title: sweep.path }, { field: 'slowdown', format: '.3f' }, { field: 'cycles', format: ',.0f' }],
      },
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Timeline rows of one run: cycles per 1,000 guest instructions in each sample interval. */
export function timelineRows(r: UnitResult, maxPoints = 150): { instructions: number; cyclesPerKi: number }[] {
  const t = r.timeline;
  if (t.length === 0) return [];
  const step = Math.max(1, Math.ceil(t.length / maxPoints));
  const out: { instructions: number; cyclesPerKi: number }[] = [];
  let prev: readonly [number, number] = [0, 0];
  for (let i = step - 1; i < t.length + step - 1; i += step) {
    const cur = t[Math.min(i, t.length - 1)]!;
    if (cur[0] > prev[0]) out.push({ instructions: cur[0], cyclesPerKi: (1000 * (cur[1] - prev[1])) / (cur[0] - prev[0]) });
    prev = cur;
    if (i >= t.length - 1) break;
  }
  return out;
}

/**
 * A timeline over logical time for one workload: cycles per 1,000 guest instructions in each
 * interval of retired guest instructions, one line per mode, one panel per profile. The run
 * record has no per-event times, so this is sampled at slice boundaries (every
 * `timelineSlice` instructions), and it counts retired guest instructions, which equals
 * DESIGN.md's logical time except for pv-op sites patched to more than one instruction.
 */
export function timelineChart(e: Experiment, workload: string): TopLevelSpec {
  const values: Row[] = [];
  for (const u of e.manifest.units) {
    const r = e.results.get(u.id);
    if (!r || r.status !== 'ok') continue;
    const m = u.memberships.find((x) => x.workload === workload && x.sweep === null);
    if (!m) continue;
    // The first seed only: one line per mode.
    const firstSeed = e.manifest.units.flatMap((x) => x.memberships).find((x) => x.workload === workload && x.sweep === null)?.seed ?? null;
    if (m.seed !== firstSeed) continue;
    for (const p of timelineRows(r)) values.push({ mode: m.mode, profile: m.profile, ...p });
  }
  return {
    $schema: SCHEMA,
    title: { text: `Timeline of ${workload}`, subtitle: 'cycles per 1,000 guest instructions over retired guest instructions (sampled at slice ends; no per-event times in the run record)' },
    data: { values },
    facet: { row: { field: 'profile', type: 'nominal', title: null } },
    spec: {
      width: 640, height: 160,
      mark: { type: 'line', interpolate: 'step-before', strokeWidth: 1.2 },
      encoding: {
        x: { field: 'instructions', type: 'quantitative', title: 'retired guest instructions (logical time)' },
        y: { field: 'cyclesPerKi', type: 'quantitative', title: 'cycles / 1,000 instructions', scale: { type: 'log' } },
        color: { field: 'mode', type: 'nominal', sort: order(values, 'mode') },
        tooltip: [{ field: 'mode' }, { field: 'instructions', format: ',.0f' }, { field: 'cyclesPerKi', format: ',.0f', title: 'cycles / 1k instructions' }],
      },
    },
    config: CONFIG,
  } as TopLevelSpec;
}
