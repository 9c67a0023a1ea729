/**
 * Where the 80286 (the CPU the vectors were captured from) and virtlab's CPU (an i686 /
 * P6-class IA-32 processor) legitimately differ, expressed as
 *  - FLAGS masks: flags an instruction leaves undefined, which the 286 and a P6 compute
 *    differently; they are not compared (also not in an exception's pushed FLAGS image);
 *  - exclusions: vectors where the architectures themselves differ (an opcode the 386
 *    redefined, a fault the P6 reports with another vector, ...), skipped with a reason.
 *
 * Each rule has an id and a reason; `EXCLUSIONS.md` lists them with their counts
 * (regenerate it with `run-all.ts --write-exclusions-doc`).
 */
import type { Vector } from './runner.js';

/** The comparison rules for one vector. */
export interface VectorRules {
  /** Non-null: the vector is not run. */
  exclude: { id: string; reason: string } | null;
  /** FLAGS bits not compared (in the final FLAGS and in an exception's pushed FLAGS image). */
  flagsMask: number;
  /** Extra FLAGS bits not compared in a pushed FLAGS image only. */
  pushedFlagsMask: number;
  /** Register bits compared (default all 16). */
  regMask: Partial<Record<'ax' | 'bx' | 'cx' | 'dx' | 'sp' | 'bp' | 'si' | 'di', number>>;
  /** RAM bytes compared under a mask: [physical address, bits compared]. */
  ramMask: (v: Vector) => [number, number][];
}

const CF = 0x001, PF = 0x004, AF = 0x010, ZF = 0x040, SF = 0x080, OF = 0x800;
/** IOPL (12–13), NT (14) and bit 15. */
const HIGH4 = 0xf000;

/** A FLAGS-mask rule: `mask` applies to the vectors of `suites` that satisfy `when`. */
export interface FlagMaskRule {
  id: string;
  suites: string[];
  mask: number;
  reason: string;
  when?: (d: Decoded, v: Vector) => boolean;
  /** The mask depends on the vector (e.g. OF only when the count is not 1). */
  maskFor?: (d: Decoded, v: Vector) => number;
}

/** An exclusion rule: vectors of `suites` (all of them when `when` is absent) are skipped. */
export interface ExclusionRule {
  id: string;
  suites: string[];
  reason: string;
  when?: (d: Decoded, v: Vector) => boolean;
}

/** The decoded shape of a vector's instruction (enough for the rules). */
export interface Decoded {
  /** Index of the opcode byte in `bytes` (after prefixes). */
  opIndex: number;
  opcode: number;
  prefixes: number[];
  /** Last segment override prefix, or -1. */
  segPrefix: number;
  mod: number;
  reg: number;
  rm: number;
  /** Index of the first byte after ModR/M and displacement (the immediate, if any). */
  immIndex: number;
  /** The memory operand's default segment is SS (BP-based addressing). */
  ssBased: boolean;
}

const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0xf0, 0xf2, 0xf3]);
const HAS_MODRM = new Set([
  0x00, 0x01, 0x02, 0x03, 0x08, 0x09, 0x0a, 0x0b, 0x10, 0x11, 0x12, 0x13, 0x18, 0x19, 0x1a, 0x1b,
  0x20, 0x21, 0x22, 0x23, 0x28, 0x29, 0x2a, 0x2b, 0x30, 0x31, 0x32, 0x33, 0x38, 0x39, 0x3a, 0x3b,
  0x62, 0x69, 0x6b, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c,
  0x8d, 0x8e, 0x8f, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xd0, 0xd1, 0xd2, 0xd3,
  0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xf6, 0xf7, 0xfe, 0xff,
]);

/** Decodes prefixes, opcode and ModR/M of a vector's (16-bit, real-mode) instruction. */
export function decode(v: Vector): Decoded {
  const b = v.bytes;
  let i = 0;
  const prefixes: number[] = [];
  let segPrefix = -1;
  while (i < b.length && PREFIXES.has(b[i]!)) {
    if (b[i] === 0x26 || b[i] === 0x2e || b[i] === 0x36 || b[i] === 0x3e) segPrefix = b[i]!;
    prefixes.push(b[i++]!);
  }
  const opIndex = i;
  const opcode = b[i++]!;
  let mod = -1, reg = -1, rm = -1, ssBased = false;
  if (HAS_MODRM.has(opcode)) {
    const m = b[i++]!;
    mod = m >> 6; reg = (m >> 3) & 7; rm = m & 7;
    if (mod === 0 && rm === 6) i += 2;
    else if (mod === 1) i += 1;
    else if (mod === 2) i += 2;
    ssBased = mod !== 3 && (rm === 2 || rm === 3 || (rm === 6 && mod !== 0));
  }
  return { opIndex, opcode, prefixes, segPrefix, mod, reg, rm, immIndex: i, ssBased };
}

