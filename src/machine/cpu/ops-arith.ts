/**
 * Opcode handlers: integer arithmetic, logic, shifts and rotates, bit operations, BCD
 * adjusts and the flag instructions. The flag arithmetic itself lives in `alu.ts`.
 *
 * LOCK: a LOCK prefix is legal only on ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B DEC INC
 * NEG NOT OR SBB SUB XOR XADD with a memory destination; anywhere else it raises #UD.
 */
import type { Cpu } from './cpu.js';
import { EAX, EBX, ECX, EDX, Vec } from './constants.js';
import { AF, ARITH, CF, DF, FIXED_ONE, OF, PF, SF, ZF } from './flags.js';
import { testCondition } from './conditions.js';
import { defineOp, type Handler } from './op-table.js';
import {
  add16, add32, add8, alu16, alu32, alu8, dec16, dec32, dec8, inc16, inc32, inc8,
  logic16, logic32, logic8, shift, shld, shrd, sub16, sub32, sub8, szp16, szp32, szp8,
} from './alu.js';

const NOT_ARITH = ~ARITH;
const GROUP1 = ['ADD', 'OR', 'ADC', 'SBB', 'AND', 'SUB', 'XOR', 'CMP'];

/** #UD for a LOCK prefix where it is not allowed. */
function lockFault(cpu: Cpu): never {
  cpu.raise(Vec.UD);
}

/** Sign-extends a byte / word. */
function s8(v: number): number { return (v << 24) >> 24; }
function s16(v: number): number { return (v << 16) >> 16; }

// ======================================================================================
// Group-1 ALU operations: 00–3D (six forms each) and 80–83
// ======================================================================================

function opEbGb(op: number): Handler {
  if (op === 7) {
    return (cpu) => {
      if (cpu.lock) lockFault(cpu);
      cpu.decodeModrm();
      alu8(cpu, 7, cpu.readRM8(), cpu.getReg8(cpu.modrmReg));
    };
  }
  return (cpu) => {
    cpu.decodeModrm();
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const a = cpu.readRMW8();
    cpu.writeRMW8(alu8(cpu, op, a, cpu.getReg8(cpu.modrmReg)));
  };
}
function opEwGw(op: number): Handler {
  if (op === 7) {
    return (cpu) => {
      if (cpu.lock) lockFault(cpu);
      cpu.decodeModrm();
      alu16(cpu, 7, cpu.readRM16(), cpu.r16[cpu.modrmReg << 1]!);
    };
  }
  return (cpu) => {
    cpu.decodeModrm();
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const a = cpu.readRMW16();
    cpu.writeRMW16(alu16(cpu, op, a, cpu.r16[cpu.modrmReg << 1]!));
  };
}
function opEdGd(op: number): Handler {
  if (op === 7) {
    return (cpu) => {
      if (cpu.lock) lockFault(cpu);
      cpu.decodeModrm();
      alu32(cpu, 7, cpu.readRM32(), cpu.r32[cpu.modrmReg]!);
    };
  }
  return (cpu) => {
    cpu.decodeModrm();
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const a = cpu.readRMW32();
    cpu.writeRMW32(alu32(cpu, op, a, cpu.r32[cpu.modrmReg]!));
  };
}
function opGbEb(op: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const b = cpu.readRM8();
    const reg = cpu.modrmReg;
    const r = alu8(cpu, op, cpu.getReg8(reg), b);
    if (op !== 7) cpu.setReg8(reg, r);
  };
}
function opGwEw(op: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const b = cpu.readRM16();
    const i = cpu.modrmReg << 1;
    const r = alu16(cpu, op, cpu.r16[i]!, b);
    if (op !== 7) cpu.r16[i] = r;
  };
}
function opGdEd(op: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const b = cpu.readRM32();
    const i = cpu.modrmReg;
    const r = alu32(cpu, op, cpu.r32[i]!, b);
    if (op !== 7) cpu.r32[i] = r;
  };
}
function opALIb(op: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    const b = cpu.fetch8();
    const r = alu8(cpu, op, cpu.r8[0]!, b);
    if (op !== 7) cpu.r8[0] = r;
  };
}
function opAXIw(op: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    const b = cpu.fetch16();
    const r = alu16(cpu, op, cpu.r16[0]!, b);
    if (op !== 7) cpu.r16[0] = r;
  };
}
function opEAXId(op: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    const b = cpu.fetch32();
    const r = alu32(cpu, op, cpu.r32[0]!, b);
    if (op !== 7) cpu.r32[0] = r;
  };
}

