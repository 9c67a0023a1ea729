import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu, CS, CR0_PG, DS, EAX, ECX, EDI, ES, ESI, ESP, FAULT, Vec } from '../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../src/machine/cpu/cost-table.js';
import { AF, CF, DF, IF, OF, PF, SF, TF, ZF } from '../../src/machine/cpu/flags.js';
import { HANDLERS } from '../../src/machine/cpu/op-table.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';

const CODE = 0x1000;
const IVT_HANDLERS = 0x600;

function machine(memBytes = 2 << 20): Cpu {
  const tlb = new Tlb({ sets: 16, ways: 4 });
  return new Cpu(new PhysicalMemory(memBytes), new PortBus(), unitCostTable(), { itlb: tlb, dtlb: tlb });
}

/** Real mode, code at 0100:0000, stack 0000:8000, exception vectors → `JMP $` stubs. */
/** The vector of the exception a real-mode test machine took, or -1. */
function vectorTaken(cpu: Cpu): number {
  if (cpu.segSel[CS] !== 0 || cpu.eip < IVT_HANDLERS || cpu.eip >= IVT_HANDLERS + 128) return -1;
  return (cpu.eip - IVT_HANDLERS) >> 2;
}

function real(bytes: number[]): Cpu {
  const cpu = machine();
  for (let v = 0; v < 32; v++) {
    cpu.mem.write16(v * 4, IVT_HANDLERS + v * 4);
    cpu.mem.write16(v * 4 + 2, 0);
    cpu.mem.write16(IVT_HANDLERS + v * 4, 0xfeeb);
  }
  cpu.loadRealSegment(CS, CODE >> 4);
  cpu.eip = 0;
  cpu.r16[ESP << 1] = 0x8000;
  cpu.mem.u8.set(bytes, CODE);
  return cpu;
}

/** Deterministic pseudo-random bytes (xorshift), so that buffers are cheap to make. */
function fillRandom(u8: Uint8Array, from: number, to: number, seed: number): void {
  let x = seed | 1;
  for (let i = from; i < to; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    u8[i] = x & 0xff;
  }
}

// ---- paged flat 32-bit machine: linear 0x400000 + 32 pages mapped to a permutation of frames ----
const PD = 0x10000, PT0 = 0x11000, PT1 = 0x12000;
const WIN = 0x400000, WIN_PAGES = 32, FRAMES = 0x100000;

function paged(bytes: number[], perm: number[], hole = -1): Cpu {
  const cpu = machine();
  const m = cpu.mem;
  m.write32(PD, PT0 | 7);
  m.write32(PD + 4, PT1 | 7);
  for (let i = 0; i < 256; i++) m.write32(PT0 + i * 4, (i << 12) | 7);
  for (let i = 0; i < WIN_PAGES; i++) m.write32(PT1 + i * 4, i === hole ? 0 : (FRAMES + (perm[i]! << 12)) | 7);
  fillRandom(m.u8, FRAMES, FRAMES + WIN_PAGES * 4096, 0x1234567);
  cpu.resetFlat32(CODE);
  cpu.cr3 = PD;
  cpu.cr0 |= CR0_PG;
  cpu.updatePaging();
  cpu.flushTlb(false);
  cpu.r32[ESP] = 0x8000;
  m.u8.set(bytes, CODE);
  return cpu;
}

function linToPhys(perm: number[], lin: number): number {
  const page = (lin - WIN) >>> 12;
  if (page >= WIN_PAGES) throw new Error(`reference: ${lin.toString(16)} outside the window`);
  return FRAMES + (perm[page]! << 12) + (lin & 0xfff);
}

