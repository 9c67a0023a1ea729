/**
 * Chooses and builds iced-x86 instructions for a mnemonic and operands: the part of an
 * assembler that iced's JavaScript build leaves out. The candidate encodings of every
 * mnemonic come from iced's own op-code tables (legacy encoding, 16/32-bit modes, operand
 * kinds this assembler supports); a call matches its operands against them, and the
 * shortest encoding that iced accepts wins, ties going to iced's table order (which is
 * opcode order, so `mov eax, ebx` is 89 D8 as NASM and GAS emit it).
 */
import {
  Code, CodeExt, EncodingKind, Encoder, Instruction, MemoryOperand, MemorySizeExt, Mnemonic, OpCodeOperandKind,
  Register as IcedRegister,
} from 'iced-x86';
import { AddrExpr, Label, Mem, Reg, isRef, type Operand } from './operands.js';

/** Operand kinds, as this assembler classifies iced's OpCodeOperandKind. */
type Kind =
  | 'rm8' | 'rm16' | 'rm32' | 'r8' | 'r16' | 'r32' | 'mem' | 'moffs'
  | 'sreg' | 'cr' | 'dr' | 'tr' | 'fixreg'
  | 'imm8' | 'imm8s16' | 'imm8s32' | 'imm16' | 'imm32' | 'one'
  | 'rel8' | 'rel16' | 'rel32';

/** One encoding of a mnemonic. */
export interface Form {
  readonly code: Code;
  readonly kinds: readonly Kind[];
  /** For 'fixreg' kinds: the register the form implies (AL, DX, CS, ...). */
  readonly fixed: readonly (IcedRegister | null)[];
  /** 0, 16 or 32: the operand size the form implies. */
  readonly opSize: number;
  /** Memory operand size in bytes, 0 when the form says nothing. */
  readonly memSize: number;
  readonly mode16: boolean;
  readonly mode32: boolean;
}

const KIND_MAP: Partial<Record<string, Kind>> = {
  r8_or_mem: 'rm8', r16_or_mem: 'rm16', r32_or_mem: 'rm32',
  r8_reg: 'r8', r8_opcode: 'r8',
  r16_reg: 'r16', r16_opcode: 'r16', r16_rm: 'r16', r16_reg_mem: 'r16',
  r32_reg: 'r32', r32_opcode: 'r32', r32_rm: 'r32', r32_reg_mem: 'r32',
  mem: 'mem', mem_offs: 'moffs', seg_reg: 'sreg', cr_reg: 'cr', dr_reg: 'dr', tr_reg: 'tr',
  imm8: 'imm8', imm8sex16: 'imm8s16', imm8sex32: 'imm8s32', imm16: 'imm16', imm32: 'imm32', imm8_const_1: 'one',
  br16_1: 'rel8', br32_1: 'rel8', br16_2: 'rel16', br32_4: 'rel32',
};
const FIXED_REGS: Partial<Record<string, IcedRegister>> = {
  al: IcedRegister.AL, cl: IcedRegister.CL, ax: IcedRegister.AX, dx: IcedRegister.DX, eax: IcedRegister.EAX,
  es: IcedRegister.ES, cs: IcedRegister.CS, ss: IcedRegister.SS, ds: IcedRegister.DS, fs: IcedRegister.FS, gs: IcedRegister.GS,
};

let table: Map<string, Form[]> | null = null;

/**
 * Mnemonic (lower case, iced's names: `mov`, `iretd`, `pushfd`, `jne`) → its encodings.
 * Built once from iced's op-code tables (about 1,400 forms; a few tens of milliseconds).
 */