for (let op = 0; op < 8; op++) {
  const base = op << 3;
  const n = GROUP1[op]!;
  defineOp(base + 0, `${n} Eb,Gb`, opEbGb(op));
  defineOp(base + 1, `${n} Ev,Gv`, opEwGw(op), opEdGd(op));
  defineOp(base + 2, `${n} Gb,Eb`, opGbEb(op));
  defineOp(base + 3, `${n} Gv,Ev`, opGwEw(op), opGdEd(op));
  defineOp(base + 4, `${n} AL,Ib`, opALIb(op));
  defineOp(base + 5, `${n} eAX,Iz`, opAXIw(op), opEAXId(op));
}

/** 80 and 82 (its alias): group 1, Eb, Ib. */
const grp1EbIb: Handler = (cpu) => {
  cpu.decodeModrm();
  const op = cpu.modrmReg;
  const b = cpu.fetch8();
  if (op === 7) {
    if (cpu.lock) lockFault(cpu);
    alu8(cpu, 7, cpu.readRM8(), b);
    return;
  }
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const a = cpu.readRMW8();
  cpu.writeRMW8(alu8(cpu, op, a, b));
};
function grp1Ew(signExt8: boolean): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const op = cpu.modrmReg;
    const b = signExt8 ? cpu.fetchS8() & 0xffff : cpu.fetch16();
    if (op === 7) {
      if (cpu.lock) lockFault(cpu);
      alu16(cpu, 7, cpu.readRM16(), b);
      return;
    }
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const a = cpu.readRMW16();
    cpu.writeRMW16(alu16(cpu, op, a, b));
  };
}
function grp1Ed(signExt8: boolean): Handler {
  return (cpu) => {
    cpu.decodeModrm();
    const op = cpu.modrmReg;
    const b = signExt8 ? cpu.fetchS8() : cpu.fetch32();
    if (op === 7) {
      if (cpu.lock) lockFault(cpu);
      alu32(cpu, 7, cpu.readRM32(), b);
      return;
    }
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const a = cpu.readRMW32();
    cpu.writeRMW32(alu32(cpu, op, a, b));
  };
}
defineOp(0x80, 'grp1 Eb,Ib', grp1EbIb);
defineOp(0x81, 'grp1 Ev,Iz', grp1Ew(false), grp1Ed(false));
defineOp(0x82, 'grp1 Eb,Ib (alias of 80)', grp1EbIb);
defineOp(0x83, 'grp1 Ev,Ib', grp1Ew(true), grp1Ed(true));

// ---- TEST ----
defineOp(0x84, 'TEST Eb,Gb', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  logic8(cpu, cpu.readRM8() & cpu.getReg8(cpu.modrmReg));
});
defineOp(0x85, 'TEST Ev,Gv', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  logic16(cpu, cpu.readRM16() & cpu.r16[cpu.modrmReg << 1]!);
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  logic32(cpu, cpu.readRM32() & cpu.r32[cpu.modrmReg]!);
});
defineOp(0xa8, 'TEST AL,Ib', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  logic8(cpu, cpu.r8[0]! & cpu.fetch8());
});
defineOp(0xa9, 'TEST eAX,Iz', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  logic16(cpu, cpu.r16[0]! & cpu.fetch16());
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  logic32(cpu, cpu.r32[0]! & cpu.fetch32());
});

// ---- INC / DEC r16/r32 (40–4F) ----
for (let r = 0; r < 8; r++) {
  const i16 = r << 1;
  defineOp(0x40 + r, 'INC reg', (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.r16[i16] = inc16(cpu, cpu.r16[i16]!);
  }, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.r32[r] = inc32(cpu, cpu.r32[r]!);
  });
  defineOp(0x48 + r, 'DEC reg', (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.r16[i16] = dec16(cpu, cpu.r16[i16]!);
  }, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.r32[r] = dec32(cpu, cpu.r32[r]!);
  });
}

// ======================================================================================
// Multiplication and division
// ======================================================================================

/**
 * Flags after MUL/IMUL: CF = OF = `overflow`. SF ZF PF are undefined; like Bochs (and
 * QEMU) they reflect the low half of the result (`szp`), and AF is 0.
 */
function mulFlags(cpu: Cpu, overflow: boolean, szp: number): void {
  cpu.flags = (cpu.flags & NOT_ARITH) | szp | (overflow ? CF | OF : 0);
}

/** Scratch results of the 64-bit helpers (no allocation per instruction). */
let hi32 = 0;
let lo32 = 0;

/** Unsigned 32×32→64 product of `a` and `b` (any 32-bit patterns) into hi32:lo32 (int32). */
function mulU32(a: number, b: number): void {
  const aL = a & 0xffff, aH = a >>> 16, bL = b & 0xffff, bH = b >>> 16;
  const mid = aH * bL + aL * bH; // < 2^33
  const low = aL * bL + (mid % 65536) * 65536; // < 2^33
  hi32 = (aH * bH + Math.floor(mid / 65536) + Math.floor(low / 4294967296)) | 0;
  lo32 = low | 0;
}