/** Element-by-element REP MOVS, on physical memory `u8`, through `tr` (offset → physical per byte). */
function refMovs(u8: Uint8Array, trS: (o: number) => number, trD: (o: number) => number,
  si: number, di: number, count: number, size: number, back: boolean, wrap: number): void {
  const tmp = [0, 0, 0, 0];
  for (let i = 0; i < count; i++) {
    for (let b = 0; b < size; b++) tmp[b] = u8[trS((si + b) % wrap)]!;
    for (let b = 0; b < size; b++) u8[trD((di + b) % wrap)] = tmp[b]!;
    si = (si + (back ? wrap - size : size)) % wrap;
    di = (di + (back ? wrap - size : size)) % wrap;
  }
}

const sizeArb = fc.constantFrom(1, 2, 4);

describe('REP MOVS', () => {
  it('real mode: equals element-by-element copy, with overlap, direction and 64 KiB wrap (property)', () => {
    fc.assert(fc.property(sizeArb, fc.boolean(), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: -70, max: 70 }),
      fc.integer({ min: 0, max: 0x3fff }), fc.integer({ min: 0, max: 2500 }), fc.constantFrom(0x2000, 0x2001, 0x2100, 0x3000),
      fc.boolean(), (size, back, si0, delta, farDi, count, es, near) => {
        const si = si0 & ~(size - 1);
        const di = (near ? si + delta * size : farDi * 4) & 0xffff & ~(size - 1);
        const op = size === 1 ? [0xf3, 0xa4] : size === 2 ? [0xf3, 0xa5] : [0x66, 0xf3, 0xa5];
        const cpu = real(op);
        fillRandom(cpu.mem.u8, 0x20000, 0x50000, si0 * 31 + count);
        cpu.loadRealSegment(DS, 0x2000);
        cpu.loadRealSegment(ES, es);
        cpu.r16[ESI << 1] = si;
        cpu.r16[EDI << 1] = di;
        cpu.r16[ECX << 1] = count;
        if (back) cpu.flags |= DF;
        const want = cpu.mem.u8.slice();
        refMovs(want, (o) => 0x20000 + o, (o) => es * 16 + o, si, di, count, size, back, 0x10000);
        cpu.run(1);
        expect(cpu.eip).toBe(op.length);
        expect(cpu.r16[ECX << 1]).toBe(0);
        const moved = count * size;
        expect(cpu.r16[ESI << 1]).toBe((si + (back ? -moved : moved)) & 0xffff);
        expect(cpu.r16[EDI << 1]).toBe((di + (back ? -moved : moved)) & 0xffff);
        expect(Buffer.compare(cpu.mem.u8, want)).toBe(0);
        expect(cpu.instructions).toBe(1);
        expect(cpu.cycles).toBe(1 + Math.max(0, count - 1));
      }), { numRuns: 150 });
  });

  it('paged flat mode: equals element-by-element copy through scattered pages, unaligned (property)', () => {
    fc.assert(fc.property(sizeArb, fc.boolean(), fc.shuffledSubarray([...Array(WIN_PAGES).keys()], { minLength: WIN_PAGES, maxLength: WIN_PAGES }),
      fc.integer({ min: 0, max: 0x1ffff }), fc.integer({ min: 0, max: 0x1ffff }), fc.integer({ min: 0, max: 6000 }),
      (size, back, perm, s, d, count) => {
        // Keep every element inside the mapped window.
        const span = count * size;
        const fits = (o: number) => back ? o + size <= WIN_PAGES * 4096 && o - span + size >= 0 : o + span <= WIN_PAGES * 4096;
        fc.pre(fits(s) && fits(d));
        const op = size === 1 ? [0xf3, 0xa4] : size === 2 ? [0x66, 0xf3, 0xa5] : [0xf3, 0xa5];
        const cpu = paged(op, perm);
        cpu.r32[ESI] = WIN + s;
        cpu.r32[EDI] = WIN + d;
        cpu.r32[ECX] = count;
        if (back) cpu.flags |= DF;
        const want = cpu.mem.u8.slice();
        const tr = (o: number) => linToPhys(perm, o);
        refMovs(want, tr, tr, WIN + s, WIN + d, count, size, back, 2 ** 32);
        cpu.run(1);
        expect(cpu.eip).toBe(CODE + op.length);
        expect(cpu.r32[ECX]).toBe(0);
        expect(cpu.r32[ESI]).toBe(WIN + s + (back ? -span : span));
        expect(cpu.r32[EDI]).toBe(WIN + d + (back ? -span : span));
        // Below FRAMES only page-table accessed/dirty bits may differ.
        expect(Buffer.compare(cpu.mem.u8.subarray(FRAMES), want.subarray(FRAMES))).toBe(0);
      }), { numRuns: 120 });
  });

  it('interrupted by a page fault and resumed gives the same result as an uninterrupted run (property)', () => {
    fc.assert(fc.property(sizeArb, fc.boolean(), fc.shuffledSubarray([...Array(WIN_PAGES).keys()], { minLength: WIN_PAGES, maxLength: WIN_PAGES }),
      fc.integer({ min: 0, max: 0x1ffff }), fc.integer({ min: 0, max: 0x1ffff }), fc.integer({ min: 1, max: 12000 }),
      fc.integer({ min: 0, max: WIN_PAGES - 1 }),
      (size, back, perm, s, d, count, hole) => {
        const span = count * size;
        const fits = (o: number) => back ? o + size <= WIN_PAGES * 4096 && o - span + size >= 0 : o + span <= WIN_PAGES * 4096;
        fc.pre(fits(s) && fits(d));
        const op = size === 1 ? [0xf3, 0xa4] : size === 2 ? [0x66, 0xf3, 0xa5] : [0xf3, 0xa5];
        const setup = (c: Cpu) => {
          c.r32[ESI] = WIN + s; c.r32[EDI] = WIN + d; c.r32[ECX] = count;
          if (back) c.flags |= DF;
        };
        const whole = paged(op, perm);
        setup(whole);
        whole.run(1);

        const cpu = paged(op, perm, hole);
        setup(cpu);
        const start = cpu.mem.u8.slice();
        let faults = 0;
        // Drive the handler directly (as the run loop does), so the test does not depend on
        // protected-mode exception delivery: on #PF, check the partial state, map the page, retry.
        for (let guard = 0; guard < 1000; guard++) {
          cpu.instrStart = CODE;
          cpu.eip = CODE + op.length;
          cpu.rep = 0xf3; cpu.segOverride = -1; cpu.opsize32 = size !== 2; cpu.addrsize32 = true;
          try {
            HANDLERS[(cpu.opsize32 ? 0x200 : 0) | op[op.length - 1]!]!(cpu);
          } catch (e) {
            if (e !== FAULT) throw e;
            faults++;
            expect(cpu.excVector).toBe(Vec.PF);
            expect((cpu.cr2 - WIN) >>> 12).toBe(hole);
            // Registers describe exactly the completed iterations: memory equals the reference after them.
            const done = count - cpu.r32[ECX]!;
            const part = start.slice();
            const tr = (o: number) => linToPhys(perm, o);
            refMovs(part, tr, tr, WIN + s, WIN + d, done, size, back, 2 ** 32);
            expect(Buffer.compare(cpu.mem.u8.subarray(FRAMES), part.subarray(FRAMES))).toBe(0);
            expect(cpu.r32[ESI]).toBe(WIN + s + (back ? -done * size : done * size));
            cpu.mem.write32(PT1 + hole * 4, (FRAMES + (perm[hole]! << 12)) | 7);
            cpu.invalidatePage(cpu.cr2);
            continue;
          }
          if (cpu.eip !== cpu.instrStart) break;
        }
        // A page in the copied range was missing: exactly one fault then; else none.
        const touches = (o: number) => {
          const lo = back ? o - span + size : o, hi = back ? o + size - 1 : o + span - 1;
          return hole >= lo >>> 12 && hole <= hi >>> 12;
        };
        expect(faults).toBe(touches(s) || touches(d) ? 1 : 0);
        expect(cpu.r32[ECX]).toBe(0);
        expect([cpu.r32[ESI], cpu.r32[EDI]]).toEqual([whole.r32[ESI], whole.r32[EDI]]);
        // The page tables differ only by accessed/dirty bits; compare the data frames.
        expect(Buffer.compare(cpu.mem.u8.subarray(FRAMES), whole.mem.u8.subarray(FRAMES))).toBe(0);
      }), { numRuns: 60 });
  });

  it('stops with #GP at the segment limit, registers describing the completed iterations', () => {
    for (const [op, size] of [[[0xf3, 0xaa], 1], [[0xf3, 0xab], 2], [[0x66, 0xf3, 0xab], 4], [[0xf3, 0xa5], 2]] as const) {
      const cpu = real([...op]);
      // A real-mode ES whose cached limit is 0x0FFF (as left behind by protected mode).
      cpu.setSegmentCache(ES, 0x3000, 0x30000, 0x0fff, 0x93);
      cpu.r32[EAX] = 0x11223344;
      cpu.loadRealSegment(DS, 0x5000);
      cpu.mem.u8.fill(0xaa, 0x50000, 0x51000);
      cpu.r16[EDI << 1] = 0x0f00 + 1; // odd: the last word/dword straddles the limit
      cpu.r16[ECX << 1] = 0x200;
      cpu.run(1);
      expect(vectorTaken(cpu)).toBe(13);
      const done = Math.floor((0x1000 - 0x0f01) / size);
      expect(cpu.r16[ECX << 1]).toBe(0x200 - done);
      expect(cpu.r16[EDI << 1]).toBe(0x0f01 + done * size);
      expect(cpu.mem.u8[0x30000 + 0x0f01 + done * size]).toBe(0); // the faulting element was not written
      expect(cpu.mem.u8[0x30000 + 0x0f01 + done * size - 1]).not.toBe(0);
      expect(cpu.mem.read16(cpu.r16[ESP << 1]!)).toBe(0); // IP of the REP instruction
    }
  });

  it('the ADDRESS size picks SI/DI/CX or ESI/EDI/ECX', () => {
    // 67 REP MOVSB in real mode: the count is all of ECX, the indexes ESI/EDI.
    const a = real([0x67, 0xf3, 0xa4]);
    a.mem.u8.fill(0x5c, 0x100, 0x100 + 0x10);
    a.r32[ESI] = 0x100;
    a.r32[EDI] = 0x200;
    a.r32[ECX] = 0x10;
    a.run(1);
    expect([a.r32[ECX], a.r32[ESI], a.r32[EDI]]).toEqual([0, 0x110, 0x210]);
    expect(a.mem.u8[0x20f]).toBe(0x5c);
    // 16-bit REP STOSB in 32-bit code (67): only CX counts and DI wraps within 64 KiB.
    const b = paged([0x67, 0xf3, 0xaa], [...Array(WIN_PAGES).keys()]);
    b.r32[EDI] = WIN + 0xfffe; // DI = 0xFFFE; the upper half of EDI is not used for the address
    b.r32[ECX] = 0x12340004;
    b.r8[0] = 0x77;
    expect(() => b.run(1)).not.toThrow();
    expect(b.r32[ECX]).toBe(0x12340000);
    expect(b.r32[EDI]).toBe(WIN + 0x0002); // DI wrapped: 0xFFFE + 4 = 0x0002, upper half kept
    // The stores went to linear 0xFFFE, 0xFFFF, 0x0000, 0x0001 (flat ES base 0): identity-mapped low memory.
    expect([b.mem.u8[0xfffe], b.mem.u8[0xffff], b.mem.u8[0], b.mem.u8[1]]).toEqual([0x77, 0x77, 0x77, 0x77]);
  });

  it('a non-REP MOVSB moves one byte; REP with CX = 0 does nothing', () => {
    const cpu = real([0xa4, 0xf3, 0xa4]);
    cpu.mem.u8[0x10] = 0x77;
    cpu.r16[ESI << 1] = 0x10;
    cpu.r16[EDI << 1] = 0x20;
    cpu.run(1);
    expect(cpu.mem.u8[0x20]).toBe(0x77);
    expect([cpu.r16[ESI << 1], cpu.r16[EDI << 1]]).toEqual([0x11, 0x21]);
    cpu.run(1);
    expect([cpu.r16[ESI << 1], cpu.r16[EDI << 1], cpu.eip]).toEqual([0x11, 0x21, 3]);
  });

  it('honours a source segment override; the destination is always ES', () => {
    const cpu = real([0x2e, 0xa4]); // movsb with CS: source
    cpu.mem.u8[CODE + 0x40] = 0x5a;
    cpu.loadRealSegment(ES, 0x3000);
    cpu.r16[ESI << 1] = 0x40;
    cpu.r16[EDI << 1] = 0x2;
    cpu.run(1);
    expect(cpu.mem.u8[0x30002]).toBe(0x5a);
  });
});