export function formTable(): Map<string, Form[]> {
  if (table) return table;
  table = new Map();
  const codeCount = Object.keys(Code).filter((k) => Number.isNaN(Number(k))).length;
  for (let c = 0; c < codeCount; c++) {
    const oc = CodeExt.opCode(c as Code);
    try {
      // decoderOption != 0: encodings a CPU only decodes in special modes (the 486 A-step
      // CMPXCHG at 0F A6/A7, LOADALL, UMOV, ...): never what a P6 kernel means.
      if (oc.encoding !== EncodingKind.Legacy || !oc.isInstruction || (!oc.mode16 && !oc.mode32) || oc.decoderOption !== 0) continue;
      const kinds: Kind[] = [];
      const fixed: (IcedRegister | null)[] = [];
      let ok = true;
      for (let i = 0; i < oc.opCount && ok; i++) {
        const name = OpCodeOperandKind[oc.opKind(i)]!;
        const k = KIND_MAP[name];
        const f = FIXED_REGS[name];
        if (k) { kinds.push(k); fixed.push(null); }
        else if (f !== undefined) { kinds.push('fixreg'); fixed.push(f); }
        else ok = false; // string, x87, SSE, MPX, far-pointer forms: not through the generic path
      }
      if (!ok) continue;
      const mn = Mnemonic[oc.mnemonic]!.toLowerCase();
      if (mn === 'jmpe' || mn === 'xbegin') continue;
      const ms = oc.memorySize;
      const form: Form = { code: c as Code, kinds, fixed, opSize: oc.operandSize, memSize: ms ? MemorySizeExt.size(ms) : 0, mode16: oc.mode16, mode32: oc.mode32 };
      let list = table.get(mn);
      if (!list) table.set(mn, (list = []));
      list.push(form);
    } finally {
      oc.free();
    }
  }
  return table;
}

/** The immediate's value for range checks (labels are unknown until layout). */
function immValue(op: Operand): number | null {
  return typeof op === 'number' ? op : null;
}

const fitsS8 = (v: number, bits: 16 | 32): boolean => {
  const n = bits === 16 ? (v << 16) >> 16 : v | 0;
  return n >= -128 && n <= 127 && (bits === 16 ? v >= -0x8000 && v <= 0xffff : true);
};

/** Does operand `op` fit operand kind `k` of `form`? */
function accepts(form: Form, i: number, op: Operand): boolean {
  const k = form.kinds[i]!;
  switch (k) {
    case 'rm8': case 'rm16': case 'rm32': {
      const size = k === 'rm8' ? 1 : k === 'rm16' ? 2 : 4;
      if (op instanceof Reg) return op.cls === 'gpr' && op.size === size;
      if (op instanceof Mem) return op.size === null || op.size === (form.memSize || size);
      return false;
    }
    case 'r8': return op instanceof Reg && op.cls === 'gpr' && op.size === 1;
    case 'r16': return op instanceof Reg && op.cls === 'gpr' && op.size === 2;
    case 'r32': return op instanceof Reg && op.cls === 'gpr' && op.size === 4;
    case 'mem': return op instanceof Mem && (op.size === null || form.memSize === 0 || op.size === form.memSize);
    case 'moffs':
      return op instanceof Mem && op.base === null && op.index === null && (op.size === null || op.size === form.memSize);
    case 'sreg': return op instanceof Reg && op.cls === 'seg';
    case 'cr': return op instanceof Reg && op.cls === 'cr';
    case 'dr': return op instanceof Reg && op.cls === 'dr';
    case 'tr': return op instanceof Reg && op.cls === 'tr';
    case 'fixreg': return op instanceof Reg && op.iced === form.fixed[i];
    case 'one': return op === 1;
    case 'imm8': { const v = immValue(op); return v !== null && v >= -0x80 && v <= 0xff; }
    case 'imm8s16': { const v = immValue(op); return v !== null && fitsS8(v, 16); }
    case 'imm8s32': { const v = immValue(op); return v !== null && fitsS8(v, 32); }
    case 'imm16': { const v = immValue(op); return v === null ? isRef(op) : v >= -0x8000 && v <= 0xffff; }
    case 'imm32': { const v = immValue(op); return v === null ? isRef(op) : v >= -0x8000_0000 && v <= 0xffff_ffff; }
    case 'rel8': case 'rel16': case 'rel32': return typeof op === 'number' || isRef(op);
  }
}

/** True for the kinds that are register-or-memory and carry a size the operand must match. */
const isBranchKind = (k: Kind): boolean => k === 'rel8' || k === 'rel16' || k === 'rel32';

/** Why no form matched, or the matching forms. */
export type MatchResult = { readonly forms: Form[] } | { readonly error: string };

