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

  it('every mutant is caught, with a counterexample', { timeout: 120_000 }, () => {
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
});