/** The effective segment of the memory operand is SS (default or by override). */
function stackSegmentOperand(d: Decoded): boolean {
  return d.segPrefix === 0x36 || (d.segPrefix === -1 && d.ssBased);
}

/** Shift/rotate count as the CPU uses it (both the 286 and the P6 mask it to 5 bits). */
function shiftCount(d: Decoded, v: Vector): number {
  const op = d.opcode;
  if (op === 0xd0 || op === 0xd1) return 1;
  if (op === 0xd2 || op === 0xd3) return v.initial.regs.cx & 0x1f;
  return v.bytes[d.immIndex]! & 0x1f;
}

const ALL6 = CF | PF | AF | ZF | SF | OF;
const groups = (ops: string[], regs: number[]): string[] => ops.flatMap((o) => regs.map((r) => `${o}.${r}`));
const SHIFT_GROUPS = ['C0', 'C1', 'D0', 'D1', 'D2', 'D3'];

/** Flags the SDM leaves undefined, per instruction. */
export const FLAG_MASK_RULES: FlagMaskRule[] = [
  {
    id: 'undef-logic-af',
    suites: ['08', '09', '0A', '0B', '0C', '0D', '20', '21', '22', '23', '24', '25', '30', '31', '32', '33', '34', '35',
      '84', '85', 'A8', 'A9', '80.1', '80.4', '80.6', '81.1', '81.4', '81.6', '82.1', '82.4', '82.6', '83.1', '83.4', '83.6',
      'F6.0', 'F6.1', 'F7.0', 'F7.1'],
    mask: AF,
    reason: 'AND/OR/XOR/TEST leave AF undefined (SDM); the 286 and a P6 leave different values',
  },
  {
    id: 'undef-mul',
    suites: ['F6.4', 'F6.5', 'F7.4', 'F7.5', '69', '6B'],
    mask: SF | ZF | AF | PF,
    reason: 'MUL/IMUL leave SF, ZF, AF and PF undefined (only CF and OF are defined)',
  },
  {
    id: 'undef-div',
    suites: ['F6.6', 'F6.7', 'F7.6', 'F7.7'],
    mask: ALL6,
    reason: 'DIV/IDIV leave all six arithmetic flags undefined (also in the FLAGS image pushed by a #DE)',
  },
  {
    id: 'undef-shift-af',
    suites: groups(SHIFT_GROUPS, [4, 5, 6, 7]),
    mask: AF,
    reason: 'SHL/SHR/SAR with a nonzero count leave AF undefined',
    when: (d, v) => shiftCount(d, v) !== 0,
  },
  {
    id: 'undef-shift-of',
    suites: groups(SHIFT_GROUPS, [0, 1, 2, 3, 4, 5, 6, 7]),
    mask: OF,
    reason: 'shifts and rotates leave OF undefined when the (5-bit masked) count is not 1',
    when: (d, v) => shiftCount(d, v) > 1,
  },
  {
    id: 'undef-aaa-aas',
    suites: ['37', '3F'],
    mask: OF | SF | ZF | PF,
    reason: 'AAA/AAS leave OF, SF, ZF and PF undefined',
  },
  {
    id: 'undef-aam-aad',
    suites: ['D4', 'D5'],
    mask: OF | AF | CF,
    reason: 'AAM/AAD leave OF, AF and CF undefined',
  },
  {
    id: 'undef-daa-das',
    suites: ['27', '2F'],
    mask: OF,
    reason: 'DAA/DAS leave OF undefined',
  },
  {
    id: 'popf-iopl-nt',
    suites: ['9D', 'CF'],
    mask: HIGH4,
    reason: 'POPF/IRET in real mode: the 286 keeps IOPL/NT (bits 12-14) at 0, a 386+ at CPL 0 loads them from the popped image',
    when: (_d, v) => popsHighFlags(v),
  },
];

/** The FLAGS image POPF/IRET pops has bits 12–15 set. */
function popsHighFlags(v: Vector): boolean {
  const r = v.initial.regs;
  const ram = new Map(v.initial.ram);
  const sp = r.sp;
  const depth = v.bytes.includes(0xcf) ? 4 : 0;
  const a = (r.ss << 4) + ((sp + depth + 1) & 0xffff);
  return ((ram.get(a) ?? 0) & 0xf0) !== 0;
}