describe('REP STOS / LODS', () => {
  it('REP STOS fills like a loop of single stores (property)', () => {
    fc.assert(fc.property(sizeArb, fc.boolean(), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 3000 }),
      fc.integer({ min: 0, max: 0xffffffff }), (size, back, di0, count, eax) => {
        const di = di0 & ~(size - 1);
        const op = size === 1 ? [0xf3, 0xaa] : size === 2 ? [0xf3, 0xab] : [0x66, 0xf3, 0xab];
        const cpu = real(op);
        cpu.loadRealSegment(ES, 0x3000);
        cpu.r32[EAX] = eax;
        cpu.r16[EDI << 1] = di;
        cpu.r16[ECX << 1] = count;
        if (back) cpu.flags |= DF;
        const want = cpu.mem.u8.slice();
        let p = di;
        for (let i = 0; i < count; i++) {
          for (let b = 0; b < size; b++) want[0x30000 + p + b] = (eax >>> (8 * b)) & 0xff;
          p = (p + (back ? -size : size)) & 0xffff;
        }
        cpu.run(1);
        expect(cpu.r16[EDI << 1]).toBe(p);
        expect(cpu.r16[ECX << 1]).toBe(0);
        expect(Buffer.compare(cpu.mem.u8, want)).toBe(0);
      }), { numRuns: 150 });
  });

  it('LODS loads and advances; REP LODS leaves the last element', () => {
    const cpu = real([0xad, 0xf3, 0xac]);
    cpu.mem.write16(0x100, 0xbeef);
    cpu.mem.u8.set([1, 2, 3], 0x102);
    cpu.r16[ESI << 1] = 0x100;
    cpu.run(1);
    expect(cpu.r16[EAX << 1]).toBe(0xbeef);
    expect(cpu.r16[ESI << 1]).toBe(0x102);
    cpu.r16[ECX << 1] = 3;
    cpu.run(1);
    expect(cpu.r8[0]).toBe(3);
    expect(cpu.r16[ESI << 1]).toBe(0x105);
  });
});

