/**
 * The operand language of the assembler: registers as typed constants, memory operands,
 * labels and address expressions. Plain immutable objects: nothing here touches iced-x86's
 * wasm module, so building operands is cheap and allocation-light.
 */
import { Register as IcedRegister } from 'iced-x86';

/** The register classes the assembler accepts. */
export type RegisterClass = 'gpr' | 'seg' | 'cr' | 'dr' | 'tr';

/** A machine register. Use the exported constants (`eax`, `cr3`, `ds`, ...); never build one. */
export class Reg {
  /** @internal */
  constructor(
    /** Lower-case name as in NASM (`eax`, `cr3`). */
    readonly name: string,
    /** Width in bytes: 1, 2 or 4 for general registers; 2 for segment registers; 4 for control/debug registers. */
    readonly size: 1 | 2 | 4,
    readonly cls: RegisterClass,
    /** iced-x86's Register value. */
    readonly iced: IcedRegister,
  ) {}
  toString(): string { return this.name; }
}

const gpr = (name: string, size: 1 | 2 | 4, iced: IcedRegister): Reg => new Reg(name, size, 'gpr', iced);

export const eax = gpr('eax', 4, IcedRegister.EAX);
export const ecx = gpr('ecx', 4, IcedRegister.ECX);
export const edx = gpr('edx', 4, IcedRegister.EDX);
export const ebx = gpr('ebx', 4, IcedRegister.EBX);
export const esp = gpr('esp', 4, IcedRegister.ESP);
export const ebp = gpr('ebp', 4, IcedRegister.EBP);
export const esi = gpr('esi', 4, IcedRegister.ESI);
export const edi = gpr('edi', 4, IcedRegister.EDI);
export const ax = gpr('ax', 2, IcedRegister.AX);
export const cx = gpr('cx', 2, IcedRegister.CX);
export const dx = gpr('dx', 2, IcedRegister.DX);
export const bx = gpr('bx', 2, IcedRegister.BX);
export const sp = gpr('sp', 2, IcedRegister.SP);
export const bp = gpr('bp', 2, IcedRegister.BP);
export const si = gpr('si', 2, IcedRegister.SI);
export const di = gpr('di', 2, IcedRegister.DI);
export const al = gpr('al', 1, IcedRegister.AL);
export const cl = gpr('cl', 1, IcedRegister.CL);
export const dl = gpr('dl', 1, IcedRegister.DL);
export const bl = gpr('bl', 1, IcedRegister.BL);
export const ah = gpr('ah', 1, IcedRegister.AH);
export const ch = gpr('ch', 1, IcedRegister.CH);
export const dh = gpr('dh', 1, IcedRegister.DH);
export const bh = gpr('bh', 1, IcedRegister.BH);

export const es = new Reg('es', 2, 'seg', IcedRegister.ES);
export const cs = new Reg('cs', 2, 'seg', IcedRegister.CS);
export const ss = new Reg('ss', 2, 'seg', IcedRegister.SS);
export const ds = new Reg('ds', 2, 'seg', IcedRegister.DS);
export const fs = new Reg('fs', 2, 'seg', IcedRegister.FS);
export const gs = new Reg('gs', 2, 'seg', IcedRegister.GS);

export const cr0 = new Reg('cr0', 4, 'cr', IcedRegister.CR0);
export const cr2 = new Reg('cr2', 4, 'cr', IcedRegister.CR2);
export const cr3 = new Reg('cr3', 4, 'cr', IcedRegister.CR3);
export const cr4 = new Reg('cr4', 4, 'cr', IcedRegister.CR4);

export const dr0 = new Reg('dr0', 4, 'dr', IcedRegister.DR0);
export const dr1 = new Reg('dr1', 4, 'dr', IcedRegister.DR1);
export const dr2 = new Reg('dr2', 4, 'dr', IcedRegister.DR2);
export const dr3 = new Reg('dr3', 4, 'dr', IcedRegister.DR3);
export const dr6 = new Reg('dr6', 4, 'dr', IcedRegister.DR6);
export const dr7 = new Reg('dr7', 4, 'dr', IcedRegister.DR7);

/** Every register constant by name (for tools that parse register names). */
export const REGISTERS: Readonly<Record<string, Reg>> = Object.freeze(Object.fromEntries(
  [eax, ecx, edx, ebx, esp, ebp, esi, edi, ax, cx, dx, bx, sp, bp, si, di, al, cl, dl, bl, ah, ch, dh, bh,
    es, cs, ss, ds, fs, gs, cr0, cr2, cr3, cr4, dr0, dr1, dr2, dr3, dr6, dr7].map((r) => [r.name, r]),
));

