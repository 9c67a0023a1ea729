/**
 * Flag-computing ALU helpers: the arithmetic, logic and shift cores of the IA-32 integer
 * instructions, one function per operation and width (the hot path: no allocation, no
 * closures, PF from the PARITY table). Each takes operands already read, sets the status
 * flags in `cpu.flags` eagerly and returns the result truncated to the width (8/16-bit
 * results unsigned, 32-bit results int32).
 *
 * Undefined flags follow the rules Bochs uses for P6-family CPUs (validated there against
 * hardware where it says so): after logic operations and shifts AF is 0; after a shift or
 * rotate by more than one bit OF is computed by the same formula as for a count of one;
 * after MUL/IMUL SF, ZF and PF reflect the low half of the result and AF is 0; DIV/IDIV
 * leave the flags unchanged; the BCD adjusts set SF/ZF/PF from AL and clear OF.
 */
import type { Cpu } from './cpu.js';
import { AF, ARITH, CF, OF, PARITY, SF, ZF } from './flags.js';

const NOT_ARITH = ~ARITH;
/** All status flags but CF: what INC and DEC change. */
const NOT_ARITH_KEEP_CF = ~(ARITH & ~CF);
const NOT_CF_OF = ~(CF | OF);

// ---- SF | ZF | PF of a truncated result ----

/** SF, ZF and PF of an 8-bit result (0–255). */
export function szp8(r: number): number {
  return (r & SF) | PARITY[r]! | (r === 0 ? ZF : 0);
}
/** SF, ZF and PF of a 16-bit result (0–65535). */
export function szp16(r: number): number {
  return ((r >> 8) & SF) | PARITY[r & 0xff]! | (r === 0 ? ZF : 0);
}
/** SF, ZF and PF of a 32-bit result (any 32-bit pattern, signed or not). */
export function szp32(r: number): number {
  return ((r >>> 24) & SF) | PARITY[r & 0xff]! | ((r | 0) === 0 ? ZF : 0);
}

// ---- ADD / ADC (c = carry in, 0 or 1) ----

/** a + b + c for bytes; sets OF SF ZF AF PF CF. */
export function add8(cpu: Cpu, a: number, b: number, c: number): number {
  const r = a + b + c;
  const t = r & 0xff;
  cpu.flags = (cpu.flags & NOT_ARITH) | szp8(t) | (r >> 8) | ((a ^ b ^ r) & AF)
    | (((a ^ r) & (b ^ r) & 0x80) << 4);
  return t;
}
/** a + b + c for words; sets OF SF ZF AF PF CF. */
export function add16(cpu: Cpu, a: number, b: number, c: number): number {
  const r = a + b + c;
  const t = r & 0xffff;
  cpu.flags = (cpu.flags & NOT_ARITH) | szp16(t) | (r >> 16) | ((a ^ b ^ r) & AF)
    | (((a ^ r) & (b ^ r) & 0x8000) >> 4);
  return t;
}
/** a + b + c for dwords (int32 in, int32 out); sets OF SF ZF AF PF CF. */
export function add32(cpu: Cpu, a: number, b: number, c: number): number {
  const r = (a + b + c) | 0;
  // Carry out of bit 31, from the operands' and result's top bits.
  const carry = ((a & b) | ((a | b) & ~r)) >>> 31;
  cpu.flags = (cpu.flags & NOT_ARITH) | szp32(r) | carry | ((a ^ b ^ r) & AF)
    | ((((a ^ r) & (b ^ r)) >>> 20) & OF);
  return r;
}

// ---- SUB / SBB / CMP (c = borrow in, 0 or 1) ----

/** a − b − c for bytes; sets OF SF ZF AF PF CF (CF = unsigned borrow). */
export function sub8(cpu: Cpu, a: number, b: number, c: number): number {
  const r = a - b - c;
  const t = r & 0xff;
  cpu.flags = (cpu.flags & NOT_ARITH) | szp8(t) | ((r >> 8) & CF) | ((a ^ b ^ r) & AF)
    | (((a ^ b) & (a ^ r) & 0x80) << 4);
  return t;
}
/** a − b − c for words; sets OF SF ZF AF PF CF. */
export function sub16(cpu: Cpu, a: number, b: number, c: number): number {
  const r = a - b - c;
  const t = r & 0xffff;
  cpu.flags = (cpu.flags & NOT_ARITH) | szp16(t) | ((r >> 16) & CF) | ((a ^ b ^ r) & AF)
    | (((a ^ b) & (a ^ r) & 0x8000) >> 4);
  return t;
}
/** a − b − c for dwords (int32 in, int32 out); sets OF SF ZF AF PF CF. */
export function sub32(cpu: Cpu, a: number, b: number, c: number): number {
  const r = (a - b - c) | 0;
  const borrow = ((~a & b) | (~(a ^ b) & r)) >>> 31;
  cpu.flags = (cpu.flags & NOT_ARITH) | szp32(r) | borrow | ((a ^ b ^ r) & AF)
    | ((((a ^ b) & (a ^ r)) >>> 20) & OF);
  return r;
}

