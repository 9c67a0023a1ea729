/**
 * Shadow paging on its own: hidden faults fill the shadow lazily with the guest's A/D bits
 * kept right; trace faults keep it in sync with guest page-table writes made by real guest
 * instructions; a property checks every translation against the guest's tables.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CR0_ET, CR0_PE, CR0_PG, CR0_WP, CR4_PSE, EAX, EBX, FAULT, Vec } from '../../src/machine/cpu/cpu.js';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { FaultOutcome, MonitorFrames, ShadowPaging } from '../../src/vmm/shadow-paging.js';

const PD1 = 0x1000, PD2 = 0x2000, PT0 = 0x3000, PT1 = 0x4000, PT2 = 0x5000;
const CODE = 0x8000;
const DATA = 0x10000; // 16 data frames
const P = 1, W = 2, U = 4, A = 0x20, D = 0x40, PS = 0x80;
/** Linear pages the property looks at: 16 under PDE 1, 16 under PDE 2, and the code page. */
const LINS = [...Array.from({ length: 16 }, (_, i) => 0x400000 + i * 4096), ...Array.from({ length: 16 }, (_, i) => 0x800000 + i * 4096), CODE];

function setup() {
  const m = new Machine({ memoryMiB: 4, monitorMiB: 1, profile: loadProfile().profile });
  const mem = m.mem;
  // PT0: identity map of the low 64 KiB (code, the tables themselves, data), supervisor RW.
  for (let i = 0; i < 32; i++) mem.write32(PT0 + i * 4, (i * 4096) | P | W);
  for (const pd of [PD1, PD2]) mem.write32(pd, PT0 | P | W);
  mem.write32(CODE, 0x03_89); // mov [ebx], eax
  mem.u8[CODE + 2] = 0xf4; // hlt
  for (let i = 0; i < 16; i++) mem.write32(DATA + i * 4096, 0x1000 + i);
  const guest = { cr0: CR0_PE | CR0_PG | CR0_WP | CR0_ET, cr3: PD1, cr4: CR4_PSE };
  const cpu = m.cpu;
  cpu.jitEnabled = false;
  cpu.resetFlat32(CODE); // flat 32-bit segments
  cpu.cr0 = CR0_PE | CR0_PG | CR0_WP | CR0_ET;
  cpu.cr4 = 0;
  cpu.updatePaging();
  cpu.cpl = 1; // the guest kernel, deprivileged
  const sp = new ShadowPaging(cpu, new MonitorFrames(mem), guest);
  sp.activate();
  return { m, mem, cpu, guest, sp };
}

type Env = ReturnType<typeof setup>;

/** A supervisor read through the real CPU (shadow + TLB), handling hidden faults as the monitor does; -1 on a guest fault. */
function cpuRead(env: Env, lin: number): number {
  for (let i = 0; i < 4; i++) {
    try {
      return env.cpu.readLin32(lin, false);
    } catch (e) {
      if (e !== FAULT) throw e;
      expect(env.cpu.excVector).toBe(Vec.PF);
      const r = env.sp.handleFault(env.cpu.excCode, false);
      if (r === FaultOutcome.Guest) return -1;
      expect(r).toBe(FaultOutcome.Hidden);
    }
  }
  throw new Error('no progress');
}

/** The guest kernel writes `value` at linear `lin` with a real instruction (mov [ebx], eax). */
function guestWrite(env: Env, lin: number, value: number): void {
  const cpu = env.cpu;
  cpu.r32[EBX] = lin; cpu.r32[EAX] = value;
  for (let i = 0; i < 4; i++) {
    cpu.eip = CODE;
    cpu.resetFetch();
    try { cpu.stepInstruction(); return; } catch (e) {
      if (e !== FAULT) throw e;
      const r = env.sp.handleFault(cpu.excCode, false);
      if (r === FaultOutcome.Trace) return;
      expect(r).toBe(FaultOutcome.Hidden);
    }
  }
  throw new Error('no progress');
}

