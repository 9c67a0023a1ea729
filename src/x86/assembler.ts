/**
 * An IA-32 assembler for building guests from TypeScript. Instructions are chosen and
 * encoded by iced-x86's encoder (see encoding.ts); this module adds what an assembler adds
 * around an encoder: sections with their own origins, labels with forward references,
 * branch relaxation (short where the target is near), data directives, alignment, symbols
 * and pv-op sites.
 *
 * ```ts
 * const a = new Assembler({ bits: 32, origin: 0x100000 });
 * const msg = a.label('msg');
 * a.mov(esi, msg);
 * const loop = a.here();
 * a.lodsb(); a.test(al, al); a.jz(done); a.out(0xe9, al); a.jmp(loop);
 * ...
 * a.section('rodata'); a.bind(msg); a.asciz('hello\n');
 * const image = imageFromAssembly(a.build(), { name: 'hello', entry: start }); // src/guest/image.ts
 * ```
 */
import { Instruction, RepPrefixKind, Register as IcedRegister, Code } from 'iced-x86';
import { createInstruction, encode, encodeForm, isBranchForm, matchForms, type Form } from './encoding.js';
import { AddrExpr, Label, Mem, Reg, isRef, operandText, refExpr, type FarTarget, type Imm, type Operand, type Ref } from './operands.js';
import { checkPvopBody, type PvopKind, type PvopSite } from './pvop.js';

/** What a section holds: decides its segment flags and what may go in it. */
export type SectionKind = 'text' | 'rodata' | 'data' | 'bss';

/** Where a section goes. */
export interface SectionOptions {
  /** text, rodata, data or bss; default: the section's name when it is one of those, else 'text'. */
  readonly kind?: SectionKind;
  /**
   * Virtual address of its first byte. Default: after the previous automatically placed
   * section (or the first section), aligned to `align`; sections with an explicit origin
   * stand apart and do not move the ones after them.
   */
  readonly origin?: number;
  /**
   * Physical (load) address. Default: `origin` when `origin` is given (identity), else the
   * previous section's virtual-to-physical offset is kept.
   */
  readonly loadAddress?: number;
  /** Alignment of an automatically placed origin (default 4096, so sections map to pages). */
  readonly align?: number;
  /** Code size of the section (default: the assembler's). */
  readonly bits?: 16 | 32;
}

/** How to build an assembler. */
export interface AssemblerOptions {
  /** 32 (default) or 16: the default code size of sections. */
  readonly bits?: 16 | 32;
  /** Virtual address of the first section, 'text' (default 0x100000, where Multiboot kernels load). */
  readonly origin?: number;
  /** Physical load address of 'text' (default: `origin`). */
  readonly loadAddress?: number;
  /** Minimum length of a pv-op site, padded with NOPs (default 8). */
  readonly pvopMinLength?: number;
  /**
   * Capture the caller's source position for instructions that reference labels, so that a
   * later "undefined label" error can name the line (about 5 µs each; default true).
   */
  readonly sourcePositions?: boolean;
}

/** An assembly error: a bad operand combination, an undefined or duplicate label, a bad site. */
export class AsmError extends Error {
  override readonly name = 'AsmError';
}

/** Where an instruction came from, for messages. Formatted only when an error needs it. */
interface Src {
  readonly what: () => string;
  readonly section: string;
  /** Last named label bound before it in its section, and how many items since. */
  readonly label: string | null;
  readonly n: number;
  readonly stack: Error | null;
}

type Resolve = (r: Ref) => number;

type Item =
  | { readonly t: 'bytes'; readonly bytes: Uint8Array }
  | { readonly t: 'ins'; readonly make: (resolve: Resolve) => Instruction; readonly len: number; readonly src: Src; readonly form: Form | null }
  | { readonly t: 'branch'; readonly short: Form | null; readonly long: Form | null; readonly target: number | Ref; isLong: boolean; readonly shortLen: number; readonly longLen: number; readonly src: Src }
  | { readonly t: 'data'; readonly width: 1 | 2 | 4; readonly value: Ref; readonly src: Src }
  | { readonly t: 'align'; readonly n: number; readonly fill: number }
  | { readonly t: 'space'; readonly n: number; readonly fill: number };

interface Section {
  readonly name: string;
  readonly index: number;
  readonly kind: SectionKind;
  readonly bits: 16 | 32;
  readonly origin: number | null;
  readonly loadAddress: number | null;
  readonly align: number;
  readonly items: Item[];
  lastLabel: string | null;
  sinceLabel: number;
  // Layout results.
  vaddr: number;
  paddr: number;
  starts: number[];
  end: number;
}

interface SiteRecord {
  readonly kind: PvopKind;
  readonly section: Section;
  readonly first: number;
  readonly last: number;
  readonly src: Src;
}

/** One laid-out section. */
export interface AssembledSection {
  readonly name: string;
  readonly kind: SectionKind;
  readonly bits: 16 | 32;
  readonly vaddr: number;
  readonly paddr: number;
  /** Initialized bytes (empty for bss). */
  readonly bytes: Uint8Array;
  /** Size in memory (bytes.length, or the reserved size for bss). */
  readonly memsz: number;
}

/** What a symbol names: a plain label, a function (`func`) or a data object (`object`). */
export type SymbolKind = 'label' | 'function' | 'object';

/** A named address, as exported into an image's symbol table. */
export interface AsmSymbol {
  readonly name: string;
  /** Virtual address. */
  readonly addr: number;
  /** Size in bytes (0 for a plain label). */
  readonly size: number;
  readonly kind: SymbolKind;
}

/** The result of `Assembler.build()`. */
export interface Assembled {
  readonly sections: readonly AssembledSection[];
  readonly symbols: readonly AsmSymbol[];
  readonly pvopSites: readonly PvopSite[];
  /** Virtual address of a label (object or name). */
  address(label: Label | string): number;
  /** Physical (load) address of a label. */
  physical(label: Label | string): number;
}

const SECTION_KINDS: readonly SectionKind[] = ['text', 'rodata', 'data', 'bss'];
const NOP = 0x90;

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);
const ordinal = (n: number): string => `${n}${n % 100 >= 11 && n % 100 <= 13 ? 'th' : ['th', 'st', 'nd', 'rd'][n % 10] ?? 'th'}`;

function checkU32(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`${what}: ${v} is not an address (an integer in 0..0xffffffff)`);
  return v;
}

