/**
 * Property tests: the arithmetic instructions against small reference models written from
 * the SDM pseudocode (bit-by-bit loops and BigInt arithmetic, independent of alu.ts).
 * Only flags the SDM defines are compared.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu, CS, EAX, EBX, ECX, EDX, ESP, Vec } from '../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../src/machine/cpu/cost-table.js';
import { AF, CF, OF, PF, SF, ZF } from '../../src/machine/cpu/flags.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';

const CODE = 0x1000;

function machine(): Cpu {
  const cpu = new Cpu(new PhysicalMemory(1 << 20), new PortBus(), unitCostTable(),
    { itlb: new Tlb({ sets: 16, ways: 4 }), dtlb: new Tlb({ sets: 16, ways: 4 }) });
  for (let v = 0; v < 32; v++) {
    cpu.mem.write16(v * 4, 0xf000 + 16 * v);
    cpu.mem.write16(v * 4 + 2, 0);
    cpu.mem.write8(0xf000 + 16 * v, 0xf8); // CLC
  }
  return cpu;
}

/** Runs one real-mode instruction; returns the vector it faulted with, or -1. */
function exec(cpu: Cpu, bytes: number[], regs: Record<number, number>, flags = 0): number {
  cpu.resetRealMode();
  cpu.r32[ESP] = 0x8000;
  for (const [r, v] of Object.entries(regs)) cpu.r32[Number(r)] = v;
  cpu.flags = flags | 2;
  bytes.forEach((b, i) => cpu.mem.write8(CODE + i, b));
  cpu.loadRealSegment(CS, 0);
  cpu.eip = CODE;
  const counts = Array.from(cpu.eventCounts);
  cpu.run(1);
  expect(cpu.stopReason).toBeNull();
  for (let v = 0; v < 32; v++) if (cpu.eventCounts[v] !== counts[v]) return v;
  return -1;
}

const WIDTHS = [8, 16, 32] as const;
type Width = (typeof WIDTHS)[number];
const maskOf = (w: Width): number => (w === 32 ? 0xffffffff : (1 << w) - 1);
const u = (v: number, w: Width): number => (w === 32 ? v >>> 0 : v & maskOf(w));
const signed = (v: number, w: Width): number => (w === 32 ? v | 0 : ((v << (32 - w)) >> (32 - w)));
const msb = (v: number, w: Width): number => (u(v, w) >>> (w - 1)) & 1;
function parity(v: number): number {
  let n = 0;
  for (let i = 0; i < 8; i++) n += (v >> i) & 1;
  return n % 2 === 0 ? PF : 0;
}
function szp(r: number, w: Width): number {
  return (msb(r, w) ? SF : 0) | (u(r, w) === 0 ? ZF : 0) | parity(r & 0xff);
}

/** Reads the accumulator of width w. */
function acc(cpu: Cpu, w: Width): number {
  return w === 8 ? cpu.r8[0]! : w === 16 ? cpu.r16[0]! : cpu.r32[EAX]! >>> 0;
}

/** Encodes `op AL/AX/EAX, CL/CX/ECX` in the r/m, reg form (opcode base + 0/1). */
function regForm(base: number, w: Width, modrm: number): number[] {
  return w === 8 ? [base, modrm] : w === 16 ? [base + 1, modrm] : [0x66, base + 1, modrm];
}

const width = fc.constantFrom(...WIDTHS);

