/**
 * The guests the verifier generates (docs/verification.md): a list of instructions and
 * kernel-level actions (plain JSON, so a counterexample can be saved and replayed), wrapped
 * in a tiny kernel harness that boots flat protected mode with its own GDT, LDT, TSS and IDT
 * (and, for kernel-level programs, paging with two address spaces), runs the program, and
 * dumps a guest-visible outcome: its registers and arithmetic flags into a dump page, then
 * `out 0xF4`. Any exception goes to a stub that records vector, error code and CR2 and dumps
 * too. The outcome is read from guest RAM after the run (`outcomeOf`), together with the
 * debug-console bytes and the exit.
 *
 * The harness itself uses no sensitive instruction after booting (flags are dumped with LAHF
 * and SETO, not PUSHF), so an outcome difference comes from the program.
 */
import { createHash } from 'node:crypto';
import { disassemble } from '../machine/disassemble.js';
import type { Machine } from '../machine/machine.js';
import {
  Assembler, ah, al, ax, bp, bx, byte, cr0, cr2, cr3, cr4, cs, cx, di, ds, dword, dx, eax, ebp, ebx, ecx, edi, edx, es, esi, esp, fs,
  fword, gs, si, ss, word, type Reg,
} from '../x86/index.js';

/** Guest-physical layout (8 MiB of guest RAM). */
export const LAYOUT = {
  guestMiB: 8,
  code: 0x100000,
  gdt: 0x10000, tss: 0x11000, ldt: 0x12000, idt: 0x13000, descr: 0x13800,
  /** The program's data page (loads, stores, SGDT/SIDT targets). */
  data: 0x200000,
  stack: 0x201000, stackTop: 0x201800,
  /** Registers and flags at the end (or at an exception), exception information. */
  dump: 0x202000,
  loopCounters: 0x203000,
  /** Page directories A and B, the identity table for 0–4 MiB, the playground tables A and B. */
  pdA: 0x300000, pdB: 0x301000, ptId: 0x302000, ptA: 0x303000, ptB: 0x304000,
  /** The playground: 16 pages at 4 MiB whose mappings the kernel-level actions change. */
  playground: 0x400000, playgroundPages: 16,
} as const;

/** Guest-visible memory compared between runs: data, stack, dump; page tables when paging. */
export const OUTCOME_REGIONS: readonly (readonly [number, number])[] = [[LAYOUT.data, LAYOUT.dump + 0x1000]];
export const PAGING_REGIONS: readonly (readonly [number, number])[] = [[LAYOUT.pdA, LAYOUT.ptB + 0x1000]];

/** General registers a program may write (ESP is the harness's). */
export const REGS = ['eax', 'ecx', 'edx', 'ebx', 'ebp', 'esi', 'edi'] as const;
export type RegName = (typeof REGS)[number];
const REG: Record<RegName, Reg> = { eax, ecx, edx, ebx, ebp, esi, edi };
const REG16: Record<RegName, Reg> = { eax: ax, ecx: cx, edx: dx, ebx: bx, ebp: bp, esi: si, edi: di };

export const ALU_OPS = ['add', 'sub', 'and', 'or', 'xor', 'adc', 'sbb', 'cmp', 'test'] as const;
export const SHIFT_OPS = ['shl', 'shr', 'sar', 'rol', 'ror'] as const;
export const UNARY_OPS = ['inc', 'dec', 'neg', 'not', 'bswap'] as const;
/** Unprivileged instructions that read privileged state (Robin & Irvine's "sensitive"). */
export const SENSITIVE_OPS = ['pushf', 'popf', 'sgdt', 'sidt', 'sldt', 'str', 'smsw', 'lar', 'lsl', 'verr', 'verw', 'movsreg', 'pushseg', 'farret'] as const;
/** Privileged instructions (they trap when deprivileged, and are emulated). */
export const PRIVILEGED_OPS = ['cli', 'sti', 'crread'] as const;