/**
 * The forms of `mnemonic` whose operand kinds accept `ops` in a `bits`-bit section.
 * An unsized memory operand that leaves the size open is an error rather than a guess;
 * without any sized operand, forms of the other operand size (a 66 prefix) are dropped.
 */
export function matchForms(mnemonic: string, ops: readonly Operand[], bits: 16 | 32): MatchResult {
  const all = formTable().get(mnemonic);
  if (!all) return { error: `unknown mnemonic "${mnemonic}"` };
  let forms = all.filter((f) => (bits === 32 ? f.mode32 : f.mode16) && f.kinds.length === ops.length && ops.every((op, i) => accepts(f, i, op)));
  if (forms.length === 0) return { error: 'no encoding takes these operands' };
  const unsizedMem = ops.some((op) => op instanceof Mem && op.size === null);
  if (unsizedMem) {
    const sizes = new Set(forms.map((f) => f.memSize || (f.kinds.includes('rm8') ? 1 : f.kinds.includes('rm16') ? 2 : f.kinds.includes('rm32') ? 4 : 0)));
    if (sizes.size > 1) return { error: `operand size needed: give the memory operand a size (byte/word/dword(...)); possible sizes ${[...sizes].filter((s) => s).sort().join(', ')} bytes` };
  }
  const sized = ops.some((op) => (op instanceof Reg && op.cls === 'gpr') || (op instanceof Mem && op.size !== null));
  if (!sized) {
    const native = forms.filter((f) => f.opSize === 0 || f.opSize === bits);
    if (native.length > 0) forms = native;
  }
  return { forms };
}

/** True when a form takes a relative branch target. */
export function isBranchForm(f: Form): boolean {
  return f.kinds.length === 1 && isBranchKind(f.kinds[0]!);
}

/** Resolves labels and expressions to numbers (a placeholder before layout). */
export type Resolver = (ref: AddrExpr | Label) => number;

function memOperand(m: Mem, resolve: Resolver, bits: 16 | 32): MemoryOperand {
  let disp = m.disp;
  let displSize = disp === 0 ? 0 : 1;
  if (m.ref) {
    disp = (disp + resolve(m.ref)) | 0;
    displSize = bits === 16 ? 2 : 4; // a fixed size, so the length does not depend on the address
  }
  if (m.base === null && m.index === null) displSize = bits === 16 ? 2 : 4;
  if (bits === 16) disp &= 0xffff;
  // An absolute address (no base, no index) goes to iced unsigned: its moffs forms (A0–A3)
  // reject a negative displacement, i.e. any address at or above 2 GiB.
  const absolute = m.base === null && m.index === null;
  return new MemoryOperand(m.base?.iced ?? IcedRegister.None, m.index?.iced ?? IcedRegister.None, m.scale, BigInt(absolute ? disp >>> 0 : disp | 0), displSize, false, m.seg?.iced ?? IcedRegister.None);
}

function immNumber(op: Operand, resolve: Resolver): number {
  if (typeof op === 'number') return op;
  if (op instanceof Label || op instanceof AddrExpr) return resolve(op);
  throw new TypeError(`not an immediate: ${String(op)}`);
}

/** Masks an immediate to the width of its kind (iced checks unsigned ranges). */
function immFor(k: Kind, v: number): { signed: boolean; v: number } {
  switch (k) {
    case 'imm8': return { signed: false, v: v & 0xff };
    case 'imm16': return { signed: false, v: v & 0xffff };
    case 'imm8s16': return { signed: true, v: (v << 16) >> 16 };
    case 'imm8s32': return { signed: true, v: v | 0 };
    default: return { signed: false, v: v >>> 0 };
  }
}

/**
 * Builds the iced Instruction for `form` and `ops` (labels through `resolve`). The caller
 * frees it. Branch targets are absolute addresses.
 */