/** CMP a, b flags written from the definitions (signed overflow, borrows, parity by counting). */
function refCmpFlags(a: number, b: number, bits: number): number {
  const mod = 2 ** bits;
  const res = (a - b + mod) % mod;
  const signed = (v: number) => (v >= mod / 2 ? v - mod : v);
  let f = 0;
  if (a < b) f |= CF;
  if (res === 0) f |= ZF;
  if (res >= mod / 2) f |= SF;
  const sres = signed(a) - signed(b);
  if (sres < -mod / 2 || sres >= mod / 2) f |= OF;
  if ((a & 0xf) < (b & 0xf)) f |= AF;
  let ones = 0;
  for (let i = 0; i < 8; i++) ones += (res >> i) & 1;
  if (ones % 2 === 0) f |= PF;
  return f;
}

describe('CMPS / SCAS', () => {
  it('REPE/REPNE CMPS stop at the first (mis)match, with the flags of the last compare (property)', () => {
    fc.assert(fc.property(sizeArb, fc.boolean(), fc.boolean(), fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 40 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 40, maxLength: 40 }), fc.integer({ min: 0, max: 45 }),
      (size, repe, back, aVals, bVals, count) => {
        const op = size === 1 ? [repe ? 0xf3 : 0xf2, 0xa6] : size === 2 ? [repe ? 0xf3 : 0xf2, 0xa7] : [0x66, repe ? 0xf3 : 0xf2, 0xa7];
        const cpu = real(op);
        const bits = size * 8;
        const base = back ? 0x200 : 0x400;
        const val = (v: number) => v === 3 ? 2 ** bits - 1 : v; // small values plus all-ones for sign/borrow cases
        for (let i = 0; i < 48; i++) {
          const o = back ? base - i * size : base + i * size;
          const a = val(aVals[i % aVals.length]!), b = val(bVals[i % 40]!);
          for (let k = 0; k < size; k++) { cpu.mem.u8[0x20000 + o + k] = (a >>> (8 * k)) & 0xff; cpu.mem.u8[0x30000 + o + k] = (b >>> (8 * k)) & 0xff; }
        }
        cpu.loadRealSegment(DS, 0x2000);
        cpu.loadRealSegment(ES, 0x3000);
        cpu.r16[ESI << 1] = base;
        cpu.r16[EDI << 1] = base;
        cpu.r16[ECX << 1] = count;
        const f0 = 2 | (back ? DF : 0) | ZF | CF;
        cpu.flags = f0;
        let n = 0, flags = f0 & (ZF | CF | SF | OF | AF | PF);
        while (n < count) {
          const a = val(aVals[n % aVals.length]!), b = val(bVals[n % 40]!);
          flags = refCmpFlags(a, b, bits);
          n++;
          if (repe ? !(flags & ZF) : !!(flags & ZF)) break;
        }
        cpu.run(1);
        expect(cpu.r16[ECX << 1]).toBe(count - n);
        expect(cpu.r16[ESI << 1]).toBe(back ? base - n * size : base + n * size);
        expect(cpu.r16[EDI << 1]).toBe(back ? base - n * size : base + n * size);
        expect(cpu.flags & (ZF | CF | SF | OF | AF | PF)).toBe(flags);
        expect(cpu.eip).toBe(op.length);
      }), { numRuns: 200 });
  });

  it('paged: REPE/REPNE CMPS and SCAS over scattered pages equal the element loop (property)', () => {
    fc.assert(fc.property(sizeArb, fc.boolean(), fc.boolean(), fc.boolean(),
      fc.shuffledSubarray([...Array(WIN_PAGES).keys()], { minLength: WIN_PAGES, maxLength: WIN_PAGES }),
      fc.integer({ min: 0, max: 0x1ffff }), fc.integer({ min: 0, max: 0x1ffff }), fc.integer({ min: 0, max: 6000 }),
      fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 1, max: 4000 }),
      (size, isCmps, repe, back, perm, s, d, count, seed, density) => {
        const span = count * size;
        const fits = (o: number) => back ? o + size <= WIN_PAGES * 4096 && o - span + size >= 0 : o + span <= WIN_PAGES * 4096;
        fc.pre(fits(s) && fits(d));
        const opc = isCmps ? 0xa6 : 0xae;
        const op = size === 1 ? [repe ? 0xf3 : 0xf2, opc] : size === 2 ? [0x66, repe ? 0xf3 : 0xf2, opc + 1] : [repe ? 0xf3 : 0xf2, opc + 1];
        const cpu = paged(op, perm);
        // Mostly equal data (zeros) with sparse differences, so that long runs occur both ways.
        const u8 = cpu.mem.u8;
        u8.fill(0, FRAMES, FRAMES + WIN_PAGES * 4096);
        let x = seed | 1;
        for (let i = 0; i < (WIN_PAGES * 4096) / density; i++) {
          x = (x * 1103515245 + 12345) >>> 0;
          u8[FRAMES + (x % (WIN_PAGES * 4096))] = (x >>> 16) & 1 ? 0xff : 1;
        }
        cpu.r32[EAX] = repe ? 0 : 0x01010101 & (2 ** (8 * size) - 1);
        cpu.r32[ESI] = WIN + s;
        cpu.r32[EDI] = WIN + d;
        cpu.r32[ECX] = count;
        cpu.flags = 2 | (back ? DF : 0);
        const elem = (lin: number) => {
          let v = 0;
          for (let b = 0; b < size; b++) v += u8[linToPhys(perm, lin + b)]! * 2 ** (8 * b);
          return v;
        };
        let n = 0, flags = 0, si = WIN + s, di = WIN + d;
        const acc = cpu.r32[EAX]! >>> 0;
        while (n < count) {
          const a = isCmps ? elem(si) : acc, b = elem(di);
          flags = refCmpFlags(a, b, size * 8);
          n++;
          si += back ? -size : size;
          di += back ? -size : size;
          if (repe ? !(flags & ZF) : !!(flags & ZF)) break;
        }
        cpu.run(1);
        expect(cpu.r32[ECX]).toBe(count - n);
        expect(cpu.r32[EDI]).toBe(di);
        expect(cpu.r32[ESI]).toBe(isCmps ? si : WIN + s);
        if (n > 0) expect(cpu.flags & (ZF | CF | SF | OF | AF | PF)).toBe(flags);
        expect(cpu.eip).toBe(CODE + op.length);
      }), { numRuns: 150 });
  });

  it('REPNE SCASB finds a byte (strlen idiom); SCASD compares EAX', () => {
    const cpu = real([0xf2, 0xae]);
    cpu.loadRealSegment(ES, 0x3000);
    cpu.mem.u8.set([...'hello'].map((c) => c.charCodeAt(0)), 0x30100);
    cpu.r16[EDI << 1] = 0x100;
    cpu.r16[ECX << 1] = 0xffff;
    cpu.r8[0] = 0;
    cpu.run(1);
    expect(0xffff - cpu.r16[ECX << 1]! - 1).toBe(5);
    expect(cpu.flags & ZF).toBe(ZF);

    const d = real([0x66, 0xaf]);
    d.mem.write32(0x10, 0x80000000 | 0);
    d.r32[EAX] = 1;
    d.r16[EDI << 1] = 0x10;
    d.run(1);
    expect(d.flags & (CF | OF | SF | ZF)).toBe(refCmpFlags(1, 0x80000000, 32) & (CF | OF | SF | ZF));
    expect(d.r16[EDI << 1]).toBe(0x14);
  });
});