/**
 * A position in the program, named or anonymous. Create with `Assembler.label()`, place with
 * `Assembler.bind()`. Usable wherever an immediate, a displacement or a branch target goes
 * (its virtual address), or as `l.plus(n)` / `l.phys()` for derived addresses.
 */
export class Label {
  /** @internal section index once bound, -1 before. */
  section = -1;
  /** @internal item index in the section the label stands before. */
  item = -1;
  /** @internal */
  constructor(
    /** The symbol name, or an internal `.Ln` name for anonymous labels. */
    readonly name: string,
    /** False for anonymous labels, which are not exported as symbols. */
    readonly named: boolean,
    /** @internal which assembler owns it (labels cannot cross assemblers). */
    readonly owner: object,
  ) {}
  /** True once `bind` placed it. */
  get bound(): boolean { return this.section >= 0; }
  /** The address `n` bytes after this label. */
  plus(n: number): AddrExpr { return new AddrExpr(this, n, false, null); }
  /** The label's physical (load) address, e.g. for boot code that runs before paging. */
  phys(): AddrExpr { return new AddrExpr(this, 0, true, null); }
  /** The distance from `start` to this label, in bytes (e.g. a table's size). */
  minus(start: Label): AddrExpr { return new AddrExpr(this, 0, false, start); }
  toString(): string { return this.name; }
}

/** `label (+ addend) (- other label)`, as a virtual or physical address. */
export class AddrExpr {
  constructor(
    readonly label: Label,
    readonly addend: number,
    /** Use the physical (load) address of `label` instead of its virtual address. */
    readonly physical: boolean,
    /** Subtract this label's address (same address space as `label`). */
    readonly minusLabel: Label | null,
  ) {}
  /** The same expression `n` bytes further. */
  plus(n: number): AddrExpr { return new AddrExpr(this.label, this.addend + n, this.physical, this.minusLabel); }
  /** The physical address (load address) instead of the virtual one. */
  phys(): AddrExpr { return new AddrExpr(this.label, this.addend, true, this.minusLabel); }
  toString(): string {
    let s = this.physical ? `phys(${this.label.name})` : this.label.name;
    if (this.minusLabel) s += `-${this.minusLabel.name}`;
    if (this.addend) s += this.addend > 0 ? `+${this.addend}` : `${this.addend}`;
    return s;
  }
}

/** A value resolved when the program is laid out: a label or an address expression. */
export type Ref = Label | AddrExpr;
/** An immediate: a number (taken modulo 2^32, signed or unsigned), or a resolved address. */
export type Imm = number | Ref;

/** Memory operand sizes in bytes (6: a 16:32 far pointer or a GDTR/IDTR image). */
export type MemSize = 1 | 2 | 4 | 6 | 8 | 10;

/** A memory operand: `seg:[base + index*scale + disp]`, with an optional size. */
export class Mem {
  constructor(
    readonly base: Reg | null,
    readonly index: Reg | null,
    readonly scale: 1 | 2 | 4 | 8,
    /** Numeric displacement (added to `ref` when both are given). */
    readonly disp: number,
    /** A label-relative displacement, resolved at layout (always encoded as disp32/disp16). */
    readonly ref: AddrExpr | null,
    readonly seg: Reg | null,
    /** Operand size in bytes; null lets the other operand decide (an error when nothing does). */
    readonly size: MemSize | null,
  ) {}
  toString(): string {
    const parts: string[] = [];
    if (this.base) parts.push(this.base.name);
    if (this.index) parts.push(this.scale === 1 ? this.index.name : `${this.index.name}*${this.scale}`);
    if (this.ref) parts.push(this.ref.toString());
    if (this.disp || parts.length === 0) parts.push(this.disp < 0 ? `-0x${(-this.disp).toString(16)}` : `0x${(this.disp >>> 0).toString(16)}`);
    const sz = this.size === null ? '' : `${SIZE_NAMES[this.size]} `;
    return `${sz}${this.seg ? this.seg.name + ':' : ''}[${parts.join('+').replace('+-', '-')}]`;
  }
}

const SIZE_NAMES: Record<MemSize, string> = { 1: 'byte', 2: 'word', 4: 'dword', 6: 'fword', 8: 'qword', 10: 'tword' };

/** The fields of a memory operand, all optional. */
export interface MemSpec {
  readonly base?: Reg;
  readonly index?: Reg;
  readonly scale?: 1 | 2 | 4 | 8;
  /** A number, or a label/expression for an absolute address (optionally plus `base`/`index`). */
  readonly disp?: number | Ref;
  /** Segment override. */
  readonly seg?: Reg;
  readonly size?: MemSize;
}