/** The group-1 operations by the SDM: result and all six flags (AF after logic: 0, our rule). */
function refAlu(op: number, a: number, b: number, cin: number, w: Width): { r: number; f: number } {
  const c = op === 2 || op === 3 ? cin : 0;
  let r: number, f = 0;
  if (op === 0 || op === 2) {
    const full = a + b + c;
    r = u(full, w);
    if (full > maskOf(w)) f |= CF;
    const sfull = signed(a, w) + signed(b, w) + c;
    if (sfull !== signed(r, w)) f |= OF;
    if ((a & 15) + (b & 15) + c > 15) f |= AF;
  } else if (op === 3 || op === 5 || op === 7) {
    const full = a - b - c;
    r = u(full, w);
    if (a < b + c) f |= CF;
    if (signed(a, w) - signed(b, w) - c !== signed(r, w)) f |= OF;
    if ((a & 15) < (b & 15) + c) f |= AF;
  } else {
    r = u(op === 1 ? a | b : op === 4 ? a & b : a ^ b, w);
  }
  f |= szp(r, w);
  return { r: op === 7 ? a : r, f };
}

describe('group-1 ALU operations match the SDM model', () => {
  const cpu = machine();
  it('for every operation and width, with a random incoming carry', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), width, fc.boolean(), fc.nat(), fc.nat(),
      (op, w, cin, x, y) => {
        const a = u(x * 2654435761, w), b = u(y * 40503 + (x & 3), w);
        exec(cpu, regForm(op << 3, w, 0xc8), { [EAX]: a, [ECX]: b }, cin ? CF : 0);
        const want = refAlu(op, a, b, cin ? 1 : 0, w);
        expect(acc(cpu, w)).toBe(want.r);
        expect(cpu.flags & (CF | PF | AF | ZF | SF | OF)).toBe(want.f);
      }), { numRuns: 3000 });
  });

  it('edge operands', () => {
    for (const w of WIDTHS) {
      const m = maskOf(w), h = 2 ** (w - 1);
      const edges = [0, 1, 0xf, 0x10, h - 1, h, h + 1, m - 1, m];
      for (let op = 0; op < 8; op++) for (const a of edges) for (const b of edges) for (const cin of [0, 1]) {
        exec(cpu, regForm(op << 3, w, 0xc8), { [EAX]: a, [ECX]: b }, cin ? CF : 0);
        const want = refAlu(op, a, b, cin, w);
        expect(acc(cpu, w)).toBe(want.r);
        expect(cpu.flags & (CF | PF | AF | ZF | SF | OF)).toBe(want.f);
      }
    }
  });

  it('ADD then SUB of the same operand restores the value; SUB\'s CF is the unsigned borrow', () => {
    fc.assert(fc.property(width, fc.nat(), fc.nat(), (w, x, y) => {
      const a = u(x * 2654435761, w), b = u(y * 2246822519, w);
      exec(cpu, regForm(0x00, w, 0xc8), { [EAX]: a, [ECX]: b });
      const sum = acc(cpu, w);
      exec(cpu, regForm(0x28, w, 0xc8), { [EAX]: sum, [ECX]: b });
      expect(acc(cpu, w)).toBe(a);
      expect((cpu.flags & CF) !== 0).toBe(sum < b);
    }), { numRuns: 1000 });
  });
});

describe('INC and DEC are ADD/SUB of 1 that keep CF', () => {
  const cpu = machine();
  it('for every width, around every boundary', () => {
    for (const w of WIDTHS) {
      const m = maskOf(w), h = 2 ** (w - 1);
      const values = [0, 1, 0xe, 0xf, 0x10, h - 2, h - 1, h, h + 1, m - 1, m, u(0x12345678, w)];
      for (const v of values) for (const isDec of [false, true]) for (const cin of [0, CF]) {
        const bytes = w === 8 ? [0xfe, isDec ? 0xc8 : 0xc0] : [...(w === 32 ? [0x66] : []), isDec ? 0x48 : 0x40];
        exec(cpu, bytes, { [EAX]: v }, cin);
        const want = refAlu(isDec ? 5 : 0, v, 1, 0, w);
        expect(acc(cpu, w)).toBe(want.r);
        expect(cpu.flags & (CF | PF | AF | ZF | SF | OF)).toBe((want.f & ~CF) | cin);
      }
    }
  });
});

// ---- group 2: the SDM's loop pseudocode ----

interface ShiftRef { r: number; cf: number; of: number | null; szp: boolean; cfDefined: boolean }