/** The first stack frame outside this module: where the user called the assembler. */
function callerFrame(e: Error | null): string | null {
  if (!e?.stack) return null;
  for (const line of e.stack.split('\n').slice(1)) {
    if (!/[\\/]x86[\\/](assembler|encoding|operands)\.[jt]s/.test(line)) return line.trim().replace(/^at /, '');
  }
  return null;
}

/**
 * Builds IA-32 machine code. Instructions are methods named after their mnemonic
 * (`mov`, `add`, `jnz`, `int`, `out`, ...; `emit(mnemonic, ...operands)` reaches any other
 * legacy-encoded instruction iced knows). Operands are registers (`eax`, `cr3`, `ds`), memory
 * (`dword(ebx, 8)`, `mem({...})`), numbers, and labels or `label.plus(n)` / `label.phys()`.
 *
 * Operand-combination errors are thrown at the call (so the stack names the line); label
 * errors at `build()`, naming the label and the instruction that referenced it.
 */
export class Assembler {
  private readonly sections: Section[] = [];
  private readonly sectionsByName = new Map<string, Section>();
  private cur: Section;
  private readonly labels: Label[] = [];
  private readonly labelsByName = new Map<string, Label>();
  private readonly symbolInfo = new Map<Label, { kind: SymbolKind; size: number | Label }>();
  private readonly sites: SiteRecord[] = [];
  private inSite: { kind: PvopKind; labels: number } | null = null;
  private anon = 0;
  private pendingLock = false;
  private result: Assembled | null = null;
  private readonly bits: 16 | 32;
  private readonly pvopMin: number;
  private readonly trackSource: boolean;

  constructor(options: AssemblerOptions = {}) {
    this.bits = options.bits ?? 32;
    if (this.bits !== 16 && this.bits !== 32) throw new RangeError(`bits must be 16 or 32, got ${String(options.bits)}`);
    this.pvopMin = options.pvopMinLength ?? 8;
    if (!Number.isInteger(this.pvopMin) || this.pvopMin < 1 || this.pvopMin > 64) throw new RangeError(`pvopMinLength must be in 1..64, got ${this.pvopMin}`);
    this.trackSource = options.sourcePositions ?? true;
    const origin = checkU32('origin', options.origin ?? 0x100000);
    this.cur = this.createSection('text', { kind: 'text', origin, loadAddress: options.loadAddress ?? origin });
  }

  // ---------------------------------------------------------------- sections, labels, symbols

  /**
   * Switches to section `name`, creating it with `options` on first use (a later call with
   * options for an existing section is an error). Sections are laid out in creation order.
   */
  section(name: string, options?: SectionOptions): void {
    this.mutable();
    const existing = this.sectionsByName.get(name);
    if (existing) {
      if (options) throw new AsmError(`section "${name}" already exists; options can only be given when it is created`);
      this.cur = existing;
      return;
    }
    this.cur = this.createSection(name, options);
  }

  private createSection(name: string, options?: SectionOptions): Section {
    const kind = options?.kind ?? ((SECTION_KINDS as readonly string[]).includes(name) ? (name as SectionKind) : 'text');
    if (!SECTION_KINDS.includes(kind)) throw new AsmError(`section "${name}": unknown kind "${String(kind)}" (kinds: ${SECTION_KINDS.join(', ')})`);
    const align = options?.align ?? 4096;
    if (!Number.isInteger(align) || align < 1 || (align & (align - 1)) !== 0) throw new AsmError(`section "${name}": align ${align} is not a power of two`);
    const bits = options?.bits ?? this.bits;
    if (bits !== 16 && bits !== 32) throw new AsmError(`section "${name}": bits must be 16 or 32`);
    const s: Section = {
      name, index: this.sections.length, kind, bits,
      origin: options?.origin === undefined ? null : checkU32(`section "${name}" origin`, options.origin),
      loadAddress: options?.loadAddress === undefined ? null : checkU32(`section "${name}" loadAddress`, options.loadAddress),
      align, items: [], lastLabel: null, sinceLabel: 0, vaddr: 0, paddr: 0, starts: [], end: 0,
    };
    this.sections.push(s);
    this.sectionsByName.set(name, s);
    return s;
  }

  /** The name of the current section. */
  get currentSection(): string { return this.cur.name; }

  /**
   * A new label. Named labels are unique and become symbols in the image; anonymous ones
   * (no name) are for local jumps. Place it with `bind`.
   */
  label(name?: string): Label {
    this.mutable();
    if (name === undefined) return new Label(`.L${this.anon++}`, false, this);
    if (!/^[A-Za-z_.$@][\w.$@-]*$/.test(name)) throw new AsmError(`label name "${name}" is not a valid symbol name`);
    if (name.startsWith('.L') && /^\.L\d+$/.test(name)) throw new AsmError(`label name "${name}" is reserved for anonymous labels`);
    if (this.labelsByName.has(name)) throw new AsmError(`duplicate label "${name}"`);
    const l = new Label(name, true, this);
    this.labelsByName.set(name, l);
    this.labels.push(l);
    return l;
  }

  /** Places `label` at the current position of the current section. */
  bind(label: Label): Label {
    this.mutable();
    this.own(label);
    if (label.bound) throw new AsmError(`label "${label.name}" is bound twice (first in section "${this.sections[label.section]!.name}")`);
    if (this.inSite) throw new AsmError(`label "${label.name}" bound inside a ${this.inSite.kind} pv-op site: a site must not be a jump target`);
    label.section = this.cur.index;
    label.item = this.cur.items.length;
    if (label.named) { this.cur.lastLabel = label.name; this.cur.sinceLabel = 0; }
    return label;
  }

  /** A new label bound here: `const loop = a.here()`. */
  here(name?: string): Label {
    return this.bind(this.label(name));
  }

  /** The label named `name` (created by `label(name)`), or undefined. */
  findLabel(name: string): Label | undefined {
    return this.labelsByName.get(name);
  }

  /**
   * A function: binds `label` (a label, or the name of a new one) here, runs `body`, and
   * records the symbol as a function whose size is what `body` emitted.
   */
  func(label: string | Label, body: () => void): Label {
    const l = typeof label === 'string' ? this.here(label) : this.bind(label);
    if (!l.named) throw new AsmError('func: an anonymous label cannot be a symbol');
    body();
    this.symbolInfo.set(l, { kind: 'function', size: this.here() });
    return l;
  }

  /** A data object: like `func`, for data (symbol kind 'object'). */
  object(label: string | Label, body: () => void): Label {
    const l = typeof label === 'string' ? this.here(label) : this.bind(label);
    if (!l.named) throw new AsmError('object: an anonymous label cannot be a symbol');
    body();
    this.symbolInfo.set(l, { kind: 'object', size: this.here() });
    return l;
  }

