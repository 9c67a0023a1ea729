// Mutation analysis (issue 8, item 4): every mutant of the catalogue is caught by the
// properties within a small budget (one seed here; `virtlab verify --mutants` runs several).
import { describe, expect, it } from 'vitest';
import { runMutants } from '../../src/verify/mutation.js';
import { MUTANTS, MUTANT_NAMES, ACTIVE_MUTANTS, checkMutant, withMutant } from '../../src/vmm/mutants.js';
import { equivalenceCheck } from '../../src/verify/properties.js';

describe('mutants', () => {
  it('the catalogue has at least 12 mutants with distinct names', () => {
    expect(MUTANTS.length).toBeGreaterThanOrEqual(12);
    expect(new Set(MUTANT_NAMES).size).toBe(MUTANTS.length);
  });

  it('an unknown mutant name gives the list of known ones', () => {
    expect(() => checkMutant('nope')).toThrow(`unknown mutant "nope" (known: ${MUTANT_NAMES.join(', ')})`);
  });

  it('withMutant switches a mutant on only for its extent', () => {
    const p = { regs: [0, 0, 0, 0, 0, 0, 0], paging: false, items: [{ op: 'smsw' as const, d: 'eax' as const }] };
    expect(equivalenceCheck(p, ['full'])).toBeNull();
    expect(withMutant('bt-smsw', () => equivalenceCheck(p, ['full']))).toMatch(/^native vs full: eax: 0x11 vs 0x80010011/);
    expect(ACTIVE_MUTANTS.size).toBe(0);
    expect(equivalenceCheck(p, ['full'])).toBeNull();
  });

  it('every mutant is caught, with a counterexample', { timeout: 180_000 }, () => {
    // Unshrunk here, for time (shrinking is what `virtlab verify --mutants` adds).
    const results = runMutants({ seeds: 1, runs: 150, shrink: false });
    const missed = results.filter((r) => !r.caught).map((r) => r.mutant);
    expect(missed).toEqual([]);
    for (const r of results) {
      expect(r.counterexample?.listing.length, r.mutant).toBeGreaterThan(0);
      expect(r.meanSeconds!, r.mutant).toBeLessThan(10);
    }
  });
});

describe('mutant report', () => {
  it('renders the table and a valid Vega-Lite chart of time to failure', async () => {
    const { mutantReportHtml, timeToFailureChart } = await import('../../src/verify/report.js');
    const { toVega } = await import('../../src/analysis/render.js');
    const results = [
      { mutant: 'bt-smsw', description: 'x', caught: true, seeds: 3, caughtSeeds: 3, meanRuns: 4, meanSeconds: 0.5, property: 'equivalence (full)', counterexample: { program: { regs: [], items: [], paging: false }, listing: ['100000: smsw eax'], message: 'native vs full: eax: 0x11 vs 0x80010011' } },
      { mutant: 'other', description: 'y', caught: false, seeds: 3, caughtSeeds: 0, meanRuns: null, meanSeconds: null, property: null, counterexample: null },
    ];
    expect(() => toVega(timeToFailureChart(results))).not.toThrow();
    const html = mutantReportHtml(results, { seeds: 3, runs: 60 });
    expect(html).toContain('1 of 2 mutants caught');
    expect(html).toContain('100000: smsw eax');
    expect(html).toContain('<b>no</b>');
  });

  it('writes DIR/index.html with the chart rendered to SVG and PNG by the experiment reports\' renderer', { timeout: 60_000 }, async () => {
    const { writeMutantReport } = await import('../../src/verify/report.js');
    const { mkdtempSync, readFileSync, existsSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'virtlab-mutants-'));
    const results = [
      { mutant: 'pv-unpin-keeps-type', description: 'x', caught: true, seeds: 1, caughtSeeds: 1, meanRuns: 3, meanSeconds: 0.2, property: 'pv-isolation (pv)', counterexample: { program: { pv: [] }, listing: ['mmuext_op(unpin l2)'], message: 'audit: …' } },
      { mutant: 'bt-smsw', description: 'y', caught: true, seeds: 1, caughtSeeds: 1, meanRuns: 7, meanSeconds: 0.004, property: 'equivalence (full)', counterexample: null },
    ];
    const w = writeMutantReport(dir, results, { seeds: 1, runs: 60 });
    expect(w.renderError).toBeNull();
    const svg = readFileSync(join(dir, 'charts/time-to-failure.svg'), 'utf8');
    // One bar per caught mutant (vega draws bars as paths with an aria label naming the mutant).
    expect(svg).toContain('pv-unpin-keeps-type');
    expect(svg).toContain('bt-smsw');
    expect(readFileSync(join(dir, 'charts/time-to-failure.png')).subarray(1, 4).toString()).toBe('PNG');
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('mmuext_op(unpin l2)');
    expect(existsSync(join(dir, 'mutants.json'))).toBe(true);
  });
});