/** Signed 32×32→64 product into hi32:lo32. */
function mulS32(a: number, b: number): void {
  mulU32(a, b);
  // The signed high half is the unsigned one minus each operand where the other is negative.
  let h = hi32;
  if (a < 0) h -= b;
  if (b < 0) h -= a;
  hi32 = h | 0;
}

/**
 * Unsigned 64/32 division of hi:lo by d (hi < d, both unsigned, d ≠ 0), in two 16-bit
 * steps so every intermediate is an exact double. Quotient into lo32, remainder into hi32.
 */
function divU64(hi: number, lo: number, d: number): void {
  let t = hi * 65536 + (lo >>> 16);
  let q1 = Math.floor(t / d);
  let rem = t - q1 * d;
  if (rem < 0) { q1--; rem += d; }
  t = rem * 65536 + (lo & 0xffff);
  let q0 = Math.floor(t / d);
  rem = t - q0 * d;
  if (rem < 0) { q0--; rem += d; }
  lo32 = (q1 * 65536 + q0) | 0;
  hi32 = rem | 0;
}

function grp3b(cpu: Cpu): void {
  cpu.decodeModrm();
  cpu.chargeGroup(0xf6);
  const op = cpu.modrmReg;
  if (op === 2 || op === 3) { // NOT, NEG: lockable with a memory operand
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const v = cpu.readRMW8();
    cpu.writeRMW8(op === 2 ? ~v & 0xff : sub8(cpu, 0, v, 0));
    return;
  }
  if (cpu.lock) lockFault(cpu);
  switch (op) {
    case 0: case 1: // TEST Eb,Ib (/1 is an undocumented alias that Intel CPUs execute)
      logic8(cpu, cpu.readRM8() & cpu.fetch8());
      return;
    case 4: { // MUL: AX = AL × r/m8
      const p = cpu.r8[0]! * cpu.readRM8();
      cpu.r16[0] = p;
      mulFlags(cpu, p > 0xff, szp8(p & 0xff));
      return;
    }
    case 5: { // IMUL
      const p = s8(cpu.r8[0]!) * s8(cpu.readRM8());
      cpu.r16[0] = p;
      mulFlags(cpu, p !== s8(p), szp8(p & 0xff));
      return;
    }
    case 6: { // DIV: AL = AX / r/m8, AH = remainder
      const d = cpu.readRM8();
      if (d === 0) cpu.raise(Vec.DE);
      const n = cpu.r16[0]!;
      const q = (n / d) | 0;
      if (q > 0xff) cpu.raise(Vec.DE);
      cpu.r8[0] = q;
      cpu.r8[1] = n - q * d;
      return;
    }
    default: { // IDIV
      const d = s8(cpu.readRM8());
      if (d === 0) cpu.raise(Vec.DE);
      const n = s16(cpu.r16[0]!);
      const q = (n / d) | 0;
      if (q > 127 || q < -128) cpu.raise(Vec.DE);
      cpu.r8[0] = q;
      cpu.r8[1] = n - q * d;
    }
  }
}

function grp3w(cpu: Cpu): void {
  cpu.decodeModrm();
  cpu.chargeGroup(0xf7);
  const op = cpu.modrmReg;
  if (op === 2 || op === 3) {
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const v = cpu.readRMW16();
    cpu.writeRMW16(op === 2 ? ~v & 0xffff : sub16(cpu, 0, v, 0));
    return;
  }
  if (cpu.lock) lockFault(cpu);
  const r16 = cpu.r16;
  switch (op) {
    case 0: case 1:
      logic16(cpu, cpu.readRM16() & cpu.fetch16());
      return;
    case 4: { // MUL: DX:AX = AX × r/m16
      const p = r16[0]! * cpu.readRM16();
      const lo = p & 0xffff, hi = p >>> 16;
      r16[0] = lo;
      r16[EDX << 1] = hi;
      mulFlags(cpu, hi !== 0, szp16(lo));
      return;
    }
    case 5: {
      const p = s16(r16[0]!) * s16(cpu.readRM16());
      const lo = p & 0xffff;
      r16[0] = lo;
      r16[EDX << 1] = p >> 16;
      mulFlags(cpu, p !== s16(lo), szp16(lo));
      return;
    }
    case 6: { // DIV: AX = DX:AX / r/m16, DX = remainder
      const d = cpu.readRM16();
      if (d === 0) cpu.raise(Vec.DE);
      const n = ((r16[EDX << 1]! << 16) | r16[0]!) >>> 0;
      const q = Math.floor(n / d);
      if (q > 0xffff) cpu.raise(Vec.DE);
      r16[0] = q;
      r16[EDX << 1] = n - q * d;
      return;
    }
    default: { // IDIV
      const d = s16(cpu.readRM16());
      if (d === 0) cpu.raise(Vec.DE);
      const n = (r16[EDX << 1]! << 16) | r16[0]!;
      const q = Math.trunc(n / d);
      if (q > 32767 || q < -32768) cpu.raise(Vec.DE);
      r16[0] = q;
      r16[EDX << 1] = n - q * d;
    }
  }
}