  // ---------------------------------------------------------------- data

  /** Bytes: numbers (0..255 or -128..-1), strings (latin-1, one byte per char), byte arrays. */
  db(...values: (number | string | ArrayLike<number>)[]): void {
    const out: number[] = [];
    for (const v of values) {
      if (typeof v === 'number') out.push(this.intOf('db', v, 1));
      else if (typeof v === 'string') for (let i = 0; i < v.length; i++) out.push(this.charOf(v, i));
      else for (let i = 0; i < v.length; i++) out.push(this.intOf('db', v[i]!, 1));
    }
    this.put(Uint8Array.from(out));
  }

  /** 16-bit little-endian words: numbers or label addresses (which must fit in 16 bits). */
  dw(...values: (number | Ref)[]): void { this.dataN('dw', 2, values); }

  /** 32-bit little-endian dwords: numbers or label addresses (`dd(handler)`, `dd(end.minus(start))`). */
  dd(...values: (number | Ref)[]): void { this.dataN('dd', 4, values); }

  /** 64-bit little-endian qwords (numbers or bigints). */
  dq(...values: (number | bigint)[]): void {
    const b = new Uint8Array(8 * values.length);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => dv.setBigUint64(8 * i, BigInt.asUintN(64, BigInt(v)), true));
    this.put(b);
  }

  /** A latin-1 string without terminator. */
  ascii(s: string): void { this.db(s); }

  /** A latin-1 string with a NUL terminator. */
  asciz(s: string): void { this.db(s, 0); }

  /** `n` bytes of `fill` (default 0); in a bss section, reserved space. */
  zero(n: number, fill = 0): void {
    this.mutable();
    if (!Number.isInteger(n) || n < 0) throw new AsmError(`zero: size ${n} is not a non-negative integer`);
    if (this.cur.kind === 'bss' && fill !== 0) throw new AsmError(`zero: bss section "${this.cur.name}" holds only zeros`);
    this.noSite('zero');
    if (n > 0) this.cur.items.push({ t: 'space', n, fill: this.intOf('zero', fill, 1) });
  }

  /** Reserved space (same as `zero`; reads better in bss). */
  reserve(n: number): void { this.zero(n); }

  /** Pads to a multiple of `n` bytes (a power of two): NOPs in text, zeros elsewhere. */
  align(n: number): void {
    this.mutable();
    if (!Number.isInteger(n) || n < 1 || (n & (n - 1)) !== 0) throw new AsmError(`align: ${n} is not a power of two`);
    this.noSite('align');
    this.cur.items.push({ t: 'align', n, fill: this.cur.kind === 'text' ? NOP : 0 });
  }

  // ---------------------------------------------------------------- pv-op sites

  /**
   * A pv-op site: `body` emits the native instruction(s) of the operation `kind`; the site
   * records its address, length and kind for the image's site table and is padded with NOPs
   * to at least `minLength` bytes (default: the assembler's `pvopMinLength`) so that a
   * patcher has room for a hypercall sequence. The body must not bind labels or branch
   * (it is replaced as a whole), and must contain the kind's instruction (checked at build).
   */
  pvop(kind: PvopKind, body: () => void, minLength = this.pvopMin): void {
    this.mutable();
    if (this.inSite) throw new AsmError(`pv-op site ${kind} inside a ${this.inSite.kind} site: sites do not nest`);
    if (this.cur.kind !== 'text') throw new AsmError(`pv-op site ${kind} in ${this.cur.kind} section "${this.cur.name}": sites hold code`);
    const sec = this.cur;
    const first = sec.items.length;
    const src = this.src(() => `pvop ${kind}`, null);
    this.inSite = { kind, labels: this.labels.length };
    try {
      body();
    } finally {
      this.inSite = null;
    }
    if (this.cur !== sec) throw new AsmError(`pv-op site ${kind}: the body switched sections`);
    let len = 0;
    for (let i = first; i < sec.items.length; i++) {
      const it = sec.items[i]!;
      if (it.t === 'bytes') len += it.bytes.length;
      else if (it.t === 'ins') len += it.len;
      else throw new AsmError(`pv-op site ${kind}: only fixed-length instructions may go in a site (found ${it.t})`);
    }
    if (len === 0) throw new AsmError(`pv-op site ${kind}: the body emitted no instruction`);
    if (len < minLength) sec.items.push({ t: 'bytes', bytes: new Uint8Array(minLength - len).fill(NOP) });
    this.sites.push({ kind, section: sec, first, last: sec.items.length, src });
  }

  // ---------------------------------------------------------------- instructions: generic

  /**
   * Any legacy-encoded instruction by iced's mnemonic name (`emit('bts', dword(ebx), 3)`):
   * the typed methods below all come here.
   */
  emit(mnemonic: string, ...ops: Operand[]): void {
    this.mutable();
    if (this.cur.kind !== 'text') throw new AsmError(`${mnemonic}: instruction in ${this.cur.kind} section "${this.cur.name}"`);
    for (const op of ops) this.checkOperand(mnemonic, op);
    const bits = this.cur.bits;
    const what = (): string => `${mnemonic}${ops.length ? ' ' + ops.map(operandText).join(', ') : ''}`;
    const match = matchForms(mnemonic, ops, bits);
    if ('error' in match) throw this.err(this.src(what, null), match.error);
    const forms = match.forms;
    const lock = this.pendingLock;
    this.pendingLock = false;
    const hasRef = ops.some((op) => isRef(op) || (op instanceof Mem && op.ref !== null));
    const src = this.src(what, hasRef ? new Error() : null);

    if (isBranchForm(forms[0]!)) {
      const target = ops[0] as number | Ref;
      const short = forms.find((f) => f.kinds[0] === 'rel8') ?? null;
      const long = forms.find((f) => f.kinds[0] !== 'rel8') ?? null;
      const lenOf = (f: Form | null): number => {
        if (!f) return 0;
        const r = encode(createInstruction(f, [0x1000], () => 0, bits), 0x1000, bits); // a target at distance 0 always fits
        if (typeof r === 'string') throw this.err(src, r);
        return r.length;
      };
      if (lock) throw this.err(src, 'lock prefix on a branch');
      this.cur.items.push({ t: 'branch', short, long, target, isLong: short === null, shortLen: lenOf(short), longLen: lenOf(long), src });
      this.advance();
      return;
    }

    const resolve = (): number => 0;
    let best: Uint8Array | null = null;
    let bestForm: Form | null = null;
    let lastError = '';
    for (const f of forms) {
      const ins = createInstruction(f, ops, resolve, bits);
      if (lock) ins.hasLockPrefix = true;
      const r = encodeForm(f, ins, 0, bits);
      if (typeof r === 'string') { lastError = r; continue; }
      if (best === null || r.length < best.length) { best = r; bestForm = f; }
    }
    if (best === null || bestForm === null) throw this.err(src, lastError || 'the encoder rejected every form');
    if (hasRef) {
      const form = bestForm;
      this.cur.items.push({
        t: 'ins', len: best.length, src, form, make: (res) => {
          const ins = createInstruction(form, ops, res, bits);
          if (lock) ins.hasLockPrefix = true;
          return ins;
        },
      });
    } else {
      this.cur.items.push({ t: 'bytes', bytes: best });
    }
    this.advance();
  }

  /** Puts a LOCK prefix on the next instruction: `a.lock().add(dword(ebx), 1)`. */
  lock(): this {
    this.pendingLock = true;
    return this;
  }

  // ---------------------------------------------------------------- instructions: typed

  /** mov dst, src (also control, debug and segment registers). */
  mov(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('mov', dst, src); }
  movzx(dst: Reg, src: Reg | Mem): void { this.emit('movzx', dst, src); }
  movsx(dst: Reg, src: Reg | Mem): void { this.emit('movsx', dst, src); }
  /** lea dst, [address]: the address (a memory operand, size irrelevant). */
  lea(dst: Reg, src: Mem): void { this.emit('lea', dst, src); }
  /** xchg a, b (with eax/ax first and a register second, the one-byte 90+r form, as GAS). */
  xchg(a: Reg | Mem, b: Reg | Mem): void {
    if (a instanceof Reg && b instanceof Reg && a.cls === 'gpr' && (a.name === 'eax' || a.name === 'ax')) this.emit('xchg', b, a);
    else this.emit('xchg', a, b);
  }
  push(src: Reg | Mem | Imm): void { this.emit('push', src); }
  pop(dst: Reg | Mem): void { this.emit('pop', dst); }
  add(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('add', dst, src); }
  adc(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('adc', dst, src); }
  sub(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('sub', dst, src); }
  sbb(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('sbb', dst, src); }
  and(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('and', dst, src); }
  or(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('or', dst, src); }
  xor(dst: Reg | Mem, src: Reg | Mem | Imm): void { this.emit('xor', dst, src); }
  cmp(a: Reg | Mem, b: Reg | Mem | Imm): void { this.emit('cmp', a, b); }
  test(a: Reg | Mem, b: Reg | Imm): void { this.emit('test', a, b); }
  inc(dst: Reg | Mem): void { this.emit('inc', dst); }
  dec(dst: Reg | Mem): void { this.emit('dec', dst); }
  neg(dst: Reg | Mem): void { this.emit('neg', dst); }
  not(dst: Reg | Mem): void { this.emit('not', dst); }
  /** Unsigned multiply edx:eax = eax * src. */
  mul(src: Reg | Mem): void { this.emit('mul', src); }
  /** imul src (one operand), imul dst, src, or imul dst, src, imm. */
  imul(a: Reg | Mem, b?: Reg | Mem, c?: number): void {
    if (b === undefined) this.emit('imul', a);
    else if (c === undefined) this.emit('imul', a, b);
    else this.emit('imul', a, b, c);
  }
  div(src: Reg | Mem): void { this.emit('div', src); }
  idiv(src: Reg | Mem): void { this.emit('idiv', src); }
  /** Shifts and rotates: count is a number or `cl`. */
  shl(dst: Reg | Mem, count: number | Reg): void { this.emit('shl', dst, count); }
  shr(dst: Reg | Mem, count: number | Reg): void { this.emit('shr', dst, count); }
  sar(dst: Reg | Mem, count: number | Reg): void { this.emit('sar', dst, count); }
  rol(dst: Reg | Mem, count: number | Reg): void { this.emit('rol', dst, count); }
  ror(dst: Reg | Mem, count: number | Reg): void { this.emit('ror', dst, count); }
  rcl(dst: Reg | Mem, count: number | Reg): void { this.emit('rcl', dst, count); }
  rcr(dst: Reg | Mem, count: number | Reg): void { this.emit('rcr', dst, count); }
  shld(dst: Reg | Mem, src: Reg, count: number | Reg): void { this.emit('shld', dst, src, count); }
  shrd(dst: Reg | Mem, src: Reg, count: number | Reg): void { this.emit('shrd', dst, src, count); }
  bt(a: Reg | Mem, bit: Reg | number): void { this.emit('bt', a, bit); }
  bts(a: Reg | Mem, bit: Reg | number): void { this.emit('bts', a, bit); }
  btr(a: Reg | Mem, bit: Reg | number): void { this.emit('btr', a, bit); }
  btc(a: Reg | Mem, bit: Reg | number): void { this.emit('btc', a, bit); }
  bsf(dst: Reg, src: Reg | Mem): void { this.emit('bsf', dst, src); }
  bsr(dst: Reg, src: Reg | Mem): void { this.emit('bsr', dst, src); }
  bswap(r: Reg): void { this.emit('bswap', r); }
  cmpxchg(dst: Reg | Mem, src: Reg): void { this.emit('cmpxchg', dst, src); }
  cmpxchg8b(m: Mem): void { this.emit('cmpxchg8b', m); }
  xadd(dst: Reg | Mem, src: Reg): void { this.emit('xadd', dst, src); }
  /** setCC dst (cc: e, ne, z, nz, b, ae, a, be, l, ge, g, le, s, ns, o, no, p, np, c, nc). */
  set(cc: Condition, dst: Reg | Mem): void { this.emit('set' + canonicalCondition(cc), dst); }
  /** cmovCC dst, src. */
  cmov(cc: Condition, dst: Reg, src: Reg | Mem): void { this.emit('cmov' + canonicalCondition(cc), dst, src); }

  /** jmp to a label or address (short when it fits), or indirect through a register or memory. */
  jmp(target: Imm | Reg | Mem): void { this.emit('jmp', target); }
  /** call a label or address, or indirect through a register or memory. */
  call(target: Imm | Reg | Mem): void { this.emit('call', target); }
  /** jCC target (short when it fits): `a.j('nz', loop)`; or use `jz`, `jnz`, ... */
  j(cc: Condition, target: Imm): void { this.emit('j' + canonicalCondition(cc), target); }
  je(t: Imm): void { this.j('e', t); }
  jz(t: Imm): void { this.j('z', t); }
  jne(t: Imm): void { this.j('ne', t); }
  jnz(t: Imm): void { this.j('nz', t); }
  jb(t: Imm): void { this.j('b', t); }
  jc(t: Imm): void { this.j('c', t); }
  jae(t: Imm): void { this.j('ae', t); }
  jnc(t: Imm): void { this.j('nc', t); }
  jbe(t: Imm): void { this.j('be', t); }
  ja(t: Imm): void { this.j('a', t); }
  jl(t: Imm): void { this.j('l', t); }
  jge(t: Imm): void { this.j('ge', t); }
  jle(t: Imm): void { this.j('le', t); }
  jg(t: Imm): void { this.j('g', t); }
  js(t: Imm): void { this.j('s', t); }
  jns(t: Imm): void { this.j('ns', t); }
  jo(t: Imm): void { this.j('o', t); }
  jno(t: Imm): void { this.j('no', t); }
  /** loop (rel8 only: an error at build when the target is too far). */
  loop(t: Imm): void { this.emit('loop', t); }
  jecxz(t: Imm): void { this.emit(this.cur.bits === 32 ? 'jecxz' : 'jcxz', t); }
  /** Far jump to selector:offset (reloads CS). */
  jmpFar(selector: number, offset: number | Ref): void { this.far('jmp', { selector, offset }); }
  /** Far call to selector:offset. */
  callFar(selector: number, offset: number | Ref): void { this.far('call', { selector, offset }); }
  /** Near return, optionally popping `n` bytes of arguments. */
  ret(n?: number): void { if (n === undefined) this.emit('ret'); else this.emit('ret', n); }
  /** Far return. */
  retf(n?: number): void { if (n === undefined) this.emit('retf'); else this.emit('retf', n); }
  /** iret of the section's size (iretd in 32-bit code). */
  iret(): void { this.emit(this.cur.bits === 32 ? 'iretd' : 'iret'); }
  /** int n (`int(3)` is CD 03; use `int3()` for CC). */
  int(n: number): void { this.emit('int', n); }
  int3(): void { this.emit('int3'); }
  into(): void { this.emit('into'); }
  enter(size: number, level = 0): void { this.emit('enter', size, level); }
  leave(): void { this.emit('leave'); }

  /** in dst, port: dst is al/ax/eax; port is dx or a number 0..255. */
  in(dst: Reg, port: Reg | number): void { this.emit('in', dst, port); }
  /** out port, src: port is dx or a number 0..255; src is al/ax/eax. */
  out(port: Reg | number, src: Reg): void { this.emit('out', port, src); }

  nop(): void { this.emit('nop'); }
  hlt(): void { this.emit('hlt'); }
  cli(): void { this.emit('cli'); }
  sti(): void { this.emit('sti'); }
  clc(): void { this.emit('clc'); }
  stc(): void { this.emit('stc'); }
  cmc(): void { this.emit('cmc'); }
  cld(): void { this.emit('cld'); }
  std(): void { this.emit('std'); }
  /** pushf of the section's size (pushfd in 32-bit code). */
  pushf(): void { this.emit(this.cur.bits === 32 ? 'pushfd' : 'pushf'); }
  popf(): void { this.emit(this.cur.bits === 32 ? 'popfd' : 'popf'); }
  /** pusha of the section's size (pushad in 32-bit code). */
  pusha(): void { this.emit(this.cur.bits === 32 ? 'pushad' : 'pusha'); }
  popa(): void { this.emit(this.cur.bits === 32 ? 'popad' : 'popa'); }
  lahf(): void { this.emit('lahf'); }
  sahf(): void { this.emit('sahf'); }
  cdq(): void { this.emit('cdq'); }
  cwde(): void { this.emit('cwde'); }
  ud2(): void { this.emit('ud2'); }
  pause(): void { this.emit('pause'); }
  cpuid(): void { this.emit('cpuid'); }
  rdtsc(): void { this.emit('rdtsc'); }
  rdmsr(): void { this.emit('rdmsr'); }
  wrmsr(): void { this.emit('wrmsr'); }
  sysenter(): void { this.emit('sysenter'); }
  sysexit(): void { this.emit('sysexit'); }
  clts(): void { this.emit('clts'); }
  invd(): void { this.emit('invd'); }
  wbinvd(): void { this.emit('wbinvd'); }
  /** invlpg [address]. */
  invlpg(m: Mem): void { this.emit('invlpg', m); }
  lgdt(m: Mem): void { this.emit('lgdt', m); }
  lidt(m: Mem): void { this.emit('lidt', m); }
  sgdt(m: Mem): void { this.emit('sgdt', m); }
  sidt(m: Mem): void { this.emit('sidt', m); }
  lldt(sel: Reg | Mem): void { this.emit('lldt', sel); }
  sldt(dst: Reg | Mem): void { this.emit('sldt', dst); }
  ltr(sel: Reg | Mem): void { this.emit('ltr', sel); }
  str(dst: Reg | Mem): void { this.emit('str', dst); }
  lmsw(src: Reg | Mem): void { this.emit('lmsw', src); }
  smsw(dst: Reg | Mem): void { this.emit('smsw', dst); }
  lar(dst: Reg, sel: Reg | Mem): void { this.emit('lar', dst, sel); }
  lsl(dst: Reg, sel: Reg | Mem): void { this.emit('lsl', dst, sel); }
  verr(sel: Reg | Mem): void { this.emit('verr', sel); }
  verw(sel: Reg | Mem): void { this.emit('verw', sel); }
  arpl(dst: Reg | Mem, src: Reg): void { this.emit('arpl', dst, src); }

  /** String instructions of every width, with an optional rep/repe/repne prefix. */
  movsb(rep?: Rep): void { this.strOp('movsb', rep); }
  movsw(rep?: Rep): void { this.strOp('movsw', rep); }
  movsd(rep?: Rep): void { this.strOp('movsd', rep); }
  stosb(rep?: Rep): void { this.strOp('stosb', rep); }
  stosw(rep?: Rep): void { this.strOp('stosw', rep); }
  stosd(rep?: Rep): void { this.strOp('stosd', rep); }
  lodsb(rep?: Rep): void { this.strOp('lodsb', rep); }
  lodsw(rep?: Rep): void { this.strOp('lodsw', rep); }
  lodsd(rep?: Rep): void { this.strOp('lodsd', rep); }
  cmpsb(rep?: Rep): void { this.strOp('cmpsb', rep); }
  cmpsw(rep?: Rep): void { this.strOp('cmpsw', rep); }
  cmpsd(rep?: Rep): void { this.strOp('cmpsd', rep); }
  scasb(rep?: Rep): void { this.strOp('scasb', rep); }
  scasw(rep?: Rep): void { this.strOp('scasw', rep); }
  scasd(rep?: Rep): void { this.strOp('scasd', rep); }
  insb(rep?: Rep): void { this.strOp('insb', rep); }
  insw(rep?: Rep): void { this.strOp('insw', rep); }
  insd(rep?: Rep): void { this.strOp('insd', rep); }
  outsb(rep?: Rep): void { this.strOp('outsb', rep); }
  outsw(rep?: Rep): void { this.strOp('outsw', rep); }
  outsd(rep?: Rep): void { this.strOp('outsd', rep); }

  // ---------------------------------------------------------------- build

  /**
   * Lays out every section, relaxes branches, resolves labels and encodes the final bytes.
   * Idempotent; the assembler cannot be changed afterwards. Throws AsmError naming every
   * undefined label, a branch out of range, overlapping sections or a bad pv-op site.
   */
  build(): Assembled {
    if (this.result) return this.result;
    if (this.inSite) throw new AsmError('build() inside a pv-op site');
    this.checkLabels();
    this.layout();
    const addr = (l: Label, physical: boolean): number => {
      const s = this.sections[l.section]!;
      const v = l.item < s.items.length ? s.starts[l.item]! : s.end;
      return physical ? v - s.vaddr + s.paddr : v;
    };
    const resolve: Resolve = (r) => {
      const e = refExpr(r);
      let v = addr(e.label, e.physical) + e.addend;
      if (e.minusLabel) v -= addr(e.minusLabel, e.physical);
      return v >>> 0;
    };
    const sections: AssembledSection[] = [];
    for (const s of this.sections) {
      const size = s.end - s.vaddr;
      const bytes = s.kind === 'bss' ? new Uint8Array(0) : new Uint8Array(size);
      if (s.kind !== 'bss') this.emitSection(s, bytes, resolve);
      sections.push({ name: s.name, kind: s.kind, bits: s.bits, vaddr: s.vaddr, paddr: s.paddr, bytes, memsz: size });
    }
    this.checkOverlaps();
    const secOf = new Map(this.sections.map((s, i) => [s, sections[i]!]));
    const pvopSites: PvopSite[] = this.sites.map((r) => {
      const s = r.section;
      const at = s.starts[r.first]!;
      const end = r.last < s.items.length ? s.starts[r.last]! : s.end;
      const native = secOf.get(s)!.bytes.slice(at - s.vaddr, end - s.vaddr);
      const problem = checkPvopBody(r.kind, native, at, s.bits);
      if (problem) throw this.err(r.src, `pv-op site ${r.kind} at ${hex(at)}: ${problem}`);
      return { addr: at, len: end - at, kind: r.kind, native };
    }).sort((x, y) => x.addr - y.addr);
    const symbols: AsmSymbol[] = [];
    for (const l of this.labels) {
      const info = this.symbolInfo.get(l);
      const a = addr(l, false);
      const size = info ? (typeof info.size === 'number' ? info.size : addr(info.size, false) - a) : 0;
      symbols.push({ name: l.name, addr: a, size, kind: info?.kind ?? 'label' });
    }
    symbols.sort((x, y) => x.addr - y.addr || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    const lookup = (l: Label | string): Label => {
      const label = typeof l === 'string' ? this.labelsByName.get(l) : l;
      if (!label) throw new AsmError(`no label named "${String(l)}"`);
      this.own(label);
      if (!label.bound) throw new AsmError(`label "${label.name}" is not bound`);
      return label;
    };
    this.result = {
      sections, symbols, pvopSites,
      address: (l) => addr(lookup(l), false),
      physical: (l) => addr(lookup(l), true),
    };
    return this.result;
  }

  // ---------------------------------------------------------------- internals

  private mutable(): void {
    if (this.result) throw new AsmError('the program is already built; build a new Assembler for more code');
  }

  private own(l: Label): void {
    if (l.owner !== this) throw new AsmError(`label "${l.name}" belongs to another assembler`);
  }

  private noSite(what: string): void {
    if (this.inSite) throw new AsmError(`${what} inside a ${this.inSite.kind} pv-op site: only instructions go in a site`);
  }

  private advance(): void {
    this.cur.sinceLabel++;
  }

  private src(what: () => string, stack: Error | null): Src {
    return { what, section: this.cur.name, label: this.cur.lastLabel, n: this.cur.sinceLabel + 1, stack: this.trackSource ? stack : null };
  }

  private err(src: Src, msg: string): AsmError {
    const where = src.label ? `${ordinal(src.n)} item after label "${src.label}"` : `${ordinal(src.n)} item`;
    const frame = callerFrame(src.stack);
    return new AsmError(`${src.what()}: ${msg} (section "${src.section}", ${where}${frame ? `; at ${frame}` : ''})`);
  }

  private checkOperand(mn: string, op: Operand): void {
    if (typeof op === 'number') {
      if (!Number.isInteger(op) || op < -0x8000_0000 || op > 0xffff_ffff) throw new AsmError(`${mn}: immediate ${op} is not a 32-bit integer`);
    } else if (op instanceof Label) this.own(op);
    else if (op instanceof AddrExpr) { this.own(op.label); if (op.minusLabel) this.own(op.minusLabel); }
    else if (op instanceof Mem) { if (op.ref) { this.own(op.ref.label); if (op.ref.minusLabel) this.own(op.ref.minusLabel); } }
    else if (!(op instanceof Reg)) throw new AsmError(`${mn}: ${String(op)} is not an operand`);
  }

  private put(bytes: Uint8Array): void {
    this.mutable();
    if (this.cur.kind === 'bss') throw new AsmError(`initialized data in bss section "${this.cur.name}" (use zero/reserve)`);
    this.noSite('data');
    if (bytes.length > 0) this.cur.items.push({ t: 'bytes', bytes });
  }

  private intOf(what: string, v: number, width: 1 | 2 | 4): number {
    const lo = -(2 ** (8 * width - 1)), hi = 2 ** (8 * width) - 1;
    if (!Number.isInteger(v) || v < lo || v > hi) throw new AsmError(`${what}: ${v} does not fit in ${width} byte${width > 1 ? 's' : ''}`);
    return width === 4 ? v >>> 0 : v & (2 ** (8 * width) - 1);
  }

  private charOf(s: string, i: number): number {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new AsmError(`db: character ${JSON.stringify(s[i])} of ${JSON.stringify(s)} is not latin-1 (encode the string to bytes first)`);
    return c;
  }

  private dataN(what: string, width: 2 | 4, values: (number | Ref)[]): void {
    this.mutable();
    if (this.cur.kind === 'bss') throw new AsmError(`${what}: initialized data in bss section "${this.cur.name}"`);
    this.noSite(what);
    let run: number[] = [];
    const flush = (): void => {
      if (run.length === 0) return;
      const b = new Uint8Array(width * run.length);
      const dv = new DataView(b.buffer);
      run.forEach((v, i) => (width === 2 ? dv.setUint16(2 * i, v, true) : dv.setUint32(4 * i, v, true)));
      this.cur.items.push({ t: 'bytes', bytes: b });
      run = [];
    };
    for (const v of values) {
      if (typeof v === 'number') run.push(this.intOf(what, v, width));
      else {
        this.checkOperand(what, v);
        flush();
        this.cur.items.push({ t: 'data', width, value: v, src: this.src(() => `${what} ${v.toString()}`, this.trackSource ? new Error() : null) });
      }
    }
    flush();
  }

  private strOp(mn: string, rep: Rep | undefined): void {
    this.mutable();
    if (this.cur.kind !== 'text') throw new AsmError(`${mn}: instruction in ${this.cur.kind} section "${this.cur.name}"`);
    const bits = this.cur.bits;
    const kind = rep === undefined ? RepPrefixKind.None : rep === 'repne' ? RepPrefixKind.Repne : RepPrefixKind.Repe;
    const cmp = mn.startsWith('cmps') || mn.startsWith('scas');
    if (rep === 'repne' && !cmp) throw new AsmError(`${mn}: repne only goes with cmps/scas`);
    const none = IcedRegister.None;
    const makers: Record<string, () => Instruction> = {
      movsb: () => Instruction.createMovsb(bits, none, kind), movsw: () => Instruction.createMovsw(bits, none, kind), movsd: () => Instruction.createMovsd(bits, none, kind),
      stosb: () => Instruction.createStosb(bits, kind), stosw: () => Instruction.createStosw(bits, kind), stosd: () => Instruction.createStosd(bits, kind),
      lodsb: () => Instruction.createLodsb(bits, none, kind), lodsw: () => Instruction.createLodsw(bits, none, kind), lodsd: () => Instruction.createLodsd(bits, none, kind),
      cmpsb: () => Instruction.createCmpsb(bits, none, kind), cmpsw: () => Instruction.createCmpsw(bits, none, kind), cmpsd: () => Instruction.createCmpsd(bits, none, kind),
      scasb: () => Instruction.createScasb(bits, kind), scasw: () => Instruction.createScasw(bits, kind), scasd: () => Instruction.createScasd(bits, kind),
      insb: () => Instruction.createInsb(bits, kind), insw: () => Instruction.createInsw(bits, kind), insd: () => Instruction.createInsd(bits, kind),
      outsb: () => Instruction.createOutsb(bits, none, kind), outsw: () => Instruction.createOutsw(bits, none, kind), outsd: () => Instruction.createOutsd(bits, none, kind),
    };
    const r = encode(makers[mn]!(), 0, bits);
    if (typeof r === 'string') throw this.err(this.src(() => `${rep ? rep + ' ' : ''}${mn}`, null), r);
    this.cur.items.push({ t: 'bytes', bytes: r });
    this.advance();
  }

  private far(mn: 'jmp' | 'call', t: FarTarget): void {
    this.mutable();
    if (this.cur.kind !== 'text') throw new AsmError(`${mn} far: instruction in ${this.cur.kind} section "${this.cur.name}"`);
    const bits = this.cur.bits;
    if (!Number.isInteger(t.selector) || t.selector < 0 || t.selector > 0xffff) throw new AsmError(`${mn} far: selector ${t.selector} is not 16-bit`);
    const code = mn === 'jmp' ? (bits === 32 ? Code.Jmp_ptr1632 : Code.Jmp_ptr1616) : (bits === 32 ? Code.Call_ptr1632 : Code.Call_ptr1616);
    const off = t.offset;
    if (typeof off !== 'number') this.checkOperand(mn, off);
    const make = (res: Resolve): Instruction => Instruction.createFarBranch(code, t.selector, (typeof off === 'number' ? off : res(off)) >>> 0);
    const src = this.src(() => `${mn} far ${hex(t.selector)}:${operandText(off)}`, typeof off === 'number' ? null : new Error());
    const r = encode(make(() => 0), 0, bits);
    if (typeof r === 'string') throw this.err(src, r);
    if (typeof off === 'number') this.cur.items.push({ t: 'bytes', bytes: r });
    else this.cur.items.push({ t: 'ins', make, len: r.length, src, form: null });
    this.advance();
  }

  /** Every label referenced must be bound: one error listing them all. */
  private checkLabels(): void {
    const missing = new Map<string, Src>();
    const visit = (r: Ref | number | null, src: Src): void => {
      if (r === null || typeof r === 'number') return;
      const e = refExpr(r);
      for (const l of [e.label, e.minusLabel]) if (l && !l.bound && !missing.has(l.name)) missing.set(l.name, src);
    };
    for (const s of this.sections) {
      for (const it of s.items) {
        if (it.t === 'branch') visit(it.target, it.src);
        else if (it.t === 'data') visit(it.value, it.src);
        else if (it.t === 'ins') {
          // Find the labels by resolving with a probe that records them.
          it.make((r) => { visit(r, it.src); return 0; }).free();
        }
      }
    }
    for (const [l, info] of this.symbolInfo) if (typeof info.size !== 'number' && !info.size.bound) missing.set(l.name, this.src(() => 'func', null));
    if (missing.size > 0) {
      const parts = [...missing].map(([name, src]) => this.err(src, `undefined label "${name}"`).message);
      throw new AsmError(parts.length === 1 ? parts[0]! : `${parts.length} undefined labels: ${parts.join('; ')}`);
    }
  }

  /** Addresses for every item; grows short branches whose targets are out of range until stable. */
  private layout(): void {
    for (let round = 0; ; round++) {
      let prev: Section | null = null;
      for (const s of this.sections) {
        if (s.origin !== null) {
          s.vaddr = s.origin;
          s.paddr = s.loadAddress ?? s.origin;
        } else {
          const after = prev ? prev.end : 0;
          s.vaddr = (Math.ceil(after / s.align) * s.align) >>> 0;
          s.paddr = s.loadAddress ?? (prev ? (s.vaddr - prev.vaddr + prev.paddr) >>> 0 : s.vaddr);
        }
        let pos = s.vaddr;
        const starts = s.starts;
        starts.length = s.items.length;
        for (let i = 0; i < s.items.length; i++) {
          starts[i] = pos;
          const it = s.items[i]!;
          switch (it.t) {
            case 'bytes': pos += it.bytes.length; break;
            case 'ins': pos += it.len; break;
            case 'branch': pos += it.isLong ? it.longLen : it.shortLen; break;
            case 'data': pos += it.width; break;
            case 'align': pos += (it.n - (pos % it.n)) % it.n; break;
            case 'space': pos += it.n; break;
          }
        }
        s.end = pos;
        if (pos > 0x1_0000_0000) throw new AsmError(`section "${s.name}" (${hex(s.vaddr)}, ${pos - s.vaddr} bytes) runs past 4 GiB`);
        if (s.origin === null || s.index === 0) prev = s;
      }
      let changed = false;
      for (const s of this.sections) {
        for (let i = 0; i < s.items.length; i++) {
          const it = s.items[i]!;
          if (it.t !== 'branch' || it.isLong) continue;
          const target = this.targetOf(it.target);
          const d = target - (s.starts[i]! + it.shortLen);
          if (d < -128 || d > 127) {
            if (it.long === null) throw this.err(it.src, `target ${hex(target)} is ${d} bytes away, out of the rel8 range -128..127 (this instruction has no longer form)`);
            it.isLong = true;
            changed = true;
          }
        }
      }
      if (!changed) return;
      if (round > 10_000) throw new AsmError('branch relaxation did not converge');
    }
  }

  private targetOf(t: number | Ref): number {
    if (typeof t === 'number') return t >>> 0;
    const e = refExpr(t);
    const s = this.sections[e.label.section]!;
    let v = (e.label.item < s.items.length ? s.starts[e.label.item]! : s.end);
    if (e.physical) v = v - s.vaddr + s.paddr;
    v += e.addend;
    if (e.minusLabel) {
      const m = this.sections[e.minusLabel.section]!;
      let mv = e.minusLabel.item < m.items.length ? m.starts[e.minusLabel.item]! : m.end;
      if (e.physical) mv = mv - m.vaddr + m.paddr;
      v -= mv;
    }
    return v >>> 0;
  }

  private emitSection(s: Section, out: Uint8Array, resolve: Resolve): void {
    const bits = s.bits;
    for (let i = 0; i < s.items.length; i++) {
      const it = s.items[i]!;
      const at = s.starts[i]!;
      const off = at - s.vaddr;
      switch (it.t) {
        case 'bytes': out.set(it.bytes, off); break;
        case 'space': if (it.fill !== 0) out.fill(it.fill, off, off + it.n); break;
        case 'align': {
          const n = (it.n - (at % it.n)) % it.n;
          if (it.fill !== 0) out.fill(it.fill, off, off + n);
          break;
        }
        case 'data': {
          const v = resolve(it.value);
          if (it.width === 2 && v > 0xffff) throw this.err(it.src, `value ${hex(v)} does not fit in 16 bits`);
          if (it.width === 1 && v > 0xff) throw this.err(it.src, `value ${hex(v)} does not fit in 8 bits`);
          for (let k = 0; k < it.width; k++) out[off + k] = (v >>> (8 * k)) & 0xff;
          break;
        }
        case 'ins': {
          const ins = it.make(resolve);
          const r = it.form ? encodeForm(it.form, ins, at, bits) : encode(ins, at, bits);
          if (typeof r === 'string') throw this.err(it.src, r);
          if (r.length !== it.len) throw this.err(it.src, `internal error: encoded in ${r.length} bytes, laid out as ${it.len}`);
          out.set(r, off);
          break;
        }
        case 'branch': {
          const form = it.isLong ? it.long! : it.short!;
          const target = typeof it.target === 'number' ? it.target : resolve(it.target);
          const r = encode(createInstruction(form, [target], () => 0, bits), at, bits);
          if (typeof r === 'string') throw this.err(it.src, r);
          const want = it.isLong ? it.longLen : it.shortLen;
          if (r.length !== want) throw this.err(it.src, `internal error: branch encoded in ${r.length} bytes, laid out as ${want}`);
          out.set(r, off);
          break;
        }
      }
    }
  }

  private checkOverlaps(): void {
    const ranges = this.sections.filter((s) => s.end > s.vaddr);
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length; j++) {
        const a = ranges[i]!, b = ranges[j]!;
        const size = (s: Section): number => s.end - s.vaddr;
        if (a.vaddr < b.vaddr + size(b) && b.vaddr < a.vaddr + size(a)) {
          throw new AsmError(`sections "${a.name}" (${hex(a.vaddr)}-${hex(a.end - 1)}) and "${b.name}" (${hex(b.vaddr)}-${hex(b.end - 1)}) overlap in virtual memory`);
        }
        if (a.paddr < b.paddr + size(b) && b.paddr < a.paddr + size(a)) {
          throw new AsmError(`sections "${a.name}" (load ${hex(a.paddr)}) and "${b.name}" (load ${hex(b.paddr)}) overlap in physical memory`);
        }
      }
    }
  }
}

