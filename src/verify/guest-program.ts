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
 * and SETO, not PUSHF), so an outcome difference comes from the program. Its routines —
 * far-call and far-jump targets, the call gate home from ring 3, the INT n recorder, the
 * timer handler of timer programs — record what the CPU pushed into the dump page (`REC`).
 */
import { createHash } from 'node:crypto';
import { disassemble } from '../machine/disassemble.js';
import type { Machine } from '../machine/machine.js';
import {
  Assembler, ah, al, ax, bp, bx, cr0, cr2, cr3, cr4, cs, cx, di, ds, dword, dx, eax, ebp, ebx, ecx, edi, edx, es, esi, esp, fs,
  fword, gs, mem, si, ss, word, type Label, type Mem, type Reg,
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
  /** The ring-3 stack (ring3 items): the upper half of the stack page. */
  stack3Top: 0x202000,
  /**
   * What the harness's far-transfer, INT n and ring-transition targets record (in the dump
   * page, compared; program stores cannot reach it): see `REC`.
   */
  rec: 0x202100,
  /** Timer programs: the tick count (not compared: it depends on when interrupts arrive) and the CLI-region marker. */
  ticks: 0x203800, marker: 0x203804,
} as const;

/**
 * Offsets in the record area (`LAYOUT.rec`): the CS a far-call target saw pushed; the CS and
 * EFLAGS an INT n handler saw pushed; the CS, ESP and SS the ring-3 → ring-0 call gate
 * pushed; the timer handler's violation count (it ran while the program's CLI region marker
 * was set); the far pointer of indirect far transfers; the continuations of far JMPs and of
 * ring transitions.
 */
export const REC = { callCs: 0, intCs: 8, intFlags: 12, homeCs: 16, homeEsp: 20, homeSs: 24, violations: 28, farPtr: 0x40, contJmp: 0x48, contHome: 0x4c } as const;

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
export const SENSITIVE_OPS = ['pushf', 'popf', 'sgdt', 'sidt', 'sldt', 'str', 'smsw', 'lar', 'lsl', 'verr', 'verw', 'movsreg', 'pushseg', 'farret', 'farcall', 'farjmp', 'int', 'popseg', 'ring3'] as const;
/** Privileged instructions (they trap when deprivileged, and are emulated); `clisti` is a CLI … STI region. */
export const PRIVILEGED_OPS = ['cli', 'sti', 'crread', 'clisti'] as const;

/**
 * Far CALL targets (selectors; the offset is the harness's recording routine, which saves
 * the pushed CS and returns with RET far): ring-0 code (RPL 0, 1, 3), the conforming DPL-2
 * segment, the DPL-1 code segment, the call gates (DPL 3 and DPL 0, → ring-0 code; RPL 0
 * and 3), ring-3 code, a data segment, null. From ring 0 only 0x08 and the gates succeed
 * natively; from ring 3 the conforming segment, ring-3 code and the DPL-3 gate (a ring
 * transition to ring 0 and back with RET far) do.
 */
export const FAR_CALL_SELECTORS = [0x08, 0x09, 0x0b, 0x40, 0x43, 0x58, 0x48, 0x4b, 0x60, 0x63, 0x23, 0x10, 0] as const;
/** Far JMP targets: as `FAR_CALL_SELECTORS`, with the jump gates (0x68 DPL 3, → ring-0 code) for the call gates. */
export const FAR_JMP_SELECTORS = [0x08, 0x09, 0x0b, 0x40, 0x43, 0x58, 0x68, 0x6b, 0x23, 0x10, 0] as const;
/**
 * INT n vectors: 0x30 (interrupt gate, DPL 0), 0x31 (interrupt gate, DPL 3), 0x32 (trap
 * gate, DPL 3) reach a handler that records the pushed CS and EFLAGS and returns with IRET;
 * 0x33 is a not-present gate (#NP); 3, 0x0d, 0x0e and 0x2f reach exception stubs (no error
 * code is pushed by INT n); 0x40 and 0x80 are beyond the IDT's limit (#GP).
 */
