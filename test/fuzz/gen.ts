/**
 * Seeded generator of straight-line 32-bit protected-mode test programs for differential
 * testing against QEMU (docs/fuzzing.md). A program: flat code at 1 MiB, five data
 * segments with different bases over a 192 KiB data area at 4 MiB (filled from the seed),
 * paging on (4 KiB identity pages, one page of the window possibly not present or read-only
 * with CR0.WP), an IDT whose stubs report any exception; then registers and flags from the
 * seed, random instructions (raw bytes: odd prefixes included), each optionally followed by
 * a checkpoint that prints EFLAGS and the 8 registers on port 0xE9; at the end a hash of
 * the data window, then `out 0xF4`.
 *
 * Every address a random instruction touches is known to the generator (it loads the
 * address registers right before), so accesses stay inside the data area and can be aimed
 * at page boundaries. The generator also tracks which arithmetic flags the SDM leaves
 * undefined at each point, to mask them in the comparison, and inserts a `cmp` that
 * defines them again before an instruction that would read them.
 */
import seedrandom from 'seedrandom';
import { Assembler, eax, ecx, edx, esi, edi, al, ax, ds, es, fs, gs, ss, cr0, cr2, cr3, esp, dword, fword, byte } from '../../src/x86/index.js';
import { imageFromAssembly, type GuestImage } from '../../src/guest/image.js';

export const CODE = 0x100000;
export const DATA = 0x400000;
/** Bytes of the data area hashed at the end (offsets 0..WINDOW-1 of DATA). */
export const WINDOW = 0x20000;
/** Mapped data area: window plus the stack. */
export const AREA = 0x30000;
const PD = 0x500000;
const PT0 = 0x501000;
/** Offset of ESP in SS at the start. */
export const ESP0 = 0x28000;

// Segment selectors and bases (offsets from DATA). CS is flat.
const SEG_BASE = [0x123, 0, 0x40, 0, 0x2000, 0x5]; // ES CS SS DS FS GS (CS: absolute 0, below)
const SEG_SEL = [0x20, 0x08, 0x38, 0x18, 0x28, 0x30];
/** Linear base of segment register `s` (ES=0 CS=1 SS=2 DS=3 FS=4 GS=5). */
export function segBase(s: number): number { return s === 1 ? 0 : DATA + SEG_BASE[s]!; }

// EFLAGS bits.
export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
export const ARITH = CF | PF | AF | ZF | SF | OF;

/** Everything the comparison needs besides the program itself. */
export interface Program {
  readonly seed: string;
  readonly image: GuestImage;
  /** Per checkpoint, in order: EFLAGS bits to compare (the rest are undefined there). */
  readonly checkpointMasks: number[];
  /** Per checkpoint: index of the last random instruction before it. */
  readonly checkpointAfter: number[];
  /**
   * Address of each random instruction → [index, EFLAGS mask valid before it, whether it
   * reads and writes a memory operand].
   */
  readonly instrAt: Map<number, [number, number, boolean]>;
  /** Disassembly help: the bytes of each random instruction (hex). */
  readonly instrBytes: string[];
  readonly kind: 'plain' | 'fault';
}

export interface GenOptions {
  /** Random instructions (default from the seed: 20..60). */
  readonly count?: number;
  /** Checkpoint after every instruction (default: density from a separate seeded stream). */
  readonly everyInstruction?: boolean;
}

type Rng = () => number;

/** A generated instruction: setup bytes (register loads), its own bytes, flag effects. */
interface Ins {
  setup: number[];
  bytes: number[];
  /** Flags read (must be defined). */
  reads: number;
  /** Flags left defined (written with a defined value). */
  defines: number;
  /** Flags left undefined. */
  undef: number;
  /** Further instructions, each followed by a forced checkpoint (ENTER's body and LEAVE). */
  after?: number[][];
  /** Needs a checkpoint right before it (see CMPXCHG8B). */
  ckBefore?: boolean;
  /** Reads and writes a memory operand (set by instruction()). */
  rmw?: boolean;
}

/** Whether a setup sequence (5-byte MOV r32, imm32 loads) loads register `r`. */
function usesReg(setup: number[], r: number): boolean {
  for (let i = 0; i < setup.length; i += 5) if (setup[i] === 0xb8 + r) return true;
  return false;
}

const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const u16 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff];
const movImm = (r: number, v: number): number[] => [0xb8 + r, ...u32(v)];

class Gen {
  constructor(readonly r: Rng, readonly pageFault: number, readonly roPage: number) {}
  int(n: number): number { return Math.floor(this.r() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]!; }
  chance(p: number): boolean { return this.r() < p; }
  u32(): number { return (this.r() * 0x1_0000_0000) >>> 0; }
  /** A "random" value with interesting bit patterns. */
  val(): number {
    switch (this.int(6)) {
      case 0: return this.pick([0, 1, 0xffffffff, 0x80000000, 0x7fffffff, 0x7f, 0x80, 0xff, 0x8000, 0xffff, 0x7fff]);
      case 1: return this.int(64);
      case 2: return (-this.int(64)) >>> 0;
      default: return this.u32();
    }
  }
  /** A general register for a 16/32-bit operand: never ESP. */
  reg(): number { let x; do x = this.int(8); while (x === 4); return x; }

  /** A target linear address in the window, often just below a page boundary. */
  target(size: number): number {
    if (this.chance(0.35)) {
      const page = 1 + this.int(WINDOW / 0x1000 - 1);
      return DATA + page * 0x1000 - 1 - this.int(Math.max(1, size + 1));
    }
    return DATA + this.int(WINDOW - 16);
  }