/** One generated instruction (JSON). */
export type Ins =
  | { op: 'alu'; f: (typeof ALU_OPS)[number]; d: RegName; s: RegName }
  | { op: 'alui'; f: (typeof ALU_OPS)[number]; d: RegName; imm: number }
  | { op: 'movi'; d: RegName; imm: number }
  | { op: 'shift'; f: (typeof SHIFT_OPS)[number]; d: RegName; n: number }
  | { op: 'unary'; f: (typeof UNARY_OPS)[number]; d: RegName }
  | { op: 'imul'; d: RegName; s: RegName }
  | { op: 'load'; d: RegName; off: number }
  | { op: 'store'; s: RegName; off: number }
  | { op: 'pushpop'; s: RegName; d: RegName }
  | { op: 'out'; v: number }
  | { op: 'pushf'; d: RegName }
  | { op: 'popf'; imm: number }
  | { op: 'sgdt' | 'sidt'; off: number }
  | { op: 'sldt' | 'str' | 'smsw'; d: RegName }
  | { op: 'lar' | 'lsl'; d: RegName; sel: number }
  | { op: 'verr' | 'verw'; d: RegName; sel: number }
  | { op: 'movsreg'; d: RegName; seg: 'cs' | 'ss' | 'ds'; off?: number }
  | { op: 'cli' | 'sti' }
  | { op: 'pushseg'; d: RegName; seg: 'cs' | 'ss' | 'ds' }
  | { op: 'farret' }
  | { op: 'crread'; d: RegName; cr: 0 | 2 | 3 | 4 }
  | { op: 'loop'; n: number; body: Item[] };

/** One kernel-level action (JSON); only in paging programs. */
export type Act =
  | { op: 'pte'; t: 0 | 1; page: number; frame: number; flags: number; touch?: boolean }
  | { op: 'cr3'; t: 0 | 1 }
  | { op: 'rd'; d: RegName; page: number; off: number }
  | { op: 'wr'; s: RegName; page: number; off: number }
  | { op: 'port'; port: number; v: number }
  | { op: 'dma'; prd: number; buf: number; bytes: number };

export type Item = Ins | Act;

/** A generated guest: initial registers, items, and whether the harness turns paging on. */
export interface GuestProgram {
  readonly regs: readonly number[];
  readonly items: readonly Item[];
  readonly paging: boolean;
  /** Never exit: after the dump, spin (a VM that keeps running, for the multi-VM properties). */
  readonly spin?: boolean;
}

const seg = { cs, ss, ds } as const;
const crs = { 0: cr0, 2: cr2, 3: cr3, 4: cr4 } as const;