function grp3d(cpu: Cpu): void {
  cpu.decodeModrm();
  cpu.chargeGroup(0xf7);
  const op = cpu.modrmReg;
  if (op === 2 || op === 3) {
    if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
    const v = cpu.readRMW32();
    cpu.writeRMW32(op === 2 ? ~v : sub32(cpu, 0, v, 0));
    return;
  }
  if (cpu.lock) lockFault(cpu);
  const r32 = cpu.r32;
  switch (op) {
    case 0: case 1:
      logic32(cpu, cpu.readRM32() & cpu.fetch32());
      return;
    case 4: { // MUL: EDX:EAX = EAX × r/m32
      mulU32(r32[EAX]!, cpu.readRM32());
      r32[EAX] = lo32;
      r32[EDX] = hi32;
      mulFlags(cpu, hi32 !== 0, szp32(lo32));
      return;
    }
    case 5: {
      mulS32(r32[EAX]!, cpu.readRM32());
      r32[EAX] = lo32;
      r32[EDX] = hi32;
      mulFlags(cpu, hi32 !== lo32 >> 31, szp32(lo32));
      return;
    }
    case 6: { // DIV: EAX = EDX:EAX / r/m32, EDX = remainder
      const d = cpu.readRM32() >>> 0;
      if (d === 0) cpu.raise(Vec.DE);
      const hi = r32[EDX]! >>> 0;
      if (hi >= d) cpu.raise(Vec.DE); // the quotient would not fit in 32 bits
      divU64(hi, r32[EAX]! >>> 0, d);
      r32[EAX] = lo32;
      r32[EDX] = hi32;
      return;
    }
    default: { // IDIV
      const ds = cpu.readRM32();
      if (ds === 0) cpu.raise(Vec.DE);
      let hi = r32[EDX]!, lo = r32[EAX]!;
      const negN = hi < 0;
      if (negN) { // |dividend|: 64-bit two's-complement negation
        lo = (~lo + 1) | 0;
        hi = ~hi + (lo === 0 ? 1 : 0);
      }
      const d = ds < 0 ? -ds : ds; // 2^31 for ds = −2^31: still exact as a double
      const uhi = hi >>> 0;
      if (uhi >= d) cpu.raise(Vec.DE);
      divU64(uhi, lo >>> 0, d);
      const q = lo32 >>> 0, rem = hi32 >>> 0;
      const negQ = negN !== (ds < 0);
      if (negQ ? q > 0x80000000 : q > 0x7fffffff) cpu.raise(Vec.DE);
      r32[EAX] = negQ ? -q : q;
      r32[EDX] = negN ? -rem : rem;
    }
  }
}
defineOp(0xf6, 'grp3 Eb', grp3b);
defineOp(0xf7, 'grp3 Ev', grp3w, grp3d);

// ---- IMUL r, r/m (, imm) ----

function imul16(cpu: Cpu, a: number, b: number): number {
  const p = s16(a) * s16(b);
  const lo = p & 0xffff;
  mulFlags(cpu, p !== s16(lo), szp16(lo));
  return lo;
}
function imul32(cpu: Cpu, a: number, b: number): number {
  const r = Math.imul(a, b);
  // The double product is exact below 2^53; above that it cannot equal a 32-bit result anyway.
  mulFlags(cpu, a * b !== r, szp32(r));
  return r;
}
defineOp(0x69, 'IMUL Gv,Ev,Iz', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  const imm = cpu.fetch16();
  cpu.r16[cpu.modrmReg << 1] = imul16(cpu, cpu.readRM16(), imm);
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  const imm = cpu.fetch32();
  cpu.r32[cpu.modrmReg] = imul32(cpu, cpu.readRM32(), imm);
});
defineOp(0x6b, 'IMUL Gv,Ev,Ib', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  const imm = cpu.fetchS8();
  cpu.r16[cpu.modrmReg << 1] = imul16(cpu, cpu.readRM16(), imm);
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  const imm = cpu.fetchS8();
  cpu.r32[cpu.modrmReg] = imul32(cpu, cpu.readRM32(), imm);
});
defineOp(0x1af, 'IMUL Gv,Ev', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  const b = cpu.readRM16();
  const i = cpu.modrmReg << 1;
  cpu.r16[i] = imul16(cpu, cpu.r16[i]!, b);
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.decodeModrm();
  const b = cpu.readRM32();
  const i = cpu.modrmReg;
  cpu.r32[i] = imul32(cpu, cpu.r32[i]!, b);
});