  /**
   * A ModR/M operand. `reg` is the reg field. For a memory operand: `size` bytes accessed
   * (for the target's choice), `write` whether it is written (no CS override then),
   * `a16` 16-bit addressing. `espAdjust`: ESP as seen by the address computation.
   */
  modrm(reg: number, opts: { regOk: boolean; memOk?: boolean; size: number; write: boolean; a16: boolean; seg: number | null; rm8?: boolean; espAdjust?: number; span?: number }): { bytes: number[]; setup: number[]; mem: boolean } {
    const memOk = opts.memOk ?? true;
    if (opts.regOk && (!memOk || this.chance(0.4))) {
      const rm = opts.rm8 ? this.int(8) : this.reg();
      return { bytes: [0xc0 | (reg << 3) | rm], setup: [], mem: true && false };
    }
    const span = opts.span ?? opts.size;
    if (opts.write) rmwMem = true;
    return opts.a16 ? this.mem16(reg, opts.seg, span, opts.write) : this.mem32(reg, opts.seg, span, opts.write, opts.espAdjust ?? 0);
  }

  private defaultSeg(ss: boolean, seg: number | null): number { return seg ?? (ss ? 2 : 3); }

  private mem32(reg: number, seg: number | null, size: number, write: boolean, espAdj: number): { bytes: number[]; setup: number[]; mem: boolean } {
    const setup: number[] = [];
    for (let tries = 0; ; tries++) {
      const useSib = this.chance(0.4);
      const mod = this.pick([0, 1, 2]);
      let base = -1, index = -1, scale = 0, disp = 0;
      const bytes: number[] = [];
      if (useSib) {
        base = this.int(8);
        index = this.int(8);
        scale = this.int(4);
        if (index === 4) index = -1;
        if (base === 5 && mod === 0) base = -1;
        bytes.push((mod << 6) | (reg << 3) | 4, (scale << 6) | ((index < 0 ? 4 : index) << 3) | (base < 0 ? 5 : base));
      } else {
        let rm = this.int(8);
        if (rm === 4) rm = 0;
        if (rm === 5 && mod === 0) { bytes.push((reg << 3) | 5); } else { base = rm; bytes.push((mod << 6) | (reg << 3) | rm); }
      }
      const disp32 = mod === 2 || (mod === 0 && base < 0);
      if (mod === 1) disp = (this.int(256) << 24) >> 24;
      const ss = base === 4 || base === 5;
      const s = this.defaultSeg(ss, seg);
      if (write && s === 1) throw RETRY;
      const lin = this.target(size);
      const off = (lin - segBase(s)) >>> 0;
      // An access crossing the 4 GiB offset limit is implementation-specific (SDM Vol. 3
      // 5.3): not generated.
      if (off + size > 0x1_0000_0000) throw RETRY;
      const espVal = ESP0 + espAdj;
      let idxVal = index < 0 ? 0 : this.chance(0.5) ? this.int(0x200) : (-this.int(0x200)) >>> 0;
      if (index === 4) idxVal = espVal; // not reachable (index 4 = none); kept for clarity
      if (base === 4) {
        // ESP is fixed: reach the target with the displacement or the index.
        if (disp32) disp = (off - espVal - (idxVal << scale)) | 0;
        else if (index >= 0) {
          if (index === 4) continue;
          const need = (off - espVal - disp) | 0;
          if (need % (1 << scale) !== 0) continue;
          idxVal = (need / (1 << scale)) >>> 0;
        } else {
          // [esp+disp8]: only above ESP, never written by checkpoints.
          if (mod === 0) return { bytes, setup, mem: true };
          disp = this.int(120);
          return { bytes: [...bytes, ...(mod === 1 ? [disp] : u32(disp))], setup, mem: true };
        }
        if (index >= 0) setup.push(...movImm(index, idxVal));
      } else if (base >= 0) {
        if (!disp32 && mod === 0) disp = 0;
        else if (disp32) disp = this.chance(0.5) ? this.int(0x1000) : this.u32() | 0;
        if (index === base) {
          const mul = 1 + (1 << scale);
          const v = Math.floor(((off - disp) >>> 0) / mul);
          const got = (v * mul + disp) >>> 0;
          // Needs to land in the window (of this segment) too; retry if not.
          const glin = (segBase(s) + got) >>> 0;
          if (glin < DATA || glin + size > DATA + WINDOW) { if (tries > 20) throw RETRY; continue; }
          setup.push(...movImm(base, v));
        } else {
          if (index >= 0) setup.push(...movImm(index, idxVal));
          setup.push(...movImm(base, (off - disp - (idxVal << scale)) >>> 0));
        }
      } else {
        // No base: disp32 carries the address.
        if (index >= 0) setup.push(...movImm(index, idxVal));
        disp = (off - (idxVal << scale)) | 0;
      }
      if (mod === 1) bytes.push(disp & 0xff);
      else if (disp32) bytes.push(...u32(disp));
      return { bytes, setup, mem: true };
    }
  }

  private mem16(reg: number, seg: number | null, size: number, write: boolean): { bytes: number[]; setup: number[]; mem: boolean } {
    const REGS: [number, number][] = [[3, 6], [3, 7], [5, 6], [5, 7], [6, -1], [7, -1], [5, -1], [3, -1]];
    for (;;) {
      const mod = this.pick([0, 1, 2]);
      const rm = this.int(8);
      const direct = rm === 6 && mod === 0;
      const ss = !direct && (rm === 2 || rm === 3 || rm === 6);
      const s = this.defaultSeg(ss, seg);
      if (s === 1) throw RETRY; // CS (base 0): 16-bit offsets would reach low memory
      // Offset in the 64 KiB segment window; often just below a page boundary in linear terms.
      let off: number;
      if (this.chance(0.3)) off = ((((segBase(s) + 0x1000 * (1 + this.int(15))) & ~0xfff) - segBase(s) - 1 - this.int(size + 1)) & 0xffff);
      else off = this.int(0x10000 - size);
      if (off + size > 0x10000) continue;
      const bytes: number[] = [(mod << 6) | (reg << 3) | rm];
      const setup: number[] = [];
      if (direct) { bytes.push(...u16(off)); return { bytes, setup, mem: true }; }
      const disp = mod === 1 ? (this.int(256) << 24) >> 24 : mod === 2 ? this.int(0x10000) : 0;
      const [b, i] = REGS[rm]!;
      const hi = () => (this.chance(0.5) ? this.u32() & 0xffff0000 : 0);
      if (i < 0) setup.push(...movImm(b!, (hi() | ((off - disp) & 0xffff)) >>> 0));
      else {
        const iv = this.int(0x10000);
        setup.push(...movImm(i, (hi() | iv) >>> 0));
        setup.push(...movImm(b!, (hi() | ((off - disp - iv) & 0xffff)) >>> 0));
      }
      if (mod === 1) bytes.push(disp & 0xff);
      else if (mod === 2) bytes.push(...u16(disp));
      return { bytes, setup, mem: true };
    }
  }
}