export function createInstruction(form: Form, ops: readonly Operand[], resolve: Resolver, bits: 16 | 32): Instruction {
  const code = form.code;
  const sig = form.kinds.map((k, i) => {
    const op = ops[i]!;
    if (op instanceof Reg) return 'R';
    if (op instanceof Mem) return 'M';
    return isBranchKind(k) ? 'B' : 'I';
  }).join('');
  const reg = (i: number): IcedRegister => (ops[i] as Reg).iced;
  // The create* factories take ownership of a MemoryOperand (wasm-bindgen moves it): no free.
  const m = (i: number): MemoryOperand => memOperand(ops[i] as Mem, resolve, bits);
  const imm = (i: number): { signed: boolean; v: number } => immFor(form.kinds[i]!, immNumber(ops[i]!, resolve));
  {
    switch (sig) {
      case '': return Instruction.create(code);
      case 'R': return Instruction.createReg(code, reg(0));
      case 'M': return Instruction.createMem(code, m(0));
      case 'I': { const a = imm(0); return a.signed ? Instruction.createI32(code, a.v) : Instruction.createU32(code, a.v); }
      case 'B': return Instruction.createBranch(code, BigInt(immNumber(ops[0]!, resolve) >>> 0));
      case 'RR': return Instruction.createRegReg(code, reg(0), reg(1));
      case 'RM': return Instruction.createRegMem(code, reg(0), m(1));
      case 'MR': return Instruction.createMemReg(code, m(0), reg(1));
      case 'RI': { const a = imm(1); return a.signed ? Instruction.createRegI32(code, reg(0), a.v) : Instruction.createRegU32(code, reg(0), a.v); }
      case 'MI': { const a = imm(1); return a.signed ? Instruction.createMemI32(code, m(0), a.v) : Instruction.createMemU32(code, m(0), a.v); }
      case 'IR': return Instruction.createU32Reg(code, imm(0).v, reg(1));
      case 'II': return Instruction.createU32U32(code, imm(0).v, imm(1).v);
      case 'RRR': return Instruction.createRegRegReg(code, reg(0), reg(1), reg(2));
      case 'RRI': { const a = imm(2); return a.signed ? Instruction.createRegRegI32(code, reg(0), reg(1), a.v) : Instruction.createRegRegU32(code, reg(0), reg(1), a.v); }
      case 'RMI': { const a = imm(2); return a.signed ? Instruction.createRegMemI32(code, reg(0), m(1), a.v) : Instruction.createRegMemU32(code, reg(0), m(1), a.v); }
      case 'MRR': return Instruction.createMemRegReg(code, m(0), reg(1), reg(2));
      case 'MRI': { const a = imm(2); return a.signed ? Instruction.createMemRegI32(code, m(0), reg(1), a.v) : Instruction.createMemRegU32(code, m(0), reg(1), a.v); }
      default: throw new TypeError(`operand pattern ${sig} is not supported`);
    }
  }
}

const encoders: Partial<Record<16 | 32, Encoder>> = {};

/**
 * Forms whose operand-size prefix does nothing in 32-bit code (SDM: the operand size is
 * ignored by LTR, LLDT, VERR, VERW, LMSW and MOV Sreg, r/m16); iced emits 66 for them, GAS
 * and NASM do not, so it is dropped.
 */
const NO_66 = new Set<Code>([Code.Mov_Sreg_rm16, Code.Ltr_rm16, Code.Lldt_rm16, Code.Verr_rm16, Code.Verw_rm16, Code.Lmsw_rm16]);
const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/** Encodes a form's instruction (see `encode`), dropping a useless 66 prefix (NO_66). */
export function encodeForm(form: Form, ins: Instruction, ip: number, bits: 16 | 32): Uint8Array | string {
  const r = encode(ins, ip, bits);
  if (typeof r === 'string' || bits !== 32 || !NO_66.has(form.code)) return r;
  for (let i = 0; i < r.length && PREFIXES.has(r[i]!); i++) {
    if (r[i] === 0x66) return Uint8Array.from([...r.subarray(0, i), ...r.subarray(i + 1)]);
  }
  return r;
}

/**
 * Encodes one instruction at `ip`; returns its bytes, or the encoder's message. Frees
 * `ins`. The encoder is reused (one per bitness) and its buffer is cleared after an error.
 */
export function encode(ins: Instruction, ip: number, bits: 16 | 32): Uint8Array | string {
  const enc = (encoders[bits] ??= new Encoder(bits));
  try {
    enc.encode(ins, BigInt(ip >>> 0));
    return enc.takeBuffer();
  } catch (e) {
    enc.takeBuffer();
    return e instanceof Error ? e.message : String(e);
  } finally {
    ins.free();
  }
}