// ---- Group 4 (FE): INC/DEC r/m8 ----
defineOp(0xfe, 'grp4 Eb', (cpu) => {
  cpu.decodeModrm();
  const op = cpu.modrmReg;
  if (op > 1) cpu.raise(Vec.UD);
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const v = cpu.readRMW8();
  cpu.writeRMW8(op === 0 ? inc8(cpu, v) : dec8(cpu, v));
});

// ======================================================================================
// Shifts and rotates (group 2), SHLD, SHRD
// ======================================================================================

function grp2b(countKind: number): Handler {
  // countKind: 0 = imm8, 1 = the constant 1, 2 = CL
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const count = countKind === 0 ? cpu.fetch8() : countKind === 1 ? 1 : cpu.r8[ECX << 2]!;
    const v = cpu.readRMW8();
    if ((count & 0x1f) === 0) return;
    cpu.writeRMW8(shift(cpu, cpu.modrmReg, v, count, 8));
  };
}
function grp2w(countKind: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const count = countKind === 0 ? cpu.fetch8() : countKind === 1 ? 1 : cpu.r8[ECX << 2]!;
    const v = cpu.readRMW16();
    if ((count & 0x1f) === 0) return;
    cpu.writeRMW16(shift(cpu, cpu.modrmReg, v, count, 16));
  };
}
function grp2d(countKind: number): Handler {
  return (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const count = countKind === 0 ? cpu.fetch8() : countKind === 1 ? 1 : cpu.r8[ECX << 2]!;
    const v = cpu.readRMW32();
    if ((count & 0x1f) === 0) return;
    cpu.writeRMW32(shift(cpu, cpu.modrmReg, v, count, 32));
  };
}
defineOp(0xc0, 'grp2 Eb,Ib', grp2b(0));
defineOp(0xc1, 'grp2 Ev,Ib', grp2w(0), grp2d(0));
defineOp(0xd0, 'grp2 Eb,1', grp2b(1));
defineOp(0xd1, 'grp2 Ev,1', grp2w(1), grp2d(1));
defineOp(0xd2, 'grp2 Eb,CL', grp2b(2));
defineOp(0xd3, 'grp2 Ev,CL', grp2w(2), grp2d(2));

function shxd(left: boolean, imm: boolean): [Handler, Handler] {
  return [(cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const count = imm ? cpu.fetch8() : cpu.r8[ECX << 2]!;
    const v = cpu.readRMW16();
    if ((count & 0x1f) === 0) return;
    const src = cpu.r16[cpu.modrmReg << 1]!;
    cpu.writeRMW16(left ? shld(cpu, v, src, count, 16) : shrd(cpu, v, src, count, 16));
  }, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const count = imm ? cpu.fetch8() : cpu.r8[ECX << 2]!;
    const v = cpu.readRMW32();
    if ((count & 0x1f) === 0) return;
    const src = cpu.r32[cpu.modrmReg]!;
    cpu.writeRMW32(left ? shld(cpu, v, src, count, 32) : shrd(cpu, v, src, count, 32));
  }];
}
defineOp(0x1a4, 'SHLD Ev,Gv,Ib', ...shxd(true, true));
defineOp(0x1a5, 'SHLD Ev,Gv,CL', ...shxd(true, false));
defineOp(0x1ac, 'SHRD Ev,Gv,Ib', ...shxd(false, true));
defineOp(0x1ad, 'SHRD Ev,Gv,CL', ...shxd(false, false));

// ======================================================================================
// BCD adjusts, conversions, flag instructions
// ======================================================================================

/** Sets CF and AF as computed, SF ZF PF from AL, OF = 0 (undefined; P6 rule as in Bochs). */
function bcdFlags(cpu: Cpu, al: number, cf: number, af: number): void {
  cpu.flags = (cpu.flags & NOT_ARITH) | szp8(al) | cf | af;
}