function refShift(op: number, v: number, countIn: number, cfIn: number, w: Width): ShiftRef | null {
  const count = countIn & 0x1f;
  if (count === 0) return null;
  let dest = u(v, w);
  const orig = dest;
  let cf = cfIn;
  const top = 2 ** (w - 1), mod = 2 ** w;
  if (op <= 1) { // ROL, ROR: count mod size for the rotation, flags from the masked count
    let t = count % w;
    while (t-- > 0) {
      if (op === 0) { const hi = dest >= top ? 1 : 0; dest = (dest * 2) % mod + hi; } else { const lo = dest % 2; dest = Math.floor(dest / 2) + lo * top; }
    }
    cf = op === 0 ? dest % 2 : (dest >= top ? 1 : 0);
    const of = count === 1 ? (op === 0 ? msb(dest, w) ^ cf : msb(dest, w) ^ ((u(dest, w) >>> (w - 2)) & 1)) : null;
    return { r: dest, cf, of, szp: false, cfDefined: true };
  }
  if (op <= 3) { // RCL, RCR through CF
    let t = w === 32 ? count : count % (w + 1);
    if (t === 0) return { r: dest, cf: cfIn, of: null, szp: false, cfDefined: true };
    while (t-- > 0) {
      if (op === 2) { const hi = dest >= top ? 1 : 0; dest = (dest * 2) % mod + cf; cf = hi; } else { const lo = dest % 2; dest = Math.floor(dest / 2) + cf * top; cf = lo; }
    }
    const of = count === 1 ? (op === 2 ? msb(dest, w) ^ cf : msb(orig, w) ^ cfIn) : null;
    return { r: dest, cf, of, szp: false, cfDefined: true };
  }
  let t = count;
  while (t-- > 0) {
    if (op === 4 || op === 6) { cf = dest >= top ? 1 : 0; dest = (dest * 2) % mod; } else if (op === 5) { cf = dest % 2; dest = Math.floor(dest / 2); } else { cf = dest % 2; dest = Math.floor(dest / 2) + (orig >= top ? top : 0); }
  }
  let of: number | null = null;
  if (count === 1) of = op === 7 ? 0 : op === 5 ? msb(orig, w) : msb(dest, w) ^ cf;
  // SHL/SHR: CF is undefined when the count is at least the operand size.
  const cfDefined = op === 7 || count < w;
  return { r: dest, cf, of, szp: true, cfDefined };
}

