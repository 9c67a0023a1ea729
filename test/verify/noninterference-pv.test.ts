// Two pv domains on one machine (src/verify/pv-pair.ts): each a virtlab kernel under its own
// PvMonitor, time-sliced by runMultiVm. VM A's console, exit, RAM and (where the TLB policy
// claims timing isolation) cycles do not depend on VM B's secret, whatever B's kernel does
// (mmu_update work, fork, sleeping in SCHEDOP_block, exiting, an event channel of its own);
// the same code path runs two kernels under the other modes. Interdomain event channels between
// the two domains, and the mutant that delivers an event to the wrong domain.
import { describe, expect, it } from 'vitest';
import { runProperty } from '../../src/verify/properties.js';
import { checkKernelPair, prepareKernelVm, runKernelPair, secretImage, type SecretProgram } from '../../src/verify/pv-pair.js';
import { replayPairCase } from '../../src/verify/noninterference.js';
import { buildUserGuest, runUserGuest, type UserGuestProgram } from '../../src/verify/user-program.js';
import { PvMonitor } from '../../src/vmm/pv/pv.js';
import { DOMID_SELF, EventChannels, isPending } from '../../src/vmm/pv/event-channel.js';
import type { DomId } from '../../src/vmm/pv/domain-context.js';
import { withMutant } from '../../src/vmm/mutants.js';
import { TLB_POLICIES, type Slice } from '../../src/vmm/multi-vm.js';

const A: UserGuestProgram = { regs: [1, 2, 3, 4, 5, 6, 7], items: [{ op: 'alu', f: 'add', d: 'eax', s: 'ebx' }, { op: 'store', s: 'eax', off: 8 }] };
const busy: SecretProgram = {
  actions: [{ op: 'mmap', slot: 0, pages: 16 }, { op: 'touch', slot: 0, page: 3, value: 5 }, { op: 'touch', slot: 0, page: 9, value: 6 }, { op: 'fork' },
    { op: 'munmap', slot: 0 }, { op: 'mmap', slot: 1, pages: 8 }, { op: 'touch', slot: 1, page: 1, value: 9 }, { op: 'sleep', ticks: 1 }, { op: 'compute', n: 20 }],
  end: 'sleep',
};
const quiet: SecretProgram = { actions: [], end: 'spin' };
const exits: SecretProgram = { actions: [{ op: 'store', off: 4, value: 3 }], end: 'exit' };
const sched: Slice[] = [{ vm: 0, instructions: 5000 }, { vm: 1, instructions: 7000 }];
const image = buildUserGuest(A);

