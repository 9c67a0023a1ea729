import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../../src/machine/cpu/cost-table.js';
import { PhysicalMemory } from '../../../src/machine/memory.js';
import { PortBus } from '../../../src/machine/port-bus.js';
import { Tlb, TLB_GLOBAL } from '../../../src/machine/tlb.js';
import { TaggedTlb } from '../../../src/vmm/hw/tagged-tlb.js';

describe('TaggedTlb', () => {
  it('entries of one VPID are invisible to another', () => {
    const t = new TaggedTlb({ sets: 16, ways: 4 });
    t.vmEntry(1);
    t.insert(0x123, 0x5000, 0);
    expect(t.lookup(0x123)).toBeGreaterThanOrEqual(0);
    t.vmExit(1);
    expect(t.currentVpid).toBe(0);
    expect(t.lookup(0x123)).toBe(-1);
    t.insert(0x123, 0x9000, 0); // host entry for the same page
    t.vmEntry(1);
    const i = t.lookup(0x123);
    expect(t.frame[i]).toBe(0x5000);
    expect(t.validEntries()).toBe(2);
  });

  it('VPID on: entry and exit flush nothing; VPID off: every transition flushes, counted', () => {
    const on = new TaggedTlb({ sets: 16, ways: 4 });
    on.vmEntry(7);
    for (let v = 0; v < 10; v++) on.insert(v, v << 12, 0);
    for (let k = 0; k < 5; k++) { on.vmExit(7); on.vmEntry(7); }
    expect(on.validEntries(7)).toBe(10);
    expect(on.tagCounters).toMatchObject({ transitions: 11, transitionFlushes: 0, entriesFlushedByTransitions: 0 });
    for (let v = 0; v < 10; v++) expect(on.lookup(v)).toBeGreaterThanOrEqual(0);

    const off = new TaggedTlb({ sets: 16, ways: 4 });
    off.vmEntry(0);
    for (let v = 0; v < 10; v++) off.insert(v, v << 12, 0);
    off.vmExit(0);
    expect(off.validEntries()).toBe(0);
    off.vmEntry(0);
    off.insert(3, 0x3000, TLB_GLOBAL); // global entries go too
    off.vmExit(0);
    expect(off.validEntries()).toBe(0);
    expect(off.tagCounters).toMatchObject({ transitions: 4, transitionFlushes: 4, entriesFlushedByTransitions: 11 });
  });

  it('CR3 load and INVLPG affect only the current VPID', () => {
    const t = new TaggedTlb({ sets: 4, ways: 4 });
    t.vmEntry(2);
    t.insert(1, 0x1000, 0);
    t.insert(2, 0x2000, TLB_GLOBAL);
    t.vmExit(2);
    t.insert(1, 0x8000, 0);
    t.vmEntry(3);
    t.insert(1, 0xa000, 0);
    t.flush(true); // VPID 3 CR3 load
    expect(t.validEntries(3)).toBe(0);
    expect(t.validEntries(2)).toBe(2);
    expect(t.validEntries(0)).toBe(1);
    t.vmExit(3);
    t.vmEntry(2);
    t.flush(true);
    expect(t.validEntries(2)).toBe(1); // the global one stays
    t.invalidate(2);
    expect(t.validEntries(2)).toBe(0);
    expect(t.validEntries(0)).toBe(1);
    t.flushVpid(0);
    expect(t.validEntries()).toBe(0);
    t.insert(5, 0x5000, 0);
    t.flushAll();
    expect(t.validEntries()).toBe(0);
    expect(t.tagCounters.vpidFlushes).toBe(2);
  });

  it('property: with one VPID it behaves exactly like the untagged Tlb', () => {
    type Op = { k: 'look' | 'ins' | 'inv' | 'flush'; vpn: number; g: boolean };
    const op = fc.record({ k: fc.constantFrom('look' as const, 'ins' as const, 'inv' as const, 'flush' as const),
      vpn: fc.integer({ min: 0, max: 40 }), g: fc.boolean() });
    fc.assert(fc.property(fc.array(op, { maxLength: 200 }), fc.integer({ min: 0, max: 3 }), (ops: Op[], vpid) => {
      const a = new Tlb({ sets: 4, ways: 2 });
      const b = new TaggedTlb({ sets: 4, ways: 2 });
      b.vmEntry(vpid === 0 ? 0 : vpid);
      for (const o of ops) {
        if (o.k === 'look') expect(b.lookup(o.vpn)).toBe(a.lookup(o.vpn));
        else if (o.k === 'ins') expect(b.insert(o.vpn, o.vpn << 12, o.g ? TLB_GLOBAL : 0)).toBe(a.insert(o.vpn, o.vpn << 12, o.g ? TLB_GLOBAL : 0));
        else if (o.k === 'inv') { a.invalidate(o.vpn); b.invalidate(o.vpn); } else { a.flush(o.g); b.flush(o.g); }
      }
      expect(Array.from(b.tag)).toEqual(Array.from(a.tag));
      expect(b.counters).toEqual(a.counters);
    }));
  });

  it('is a drop-in TLB for the CPU', () => {
    const mem = new PhysicalMemory(1 << 20);
    const itlb = new TaggedTlb({ sets: 8, ways: 4 });
    const dtlb = new TaggedTlb({ sets: 8, ways: 4 });
    const cpu = new Cpu(mem, new PortBus(), unitCostTable(), { itlb, dtlb });
    // PD at 0x1000, PT at 0x2000: linear 0x00400000 → physical 0x7000.
    mem.write32(0x1000 + 4, 0x2000 | 7);
    mem.write32(0x2000, 0x7000 | 7);
    cpu.cr3 = 0x1000;
    cpu.cr0 = 0x80000011;
    cpu.updatePaging();
    dtlb.vmEntry(5);
    expect(cpu.translate(0x400123, false, false)).toBe(0x7123);
    expect(cpu.walkRefs).toBe(2);
    dtlb.vmExit(5);
    dtlb.vmEntry(5);
    expect(cpu.translate(0x400123, false, false)).toBe(0x7123);
    expect(cpu.walkRefs).toBe(2); // VPID on: the entry survived the exit and entry
    dtlb.vmExit(5);
    dtlb.vmEntry(0);
    expect(cpu.translate(0x400123, false, false)).toBe(0x7123);
    expect(cpu.walkRefs).toBe(4); // a VPID-0 guest cannot see VPID 5's entry
    dtlb.vmExit(0);
    dtlb.vmEntry(0);
    expect(cpu.translate(0x400123, false, false)).toBe(0x7123);
    expect(cpu.walkRefs).toBe(6); // VPID off: flushed by the exit
  });
});
