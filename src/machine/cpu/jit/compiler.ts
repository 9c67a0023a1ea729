/**
 * The block compiler: turns a straight-line run of guest instructions into one JavaScript
 * function (`new Function`), the v86 approach without WebAssembly.
 *
 * The generated code is a transcription of what the interpreter's handlers do for the same
 * bytes, call for call: the same `cpu.readMem*` / `dataAddr` / `readRMW*` calls in the same
 * order (so TLB lookups, page walks and their cycles are identical), the same `alu.ts`
 * helpers for the flags, the same cycle charges (`cost.base[idx]`, `cost.memOperand` for a
 * ModR/M memory operand, `cost.branchTaken` where the handler charges it) at the same
 * points, and `cpu.instructions` counted per instruction. After every instruction it makes
 * the interpreter's between-instruction test and leaves the block when that test (or the
 * run budget) says so, with EIP and `instrStart` as the interpreter would have them. Before
 * an instruction that may fault it sets `cpu.instrStart`, and it changes registers only
 * after the accesses that may fault, as the handlers do, so the run loop's fault path
 * restarts the right instruction with the right state.
 *
 * An instruction the compiler does not transcribe is run by the interpreter's own handler,
 * called from the block with the decode state `runBlock` would have set (prefix fields,
 * `instrStart`, EIP after the opcode). After handlers known to touch only general
 * registers, flags, EIP and memory (MUL/DIV, BT, string ops without REP, PUSHA, PUSH/POP of
 * data segment registers, ...) the block goes on, re-checking its own bytes after those
 * that write memory; after any other handler (far transfers, system instructions, port
 * I/O, REP strings, ...) the block ends, so the run loop sees exactly what it would have.
 * Blocks end at JMP/CALL/RET (a taken jump back to the block's start loops inside it), at
 * the 4 KiB page end, at the CS limit and at `maxInstructions`.
 */
import type { Cpu } from '../cpu.js';
import {
  add16, add32, add8, dec16, dec32, dec8, inc16, inc32, inc8, logic16, logic32, logic8,
  shift, sub16, sub32, sub8, szp16, szp32,
} from '../alu.js';
import { ARITH, CF, OF } from '../flags.js';
import { HANDLERS } from '../op-table.js';

/** A compiled block: runs at least one instruction and returns true, or returns false (and
 * runs nothing) when guest memory no longer holds the bytes it was compiled from. */
export type BlockFn = (cpu: Cpu, target: number) => boolean;

/** What `compileBlock` produces. */
export interface CompiledBlock {
  readonly fn: BlockFn;
  /** Bytes of guest code covered (from the block's first byte). */
  readonly length: number;
  /** Guest instructions in the block. */
  readonly count: number;
  /** The generated source, for debugging. */
  readonly source: string;
  /** Only one instruction, run by its interpreter handler: no gain over interpreting it. */
  readonly trivial: boolean;
}

// ---- runtime helpers the generated code calls (exact transcriptions of cpu.ts paths) ----

/** writeMem8, returning the physical address written. */
function wr8(c: Cpu, seg: number, off: number, v: number): number {
  const p = c.dataAddr(seg, off, 1, true);
  c.mem.write8(p, v);
  return p;
}
/** writeMem16; returns the physical address, or -1 for a page-crossing write (done by cpu). */
function wr16(c: Cpu, seg: number, off: number, v: number): number {
  const lin = (c.segBase[seg]! + off) >>> 0;
  if ((lin & 0xfff) !== 0xfff) {
    const p = c.dataAddr(seg, off, 2, true);
    c.mem.write16(p, v);
    return p;
  }
  c.writeMem16(seg, off, v);
  return -1;
}
/** writeMem32; returns the physical address, or -1 for a page-crossing write (done by cpu). */
function wr32(c: Cpu, seg: number, off: number, v: number): number {
  const lin = (c.segBase[seg]! + off) >>> 0;
  if ((lin & 0xfff) <= 0xffc) {
    const p = c.dataAddr(seg, off, 4, true);
    c.mem.write32(p, v);
    return p;
  }
  c.writeMem32(seg, off, v);
  return -1;
}
/** The address half of readRMW8. */
function rmw8(c: Cpu, seg: number, off: number): number {
  return c.dataAddr(seg, off, 1, true);
}
/** The address half of readRMW16: -1 where readRMW16 takes its split path. */
function rmw16(c: Cpu, seg: number, off: number): number {
  if (((c.segBase[seg]! + off) & 0xfff) > 0xffe) return -1; // linear, as readRMW16
  return c.dataAddr(seg, off, 2, true);
}
/** The address half of readRMW32: -1 where readRMW32 takes its split path. */
function rmw32(c: Cpu, seg: number, off: number): number {
  const lin = (c.segBase[seg]! + off) >>> 0;
  if ((lin & 0xfff) > 0xffc) return -1;
  return c.dataAddr(seg, off, 4, true);
}
/** The split path of readRMW16/32: through the CPU's own code, which then writes back too. */
function rmwSlow16(c: Cpu, seg: number, off: number): number {
  c.modrmMod = 0; c.eaSeg = seg; c.eaOffset = off;
  return c.readRMW16();
}
function rmwSlow32(c: Cpu, seg: number, off: number): number {
  c.modrmMod = 0; c.eaSeg = seg; c.eaOffset = off;
  return c.readRMW32();
}

const NOT_ARITH = ~ARITH;
/** IMUL r16 (ops-arith.ts imul16): SF ZF PF from the low half, CF = OF = overflow, AF = 0. */
function imul16(c: Cpu, a: number, b: number): number {
  const p = ((a << 16) >> 16) * ((b << 16) >> 16);
  const lo = p & 0xffff;
  c.flags = (c.flags & NOT_ARITH) | szp16(lo) | (p !== ((lo << 16) >> 16) ? CF | OF : 0);
  return lo;
}
/** IMUL r32 (ops-arith.ts imul32). */
function imul32(c: Cpu, a: number, b: number): number {
  const r = Math.imul(a, b);
  c.flags = (c.flags & NOT_ARITH) | szp32(r) | (a * b !== r ? CF | OF : 0);
  return r;
}

