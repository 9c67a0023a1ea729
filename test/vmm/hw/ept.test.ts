import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PhysicalMemory } from '../../../src/machine/memory.js';
import {
  EPT_R, EPT_RWX, EPT_W, EPT_X, EptAccess, EptBuilder, EptFault, EptMemType, EptWalker, GuestAccess, makeEptp,
  NestedFault, NestedWalker, type EptCacheOptions,
} from '../../../src/vmm/hw/ept.js';

const MiB = 1 << 20;
/** Guest RAM: gpa [0, 4 MiB) lives at hpa [4 MiB, 8 MiB); EPT tables in [12 MiB, 16 MiB). */
const GUEST_BASE = 4 * MiB;

function setup(caches: EptCacheOptions = {}, largePages = false) {
  const mem = new PhysicalMemory(16 * MiB);
  const b = new EptBuilder(mem, 12 * MiB, 16 * MiB);
  b.map(0, GUEST_BASE, 4 * MiB, EPT_RWX, EptMemType.WB, largePages);
  const ept = new EptWalker(mem, b.eptp, caches);
  const nested = new NestedWalker(mem, ept);
  const gw = (gpa: number, v: number) => mem.write32(GUEST_BASE + gpa, v);
  const gr = (gpa: number) => mem.read32(GUEST_BASE + gpa);
  return { mem, b, ept, nested, gw, gr };
}

/** Guest tables: CR3 = 0x1000; lin 0xC0000000 + n·4 KiB → gpa 0x100000 + n·4 KiB via PT at 0x2000. */
function guestTables(gw: (a: number, v: number) => void, pteFlags = 0x7) {
  gw(0x1000 + (0x300 << 2), 0x2000 | 0x7);
  for (let n = 0; n < 16; n++) gw(0x2000 + (n << 2), (0x100000 + n * 4096) | pteFlags);
}
const CR0 = 0x80010011; // PG, WP, ET, PE
const CR3 = 0x1000;

describe('EPT builder and single translations', () => {
  it('EPTP: WB, 4-level walk, PML4 at the pool base', () => {
    const { b } = setup();
    expect(b.eptp).toBe(makeEptp(12 * MiB));
    expect(b.eptp & 7).toBe(6);
    expect((b.eptp >>> 3) & 7).toBe(3);
    expect(b.eptp & ~0xfff).toBe(12 * MiB);
    // 4 MiB of 4 KiB pages: PML4 + PDPT + PD + 2 PTs.
    expect(b.pages).toBe(5);
  });

  it('a cold 4 KiB translation reads 4 entries; a 2 MiB leaf 3', () => {
    const s = setup();
    expect(s.ept.translate(0x1234, EptAccess.Read)).toBe(GUEST_BASE + 0x1234);
    expect(s.ept.counters.refs).toBe(4);
    expect(s.ept.memType).toBe(EptMemType.WB);
    const l = setup({}, true);
    expect(l.b.pages).toBe(3); // PML4, PDPT, PD with two 2 MiB leaves
    expect(l.ept.translate(0x3f_f123, EptAccess.Write)).toBe(GUEST_BASE + 0x3f_f123);
    expect(l.ept.counters.refs).toBe(3);
  });

  it('1 GiB leaves: 2 references', () => {
    const mem = new PhysicalMemory(16 * MiB);
    const b = new EptBuilder(mem, 0, 64 * 1024);
    b.map(0x4000_0000, 0, 0x4000_0000, EPT_RWX, EptMemType.WB, true); // needs no host memory to map
    const w = new EptWalker(mem, b.eptp);
    expect(w.translate(0x4012_3456, EptAccess.Read)).toBe(0x12_3456);
    expect(w.counters.refs).toBe(2);
  });

  it('violations: not present, and permission, with the readable/writable/executable bits', () => {
    const s = setup();
    expect(s.ept.translate(5 * MiB, EptAccess.Read)).toBe(-1);
    expect(s.ept.fault).toBe(EptFault.Violation);
    expect(s.ept.qualification).toBe(1); // data read, nothing permitted
    expect(s.ept.faultGpa).toBe(5 * MiB);
    s.b.protect(0x3000, 4096, EPT_R | EPT_X);
    s.ept.invalidate();
    expect(s.ept.translate(0x3010, EptAccess.Write)).toBe(-1);
    expect(s.ept.qualification).toBe(2 | 8 | 0x20);
    expect(s.ept.translate(0x3010, EptAccess.Read)).toBe(GUEST_BASE + 0x3010);
    s.b.protect(0x3000, 4096, EPT_R | EPT_W);
    s.ept.invalidate();
    expect(s.ept.translate(0x3010, EptAccess.Fetch)).toBe(-1);
    expect(s.ept.qualification).toBe(4 | 8 | 0x10);
    expect(s.ept.counters.violations).toBe(3);
  });

  it('execute-only is allowed; write-only and reserved memory types are misconfigurations', () => {
    const s = setup();
    s.b.protect(0x3000, 4096, EPT_X);
    expect(s.ept.translate(0x3000, EptAccess.Fetch)).toBe(GUEST_BASE + 0x3000);
    expect(s.ept.translate(0x3000, EptAccess.Read)).toBe(-1);
    expect(s.ept.fault).toBe(EptFault.Violation);
    expect(() => s.b.protect(0x3000, 4096, EPT_W)).toThrow(RangeError);
    s.b.writeRawLeaf(0x4000, (GUEST_BASE + 0x4000) | EPT_W);
    expect(s.ept.translate(0x4000, EptAccess.Write)).toBe(-1);
    expect(s.ept.fault).toBe(EptFault.Misconfiguration);
    s.b.writeRawLeaf(0x5000, (GUEST_BASE + 0x5000) | EPT_RWX | (2 << 3)); // memory type 2 is reserved
    expect(s.ept.translate(0x5000, EptAccess.Read)).toBe(-1);
    expect(s.ept.fault).toBe(EptFault.Misconfiguration);
    expect(s.ept.counters.misconfigurations).toBe(2);
    expect(() => s.b.map(0, 0, 4096, EPT_RWX, 3)).toThrow(RangeError);
  });

  it('unmap removes the leaf', () => {
    const s = setup();
    s.b.unmap(0x7000, 4096);
    expect(s.ept.translate(0x7000, EptAccess.Read)).toBe(-1);
    expect(s.ept.translate(0x8000, EptAccess.Read)).toBe(GUEST_BASE + 0x8000);
  });
});