// ---- AND / OR / XOR / TEST: CF = OF = 0, AF = 0 (undefined; P6 rule) ----

/** Sets the flags of a logic operation's 8-bit result and returns it. */
export function logic8(cpu: Cpu, r: number): number {
  cpu.flags = (cpu.flags & NOT_ARITH) | szp8(r);
  return r;
}
/** Sets the flags of a logic operation's 16-bit result and returns it. */
export function logic16(cpu: Cpu, r: number): number {
  cpu.flags = (cpu.flags & NOT_ARITH) | szp16(r);
  return r;
}
/** Sets the flags of a logic operation's 32-bit result and returns it. */
export function logic32(cpu: Cpu, r: number): number {
  cpu.flags = (cpu.flags & NOT_ARITH) | szp32(r);
  return r;
}

// ---- The eight group-1 operations by number: ADD OR ADC SBB AND SUB XOR CMP ----

/** Group-1 operation `op` (0–7) on bytes; CMP (7) returns `a` unchanged. */
export function alu8(cpu: Cpu, op: number, a: number, b: number): number {
  switch (op) {
    case 0: return add8(cpu, a, b, 0);
    case 1: return logic8(cpu, a | b);
    case 2: return add8(cpu, a, b, cpu.flags & CF);
    case 3: return sub8(cpu, a, b, cpu.flags & CF);
    case 4: return logic8(cpu, a & b);
    case 5: return sub8(cpu, a, b, 0);
    case 6: return logic8(cpu, a ^ b);
    default: sub8(cpu, a, b, 0); return a;
  }
}
/** Group-1 operation `op` (0–7) on words; CMP (7) returns `a` unchanged. */
export function alu16(cpu: Cpu, op: number, a: number, b: number): number {
  switch (op) {
    case 0: return add16(cpu, a, b, 0);
    case 1: return logic16(cpu, a | b);
    case 2: return add16(cpu, a, b, cpu.flags & CF);
    case 3: return sub16(cpu, a, b, cpu.flags & CF);
    case 4: return logic16(cpu, a & b);
    case 5: return sub16(cpu, a, b, 0);
    case 6: return logic16(cpu, a ^ b);
    default: sub16(cpu, a, b, 0); return a;
  }
}
/** Group-1 operation `op` (0–7) on dwords (int32); CMP (7) returns `a` unchanged. */
export function alu32(cpu: Cpu, op: number, a: number, b: number): number {
  switch (op) {
    case 0: return add32(cpu, a, b, 0);
    case 1: return logic32(cpu, a | b);
    case 2: return add32(cpu, a, b, cpu.flags & CF);
    case 3: return sub32(cpu, a, b, cpu.flags & CF);
    case 4: return logic32(cpu, a & b);
    case 5: return sub32(cpu, a, b, 0);
    case 6: return logic32(cpu, a ^ b);
    default: sub32(cpu, a, b, 0); return a;
  }
}

// ---- INC / DEC: like ADD/SUB 1 but CF is unchanged ----
// Per-width versions of `inc`/`dec` below: return the truncated result, set OF SF ZF AF PF.