/** What the memory helpers accept as an address: a base register, an absolute address, or all fields. */
export type Address = Reg | Ref | number | MemSpec;

const toExpr = (r: Ref): AddrExpr => (r instanceof Label ? new AddrExpr(r, 0, false, null) : r);

/** True for a label or address expression. */
export function isRef(v: unknown): v is Ref {
  return v instanceof Label || v instanceof AddrExpr;
}

/** @internal normalizes a label to an expression. */
export function refExpr(r: Ref): AddrExpr { return toExpr(r); }

/**
 * A memory operand from its fields: `mem({ base: ebx, index: ecx, scale: 4, disp: 8, size: 4 })`.
 * Checks what x86 can address: 32-bit or 16-bit registers (not mixed), ESP never an index,
 * scale 1/2/4/8, a segment register as override.
 */
export function mem(spec: MemSpec): Mem {
  const { base = null, index = null, scale = 1, seg = null, size = null } = spec;
  for (const [what, r] of [['base', base], ['index', index]] as const) {
    if (r && (r.cls !== 'gpr' || r.size === 1)) throw new TypeError(`memory operand: ${what} ${r.name} must be a 32- or 16-bit general register`);
  }
  if (base && index && base.size !== index.size) throw new TypeError(`memory operand: base ${base.name} and index ${index.name} have different sizes`);
  if (index === esp) throw new TypeError('memory operand: esp cannot be an index register');
  if (![1, 2, 4, 8].includes(scale)) throw new TypeError(`memory operand: scale ${scale} is not 1, 2, 4 or 8`);
  if (seg && seg.cls !== 'seg') throw new TypeError(`memory operand: ${seg.name} is not a segment register`);
  let disp = 0;
  let ref: AddrExpr | null = null;
  if (typeof spec.disp === 'number') {
    if (!Number.isInteger(spec.disp) || spec.disp < -0x8000_0000 || spec.disp > 0xffff_ffff) throw new RangeError(`memory operand: displacement ${spec.disp} is not a 32-bit integer`);
    disp = spec.disp | 0;
  } else if (spec.disp !== undefined) {
    ref = toExpr(spec.disp);
  }
  // Without an index the scale means nothing; a scale > 1 would make iced emit a useless SIB.
  return new Mem(base, index, index ? scale : 1, disp, ref, seg, size);
}

function sized(size: MemSize | null, addr: Address, disp?: number | Ref): Mem {
  let spec: MemSpec;
  if (addr instanceof Reg) spec = { base: addr, disp: disp ?? 0 };
  else if (typeof addr === 'number' || isRef(addr)) {
    if (disp !== undefined) throw new TypeError('memory operand: a second displacement only goes with a base register');
    spec = { disp: addr };
  } else {
    if (disp !== undefined) throw new TypeError('memory operand: give the displacement inside the object');
    spec = addr;
  }
  return mem(size === null ? spec : { ...spec, size });
}

/** An 8-bit memory operand: `byte(ebx)`, `byte(esi, 3)`, `byte(flagsLabel)`, `byte({ base, index, scale, disp })`. */
export function byte(addr: Address, disp?: number | Ref): Mem { return sized(1, addr, disp); }
/** A 16-bit memory operand (same forms as `byte`). */
export function word(addr: Address, disp?: number | Ref): Mem { return sized(2, addr, disp); }
/** A 32-bit memory operand: `dword(ebx, 8)` is `dword [ebx+8]`. */
export function dword(addr: Address, disp?: number | Ref): Mem { return sized(4, addr, disp); }
/** A 48-bit memory operand (a far pointer, or the GDTR/IDTR image of lgdt/lidt/sgdt/sidt). */
export function fword(addr: Address, disp?: number | Ref): Mem { return sized(6, addr, disp); }
/** A 64-bit memory operand (cmpxchg8b). */
export function qword(addr: Address, disp?: number | Ref): Mem { return sized(8, addr, disp); }
/** A memory operand without a size, for instructions where the size is implied (lea, invlpg, lgdt, or a register operand). */
export function ptr(addr: Address, disp?: number | Ref): Mem { return sized(null, addr, disp); }

/** A far pointer `selector:offset` for `jmpFar`/`callFar`. */
export interface FarTarget {
  readonly selector: number;
  readonly offset: number | Ref;
}

/** Any instruction operand. */
export type Operand = Reg | Mem | Imm;

/** Text for an operand in messages. */
export function operandText(op: Operand): string {
  if (typeof op === 'number') return op < 0 ? `-0x${(-op).toString(16)}` : `0x${op.toString(16)}`;
  return op.toString();
}