defineOp(0x27, 'DAA', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  const old = cpu.r8[0]!, f = cpu.flags;
  let al = old, cf = 0, af = 0;
  if ((old & 0xf) > 9 || (f & AF) !== 0) {
    cf = old > 0xf9 || (f & CF) !== 0 ? CF : 0;
    al = (al + 6) & 0xff;
    af = AF;
  }
  if (old > 0x99 || (f & CF) !== 0) {
    al = (al + 0x60) & 0xff;
    cf = CF;
  }
  cpu.r8[0] = al;
  bcdFlags(cpu, al, cf, af);
});
defineOp(0x2f, 'DAS', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  const old = cpu.r8[0]!, f = cpu.flags;
  let al = old, cf = 0, af = 0;
  if ((old & 0xf) > 9 || (f & AF) !== 0) {
    cf = old < 6 || (f & CF) !== 0 ? CF : 0;
    al = (al - 6) & 0xff;
    af = AF;
  }
  if (old > 0x99 || (f & CF) !== 0) {
    al = (al - 0x60) & 0xff;
    cf = CF;
  }
  cpu.r8[0] = al;
  bcdFlags(cpu, al, cf, af);
});
defineOp(0x37, 'AAA', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  // AX += 0x106 (286 and later), so a carry out of AL reaches AH; the 8086 added 6 to AL only.
  let ax = cpu.r16[0]!, adj = 0;
  if ((ax & 0xf) > 9 || (cpu.flags & AF) !== 0) {
    ax = (ax + 0x106) & 0xffff;
    adj = CF | AF;
  }
  ax &= 0xff0f;
  cpu.r16[0] = ax;
  bcdFlags(cpu, ax & 0xff, adj & CF, adj & AF);
});
defineOp(0x3f, 'AAS', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  let ax = cpu.r16[0]!, adj = 0;
  if ((ax & 0xf) > 9 || (cpu.flags & AF) !== 0) {
    ax = (ax - 0x106) & 0xffff;
    adj = CF | AF;
  }
  ax &= 0xff0f;
  cpu.r16[0] = ax;
  bcdFlags(cpu, ax & 0xff, adj & CF, adj & AF);
});
defineOp(0xd4, 'AAM Ib', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  const base = cpu.fetch8();
  if (base === 0) cpu.raise(Vec.DE);
  const al = cpu.r8[0]!;
  const lo = al % base;
  cpu.r8[1] = (al / base) | 0;
  cpu.r8[0] = lo;
  bcdFlags(cpu, lo, 0, 0);
});
defineOp(0xd5, 'AAD Ib', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  const base = cpu.fetch8();
  const al = (cpu.r8[0]! + cpu.r8[1]! * base) & 0xff;
  cpu.r16[0] = al;
  bcdFlags(cpu, al, 0, 0);
});
defineOp(0xd6, 'SALC', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.r8[0] = (cpu.flags & CF) !== 0 ? 0xff : 0;
});
defineOp(0x98, 'CBW', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.r16[0] = s8(cpu.r8[0]!);
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.r32[EAX] = s16(cpu.r16[0]!);
});
defineOp(0x99, 'CWD', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.r16[EDX << 1] = (cpu.r16[0]! & 0x8000) !== 0 ? 0xffff : 0;
}, (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.r32[EDX] = cpu.r32[EAX]! >> 31;
});
defineOp(0x9e, 'SAHF', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  const m = SF | ZF | AF | PF | CF;
  cpu.flags = (cpu.flags & ~m) | (cpu.r8[1]! & m) | FIXED_ONE;
});
defineOp(0x9f, 'LAHF', (cpu) => {
  if (cpu.lock) lockFault(cpu);
  cpu.r8[1] = (cpu.flags & (SF | ZF | AF | PF | CF)) | FIXED_ONE;
});
function flagOp(name: string, op: number, and: number, or: number, xor: number): void {
  defineOp(op, name, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.flags = ((cpu.flags & and) | or) ^ xor;
  });
}
flagOp('CMC', 0xf5, -1, 0, CF);
flagOp('CLC', 0xf8, ~CF, 0, 0);
flagOp('STC', 0xf9, -1, CF, 0);
flagOp('CLD', 0xfc, ~DF, 0, 0);
flagOp('STD', 0xfd, -1, DF, 0);

// ======================================================================================
// 0F: CMOVcc, SETcc
// ======================================================================================

for (let cc = 0; cc < 16; cc++) {
  defineOp(0x140 + cc, 'CMOVcc Gv,Ev', (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const v = cpu.readRM16(); // read even when the condition is false: a memory source faults
    if (testCondition(cpu, cc)) cpu.r16[cpu.modrmReg << 1] = v;
  }, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const v = cpu.readRM32();
    if (testCondition(cpu, cc)) cpu.r32[cpu.modrmReg] = v;
  });
  defineOp(0x190 + cc, 'SETcc Eb', (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    cpu.writeRM8(testCondition(cpu, cc) ? 1 : 0);
  });
}

// ======================================================================================
// 0F: bit test / scan, BSWAP
// ======================================================================================

/**
 * A register bit offset with a memory operand selects a bit anywhere in the bit string
 * that starts at the operand: the signed offset's high part moves the address (in units of
 * the operand size), wrapping like any effective address of the current address size.
 */
function btAdjustEa(cpu: Cpu, byteDisp: number): void {
  const ea = cpu.eaOffset + byteDisp;
  cpu.eaOffset = cpu.addrsize32 ? ea >>> 0 : ea & 0xffff;
}

