// The shadow page-table software is priced once (shadow-paging.ts `shadowFaultCharge`) and
// charged alike by `trap`, `full` and `hw --paging shadow` (which adds only the #PF exit's VM
// exit and entry); and the kernel's GDT is alone on its page, so the descriptor-table watch
// takes no false trace faults per fork.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { virtlab } from '../cli/in-process.js';
import { loadProfile, toVmmCosts } from '../../src/profiles/index.js';
import { shadowSoftwareCosts } from '../../src/vmm/shadow-paging.js';
import { ExitReason } from '../../src/vmm/hw/exit-reasons.js';

interface Rec { cycles: number; accounting: { categories: Record<string, { cycles: number; count: number }> }; monitor: Record<string, number> }

const dir = mkdtempSync(join(tmpdir(), 'virtlab-shadow-costs-'));
const PROFILE = 'p4-2005';
const vmm = toVmmCosts(loadProfile(PROFILE).profile);
const sw = shadowSoftwareCosts(vmm);

function exec(tag: string, n: number, ...mode: string[]): { rec: Rec; stdout: string } {
  const json = join(dir, `${tag}-${n}.json`);
  const r = virtlab('exec', 'workload:forkwait', '--param', `n=${n}`, '--profile', PROFILE, ...mode, '--json', json);
  expect(r.stderr).toBe('');
  return { rec: JSON.parse(readFileSync(json, 'utf8')) as Rec, stdout: r.stdout };
}
const checksum = (s: string): string => /checksum: (0x[0-9a-f]+)/.exec(s)![1]!;

describe('shadow software: one price in every shadowing mode', () => {
  it('hw --paging shadow charges the BT shadow figures plus the exit and entry; full charges the same figures', () => {
    const n = exec('native', 10, '--mode', 'native');
    const h = exec('hws', 10, '--mode', 'hw', '--paging', 'shadow', '--vpid', 'off');
    const f = exec('full', 10, '--mode', 'full');
    expect(checksum(h.stdout)).toBe(checksum(n.stdout));
    expect(checksum(f.stdout)).toBe(checksum(n.stdout));
    const hc = h.rec.accounting.categories, hm = h.rec.monitor;
    // Hidden faults: the shadow software's figure each (prefaults for event delivery are not faults).
    expect(hc['hidden-fault']!.count).toBeGreaterThan(0);
    expect(hc['hidden-fault']!.cycles).toBe(hc['hidden-fault']!.count * sw.hiddenFault);
    // Trace faults: the figure plus the per-PTE drops.
    expect(hc['shadow-sync']!.count).toBe(hm['shadow.trace-faults']);
    expect(hc['shadow-sync']!.cycles).toBe(hm['shadow.trace-faults']! * sw.traceFault + hm['shadow.sync-drops']! * sw.pteDrop);
    // Each #PF exit: exit + entry; the injected guest faults also the exceptionOrNmi handler.
    const x = hc['exit:exception-nmi']!;
    expect(x.count).toBe(hm['exit:exception-nmi']);
    expect(x.cycles).toBe(x.count * (vmm.vmExit + vmm.vmEntry) + hm['shadow.guest-faults']! * vmm.handlerByReason[ExitReason.ExceptionOrNmi]!);
    expect(x.count).toBe(hc['hidden-fault']!.count + hm['shadow.trace-faults']! + hm['shadow.guest-faults']!);
    // full prices the same events with the same figures (its traces may be adaptive callouts instead).
    const fc = f.rec.accounting.categories;
    expect(fc['hidden-fault']!.cycles).toBe(fc['hidden-fault']!.count * sw.hiddenFault);
    expect(fc['shadow-build']!.cycles).toBe(fc['shadow-build']!.count * sw.spaceCreate);
    expect(hc['shadow-build']!.cycles % sw.spaceCreate).toBe(0);
  }, 120_000);
});

describe('the GDT alone on its page: no false trace faults', () => {
  for (const mode of ['trap', 'full']) {
    it(`${mode}: trace faults on the watched descriptor-table page do not grow with forks`, () => {
      const a = exec(`${mode}-gdt`, 5, '--mode', mode).rec.monitor;
      const b = exec(`${mode}-gdt`, 25, '--mode', mode).rec.monitor;
      // Only boot writes the GDT (the TSS descriptor, LTR's busy bit).
      expect(b['shadow.watched-faults']).toBe(a['shadow.watched-faults']);
      expect(b['shadow.watched-faults']).toBeLessThanOrEqual(2);
      expect(b['shadow.trace-faults']).toBeGreaterThan(a['shadow.trace-faults']!); // page-table traces remain
    }, 120_000);
  }
});
