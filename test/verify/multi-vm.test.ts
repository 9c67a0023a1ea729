// Several VMs on one machine (src/vmm/multi-vm.ts): schedules with world switches charged,
// and the shared-TLB model: tags with shared capacity leak VM B's activity into VM A's cycle
// count (a timing channel); flushing at each switch or partitioning the tagged TLB does not.
// Stopped VMs (skipped or idle), VM lifetimes with recycled VPID/ASID tags and their mutant.
import { describe, expect, it } from 'vitest';
import { roundRobin, runMultiVm, TLB_POLICIES, worldSwitchCycles, type Slice, type TlbPolicy } from '../../src/vmm/multi-vm.js';
import { checkFlatPair, replayPairCase, type FlatPairCase } from '../../src/verify/noninterference.js';
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

  it('rejects a bad quantum or schedule', () => {
    const a = prepare('native', buildGuest(A)), b = prepare('native', buildGuest(quiet));
    const o = { tlb: 'flush' as const, profile: verifyProfile().profile, maxInstructions: 10 };
    expect(() => runMultiVm([a], { ...o, quantum: 0 })).toThrow(/quantum must be a positive integer/);
    expect(() => runMultiVm([a, b], { ...o, schedule: [{ vm: 0, instructions: 10 }] })).toThrow('multi-vm: the schedule gives VM 1 no slice');
    expect(() => runMultiVm([a, b], { ...o, schedule: [{ vm: 0, instructions: 10 }, { vm: 2, instructions: 5 }] })).toThrow('multi-vm: schedule slice 1: vm must be an index in 0..1, got 2');
    expect(() => runMultiVm([a, b], { ...o, schedule: [{ vm: 0, instructions: 0 }, { vm: 1, instructions: 5 }] })).toThrow('multi-vm: schedule slice 0: instructions must be a positive integer, got 0');
    expect(() => runMultiVm([{ ...a, after: 0 }, b], { ...o, quantum: 5 })).toThrow('multi-vm: VM 0: after must name another VM (0..1), got 0');
  });

  /** A beside B with a schedule; A's cycles, switches into A, idle slices. */
  function runSched(b: GuestProgram, schedule: readonly Slice[], stopped: 'skip' | 'idle', tlb: TlbPolicy = 'flush') {
    const a = prepare('native', buildGuest(A)), vb = prepare('native', buildGuest(b));
    const r = runMultiVm([a, vb], { schedule, stopped, tlb, profile: verifyProfile().profile, maxInstructions: 400_000, stopWhen: 0 });
    return { cycles: a.machine.cpu.cycles, r, outcome: outcomeOf(a.machine, a.machine.outcome().exit.reason, Uint8Array.from(a.console), true), switchesIntoA: a.machine.outcome().accounting.categories['world-switch']?.count ?? 0 };
  }

  it('a round-robin quantum is the schedule [A q, B q]; a generated order and lengths run deterministically', () => {
    const q = runA('native', busy, 'flush'); // quantum 100
    const s = runSched(busy, roundRobin(2, 100), 'skip');
    expect(s.cycles).toBe(q.cycles);
    const sched: Slice[] = [{ vm: 1, instructions: 37 }, { vm: 0, instructions: 250 }, { vm: 1, instructions: 5 }, { vm: 0, instructions: 11 }];
    const x = runSched(busy, sched, 'idle'), y = runSched(busy, sched, 'idle');
    expect(x.cycles).toBe(y.cycles);
    expect(x.r.slices[0]).toBeGreaterThan(10);
    // A different schedule changes where A is switched out (and so its refills), not its outcome.
    const z = runSched(busy, [{ vm: 0, instructions: 300 }, { vm: 1, instructions: 300 }], 'idle');
    expect(z.outcome).toEqual(x.outcome);
    expect(z.cycles).not.toBe(x.cycles);
  });

  it("a stopped VM B: dropping its slices (work-conserving) lets A's cycles show when B stopped; the idle VM in its slices does not", () => {
    // B0 exits at once; B1 never does. Same schedule.
    const exits: GuestProgram = { ...quiet, spin: false }, sched = roundRobin(2, 60);
    const skip0 = runSched(exits, sched, 'skip'), skip1 = runSched(quiet, sched, 'skip');
    expect(skip0.outcome).toEqual(skip1.outcome);
    expect(skip0.switchesIntoA).toBeLessThan(skip1.switchesIntoA); // back to back after B stopped
    expect(skip0.cycles).not.toBe(skip1.cycles); // the channel: B's lifetime in A's cycles
    const idle0 = runSched(exits, sched, 'idle'), idle1 = runSched(quiet, sched, 'idle');
    expect(idle0.r.idleSlices).toBeGreaterThan(0);
    expect(idle1.r.idleSlices).toBe(0);
    expect(idle0.switchesIntoA).toBe(idle1.switchesIntoA);
    expect(idle0.cycles).toBe(idle1.cycles);
  });

  it('three VMs in a generated order: A does not depend on B with a third VM C between them', () => {
    const c: GuestProgram = { regs: [3, 3, 3, 3, 3, 3, 3], paging: true, items: [touchAll(30)] };
    const sched: Slice[] = [{ vm: 2, instructions: 70 }, { vm: 0, instructions: 40 }, { vm: 1, instructions: 90 }, { vm: 0, instructions: 15 }];
    for (const policy of TLB_POLICIES) {
      const k: FlatPairCase = { a: A, b0: busy, b1: quiet, policy, schedule: sched, lifetime: 'concurrent', c };
      const v = checkFlatPair(k, 'native');
      expect(v.failure, policy).toBeNull();
      if (policy !== 'tagged-shared') expect(v.channel, policy).toBeNull();
    }
    // The schedule must give C a slice when there is a C.
    expect(() => checkFlatPair({ a: A, b0: busy, b1: quiet, policy: 'flush', schedule: roundRobin(2, 50), lifetime: 'concurrent', c }, 'native')).toThrow('multi-vm: the schedule gives VM 2 no slice');
  });

  // A successor: B (tag 1) runs and exits, then A is created with the recycled tag 1.
  const remap: GuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], paging: true, items: [{ op: 'pte', t: 0, page: 0, frame: 0x600, flags: 7 }, { op: 'rd', d: 'eax', page: 0, off: 0 }] };
  const nothing: GuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], paging: true, items: [] };
  const successor = (policy: TlbPolicy): FlatPairCase => ({
    a: { regs: [0, 0, 0, 0, 0, 0, 0], paging: true, items: [{ op: 'rd', d: 'ebx', page: 0, off: 0 }] },
    b0: remap, b1: nothing, policy, schedule: [{ vm: 1, instructions: 40 }, { vm: 0, instructions: 25 }], lifetime: 'successor',
  });

  it('a VM created with a recycled tag starts after its predecessor, at a round boundary, with that tag flushed', () => {
    const a = prepare('native', buildGuest(A)), b = prepare('native', buildGuest(nothing));
    const r = runMultiVm([{ ...a, tag: 1, after: 1 }, { ...b, tag: 1 }], { schedule: [{ vm: 1, instructions: 40 }, { vm: 0, instructions: 25 }], stopped: 'idle', tlb: 'tagged-partitioned', profile: verifyProfile().profile, maxInstructions: 1_000_000, stopWhen: 0 });
    expect(b.machine.cpu.stopReason?.kind).toBe('exit-device');
    expect(a.machine.cpu.stopReason?.kind).toBe('exit-device');
    expect(r.tagFlushes).toBe(1);
    expect(b.machine.cpu.dtlb.tag.every((t) => t === -1)).toBe(true);
    for (const policy of TLB_POLICIES) expect(checkFlatPair(successor(policy), 'native'), policy).toEqual({ failure: null, channel: null });
  });

  it("mutant vpid-reuse-no-flush: the successor uses its predecessor's translations (A's outcome depends on B's secret)", () => {
    for (const policy of ['tagged-shared', 'tagged-partitioned'] as const) {
      for (const config of ['native', 'hw-nested']) {
        const f = withMutant('vpid-reuse-no-flush', () => checkFlatPair(successor(policy), config).failure);
        expect(f, `${config} ${policy}`).toMatch(/VM A's outcome depends on VM B/);
      }
    }
    // An untagged TLB is flushed at every switch anyway: the mutant has nothing to leave.
    expect(withMutant('vpid-reuse-no-flush', () => checkFlatPair(successor('flush'), 'native').failure)).toBeNull();
    // The saved case replays, and fails under the mutant only.
    const file = { pair: { harness: 'flat' as const, ...successor('tagged-partitioned'), configs: ['native'] } };
    expect(replayPairCase(file).ok).toBe(true);
    const r = withMutant('vpid-reuse-no-flush', () => replayPairCase(file));
    expect(r.ok).toBe(false);
    expect(r.lines[1]).toMatch(/^  native, tagged-partitioned, successor: VM A's outcome depends on VM B/);
    expect(() => replayPairCase({ pair: { ...file.pair, policy: 'nope' } })).toThrow(/^replay: pair.policy must be one of flush, tagged-shared, tagged-partitioned/);
  });
});