describe('group-2 shifts and rotates match the SDM model', () => {
  const cpu = machine();
  it('for every operation, width and CL count (masked to 5 bits)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), width, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean(),
      (op, w, x, count, cin) => {
        const v = u(x * 2654435761, w);
        const before = (cin ? CF : 0) | OF | ZF | PF;
        const bytes = w === 8 ? [0xd2, 0xc0 | (op << 3)] : w === 16 ? [0xd3, 0xc0 | (op << 3)] : [0x66, 0xd3, 0xc0 | (op << 3)];
        exec(cpu, bytes, { [EAX]: v, [ECX]: count }, before);
        const ref = refShift(op, v, count, cin ? 1 : 0, w);
        if (ref === null) {
          expect(acc(cpu, w)).toBe(v);
          expect(cpu.flags & (CF | PF | AF | ZF | SF | OF)).toBe(before);
          return;
        }
        expect(acc(cpu, w)).toBe(ref.r);
        if (ref.cfDefined) expect(cpu.flags & CF).toBe(ref.cf);
        if (ref.of !== null) expect((cpu.flags & OF) !== 0 ? 1 : 0).toBe(ref.of);
        if (ref.szp) expect(cpu.flags & (SF | ZF | PF)).toBe(szp(ref.r, w));
        else expect(cpu.flags & (SF | ZF | PF | AF)).toBe(before & (SF | ZF | PF | AF));
      }), { numRuns: 4000 });
  });

  it('SHLD/SHRD match a BigInt model (32-bit; 16-bit for counts up to 16)', () => {
    fc.assert(fc.property(fc.boolean(), fc.constantFrom(16, 32), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }),
      (left, w, x, y, cl) => {
        const W = w as Width;
        const dst = u(x * 2654435761, W), src = u(y * 2246822519, W);
        const bytes = [...(W === 32 ? [0x66] : []), 0x0f, left ? 0xa5 : 0xad, 0xd8]; // shxd ax/eax, bx/ebx, cl
        exec(cpu, bytes, { [EAX]: dst, [EBX]: src, [ECX]: cl }, ZF);
        const c = cl & 31;
        if (c === 0) { expect(acc(cpu, W)).toBe(dst); expect(cpu.flags & 0xfff).toBe(ZF | 2); return; }
        if (c > W) return; // result undefined
        const M = (1n << BigInt(W)) - 1n;
        const D = BigInt(dst), S = BigInt(src), C = BigInt(c);
        let r: bigint, cf: bigint;
        if (left) {
          r = ((D << C) | (S >> (BigInt(W) - C))) & M;
          cf = (D >> (BigInt(W) - C)) & 1n;
        } else {
          r = ((D >> C) | (S << (BigInt(W) - C))) & M;
          cf = (D >> (C - 1n)) & 1n;
        }
        expect(acc(cpu, W)).toBe(Number(r));
        expect(cpu.flags & CF).toBe(Number(cf));
        expect(cpu.flags & (SF | ZF | PF)).toBe(szp(Number(r), W));
        if (c === 1) expect((cpu.flags & OF) !== 0).toBe(msb(Number(r), W) !== msb(dst, W));
      }), { numRuns: 2000 });
  });
});