const HELPERS: Record<string, unknown> = {
  add8, add16, add32, sub8, sub16, sub32, logic8, logic16, logic32, inc8, inc16, inc32,
  dec8, dec16, dec32, shift, imul16, imul32, H: HANDLERS, wr8, wr16, wr32, rmw8, rmw16, rmw32, rmwSlow16, rmwSlow32,
};
const HELPER_NAMES = Object.keys(HELPERS);
const HELPER_VALUES = HELPER_NAMES.map((k) => HELPERS[k]);

// ---- decoding ----

/** Thrown while decoding when an instruction runs past the bytes the block may use. */
const NO_FIT = Symbol('no fit');

const DS = 3, SS = 2;

interface Modrm {
  mod: number;
  reg: number;
  rm: number;
  /** JS expression of the effective address (an offset in `seg`), memory forms only. */
  ea: string;
  seg: number;
}

/** Expression of the condition `cc` (Jcc/SETcc/CMOVcc low nibble) on `c.flags`. */
function cond(cc: number): string {
  const f = 'c.flags';
  let e: string;
  switch (cc >> 1) {
    case 0: e = `(${f} & 2048) !== 0`; break; // O
    case 1: e = `(${f} & 1) !== 0`; break; // B
    case 2: e = `(${f} & 64) !== 0`; break; // E
    case 3: e = `(${f} & 65) !== 0`; break; // BE
    case 4: e = `(${f} & 128) !== 0`; break; // S
    case 5: e = `(${f} & 4) !== 0`; break; // P
    case 6: e = `((${f} ^ (${f} >>> 4)) & 128) !== 0`; break; // L: SF != OF
    default: e = `((${f} & 64) !== 0 || ((${f} ^ (${f} >>> 4)) & 128) !== 0)`; break; // LE
  }
  return (cc & 1) !== 0 ? `!(${e})` : `(${e})`;
}

function regIdx8(r: number): number { return r < 4 ? r << 2 : ((r - 4) << 2) + 1; }
/** Register operand `r` of width `w` as an expression (8/16 unsigned, 32 int32). */
function reg(w: number, r: number): string {
  return w === 32 ? `r32[${r}]` : w === 16 ? `r16[${r << 1}]` : `r8[${regIdx8(r)}]`;
}
/** Group-1 operation `op` on `a`, `b` of width `w` (flags set by the alu.ts helpers). */
function alu(w: number, op: number, a: string, b: string): string {
  switch (op) {
    case 0: return `add${w}(c, ${a}, ${b}, 0)`;
    case 1: return `logic${w}(c, ${a} | ${b})`;
    case 2: return `add${w}(c, ${a}, ${b}, c.flags & 1)`;
    case 3: return `sub${w}(c, ${a}, ${b}, c.flags & 1)`;
    case 4: return `logic${w}(c, ${a} & ${b})`;
    case 5: case 7: return `sub${w}(c, ${a}, ${b}, 0)`;
    default: return `logic${w}(c, ${a} ^ ${b})`;
  }
}

/** One decoded instruction's code and what the block wrapper must know about it. */
interface Emitted {
  /** Statements of the instruction proper (the cost and counting are added around them). */
  body: string;
  /** Handler-table index (cost lookup). */
  idx: number;
  /** ModR/M memory operand (charges cost.memOperand). */
  memOperand: boolean;
  /** Index into cost.groupExtra that the handler charges (Cpu.chargeGroup), or -1. */
  group: number;
  /** May fault: `instrStart` must be set first. */
  faults: boolean;
  /** May have written to this block's own bytes (sets `h`). */
  writes: boolean;
  /**
   * How it ends: 'next' falls through; 'jcc' has emitted its own taken path (which leaves or
   * loops) and falls through when not taken; 'jump' has emitted its own exit (block ends);
   * 'callnext' ran the interpreter's handler and goes on when EIP is the next instruction
   * ('callnextw': and the rest of the block's bytes are unchanged);
   * 'callend' ran the interpreter's handler and the block ends (EIP is what it left);
   * 'callwrapped' ran an overlay's entry through `cpu.table` (see `BlockLimits.wrapped`).
   */
  kind: 'next' | 'jcc' | 'jump' | 'callnext' | 'callnextw' | 'callend' | 'callwrapped';
}

/** Limits for one block. */
export interface BlockLimits {
  /** Most instructions in a block. */
  maxInstructions: number;
  /**
   * Handler-table indices whose entry in the CPU's table is not the native handler (a
   * monitor's or a tracer's wrapper; see `wrappedIndices`), or null for the native table.
   * Such an instruction is never transcribed nor called as a native handler: the block calls
   * it through `cpu.table`, so the wrapper runs exactly as when interpreted. The block goes
   * on after it (at the next instruction, or from its start when the wrapper jumped there)
   * only when everything its code and its entry assumed still holds, tested afresh: the same
   * table, no pending work for the run loop (attention, device event, budget), the same
   * CS.D/SS.B, the fetch window still mapping that EIP to the same physical byte, the CS
   * limit, and the block's bytes unchanged; otherwise it leaves, as the run loop would.
   */
  wrapped?: Uint8Array | null;
}

/**
 * The indices at which `table` differs from the native `HANDLERS` (1: wrapped). Computed once
 * per table (it is compared entry by entry), so the compiler pays one byte load per
 * instruction it decodes and the run loop nothing.
 */
export function wrappedIndices(table: readonly unknown[]): Uint8Array {
  const w = new Uint8Array(HANDLERS.length);
  for (let i = 0; i < HANDLERS.length; i++) if (table[i] !== HANDLERS[i]) w[i] = 1;
  return w;
}