describe('noninterference with two pv domains', () => {
  it("B's secret program keeps its own PvMonitor busy with page-table work; A's domain is untouched by it", () => {
    const run = (s: SecretProgram) => {
      const vb = prepareKernelVm(secretImage(s), 'pv', 'b.elf');
      vb.machine.run({ maxInstructions: 3_000_000 });
      return { stats: vb.monitor!.stats(), exit: vb.machine.outcome().exit.reason, monitor: vb.monitor };
    };
    const b = run({ ...busy, end: 'exit' }), q = run({ ...quiet, end: 'exit' });
    expect(b.exit).toBe('exit-device');
    expect(b.monitor).toBeInstanceOf(PvMonitor);
    expect(b.stats['hypercall:mmu_update']!).toBeGreaterThan(q.stats['hypercall:mmu_update']!);
    expect(b.stats['hypercall:multicall']!).toBeGreaterThan(q.stats['hypercall:multicall']!);
    expect(b.stats['block']).toBeGreaterThan(0);
  });

  it("A beside B prints what A prints alone; each domain has its own monitor and memory; A pays the world switches", () => {
    const alone = runUserGuest(image, 'pv');
    const r = runKernelPair(image, busy, 'pv', 'flush', sched);
    expect(r.user.console).toBe(alone.console);
    expect(r.user.initExit).toBe(0);
    expect(r.switches).toBeGreaterThan(10);
    expect(r.machine.outcome().accounting.categories['world-switch']!.count).toBeGreaterThan(5);
    expect(r.bExit).toMatch(/instruction-limit/); // B sleeps for ever: it never stopped
  });

  it("A's console, RAM and cycles are the same whatever B does (busy, spinning, exiting) where the policy claims timing isolation; tagged-shared shows the timing channel", () => {
    for (const policy of TLB_POLICIES) {
      const v = checkKernelPair({ a: A, b0: busy, b1: quiet, policy, schedule: sched }, 'pv', image);
      expect(v.failure, policy).toBeNull();
      if (policy === 'tagged-shared') expect(v.channel, policy).toMatch(/cycles/);
      else expect(v.channel, policy).toBeNull();
      const w = checkKernelPair({ a: A, b0: exits, b1: busy, policy, schedule: sched }, 'pv', image);
      expect(w.failure, `${policy}, B exits`).toBeNull();
      expect(w.r0.idleSlices).toBeGreaterThan(0); // B stopped: its slices went to the idle VM
    }
  });

  it('the same pair under every other mode (two virtlab kernels)', () => {
    for (const config of ['native', 'trap', 'full', 'hw-nested', 'hw-shadow']) {
      const v = checkKernelPair({ a: A, b0: busy, b1: exits, policy: 'flush', schedule: sched }, config, image);
      expect(v.failure, config).toBeNull();
      expect(v.r0.user.console, config).toBe(v.r1.user.console);
    }
  });

  it("an interdomain event channel between pv domains: B's sends reach only the domain they name; mutant pv-evtchn-wrong-domain delivers them to A", () => {
    // Bind and send by hand: B (domain 2) opens a port for A (domain 1); A binds; each sends to the other.
    const va = prepareKernelVm(image, 'pv', 'a.elf'), vb = prepareKernelVm(secretImage(quiet), 'pv', 'b.elf');
    va.machine.run({ maxInstructions: 400_000 }); vb.machine.run({ maxInstructions: 400_000 });
    const a = va.monitor as PvMonitor, b = vb.monitor as PvMonitor;
    b.domid = 2 as DomId;
    expect(b.drivers.events.allocUnbound(DOMID_SELF, 1)).toBe(-3); // -ESRCH: domain 1 is not known yet
    EventChannels.connectDomains([a.drivers.events, b.drivers.events]);
    expect(() => EventChannels.connectDomains([a.drivers.events, a.drivers.events])).toThrow('event channels: domain id 1 is given twice');
    const pb = b.drivers.events.allocUnbound(DOMID_SELF, 1);
    expect(pb).toBeGreaterThan(0);
    expect(a.drivers.events.bindInterdomain(2, pb + 1)).toBeLessThan(0); // not a port open to A
    const pa = a.drivers.events.bindInterdomain(2, pb);
    expect(pa).toBeGreaterThan(0);
    expect(b.drivers.events.send(pb)).toBe(0);
    expect(isPending(va.machine.mem, a.sharedInfoMfn, pa)).toBe(true);
    expect(isPending(vb.machine.mem, b.sharedInfoMfn, pb)).toBe(false);
    // The secret's own channel (loopback): A untouched, unless the mutant misdelivers.
    const ch: SecretProgram = { ...quiet, actions: [{ op: 'compute', n: 3 }], channel: 3 }, none: SecretProgram = { ...ch, channel: 0 };
    for (const policy of ['flush', 'tagged-partitioned'] as const) {
      expect(checkKernelPair({ a: A, b0: ch, b1: none, policy, schedule: sched }, 'pv', image).failure, policy).toBeNull();
      const m = withMutant('pv-evtchn-wrong-domain', () => checkKernelPair({ a: A, b0: ch, b1: none, policy, schedule: sched }, 'pv', image));
      expect(m.failure, policy).toMatch(/VM A's RAM differs/);
    }
  });

  it('noninterference-kernel (pv) holds over generated A programs, B secrets, policies and schedules; a case replays', { timeout: 60_000 }, () => {
    const r = runProperty('noninterference-kernel', { runs: 6, seed: 1, configs: ['pv'] });
    expect(r.ok, JSON.stringify(r.counterexample)).toBe(true);
    expect(r.runs).toBe(6);
    const file = { pair: { harness: 'kernel' as const, a: A, b0: busy, b1: exits, policy: 'tagged-partitioned' as const, schedule: sched, configs: ['pv'] } };
    const x = replayPairCase(file);
    expect(x.ok).toBe(true);
    expect(x.lines[1]).toBe('  pv: holds');
  });
});