describe('two-dimensional walk', () => {
  it('cold 4 KiB walk, 2 guest levels × 4-level EPT, no caches: (2+1)(4+1)−1 = 14 references', () => {
    const s = setup();
    guestTables(s.gw);
    const hpa = s.nested.translate(CR0, CR3, 0, 0xc000_1234, GuestAccess.Read, false);
    expect(hpa).toBe(GUEST_BASE + 0x101234);
    expect(s.nested.refs).toBe(14);
    expect(s.nested.counters.guestRefs).toBe(2);
    expect(s.ept.counters.refs).toBe(12);
    // Without caches every walk costs the same.
    s.nested.translate(CR0, CR3, 0, 0xc000_1234, GuestAccess.Read, false);
    expect(s.nested.refs).toBe(28);
  });

  it('a 4 MiB guest page (n = 1): (1+1)(4+1)−1 = 9 references', () => {
    const s = setup();
    s.gw(0x1000 + (0x300 << 2), 0x0 | 0x87); // PS, 4 MiB at gpa 0
    expect(s.nested.translate(CR0, CR3, 0x10, 0xc012_3456, GuestAccess.Read, false)).toBe(GUEST_BASE + 0x12_3456);
    expect(s.nested.refs).toBe(9);
    expect(s.nested.large).toBe(true);
  });

  it('nested TLB: repeated walk 2 references, a new page in the same PT 6', () => {
    const s = setup({ ntlbEntries: 8 });
    guestTables(s.gw);
    s.nested.translate(CR0, CR3, 0, 0xc000_1234, GuestAccess.Read, false);
    expect(s.nested.refs).toBe(14);
    s.nested.translate(CR0, CR3, 0, 0xc000_1234, GuestAccess.Read, false);
    expect(s.nested.refs).toBe(14 + 2);
    s.nested.translate(CR0, CR3, 0, 0xc000_2000, GuestAccess.Read, false);
    expect(s.nested.refs).toBe(16 + 6);
    expect(s.ept.counters.ntlbHits).toBe(3 + 2);
    s.ept.invalidate();
    s.nested.translate(CR0, CR3, 0, 0xc000_2000, GuestAccess.Read, false);
    expect(s.nested.refs).toBe(22 + 14);
  });

  it('EPT PDE cache: a cold walk within one 2 MiB region costs 4 + 1 + 1 EPT references', () => {
    const s = setup({ pdeCacheEntries: 4 });
    guestTables(s.gw);
    // Guest PD 0x1000, PT 0x2000 and data 0x101000 are all in gpa region 0 (bits 31:21 = 0).
    s.nested.translate(CR0, CR3, 0, 0xc000_1234, GuestAccess.Read, false);
    expect(s.nested.refs).toBe(2 + 4 + 1 + 1);
    expect(s.ept.counters.pdeCacheHits).toBe(2);
    const both = setup({ pdeCacheEntries: 4, ntlbEntries: 8 });
    guestTables(both.gw);
    both.nested.translate(CR0, CR3, 0, 0xc000_1234, GuestAccess.Read, false);
    both.nested.translate(CR0, CR3, 0, 0xc000_3000, GuestAccess.Read, false);
    expect(both.nested.refs).toBe(8 + 2 + 1);
  });

  it('guest A/D bits are written through EPT', () => {
    const s = setup();
    guestTables(s.gw);
    s.nested.translate(CR0, CR3, 0, 0xc000_1000, GuestAccess.Write, false);
    expect(s.gr(0x1000 + (0x300 << 2)) & 0x20).toBe(0x20);
    expect(s.gr(0x2000 + 4) & 0x60).toBe(0x60);
    expect(s.gr(0x2000 + 8) & 0x60).toBe(0); // untouched neighbour
    expect(s.nested.counters.adUpdates).toBe(2);
    expect(s.nested.dirty).toBe(true);
    // Nothing to update the second time.
    s.nested.translate(CR0, CR3, 0, 0xc000_1000, GuestAccess.Write, false);
    expect(s.nested.counters.adUpdates).toBe(2);
  });

  it('an A/D update into an EPT-read-only page-table page is an EPT violation on the paging structure', () => {
    const s = setup();
    guestTables(s.gw);
    s.b.protect(0x2000, 4096, EPT_R);
    expect(s.nested.translate(CR0, CR3, 0, 0xc000_1000, GuestAccess.Read, false)).toBe(-1);
    expect(s.nested.fault).toBe(NestedFault.EptViolation);
    expect(s.nested.faultGpa).toBe(0x2004);
    expect(s.nested.qualification).toBe(2 | 8 | 0x80); // write, readable, linear valid, not final
    // With A already set, the read walk needs no write and succeeds.
    s.gw(0x2004, s.gr(0x2004) | 0x20);
    expect(s.nested.translate(CR0, CR3, 0, 0xc000_1000, GuestAccess.Read, false)).toBe(GUEST_BASE + 0x101000);
  });

  it('MMIO (unmapped gpa) at the final step: violation with linear-valid and final bits', () => {
    const s = setup();
    guestTables(s.gw);
    s.gw(0x2000 + (5 << 2), 0xfec0_0000 | 0x63 | 0x7);
    expect(s.nested.translate(CR0, CR3, 0, 0xc000_5010, GuestAccess.Write, false)).toBe(-1);
    expect(s.nested.fault).toBe(NestedFault.EptViolation);
    expect(s.nested.faultGpa).toBe(0xfec0_0010);
    expect(s.nested.qualification).toBe(2 | 0x80 | 0x100);
    expect(s.nested.gpa).toBe(0xfec0_0010);
  });

  it('a guest page table in unmapped guest-physical memory: violation, not final', () => {
    const s = setup();
    s.gw(0x1000 + (0x300 << 2), 0x50_0000 | 0x7); // PT at gpa 5 MiB: no EPT mapping
    expect(s.nested.translate(CR0, CR3, 0, 0xc000_0000, GuestAccess.Read, false)).toBe(-1);
    expect(s.nested.qualification).toBe(1 | 0x80);
  });

  it('guest page faults carry the architectural error code and win over nothing else', () => {
    const s = setup();
    guestTables(s.gw, 0x5); // present, user, read-only
    expect(s.nested.translate(CR0, CR3, 0, 0xc040_0000, GuestAccess.Read, false)).toBe(-1);
    expect(s.nested.fault).toBe(NestedFault.GuestPageFault);
    expect(s.nested.pfErrorCode).toBe(0);
    expect(s.nested.translate(CR0, CR3, 0, 0xc000_1000, GuestAccess.Write, true)).toBe(-1);
    expect(s.nested.pfErrorCode).toBe(7);
    expect(s.nested.translate(CR0, CR3, 0, 0xc000_1000, GuestAccess.Write, false)).toBe(-1); // CR0.WP
    expect(s.nested.pfErrorCode).toBe(3);
    expect(s.nested.translate(CR0 & ~0x10000, CR3, 0, 0xc000_1000, GuestAccess.Write, false)).toBe(GUEST_BASE + 0x101000);
    expect(s.nested.counters.guestPageFaults).toBe(3);
  });

  it('property: the 2-D translation equals the EPT translation of the guest translation', () => {
    fc.assert(fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 0xfffff }), { minLength: 1, maxLength: 24 }),
      fc.integer({ min: 0, max: 0x7fffffff }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 0xfff }), fc.constantFrom(0, 1, 2), fc.boolean()), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 0, max: 0xfffff }),
      fc.record({ ntlbEntries: fc.constantFrom(0, 1, 4), pdeCacheEntries: fc.constantFrom(0, 2) }),
      (vpns, seed, probes, stray, caches) => {
        const mem = new PhysicalMemory(16 * MiB);
        const b = new EptBuilder(mem, 12 * MiB, 16 * MiB);
        // EPT: guest frames 0..0x3ff → a seeded shuffle of host frames 0x400..0x7ff.
        const hostOf: number[] = [];
        for (let i = 0; i < 0x400; i++) hostOf.push(0x400 + i);
        let r = seed >>> 0;
        for (let i = hostOf.length - 1; i > 0; i--) {
          r = (Math.imul(r, 1103515245) + 12345) >>> 0;
          const j = r % (i + 1);
          [hostOf[i], hostOf[j]] = [hostOf[j]!, hostOf[i]!];
        }
        for (let g = 0; g < 0x400; g++) b.map(g * 4096, hostOf[g]! * 4096, 4096, EPT_RWX);
        const ept = new EptWalker(mem, b.eptp, caches);
        const nested = new NestedWalker(mem, ept);
        const gw = (gpa: number, v: number) => mem.write32(hostOf[gpa >>> 12]! * 4096 + (gpa & 0xfff), v);
        // Guest: PD at frame 1, PT pages from frame 2, data frames from 0x100 (one per mapped page).
        const guestOf = new Map<number, number>();
        const ptOf = new Map<number, number>();
        let nextPt = 2;
        vpns.forEach((vpn, k) => {
          const pdi = vpn >>> 10;
          if (!ptOf.has(pdi)) { ptOf.set(pdi, nextPt); gw(0x1000 + pdi * 4, (nextPt++ << 12) | 7); }
          const frame = 0x100 + k;
          guestOf.set(vpn, frame);
          gw((ptOf.get(pdi)! << 12) + (vpn & 0x3ff) * 4, (frame << 12) | 7);
        });
        for (const [which, off, acc, user] of probes) {
          const vpn = vpns[which % vpns.length]!;
          const lin = ((vpn << 12) | off) >>> 0;
          const got = nested.translate(CR0, 0x1000, 0, lin, acc, user);
          expect(got).toBe(hostOf[guestOf.get(vpn)!]! * 4096 + off);
          expect(nested.gpa).toBe(guestOf.get(vpn)! * 4096 + off);
        }
        if (!guestOf.has(stray)) {
          expect(nested.translate(CR0, 0x1000, 0, stray << 12, GuestAccess.Read, false)).toBe(-1);
          expect(nested.fault).toBe(NestedFault.GuestPageFault);
        }
      }), { numRuns: 60 });
  });
});

describe('EptWalker construction', () => {
  it('rejects EPTPs it cannot walk', () => {
    const mem = new PhysicalMemory(64 * 1024);
    expect(() => new EptWalker(mem, 0x1000 | (2 << 3) | 6)).toThrow(/4-level/);
    expect(() => new EptWalker(mem, 0x1000 | (3 << 3) | 4)).toThrow(/UC or WB/);
    expect(() => new EptBuilder(mem, 0x1000, 0x800)).toThrow(RangeError);
  });
});
