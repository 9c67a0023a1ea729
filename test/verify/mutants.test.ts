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
      // Within the run budget (seconds are a speed figure: `virtlab verify --mutants` and
      // `npm run bench` print them; a test does not time itself).
      expect(r.meanRuns!, r.mutant).toBeLessThanOrEqual(150);
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
    const html = mutantReportHtml([{ ...results[0]!, counterexampleFile: 'counterexamples/bt-smsw.json' }, results[1]!], { seeds: 3, runs: 60 });
    expect(html).toContain('1 of 2 mutants caught');
    expect(html).toContain('<a href="counterexamples/bt-smsw.json">counterexamples/bt-smsw.json</a>');
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

describe('I/O bitmaps (hw) and the io-bitmap-off-by-one mutant', () => {
  it('with KVM\'s pass-through set, port 0x80 reaches the bus without an exit and every other port exits; the mutant lets 0x81 through too', { timeout: 30_000 }, async () => {
    const { buildGuest, LAYOUT } = await import('../../src/verify/guest-program.js');
    const { Machine } = await import('../../src/machine/machine.js');
    const { HwMonitor } = await import('../../src/vmm/hw/hw.js');
    const { KVM_IO_PASS_THROUGH, ioBit } = await import('../../src/vmm/hw/vmcs.js');
    const { toVmmCosts } = await import('../../src/profiles/index.js');
    const { verifyProfile } = await import('../../src/verify/run.js');
    const { monitorMemoryMiB } = await import('../../src/vmm/index.js');
    // I/O exits of a guest that writes `ports` (besides the harness's own exit write to 0xF4).
    const ioExits = (ports: number[]): { exits: number; vmcs: InstanceType<typeof HwMonitor>['vmcs'] } => {
      const prof = verifyProfile().profile;
      const m = new Machine({ memoryMiB: LAYOUT.guestMiB, profile: prof, monitorMiB: monitorMemoryMiB('hw', LAYOUT.guestMiB, 'nested') });
      m.loadFlat(buildGuest({ regs: [0, 0, 0, 0, 0, 0, 0], paging: false, items: ports.map((port) => ({ op: 'port' as const, port, v: 1 })) }), 'g.bin', { loadAddress: LAYOUT.code });
      const mon = new HwMonitor(toVmmCosts(prof), { paging: 'nested', vpid: true, ioPassThrough: KVM_IO_PASS_THROUGH });
      mon.attach(m);
      m.run({ maxInstructions: 100_000 });
      expect(m.outcome().exit.reason).toBe('exit-device');
      return { exits: mon.exitsByReason.get(30) ?? 0, vmcs: mon.vmcs };
    };
    const base = ioExits([]);
    expect(base.exits).toBe(1); // the harness's write to 0xF4
    expect(ioExits([0x80, 0x80]).exits).toBe(1);
    expect(ioExits([0x7f, 0x81]).exits).toBe(3);
    expect([0x7f, 0x80, 0x81, 0xe9].map((p) => ioBit(base.vmcs, p))).toEqual([true, false, true, true]);
    const mutated = withMutant('io-bitmap-off-by-one', () => ioExits([0x7f, 0x81]));
    expect(mutated.exits).toBe(2);
    expect([0x7f, 0x80, 0x81, 0x82].map((p) => ioBit(mutated.vmcs, p))).toEqual([true, false, false, true]);
  });

  it('io-control holds without the mutant and catches it, shrunk to the one port write', { timeout: 30_000 }, async () => {
    const { runProperty } = await import('../../src/verify/properties.js');
    const { planFor } = await import('../../src/verify/mutation.js');
    expect(planFor(checkMutant('io-bitmap-off-by-one'))).toEqual([{ property: 'io-control', configs: ['hw-nested'] }]);
    const ok = runProperty('io-control', { runs: 40, seed: 1 });
    expect(ok.ok, ok.counterexample?.message).toBe(true);
    for (const seed of [1, 2, 3]) {
      const r = runProperty('io-control', { runs: 40, seed, mutant: 'io-bitmap-off-by-one' });
      expect(r.ok).toBe(false);
      expect(r.firstFailure!.run).toBeLessThanOrEqual(40);
      expect(r.counterexample!.listing).toHaveLength(2);
      expect(r.counterexample!.listing[0]).toMatch(/^100000: mov al,/);
      expect(r.counterexample!.listing[1]).toBe('100002: out 81h,al');
      expect(r.counterexample!.message).toBe('hw-nested: out port 0x81 (1 byte) reached the bus without a VM exit; only 0x80 is passed through');
    }
  });
});