/** Set when the instruction being drawn writes a memory operand it also reads. */
let rmwMem = false;

/** Thrown when a drawn form cannot be used (the caller draws again). */
const RETRY = new Error('retry');

const SEG_PREFIX = [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65];

/**
 * One random instruction. Returns null when the chosen form did not fit (the caller draws
 * again).
 */
function instruction(g: Gen): Ins | null {
  rmwMem = false;
  const x = drawInstruction(g);
  if (x !== null) x.rmw = rmwMem;
  return x;
}

function drawInstruction(g: Gen): Ins | null {
  const o16 = g.chance(0.3);
  const a16 = g.chance(0.2);
  const seg = g.chance(0.3) ? g.int(6) : null;
  const osz = o16 ? 2 : 4;
  const pre: number[] = [];
  // Prefix bytes in a random order, sometimes repeated.
  const addPrefixes = (useSeg: boolean, lock: boolean) => {
    const list: number[] = [];
    if (o16) list.push(0x66);
    if (a16) list.push(0x67);
    if (useSeg && seg !== null) list.push(SEG_PREFIX[seg]!);
    if (lock) list.push(0xf0);
    if (g.chance(0.1) && list.length) list.push(g.pick(list));
    for (let i = list.length - 1; i > 0; i--) { const j = g.int(i + 1); [list[i], list[j]] = [list[j]!, list[i]!]; }
    pre.push(...list);
  };
  const ins = (setup: number[], bytes: number[], reads: number, defines: number, undef: number): Ins => ({ setup, bytes: [...pre, ...bytes], reads, defines, undef });
  const kind = g.int(100);
  const w = (g.int(2)); // 0: byte form, 1: word/dword form
  const size = w ? osz : 1;
  const mo = (reg: number, write: boolean, regOk = true, memOk = true, span?: number) =>
    g.modrm(reg, { regOk, memOk, size, write, a16, seg, rm8: w === 0, span: span ?? size });

  if (kind < 6) {
    // MOV r/m, r; r, r/m; r/m, imm; EAX <-> moffs.
    const f = g.int(3);
    if (f === 0) {
      const dir = g.int(2);
      const m = mo(w === 0 ? g.int(8) : g.reg(), dir === 0);
      addPrefixes(true, false);
      return ins(m.setup, [0x88 | (dir << 1) | w, ...m.bytes], 0, 0, 0);
    }
    if (f === 1) {
      const m = mo(0, true);
      addPrefixes(true, false);
      return ins(m.setup, [0xc6 | w, ...m.bytes, ...(w === 0 ? [g.val() & 0xff] : o16 ? u16(g.val()) : u32(g.val()))], 0, 0, 0);
    }
    const dir = g.int(2);
    const s = seg ?? 3;
    if (s === 1 && dir) return null;
    addPrefixes(true, false);
    const off = (g.target(size) - segBase(s)) >>> 0;
    if (a16) {
      const o16off = (DATA + g.int(0xfff0) - segBase(s)) & 0xffff;
      return ins([], [0xa0 | (dir << 1) | w, ...u16(o16off)], 0, 0, 0);
    }
    return ins([], [0xa0 | (dir << 1) | w, ...u32(off)], 0, 0, 0);
  }
  if (kind < 18) {
    // ALU r/m, r and r, r/m: add or adc sbb and sub xor cmp.
    const op = g.int(8);
    const dir = g.int(2);
    const lock = dir === 0 && op !== 7 && g.chance(0.15);
    const regf = w === 0 ? g.int(8) : g.reg();
    const m = mo(regf, dir === 0 && op !== 7, !lock);
    addPrefixes(true, lock);
    const logic = op === 1 || op === 4 || op === 6;
    return ins(m.setup, [(op << 3) | (dir << 1) | w, ...m.bytes], op === 2 || op === 3 ? CF : 0, logic ? ARITH & ~AF : ARITH, logic ? AF : 0);
  }
  if (kind < 28) {
    // Group 1 with immediates: 80 81 83.
    const op = g.int(8);
    const form = w === 0 ? 0x80 : g.pick([0x81, 0x83]);
    const lock = op !== 7 && g.chance(0.15);
    const m = mo(op, op !== 7, !lock);
    addPrefixes(true, lock);
    const imm = form === 0x81 ? (o16 ? u16(g.val()) : u32(g.val())) : [g.val() & 0xff];
    const logic = op === 1 || op === 4 || op === 6;
    return ins(m.setup, [form, ...m.bytes, ...imm], op === 2 || op === 3 ? CF : 0, logic ? ARITH & ~AF : ARITH, logic ? AF : 0);
  }
  if (kind < 38) {
    // Shifts and rotates: C0/C1 imm, D0/D1 by 1, D2/D3 by CL.
    const op = g.pick([0, 1, 2, 3, 4, 5, 7]);
    const how = g.int(3);
    const count = how === 1 ? 1 : g.chance(0.6) ? g.int(34) : g.int(256);
    const setup: number[] = [];
    if (how === 2) setup.push(0xb1, count); // mov cl, count
    const m = mo(op, true);
    if (how === 2 && usesReg(m.setup, 1)) return null;
    // A count in CL must not be clobbered by the address setup: setup first, then CL.
    addPrefixes(true, false);
    const opc = how === 0 ? 0xc0 | w : how === 1 ? 0xd0 | w : 0xd2 | w;
    const bits = size * 8;
    const c = count & 31;
    let reads = 0, defines = 0, undef = 0;
    if (op === 2 || op === 3) reads |= CF;
    if (c !== 0) {
      if (op <= 1) { defines = CF; undef = c === 1 ? 0 : OF; if (c === 1) defines |= OF; }
      else if (op <= 3) {
        const eff = bits === 32 ? c : c % (bits + 1);
        if (eff !== 0) { defines = CF; if (c === 1) defines |= OF; else undef = OF; }
        else undef = c === 1 ? 0 : OF; // count a multiple of width+1: CF kept, OF undefined
      } else {
        defines = CF | PF | ZF | SF | (c === 1 ? OF : 0);
        undef = AF | (c === 1 ? 0 : OF);
        if (op !== 7 && c >= bits) { undef |= CF; defines &= ~CF; }
      }
    }
    return ins([...m.setup, ...setup], [opc, ...m.bytes, ...(how === 0 ? [count] : [])], reads, defines, undef);
  }
  if (kind < 46) {
    // Group 3: test not neg mul imul div idiv.
    const op = g.pick([0, 2, 3, 4, 5, 6, 7]);
    const lock = (op === 2 || op === 3) && g.chance(0.2);
    if (op >= 6) {
      // Divide: load a non-zero divisor and a dividend that does not overflow, into
      // registers the address setup does not need (done after it).
      const dv = (() => { let v; do v = g.val(); while (((size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v) === 0)); return v; })();
      if (g.chance(0.7)) {
        // Divisor in a register (not EAX/EDX).
        const rr = g.pick(w === 0 ? [1, 3, 5, 7] : [1, 3, 5, 6, 7]);
        addPrefixes(false, false);
        const setup = [...movImm(rr, dv), ...dividend(g, op === 7, size, dv)];
        return ins(setup, [0xf6 | w, 0xc0 | (op << 3) | rr], 0, 0, ARITH);
      }
      // Memory divisor (random data, rarely zero: then #DE, reported): a small dividend.
      const m = mo(op, false, false);
      if (usesReg(m.setup, 0) || usesReg(m.setup, 2)) return null;
      addPrefixes(true, false);
      const lo = g.int(0x80);
      const dsetup = size === 1 ? movImm(0, lo) : [...movImm(0, lo), ...movImm(2, 0)];
      return ins([...m.setup, ...dsetup], [0xf6 | w, ...m.bytes], 0, 0, ARITH);
    }
    const m = mo(op, op === 2 || op === 3, !lock);
    addPrefixes(true, lock);
    const imm = op === 0 ? (w === 0 ? [g.val() & 0xff] : o16 ? u16(g.val()) : u32(g.val())) : [];
    const fl: [number, number] = op === 0 ? [ARITH & ~AF, AF] : op === 2 ? [0, 0] : op === 3 ? [ARITH, 0] : [CF | OF, SF | ZF | AF | PF];
    return ins(m.setup, [0xf6 | w, ...m.bytes, ...imm], 0, fl[0], fl[1]);
  }
  if (kind < 50) {
    // INC/DEC r/m (FE/FF /0 /1), and 40-4F.
    if (g.chance(0.3)) { addPrefixes(false, false); return ins([], [(g.int(2) ? 0x48 : 0x40) + g.reg()], 0, ARITH & ~CF, 0); }
    const op = g.int(2);
    const lock = g.chance(0.2);
    const m = mo(op, true, !lock);
    addPrefixes(true, lock);
    return ins(m.setup, [0xfe | w, ...m.bytes], 0, ARITH & ~CF, 0);
  }
  if (kind < 55) {
    // MOVZX/MOVSX, 8 or 16-bit source.
    const sw = g.int(2);
    const rg = g.reg();
    const m = g.modrm(rg, { regOk: true, size: sw ? 2 : 1, write: false, a16, seg, rm8: sw === 0 });
    addPrefixes(true, false);
    return ins(m.setup, [0x0f, g.pick([0xb6, 0xbe]) | sw, ...m.bytes], 0, 0, 0);
  }
  if (kind < 60) {
    // IMUL r, r/m; r, r/m, imm.
    const rg = g.reg();
    const f = g.int(3);
    const m = g.modrm(rg, { regOk: true, size: osz, write: false, a16, seg });
    addPrefixes(true, false);
    const b = f === 0 ? [0x0f, 0xaf, ...m.bytes] : f === 1 ? [0x69, ...m.bytes, ...(o16 ? u16(g.val()) : u32(g.val()))] : [0x6b, ...m.bytes, g.val() & 0xff];
    return ins(m.setup, b, 0, CF | OF, SF | ZF | AF | PF);
  }
  if (kind < 64) {
    // CMOVcc, SETcc.
    const cc = g.int(16);
    if (g.chance(0.5)) {
      const rg = g.reg();
      const m = g.modrm(rg, { regOk: true, size: osz, write: false, a16, seg });
      addPrefixes(true, false);
      return ins(m.setup, [0x0f, 0x40 | cc, ...m.bytes], ARITH, 0, 0);
    }
    const m = g.modrm(0, { regOk: true, size: 1, write: true, a16, seg, rm8: true });
    rmwMem = false; // SETcc only writes
    addPrefixes(true, false);
    return ins(m.setup, [0x0f, 0x90 | cc, ...m.bytes], ARITH, 0, 0);
  }
  if (kind < 70) {
    // BT BTS BTR BTC: register bit offset (memory bit strings) or imm8.
    const op = g.int(4);
    const lock = op !== 0 && g.chance(0.2);
    if (g.chance(0.5)) {
      const m = g.modrm(4 + op, { regOk: !lock, size: osz, write: op !== 0, a16, seg });
      addPrefixes(true, lock);
      return ins(m.setup, [0x0f, 0xba, ...m.bytes, g.int(256)], 0, CF, OF | SF | AF | PF);
    }
    // Register form: bit offset in a register, value anything (taken modulo the width).
    const rg = g.reg();
    if (g.chance(0.4)) {
      addPrefixes(false, false);
      return ins([], [0x0f, 0xa3 | (op << 3), 0xc0 | (rg << 3) | g.reg()], 0, CF, OF | SF | AF | PF);
    }
    // Memory bit string: the effective byte is base + (offset >> 3) (signed); aim at the window.
    const bitoff = (g.int(0x4000) - 0x2000) | 0;
    const o = o16 ? ((bitoff << 16) >> 16) : bitoff;
    const delta = o16 ? (o >> 4) * 2 : (o >> 5) * 4;
    const m = g.modrm(rg, { regOk: false, size: osz, write: op !== 0, a16, seg, span: osz });
    if (usesReg(m.setup, rg)) return null;
    // The generator aimed the operand's address at the window; shift it back by the
    // displacement the bit offset adds, by adjusting the loaded base: simpler to choose a
    // small offset when the adjustment is not possible.
    addPrefixes(true, lock);
    const small = g.int(o16 ? 16 : 32);
    void delta;
    return ins([...m.setup, ...movImm(rg, g.chance(0.5) ? small : ((small + (g.int(64) - 32) * osz * 8)) >>> 0)], [0x0f, 0xa3 | (op << 3), ...m.bytes], 0, CF, OF | SF | AF | PF);
  }
  if (kind < 73) {
    // BSF/BSR (a zero source leaves the destination undefined in the SDM: never zero here).
    const rg = g.reg();
    let src = g.reg();
    addPrefixes(false, false);
    const v = (g.val() | (1 << g.int(o16 ? 16 : 32))) >>> 0;
    if (src === rg && g.chance(0.5)) src = rg;
    return ins(movImm(src, v), [0x0f, 0xbc | g.int(2), 0xc0 | (rg << 3) | src], 0, ZF, CF | OF | SF | AF | PF);
  }
  if (kind < 78) {
    // SHLD/SHRD imm8 or CL.
    const rg = g.reg();
    const byCl = g.int(2);
    const bits = osz * 8;
    const count = g.int(32);
    const c = count & 31;
    if (c > bits) return null; // undefined result
    const m = g.modrm(rg, { regOk: true, size: osz, write: true, a16, seg });
    if (byCl && usesReg(m.setup, 1)) return null;
    addPrefixes(true, false);
    const b = [0x0f, (g.int(2) ? 0xa4 : 0xac) | byCl, ...m.bytes, ...(byCl ? [] : [count])];
    const defines = c === 0 ? 0 : CF | SF | ZF | PF | (c === 1 ? OF : 0);
    const undef = c === 0 ? 0 : AF | (c === 1 ? 0 : OF);
    return ins([...m.setup, ...(byCl ? [0xb1, count] : [])], b, 0, defines, undef);
  }
  if (kind < 82) {
    // CMPXCHG, XADD, XCHG r/m (locked or not), CMPXCHG8B.
    const f = g.int(4);
    if (f === 3) {
      const lock = g.chance(0.5);
      const m = g.modrm(1, { regOk: false, size: 8, write: true, a16, seg });
      addPrefixes(true, lock);
      // QEMU 7.2 computes the flags CMPXCHG8B leaves alone from a stale lazy-flags state
      // unless its translation block starts there: a checkpoint (a CALL) first.
      const x = ins(m.setup, [0x0f, 0xc7, ...m.bytes], 0, ZF, 0);
      x.ckBefore = true;
      return x;
    }
    const rg = w === 0 ? g.int(8) : g.reg();
    const lock = f !== 2 && g.chance(0.4);
    const m = g.modrm(rg, { regOk: !lock, size, write: true, a16, seg, rm8: w === 0 });
    addPrefixes(true, lock);
    if (f === 0) return ins(m.setup, [0x0f, 0xb0 | w, ...m.bytes], 0, ARITH, 0);
    if (f === 1) return ins(m.setup, [0x0f, 0xc0 | w, ...m.bytes], 0, ARITH, 0);
    return ins(m.setup, [0x86 | w, ...m.bytes], 0, 0, 0);
  }
  if (kind < 84) {
    // BSWAP (32-bit only: the 16-bit form is undefined).
    if (o16) return null;
    addPrefixes(false, false);
    return ins([], [0x0f, 0xc8 + g.reg()], 0, 0, 0);
  }
  if (kind < 90) {
    // String instructions with REP/REPE/REPNE, 67, segment overrides.
    const op = g.pick([0xa4, 0xa6, 0xaa, 0xac, 0xae]);
    const rep = g.pick([null, 0xf3, 0xf2]);
    const count = g.int(9);
    const n = op | w;
    const df = g.int(2);
    // Source DS:ESI (overridable), destination ES:EDI; counts small; DF from the seed.
    const sseg = seg ?? 3;
    if (sseg === 1 && (op === 0xa4 || op === 0xa6 || op === 0xac)) return null;
    const span = size * (count + 1);
    const pickOff = (s: number): number => {
      const lin = g.chance(0.4) ? DATA + 0x1000 * (2 + g.int(14)) - g.int(span + 2) : DATA + 0x200 + g.int(0xe000);
      return (lin - segBase(s)) >>> 0;
    };
    const siOff = pickOff(sseg);
    const diOff = pickOff(0);
    const hi = () => (a16 ? (g.chance(0.5) ? g.u32() & 0xffff0000 : 0) : 0);
    const setup = [...movImm(6, (hi() | siOff) >>> 0), ...movImm(7, (hi() | diOff) >>> 0), ...movImm(1, (hi() | count) >>> 0), df ? 0xfd : 0xfc];
    if (a16 && ((siOff | diOff) >>> 0) > 0xffff - span) return null;
    addPrefixes(true, false);
    if (rep !== null) pre.unshift(rep);
    const cmpLike = op === 0xa6 || op === 0xae;
    // With a count of 0 under REP, flags are untouched.
    const touches = cmpLike && !(rep !== null && count === 0);
    return ins(setup, [n], rep !== null ? 0 : 0, touches ? ARITH : 0, 0);
  }
  if (kind < 92) {
    // ENTER (with nesting) immediately followed by LEAVE.
    if (o16) return null;
    const level = g.pick([0, 1, 2, 3, 5, 31, 32, 33]);
    const ebpLin = DATA + 0x1000 + g.int(0xe000);
    const setup = movImm(5, (ebpLin - segBase(2)) >>> 0);
    addPrefixes(false, false);
    // A checkpoint between ENTER and LEAVE; the frame-pointer copies read back first.
    const after = [...(level % 32 >= 1 ? [0x8b, 0x45, 0xfc] : []), ...(level % 32 >= 2 ? [0x8b, 0x4d, 0xf8] : [])];
    const x = ins(setup, [0xc8, ...u16(g.int(0x100)), level], 0, 0, 0);
    x.after = [after, [0xc9]];
    return x;
  }
  if (kind < 94) {
    // XLAT: [EBX + AL] in DS (overridable) or 16-bit.
    const s = seg ?? 3;
    if (s === 1) return null;
    const off = (DATA + 0x100 + g.int(0xf000) - segBase(s)) >>> 0;
    addPrefixes(true, false);
    return ins(movImm(3, a16 ? ((g.u32() & 0xffff0000) | (off & 0xffff)) >>> 0 : off), [0xd7], 0, 0, 0);
  }
  if (kind < 97) {
    // One-byte specials: LAHF SAHF CBW/CWDE CWD/CDQ CMC CLC STC CLD STD DAA DAS AAA AAS AAM AAD.
    addPrefixes(false, false);
    const op = g.int(14);
    switch (op) {
      case 0: return ins([], [0x9f], ARITH & ~OF, 0, 0);
      case 1: return ins([], [0x9e], 0, ARITH & ~OF, 0);
      case 2: return ins([], [0x98], 0, 0, 0);
      case 3: return ins([], [0x99], 0, 0, 0);
      case 4: return ins([], [0xf5], CF, CF, 0);
      case 5: return ins([], [g.pick([0xf8, 0xf9])], 0, CF, 0);
      case 6: return ins([], [g.pick([0xfc, 0xfd])], 0, 0, 0);
      case 7: return ins([], [g.pick([0x27, 0x2f])], CF | AF, CF | AF | SF | ZF | PF, OF);
      case 8: return ins([], [g.pick([0x37, 0x3f])], AF, CF | AF, OF | SF | ZF | PF);
      case 9: return ins([], [0xd4, 1 + g.int(255)], 0, SF | ZF | PF, OF | AF | CF);
      case 10: return ins([], [0xd5, g.int(256)], 0, SF | ZF | PF, OF | AF | CF);
      case 11: return ins([], [0x90 + g.reg()], 0, 0, 0);
      case 12: return ins([], [0x0f, 0x1f, 0xc0 | g.int(8)], 0, 0, 0);
      default: return ins([], [0x8d, ...g.modrm(g.reg(), { regOk: false, size: 1, write: false, a16, seg: null }).bytes], 0, 0, 0);
    }
  }
  // PUSH x / POP y pairs (ESP ends where it started), incl. POP r/m with an ESP base.
  {
    const push = g.int(4);
    const pbytes: number[] = [];
    const psetup: number[] = [];
    const p16 = o16 ? [0x66] : [];
    if (push === 0) pbytes.push(...p16, 0x50 + g.int(8));
    else if (push === 1) pbytes.push(...p16, 0x68, ...(o16 ? u16(g.val()) : u32(g.val())));
    else if (push === 2) pbytes.push(...p16, 0x6a, g.int(256));
    else {
      const m = g.modrm(6, { regOk: true, size: osz, write: false, a16, seg });
      psetup.push(...m.setup);
      pbytes.push(...p16, ...(a16 ? [0x67] : []), ...(seg !== null ? [SEG_PREFIX[seg]!] : []), 0xff, ...m.bytes);
    }
    const popb: number[] = [];
    if (g.chance(0.5)) popb.push(...p16, 0x58 + g.reg());
    else {
      // POP r/m: an ESP base is evaluated after the increment (SDM POP).
      const m = g.modrm(0, { regOk: false, size: osz, write: true, a16, seg, espAdjust: osz });
      psetup.push(...m.setup);
      popb.push(...p16, ...(a16 ? [0x67] : []), ...(seg !== null ? [SEG_PREFIX[seg]!] : []), 0x8f, ...m.bytes);
      rmwMem = false; // POP only writes
    }
    return { setup: psetup, bytes: [...pbytes, ...popb], reads: 0, defines: 0, undef: 0 };
  }
}