/** BT=0, BTS=1, BTR=2, BTC=3: the new value of a word/dword with bit `mask` tested. */
function btApply(cpu: Cpu, kind: number, v: number, mask: number): number {
  cpu.flags = (cpu.flags & ~CF) | ((v & mask) !== 0 ? CF : 0);
  return kind === 1 ? v | mask : kind === 2 ? v & ~mask : v ^ mask;
}

function btRegOffset(kind: number): [Handler, Handler] {
  return [(cpu) => {
    cpu.decodeModrm();
    if (cpu.lock && (kind === 0 || cpu.modrmMod === 3)) lockFault(cpu);
    const off = cpu.r16[cpu.modrmReg << 1]!;
    if (cpu.modrmMod !== 3) btAdjustEa(cpu, (s16(off) >> 4) << 1);
    const mask = 1 << (off & 15);
    if (kind === 0) { btApply(cpu, 0, cpu.readRM16(), mask); return; }
    const v = cpu.readRMW16();
    cpu.writeRMW16(btApply(cpu, kind, v, mask) & 0xffff);
  }, (cpu) => {
    cpu.decodeModrm();
    if (cpu.lock && (kind === 0 || cpu.modrmMod === 3)) lockFault(cpu);
    const off = cpu.r32[cpu.modrmReg]!;
    if (cpu.modrmMod !== 3) btAdjustEa(cpu, (off >> 5) << 2);
    const mask = 1 << (off & 31);
    if (kind === 0) { btApply(cpu, 0, cpu.readRM32(), mask); return; }
    const v = cpu.readRMW32();
    cpu.writeRMW32(btApply(cpu, kind, v, mask));
  }];
}
defineOp(0x1a3, 'BT Ev,Gv', ...btRegOffset(0));
defineOp(0x1ab, 'BTS Ev,Gv', ...btRegOffset(1));
defineOp(0x1b3, 'BTR Ev,Gv', ...btRegOffset(2));
defineOp(0x1bb, 'BTC Ev,Gv', ...btRegOffset(3));

defineOp(0x1ba, 'grp8 Ev,Ib', (cpu) => {
  cpu.decodeModrm();
  const op = cpu.modrmReg;
  if (op < 4) cpu.raise(Vec.UD);
  const kind = op - 4;
  if (cpu.lock && (kind === 0 || cpu.modrmMod === 3)) lockFault(cpu);
  const mask = 1 << (cpu.fetch8() & 15);
  if (kind === 0) { btApply(cpu, 0, cpu.readRM16(), mask); return; }
  const v = cpu.readRMW16();
  cpu.writeRMW16(btApply(cpu, kind, v, mask) & 0xffff);
}, (cpu) => {
  cpu.decodeModrm();
  const op = cpu.modrmReg;
  if (op < 4) cpu.raise(Vec.UD);
  const kind = op - 4;
  if (cpu.lock && (kind === 0 || cpu.modrmMod === 3)) lockFault(cpu);
  const mask = 1 << (cpu.fetch8() & 31);
  if (kind === 0) { btApply(cpu, 0, cpu.readRM32(), mask); return; }
  const v = cpu.readRMW32();
  cpu.writeRMW32(btApply(cpu, kind, v, mask));
});

/**
 * BSF/BSR flags: source 0 sets ZF and leaves the destination and the other flags alone
 * (as Intel CPUs do); otherwise ZF = 0, SF and PF from the bit index, CF OF AF = 0
 * (undefined; Bochs's rule).
 */
function bitScan(cpu: Cpu, reverse: boolean, v: number): number {
  if (v === 0) {
    cpu.flags |= ZF;
    return -1;
  }
  const idx = reverse ? 31 - Math.clz32(v) : 31 - Math.clz32(v & -v);
  cpu.flags = (cpu.flags & NOT_ARITH) | (parityOfIndex(idx));
  return idx;
}
/** PF of a bit index (0–31; SF and ZF are 0 for it). */
function parityOfIndex(idx: number): number {
  return szp8(idx) & ~ZF;
}
function bsx(reverse: boolean): [Handler, Handler] {
  return [(cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const i = bitScan(cpu, reverse, cpu.readRM16());
    if (i >= 0) cpu.r16[cpu.modrmReg << 1] = i;
  }, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    cpu.decodeModrm();
    const i = bitScan(cpu, reverse, cpu.readRM32());
    if (i >= 0) cpu.r32[cpu.modrmReg] = i;
  }];
}
defineOp(0x1bc, 'BSF Gv,Ev', ...bsx(false));
defineOp(0x1bd, 'BSR Gv,Ev', ...bsx(true));

