// Several VMs on one machine (src/vmm/multi-vm.ts): round-robin with world switches charged,
// and the shared-TLB model: tags with shared capacity leak VM B's activity into VM A's cycle
// count (a timing channel); flushing at each switch or partitioning the tagged TLB does not.
import { describe, expect, it } from 'vitest';
import { runMultiVm, TLB_POLICIES, worldSwitchCycles, type TlbPolicy } from '../../src/vmm/multi-vm.js';
import { prepare, verifyProfile } from '../../src/verify/run.js';
import { buildGuest, outcomeOf, type GuestProgram, type Item } from '../../src/verify/guest-program.js';
import { withMutant } from '../../src/vmm/mutants.js';

const touchAll = (n: number): Item => ({ op: 'loop', n, body: Array.from({ length: 16 }, (_, page) => ({ op: 'rd' as const, d: 'eax' as const, page, off: 0 })) });
const A: GuestProgram = { regs: [1, 2, 3, 4, 5, 6, 7], paging: true, items: [touchAll(20)] };
const quiet: GuestProgram = { regs: [1, 2, 3, 4, 5, 6, 7], paging: true, items: [], spin: true };
const busy: GuestProgram = { regs: [9, 9, 9, 9, 9, 9, 9], paging: true, items: [touchAll(50)], spin: true };

function runA(config: string, b: GuestProgram, tlb: TlbPolicy) {
  const a = prepare(config, buildGuest(A)), vb = prepare(config, buildGuest(b));
  const r = runMultiVm([a, vb], { quantum: 100, tlb, profile: verifyProfile().profile, maxInstructions: 100_000, stopWhen: 0 });
  const o = a.machine.outcome();
  return { r, o, cycles: a.machine.cpu.cycles, outcome: outcomeOf(a.machine, o.exit.reason, Uint8Array.from(a.console), true) };
}

describe('multi-VM', () => {
  it('charges a world switch (VM exit + entry from the profile) at every switch into a VM', () => {
    const x = runA('hw-nested', quiet, 'flush');
    expect(x.o.exit.reason).toBe('exit-device');
    const perSwitch = worldSwitchCycles(verifyProfile().profile);
    expect(perSwitch).toBeGreaterThan(0);
    // A is switched in every other switch (B the rest), the first start is not a switch.
    const ws = x.o.accounting.categories['world-switch']!;
    expect(ws.cycles).toBe(ws.count * perSwitch);
    expect(Math.abs(ws.count - x.r.switches / 2)).toBeLessThanOrEqual(1);
  });

  for (const config of ['native', 'hw-nested', 'full']) {
    it(`${config}: VM B's TLB activity changes VM A's cycles only with a tagged, shared-capacity TLB`, () => {
      for (const tlb of TLB_POLICIES) {
        const q = runA(config, quiet, tlb), b = runA(config, busy, tlb);
        expect(b.outcome, tlb).toEqual(q.outcome);
        if (tlb === 'tagged-shared') expect(b.cycles, tlb).not.toBe(q.cycles);
        else expect(b.cycles, tlb).toBe(q.cycles);
      }
    });
  }

  it('tags save VM A refills: it runs in fewer cycles than with flushes', () => {
    expect(runA('native', busy, 'tagged-partitioned').cycles).toBeLessThan(runA('native', busy, 'flush').cycles);
  });

  it("mutant world-switch-no-flush: VM A's outcome depends on VM B (B's translations leak into A)", () => {
    // B maps playground page 0 elsewhere, then A writes through its own page 0.
    const b: GuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], paging: true, items: [{ op: 'pte', t: 0, page: 0, frame: 0x600, flags: 7 }, { op: 'rd', d: 'eax', page: 0, off: 0 }], spin: true };
    // A writes a marker to its page 0 once, then sums 200 reads of it (ECX).
    const a2: GuestProgram = { regs: [0x1234, 0, 0, 0, 0, 0, 0], paging: true, items: [{ op: 'wr', s: 'eax', page: 0, off: 0 }, { op: 'loop', n: 200, body: [{ op: 'rd' as const, d: 'ebx' as const, page: 0, off: 0 }, { op: 'alu' as const, f: 'add' as const, d: 'ecx' as const, s: 'ebx' as const }] }] };
    const run = (bp: GuestProgram) => {
      const a = prepare('native', buildGuest(a2)), vb = prepare('native', buildGuest(bp));
      runMultiVm([a, vb], { quantum: 37, tlb: 'flush', profile: verifyProfile().profile, maxInstructions: 200_000, stopWhen: 0 });
      return outcomeOf(a.machine, 'x', new Uint8Array(0), true);
    };
    expect(run(b)).toEqual(run(quiet));
    expect(run(b).dump[1]).toBe((200 * 0x1234) >>> 0);
    expect(withMutant('world-switch-no-flush', () => run(b))).not.toEqual(withMutant('world-switch-no-flush', () => run(quiet)));
  });

  it('rejects a bad quantum', () => {
    const a = prepare('native', buildGuest(A));
    expect(() => runMultiVm([a], { quantum: 0, tlb: 'flush', profile: verifyProfile().profile, maxInstructions: 10 })).toThrow(/quantum must be a positive integer/);
  });
});