export const INT_VECTORS = [0x30, 0x31, 0x32, 0x33, 3, 0x0d, 0x0e, 0x2f, 0x40, 0x80] as const;
/** The IDT vector the harness maps IRQ0 (the PIT) to in timer programs. */
export const TIMER_VECTOR = 0x20;
/** Data segment registers a program may load with POP (`popseg`). */
export const POP_SEGS = ['ds', 'es', 'fs', 'gs'] as const;

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
  | { op: 'loop'; n: number; body: Item[] }
  /** CALL far to `sel` (FAR_CALL_SELECTORS), direct (ptr16:32) or, with `ind`, through an m16:32 pointer. */
  | { op: 'farcall'; sel: number; ind?: boolean }
  /** JMP far to `sel` (FAR_JMP_SELECTORS), direct or indirect; the target jumps back. */
  | { op: 'farjmp'; sel: number; ind?: boolean }
  /** INT n (INT_VECTORS). */
  | { op: 'int'; n: number }
  /** PUSH imm; POP DS/ES/FS/GS: a segment load with any selector (a faulting one ends the program). */
  | { op: 'popseg'; seg: (typeof POP_SEGS)[number]; sel: number }
  /**
   * A ring transition: to ring 3 with STI; RET far (or, with `fl`, IRET with that EFLAGS
   * image: IF set, IOPL 0), the body in ring 3, back to ring 0 through the DPL-3 call gate 0x50.
   */
  | { op: 'ring3'; fl?: number; body: Ins[] }
  /** CLI; marker := 1; body; marker := 0; STI (timer programs: no interrupt may arrive inside). */
  | { op: 'clisti'; body: Ins[] };

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
  /**
   * Timer interrupts: the harness programs the PIT (channel 0, rate generator, count
   * `TIMER_COUNT`), maps IRQ0 to `TIMER_VECTOR`, unmasks it and enables interrupts before the
   * program; its handler counts ticks (not compared) and violations (compared). At the end
   * the stack below the final ESP is cleared (interrupt frames land there at positions that
   * depend on the monitor's cycle costs).
   */
  readonly timer?: boolean;
}

/** PIT channel-0 reload count of timer programs: the shortest rate-generator period (2 ticks, 1.68 µs). */
export const TIMER_COUNT = 2;

const seg = { cs, ss, ds } as const;
const dseg = { ds, es, fs, gs } as const;
const crs = { 0: cr0, 2: cr2, 3: cr3, 4: cr4 } as const;

/** An SS-relative 32-bit memory operand: the harness's routines must work whatever DS the program loaded. */
const ssd = (addr: number): Mem => mem({ disp: addr, seg: ss, size: 4 });

/** The harness's routines the items transfer to (labels bound by `buildGuest`, or dummies for `listing`). */
interface Targets {
  /** Far-call target: records the pushed CS, RET far. */
  readonly callRec: Label;
  /** Far-jump target: jumps back to the continuation the item stored. */
  readonly jmpBack: Label;
  /** A timer program (interrupt frames may have changed the stack below ESP). */
  readonly timer?: boolean;
}

/** The register-only instructions (ALU, MOV imm, shifts, unary, IMUL): the same code in every harness. */
export type RegisterOp = Extract<Ins, { op: 'alu' | 'alui' | 'movi' | 'shift' | 'unary' | 'imul' }>;

/** Emits a register-only instruction (shared by the flat, user and kernel-level harnesses). */
export function emitRegisterOp(a: Assembler, it: RegisterOp): void {
  switch (it.op) {
    case 'alu': a.emit(it.f, REG[it.d], REG[it.s]); break;
    case 'alui': a.emit(it.f, REG[it.d], it.imm | 0); break;
    case 'movi': a.mov(REG[it.d], it.imm | 0); break;
    case 'shift': a.emit(it.f, REG[it.d], it.n & 31); break;
    case 'unary': a.emit(it.f, REG[it.d]); break;
    case 'imul': a.imul(REG[it.d], REG[it.s]); break;
  }
}

