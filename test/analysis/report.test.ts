import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compile } from 'vega-lite';
import { breakdownChart, eventsChart, overheadChart, sweepChart, timelineChart, timelineRows } from '../../src/analysis/charts.js';
import { renderChart } from '../../src/analysis/render.js';
import { writeReport } from '../../src/analysis/report.js';
import { breakdownTable, eventsTable, loadExperiment, overheadTable, resultsTable, summaryTable } from '../../src/analysis/tables.js';
import { writeFakeExperiment, type FakeRun } from './fixture.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'virtlab-rep-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
type Row = Record<string, unknown>;

const runs: FakeRun[] = [];
for (const [w, k] of [['syscall', 1], ['forkwait', 2]] as const) {
  for (const seed of [1, 2]) {
    runs.push({ workload: w, mode: 'native', seed, cycles: 1000 * k + seed });
    runs.push({ workload: w, mode: 'hw', seed, cycles: 1400 * k + 3 * seed, categories: { guest: 1000 * k + seed, 'exit:io': 300 * k, device: 100 * k + 2 * seed }, monitor: { 'exit:io': 7 * k } });
    runs.push({ workload: w, mode: 'full', seed, cycles: 2000 * k, categories: { guest: 1000 * k, translate: 1000 * k }, monitor: { 'hypercall:mmu_update': 2 } });
  }
  for (const v of [100, 200]) {
    runs.push({ workload: w, mode: 'native', seed: 1, cycles: 1000 * k, sweep: { name: 'vm-exit', value: v } });
    runs.push({ workload: w, mode: 'hw', seed: 1, cycles: 1000 * k + v * k, sweep: { name: 'vm-exit', value: v } });
  }
}
runs.push({ workload: 'web', mode: 'native', seed: null, cycles: 10 });
runs.push({ workload: 'web', mode: 'hw', seed: null, cycles: 0, status: 'failed' });

const dir = tmp();
writeFakeExperiment(dir, runs);
const e = loadExperiment(dir);
const over = overheadTable(resultsTable(e));
const summary = summaryTable(over).objects() as Row[];
const breakdown = breakdownTable(e, over).objects() as Row[];
const events = eventsTable(e).objects() as Row[];
const specs = {
  overhead: overheadChart(summary),
  breakdown: breakdownChart(breakdown),
  events: eventsChart(events),
  sweep: sweepChart(summary, { name: 'vm-exit', path: 'virtualization.vmExit.value', target: 'figure' }),
  timeline: timelineChart(e, 'syscall'),
};

describe('chart specs', () => {
  it.each(Object.entries(specs))('%s compiles with vega-lite and carries data', (_name, spec) => {
    const out = compile(spec);
    expect(out.spec.marks?.length ?? 0).toBeGreaterThan(0);
    expect((spec as { data: { values: unknown[] } }).data.values.length).toBeGreaterThan(0);
  });

  it('overhead chart: one bar per workload, mode and profile of the base matrix, error bars when seeds vary', () => {
    const values = (specs.overhead as unknown as { data: { values: Row[] } }).data.values;
    expect(values.filter((v) => v.sweep !== null)).toHaveLength(0);
    const hw = values.find((v) => v.workload === 'forkwait' && v.mode === 'hw')!;
    expect(hw.slowdown).toBeCloseTo(((2800 + 3) / 2001 + (2800 + 6) / 2002) / 2, 12);
    expect(JSON.stringify(specs.overhead)).toContain('"y2"');
  });

  it('a sparse profile × mode grid is completed (vega-lite misplaces the cells of a sparse facet grid)', () => {
    const ev = [
      { workload: 'w', mode: 'hw-a', profile: 'P', seed: null, kind: 'exit', reason: 'io', count: 4, per1kInstructions: 2 },
      { workload: 'w', mode: 'hw-b', profile: 'Q', seed: null, kind: 'exit', reason: 'io', count: 6, per1kInstructions: 3 },
    ];
    const values = (eventsChart(ev) as unknown as { data: { values: Row[] } }).data.values;
    const cells = new Set(values.map((v) => `${v.profile}/${v.mode}`));
    expect([...cells].sort()).toEqual(['P/hw-a', 'P/hw-b', 'Q/hw-a', 'Q/hw-b']);
    const sum = (p: string, m: string): number => values.filter((v) => v.profile === p && v.mode === m).reduce((a, v) => a + Number(v.per1kInstructions), 0);
    expect([sum('P', 'hw-a'), sum('P', 'hw-b'), sum('Q', 'hw-a'), sum('Q', 'hw-b')]).toEqual([2, 0, 0, 3]);
  });

  it('timeline rows are cycles per 1,000 instructions between samples', () => {
    const r = [...e.results.values()].find((x) => x.status === 'ok')!;
    const rows = timelineRows(r);
    const [a, b] = r.timeline;
    expect(rows[0]).toEqual({ instructions: a![0], cyclesPerKi: (1000 * a![1]) / a![0] });
    expect(rows[1]!.cyclesPerKi).toBeCloseTo((1000 * (b![1] - a![1])) / (b![0] - a![0]), 9);
  });
});

describe('rendering', () => {
  it('is deterministic: the same bytes twice, SVG and PNG', async () => {
    const a = await renderChart(specs.overhead);
    const b = await renderChart(specs.overhead);
    expect(a.svg).toMatch(/^<svg/);
    expect(a.svg).toContain('<text');
    expect(a.svg).toBe(b.svg);
    expect(Buffer.from(a.png).subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(Buffer.compare(Buffer.from(a.png), Buffer.from(b.png))).toBe(0);
  });
});

describe('report', () => {
  it('writes a self-contained offline index.html, summary.md and the tables', async () => {
    const rep = await writeReport(dir);
    for (const f of ['index.html', 'summary.md', 'results.csv', 'results.json', 'summary.csv', 'charts/overhead.svg', 'charts/overhead.png', 'charts/overhead.vl.json', 'charts/sweep-vm-exit.svg', 'charts/timeline.svg']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    // Nothing fetched from the network: no external script, stylesheet, image or link.
    expect(html).not.toMatch(/<(script|img|link|iframe)[^>]+(src|href)\s*=\s*["']?(https?:)?\/\//i);
    expect(html).not.toMatch(/<a[^>]+href\s*=\s*["']?https?:/i);
    // The three libraries are inlined, and the inlined code cannot close its script element.
    expect(html).toMatch(/vegaEmbed/);
    expect(html.length).toBeGreaterThan(500_000);
    expect((html.match(/<script/g) ?? []).length).toBe((html.match(/<\/script>/g) ?? []).length);
    for (const c of rep.charts) expect(html).toContain(`id="chart-${c.name}"`);
    expect(html).toContain('Failed runs');
    expect(html).toContain('it broke');
    const md = readFileSync(join(dir, 'summary.md'), 'utf8');
    expect(md).toMatch(/\| syscall \| 1\.00 ±0\.00 \| /);
    expect(rep.findings.join('\n')).toMatch(/1 run\(s\) failed/);
  });
});