/** A rep prefix for string instructions: 'rep' (= 'repe') or 'repne' (cmps/scas only). */
export type Rep = 'rep' | 'repe' | 'repne';

/** Condition codes, with their usual synonyms. */
export type Condition =
  | 'o' | 'no' | 'b' | 'c' | 'nae' | 'ae' | 'nb' | 'nc' | 'e' | 'z' | 'ne' | 'nz' | 'be' | 'na' | 'a' | 'nbe'
  | 's' | 'ns' | 'p' | 'pe' | 'np' | 'po' | 'l' | 'nge' | 'ge' | 'nl' | 'le' | 'ng' | 'g' | 'nle';

const CC_CANON: Record<Condition, string> = {
  o: 'o', no: 'no', b: 'b', c: 'b', nae: 'b', ae: 'ae', nb: 'ae', nc: 'ae', e: 'e', z: 'e', ne: 'ne', nz: 'ne',
  be: 'be', na: 'be', a: 'a', nbe: 'a', s: 's', ns: 'ns', p: 'p', pe: 'p', np: 'np', po: 'np',
  l: 'l', nge: 'l', ge: 'ge', nl: 'ge', le: 'le', ng: 'le', g: 'g', nle: 'g',
};

/** iced's name for a condition (`z` → `e`, `c` → `b`, ...). */
export function canonicalCondition(cc: Condition): string {
  const c = CC_CANON[cc];
  if (!c) throw new AsmError(`unknown condition code "${String(cc)}"`);
  return c;
}