/** Emits one item. */
function emitItem(a: Assembler, it: Item, depth: number): void {
  const L = LAYOUT;
  switch (it.op) {
    case 'alu': a.emit(it.f, REG[it.d], REG[it.s]); break;
    case 'alui': a.emit(it.f, REG[it.d], it.imm | 0); break;
    case 'movi': a.mov(REG[it.d], it.imm | 0); break;
    case 'shift': a.emit(it.f, REG[it.d], it.n & 31); break;
    case 'unary': a.emit(it.f, REG[it.d]); break;
    case 'imul': a.imul(REG[it.d], REG[it.s]); break;
    case 'load': a.mov(REG[it.d], dword(L.data + (it.off & 0xffc))); break;
    case 'store': a.mov(dword(L.data + (it.off & 0xffc)), REG[it.s]); break;
    case 'pushpop': a.push(REG[it.s]); a.pop(REG[it.d]); break;
    case 'out': a.mov(al, it.v & 0xff); a.out(0xe9, al); break;
    case 'pushf': a.pushf(); a.pop(REG[it.d]); break;
    // TF (and RF) are kept clear: a single-step trap is not what is being tested.
    case 'popf': a.push(it.imm & ~0x10100); a.popf(); break;
    case 'sgdt': a.sgdt(fword(L.data + Math.min(it.off & 0xffc, 0xff8))); break;
    case 'sidt': a.sidt(fword(L.data + Math.min(it.off & 0xffc, 0xff8))); break;
    case 'sldt': a.sldt(REG[it.d]); break;
    case 'str': a.str(REG[it.d]); break;
    case 'smsw': a.smsw(REG[it.d]); break;
    case 'lar': case 'lsl': a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG[it.d], REG[it.d]); break;
    case 'verr': case 'verw': a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG16[it.d]); break;
    case 'movsreg':
      // To a register (32-bit form) or, with `off`, to memory (MOV m16, Sreg).
      if (it.off === undefined) a.emit('mov', REG[it.d], seg[it.seg]);
      else a.emit('mov', word(L.data + (it.off & 0xffc)), seg[it.seg]);
      break;
    case 'cli': a.cli(); break;
    // PUSH CS/SS/DS, then POP into a register (the pushed selector becomes visible).
    case 'pushseg': a.push(seg[it.seg]); a.pop(REG[it.d]); break;
    // RET far to the kernel's own code selector 0x08 (RPL 0) and the next instruction.
    case 'farret': { const next = a.label(); a.push(0x08); a.push(next); a.retf(); a.bind(next); break; }
    case 'sti': a.sti(); break;
    case 'crread': a.mov(REG[it.d], crs[it.cr]); break;
    case 'loop': {
      // The counter lives in memory the body cannot store to, so every loop ends.
      const ctr = dword(L.loopCounters + 4 * depth);
      a.mov(ctr, Math.max(1, it.n | 0));
      const top = a.here();
      for (const b of it.body) emitItem(a, b, depth + 1);
      a.dec(ctr);
      a.jnz(top);
      break;
    }
    case 'pte': {
      const pt = it.t === 0 ? L.ptA : L.ptB;
      a.mov(dword(pt + 4 * (it.page & 15)), (((it.frame & 0xfffff) << 12) | (it.flags & 7)) >>> 0 | 0);
      // Always followed by INVLPG: a stale TLB entry is implementation-specific (SDM 4.10.4).
      a.invlpg(dword(L.playground + (it.page & 15) * 0x1000));
      // `touch`: read the page at once (TEST m32, r32: only the flags change).
      if (it.touch === true) a.test(dword(L.playground + (it.page & 15) * 0x1000), eax);
      break;
    }
    case 'cr3': a.mov(eax, it.t === 0 ? L.pdA : L.pdB); a.mov(cr3, eax); break;
    case 'rd': a.mov(REG[it.d], dword(L.playground + (it.page & 15) * 0x1000 + (it.off & 0xffc))); break;
    case 'wr':
      a.mov(dword(L.playground + (it.page & 15) * 0x1000 + (it.off & 0xffc)), REG[it.s]);
      // The page may alias a page table: reload CR3 so no stale TLB entry survives (see 'pte').
      a.push(eax); a.mov(eax, cr3); a.mov(cr3, eax); a.pop(eax);
      break;
    case 'port': a.mov(al, it.v & 0xff); a.out(it.port & 0xff, al); break;
    case 'dma': {
      // One PRD (address, byte count | end of table) at `prd`, then a READ DMA of one sector.
      a.mov(dword(it.prd), it.buf | 0); a.mov(dword(it.prd + 4), (0x80000000 | (it.bytes & 0xfffe)) | 0);
      a.mov(edx, 0xc044); a.mov(eax, it.prd | 0); a.out(dx, eax);
      a.mov(edx, 0x1f6); a.mov(al, 0xe0); a.out(dx, al);
      a.mov(edx, 0x1f2); a.mov(al, 1); a.out(dx, al);
      a.mov(edx, 0x1f3); a.mov(al, 0); a.out(dx, al);
      a.mov(edx, 0x1f7); a.mov(al, 0xc8); a.out(dx, al);
      a.mov(edx, 0xc040); a.mov(al, 9); a.out(dx, al);
      // Wait for the bus master to finish (interrupt or error bit), bounded.
      a.mov(ecx, 2000);
      const w = a.here(), done = a.label();
      a.mov(edx, 0xc042); a.in(al, dx); a.test(al, 6); a.jnz(done);
      a.dec(ecx); a.jnz(w);
      a.bind(done);
      break;
    }
  }
}