describe('multiplication and division match BigInt arithmetic', () => {
  const cpu = machine();
  const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });

  it('32-bit MUL and IMUL: EDX:EAX is the full product; CF=OF iff the high half matters', () => {
    fc.assert(fc.property(i32, i32, fc.boolean(), (a, b, isSigned) => {
      exec(cpu, [0x66, 0xf7, isSigned ? 0xeb : 0xe3], { [EAX]: a, [EBX]: b }); // mul/imul ebx
      const p = isSigned ? BigInt(a) * BigInt(b) : BigInt(a >>> 0) * BigInt(b >>> 0);
      const bits = BigInt.asUintN(64, p);
      expect(cpu.r32[EAX]! >>> 0).toBe(Number(bits & 0xffffffffn));
      expect(cpu.r32[EDX]! >>> 0).toBe(Number(bits >> 32n));
      const fits = isSigned ? BigInt.asIntN(32, p) === p : p <= 0xffffffffn;
      expect(cpu.flags & (CF | OF)).toBe(fits ? 0 : CF | OF);
    }), { numRuns: 2000 });
  });

  it('IMUL r32, r/m32 and imm forms truncate, with CF=OF iff the product did not fit', () => {
    fc.assert(fc.property(i32, i32, (a, b) => {
      exec(cpu, [0x66, 0x0f, 0xaf, 0xc3], { [EAX]: a, [EBX]: b });
      const p = BigInt(a) * BigInt(b);
      expect(cpu.r32[EAX]).toBe(Number(BigInt.asIntN(32, p)));
      expect(cpu.flags & (CF | OF)).toBe(BigInt.asIntN(32, p) === p ? 0 : CF | OF);
    }), { numRuns: 1000 });
  });

  it('DIV/IDIV (8, 16, 32 bits): quotient and remainder as the SDM defines, #DE exactly when out of range', () => {
    fc.assert(fc.property(width, fc.boolean(), i32, i32, fc.integer({ min: -300, max: 300 }), fc.boolean(),
      (w, isSigned, hiX, loX, small, useSmall) => {
        const divisor = u(useSmall ? small : loX ^ (hiX << 7), w);
        let dividend: bigint;
        const regs: Record<number, number> = { [EBX]: divisor };
        if (w === 8) {
          regs[EAX] = loX & 0xffff;
          dividend = isSigned ? BigInt(signed(loX & 0xffff, 16)) : BigInt(loX & 0xffff);
        } else if (w === 16) {
          regs[EAX] = loX & 0xffff; regs[EDX] = hiX & 0xffff;
          const n = (((hiX & 0xffff) << 16) | (loX & 0xffff)) >>> 0;
          dividend = isSigned ? BigInt(n | 0) : BigInt(n);
        } else {
          regs[EAX] = loX; regs[EDX] = useSmall ? (hiX >> 20) : hiX;
          const n = (BigInt(regs[EDX]! >>> 0) << 32n) | BigInt(loX >>> 0);
          dividend = isSigned ? BigInt.asIntN(64, n) : n;
        }
        const modrm = isSigned ? 0xfb : 0xf3;
        const bytes = w === 8 ? [0xf6, modrm] : w === 16 ? [0xf7, modrm] : [0x66, 0xf7, modrm];
        const d = isSigned ? BigInt(signed(divisor, w)) : BigInt(divisor);
        const vec = exec(cpu, bytes, regs);
        if (d === 0n) { expect(vec).toBe(Vec.DE); return; }
        const q = dividend / d, r = dividend % d; // BigInt: truncation toward zero, like IDIV
        const lo = isSigned ? -(2n ** BigInt(w - 1)) : 0n;
        const hi = isSigned ? 2n ** BigInt(w - 1) - 1n : 2n ** BigInt(w) - 1n;
        if (q < lo || q > hi) { expect(vec).toBe(Vec.DE); return; }
        expect(vec).toBe(-1);
        if (w === 8) {
          expect(cpu.r8[0]).toBe(Number(BigInt.asUintN(8, q)));
          expect(cpu.r8[1]).toBe(Number(BigInt.asUintN(8, r)));
        } else if (w === 16) {
          expect(cpu.r16[0]).toBe(Number(BigInt.asUintN(16, q)));
          expect(cpu.r16[EDX << 1]).toBe(Number(BigInt.asUintN(16, r)));
        } else {
          expect(cpu.r32[EAX]! >>> 0).toBe(Number(BigInt.asUintN(32, q)));
          expect(cpu.r32[EDX]! >>> 0).toBe(Number(BigInt.asUintN(32, r)));
        }
      }), { numRuns: 4000 });
  });
});

describe('BT/BTS/BTR/BTC on a bit string in memory', () => {
  const cpu = machine();
  it('address the bit at base×8 + signed offset and change only that bit', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.integer({ min: -200, max: 200 }),
      fc.uint8Array({ minLength: 64, maxLength: 64 }), (kind, is32, off, bytes) => {
        const BUF = 0x2000, BASE = 0x2020;
        bytes.forEach((b, i) => cpu.mem.write8(BUF + i, b));
        const op = [0xa3, 0xab, 0xb3, 0xbb][kind]!;
        // bt* [bx], cx/ecx (modrm 0F: mod 0, reg CX, rm [bx])
        exec(cpu, [...(is32 ? [0x66] : []), 0x0f, op, 0x0f], { [EBX]: BASE, [ECX]: is32 ? off : off & 0xffff });
        const bit = (BASE - BUF) * 8 + off;
        const byteIdx = bit >> 3, m = 1 << (bit & 7);
        const old = bytes[byteIdx]!;
        expect(cpu.flags & CF).toBe(old & m ? CF : 0);
        const want = Uint8Array.from(bytes);
        want[byteIdx] = kind === 0 ? old : kind === 1 ? old | m : kind === 2 ? old & ~m : old ^ m;
        const got = new Uint8Array(64);
        for (let i = 0; i < 64; i++) got[i] = cpu.mem.read8(BUF + i);
        expect(Array.from(got)).toEqual(Array.from(want));
      }), { numRuns: 1000 });
  });
});