/** Loads EDX:EAX (or AX / DX:AX) with a dividend whose quotient fits. */
function dividend(g: Gen, signed: boolean, size: number, dv: number): number[] {
  const bits = size * 8;
  const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  const d = (dv & mask) >>> 0;
  if (!signed) {
    // High part < divisor.
    const hi = Math.floor(g.r() * d);
    const lo = g.u32();
    if (size === 1) return movImm(0, (lo & 0xffff00ff) | ((hi & 0xff) << 8));
    if (size === 2) return [...movImm(0, lo), ...movImm(2, (g.u32() & 0xffff0000) | hi)];
    return [...movImm(0, lo), ...movImm(2, hi)];
  }
  // Signed: a sign-extended dividend (CBW/CWD/CDQ style); avoid MIN / -1.
  const ds = bits === 32 ? d | 0 : (d << (32 - bits)) >> (32 - bits);
  let lo = g.val();
  if (ds === -1) lo = g.int(1000);
  if (size === 1) {
    const v = (lo << 24) >> 24;
    return movImm(0, (g.u32() & 0xffff0000) | (v & 0xffff));
  }
  if (size === 2) {
    const v = (lo << 16) >> 16;
    return [...movImm(0, lo), ...movImm(2, (g.u32() & 0xffff0000) | (v < 0 ? 0xffff : 0))];
  }
  return [...movImm(0, lo), ...movImm(2, (lo | 0) < 0 ? 0xffffffff : 0)];
}