/** Descriptors of the harness's GDT (index → [low, high]). */
const GDT_ENTRIES: readonly (readonly [number, number])[] = [
  [0, 0],
  [0x0000ffff, 0x00cf9b00], // 0x08 code, DPL 0 (accessed: the CPU need not write it)
  [0x0000ffff, 0x00cf9300], // 0x10 data, DPL 0 (accessed)
  [0x0000ffff, 0x00cff200], // 0x18 data, DPL 3
  [0x0000ffff, 0x00cffa00], // 0x20 code, DPL 3
  [(LAYOUT.tss << 16) | 0x67, ((LAYOUT.tss >>> 16) & 0xff) | 0x8900], // 0x28 32-bit TSS
  [(LAYOUT.ldt << 16) | 0x0f, ((LAYOUT.ldt >>> 16) & 0xff) | 0x8200], // 0x30 LDT
  [0x0000ffff, 0x0000b220], // 0x38 16-bit data at 2 MiB, DPL 1
  [0x0000ffff, 0x00cfde00], // 0x40 conforming code, DPL 2
];
/** Selectors worth probing with LAR/LSL/VERR/VERW (and RPL variants, the LDT's entry). */
export const PROBE_SELECTORS = [0, 0x08, 0x0b, 0x10, 0x13, 0x18, 0x1b, 0x20, 0x23, 0x28, 0x30, 0x38, 0x39, 0x40, 0x42, 0x07, 0x48, 0xfff8];

/** Exceptions with an error code. */
const ERRCODE = new Set([8, 10, 11, 12, 13, 14, 17]);

/** Assembles the harness around `p` (flat binary for 0x100000). */
export function buildGuest(p: GuestProgram): Uint8Array {
  const L = LAYOUT;
  const a = new Assembler({ bits: 32, origin: L.code });
  const dump = a.label('dump');
  const stubs = Array.from({ length: 32 }, (_, i) => a.label(`exc${i}`));
  a.cli();
  // GDT, LDT (one DPL-3 data descriptor), TSS (SS0:ESP0), IDT of 32 interrupt gates.
  GDT_ENTRIES.forEach(([lo, hi], i) => { a.mov(dword(L.gdt + 8 * i), lo | 0); a.mov(dword(L.gdt + 8 * i + 4), hi | 0); });
  a.mov(dword(L.ldt), 0x0000ffff); a.mov(dword(L.ldt + 4), 0x00cff200 | 0);
  a.mov(dword(L.tss + 4), L.stackTop); a.mov(dword(L.tss + 8), 0x10);
  for (let i = 0; i < 32; i++) {
    a.mov(eax, stubs[i]!);
    a.mov(word(L.idt + 8 * i), ax); a.mov(word(L.idt + 8 * i + 2), 0x08); a.mov(word(L.idt + 8 * i + 4), 0x8e00 | 0);
    a.shr(eax, 16); a.mov(word(L.idt + 8 * i + 6), ax);
  }
  a.mov(word(L.descr), GDT_ENTRIES.length * 8 - 1); a.mov(dword(L.descr + 2), L.gdt);
  a.mov(word(L.descr + 8), 32 * 8 - 1); a.mov(dword(L.descr + 10), L.idt);
  a.lgdt(fword(L.descr)); a.lidt(fword(L.descr + 8));
  a.mov(ax, 0x10); a.mov(ds, ax); a.mov(es, ax); a.mov(fs, ax); a.mov(gs, ax); a.mov(ss, ax);
  a.mov(esp, L.stackTop);
  a.mov(ax, 0x28); a.ltr(ax); a.mov(ax, 0x30); a.lldt(ax);
  if (p.paging) {
    // Identity for 0–4 MiB (supervisor), the playground at 4 MiB (user, 16 pages of RAM at 5 MiB).
    a.mov(edi, L.ptId); a.mov(eax, 3); a.mov(ecx, 1024);
    const fill = a.here(); a.stosd(); a.add(eax, 0x1000); a.emit('loop', fill);
    for (let i = 0; i < L.playgroundPages; i++) {
      a.mov(dword(L.ptA + 4 * i), (0x500000 + i * 0x1000) | 7);
      a.mov(dword(L.ptB + 4 * i), (0x510000 + i * 0x1000) | 7);
    }
    a.mov(dword(L.pdA), L.ptId | 3); a.mov(dword(L.pdA + 4), L.ptA | 7);
    a.mov(dword(L.pdB), L.ptId | 3); a.mov(dword(L.pdB + 4), L.ptB | 7);
    a.mov(eax, L.pdA); a.mov(cr3, eax);
    a.mov(eax, cr0); a.or(eax, 0x80010000 | 0); a.mov(cr0, eax);
    // Touch the descriptor-table pages (read and write): their PTEs' A/D bits are then set in
    // every mode. Natively the CPU's own descriptor reads set them later, while trap/full run
    // on the monitor's copies and never do (a known difference, docs/verification.md).
    for (const t of [L.gdt, L.tss, L.ldt, L.idt]) { a.mov(eax, dword(t)); a.mov(dword(t), eax); }
  }
  // Initial registers.
  REGS.forEach((r, i) => a.mov(REG[r], (p.regs[i] ?? 0) | 0));
  a.bind(a.label('program'));
  for (const it of p.items) emitItem(a, it, 0);
  a.jmp(dump);
  // Exception stubs: vector + 1, error code, CR2; then the dump.
  for (let i = 0; i < 32; i++) {
    a.bind(stubs[i]!);
    a.mov(dword(L.dump + 48), eax);
    a.mov(dword(L.dump + 36), i + 1);
    if (ERRCODE.has(i)) a.pop(dword(L.dump + 40));
    a.mov(eax, cr2); a.mov(dword(L.dump + 44), eax);
    a.mov(eax, dword(L.dump + 48));
    a.jmp(dump);
  }
  a.bind(dump);
  [eax, ecx, edx, ebx, esp, ebp, esi, edi].forEach((r, i) => a.mov(dword(L.dump + 4 * i), r));
  a.lahf(); a.mov(byte(L.dump + 32), ah);
  a.emit('seto', al); a.mov(byte(L.dump + 33), al);
  if (p.spin === true) { const s = a.here(); a.jmp(s); }
  a.mov(al, 0); a.out(0xf4, al);
  a.hlt();
  const built = a.build();
  return built.sections.find((s) => s.name === 'text')!.bytes;
}