/** INC of a byte (CF unchanged). */
export function inc8(cpu: Cpu, v: number): number {
  const r = (v + 1) & 0xff;
  cpu.flags = (cpu.flags & NOT_ARITH_KEEP_CF) | szp8(r) | ((r & 0xf) === 0 ? AF : 0) | (r === 0x80 ? OF : 0);
  return r;
}
/** INC of a word (CF unchanged). */
export function inc16(cpu: Cpu, v: number): number {
  const r = (v + 1) & 0xffff;
  cpu.flags = (cpu.flags & NOT_ARITH_KEEP_CF) | szp16(r) | ((r & 0xf) === 0 ? AF : 0) | (r === 0x8000 ? OF : 0);
  return r;
}
/** INC of a dword (int32 result) (CF unchanged). */
export function inc32(cpu: Cpu, v: number): number {
  const r = (v + 1) | 0;
  cpu.flags = (cpu.flags & NOT_ARITH_KEEP_CF) | szp32(r) | ((r & 0xf) === 0 ? AF : 0) | (r === -0x80000000 ? OF : 0);
  return r;
}
/** DEC of a byte (CF unchanged). */
export function dec8(cpu: Cpu, v: number): number {
  const r = (v - 1) & 0xff;
  cpu.flags = (cpu.flags & NOT_ARITH_KEEP_CF) | szp8(r) | ((r & 0xf) === 0xf ? AF : 0) | (r === 0x7f ? OF : 0);
  return r;
}
/** DEC of a word (CF unchanged). */
export function dec16(cpu: Cpu, v: number): number {
  const r = (v - 1) & 0xffff;
  cpu.flags = (cpu.flags & NOT_ARITH_KEEP_CF) | szp16(r) | ((r & 0xf) === 0xf ? AF : 0) | (r === 0x7fff ? OF : 0);
  return r;
}
/** DEC of a dword (int32 result) (CF unchanged). */
export function dec32(cpu: Cpu, v: number): number {
  const r = (v - 1) | 0;
  cpu.flags = (cpu.flags & NOT_ARITH_KEEP_CF) | szp32(r) | ((r & 0xf) === 0xf ? AF : 0) | (r === 0x7fffffff ? OF : 0);
  return r;
}

/**
 * INC of a `bits`-wide value (8, 16 or 32): returns the truncated result (int32 for 32)
 * and sets OF SF ZF AF PF; CF is unchanged.
 */
export function inc(cpu: Cpu, v: number, bits: number): number {
  return bits === 8 ? inc8(cpu, v) : bits === 16 ? inc16(cpu, v) : inc32(cpu, v);
}
/**
 * DEC of a `bits`-wide value (8, 16 or 32): returns the truncated result (int32 for 32)
 * and sets OF SF ZF AF PF; CF is unchanged.
 */
export function dec(cpu: Cpu, v: number, bits: number): number {
  return bits === 8 ? dec8(cpu, v) : bits === 16 ? dec16(cpu, v) : dec32(cpu, v);
}

// ======================================================================================
// Shifts and rotates (group 2)
// ======================================================================================

/**
 * Group-2 operation `op` (0 ROL, 1 ROR, 2 RCL, 3 RCR, 4 SHL, 5 SHR, 6 SAL = SHL, 7 SAR)
 * of the `bits`-wide value `v` (8/16-bit unsigned, 32-bit any) by `count`, which the
 * caller has NOT masked: the count is masked to 5 bits here. A masked count of 0 changes
 * neither the value nor any flag. Rotates change only CF and OF; shifts set SF ZF PF from
 * the result, AF = 0 (undefined; P6 rule), CF = the last bit shifted out (0 when an 8- or
 * 16-bit SHL/SHR shifts by more than the width), OF per the count-1 formula for any count.
 * Returns the truncated result.
 */