/** Builds the program for `seed`. */
export function generate(seed: string, options: GenOptions = {}): Program {
  // A prefix: ARC4 keys repeat cyclically, so seedrandom('1') equals seedrandom('11').
  const rng = seedrandom('virtlab-fuzz/' + seed);
  const ckRng = seedrandom('virtlab-fuzz/' + seed + '/checkpoints');
  const kind: 'plain' | 'fault' = rng() < 0.25 ? 'fault' : 'plain';
  const badPage = kind === 'fault' ? 1 + Math.floor(rng() * 31) : -1;
  const roPage = kind === 'fault' && rng() < 0.5 ? 1 + Math.floor(rng() * 31) : -1;
  const g = new Gen(rng, badPage, roPage);
  const drawn = 20 + g.int(41); // always drawn: a shorter count keeps the same prefix
  const count = options.count ?? drawn;
  const density = ckRng() < 0.5 ? 1 : ckRng();

  const a = new Assembler({ bits: 32, origin: CODE, sourcePositions: false });
  const gdt = a.label('gdt');
  const gdtr = a.label('gdtr');
  const idtr = a.label('idtr');
  const idt = a.label('idt');
  const ckpt = a.label('ckpt');
  const finish = a.label('finish');
  const fault = a.label('fault');
  const start = a.label('_start');
  a.bind(start);
  a.cli();
  a.lgdt(fword(gdtr));
  const flat = a.label();
  a.jmpFar(0x08, flat);
  a.bind(flat);
  a.mov(eax, 0x10);
  a.mov(ds, ax); a.mov(es, ax); a.mov(ss, ax); a.mov(fs, ax); a.mov(gs, ax);
  a.mov(esp, DATA + AREA); // temporary stack at the end of the area
  // Fill the data area from the seed (an LCG; the high half rotated down for varied bytes).
  a.mov(edi, DATA);
  a.mov(ecx, AREA / 4);
  a.mov(eax, (g.u32() | 1) >>> 0);
  const fill = a.here();
  a.emit('imul', eax, eax, 1664525); a.add(eax, 1013904223);
  a.mov(edx, eax); a.emit('ror', edx, 13);
  a.mov(dword(edi), edx); a.add(edi, 4);
  a.loop(fill);
  // Page tables: identity, 4 KiB pages, first 8 MiB.
  a.mov(edi, PD);
  a.mov(ecx, 1024); a.xor(eax, eax); a.stosd('rep');
  a.mov(dword(PD), PT0 | 3);
  a.mov(dword(PD + 4), (PT0 + 0x1000) | 3);
  a.mov(edi, PT0); a.mov(eax, 3); a.mov(ecx, 2048);
  const pt = a.here();
  a.stosd(); a.add(eax, 0x1000); a.loop(pt);
  if (badPage >= 0) a.mov(dword(PT0 + ((DATA >>> 12) + badPage) * 4), (DATA + badPage * 0x1000) | 0); // not present
  if (roPage >= 0 && roPage !== badPage) a.mov(dword(PT0 + ((DATA >>> 12) + roPage) * 4), (DATA + roPage * 0x1000) | 1); // read-only
  a.mov(eax, PD); a.mov(cr3, eax);
  a.mov(eax, cr0); a.or(eax, 0x80010000); a.mov(cr0, eax); // PG | WP
  a.lidt(fword(idtr));
  // Based segments.
  for (const [s, r] of [[0, es], [3, ds], [4, fs], [5, gs], [2, ss]] as const) { a.mov(eax, SEG_SEL[s]!); a.mov(r, ax); }
  a.mov(esp, ESP0);
  // Registers and flags from the seed.
  const fl = (g.u32() & ARITH) | 0x2 | (g.chance(0.3) ? 0x400 : 0);
  a.push(fl); a.popf();
  for (let r = 0; r < 8; r++) if (r !== 4) a.db(movImm(r, g.val()));

  const checkpointMasks: number[] = [];
  const checkpointAfter: number[] = [];
  const instrAt = new Map<number, [number, number, boolean]>();
  const instrLabels: [ReturnType<Assembler['label']>, number, number, boolean][] = [];
  const instrBytes: string[] = [];
  let undef = 0;
  const hex = (b: number[]) => b.map((x) => x.toString(16).padStart(2, '0')).join('');
  for (let i = 0; i < count; i++) {
    let x: Ins | null = null;
    while (x === null) {
      try { x = instruction(g); } catch (e) { if (e !== RETRY) throw e; }
    }
    if (x.reads & undef) {
      // Define the flags again first: CMP EAX, imm32 writes all six.
      a.db([0x3d, ...u32(g.val())]);
      undef = 0;
    }
    if (x.setup.length) a.db(x.setup);
    if (x.ckBefore) {
      a.call(ckpt);
      checkpointMasks.push(~undef & 0xffffffff);
      checkpointAfter.push(i - 1);
    }
    const l = a.here();
    a.db(x.bytes);
    instrLabels.push([l, i, ARITH & ~undef, x.rmw === true]);
    instrBytes.push(hex(x.bytes));
    undef = (undef & ~x.defines) | x.undef;
    const forced = x.after !== undefined;
    if (forced || options.everyInstruction || ckRng() < density || i === count - 1) {
      a.call(ckpt);
      checkpointMasks.push(~undef & 0xffffffff);
      checkpointAfter.push(i);
    }
    for (const b of x.after ?? []) {
      if (b.length === 0) continue;
      a.db(b);
      a.call(ckpt);
      checkpointMasks.push(~undef & 0xffffffff);
      checkpointAfter.push(i);
    }
  }
  if (kind === 'fault' && g.chance(0.6)) {
    // A final instruction that faults: #UD (UD2, LOCK on a register or non-lockable form),
    // #GP (segment loads), #DE (divide by zero), #BP (INT3, a trap).
    const f = g.int(6);
    const bytes = f === 0 ? [0x0f, 0x0b]
      : f === 1 ? [0xf0, 0x01, 0xc0 | (g.int(8) << 3) | g.reg()]
      : f === 2 ? [0x0f, 0xff] // UD0
      : f === 3 ? [0xcc]
      : f === 4 ? [0x31, 0xc9, 0xf7, 0xf1] // xor ecx, ecx; div ecx
      : [0x8e, 0xd8 | g.pick([0, 3, 4, 5])]; // mov ds/es/fs/gs... via a selector in EAX
    if (f === 5) a.db(movImm(0, g.pick([0x40, 0x48, 0x50, 0x7b, 0x08 | 3, 0x38 | 0, 0x44]) | (g.u32() & 0xffff0000)));
    const l = a.here();
    a.db(bytes);
    instrLabels.push([l, count, ARITH & ~undef, false]);
    instrBytes.push(hex(bytes));
    a.call(ckpt);
    checkpointMasks.push(~undef & 0xffffffff);
    checkpointAfter.push(count);
  }
  a.jmp(finish);

  // Checkpoint: EDI ESI EBP ESP EBX EDX ECX EAX EFLAGS (pushad order, then pushfd).
  a.bind(ckpt);
  a.pushf(); a.pusha();
  a.mov(al, 0xcc); a.out(0xe9, al);
  a.xor(ecx, ecx);
  const ck = a.here();
  a.mov(al, byte({ base: esp, index: ecx }));
  a.out(0xe9, al);
  a.inc(ecx); a.cmp(ecx, 36); a.jnz(ck);
  a.popa(); a.popf();
  a.ret();

  // Exception stubs → fault: marker 0xFF, then CR2, EDI..EAX, vector, error code, EIP, CS, EFLAGS.
  const stubs: ReturnType<Assembler['label']>[] = [];
  for (let v = 0; v < 32; v++) {
    const l = a.here();
    stubs.push(l);
    if (!(v === 8 || (v >= 10 && v <= 14) || v === 17)) a.push(0);
    a.push(v);
    a.jmp(fault);
  }
  a.bind(fault);
  a.pusha();
  a.mov(eax, cr2); a.push(eax);
  a.mov(al, 0xff); a.out(0xe9, al);
  a.xor(ecx, ecx);
  const fk = a.here();
  a.mov(al, byte({ base: esp, index: ecx }));
  a.out(0xe9, al);
  a.inc(ecx); a.cmp(ecx, 56); a.jnz(fk);

  // Finish: paging off, flat DS, hash of the window (FNV-1a over dwords), exit.
  a.bind(finish);
  a.mov(eax, cr0); a.and(eax, 0x7fffffff); a.mov(cr0, eax);
  a.mov(eax, 0x10); a.mov(ds, ax);
  a.mov(esi, DATA); a.mov(ecx, WINDOW / 4); a.mov(edx, 0x811c9dc5);
  const hl = a.here();
  a.lodsd();
  a.xor(edx, eax); a.emit('imul', edx, edx, 0x01000193);
  a.loop(hl);
  a.mov(al, 0xfe); a.out(0xe9, al);
  for (let k = 0; k < 4; k++) { a.mov(eax, edx); if (k) a.shr(eax, 8 * k); a.out(0xe9, al); }
  a.mov(al, 0); a.out(0xf4, al);
  a.hlt();

  a.section('data', { kind: 'data' });
  a.align(8);
  a.bind(gdt);
  const desc = (base: number, type: number): number[] => {
    const limit = 0xfffff;
    return [limit & 0xff, (limit >> 8) & 0xff, base & 0xff, (base >> 8) & 0xff, (base >> 16) & 0xff, type, 0xc0 | ((limit >> 16) & 0xf), (base >>> 24) & 0xff];
  };
  a.db([0, 0, 0, 0, 0, 0, 0, 0]);
  a.db(desc(0, 0x9b)); // 0x08 code (accessed preset: QEMU does not set it)
  a.db(desc(0, 0x93)); // 0x10 flat data
  for (const s of [3, 0, 4, 5, 2]) a.db(desc(segBase(s), 0x93)); // 0x18 DS, 0x20 ES, 0x28 FS, 0x30 GS, 0x38 SS
  a.bind(gdtr);
  a.dw(8 * 8 - 1); a.dd(gdt);
  a.align(8);
  a.bind(idt);
  for (let v = 0; v < 32; v++) {
    // Interrupt gate, DPL 0, selector 0x08. The offset halves are patched from labels.
    a.dw(0); a.dw(0x08); a.dw(0x8e00); a.dw(0);
  }
  a.bind(idtr);
  a.dw(32 * 8 - 1); a.dd(idt);
  const built = a.build();
  // Patch the IDT with the stub addresses.
  const dataSec = built.sections.find((s) => s.name === 'data')!;
  const idtOff = built.address(idt) - dataSec.vaddr;
  for (let v = 0; v < 32; v++) {
    const addr = built.address(stubs[v]!);
    dataSec.bytes[idtOff + v * 8] = addr & 0xff;
    dataSec.bytes[idtOff + v * 8 + 1] = (addr >>> 8) & 0xff;
    dataSec.bytes[idtOff + v * 8 + 6] = (addr >>> 16) & 0xff;
    dataSec.bytes[idtOff + v * 8 + 7] = (addr >>> 24) & 0xff;
  }
  for (const [l, i, m, rmw] of instrLabels) instrAt.set(built.address(l), [i, m, rmw]);
  const image = imageFromAssembly(built, { name: 'fuzz-' + seed, entry: start });
  return { seed, image, checkpointMasks, checkpointAfter, instrAt, instrBytes, kind };
}