/** Emits one item. */
function emitItem(a: Assembler, it: Item, depth: number, t: Targets): void {
  const L = LAYOUT;
  switch (it.op) {
    case 'alu': case 'alui': case 'movi': case 'shift': case 'unary': case 'imul': emitRegisterOp(a, it); break;
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
    case 'verr': case 'verw':
      // VERR/VERW set only ZF, which the next flag-writing instruction overwrites: SETZ keeps
      // it (in the last word of the data page), as a program testing the result would.
      a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG16[it.d]);
      a.emit('sete', mem({ disp: L.data + 0xffc, seg: ss, size: 1 }));
      break;
    case 'movsreg':
      // To a register (32-bit form) or, with `off`, to memory (MOV m16, Sreg).
      if (it.off === undefined) a.emit('mov', REG[it.d], seg[it.seg]);
      else a.emit('mov', word(L.data + (it.off & 0xffc)), seg[it.seg]);
      break;
    case 'cli': a.cli(); break;
    // PUSH CS/SS/DS, then POP into a register (the pushed selector becomes visible).
    case 'pushseg':
      // PUSH of a segment register writes 16 bits (P6 and later; SDM PUSH): the upper half of
      // the slot is what was there. In timer programs that may be an interrupt frame, which
      // arrives elsewhere under a monitor: the slot is zeroed first (LEA: no flag change).
      if (t.timer === true) { a.push(0); a.lea(esp, mem({ base: esp, disp: 4 })); }
      a.push(seg[it.seg]); a.pop(REG[it.d]);
      break;
    // RET far to the kernel's own code selector 0x08 (RPL 0) and the next instruction.
    case 'farret': { const next = a.label(); a.push(0x08); a.push(next); a.retf(); a.bind(next); break; }
    case 'sti': a.sti(); break;
    case 'crread': a.mov(REG[it.d], crs[it.cr]); break;
    case 'loop': {
      // The counter lives in memory the body cannot store to, so every loop ends.
      const ctr = ssd(L.loopCounters + 4 * depth);
      a.mov(ctr, Math.max(1, it.n | 0));
      const top = a.here();
      for (const b of it.body) emitItem(a, b, depth + 1, t);
      a.dec(ctr);
      a.jnz(top);
      break;
    }
    case 'farcall':
      // The target records the pushed CS and returns with RET far (a gate's offset is the gate's).
      if (it.ind === true) {
        a.mov(ssd(L.rec + REC.farPtr), t.callRec); a.mov(mem({ disp: L.rec + REC.farPtr + 4, seg: ss, size: 2 }), it.sel & 0xffff);
        a.emit('call', mem({ disp: L.rec + REC.farPtr, seg: ss, size: 6 }));
      } else {
        a.callFar(it.sel & 0xffff, t.callRec);
      }
      break;
    case 'farjmp': {
      // The target jumps back to `next` through a continuation word (a near indirect JMP).
      const next = a.label();
      a.mov(ssd(L.rec + REC.contJmp), next);
      if (it.ind === true) {
        a.mov(ssd(L.rec + REC.farPtr), t.jmpBack); a.mov(mem({ disp: L.rec + REC.farPtr + 4, seg: ss, size: 2 }), it.sel & 0xffff);
        a.emit('jmp', mem({ disp: L.rec + REC.farPtr, seg: ss, size: 6 }));
      } else {
        a.jmpFar(it.sel & 0xffff, t.jmpBack);
      }
      a.bind(next);
      break;
    }
    case 'int': a.int(it.n & 0xff); break;
    case 'popseg': a.push(it.sel & 0xffff); a.pop(dseg[it.seg]); break;
    case 'ring3': {
      // RET far (or IRET) to ring-3 code on the ring-3 stack; back through the call gate 0x50,
      // whose ring-0 target records the frame, drops it and jumps to `back`.
      const r3 = a.label(), back = a.label();
      a.mov(ssd(L.rec + REC.contHome), back);
      a.push(0x1b); a.push(L.stack3Top);
      if (it.fl !== undefined) a.push(((it.fl & 0xcd5) | 0x202) >>> 0);
      a.push(0x23); a.push(r3);
      // User code runs with interrupts enabled (as under any kernel; trap and full assume it:
      // their real IF is 1 in ring 3): STI before RET far, IF set in the IRET image.
      if (it.fl !== undefined) a.iret(); else { a.sti(); a.retf(); }
      a.bind(r3);
      // Ring-3 data segments (the return to ring 3 nulled the DPL-0 ones).
      a.push(0x1b); a.pop(ds); a.push(0x1b); a.pop(es);
      for (const b of it.body) emitItem(a, b, depth + 1, t);
      a.callFar(0x53, 0);
      a.bind(back);
      break;
    }
    case 'clisti':
      a.cli(); a.mov(ssd(L.marker), 1);
      for (const b of it.body) emitItem(a, b, depth + 1, t);
      a.mov(ssd(L.marker), 0); a.sti();
      break;
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
      // The PRD is stored at its physical address with paging off around the two stores (the
      // code and stack are identity-mapped); through paging, most `prd` values would fault.
      // Beyond RAM nothing is stored (on the bare machine such stores go nowhere); the bus
      // master then reads the PRD there, which it must refuse.
      if (((it.prd >>> 0) + 8) <= (LAYOUT.guestMiB << 20)) {
        a.mov(eax, cr0); a.push(eax); a.and(eax, 0x7fffffff); a.mov(cr0, eax);
        a.mov(dword(it.prd), it.buf | 0); a.mov(dword(it.prd + 4), (0x80000000 | (it.bytes & 0xfffe)) | 0);
        a.pop(eax); a.mov(cr0, eax);
      }
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

/** Descriptors of the harness's GDT (index → [low, high]); the call gates are filled in by `buildGuest`. */
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
  [0, 0xec00], // 0x48 32-bit call gate, DPL 3 → 0x08:callRec
  [0, 0xec00], // 0x50 32-bit call gate, DPL 3 → 0x08:home (ring 3 back to ring 0)
  [0x0000ffff, 0x00cfbb00], // 0x58 code, DPL 1 (accessed)
  [0, 0x8c00], // 0x60 32-bit call gate, DPL 0 → 0x08:callRec
  [0, 0xec00], // 0x68 32-bit call gate, DPL 3 → 0x08:jmpBack
];
/** GDT index → the harness routine its call gate targets. */
const GATES: Readonly<Record<number, 'callRec' | 'jmpBack' | 'home'>> = { 9: 'callRec', 10: 'home', 12: 'callRec', 13: 'jmpBack' };
/**
 * Selectors worth probing with LAR/LSL/VERR/VERW (and RPL variants, the LDT's entry). 0x48 is
 * the DPL-3 call gate; the later descriptors are probed by the far transfers and segment loads
 * (the list is unchanged so that user-equivalence's generated programs stay the same).
 */