/** Opcodes whose stack accesses (SS:SP) may fault. */
const STACK_OPS = new Set([0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57,
  0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x68, 0x6a, 0x8f, 0x9a, 0x9c, 0x9d, 0xc2, 0xc3, 0xc8,
  0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xe8, 0xff]);

/** The 16-bit effective address of the vector's memory operand (initial registers). */
export function effectiveAddress(d: Decoded, v: Vector): number {
  const r = v.initial.regs, b = v.bytes;
  const at = d.opIndex + 2;
  const disp8 = (b[at]! << 24) >> 24, disp16 = b[at]! | (b[at + 1]! << 8);
  const base = [r.bx + r.si, r.bx + r.di, r.bp + r.si, r.bp + r.di, r.si, r.di, r.bp, r.bx][d.rm]!;
  if (d.mod === 0) return (d.rm === 6 ? disp16 : base) & 0xffff;
  return (base + (d.mod === 1 ? disp8 : disp16)) & 0xffff;
}

/**
 * The 286 raised #GP (13) for a segment overrun on an SS-relative access (the stack, or a
 * BP-based/SS-override operand): a P6 reports that as #SS (12).
 */
function stackOverrun(d: Decoded, v: Vector): boolean {
  if (v.exception?.number !== 13) return false;
  const memOperand = d.mod >= 0 && d.mod !== 3;
  if (memOperand && effectiveAddress(d, v) === 0xffff) return stackSegmentOperand(d);
  if (memOperand && stackSegmentOperand(d)) return true;
  if (STRING_OPS.has(d.opcode)) return stringSourceFault(d, v) && d.segPrefix === 0x36;
  return STACK_OPS.has(d.opcode);
}

/** String instructions that can overrun a segment (word forms) and those that read DS:SI. */
const STRING_OPS = new Set([0x6d, 0x6f, 0xa5, 0xa7, 0xab, 0xad, 0xaf]);
const READS_SOURCE = new Set([0x6f, 0xa5, 0xa7, 0xad]);

/**
 * The faulting access of a string instruction's #GP is the source (DS:SI or override): the
 * 286 advanced SI past the faulting element, so SI was 0xFFFF before that.
 */
function stringSourceFault(d: Decoded, v: Vector): boolean {
  if (!READS_SOURCE.has(d.opcode)) return false;
  const si = v.final.regs.si ?? v.initial.regs.si;
  const df = (v.initial.regs.flags & 0x400) !== 0;
  return ((si + (df ? 2 : -2)) & 0xffff) === 0xffff;
}

/** Instruction length (the vector's bytes without the HLT that follows). */
function instructionLength(v: Vector): number {
  return v.bytes.length - 1;
}

/** Register-comparison masks: [id, suites, registers not compared, reason, condition]. */
export interface RegMaskRule {
  id: string;
  suites: string[];
  regs: ('ax' | 'bx' | 'cx' | 'dx' | 'sp' | 'bp' | 'si' | 'di')[];
  reason: string;
  when?: (d: Decoded, v: Vector) => boolean;
}

export const REG_MASK_RULES: RegMaskRule[] = [
  {
    id: 'string-overrun-regs',
    suites: ['6D', '6F', 'A5', 'A7', 'AB', 'AD', 'AF'],
    regs: ['si', 'di', 'cx'],
    reason: 'word string instruction faulting (#GP) at offset 0xFFFF: the 286 has already advanced SI/DI (and decremented CX under REP) for the faulting element; a P6 faults with them at the faulting iteration (restartable). The rest (pushed frame, memory, flags) is compared',
    when: (_d, v) => v.exception?.number === 13,
  },
];

/** Instructions a P6 accepts a LOCK prefix on (with a memory destination). */
function lockable(d: Decoded): boolean {
  if (d.mod === 3 || d.mod < 0) return false;
  const op = d.opcode;
  if (op < 0x40 && (op & 7) <= 1 && (op & 0x38) !== 0x38) return true; // ADD..XOR r/m, r (not CMP)
  if (op >= 0x80 && op <= 0x83) return d.reg !== 7;
  if (op === 0x86 || op === 0x87) return true;
  if (op === 0xf6 || op === 0xf7) return d.reg === 2 || d.reg === 3;
  if (op === 0xfe || op === 0xff) return d.reg === 0 || d.reg === 1;
  return false;
}