describe('batching, events and interrupts', () => {
  it('a long REP STOSB is one instruction whatever the batching, and costs base + (n−1) × repIteration', () => {
    const cpu = paged([0xf3, 0xaa], [...Array(WIN_PAGES).keys()]);
    cpu.r32[EDI] = WIN;
    cpu.r32[ECX] = 100_000;
    cpu.r8[0] = 0xab;
    expect(cpu.run(1)).toBe(1);
    expect(cpu.instructions).toBe(1);
    expect(cpu.cycles).toBe(100_000);
    expect(cpu.r32[ECX]).toBe(0);
    expect(cpu.eip).toBe(CODE + 2);
    expect(cpu.mem.u8.subarray(FRAMES, FRAMES + 100_000).every((b) => b === 0xab)).toBe(true);
  });

  it('device events fire between batches, at their cycle', () => {
    const cpu = paged([0xf3, 0xa4], [...Array(WIN_PAGES).keys()]);
    cpu.r32[ESI] = WIN;
    cpu.r32[EDI] = WIN + 0x10000;
    cpu.r32[ECX] = 50_000;
    const seen: [number, number][] = [];
    cpu.nextEventCycle = 1234;
    cpu.eventHook = () => { seen.push([cpu.cycles, cpu.r32[ECX]!]); cpu.nextEventCycle = Number.POSITIVE_INFINITY; };
    cpu.run(1);
    expect(seen.length).toBe(1);
    expect(seen[0]![0]).toBe(1234);
    expect(seen[0]![1]).toBeGreaterThan(0);
    expect(seen[0]![1]).toBeLessThan(50_000);
    expect(cpu.r32[ECX]).toBe(0);
    expect(cpu.cycles).toBe(50_000);
  });

  it('an interrupt is taken between iterations with the REP instruction as return address, and the copy resumes', () => {
    const code = [0x26, 0xf3, 0xa4]; // es: rep movsb (prefixes included in the restart)
    const cpu = real(code);
    fillRandom(cpu.mem.u8, 0x20000, 0x30000, 99);
    cpu.loadRealSegment(ES, 0x2000);
    cpu.loadRealSegment(DS, 0x2000);
    cpu.r16[ESI << 1] = 0x100;
    cpu.r16[EDI << 1] = 0x180; // overlapping forward copy: pattern replication
    cpu.r16[ECX << 1] = 0xf000;
    cpu.flags |= IF;
    const want = cpu.mem.u8.slice();
    refMovs(want, (o) => 0x20000 + o, (o) => 0x20000 + o, 0x100, 0x180, 0xf000, 1, false, 0x10000);
    cpu.intrAck = () => { cpu.setIntrLine(false); return 0x10; };
    cpu.nextEventCycle = 5000;
    cpu.eventHook = () => { cpu.setIntrLine(true); cpu.nextEventCycle = Number.POSITIVE_INFINITY; };
    cpu.run(2);
    expect(cpu.eip).toBe(IVT_HANDLERS + 0x40);
    const sp = cpu.r16[ESP << 1]!;
    expect(cpu.mem.read16(sp)).toBe(0); // IP of the prefixed REP MOVSB
    expect(cpu.mem.read16(sp + 2)).toBe(CODE >> 4);
    const left = cpu.r16[ECX << 1]!;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(0xf000);
    // IRET by hand, then finish.
    cpu.eip = cpu.mem.read16(sp);
    cpu.loadRealSegment(CS, cpu.mem.read16(sp + 2));
    cpu.flags = cpu.mem.read16(sp + 4);
    cpu.r16[ESP << 1] = sp + 6;
    cpu.run(1);
    expect(cpu.eip).toBe(3);
    expect(cpu.r16[ECX << 1]).toBe(0);
    // The stack bytes the interrupt pushed are outside the copied range: compare the data segment.
    expect(Buffer.compare(cpu.mem.u8.subarray(0x20000, 0x30000), want.subarray(0x20000, 0x30000))).toBe(0);
  });

  it('with TF set, REP MOVS performs one iteration per step and re-executes', () => {
    const cpu = real([0x90, 0xf3, 0xa4]);
    cpu.r16[ESI << 1] = 0x100;
    cpu.r16[EDI << 1] = 0x200;
    cpu.r16[ECX << 1] = 3;
    cpu.setFlags(TF, TF); // traps start after the instruction that follows (the NOP)
    cpu.run(1);
    expect(cpu.eip).toBe(1);
    cpu.run(1);
    // One iteration done, then the single-step trap (vector 1) with the REP as return address.
    expect(cpu.r16[ECX << 1]).toBe(2);
    expect(cpu.eip).toBe(IVT_HANDLERS + 4);
    expect(cpu.mem.read16(cpu.r16[ESP << 1]!)).toBe(1);
  });
});