export function shift(cpu: Cpu, op: number, v: number, count: number, bits: number): number {
  count &= 0x1f;
  if (count === 0) return v;
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  const top = bits - 1;
  const u = bits === 32 ? v | 0 : v & mask;
  let r: number, cf: number, of: number;
  switch (op) {
    case 0: { // ROL: CF = LSB(result), OF = CF ^ MSB(result)
      const n = count & top;
      r = n === 0 ? u : ((u << n) | (u >>> (bits - n))) & mask;
      cf = r & 1;
      of = cf ^ ((r >>> top) & 1);
      cpu.flags = (cpu.flags & NOT_CF_OF) | cf | (of << 11);
      return r;
    }
    case 1: { // ROR: CF = MSB(result), OF = MSB ^ MSB-1 of the result
      const n = count & top;
      r = n === 0 ? u : ((u >>> n) | (u << (bits - n))) & mask;
      cf = (r >>> top) & 1;
      of = cf ^ ((r >>> (top - 1)) & 1);
      cpu.flags = (cpu.flags & NOT_CF_OF) | cf | (of << 11);
      return r;
    }
    case 2: { // RCL through CF: a (bits+1)-bit rotation; count mod 9 / 17 (32-bit: the masked count)
      const n = bits === 32 ? count : count % (bits + 1);
      if (n === 0) return u;
      const c = cpu.flags & CF;
      if (n === 1) r = (u << 1) | c;
      else if (n === bits) r = (c << top) | (u >>> 1);
      else r = (u << n) | (c << (n - 1)) | (u >>> (bits + 1 - n));
      r &= mask;
      cf = (u >>> (bits - n)) & 1;
      of = cf ^ ((r >>> top) & 1);
      cpu.flags = (cpu.flags & NOT_CF_OF) | cf | (of << 11);
      return r;
    }
    case 3: { // RCR through CF
      const n = bits === 32 ? count : count % (bits + 1);
      if (n === 0) return u;
      const c = cpu.flags & CF;
      if (n === 1) r = (u >>> 1) | (c << top);
      else r = (u >>> n) | (c << (bits - n)) | (u << (bits + 1 - n));
      r &= mask;
      cf = (u >>> (n - 1)) & 1;
      of = ((r >>> top) ^ (r >>> (top - 1))) & 1;
      cpu.flags = (cpu.flags & NOT_CF_OF) | cf | (of << 11);
      return r;
    }
    case 4: case 6: // SHL / SAL
      if (count <= bits) {
        r = bits === 32 ? u << count : (u << count) & mask;
        cf = (u >>> (bits - count)) & 1;
        of = cf ^ ((r >>> top) & 1);
      } else {
        r = 0; cf = 0; of = 0;
      }
      break;
    case 5: // SHR: OF = MSB of the operand for count 1, 0 otherwise
      if (count < bits) {
        r = u >>> count;
        cf = (u >>> (count - 1)) & 1;
      } else {
        r = 0;
        cf = count === bits ? (u >>> top) & 1 : 0;
      }
      of = count === 1 ? (u >>> top) & 1 : 0;
      break;
    default: { // SAR: the sign fills; OF = 0
      const s = bits === 32 ? u : (u << (32 - bits)) >> (32 - bits);
      const n = count < bits ? count : top;
      r = (s >> n) & mask;
      cf = (s >> (n === count ? n - 1 : top)) & 1;
      of = 0;
      break;
    }
  }
  if (bits === 32) r |= 0;
  const szp = bits === 8 ? szp8(r) : bits === 16 ? szp16(r) : szp32(r);
  cpu.flags = (cpu.flags & NOT_ARITH) | szp | cf | (of << 11);
  return r;
}

/**
 * SHLD: shifts `dst` left by `count` (masked to 5 bits), filling from the top of `src`.
 * Count 0: nothing changes. For a 16-bit operand and a count above 16 (undefined) this
 * follows the P6 behaviour Bochs models: the bits come from dst:src:dst. CF = last bit
 * out, OF = CF ^ MSB(result), SF ZF PF from the result, AF = 0.
 */
export function shld(cpu: Cpu, dst: number, src: number, count: number, bits: number): number {
  count &= 0x1f;
  if (count === 0) return dst;
  let r: number, cf: number;
  if (bits === 32) {
    r = (dst << count) | (src >>> (32 - count));
    cf = (dst >>> (32 - count)) & 1;
  } else {
    const t = ((dst << 16) | src) >>> 0;
    let w = (t << count) >>> 0;
    if (count > 16) w = (w | (dst << (count - 16))) >>> 0;
    r = w >>> 16;
    cf = (t >>> (32 - count)) & 1;
  }
  const of = cf ^ ((r >>> (bits - 1)) & 1);
  cpu.flags = (cpu.flags & NOT_ARITH) | (bits === 32 ? szp32(r) : szp16(r)) | cf | (of << 11);
  return r;
}

/**
 * SHRD: shifts `dst` right by `count` (masked to 5 bits), filling from the bottom of `src`.
 * Count 0: nothing changes. 16-bit counts above 16 follow the P6 behaviour Bochs models
 * (bits from dst:src:dst, CF from src). OF = XOR of the result's two top bits.
 */
export function shrd(cpu: Cpu, dst: number, src: number, count: number, bits: number): number {
  count &= 0x1f;
  if (count === 0) return dst;
  let r: number, cf: number;
  if (bits === 32) {
    r = (dst >>> count) | (src << (32 - count));
    cf = (dst >>> (count - 1)) & 1;
  } else {
    const t = ((src << 16) | dst) >>> 0;
    let w = t >>> count;
    if (count > 16) w = (w | (dst << (32 - count))) >>> 0;
    r = w & 0xffff;
    cf = count > 16 ? (src >>> (count - 17)) & 1 : (dst >>> (count - 1)) & 1;
  }
  const of = ((r >>> (bits - 1)) ^ (r >>> (bits - 2))) & 1;
  cpu.flags = (cpu.flags & NOT_ARITH) | (bits === 32 ? szp32(r) : szp16(r)) | cf | (of << 11);
  return r;
}
