import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu, FAULT } from '../../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../../src/machine/cpu/cost-table.js';
import { PhysicalMemory } from '../../../src/machine/memory.js';
import { PortBus } from '../../../src/machine/port-bus.js';
import { Tlb } from '../../../src/machine/tlb.js';
import type { VmExit } from '../../../src/vmm/hw/vmcs.js';
import { NestedPaging } from '../../../src/vmm/hw/nested-paging.js';

const MiB = 1 << 20;

function machine() {
  const mem = new PhysicalMemory(4 * MiB, 1 * MiB);
  const cpu = new Cpu(mem, new PortBus(), unitCostTable(), { itlb: new Tlb({ sets: 8, ways: 4 }), dtlb: new Tlb({ sets: 8, ways: 4 }) });
  return { mem, cpu };
}

function paging(cpu: Cpu) {
  cpu.cr3 = 0x1000;
  cpu.cr0 = 0x80010011 | 0;
  cpu.updatePaging();
}

describe('NestedPaging', () => {
  it('a TLB miss costs the 2-D walk: 14 references charged as page-walk, and fills the TLB', () => {
    const { mem, cpu } = machine();
    const exits: VmExit[] = [];
    const np = new NestedPaging(mem, {}, (x) => exits.push(x));
    mem.write32(0x1000 + 4, 0x2000 | 7); // lin 0x400000 → PT 0x2000
    mem.write32(0x2000, 0x7000 | 7);
    paging(cpu);
    const c0 = cpu.cycles;
    expect(np.walk(cpu, 0x400123, 0, false, cpu.dtlb)).toBe(0x7123);
    expect(cpu.walkRefs).toBe(14);
    expect(cpu.cycles - c0).toBe(14 * cpu.cost.walkRef);
    expect(cpu.adUpdates).toBe(2);
    expect(cpu.dtlb.probe(0x400)).toBeGreaterThanOrEqual(0);
    expect(exits).toHaveLength(0);
  });

  it('guest page faults are raised as #PF with CR2', () => {
    const { mem, cpu } = machine();
    const np = new NestedPaging(mem, {}, () => undefined);
    paging(cpu);
    expect(() => np.walk(cpu, 0x800000, 1, true, cpu.dtlb)).toThrow();
    try { np.walk(cpu, 0x800000, 1, true, cpu.dtlb); } catch (e) { expect(e).toBe(FAULT); }
    expect(cpu.excVector).toBe(14);
    expect(cpu.excCode).toBe(6);
    expect(cpu.cr2).toBe(0x800000);
  });

  it('guest-physical beyond guest RAM: an EPT-violation exit per access, open bus, no TLB entry', () => {
    const { mem, cpu } = machine();
    const exits: VmExit[] = [];
    const np = new NestedPaging(mem, {}, (x) => exits.push(x));
    mem.write32(0x1000 + 4, 0x2000 | 7);
    mem.write32(0x2000 + 4, 0x400000 | 7); // lin 0x401000 → gpa 4 MiB: the monitor's memory natively
    paging(cpu);
    const hpa = np.walk(cpu, 0x401010, 1, false, cpu.dtlb);
    expect(mem.read32(hpa)).toBe(-1);
    expect(hpa).toBeGreaterThanOrEqual(mem.size);
    expect(exits).toHaveLength(1);
    expect(exits[0]!.reason).toBe(48);
    expect(exits[0]!.qualification).toBe(2 | 0x80 | 0x100);
    expect(cpu.dtlb.probe(0x401)).toBe(-1);
    np.walk(cpu, 0x401010, 0, false, cpu.dtlb);
    expect(exits).toHaveLength(2);
    expect(np.violations).toBe(2);
  });

  it('property: agrees with the CPU\'s own walk (address, A/D bits, TLB permissions) for guest RAM', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3ff }), fc.integer({ min: 0x10, max: 0x3ff }), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 20 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 19 }), fc.integer({ min: 0, max: 1 }), fc.boolean()), { minLength: 1, maxLength: 20 }),
      (maps, probes) => {
        const a = machine(), b = machine();
        const np = new NestedPaging(b.mem, { ntlbEntries: 4 }, () => undefined);
        for (const m of [a.mem, b.mem]) {
          // PD 0x1000 maps lin 4-8 MiB with PT 0x2000 (user, writable).
          m.write32(0x1000 + 4, 0x2000 | 7);
          for (const [i, f, fl] of maps) m.write32(0x2000 + i * 4, (f << 12) | 1 | (fl << 1));
        }
        paging(a.cpu); paging(b.cpu);
        for (const [k, acc, user] of probes) {
          const [i] = maps[k % maps.length]!;
          const lin = 0x400000 + i * 4096 + 0x44;
          let ra: unknown, rb: unknown;
          try { ra = a.cpu.translate(lin, acc === 1, user); } catch (e) { ra = [e, a.cpu.excCode, a.cpu.cr2]; }
          try { rb = np.walk(b.cpu, lin, acc, user, b.cpu.dtlb); } catch (e) { rb = [e, b.cpu.excCode, b.cpu.cr2]; }
          expect(rb).toEqual(ra);
          const ia = a.cpu.dtlb.probe(lin >>> 12), ib = b.cpu.dtlb.probe(lin >>> 12);
          if (ib >= 0) expect(b.cpu.dtlb.perm[ib]).toBe(a.cpu.dtlb.perm[ia]!);
          a.cpu.dtlb.flush(false);
          b.cpu.dtlb.flush(false);
        }
        expect(Array.from(b.mem.u8.subarray(0, 0x3000))).toEqual(Array.from(a.mem.u8.subarray(0, 0x3000)));
      }), { numRuns: 80 });
  });
});