/**
 * Compiles the block that starts at `eip` (physical `phys`) for the CPU's current CS.D and
 * SS.B. Returns null when the first instruction is not one the compiler handles.
 */
export function compileBlock(cpu: Cpu, phys: number, eip: number, limits: BlockLimits): CompiledBlock | null {
  const ram = cpu.mem.u8;
  const cs32 = cpu.cs32, ss32 = cpu.ss32;
  const wrapped = limits.wrapped ?? null;
  // Bytes usable: to the end of the 4 KiB page, and not past the CS limit.
  const pageLeft = 4096 - (phys & 0xfff);
  const limitLeft = cpu.segHi[1]! - eip + 1;
  const avail = Math.min(pageLeft, limitLeft, cpu.mem.size - phys);
  if (avail <= 0) return null;

  let lastLeave = '';
  /** The shared exit's table: EIP and instrStart for each `x`. */
  const exitEip: number[] = [], exitStart: number[] = [];
  let pos = 0; // offset of the next byte to decode from the block start
  const byte = (): number => {
    if (pos >= avail) throw NO_FIT;
    return ram[phys + pos++]!;
  };
  const u16 = (): number => byte() | (byte() << 8);
  const s32 = (): number => byte() | (byte() << 8) | (byte() << 16) | (byte() << 24);
  const s8 = (): number => (byte() << 24) >> 24;

  // Per-instruction prefix state.
  let os32 = cs32, as32 = cs32, segOv = -1;

  const modrm = (): Modrm => {
    const m = byte();
    const mod = m >> 6, regf = (m >> 3) & 7, rm = m & 7;
    if (mod === 3) return { mod, reg: regf, rm, ea: '', seg: -1 };
    let seg = DS;
    let ea: string;
    if (as32) {
      const parts: string[] = [];
      let disp = 0;
      if (rm === 4) {
        const sib = byte();
        const base = sib & 7, index = (sib >> 3) & 7, scale = sib >> 6;
        if (base === 5 && mod === 0) disp = s32();
        else {
          parts.push(`r32[${base}]`);
          if (base === 4 || base === 5) seg = SS;
        }
        if (index !== 4) parts.push(scale !== 0 ? `(r32[${index}] << ${scale})` : `r32[${index}]`);
      } else if (rm === 5 && mod === 0) {
        disp = s32();
      } else {
        parts.push(`r32[${rm}]`);
        if (rm === 5) seg = SS;
      }
      if (mod === 1) disp += s8();
      else if (mod === 2) disp += s32();
      if (parts.length === 0) ea = String(disp >>> 0);
      else ea = `((${parts.join(' + ')}${disp !== 0 ? ` + ${disp}` : ''}) >>> 0)`;
    } else {
      const R = (r: number): string => `r16[${r << 1}]`;
      let sum: string;
      let disp = 0;
      switch (rm) {
        case 0: sum = `${R(3)} + ${R(6)}`; break;
        case 1: sum = `${R(3)} + ${R(7)}`; break;
        case 2: sum = `${R(5)} + ${R(6)}`; seg = SS; break;
        case 3: sum = `${R(5)} + ${R(7)}`; seg = SS; break;
        case 4: sum = R(6); break;
        case 5: sum = R(7); break;
        case 6:
          if (mod === 0) { sum = ''; disp = u16(); } else { sum = R(5); seg = SS; }
          break;
        default: sum = R(3); break;
      }
      if (mod === 1) disp += s8();
      else if (mod === 2) disp += u16();
      if (sum === '') ea = String(disp & 0xffff);
      else ea = `((${sum}${disp !== 0 ? ` + ${disp}` : ''}) & 65535)`;
    }
    return { mod, reg: regf, rm, ea, seg: segOv >= 0 ? segOv : seg };
  };

  // ---- operand emitters ----
  /** Reads r/m (no write intent): statements that leave its value in `tmp`, or '' and the register. */
  const rmRead = (w: number, m: Modrm, tmp: string): [string, string] =>
    m.mod === 3 ? ['', reg(w, m.rm)] : [`${tmp} = c.readMem${w}(${m.seg}, ${m.ea});`, tmp];
  /** The SMC test after a write of `size` bytes at physical `p` (-1: unknown). */
  const hit = (size: number): string => `if (p < 0 || ((p - ${phys - size + 1}) >>> 0) < LEN + ${size - 1}) h = 1;`;
  /** Writes `v` (an expression without side effects) to r/m. */
  const rmWrite = (w: number, m: Modrm, v: string): string =>
    m.mod === 3 ? `${reg(w, m.rm)} = ${v};` : `e = ${m.ea}; p = wr${w}(c, ${m.seg}, e, ${v}); ${hit(w >> 3)}`;
  /** Read half of a read-modify-write of r/m: value into `a`. */
  const rmwRead = (w: number, m: Modrm): string => {
    if (m.mod === 3) return `a = ${reg(w, m.rm)};`;
    if (w === 8) return `e = ${m.ea}; p = rmw8(c, ${m.seg}, e); a = M.read8(p);`;
    return `e = ${m.ea}; p = rmw${w}(c, ${m.seg}, e); a = p >= 0 ? M.read${w}(p) : rmwSlow${w}(c, ${m.seg}, e);`;
  };
  /** Write half: stores `t` (already computed). */
  const rmwWrite = (w: number, m: Modrm): string => {
    if (m.mod === 3) return `${reg(w, m.rm)} = t;`;
    if (w === 8) return `M.write8(p, t); ${hit(1)}`;
    return `if (p >= 0) { M.write${w}(p, t); ${hit(w >> 3)} } else { c.writeRMW${w}(t); h = 1; }`;
  };
  const spExpr = ss32 ? '(r32[4] >>> 0)' : 'r16[8]';
  const setSp = (v: string): string => (ss32 ? `r32[4] = ${v};` : `r16[8] = ${v};`);
  /** Pushes the value in `v` (a temp already holding it) with operand width w. */
  const push = (w: number, v: string): string => {
    const n = w >> 3;
    const nsp = ss32 ? `(r32[4] - ${n}) >>> 0` : `(r16[8] - ${n}) & 65535`;
    return `t = ${nsp}; p = wr${w}(c, 2, t, ${v}); ${hit(n)} ${setSp('t')}`;
  };
  /** Pops into `a`. */
  const pop = (w: number): string => {
    const n = w >> 3;
    return `t = ${spExpr}; a = c.readMem${w}(2, t); ${setSp(ss32 ? `t + ${n}` : `(t + ${n}) & 65535`)}`;
  };
  /** Near-branch target check (nearTarget): `v` holds the truncated target. */
  const limitCheck = (v: string): string => `if (${v} > SH[1]) c.raise(13, 0);`;
  /** The same for a constant target in an instruction that cannot fault otherwise. */
  const lazyLimitCheck = (t: number): string =>
    `if (${t} > SH[1]) { c.cycles = cy; c.instructions = n; c.instrStart = START; c.raise(13, 0); }`;

  /**
   * Decodes and emits one instruction at `pos`: a transcription, or a call of the
   * interpreter's handler. Returns null (the block ends before it) only for an instruction
   * with so many prefixes that the interpreter must see it; throws NO_FIT when it does not
   * fit in the block's bytes. `next()` is the EIP after the bytes decoded so far.
   */
  const one = (next: () => number): Emitted | null => {
    os32 = cs32; as32 = cs32; segOv = -1;
    let rep = 0, lock = false;
    let op = byte();
    for (let n = 0; ; n++) {
      if (n >= 14) return null; // the interpreter raises #GP for over-long instructions
      if (op === 0x66) os32 = !cs32;
      else if (op === 0x67) as32 = !cs32;
      else if (op === 0x26) segOv = 0;
      else if (op === 0x2e) segOv = 1;
      else if (op === 0x36) segOv = 2;
      else if (op === 0x3e) segOv = 3;
      else if (op === 0x64) segOv = 4;
      else if (op === 0x65) segOv = 5;
      else if (op === 0xf0) lock = true;
      else if (op === 0xf2 || op === 0xf3) rep = op;
      else break;
      op = byte();
    }
    if (op === 0x0f) op = 0x100 | byte();
    const w = os32 ? 32 : 16;
    const idx = os32 ? op | 0x200 : op;
    const r: Emitted = { body: '', idx, memOperand: false, group: -1, faults: false, writes: false, kind: 'next' };
    const afterOpcode = eip + pos;
    /**
     * Runs the interpreter's own handler for this instruction, with the decode state runBlock
     * would have set (the handler fetches its operands itself). `cont`: the instruction only
     * touches general registers, status flags, EIP and reads memory, and its full length is
     * decoded, so the block may go on after it.
     */
    const call = (cont: boolean, through = 'H'): Emitted => {
      r.faults = true; r.memOperand = false; r.group = -1; r.writes = false; // the handler charges these itself
      r.kind = cont ? 'callnext' : 'callend';
      r.body = `c.segOverride = ${segOv}; c.rep = ${rep}; c.lock = ${lock}; c.opsize32 = ${os32}; c.addrsize32 = ${as32}; c.eip = ${afterOpcode}; ${through}[${idx}](c);`;
      return r;
    };
    // An overlay's wrapper: through the CPU's table, and the block ends after it (a wrapper
    // may exit to its monitor, flush TLBs, change modes: nothing the block baked in holds).
    if (wrapped !== null && wrapped[idx] !== 0) { call(false, 'c.table'); r.kind = 'callwrapped'; return r; }
    const callW = (): Emitted => { call(true); r.kind = 'callnextw'; return r; };
    const callOr = (e: Emitted | null): Emitted => e ?? call(false);
    if (lock || rep !== 0) return call(false);
    // Handler calls that may stay in the block: decode the operands for the length only.
    const modrmOnly = (): Modrm => modrm();
    if ((op === 0xf6 || op === 0xf7) && peekReg() >= 4) { modrmOnly(); return call(true); }
    if (op === 0x1a3 || op === 0x1bc || op === 0x1bd || (op >= 0x1c8 && op <= 0x1cf)
      || op === 0x27 || op === 0x2f || op === 0x37 || op === 0x3f || op === 0xd6 || op === 0x9e
      || op === 0x9f || op === 0xd7) {
      if (op === 0x1a3 || op === 0x1bc || op === 0x1bd) modrmOnly();
      return call(true);
    }
    if (op === 0xd4 || op === 0xd5) { byte(); return call(true); }
    if ((op === 0x1ab || op === 0x1b3 || op === 0x1bb || op === 0x1a5 || op === 0x1ad || op === 0x1c0
      || op === 0x1c1 || op === 0x1b0 || op === 0x1b1 || op === 0x8c) && peekMod() === 3) {
      modrmOnly();
      return call(true);
    }
    if ((op === 0x1a4 || op === 0x1ac) && peekMod() === 3) { modrmOnly(); byte(); return call(true); }
    if (op === 0x1ba && peekMod() === 3) { modrmOnly(); byte(); return call(true); }
    // Handler calls that may write memory (or load DS/ES/FS/GS): the block goes on after
    // re-checking its remaining bytes (the write may have hit them). Port I/O is not here:
    // a device may change anything, so the block ends after it.
    if (op === 0x06 || op === 0x0e || op === 0x16 || op === 0x1e || op === 0x1a0 || op === 0x1a8
      || op === 0x07 || op === 0x1f || op === 0x1a1 || op === 0x1a9 || op === 0x60 || op === 0x9c
      || (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf)) {
      return callW();
    }
    if (op === 0x61) return call(true);
    if (op === 0xc8) { u16(); byte(); return callW(); }
    if (op === 0x8e) {
      const sreg = peekReg();
      if (sreg === 0 || sreg === 3 || sreg === 4 || sreg === 5) { modrmOnly(); return callW(); }
      return call(false);
    }
    if (op === 0x8f || op === 0x1ab || op === 0x1b3 || op === 0x1bb || op === 0x1a5 || op === 0x1ad
      || op === 0x1c0 || op === 0x1c1 || op === 0x1b0 || op === 0x1b1 || op === 0x8c || op === 0x1c7) {
      modrmOnly();
      return callW();
    }
    if (op === 0x1a4 || op === 0x1ac || op === 0x1ba) { modrmOnly(); byte(); return callW(); }
    return callOr(transcribe(op, w, r, next));
  };

  /** The ModR/M byte's mod / reg fields without consuming it. */
  const peekMod = (): number => { if (pos >= avail) throw NO_FIT; return ram[phys + pos]! >> 6; };
  const peekReg = (): number => { if (pos >= avail) throw NO_FIT; return (ram[phys + pos]! >> 3) & 7; };

  /** Emits the transcription of `op`, or returns null when the compiler has none. */
  const transcribe = (op: number, w: number, r: Emitted, next: () => number): Emitted | null => {
    const useM = (m: Modrm): Modrm => {
      if (m.mod !== 3) { r.memOperand = true; r.faults = true; }
      return m;
    };
    const imm = (width: number): number => (width === 8 ? byte() : width === 16 ? u16() : s32());
    const ss = (...parts: string[]): string => parts.filter((x) => x !== '').join(' ');

    // ---- one-byte opcodes ----
    if (op < 0x40 && (op & 7) < 6) {
      const aop = op >> 3;
      switch (op & 7) {
        case 0: case 1: { // Eb,Gb / Ev,Gv
          const ww = (op & 7) === 0 ? 8 : w;
          const m = useM(modrm());
          if (m.mod !== 3 && aop !== 7) r.writes = true;
          if (aop === 7) {
            const [pre, a] = rmRead(ww, m, 'a');
            r.body = ss(pre, `${alu(ww, 7, a, reg(ww, m.reg))};`);
          } else {
            r.body = ss(rmwRead(ww, m), `t = ${alu(ww, aop, 'a', reg(ww, m.reg))};`, rmwWrite(ww, m));
          }
          return r;
        }
        case 2: case 3: { // Gb,Eb / Gv,Ev
          const ww = (op & 7) === 2 ? 8 : w;
          const m = useM(modrm());
          const [pre, b] = rmRead(ww, m, 'b');
          const x = alu(ww, aop, reg(ww, m.reg), b);
          r.body = ss(pre, aop === 7 ? `${x};` : `${reg(ww, m.reg)} = ${x};`);
          return r;
        }
        case 4: { // AL,Ib
          const x = alu(8, aop, 'r8[0]', String(byte()));
          r.body = aop === 7 ? `${x};` : `r8[0] = ${x};`;
          return r;
        }
        default: { // eAX,Iz
          const x = alu(w, aop, reg(w, 0), String(imm(w)));
          r.body = aop === 7 ? `${x};` : `${reg(w, 0)} = ${x};`;
          return r;
        }
      }
    }
    if (op >= 0x40 && op <= 0x4f) {
      const rr = op & 7;
      r.body = `${reg(w, rr)} = ${op < 0x48 ? 'inc' : 'dec'}${w}(c, ${reg(w, rr)});`;
      return r;
    }
    if (op >= 0x50 && op <= 0x57) {
      r.faults = true; r.writes = true;
      r.body = ss(`v = ${reg(w, op & 7)};`, push(w, 'v'));
      return r;
    }
    if (op >= 0x58 && op <= 0x5f) {
      r.faults = true;
      r.body = ss(pop(w), `${reg(w, op & 7)} = a;`);
      return r;
    }
    if (op === 0x68 || op === 0x6a) {
      r.faults = true; r.writes = true;
      const v = op === 0x6a ? s8() : imm(w);
      r.body = ss(`v = ${v};`, push(w, 'v'));
      return r;
    }
    if (op === 0x69 || op === 0x6b || op === 0x1af) {
      const m = useM(modrm());
      const iv = op === 0x69 ? imm(w) : op === 0x6b ? s8() : 0;
      const [pre, x] = rmRead(w, m, 'b');
      r.body = op === 0x1af
        ? ss(pre, `${reg(w, m.reg)} = imul${w}(c, ${reg(w, m.reg)}, ${x});`)
        : ss(pre, `${reg(w, m.reg)} = imul${w}(c, ${x}, ${iv});`);
      return r;
    }
    if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f)) {
      const rel = op < 0x100 ? s8() : os32 ? s32() : u16();
      const n = next();
      const t = os32 ? (n + rel) >>> 0 : (n + rel) & 0xffff;
      // Faults only when the target is beyond the CS limit: state is written back there.
      r.kind = 'jcc';
      r.body = `if (${cond(op & 15)}) { ${lazyLimitCheck(t)} TAKEN(${t}) }`;
      return r;
    }
    if (op >= 0x80 && op <= 0x83) {
      const ww = op === 0x81 || op === 0x83 ? w : 8;
      const m = useM(modrm());
      const aop = m.reg;
      let b: number;
      if (ww === 8) b = byte();
      else if (op === 0x83) b = ww === 16 ? s8() & 0xffff : s8();
      else b = imm(ww);
      if (aop === 7) {
        const [pre, a] = rmRead(ww, m, 'a');
        r.body = ss(pre, `${alu(ww, 7, a, String(b))};`);
      } else {
        if (m.mod !== 3) r.writes = true;
        r.body = ss(rmwRead(ww, m), `t = ${alu(ww, aop, 'a', String(b))};`, rmwWrite(ww, m));
      }
      return r;
    }
    if (op === 0x84 || op === 0x85) {
      const ww = op === 0x84 ? 8 : w;
      const m = useM(modrm());
      const [pre, a] = rmRead(ww, m, 'a');
      r.body = ss(pre, `logic${ww}(c, ${a} & ${reg(ww, m.reg)});`);
      return r;
    }
    if (op === 0x86 || op === 0x87) {
      const ww = op === 0x86 ? 8 : w;
      const m = useM(modrm());
      if (m.mod !== 3) r.writes = true;
      r.body = ss(rmwRead(ww, m), `t = ${reg(ww, m.reg)};`, rmwWrite(ww, m), `${reg(ww, m.reg)} = a;`);
      return r;
    }
    if (op >= 0x88 && op <= 0x8b) {
      const ww = (op & 1) === 0 ? 8 : w;
      const m = useM(modrm());
      if (op <= 0x89) {
        if (m.mod !== 3) r.writes = true;
        r.body = rmWrite(ww, m, reg(ww, m.reg));
      } else {
        const [pre, x] = rmRead(ww, m, 'a');
        r.body = ss(pre, `${reg(ww, m.reg)} = ${x};`);
      }
      return r;
    }
    if (op === 0x8d) {
      const m = modrm();
      if (m.mod === 3) return null; // #UD
      r.memOperand = true; // decodeModrm charges it, though LEA does not access memory
      r.body = `${reg(w, m.reg)} = ${m.ea};`;
      return r;
    }
    if (op === 0x90) return r;
    if (op > 0x90 && op <= 0x97) {
      const rr = op & 7;
      r.body = `t = ${reg(w, 0)}; ${reg(w, 0)} = ${reg(w, rr)}; ${reg(w, rr)} = t;`;
      return r;
    }
    if (op === 0x98) {
      r.body = os32 ? 'r32[0] = (r16[0] << 16) >> 16;' : 'r16[0] = (r8[0] << 24) >> 24;';
      return r;
    }
    if (op === 0x99) {
      r.body = os32 ? 'r32[2] = r32[0] >> 31;' : 'r16[4] = (r16[0] & 32768) !== 0 ? 65535 : 0;';
      return r;
    }
    if (op >= 0xa0 && op <= 0xa3) {
      const off = as32 ? s32() >>> 0 : u16();
      const seg = segOv >= 0 ? segOv : DS;
      const ww = (op & 1) === 0 ? 8 : w;
      r.faults = true;
      if (op <= 0xa1) r.body = `${reg(ww, 0)} = c.readMem${ww}(${seg}, ${off});`;
      else { r.writes = true; r.body = `p = wr${ww}(c, ${seg}, ${off}, ${reg(ww, 0)}); ${hit(ww >> 3)}`; }
      return r;
    }
    if (op === 0xa8) { r.body = `logic8(c, r8[0] & ${byte()});`; return r; }
    if (op === 0xa9) { r.body = `logic${w}(c, ${reg(w, 0)} & ${imm(w)});`; return r; }
    if (op >= 0xb0 && op <= 0xb7) { r.body = `${reg(8, op & 7)} = ${byte()};`; return r; }
    if (op >= 0xb8 && op <= 0xbf) { r.body = `${reg(w, op & 7)} = ${imm(w)};`; return r; }
    if (op === 0xc0 || op === 0xc1 || op === 0xd0 || op === 0xd1 || op === 0xd2 || op === 0xd3) {
      const ww = (op & 1) === 0 ? 8 : w;
      const m = useM(modrm());
      const sop = m.reg;
      if (op === 0xd2 || op === 0xd3) {
        if (m.mod !== 3) r.writes = true;
        r.body = ss('b = r8[4];', rmwRead(ww, m),
          `if ((b & 31) !== 0) { t = shift(c, ${sop}, a, b, ${ww}); ${rmwWrite(ww, m)} }`);
      } else {
        const count = op <= 0xc1 ? byte() : 1;
        if ((count & 31) === 0) r.body = rmwRead(ww, m);
        else {
          if (m.mod !== 3) r.writes = true;
          r.body = ss(rmwRead(ww, m), `t = shift(c, ${sop}, a, ${count}, ${ww});`, rmwWrite(ww, m));
        }
      }
      return r;
    }
    if (op === 0xc2 || op === 0xc3) {
      const extra = op === 0xc2 ? u16() : 0;
      const n = w >> 3;
      r.faults = true; r.kind = 'jump';
      const tr = os32 ? 'a >>> 0' : 'a & 65535';
      const nsp = ss32 ? `(t + ${n + extra}) >>> 0` : `(t + ${n + extra}) & 65535`;
      r.body = `t = ${spExpr}; a = c.readMem${w}(2, t); v = ${tr}; ${limitCheck('v')} ${setSp(nsp)} c.cycles += BT; JUMP(v)`;
      return r;
    }
    if (op === 0xc6 || op === 0xc7) {
      const ww = op === 0xc6 ? 8 : w;
      const m = useM(modrm());
      if (m.reg !== 0) return null; // #UD
      if (m.mod !== 3) r.writes = true;
      r.body = rmWrite(ww, m, String(imm(ww)));
      return r;
    }
    if (op === 0xc9) {
      r.faults = true;
      const n = w >> 3;
      const bp = ss32 ? '(r32[5] >>> 0)' : 'r16[10]';
      r.body = `t = ${bp}; a = c.readMem${w}(2, t); ${setSp(ss32 ? `(t + ${n}) >>> 0` : `(t + ${n}) & 65535`)} ${reg(w, 5)} = a;`;
      return r;
    }
    if (op === 0xe8 || op === 0xe9 || op === 0xeb) {
      const rel = op === 0xeb ? s8() : imm(w);
      const n = next();
      const t = os32 ? (n + rel) >>> 0 : (n + rel) & 0xffff;
      r.kind = 'jump';
      if (op === 0xe8) {
        r.faults = true; r.writes = true;
        r.body = ss(limitCheck(String(t)), `v = ${n};`, push(w, 'v'), `c.cycles += BT; JUMP(${t})`);
      } else {
        r.body = ss(lazyLimitCheck(t), `cy += BT; JUMP(${t})`);
      }
      return r;
    }
    if (op === 0xf5) { r.body = 'c.flags ^= 1;'; return r; }
    if (op === 0xf8) { r.body = 'c.flags &= -2;'; return r; }
    if (op === 0xf9) { r.body = 'c.flags |= 1;'; return r; }
    if (op === 0xfc) { r.body = 'c.flags &= -1025;'; return r; }
    if (op === 0xfd) { r.body = 'c.flags |= 1024;'; return r; }
    if (op === 0xf6 || op === 0xf7) {
      const ww = op === 0xf6 ? 8 : w;
      const m = useM(modrm());
      r.group = (r.idx << 3) | m.reg;
      if (m.reg <= 1) {
        const iv = imm(ww);
        const [pre, a] = rmRead(ww, m, 'a');
        r.body = ss(pre, `logic${ww}(c, ${a} & ${iv});`);
        return r;
      }
      if (m.reg === 2 || m.reg === 3) {
        if (m.mod !== 3) r.writes = true;
        const x = m.reg === 2 ? (ww === 32 ? '~a' : `~a & ${ww === 8 ? 255 : 65535}`) : `sub${ww}(c, 0, a, 0)`;
        r.body = ss(rmwRead(ww, m), `t = ${x};`, rmwWrite(ww, m));
        return r;
      }
      return null;
    }
    if (op === 0xfe || op === 0xff) {
      const ww = op === 0xfe ? 8 : w;
      const m = modrm();
      if (op === 0xff) r.group = (r.idx << 3) | m.reg;
      if (m.reg <= 1) {
        useM(m);
        if (m.mod !== 3) r.writes = true;
        r.body = ss(rmwRead(ww, m), `t = ${m.reg === 0 ? 'inc' : 'dec'}${ww}(c, a);`, rmwWrite(ww, m));
        return r;
      }
      if (op === 0xfe) return null;
      if (m.reg === 2 || m.reg === 4) {
        useM(m);
        const n = next();
        r.faults = true; r.kind = 'jump';
        const [pre, x] = rmRead(w, m, 'a');
        const tv = `v = ${os32 ? `${x} >>> 0` : `${x} & 65535`};`;
        if (m.reg === 2) {
          r.writes = true;
          r.body = ss(pre, tv, limitCheck('v'), `b = ${n};`, push(w, 'b'), 'c.cycles += BT; JUMP(v)');
        } else {
          r.body = ss(pre, tv, limitCheck('v'), 'c.cycles += BT; JUMP(v)');
        }
        return r;
      }
      if (m.reg === 6) {
        useM(m);
        r.faults = true; r.writes = true;
        const [pre, x] = rmRead(w, m, 'v');
        r.body = ss(pre, x === 'v' ? '' : `v = ${x};`, push(w, 'v'));
        return r;
      }
      return null;
    }
    // ---- 0F xx ----
    if (op >= 0x190 && op <= 0x19f) {
      const m = useM(modrm());
      if (m.mod !== 3) r.writes = true;
      r.body = rmWrite(8, m, `(${cond(op & 15)} ? 1 : 0)`);
      return r;
    }
    if (op >= 0x140 && op <= 0x14f) {
      const m = useM(modrm());
      const [pre, x] = rmRead(w, m, 'a');
      r.body = ss(pre, `if (${cond(op & 15)}) ${reg(w, m.reg)} = ${x};`);
      return r;
    }
    if (op === 0x1b6 || op === 0x1b7 || op === 0x1be || op === 0x1bf) {
      const sw = op === 0x1b6 || op === 0x1be ? 8 : 16;
      const m = useM(modrm());
      const [pre, x] = rmRead(sw, m, 'a');
      let v = x;
      if (op === 0x1be) v = `(${x} << 24) >> 24`;
      else if (op === 0x1bf && w === 32) v = `(${x} << 16) >> 16`;
      r.body = ss(pre, `${reg(w, m.reg)} = ${v};`);
      return r;
    }
    return null;
  };

  // ---- the block ----
  const parts: string[] = [];
  let count = 0;
  let ended = false;
  let trivial = false;
  /** The fall-through tail of the last instruction emitted (replaced when the block goes on). */
  let tail = '';
  while (count < limits.maxInstructions) {
    const begin = pos;
    const start = eip + begin;
    let e: Emitted | null;
    try {
      e = one(() => eip + pos);
    } catch (x) {
      if (x !== NO_FIT) throw x;
      e = null;
    }
    if (e === null) { pos = begin; break; }
    if (pos - begin > 15) { pos = begin; break; } // over-long: the interpreter's business
    const next = eip + pos;
    // Transcribed instructions cannot change `attention` or `nextEventCycle` (they call no
    // device or event code), so only a handler call makes the block look at them again.
    // `cy` and `n` hold cpu.cycles and cpu.instructions in locals; they are written back
    // before anything that may read them, charge cycles (page walks, handlers) or throw,
    // and reloaded after it.
    const isCall = e.kind === 'callnext' || e.kind === 'callnextw' || e.kind === 'callwrapped';
    const sync = 'c.cycles = cy; c.instructions = n;';
    const reload = e.faults ? 'cy = c.cycles; ' : '';
    const exitTest = isCall
      ? 'c.attention !== 0 || cy >= (NE = c.nextEventCycle) || n >= target'
      : `cy >= NE || n >= target${e.writes ? ' || h !== 0' : ''}`;
    /** Leaves the block with EIP `to`: through the shared exit when `to` is a constant. */
    const leave = (to: string | number): string => {
      if (typeof to === 'string') return `{ ${sync} c.eip = ${to}; c.instrStart = ${start}; return true; }`;
      let k = 0;
      while (k < exitEip.length && (exitEip[k] !== to || exitStart[k] !== start)) k++;
      if (k === exitEip.length) { exitEip.push(to); exitStart.push(start); }
      return `{ x = ${k}; break out; }`;
    };
    /** Taken branch to `to`: count the instruction, loop when it is this block's start. */
    const branchTo = (to: string | number): string => (to === eip
      ? `${reload}n++; if (!(${exitTest})) continue; ${leave(to)}`
      : `${reload}n++; ${leave(to)}`);
    let body = e.body;
    body = body.replace(/TAKEN\((\d+)\)/, (_s, t: string) => `${e.faults ? 'c.cycles' : 'cy'} += BT; ${branchTo(Number(t))}`);
    body = body.replace('c.instrStart = START;', `c.instrStart = ${start};`);
    body = body.replace(/JUMP\(([^)]*)\)/, (_s, t: string) => branchTo(/^\d+$/.test(t) ? Number(t) : t));
    if (tail !== '') parts.push(tail);
    const cost = `cy += B[${e.idx}]${e.memOperand ? ' + MO' : ''}${e.group >= 0 ? ` + G[${e.group}]` : ''};`;
    parts.push(`// ${start.toString(16)}`);
    parts.push(e.faults ? `${cost} ${sync} c.instrStart = ${start}; ${body}` : `${cost} ${body}`);
    count++;
    if (e.kind === 'jump') { ended = true; tail = ''; break; }
    if (e.kind === 'callend' || (e.kind === 'callwrapped' && count === 1)) { if (count === 1) trivial = true; parts.push('c.instructions++; return true;'); ended = true; tail = ''; break; }
    if (e.kind === 'callwrapped') {
      // What the block's entry checked and its code assumes (see BlockLimits.wrapped).
      const guard = `c.table === TBL && c.attention === 0 && cy < (NE = c.nextEventCycle) && n < target && c.cs32 === ${cs32} && c.ss32 === ${ss32} && SH[1] >= ${eip} + LEN - 1`;
      const again = `if (c.eip === ${eip} && ${guard} && c.fetchPhys() === ${phys} && !(REST(0))) continue;`;
      const stay = `c.eip === ${next} && ${guard} && c.fetchPhys() === ${phys + pos} && !(REST(${pos}))`;
      tail = `cy = c.cycles; n = c.instructions + 1; ${again} if (!(${stay})) { c.instructions = n; return true; }`;
      lastLeave = `cy = c.cycles; n = c.instructions + 1; ${again} c.instructions = n; return true;`;
      continue;
    }
    if (isCall) {
      const rest = e.kind === 'callnextw' ? ` || REST(${pos})` : '';
      // Handlers may change the instruction count too (a REP string op left for re-execution
      // takes its count back), so it is reloaded like the cycles.
      tail = `cy = c.cycles; n = c.instructions + 1; if (c.eip !== ${next} || ${exitTest}${rest}) { c.instructions = n; return true; }`;
      lastLeave = 'c.instructions++; return true;';
      continue;
    }
    tail = `${reload}n++; if (${exitTest}) ${leave(next)}`;
    // If this is the last instruction, the block always leaves after it.
    lastLeave = `${reload}n++; ${leave(next)}`;
  }
  if (count === 0) return null;
  if (trivial) return { fn: () => false, length: pos, count, source: '', trivial };
  if (!ended) parts.push(lastLeave);
  const length = pos;

  // Stale-code check: the words covering [phys + from, phys + length), masked to those bytes.
  const i32 = cpu.mem.i32;
  const changed = (from: number): string => {
    const checks: string[] = [];
    const lo = phys + from, hi = phys + length;
    for (let a = lo & ~3; a < hi; a += 4) {
      let mask = 0;
      for (let k = 0; k < 4; k++) if (a + k >= lo && a + k < hi) mask |= 0xff << (8 * k);
      const word = i32[a >>> 2]! & mask;
      checks.push(mask === -1 ? `W[${a >>> 2}] !== ${word}` : `(W[${a >>> 2}] & ${mask}) !== ${word}`);
    }
    return checks.length === 0 ? 'false' : checks.join(' || ');
  };
  const checks = [changed(0)];
  for (let i = 0; i < parts.length; i++) parts[i] = parts[i]!.replace(/REST\((\d+)\)/g, (_s, f: string) => `(${changed(Number(f))})`);

  const source = [
    `const LEN = ${length}, EX = [${exitEip.join(', ')}], ES = [${exitStart.join(', ')}];`,
    'return function jitBlock(c, target) {',
    'const r32 = c.r32, r16 = c.r16, r8 = c.r8, M = c.mem, W = M.i32, B = c.cost.base, MO = c.cost.memOperand, BT = c.cost.branchTaken, G = c.cost.groupExtra, SH = c.segHi;',
    `if (${checks.join(' || ')}) return false;`,
    'let a = 0, b = 0, e = 0, p = 0, t = 0, v = 0, h = 0, x = 0, NE = c.nextEventCycle, cy = c.cycles, n = c.instructions;',
    'out: for (;;) {',
    ...parts,
    '}',
    'c.cycles = cy; c.instructions = n; c.eip = EX[x]; c.instrStart = ES[x]; return true;',
    '};',
  ].join('\n');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const factory = new Function(...HELPER_NAMES, 'TBL', source) as (...h: unknown[]) => BlockFn;
  return { fn: factory(...HELPER_VALUES, cpu.table), length, count, source, trivial };
}