describe('shadow paging', () => {
  it('fills the shadow lazily (hidden faults) and keeps the guest accessed/dirty bits right', () => {
    const env = setup();
    const { mem, sp } = env;
    mem.write32(PD1 + 4, PT1 | P | W);
    mem.write32(PT1 + 3 * 4, (DATA + 5 * 4096) | P | W);
    const before = sp.stats.hiddenFaults;
    expect(cpuRead(env, 0x403000)).toBe(0x1005);
    expect(sp.stats.hiddenFaults).toBeGreaterThan(before);
    expect(mem.read32(PT1 + 12) & (A | D)).toBe(A); // read: accessed, not dirty
    expect(mem.read32(PD1 + 4) & A).toBe(A);
    const n = sp.stats.hiddenFaults;
    expect(cpuRead(env, 0x403020)).toBe(0); // same page: no new fault
    expect(mem.read32(PT1 + 12) & D).toBe(0);
    expect(sp.stats.hiddenFaults).toBe(n);
    guestWrite(env, 0x403010, 0x77);
    expect(mem.read32(DATA + 5 * 4096 + 0x10)).toBe(0x77);
    expect(mem.read32(PT1 + 12) & D).toBe(D); // the first write sets dirty (a hidden fault)
    expect(sp.stats.hiddenFaults).toBe(n + 1 + 1); // code page fetch + dirty upgrade
  });

  it('reflects a fault the guest tables make (not present, user access to supervisor page)', () => {
    const env = setup();
    expect(env.sp.handleFault(0, false)).toBe(FaultOutcome.Hidden); // cr2 = 0: identity-mapped
    env.cpu.cr2 = 0x400000;
    expect(env.sp.handleFault(0, false)).toBe(FaultOutcome.Guest);
    expect(env.sp.guestCode).toBe(0);
    env.cpu.cr2 = CODE;
    expect(env.sp.handleFault(4, true)).toBe(FaultOutcome.Guest);
    expect(env.sp.guestCode).toBe(5);
  });

  it('write-protects guest page tables: a guest PTE write is a trace fault that drops the stale shadow entry', () => {
    const env = setup();
    const { mem, sp } = env;
    mem.write32(PD1 + 4, PT1 | P | W);
    mem.write32(PT1, (DATA + 1 * 4096) | P | W);
    expect(cpuRead(env, 0x400000)).toBe(0x1001);
    expect(sp.isTraced(PT1)).toBe(true);
    // PT1 is reachable at linear PT1 (identity): the guest rewrites its entry 0.
    guestWrite(env, PT1, (DATA + 2 * 4096) | P | W);
    expect(sp.stats.traceFaults).toBe(1);
    expect(mem.read32(PT1)).toBe((DATA + 2 * 4096) | P | W);
    expect(cpuRead(env, 0x400000)).toBe(0x1002);
    // No shadow entry maps a page table writable.
    for (const [, frame, writable] of sp.currentMappings()) if (frame === PT1 || frame === PD1) expect(writable).toBe(false);
  });

  it('shadows a 4 MiB guest page as 4 KiB pieces', () => {
    const env = setup();
    env.mem.write32(PD1 + 8, 0 | P | W | PS); // linear 8 MiB → physical 0..4 MiB
    expect(cpuRead(env, 0x800000 + DATA + 3 * 4096)).toBe(0x1003);
    const pieces = [...env.sp.currentMappings()].filter(([lin]) => lin >>> 22 === 2);
    expect(pieces).toEqual([[0x800000 + DATA + 3 * 4096, DATA + 3 * 4096, false, false]]);
  });

  it('property: through any guest page-table writes, INVLPGs and CR3 loads, the shadow translates as the guest tables do', () => {
    const frameArb = fc.oneof(
      fc.integer({ min: 0, max: 15 }).map((k) => DATA + k * 4096),
      fc.constantFrom(PT1, PT2, PD1, PD2, CODE),
      fc.constant(0x3ff000), // the last guest frame
    );
    const pteArb = fc.record({ frame: frameArb, p: fc.boolean(), w: fc.boolean(), u: fc.boolean() })
      .map(({ frame, p, w, u }) => frame | (p ? P : 0) | (w ? W : 0) | (u ? U : 0));
    const op = fc.oneof(
      fc.record({ k: fc.constant('pte' as const), pt: fc.constantFrom(PT1, PT2), i: fc.integer({ min: 0, max: 15 }), v: pteArb }),
      fc.record({ k: fc.constant('pde' as const), pd: fc.constantFrom(PD1, PD2), i: fc.constantFrom(1, 2),
        v: fc.constantFrom(PT1 | P | W, PT2 | P | W | U, PT1 | P, 0, P | W | PS, P | PS | U) }),
      fc.record({ k: fc.constant('invlpg' as const), lin: fc.constantFrom(...LINS) }),
      fc.record({ k: fc.constant('cr3' as const), pd: fc.constantFrom(PD1, PD2) }),
    );
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 25 }), (ops) => {
      const env = setup();
      const { mem, sp, guest, cpu } = env;
      for (const pd of [PD1, PD2]) { mem.write32(pd + 4, PT1 | P | W); mem.write32(pd + 8, PT2 | P | W); }
      for (const o of ops) {
        switch (o.k) {
          case 'pte': guestWrite(env, o.pt + o.i * 4, o.v); break;
          case 'pde': guestWrite(env, o.pd + o.i * 4, o.v); break;
          case 'invlpg': sp.invalidate(o.lin); break;
          case 'cr3': guest.cr3 = o.pd; sp.activate(); break;
        }
        for (const lin of LINS) {
          const want = sp.guestTranslate(lin, false, false);
          const got = cpuRead(env, lin);
          expect(got).toBe(want < 0 ? -1 : mem.read32(want));
          if (want >= 0) expect(cpu.peekTranslate(lin)).toBe(want);
        }
        for (const f of sp.allShadowFrames()) expect(f).toBeLessThan(mem.guestSize);
        for (const [lin, frame, writable] of sp.currentMappings()) {
          if (!writable) continue;
          expect(sp.isTraced(frame)).toBe(false);
          expect(sp.guestTranslate(lin, true, false)).toBe(frame);
        }
      }
    }), { numRuns: 150, seed: 20261125 });
  });
});