/** Vectors not run, with the reason. */
export const EXCLUSION_RULES: ExclusionRule[] = [
  {
    id: 'lock-ud',
    suites: ['*'],
    reason: 'LOCK prefix on an instruction that is not a locked read-modify-write of memory: a P6 raises #UD, the 286 just asserts LOCK# and executes it',
    // Where the 286 raised #UD anyway (e.g. LEA with a register operand), both agree.
    when: (d, v) => d.prefixes.includes(0xf0) && !lockable(d) && v.exception?.number !== 6,
  },
  {
    id: 'ss-overrun-vector',
    suites: ['*'],
    reason: 'segment overrun (offset 0xFFFF word, or stack wrap) on an SS-relative access: the 286 in real mode raises #GP (13), a P6 raises #SS (12)',
    when: stackOverrun,
  },
  {
    id: 'length-limit-10',
    suites: ['*'],
    reason: 'instruction longer than 10 bytes (redundant prefixes): the 286 raises #GP (13), a P6 allows up to 15 bytes',
    when: (_d, v) => instructionLength(v) > 10 && v.exception?.number === 13,
  },
  {
    id: 'mov-sreg-fs-gs',
    suites: ['8C', '8E'],
    reason: 'MOV to/from segment register 4/5: #UD on the 286, FS/GS on a 386+ (added by the 386)',
    when: (d) => d.reg === 4 || d.reg === 5,
  },
  {
    id: 'esc-fpu',
    suites: ['D8'],
    reason: 'ESC (x87) opcodes: the 286 was captured without a 287 and with MSW.EM = 0, so ESC only reads its memory operand and goes on (#GP at offset 0xFFFF); virtlab has no x87 (CPUID.FPU = 0) and raises #NM for every ESC, as a P6 does with CR0.EM = 1 (a P6 with its x87 enabled would execute the FPU instruction)',
  },
];

/** Rules for one vector of one suite. */
export function rulesFor(suite: string, v: Vector): VectorRules {
  const d = decode(v);
  let exclude: VectorRules['exclude'] = null;
  for (const r of EXCLUSION_RULES) {
    if ((r.suites[0] === '*' || r.suites.includes(suite)) && (!r.when || r.when(d, v))) { exclude = { id: r.id, reason: r.reason }; break; }
  }
  let flagsMask = 0;
  for (const r of FLAG_MASK_RULES) {
    if (r.suites.includes(suite) && (!r.when || r.when(d, v))) flagsMask |= r.maskFor ? r.maskFor(d, v) : r.mask;
  }
  const regMask: VectorRules['regMask'] = {};
  for (const r of REG_MASK_RULES) {
    if (r.suites.includes(suite) && (!r.when || r.when(d, v))) for (const n of r.regs) regMask[n] = 0;
  }
  return { exclude, flagsMask, pushedFlagsMask: 0, regMask, ramMask: noRamMask };
}

const noRamMask = (): [number, number][] => [];

export { stackSegmentOperand };

/**
 * Differences the brief asked about that the data shows are not differences (so there is
 * no rule for them), and quirks of the data the harness handles.
 */
export const FINDINGS: string[] = [
  'PUSHF (9C): in real mode the 286 pushes FLAGS bits 12-15 as 0 (IOPL/NT cannot be set there, bit 15 is 0); a P6 with IOPL = NT = 0 pushes the same, so PUSHF vectors are compared whole. The difference is on the POPF/IRET side (rule `popf-iopl-nt`).',
  'Shift/rotate counts: the 286 masks the count to 5 bits, as a P6 does (over 1,000 vectors use counts of 32 or more and are compared).',
  'A word access at offset 0xFFFF raises #GP (13) on the 286 in real mode, as on a P6 (compared), except for SS-relative accesses (rule `ss-overrun-vector`) and word string instructions (rule `string-overrun-regs`).',
  'DIV/IDIV #DE: the 286 pushes the IP of the faulting instruction (including its prefixes), as a P6 does (compared). No vector has an IDIV quotient of exactly -128/-32768 (the 8086 faulted there; the 286 and a P6 do not), so no rule.',
  'Exceptions: the FLAGS image lies at SS:(SP-2) of the initial SS:SP; the suite\'s `flag_address` is that address rounded down to even (one byte low for an odd SP, 258 vectors), so the harness computes the address itself.',
  'Opcodes the 386 added (0F xx beyond the 286\'s, 64-67 prefixes, long Jcc): the subset has no 0F, 63-67, F1 or C8 files and no vector uses 64-67 as a prefix, so no rule.',
  'LOADALL (0F 05) and the 286 protected-mode instructions (0F 00/0F 01): not in the subset.',
  'SALC (D6): executes on a P6 as on the 286 (AL = CF ? FF : 00); compared.',
];