for (let r = 0; r < 8; r++) {
  defineOp(0x1c8 + r, 'BSWAP reg', (cpu) => {
    if (cpu.lock) lockFault(cpu);
    // With a 16-bit operand the result is undefined; like Bochs, clear the low word.
    cpu.r16[r << 1] = 0;
  }, (cpu) => {
    if (cpu.lock) lockFault(cpu);
    const v = cpu.r32[r]!;
    cpu.r32[r] = (v << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
  });
}

// ======================================================================================
// 0F: XADD, CMPXCHG, CMPXCHG8B
// ======================================================================================

defineOp(0x1c0, 'XADD Eb,Gb', (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const d = cpu.readRMW8();
  const reg = cpu.modrmReg;
  const sum = add8(cpu, d, cpu.getReg8(reg), 0);
  cpu.setReg8(reg, d);
  cpu.writeRMW8(sum); // last: with the same register as both operands the sum wins
});
defineOp(0x1c1, 'XADD Ev,Gv', (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const d = cpu.readRMW16();
  const i = cpu.modrmReg << 1;
  const sum = add16(cpu, d, cpu.r16[i]!, 0);
  cpu.r16[i] = d;
  cpu.writeRMW16(sum);
}, (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const d = cpu.readRMW32();
  const i = cpu.modrmReg;
  const sum = add32(cpu, d, cpu.r32[i]!, 0);
  cpu.r32[i] = d;
  cpu.writeRMW32(sum);
});

// CMPXCHG: compare the accumulator with the destination; equal: destination = source,
// else accumulator = destination. The destination is always written (with its own value
// on a mismatch), as the locked bus cycle does, so a read-only memory operand faults.
defineOp(0x1b0, 'CMPXCHG Eb,Gb', (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const d = cpu.readRMW8();
  sub8(cpu, cpu.r8[0]!, d, 0);
  if ((cpu.flags & ZF) !== 0) {
    cpu.writeRMW8(cpu.getReg8(cpu.modrmReg));
  } else {
    cpu.writeRMW8(d);
    cpu.r8[0] = d;
  }
});
defineOp(0x1b1, 'CMPXCHG Ev,Gv', (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const d = cpu.readRMW16();
  sub16(cpu, cpu.r16[0]!, d, 0);
  if ((cpu.flags & ZF) !== 0) {
    cpu.writeRMW16(cpu.r16[cpu.modrmReg << 1]!);
  } else {
    cpu.writeRMW16(d);
    cpu.r16[0] = d;
  }
}, (cpu) => {
  cpu.decodeModrm();
  if (cpu.lock && cpu.modrmMod === 3) lockFault(cpu);
  const d = cpu.readRMW32();
  sub32(cpu, cpu.r32[EAX]!, d, 0);
  if ((cpu.flags & ZF) !== 0) {
    cpu.writeRMW32(cpu.r32[cpu.modrmReg]!);
  } else {
    cpu.writeRMW32(d);
    cpu.r32[EAX] = d;
  }
});

/** Physical addresses of the 8 bytes of a CMPXCHG8B operand (checked for writing). */
const cx8Phys = new Float64Array(8);

const cmpxchg8b: Handler = (cpu) => {
  cpu.decodeModrm();
  if (cpu.modrmReg !== 1 || cpu.modrmMod === 3) cpu.raise(Vec.UD);
  // Check and translate all eight bytes for writing before changing anything.
  const seg = cpu.eaSeg, off = cpu.eaOffset;
  const wrap = cpu.addrsize32 ? 0xffffffff : 0xffff;
  for (let i = 0; i < 8; i++) {
    const o = off + i;
    if (o > wrap) cpu.segmentFault(seg); // the operand runs past the end of the address space
    cx8Phys[i] = cpu.dataAddr(seg, o, 1, true);
  }
  const mem = cpu.mem;
  let lo = 0, hi = 0;
  for (let i = 0; i < 4; i++) {
    lo |= mem.read8(cx8Phys[i]!) << (8 * i);
    hi |= mem.read8(cx8Phys[i + 4]!) << (8 * i);
  }
  const r32 = cpu.r32;
  let wlo: number, whi: number;
  if (lo === r32[EAX] && hi === r32[EDX]) {
    cpu.flags |= ZF;
    wlo = r32[EBX]!; whi = r32[ECX]!;
  } else {
    cpu.flags &= ~ZF;
    wlo = lo; whi = hi;
    r32[EAX] = lo; r32[EDX] = hi;
  }
  for (let i = 0; i < 4; i++) {
    mem.write8(cx8Phys[i]!, wlo >> (8 * i));
    mem.write8(cx8Phys[i + 4]!, whi >> (8 * i));
  }
};
defineOp(0x1c7, 'grp9 (CMPXCHG8B Mq)', cmpxchg8b);