export const PROBE_SELECTORS = [0, 0x08, 0x0b, 0x10, 0x13, 0x18, 0x1b, 0x20, 0x23, 0x28, 0x30, 0x38, 0x39, 0x40, 0x42, 0x07, 0x48, 0xfff8];

/** Exceptions with an error code. */
const ERRCODE = new Set([8, 10, 11, 12, 13, 14, 17]);
/** IDT gates: 64 (exceptions, IRQs remapped to 0x20, the INT n vectors 0x30–0x33). */
const IDT_GATES = 64;

/** Assembles the harness around `p` (flat binary for 0x100000). */
export function buildGuest(p: GuestProgram): Uint8Array {
  const L = LAYOUT;
  const a = new Assembler({ bits: 32, origin: L.code });
  const dump = a.label('dump');
  const stubs = Array.from({ length: IDT_GATES }, (_, i) => a.label(`exc${i}`));
  const t: Targets = { callRec: a.label('callRec'), jmpBack: a.label('jmpBack'), timer: p.timer === true };
  const home = a.label('home'), intRec = a.label('intRec'), timer = a.label('timer');
  const routine: Record<'callRec' | 'jmpBack' | 'home', Label> = { callRec: t.callRec, jmpBack: t.jmpBack, home };
  a.cli();
  // GDT (call gates: selector 0x08 and the routine's offset), LDT (one DPL-3 data
  // descriptor), TSS (SS0:ESP0), IDT of 64 gates.
  GDT_ENTRIES.forEach(([lo, hi], i) => {
    const r = GATES[i];
    if (r === undefined) { a.mov(dword(L.gdt + 8 * i), lo | 0); a.mov(dword(L.gdt + 8 * i + 4), hi | 0); return; }
    a.mov(eax, routine[r]);
    a.mov(word(L.gdt + 8 * i), ax); a.mov(word(L.gdt + 8 * i + 2), 0x08); a.mov(word(L.gdt + 8 * i + 4), hi | 0);
    a.shr(eax, 16); a.mov(word(L.gdt + 8 * i + 6), ax);
  });
  a.mov(dword(L.ldt), 0x0000ffff); a.mov(dword(L.ldt + 4), 0x00cff200 | 0);
  a.mov(dword(L.tss + 4), L.stackTop); a.mov(dword(L.tss + 8), 0x10);
  for (let i = 0; i < IDT_GATES; i++) {
    // 0x30: interrupt gate DPL 0; 0x31: interrupt gate DPL 3; 0x32: trap gate DPL 3; 0x33: not present.
    const target = i >= 0x30 && i <= 0x33 ? intRec : i === TIMER_VECTOR && p.timer === true ? timer : stubs[i]!;
    const type = i === 0x30 ? 0x8e00 : i === 0x31 ? 0xee00 : i === 0x32 ? 0xef00 : i === 0x33 ? 0x6e00 : 0x8e00;
    a.mov(eax, target);
    a.mov(word(L.idt + 8 * i), ax); a.mov(word(L.idt + 8 * i + 2), 0x08); a.mov(word(L.idt + 8 * i + 4), type);
    a.shr(eax, 16); a.mov(word(L.idt + 8 * i + 6), ax);
  }
  a.mov(word(L.descr), GDT_ENTRIES.length * 8 - 1); a.mov(dword(L.descr + 2), L.gdt);
  a.mov(word(L.descr + 8), IDT_GATES * 8 - 1); a.mov(dword(L.descr + 10), L.idt);
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
    for (const pg of [L.gdt, L.tss, L.ldt, L.idt]) { a.mov(eax, dword(pg)); a.mov(dword(pg), eax); }
  }
  if (p.timer === true) {
    // Master PIC: edge, single, ICW4; IRQ0 → TIMER_VECTOR; auto-EOI (the handler needs no
    // OUT); only IRQ0 unmasked. PIT channel 0: rate generator, count TIMER_COUNT. Then STI.
    for (const [port, v] of [[0x20, 0x13], [0x21, TIMER_VECTOR], [0x21, 0x03], [0x21, 0xfe], [0x43, 0x34], [0x40, TIMER_COUNT & 0xff], [0x40, TIMER_COUNT >>> 8]] as const) {
      a.mov(al, v); a.out(port, al);
    }
    a.sti();
  }
  // Initial registers.
  REGS.forEach((r, i) => a.mov(REG[r], (p.regs[i] ?? 0) | 0));
  a.bind(a.label('program'));
  for (const it of p.items) emitItem(a, it, 0, t);
  a.jmp(dump);
  // The far-call target: records the pushed CS, returns with RET far (no register or flag changes).
  a.bind(t.callRec);
  a.push(mem({ base: esp, disp: 4, seg: ss, size: 4 })); a.pop(ssd(L.rec + REC.callCs));
  a.retf();
  // The far-jump target: back to the item's continuation.
  a.bind(t.jmpBack);
  a.jmp(ssd(L.rec + REC.contJmp));
  // Ring 3 → ring 0 through the call gate 0x50: record CS, ESP, SS; drop the frame (LEA: no
  // flag changes); the ring-0 data segments again; continue after the ring3 item.
  a.bind(home);
  a.push(mem({ base: esp, disp: 4, seg: ss, size: 4 })); a.pop(ssd(L.rec + REC.homeCs));
  a.push(mem({ base: esp, disp: 8, seg: ss, size: 4 })); a.pop(ssd(L.rec + REC.homeEsp));
  a.push(mem({ base: esp, disp: 12, seg: ss, size: 4 })); a.pop(ssd(L.rec + REC.homeSs));
  a.lea(esp, mem({ base: esp, disp: 16 }));
  for (const s of [ds, es, fs, gs]) { a.push(0x10); a.pop(s); }
  a.jmp(ssd(L.rec + REC.contHome));
  // INT 0x30–0x32: records the pushed CS and EFLAGS, IRET.
  a.bind(intRec);
  a.push(mem({ base: esp, disp: 4, seg: ss, size: 4 })); a.pop(ssd(L.rec + REC.intCs));
  a.push(mem({ base: esp, disp: 8, seg: ss, size: 4 })); a.pop(ssd(L.rec + REC.intFlags));
  a.iret();
  // The timer (IRQ0): counts ticks, and a violation when the program is inside a CLI region
  // (its marker set). Only memory is written; IRET restores the flags.
  a.bind(timer);
  a.add(ssd(L.ticks), 1);
  a.cmp(ssd(L.marker), 0);
  const ok = a.label();
  a.je(ok);
  a.add(ssd(L.rec + REC.violations), 1);
  a.bind(ok);
  a.iret();
  // Exception stubs: vector + 1, error code, CR2; then the dump (SS-relative: DS may be anything).
  for (let i = 0; i < IDT_GATES; i++) {
    a.bind(stubs[i]!);
    a.mov(ssd(L.dump + 48), eax);
    a.mov(ssd(L.dump + 36), i + 1);
    if (ERRCODE.has(i)) a.pop(ssd(L.dump + 40));
    a.mov(eax, cr2); a.mov(ssd(L.dump + 44), eax);
    a.mov(eax, ssd(L.dump + 48));
    a.jmp(dump);
  }
  a.bind(dump);
  // Timer programs: the dump is a CLI region of the harness (marked too).
  if (p.timer === true) { a.cli(); a.mov(ssd(L.marker), 1); }
  [eax, ecx, edx, ebx, esp, ebp, esi, edi].forEach((r, i) => a.mov(ssd(L.dump + 4 * i), r));
  a.lahf(); a.mov(mem({ disp: L.dump + 32, seg: ss, size: 1 }), ah);
  a.emit('seto', al); a.mov(mem({ disp: L.dump + 33, seg: ss, size: 1 }), al);
  if (p.timer === true) {
    // Interrupt frames land below ESP where the interrupts happened to arrive (monitors
    // charge more cycles, so elsewhere): clear the stack below the final ESP.
    const skip = a.label();
    a.push(0x10); a.pop(es);
    a.mov(edi, L.stack); a.mov(ecx, esp); a.sub(ecx, edi); a.jb(skip);
    a.shr(ecx, 2); a.cmp(ecx, 0x200); a.ja(skip);
    a.xor(eax, eax); a.cld(); a.stosd('rep');
    a.bind(skip);
  }
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
  // The harness's routines, as labels just past the program (the listing shows the items only).
  const t: Targets = { callRec: a.label('callRec'), jmpBack: a.label('jmpBack') };
  for (const it of items) emitItem(a, it, 0, t);
  a.bind(t.callRec); a.bind(t.jmpBack);
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