/** What the guest shows: exit, console bytes, dumped registers, memory. */
export interface Outcome {
  readonly exit: string;
  readonly console: string;
  /** EAX ECX EDX EBX ESP EBP ESI EDI, flags (AH of LAHF | OF << 8), exception vector+1, error code, CR2. */
  readonly dump: readonly number[];
  /** SHA-256 of the compared memory regions. */
  readonly memory: string;
}

/** Reads the outcome of a finished run from the machine. */
export function outcomeOf(m: Machine, exit: string, console: Uint8Array, paging: boolean): Outcome {
  const d = m.mem;
  const dumpWords: number[] = [];
  for (let i = 0; i < 12; i++) dumpWords.push(d.read32(LAYOUT.dump + 4 * i) >>> 0);
  dumpWords[8] = (dumpWords[8]! & 0xffff) >>> 0;
  const h = createHash('sha256');
  for (const [lo, hi] of paging ? [...OUTCOME_REGIONS, ...PAGING_REGIONS] : OUTCOME_REGIONS) {
    h.update(d.u8.subarray(lo, hi));
  }
  return { exit, console: Buffer.from(console).toString('hex'), dump: dumpWords, memory: h.digest('hex').slice(0, 16) };
}

/** The first 32-bit word (address, a, b) where two machines' compared regions differ, or null. */
export function firstMemoryDifference(a: Machine, b: Machine, paging: boolean): [number, number, number] | null {
  for (const [lo, hi] of paging ? [...OUTCOME_REGIONS, ...PAGING_REGIONS] : OUTCOME_REGIONS) {
    for (let x = lo; x < hi; x += 4) {
      const u = a.mem.read32(x) >>> 0, v = b.mem.read32(x) >>> 0;
      if (u !== v) return [x, u, v];
    }
  }
  return null;
}

/** The program's items, assembled alone and disassembled (iced-x86, NASM syntax), one per line. */
export function listing(items: readonly Item[]): string[] {
  if (items.length === 0) return ['(no program: the harness alone shows it)'];
  const a = new Assembler({ bits: 32, origin: LAYOUT.code });
  for (const it of items) emitItem(a, it, 0);
  const bytes = a.build().sections.find((s) => s.name === 'text')?.bytes ?? new Uint8Array(0);
  const out: string[] = [];
  for (let off = 0; off < bytes.length;) {
    const d = disassemble(bytes.subarray(off, off + 15), LAYOUT.code + off, 32);
    if (d.length === 0) { out.push(`${(LAYOUT.code + off).toString(16)}: (invalid)`); break; }
    out.push(`${(LAYOUT.code + off).toString(16)}: ${d.text}`);
    off += d.length;
  }
  return out;
}
