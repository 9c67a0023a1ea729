/**
 * The virtlab guest kernel, built with the assembler: Multiboot boot, GDT/IDT/TSS, paging
 * with the kernel mapped at 0xC0000000 (physical 1 MiB), processes with their own page
 * directories and kernel stacks, round-robin scheduling on the PIT tick, system calls by
 * `int 0x80` and SYSENTER, demand-zero and copy-on-write page faults, anonymous mmap, and
 * drivers for the ATA disk and the e1000 NIC. Every privileged operation is a pv-op site.
 *
 * Internal calling convention (Linux's regparm(3)): arguments in EAX, EDX, ECX; result in
 * EAX; EAX, ECX, EDX clobbered; EBX, ESI, EDI, EBP preserved. Kernel code runs with
 * interrupts disabled (interrupt gates; SYSENTER clears IF): only the idle loop enables
 * them, so the kernel needs no locks. See docs/kernel.md.
 */
import type { Assembler } from '../../x86/assembler.js';
import type { Mem, Reg } from '../../x86/operands.js';
import { KernelAssembler } from './asm.js';
import {
  al, ax, cl, cr0, cr2, cr3, cr4, ds, dx, eax, ebp, ebx, ecx, edi, edx, es, esi, esp, fs, gs, ss,
  byte, dword, fword, ptr, word, type Label,
} from '../../x86/operands.js';
import type { PvopKind } from '../../x86/pvop.js';
import { imageFromAssembly, SEG_R, validateGuestImage, type GuestImage, type GuestSegment } from '../image.js';
import {
  DIRECT_MAP_BYTES, EAGAIN, ECHILD, EFAULT, EINVAL, ENOENT, ENOMEM, ENOSYS, KERNEL_PHYS, KERNEL_VIRT, KILL_FPE, KILL_ILL,
  KILL_SEGV, MAX_PROCS, MMAP_BASE, NVMA, P, PS_BLOCKED, PS_FREE, PS_RUNNABLE, PS_ZOMBIE, PTE_COW, PTE_G, PTE_P, PTE_U, PTE_W,
  SEL_KCODE, SEL_KDATA, SEL_TSS, SEL_UCODE, SEL_UDATA, SYS, TF, USER_BASE, USER_STACK_BOTTOM, USER_STACK_TOP, VDSO_ADDR,
  VDSO_SYSENTER_RETURN, VEC_SYSENTER,
} from './layout.js';
import { assembleProgram, assembleVdso, type UserProgram } from './user.js';
import { emitDrivers } from './drivers.js';
import { emitPipes } from './pipes.js';
import { emitXen, VEC_XEN_UPCALL, XEN_NOTE_SYMBOLS } from './pv-xen.js';
import { NOTE_MAGIC } from '../../vmm/pv/abi.js';

/** How to build the kernel. */
export interface KernelOptions {
  /** Built-in programs (execve by name). */
  readonly programs: readonly UserProgram[];
  /** The program run as pid 1; when it exits the machine stops with its exit code (port 0xF4). */
  readonly init: string;
  /** Timer frequency (default 1000 Hz). */
  readonly hz?: number;
  /** Printed at boot (default "virtlab kernel"). */
  readonly banner?: string;
  /** Extra system calls: kernel-level harnesses (nanobenchmarks of privileged operations, ...). */
  readonly extraSyscalls?: readonly ExtraSyscall[];
}

/**
 * A system call added by a workload. `emit` writes the handler's body at its label
 * (`sys_<name>`), in the kernel's convention: the caller's EBX, ECX, EDX arrive in EAX, EDX,
 * ECX (ESI, EDI: read them from the trap frame, `dword(k.L('cur_frame'))` + TF.ESI/EDI);
 * return the result in EAX with `ret`; preserve EBX, ESI, EDI, EBP; interrupts are off.
 * Privileged instructions must go through `k.pv(kind, ...)` sites.
 */
export interface ExtraSyscall {
  /** 200..239, not used by the kernel. */
  readonly nr: number;
  readonly name: string;
  readonly emit: (k: Kx) => void;
}

const PAGE = 4096;
const NPT = DIRECT_MAP_BYTES / (4 * 1024 * 1024); // kernel page tables
const MAX_FRAMES = DIRECT_MAP_BYTES / PAGE;
const PIT_HZ = 1_193_182;
/** Wait channels that are not process addresses. */
export const CHAN_SLEEP = 1, CHAN_DISK = 2, CHAN_NET = 3, CHAN_DISK_FREE = 4;

/** The kernel-building context shared with drivers.ts. */
export interface Kx {
  readonly a: Assembler;
  /** The named label `name` (created on first use). */
  L(name: string): Label;
  /** A pv-op site. */
  pv(kind: PvopKind, body: () => void): void;
  /** out port, al (port in DX when > 255). */
  outb(port: number): void;
  /** in al, port. */
  inb(port: number): void;
  /** out port, eax. */
  outl(port: number): void;
  /** in eax, port. */
  inl(port: number): void;
  /** Prints a constant string on the console (all registers preserved). */
  print(text: string): void;
}

/** Builds the kernel image. */
export function buildKernel(options: KernelOptions): GuestImage {
  const hz = options.hz ?? 1000;
  if (!Number.isInteger(hz) || hz < 19 || hz > 100_000) throw new RangeError(`hz: ${hz} is not in 19..100000`);
  const programs = options.programs.map(assembleProgram);
  const names = new Set<string>();
  for (const p of programs) { if (names.has(p.name)) throw new RangeError(`duplicate program "${p.name}"`); names.add(p.name); }
  if (!names.has(options.init)) throw new RangeError(`init program "${options.init}" is not among the programs (${[...names].join(', ')})`);

  // 'text' is the high kernel (virtual KERNEL_VIRT + 1 MiB + 4 KiB); the boot stub, which runs
  // before paging, is its own identity-mapped section at 1 MiB.
  const a = new KernelAssembler({ bits: 32, origin: KERNEL_VIRT + KERNEL_PHYS + PAGE, loadAddress: KERNEL_PHYS + PAGE, pvopMinLength: 8 });
  a.section('rodata', { kind: 'rodata' });
  a.section('data', { kind: 'data' });
  a.section('bss', { kind: 'bss' });
  a.section('boot', { kind: 'text', origin: KERNEL_PHYS, loadAddress: KERNEL_PHYS });
  const L = (name: string): Label => a.findLabel(name) ?? a.label(name);
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };
  let strN = 0;
  const str = (text: string): Label => {
    const l = a.label(`kstr_${strN++}`);
    const cur = a.currentSection;
    a.section('rodata');
    a.bind(l);
    a.asciz(text);
    a.section(cur);
    return l;
  };
  const pv = (kind: PvopKind, body: () => void): void => a.pvop(kind, body);
  const outb = (port: number): void => {
    if (port < 256) pv('port-out', () => a.out(port, al));
    else { a.mov(dx, port); pv('port-out', () => a.out(dx, al)); }
  };
  const inb = (port: number): void => {
    if (port < 256) pv('port-in', () => a.in(al, port));
    else { a.mov(dx, port); pv('port-in', () => a.in(al, dx)); }
  };
  const outl = (port: number): void => { a.mov(dx, port); pv('port-out', () => a.out(dx, eax)); };
  const inl = (port: number): void => { a.mov(dx, port); pv('port-in', () => a.in(eax, dx)); };
  const print = (text: string): void => {
    const s = str(text);
    a.push(eax); a.push(ecx); a.push(edx);
    a.mov(eax, s); a.call(L('kputs'));
    a.pop(edx); a.pop(ecx); a.pop(eax);
  };
  /** set-pte: *EDI = EAX. Every page-table write is this one store. */
  const setPte = (): void => pv('set-pte', () => a.mov(dword(edi), eax));
  /**
   * read-pte: a load of a page-table entry whose frame the kernel then uses (12 bytes, so
   * that a paravirtual kernel can follow the load with a call converting a machine frame
   * back to its pseudo-physical frame).
   */
  const readPte = (dst: Reg, src: Mem): void => a.pvop('read-pte', () => a.mov(dst, src), 12);
  const kx: Kx = { a, L, pv, outb, inb, outl, inl, print };
  const cur = dword(L('current'));

  // ------------------------------------------------------------------ boot (physical)
  // Entered from the Multiboot loader: paging off, flat segments, EBX = info structure.
  fn('_start', () => {
    a.mov(esp, L('boot_stack_top').phys());
    a.mov(dword(L('mbi_phys').phys()), ebx);
    // Kernel page tables: NPT tables mapping the first DIRECT_MAP_BYTES, global, supervisor RW.
    a.mov(edi, L('kernel_pts').phys());
    a.mov(eax, PTE_P | PTE_W | PTE_G);
    a.mov(ecx, MAX_FRAMES);
    const fill = a.here();
    setPte();
    a.add(eax, PAGE);
    a.add(edi, 4);
    a.dec(ecx);
    a.jnz(fill);
    // The directory: identity (for the jump to high addresses) and at KERNEL_VIRT.
    a.mov(ebx, L('kernel_pd').phys());
    a.mov(eax, L('kernel_pts').phys());
    a.or(eax, PTE_P | PTE_W);
    a.xor(ecx, ecx);
    const pdl = a.here();
    a.lea(edi, dword({ base: ebx, index: ecx, scale: 4 }));
    setPte();
    a.lea(edi, dword({ base: ebx, index: ecx, scale: 4, disp: (KERNEL_VIRT >>> 22) * 4 }));
    setPte();
    a.add(eax, PAGE);
    a.inc(ecx);
    a.cmp(ecx, NPT);
    a.jb(pdl);
    a.mov(eax, ebx);
    pv('write-cr3', () => a.mov(cr3, eax));
    pv('read-cr4', () => a.mov(eax, cr4));
    a.or(eax, 0x80); // PGE
    pv('write-cr4', () => a.mov(cr4, eax));
    pv('read-cr0', () => a.mov(eax, cr0));
    a.or(eax, 0x8001_0000 | 0); // PG | WP
    pv('write-cr0', () => a.mov(cr0, eax));
    a.mov(eax, L('start_kernel'));
    a.jmp(eax);
  });

  // ------------------------------------------------------------------ high kernel
  a.section('text');

  fn('start_kernel', () => {
    a.mov(esp, L('boot_stack_top'));
    pv('load-gdt', () => a.lgdt(fword(L('gdt_desc'))));
    a.jmpFar(SEL_KCODE, L('reload_cs'));
    a.bind(L('reload_cs'));
    a.mov(eax, SEL_UDATA);
    pv('load-segment', () => a.mov(ds, ax));
    pv('load-segment', () => a.mov(es, ax));
    pv('load-segment', () => a.mov(fs, ax));
    pv('load-segment', () => a.mov(gs, ax));
    a.mov(eax, SEL_KDATA);
    pv('load-segment', () => a.mov(ss, ax));
    // Drop the identity mapping.
    a.mov(ecx, 0);
    a.xor(eax, eax);
    const unmap = a.here();
    a.lea(edi, dword({ index: ecx, scale: 4, disp: L('kernel_pd') }));
    setPte();
    a.inc(ecx);
    a.cmp(ecx, NPT);
    a.jb(unmap);
    a.mov(eax, L('kernel_pd').phys());
    a.mov(dword(L('kernel_cr3')), eax);
    a.mov(dword(L('cur_cr3')), eax);
    pv('flush-tlb', () => a.mov(cr3, eax));
    a.call(L('console_init'));
    a.mov(eax, L('banner')); a.call(L('kputs'));
    a.call(L('gdt_tss_init'));
    a.call(L('idt_init'));
    a.call(L('pic_pit_init'));
    a.call(L('sysenter_init'));
    a.call(L('mm_init'));
    a.call(L('proc_init'));
    a.call(L('drivers_init'));
    a.call(L('start_init'));
    a.jmp(L('idle_loop'));
  });

  // ------------------------------------------------------------------ console (16550 UART, COM1)
  fn('console_init', () => {
    a.mov(al, 0); outb(0x3f9); // IER: no interrupts
    a.mov(al, 0x80); outb(0x3fb); // DLAB
    a.mov(al, 1); outb(0x3f8); // 115200 baud
    a.mov(al, 0); outb(0x3f9);
    a.mov(al, 3); outb(0x3fb); // 8N1
    a.ret();
  });
  // kputc(al): polls LSR.THRE then writes THR.
  fn('kputc', () => {
    a.cmp(dword(L('xen_si')), 0); a.jne(L('xen_kputc')); // a Xen domain: console_io
    a.push(eax);
    const wait = a.here();
    inb(0x3fd);
    a.test(al, 0x20);
    a.jz(wait);
    a.pop(eax);
    outb(0x3f8);
    a.ret();
  });
  // kputs(eax = NUL-terminated string).
  fn('kputs', () => {
    a.push(esi);
    a.mov(esi, eax);
    const loop = a.here();
    const done = a.label();
    a.mov(al, byte(esi));
    a.test(al, al);
    a.jz(done);
    a.call(L('kputc'));
    a.inc(esi);
    a.jmp(loop);
    a.bind(done);
    a.pop(esi);
    a.ret();
  });
  // kputdec(eax): unsigned decimal.
  fn('kputdec', () => {
    a.push(ebx);
    a.mov(ecx, 10);
    a.xor(ebx, ebx);
    const div = a.here();
    a.xor(edx, edx);
    a.div(ecx);
    a.push(edx);
    a.inc(ebx);
    a.test(eax, eax);
    a.jnz(div);
    const out = a.here();
    a.pop(eax);
    a.add(al, 0x30);
    a.call(L('kputc'));
    a.dec(ebx);
    a.jnz(out);
    a.pop(ebx);
    a.ret();
  });
  // kputhex(eax): 0x + 8 digits.
  fn('kputhex', () => {
    a.push(ebx);
    a.mov(ebx, eax);
    a.mov(al, 0x30); a.call(L('kputc'));
    a.mov(al, 0x78); a.call(L('kputc'));
    a.mov(ecx, 8);
    const loop = a.here();
    a.rol(ebx, 4);
    a.mov(eax, ebx);
    a.and(eax, 15);
    a.mov(al, byte({ base: eax, disp: L('hexdigits') }));
    a.push(ecx);
    a.call(L('kputc'));
    a.pop(ecx);
    a.dec(ecx);
    a.jnz(loop);
    a.pop(ebx);
    a.ret();
  });
  // panic(eax = message): prints and stops the machine (exit code 255).
  fn('panic', () => {
    a.push(eax);
    a.mov(eax, L('panic_msg')); a.call(L('kputs'));
    a.pop(eax); a.call(L('kputs'));
    a.mov(al, 10); a.call(L('kputc'));
    a.mov(al, 255);
    a.jmp(L('machine_stop'));
  });
  // machine_stop(al = code): isa-debug-exit.
  fn('machine_stop', () => {
    a.cmp(dword(L('xen_si')), 0); a.jne(L('xen_machine_stop')); // a Xen domain: SCHEDOP_shutdown
    outb(0xf4);
    const hang = a.here();
    pv('halt', () => a.hlt());
    a.jmp(hang);
  });

  // ------------------------------------------------------------------ GDT, TSS, IDT
  fn('gdt_tss_init', () => {
    // TSS descriptor: base = tss, limit 103, type 0x89.
    a.mov(eax, L('tss'));
    a.mov(edx, eax);
    a.shl(eax, 16);
    a.or(eax, 103);
    a.mov(dword(L('gdt').plus(SEL_TSS)), eax);
    a.mov(eax, edx);
    a.shr(eax, 16);
    a.and(eax, 0xff);
    a.mov(ecx, edx);
    a.and(ecx, 0xff00_0000);
    a.or(eax, ecx);
    a.or(eax, 0x0000_8900);
    a.mov(dword(L('gdt').plus(SEL_TSS + 4)), eax);
    a.mov(dword(L('tss').plus(8)), SEL_KDATA);
    a.mov(word(L('tss').plus(102)), 104);
    a.mov(ecx, L('boot_stack_top'));
    pv('set-kernel-stack', () => a.mov(dword(L('tss').plus(4)), ecx));
    a.mov(eax, SEL_TSS);
    pv('load-tr', () => a.ltr(ax));
    a.ret();
  });
  fn('idt_init', () => {
    a.push(ebx);
    a.xor(ecx, ecx);
    const loop = a.here();
    a.mov(eax, dword({ index: ecx, scale: 4, disp: L('stub_table') }));
    a.mov(edx, 0x8e00); // present, DPL 0, 32-bit interrupt gate
    a.cmp(ecx, 0x80);
    const notSys = a.label();
    a.jne(notSys);
    a.mov(edx, 0xee00); // DPL 3: int 0x80 from user mode
    a.bind(notSys);
    a.mov(ebx, eax);
    a.and(ebx, 0xffff_0000);
    a.or(edx, ebx);
    a.mov(dword({ index: ecx, scale: 8, disp: L('idt').plus(4) }), edx);
    a.and(eax, 0xffff);
    a.or(eax, SEL_KCODE << 16);
    a.mov(dword({ index: ecx, scale: 8, disp: L('idt') }), eax);
    a.inc(ecx);
    a.cmp(ecx, 256);
    a.jb(loop);
    pv('load-idt', () => a.lidt(fword(L('idt_desc'))));
    a.pop(ebx);
    a.ret();
  });
  fn('pic_pit_init', () => {
    // 8259A pair: vectors 0x20 / 0x28, cascade on IRQ 2.
    const seq: [number, number][] = [[0x20, 0x11], [0xa0, 0x11], [0x21, 0x20], [0xa1, 0x28], [0x21, 4], [0xa1, 2], [0x21, 1], [0xa1, 1],
      [0x21, 0xfa], // unmask IRQ 0 (timer), 2 (cascade)
      [0xa1, 0xb7]]; // unmask IRQ 11 (NIC), 14 (disk)
    for (const [port, v] of seq) { a.mov(al, v); outb(port); }
    a.cmp(dword(L('xen_si')), 0); a.jne(L('xen_timer_init')); // a Xen domain: VIRQ_TIMER instead of the PIT
    // PIT channel 0, mode 2 (rate generator), binary.
    const div = Math.round(PIT_HZ / hz);
    a.mov(al, 0x34); outb(0x43);
    a.mov(al, div & 0xff); outb(0x40);
    a.mov(al, (div >> 8) & 0xff); outb(0x40);
    a.ret();
  });
  fn('sysenter_init', () => {
    const wr = (msr: number, value: number | Label): void => {
      a.mov(ecx, msr); a.mov(eax, value); a.xor(edx, edx);
      pv('wrmsr', () => a.wrmsr());
    };
    wr(0x174, SEL_KCODE);
    wr(0x175, L('boot_stack_top')); // the entry switches to TSS.esp0 at once
    wr(0x176, L('sysenter_entry'));
    a.ret();
  });

  // ------------------------------------------------------------------ trap entry and exit
  const stubs: Label[] = [];
  const withErr = new Set([8, 10, 11, 12, 13, 14, 17]);
  for (let v = 0; v < 256; v++) {
    const used = v < 48 || v === 0x80;
    if (!used) { stubs.push(L('stub_bad')); continue; }
    const l = a.label(`vec_${v.toString(16)}`);
    stubs.push(l);
    a.bind(l);
    if (!withErr.has(v)) a.push(0);
    a.push(v);
    a.jmp(L('trap_common'));
  }
  fn('stub_bad', () => { a.push(0); a.push(0xff); a.jmp(L('trap_common')); });
  fn('trap_common', () => {
    a.push(ds); a.push(es);
    a.pusha();
    a.mov(eax, esp);
    a.call(L('trap_dispatch'));
  });
  // Returns to the context in the trap frame at ESP: by SYSEXIT when the call came through SYSENTER.
  fn('trap_return', () => {
    const viaIret = a.label();
    a.cmp(dword(esp, TF.VECTOR), VEC_SYSENTER);
    a.jne(viaIret);
    a.popa();
    a.mov(edx, dword(esp, TF.EIP - TF.ES));
    a.mov(ecx, dword(esp, TF.UESP - TF.ES));
    pv('sysexit', () => { a.sti(); a.sysexit(); });
    a.bind(viaIret);
    a.popa();
    a.add(esp, 16); // es, ds, vector, error code
    pv('iret', () => a.iret());
  });
  // SYSENTER: EIP/ESP from the MSRs, IF clear; user ESP in EBP (the vDSO put it there).
  fn('sysenter_entry', () => {
    a.mov(esp, dword(L('tss').plus(4)));
    a.push(SEL_UDATA);
    a.push(ebp);
    a.push(0x202);
    a.push(SEL_UCODE);
    a.push(VDSO_SYSENTER_RETURN);
    a.push(0);
    a.push(VEC_SYSENTER);
    a.push(ds); a.push(es);
    a.pusha();
    a.mov(eax, esp);
    a.call(L('trap_dispatch'));
    a.jmp(L('trap_return'));
  });

  // trap_dispatch(eax = frame)
  fn('trap_dispatch', () => {
    const notPf = a.label(), notExc = a.label(), notIrq = a.label();
    a.mov(edx, dword(eax, TF.VECTOR));
    a.cmp(edx, 14); a.jne(notPf);
    a.jmp(L('page_fault'));
    a.bind(notPf);
    a.cmp(edx, 32); a.jae(notExc);
    a.jmp(L('exception'));
    a.bind(notExc);
    a.cmp(edx, 48); a.jae(notIrq);
    a.jmp(L('irq'));
    a.bind(notIrq);
    a.cmp(edx, 0x80); a.je(L('syscall'));
    a.cmp(edx, VEC_SYSENTER); a.je(L('syscall'));
    a.cmp(edx, VEC_XEN_UPCALL); a.je(L('xen_do_upcall'));
    a.mov(eax, L('msg_badvec')); a.jmp(L('panic'));
  });

  // exception(eax = frame): user mode → kill with 128+signal; kernel mode → panic.
  fn('exception', () => {
    a.push(ebx);
    a.mov(ebx, eax);
    const kernel = a.label();
    a.test(dword(ebx, TF.CS), 2); a.jz(kernel); // ring 3 only (a pv kernel runs in ring 1)
    print('pid ');
    a.mov(eax, cur); a.mov(eax, dword(eax, P.PID)); a.call(L('kputdec'));
    print(': exception ');
    a.mov(eax, dword(ebx, TF.VECTOR)); a.call(L('kputdec'));
    print(' at '); a.mov(eax, dword(ebx, TF.EIP)); a.call(L('kputhex'));
    print(', killed\n');
    const fpe = a.label(), ill = a.label();
    a.mov(eax, dword(ebx, TF.VECTOR));
    a.cmp(eax, 0); a.je(fpe);
    a.cmp(eax, 6); a.je(ill);
    a.mov(eax, KILL_SEGV); a.jmp(L('do_exit'));
    a.bind(fpe); a.mov(eax, KILL_FPE); a.jmp(L('do_exit'));
    a.bind(ill); a.mov(eax, KILL_ILL); a.jmp(L('do_exit'));
    a.bind(kernel);
    print('kernel exception ');
    a.mov(eax, dword(ebx, TF.VECTOR)); a.call(L('kputdec'));
    print(' err '); a.mov(eax, dword(ebx, TF.ERR)); a.call(L('kputhex'));
    print(' at '); a.mov(eax, dword(ebx, TF.EIP)); a.call(L('kputhex'));
    a.mov(eax, L('msg_empty')); a.jmp(L('panic'));
  });

  // irq(eax = frame)
  fn('irq', () => {
    a.push(ebx);
    a.mov(ebx, eax);
    a.mov(eax, dword(ebx, TF.VECTOR));
    a.sub(eax, 0x20);
    // EOI first (slave too for IRQ 8..15): the handler may switch processes.
    const master = a.label();
    a.push(eax);
    a.cmp(eax, 8); a.jb(master);
    a.mov(al, 0x20); outb(0xa0);
    a.bind(master);
    a.mov(al, 0x20); outb(0x20);
    a.pop(eax);
    // irq_noeoi: entered with EBX pushed, EBX = frame, EAX = IRQ (an event-channel upcall: no PIC to acknowledge).
    a.bind(L('irq_noeoi'));
    const notTimer = a.label(), done = a.label();
    a.test(eax, eax); a.jnz(notTimer);
    a.call(L('timer_tick'));
    a.test(dword(ebx, TF.CS), 2); a.jz(done); // preempt user mode (ring 3) only
    a.call(L('schedule'));
    a.jmp(done);
    a.bind(notTimer);
    a.cmp(eax, 14); const notDisk = a.label(); a.jne(notDisk);
    a.call(dword(L('blk_irq_fn'))); a.jmp(done);
    a.bind(notDisk);
    a.cmp(eax, 11); a.jne(done);
    a.call(dword(L('net_irq_fn')));
    a.bind(done);
    a.pop(ebx);
    a.ret();
  });
  fn('timer_tick', () => {
    a.inc(dword(L('ticks')));
    // Wake sleepers whose time has come.
    a.mov(eax, L('procs'));
    const loop = a.here(), next = a.label();
    a.cmp(dword(eax, P.STATE), PS_BLOCKED); a.jne(next);
    a.cmp(dword(eax, P.CHAN), CHAN_SLEEP); a.jne(next);
    a.mov(edx, dword(L('ticks')));
    a.cmp(edx, dword(eax, P.WAKE)); a.jb(next);
    a.mov(dword(eax, P.STATE), PS_RUNNABLE);
    a.bind(next);
    a.add(eax, P.SIZE);
    a.cmp(eax, L('procs').plus(P.SIZE * MAX_PROCS)); a.jb(loop);
    a.ret();
  });
  fn('idle_loop', () => {
    const loop = a.here();
    a.call(L('schedule'));
    pv('safe-halt', () => { a.sti(); a.hlt(); });
    pv('irq-disable', () => a.cli());
    a.jmp(loop);
  });

  // ------------------------------------------------------------------ memory management
  fn('mm_init', () => {
    // Free frames: from the end of the kernel to min(RAM, DIRECT_MAP_BYTES), pushed high to
    // low so that allocation hands out low frames first.
    a.mov(edx, DIRECT_MAP_BYTES);
    const noMem = a.label(), multiboot = a.label();
    // A Xen domain: start_info.nr_pages instead of the Multiboot information.
    a.cmp(dword(L('xen_si')), 0); a.je(multiboot);
    a.mov(eax, dword(L('xen_nr_pages'))); a.shl(eax, 12);
    a.cmp(eax, edx); a.jae(noMem);
    a.mov(edx, eax); a.jmp(noMem);
    a.bind(multiboot);
    a.mov(eax, dword(L('mbi_phys')));
    a.add(eax, KERNEL_VIRT);
    a.test(dword(eax), 1); a.jz(noMem);
    a.mov(eax, dword(eax, 8)); // mem_upper, KiB above 1 MiB
    a.add(eax, 1024);
    a.shl(eax, 10);
    a.cmp(eax, edx); a.jae(noMem);
    a.mov(edx, eax);
    a.bind(noMem);
    a.and(edx, ~(PAGE - 1));
    a.mov(dword(L('mem_top')), edx);
    a.mov(eax, L('kernel_end').phys());
    a.add(eax, PAGE - 1);
    a.and(eax, ~(PAGE - 1));
    a.mov(dword(L('alloc_base')), eax);
    a.xor(ecx, ecx);
    const loop = a.here(), done = a.label();
    a.sub(edx, PAGE);
    a.cmp(edx, eax); a.jb(done);
    a.mov(dword({ index: ecx, scale: 4, disp: L('free_stack') }), edx);
    a.inc(ecx);
    a.jmp(loop);
    a.bind(done);
    a.mov(dword(L('free_count')), ecx);
    print('memory: ');
    a.mov(eax, ecx); a.call(L('kputdec'));
    print(' free pages\n');
    a.ret();
  });
  // alloc_frame() → eax = physical address of a frame with refcount 1 (panics when out of memory).
  fn('alloc_frame', () => {
    const oom = a.label();
    a.mov(eax, dword(L('free_count')));
    a.test(eax, eax); a.jz(oom);
    a.dec(eax);
    a.mov(dword(L('free_count')), eax);
    a.mov(eax, dword({ index: eax, scale: 4, disp: L('free_stack') }));
    a.mov(edx, eax); a.shr(edx, 12);
    a.mov(word({ index: edx, scale: 2, disp: L('refcnt') }), 1);
    a.ret();
    a.bind(oom);
    a.mov(eax, L('msg_oom')); a.jmp(L('panic'));
  });
  // alloc_zeroed() → eax = physical frame, zero-filled.
  fn('alloc_zeroed', () => {
    a.push(edi);
    a.call(L('alloc_frame'));
    a.push(eax);
    a.lea(edi, dword(eax, KERNEL_VIRT));
    a.xor(eax, eax);
    a.mov(ecx, PAGE / 4);
    a.stosd('rep');
    a.pop(eax);
    a.pop(edi);
    a.ret();
  });
  // frame_put(eax = physical frame): drops a reference; frees at zero. Kernel frames are ignored.
  fn('frame_put', () => {
    const ret = a.label();
    a.and(eax, ~(PAGE - 1));
    a.cmp(eax, dword(L('alloc_base'))); a.jb(ret);
    a.mov(edx, eax); a.shr(edx, 12);
    a.dec(word({ index: edx, scale: 2, disp: L('refcnt') }));
    a.jnz(ret);
    a.mov(ecx, dword(L('free_count')));
    a.mov(dword({ index: ecx, scale: 4, disp: L('free_stack') }), eax);
    a.inc(ecx);
    a.mov(dword(L('free_count')), ecx);
    a.bind(ret);
    a.ret();
  });
  // frame_get(eax = physical frame): adds a reference.
  fn('frame_get', () => {
    const ret = a.label();
    a.and(eax, ~(PAGE - 1));
    a.cmp(eax, dword(L('alloc_base'))); a.jb(ret);
    a.shr(eax, 12);
    a.inc(word({ index: eax, scale: 2, disp: L('refcnt') }));
    a.bind(ret);
    a.ret();
  });
  // pte_ptr(eax = va, edx = pd (virtual), ecx = allocate?) → eax = PTE address (virtual) or 0.
  fn('pte_ptr', () => {
    a.push(ebx); a.push(edi); a.push(esi);
    a.mov(esi, eax);
    a.mov(ebx, eax); a.shr(ebx, 22);
    a.lea(edi, dword({ base: edx, index: ebx, scale: 4 }));
    readPte(eax, dword(edi));
    const have = a.label(), fail = a.label(), out = a.label();
    a.test(eax, PTE_P); a.jnz(have);
    a.test(ecx, ecx); a.jz(fail);
    a.call(L('alloc_zeroed'));
    a.push(eax); a.call(L('pv_alloc_pt')); a.pop(eax);
    a.or(eax, PTE_P | PTE_W | PTE_U);
    setPte();
    a.bind(have);
    a.and(eax, ~(PAGE - 1));
    a.add(eax, KERNEL_VIRT);
    a.shr(esi, 12); a.and(esi, 0x3ff);
    a.lea(eax, dword({ base: eax, index: esi, scale: 4 }));
    a.jmp(out);
    a.bind(fail);
    a.xor(eax, eax);
    a.bind(out);
    a.pop(esi); a.pop(edi); a.pop(ebx);
    a.ret();
  });
  // find_vma(eax = va) → eax = region of the current process containing va, or 0.
  fn('find_vma', () => {
    a.mov(edx, cur);
    a.lea(ecx, dword(edx, P.VMA));
    a.add(edx, P.VMA + NVMA * 8);
    const loop = a.here(), next = a.label(), found = a.label();
    a.cmp(dword(ecx, 4), 0); a.je(next);
    a.cmp(eax, dword(ecx)); a.jb(next);
    a.cmp(eax, dword(ecx, 4)); a.jb(found);
    a.bind(next);
    a.add(ecx, 8);
    a.cmp(ecx, edx); a.jb(loop);
    a.xor(eax, eax);
    a.ret();
    a.bind(found);
    a.mov(eax, ecx);
    a.ret();
  });
  // Lazy-MMU brackets (Linux's arch_enter/leave_lazy_mmu_mode): no-ops natively, patch
  // points for a paravirtual kernel to batch the set-pte sites between them.
  for (const name of ['lazy_mmu_begin', 'lazy_mmu_end']) {
    fn(name, () => { a.ret(); for (let i = 0; i < 15; i++) a.nop(); });
  }
  // Page-table lifetime hooks (Linux's paravirt alloc_pte/alloc_pd/release_pte/release_pd):
  // EAX = the physical frame that becomes (alloc, before it is linked or filled) or stops
  // being (release, after it is unlinked) a page table / page directory. No-ops natively;
  // a paravirtual kernel patches them to make the frame read-only and pin/unpin it.
  for (const name of ['pv_alloc_pt', 'pv_release_pt', 'pv_alloc_pd', 'pv_release_pd']) {
    fn(name, () => { a.ret(); for (let i = 0; i < 15; i++) a.nop(); });
  }
  // flush_tlb(): reloads CR3 (a full, non-global flush).
  fn('flush_tlb', () => {
    a.mov(eax, dword(L('cur_cr3')));
    pv('flush-tlb', () => a.mov(cr3, eax));
    a.ret();
  });
  // invlpg(eax = va)
  fn('invlpg', () => {
    pv('flush-tlb-entry', () => a.invlpg(ptr(eax)));
    a.ret();
  });

  // page_fault(eax = frame)
  fn('page_fault', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(ebp, eax);
    pv('read-cr2', () => a.mov(eax, cr2));
    a.mov(esi, eax);
    const bad = a.label(), prot = a.label(), done = a.label();
    a.cmp(esi, KERNEL_VIRT); a.jae(bad);
    a.test(dword(ebp, TF.ERR), 1); a.jnz(prot);
    // Not present: demand-zero if inside a region.
    a.mov(eax, esi); a.call(L('find_vma'));
    a.test(eax, eax); a.jz(bad);
    a.mov(eax, esi); a.mov(edx, cur); a.mov(edx, dword(edx, P.PD)); a.mov(ecx, 1);
    a.call(L('pte_ptr'));
    a.mov(edi, eax);
    a.call(L('alloc_zeroed'));
    a.or(eax, PTE_P | PTE_W | PTE_U);
    setPte();
    a.inc(dword(L('stat_demand_zero')));
    a.jmp(done);
    // Present: a write to a copy-on-write page.
    a.bind(prot);
    a.test(dword(ebp, TF.ERR), 2); a.jz(bad);
    a.mov(eax, esi); a.mov(edx, cur); a.mov(edx, dword(edx, P.PD)); a.xor(ecx, ecx);
    a.call(L('pte_ptr'));
    a.test(eax, eax); a.jz(bad);
    a.mov(edi, eax);
    readPte(ebx, dword(edi));
    a.test(ebx, PTE_COW); a.jz(bad);
    a.inc(dword(L('stat_cow')));
    a.mov(eax, ebx); a.shr(eax, 12);
    const copy = a.label();
    a.cmp(word({ index: eax, scale: 2, disp: L('refcnt') }), 1); a.jne(copy);
    // Last reference: make it writable in place.
    a.mov(eax, ebx);
    a.and(eax, ~PTE_COW); a.or(eax, PTE_W);
    setPte();
    a.mov(eax, esi); a.call(L('invlpg'));
    a.jmp(done);
    a.bind(copy);
    a.call(L('alloc_frame'));
    a.push(eax);
    a.push(esi); a.push(edi);
    a.lea(edi, dword(eax, KERNEL_VIRT));
    a.mov(esi, ebx); a.and(esi, ~(PAGE - 1)); a.add(esi, KERNEL_VIRT);
    a.mov(ecx, PAGE / 4);
    a.movsd('rep');
    a.pop(edi); a.pop(esi);
    a.mov(eax, ebx); a.call(L('frame_put'));
    a.pop(eax);
    a.or(eax, PTE_P | PTE_W | PTE_U);
    setPte();
    a.mov(eax, esi); a.call(L('invlpg'));
    a.jmp(done);
    // Anything else kills the process (a kernel-mode fault on a kernel address is a panic).
    a.bind(bad);
    const user = a.label();
    a.test(dword(ebp, TF.CS), 2); a.jnz(user);
    a.cmp(esi, KERNEL_VIRT); a.jb(user);
    print('kernel page fault at '); a.mov(eax, esi); a.call(L('kputhex'));
    print(' eip '); a.mov(eax, dword(ebp, TF.EIP)); a.call(L('kputhex'));
    a.mov(eax, L('msg_empty')); a.jmp(L('panic'));
    a.bind(user);
    print('pid ');
    a.mov(eax, cur); a.mov(eax, dword(eax, P.PID)); a.call(L('kputdec'));
    print(': segmentation fault at '); a.mov(eax, esi); a.call(L('kputhex'));
    print(' (eip '); a.mov(eax, dword(ebp, TF.EIP)); a.call(L('kputhex'));
    print('), killed\n');
    a.mov(eax, KILL_SEGV); a.jmp(L('do_exit'));
    a.bind(done);
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // unmap_range(eax = start, edx = end): drops user pages in [start, end) of the current
  // address space (PTEs cleared, frames released, TLB entries invalidated).
  fn('unmap_range', () => {
    a.push(ebx); a.push(esi); a.push(edi);
    a.mov(esi, eax); a.mov(ebx, edx);
    a.call(L('lazy_mmu_begin'));
    const loop = a.here(), next = a.label(), done = a.label();
    a.cmp(esi, ebx); a.jae(done);
    a.mov(eax, esi); a.mov(edx, cur); a.mov(edx, dword(edx, P.PD)); a.xor(ecx, ecx);
    a.call(L('pte_ptr'));
    a.test(eax, eax); a.jz(next);
    a.mov(edi, eax);
    readPte(eax, dword(edi));
    a.test(eax, PTE_P); a.jz(next);
    a.call(L('frame_put'));
    a.xor(eax, eax);
    setPte();
    a.mov(eax, esi); a.call(L('invlpg'));
    a.bind(next);
    a.add(esi, PAGE);
    a.jmp(loop);
    a.bind(done);
    a.call(L('lazy_mmu_end'));
    a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // free_user(eax = pd virtual): releases every user page and page table of an address
  // space (PTEs and PDEs cleared). The caller flushes the TLB if it is the current one.
  fn('free_user', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(ebp, eax);
    a.call(L('lazy_mmu_begin'));
    a.xor(ebx, ebx); // PDE index
    const pdLoop = a.here(), pdNext = a.label(), pdDone = a.label();
    readPte(eax, dword({ base: ebp, index: ebx, scale: 4 }));
    a.test(eax, PTE_P); a.jz(pdNext);
    a.and(eax, ~(PAGE - 1));
    a.lea(esi, dword(eax, KERNEL_VIRT)); // page table
    a.xor(ecx, ecx);
    const ptLoop = a.here(), ptNext = a.label();
    readPte(eax, dword({ base: esi, index: ecx, scale: 4 }));
    a.test(eax, PTE_P); a.jz(ptNext);
    a.push(ecx);
    a.call(L('frame_put'));
    a.pop(ecx);
    a.lea(edi, dword({ base: esi, index: ecx, scale: 4 }));
    a.xor(eax, eax);
    setPte();
    a.bind(ptNext);
    a.inc(ecx);
    a.cmp(ecx, 1024); a.jb(ptLoop);
    a.lea(edi, dword({ base: ebp, index: ebx, scale: 4 }));
    a.xor(eax, eax);
    setPte(); // unlink the page table, then release it
    a.lea(eax, dword(esi, 0x4000_0000) /* esi - KERNEL_VIRT (mod 2^32) */);
    a.push(eax); a.call(L('pv_release_pt')); a.pop(eax);
    a.call(L('frame_put'));
    a.bind(pdNext);
    a.inc(ebx);
    a.cmp(ebx, KERNEL_VIRT >>> 22); a.jb(pdLoop);
    a.bind(pdDone);
    a.call(L('lazy_mmu_end'));
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // copy_user_cow(eax = child pd virtual): shares every user page of the current process
  // with the child, copy-on-write (writable pages become read-only + COW in both).
  fn('copy_user_cow', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(ebp, eax);
    a.call(L('lazy_mmu_begin'));
    a.xor(ebx, ebx);
    const pdLoop = a.here(), pdNext = a.label();
    a.mov(esi, cur); a.mov(esi, dword(esi, P.PD));
    readPte(eax, dword({ base: esi, index: ebx, scale: 4 }));
    a.test(eax, PTE_P); a.jz(pdNext);
    a.and(eax, ~(PAGE - 1));
    a.lea(esi, dword(eax, KERNEL_VIRT)); // parent page table
    a.call(L('alloc_zeroed'));
    a.push(eax); a.call(L('pv_alloc_pt')); a.pop(eax);
    a.push(eax);
    a.or(eax, PTE_P | PTE_W | PTE_U);
    a.lea(edi, dword({ base: ebp, index: ebx, scale: 4 }));
    setPte();
    a.pop(eax);
    a.push(ebp); a.push(ebx);
    a.lea(ebp, dword(eax, KERNEL_VIRT)); // child page table
    a.xor(ebx, ebx);
    const ptLoop = a.here(), ptNext = a.label(), share = a.label();
    readPte(eax, dword({ base: esi, index: ebx, scale: 4 }));
    a.test(eax, PTE_P); a.jz(ptNext);
    a.test(eax, PTE_W); a.jz(share);
    a.and(eax, ~PTE_W); a.or(eax, PTE_COW);
    a.lea(edi, dword({ base: esi, index: ebx, scale: 4 }));
    setPte();
    a.bind(share);
    a.lea(edi, dword({ base: ebp, index: ebx, scale: 4 }));
    setPte();
    a.call(L('frame_get'));
    a.bind(ptNext);
    a.inc(ebx);
    a.cmp(ebx, 1024); a.jb(ptLoop);
    a.pop(ebx); a.pop(ebp);
    a.bind(pdNext);
    a.inc(ebx);
    a.cmp(ebx, KERNEL_VIRT >>> 22); a.jb(pdLoop);
    a.call(L('lazy_mmu_end'));
    a.call(L('flush_tlb'));
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // new_pd() → eax = pd virtual: a fresh directory sharing the kernel's page tables.
  fn('new_pd', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.call(L('alloc_zeroed'));
    a.push(eax); a.call(L('pv_alloc_pd')); a.pop(eax);
    a.lea(ebx, dword(eax, KERNEL_VIRT));
    a.mov(esi, (KERNEL_VIRT >>> 22) * 4);
    const loop = a.here();
    readPte(eax, dword({ base: esi, disp: L('kernel_pd') }));
    a.lea(edi, dword({ base: ebx, index: esi, scale: 1 }));
    setPte();
    a.add(esi, 4);
    a.cmp(esi, ((KERNEL_VIRT >>> 22) + NPT) * 4); a.jb(loop);
    a.mov(eax, ebx);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });

  // ------------------------------------------------------------------ processes
  fn('proc_init', () => {
    // Slot 0: the idle task, on the boot stack and the kernel's directory.
    a.mov(eax, L('procs'));
    a.mov(dword(L('current')), eax);
    a.mov(dword(eax, P.STATE), PS_RUNNABLE);
    a.mov(dword(eax, P.PID), 0);
    a.mov(edx, dword(L('kernel_cr3')));
    a.mov(dword(eax, P.CR3), edx);
    a.mov(dword(eax, P.PD), L('kernel_pd'));
    a.mov(dword(eax, P.KSTACK), L('boot_stack'));
    a.mov(dword(L('next_pid')), 1);
    a.ret();
  });
  // alloc_proc() → eax = a free slot with a pid, a directory and a kernel stack, or 0.
  fn('alloc_proc', () => {
    a.push(ebx);
    a.mov(ebx, L('procs').plus(P.SIZE));
    const loop = a.here(), found = a.label(), none = a.label();
    a.cmp(dword(ebx, P.STATE), PS_FREE); a.je(found);
    a.add(ebx, P.SIZE);
    a.cmp(ebx, L('procs').plus(P.SIZE * MAX_PROCS)); a.jb(loop);
    a.bind(none);
    a.xor(eax, eax); a.pop(ebx); a.ret();
    a.bind(found);
    // Clear the entry.
    a.push(edi);
    a.mov(edi, ebx); a.xor(eax, eax); a.mov(ecx, P.SIZE / 4); a.stosd('rep');
    a.pop(edi);
    a.mov(eax, dword(L('next_pid')));
    a.mov(dword(ebx, P.PID), eax);
    a.inc(dword(L('next_pid')));
    a.call(L('new_pd'));
    a.mov(dword(ebx, P.PD), eax);
    a.sub(eax, KERNEL_VIRT);
    a.mov(dword(ebx, P.CR3), eax);
    a.call(L('alloc_zeroed'));
    a.add(eax, KERNEL_VIRT);
    a.mov(dword(ebx, P.KSTACK), eax);
    a.mov(dword(ebx, P.MMAP_NEXT), MMAP_BASE);
    a.mov(eax, ebx);
    a.pop(ebx);
    a.ret();
  });
  // start_init(): pid 1 runs the init program; its first kernel code execs it.
  fn('start_init', () => {
    a.call(L('alloc_proc'));
    a.mov(edx, dword(eax, P.KSTACK));
    a.add(edx, PAGE - TF.SIZE);
    // switch_to frame: edi, esi, ebx, ebp, return address.
    a.mov(dword(edx, -4), L('init_first'));
    a.sub(edx, 20);
    a.mov(dword(eax, P.KESP), edx);
    a.mov(dword(eax, P.PPID), 0);
    a.mov(dword(eax, P.STATE), PS_RUNNABLE);
    a.ret();
  });
  fn('init_first', () => {
    a.mov(eax, L('init_name'));
    a.call(L('find_program'));
    a.call(L('exec_program'));
    a.jmp(L('trap_return'));
  });

  // schedule(): round robin from the slot after the current one; the idle task when none.
  fn('schedule', () => {
    a.mov(eax, cur);
    a.mov(ecx, MAX_PROCS - 1);
    const loop = a.here(), wrapped = a.label(), found = a.label();
    a.add(eax, P.SIZE);
    a.cmp(eax, L('procs').plus(P.SIZE * MAX_PROCS)); a.jb(wrapped);
    a.mov(eax, L('procs').plus(P.SIZE));
    a.bind(wrapped);
    a.cmp(dword(eax, P.STATE), PS_RUNNABLE); a.je(found);
    a.dec(ecx); a.jnz(loop);
    // Nothing else: keep the current one if it can run, else idle.
    a.mov(eax, cur);
    a.cmp(dword(eax, P.STATE), PS_RUNNABLE); a.je(found);
    a.mov(eax, L('procs'));
    a.bind(found);
    const same = a.label();
    a.cmp(eax, cur); a.je(same);
    a.jmp(L('switch_to'));
    a.bind(same);
    a.ret();
  });
  // switch_to(eax = next process).
  fn('switch_to', () => {
    a.push(ebp); a.push(ebx); a.push(esi); a.push(edi);
    a.mov(edx, cur);
    a.mov(dword(edx, P.KESP), esp);
    a.mov(dword(L('current')), eax);
    a.inc(dword(L('stat_switches')));
    a.mov(esp, dword(eax, P.KESP));
    a.mov(ecx, dword(eax, P.KSTACK));
    a.add(ecx, PAGE);
    a.cmp(eax, L('procs')); const notIdle = a.label(); a.jne(notIdle);
    a.mov(ecx, L('boot_stack_top'));
    a.bind(notIdle);
    pv('set-kernel-stack', () => a.mov(dword(L('tss').plus(4)), ecx));
    a.mov(eax, dword(eax, P.CR3));
    const sameAs = a.label();
    a.cmp(eax, dword(L('cur_cr3'))); a.je(sameAs);
    a.mov(dword(L('cur_cr3')), eax);
    pv('write-cr3', () => a.mov(cr3, eax));
    a.bind(sameAs);
    a.pop(edi); a.pop(esi); a.pop(ebx); a.pop(ebp);
    a.ret();
  });
  // sleep_on(eax = channel): blocks the current process until wakeup(channel).
  fn('sleep_on', () => {
    a.mov(edx, cur);
    a.mov(dword(edx, P.CHAN), eax);
    a.mov(dword(edx, P.STATE), PS_BLOCKED);
    a.jmp(L('schedule'));
  });
  // wakeup(eax = channel)
  fn('wakeup', () => {
    a.mov(edx, L('procs'));
    const loop = a.here(), next = a.label();
    a.cmp(dword(edx, P.STATE), PS_BLOCKED); a.jne(next);
    a.cmp(dword(edx, P.CHAN), eax); a.jne(next);
    a.mov(dword(edx, P.STATE), PS_RUNNABLE);
    a.bind(next);
    a.add(edx, P.SIZE);
    a.cmp(edx, L('procs').plus(P.SIZE * MAX_PROCS)); a.jb(loop);
    a.ret();
  });

  // find_program(eax = name) → eax = program table entry or 0.
  fn('find_program', () => {
    a.push(esi); a.push(edi); a.push(ebx);
    a.mov(ebx, L('program_table'));
    const loop = a.here(), next = a.label(), found = a.label(), none = a.label();
    a.cmp(dword(ebx), 0); a.je(none);
    a.mov(esi, eax); a.mov(edi, dword(ebx));
    const cmp = a.here();
    a.mov(cl, byte(esi));
    a.cmp(cl, byte(edi)); a.jne(next);
    a.test(cl, cl); a.jz(found);
    a.inc(esi); a.inc(edi);
    a.jmp(cmp);
    a.bind(next);
    a.add(ebx, 16);
    a.jmp(loop);
    a.bind(none);
    a.xor(ebx, ebx);
    a.bind(found);
    a.mov(eax, ebx);
    a.pop(ebx); a.pop(edi); a.pop(esi);
    a.ret();
  });
  // exec_program(eax = program entry): replaces the current address space with the program
  // and resets the current trap frame to its entry point.
  fn('exec_program', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(ebx, eax);
    a.mov(eax, cur); a.mov(eax, dword(eax, P.PD));
    a.call(L('free_user'));
    a.call(L('flush_tlb'));
    // Regions: the image + bss, the stack; no mmap regions.
    a.mov(ebp, cur);
    a.lea(edi, dword(ebp, P.VMA)); a.xor(eax, eax); a.mov(ecx, NVMA * 2); a.stosd('rep');
    a.mov(dword(ebp, P.VMA), USER_BASE);
    a.mov(eax, dword(ebx, 12)); a.add(eax, USER_BASE + PAGE - 1); a.and(eax, ~(PAGE - 1));
    a.mov(dword(ebp, P.VMA + 4), eax);
    a.mov(dword(ebp, P.VMA + 8), USER_STACK_BOTTOM);
    a.mov(dword(ebp, P.VMA + 12), USER_STACK_TOP);
    a.mov(dword(ebp, P.MMAP_NEXT), MMAP_BASE);
    // The vDSO page, read-only.
    a.mov(eax, VDSO_ADDR); a.mov(edx, dword(ebp, P.PD)); a.mov(ecx, 1);
    a.call(L('pte_ptr'));
    a.mov(edi, eax);
    a.mov(eax, L('vdso').phys());
    a.or(eax, PTE_P | PTE_U);
    setPte();
    // The image, copied page by page.
    a.xor(esi, esi); // offset
    const loop = a.here(), done = a.label();
    a.cmp(esi, dword(ebx, 8)); a.jae(done);
    a.lea(eax, dword(esi, USER_BASE)); a.mov(edx, dword(ebp, P.PD)); a.mov(ecx, 1);
    a.call(L('pte_ptr'));
    a.mov(edi, eax);
    a.call(L('alloc_zeroed'));
    a.push(eax);
    a.or(eax, PTE_P | PTE_W | PTE_U);
    setPte();
    a.pop(edi);
    a.add(edi, KERNEL_VIRT);
    a.push(esi);
    a.mov(ecx, dword(ebx, 8)); a.sub(ecx, esi);
    a.cmp(ecx, PAGE); const small = a.label(); a.jbe(small); a.mov(ecx, PAGE); a.bind(small);
    a.add(esi, dword(ebx, 4));
    a.movsb('rep');
    a.pop(esi);
    a.add(esi, PAGE);
    a.jmp(loop);
    a.bind(done);
    // The trap frame at the top of the kernel stack.
    a.mov(edi, dword(ebp, P.KSTACK)); a.add(edi, PAGE - TF.SIZE);
    a.push(edi);
    a.xor(eax, eax); a.mov(ecx, TF.SIZE / 4); a.stosd('rep');
    a.pop(edi);
    a.mov(dword(edi, TF.ES), SEL_UDATA);
    a.mov(dword(edi, TF.DS), SEL_UDATA);
    a.mov(dword(edi, TF.VECTOR), 0x80);
    a.mov(dword(edi, TF.EIP), USER_BASE);
    a.mov(dword(edi, TF.CS), SEL_UCODE);
    a.mov(dword(edi, TF.EFLAGS), 0x202);
    a.mov(dword(edi, TF.UESP), USER_STACK_TOP);
    a.mov(dword(edi, TF.USS), SEL_UDATA);
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // do_exit(eax = code): never returns.
  fn('do_exit', () => {
    a.mov(ebx, eax);
    a.mov(esi, cur);
    a.mov(eax, dword(esi, P.PD));
    a.call(L('free_user'));
    a.call(L('flush_tlb'));
    a.mov(dword(esi, P.EXIT), ebx);
    a.mov(dword(esi, P.STATE), PS_ZOMBIE);
    const notInit = a.label();
    a.cmp(dword(esi, P.PID), 1); a.jne(notInit);
    a.mov(eax, ebx);
    a.jmp(L('machine_stop'));
    a.bind(notInit);
    // Orphans go to init (slot 1 holds pid 1 for the kernel's whole life).
    a.mov(edx, L('procs'));
    a.mov(ecx, esi); a.sub(ecx, L('procs'));
    const loop = a.here(), next = a.label();
    a.cmp(dword(edx, P.STATE), PS_FREE); a.je(next);
    a.cmp(dword(edx, P.PPID), ecx); a.jne(next);
    a.mov(dword(edx, P.PPID), P.SIZE);
    a.cmp(dword(edx, P.STATE), PS_ZOMBIE); a.jne(next);
    a.push(eax); a.push(ecx); a.push(edx);
    a.mov(eax, L('procs').plus(P.SIZE)); a.call(L('wakeup'));
    a.pop(edx); a.pop(ecx); a.pop(eax);
    a.bind(next);
    a.add(edx, P.SIZE);
    a.cmp(edx, L('procs').plus(P.SIZE * MAX_PROCS)); a.jb(loop);
    a.mov(eax, dword(esi, P.PPID)); a.add(eax, L('procs'));
    a.call(L('wakeup'));
    a.call(L('schedule'));
    a.mov(eax, L('msg_zombie')); a.jmp(L('panic'));
  });

  // ------------------------------------------------------------------ system calls
  // syscall(eax = frame): table dispatch; handlers get EBX, ECX, EDX in EAX, EDX, ECX.
  fn('syscall', () => {
    a.push(ebx); a.push(ebp);
    a.mov(ebx, eax); // the frame stays in EBX (callee-saved) across a handler that blocks
    a.mov(dword(L('cur_frame')), eax);
    a.mov(eax, dword(ebx, TF.EAX));
    const bad = a.label(), done = a.label();
    a.cmp(eax, 256); a.jae(bad);
    a.mov(ebp, dword({ index: eax, scale: 4, disp: L('syscall_table') }));
    a.test(ebp, ebp); a.jz(bad);
    a.mov(eax, dword(ebx, TF.EBX));
    a.mov(edx, dword(ebx, TF.ECX));
    a.mov(ecx, dword(ebx, TF.EDX));
    a.call(ebp);
    a.jmp(done);
    a.bind(bad);
    a.mov(eax, -ENOSYS);
    a.bind(done);
    a.mov(dword(ebx, TF.EAX), eax);
    a.pop(ebp); a.pop(ebx);
    a.ret();
  });

  const sys = new Map<number, string>();
  const sysFn = (nr: number, name: string, body: () => void): void => { sys.set(nr, name); fn(name, body); };
  sysFn(SYS.exit, 'sys_exit', () => { a.jmp(L('do_exit')); });
  sysFn(SYS.getpid, 'sys_getpid', () => { a.mov(eax, cur); a.mov(eax, dword(eax, P.PID)); a.ret(); });
  sysFn(SYS.time, 'sys_time', () => { a.mov(eax, dword(L('ticks'))); a.ret(); });
  sysFn(SYS.sched_yield, 'sys_yield', () => { a.call(L('schedule')); a.xor(eax, eax); a.ret(); });
  sysFn(SYS.nanosleep, 'sys_sleep', () => {
    a.add(eax, dword(L('ticks')));
    a.mov(edx, cur);
    a.mov(dword(edx, P.WAKE), eax);
    a.mov(eax, CHAN_SLEEP);
    a.call(L('sleep_on'));
    a.xor(eax, eax);
    a.ret();
  });
  // write(fd, buf, len)
  sysFn(SYS.write, 'sys_write', () => {
    a.cmp(eax, 3); a.jae(L('pipe_write'));
    a.push(esi); a.push(ebx);
    a.mov(esi, edx); a.mov(ebx, ecx);
    a.mov(eax, esi); a.add(eax, ebx);
    const fault = a.label(), loop = a.label(), done = a.label();
    a.jc(fault);
    a.cmp(eax, KERNEL_VIRT); a.ja(fault);
    a.bind(loop);
    a.test(ecx, ecx); a.jz(done);
    a.mov(al, byte(esi));
    a.call(L('kputc'));
    a.inc(esi);
    a.dec(ecx);
    a.jmp(loop);
    a.bind(done);
    a.mov(eax, ebx);
    a.pop(ebx); a.pop(esi); a.ret();
    a.bind(fault);
    a.mov(eax, -EFAULT);
    a.pop(ebx); a.pop(esi); a.ret();
  });
  // fork()
  sysFn(SYS.fork, 'sys_fork', () => {
    a.push(ebx); a.push(esi); a.push(edi);
    a.call(L('alloc_proc'));
    const none = a.label();
    a.test(eax, eax); a.jz(none);
    a.mov(ebx, eax);
    a.mov(esi, cur);
    // Regions and mmap cursor.
    a.push(esi);
    a.lea(esi, dword(esi, P.VMA)); a.lea(edi, dword(ebx, P.VMA)); a.mov(ecx, NVMA * 2); a.movsd('rep');
    a.pop(esi);
    a.mov(eax, dword(esi, P.MMAP_NEXT)); a.mov(dword(ebx, P.MMAP_NEXT), eax);
    a.mov(eax, esi); a.sub(eax, L('procs')); a.mov(dword(ebx, P.PPID), eax);
    a.mov(eax, dword(ebx, P.PD));
    a.call(L('copy_user_cow'));
    // The child's kernel stack: the parent's trap frame (EAX = 0), then a switch frame.
    a.mov(edi, dword(ebx, P.KSTACK)); a.add(edi, PAGE - TF.SIZE);
    a.push(edi);
    a.mov(esi, dword(L('cur_frame'))); a.mov(ecx, TF.SIZE / 4); a.movsd('rep');
    a.pop(edi);
    a.mov(dword(edi, TF.EAX), 0);
    a.mov(dword(edi, -4), L('trap_return'));
    a.sub(edi, 20);
    a.mov(dword(ebx, P.KESP), edi);
    a.mov(dword(ebx, P.STATE), PS_RUNNABLE);
    a.mov(eax, dword(ebx, P.PID));
    a.pop(edi); a.pop(esi); a.pop(ebx); a.ret();
    a.bind(none);
    a.mov(eax, -EAGAIN);
    a.pop(edi); a.pop(esi); a.pop(ebx); a.ret();
  });
  // waitpid(pid | -1, status*)
  sysFn(SYS.waitpid, 'sys_waitpid', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(edi, eax); a.mov(ebp, edx);
    const again = a.here(), loop = a.label(), next = a.label(), reap = a.label(), none = a.label(), block = a.label();
    a.mov(esi, cur); a.sub(esi, L('procs')); // my slot offset
    a.xor(ecx, ecx); // children seen
    a.mov(ebx, L('procs').plus(P.SIZE));
    a.bind(loop);
    a.cmp(dword(ebx, P.STATE), PS_FREE); a.je(next);
    a.cmp(dword(ebx, P.PPID), esi); a.jne(next);
    a.cmp(edi, -1); const any = a.label(); a.je(any);
    a.cmp(dword(ebx, P.PID), edi); a.jne(next);
    a.bind(any);
    a.inc(ecx);
    a.cmp(dword(ebx, P.STATE), PS_ZOMBIE); a.je(reap);
    a.bind(next);
    a.add(ebx, P.SIZE);
    a.cmp(ebx, L('procs').plus(P.SIZE * MAX_PROCS)); a.jb(loop);
    a.test(ecx, ecx); a.jz(none);
    a.bind(block);
    a.mov(eax, cur); a.call(L('sleep_on'));
    a.jmp(again);
    a.bind(reap);
    a.mov(eax, dword(ebx, P.CR3));
    a.push(eax); a.call(L('pv_release_pd')); a.pop(eax);
    a.call(L('frame_put'));
    a.mov(eax, dword(ebx, P.KSTACK)); a.sub(eax, KERNEL_VIRT); a.call(L('frame_put'));
    a.mov(dword(ebx, P.STATE), PS_FREE);
    const noStatus = a.label();
    a.test(ebp, ebp); a.jz(noStatus);
    a.mov(eax, dword(ebx, P.EXIT));
    a.cmp(ebp, KERNEL_VIRT - 4); a.ja(noStatus);
    a.mov(dword(ebp), eax);
    a.bind(noStatus);
    a.mov(eax, dword(ebx, P.PID));
    const out = a.label();
    a.jmp(out);
    a.bind(none);
    a.mov(eax, -ECHILD);
    a.bind(out);
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx); a.ret();
  });
  // execve(name)
  sysFn(SYS.execve, 'sys_execve', () => {
    a.push(esi); a.push(edi);
    // Copy the name into the kernel first: the address space goes away.
    const fault = a.label(), loop = a.label(), done = a.label();
    a.cmp(eax, KERNEL_VIRT - 32); a.ja(fault);
    a.mov(esi, eax); a.mov(edi, L('exec_name')); a.mov(ecx, 31);
    a.bind(loop);
    a.mov(al, byte(esi)); a.mov(byte(edi), al);
    a.test(al, al); a.jz(done);
    a.inc(esi); a.inc(edi);
    a.dec(ecx); a.jnz(loop);
    a.mov(byte(edi), 0);
    a.bind(done);
    a.mov(eax, L('exec_name'));
    a.call(L('find_program'));
    const notFound = a.label();
    a.test(eax, eax); a.jz(notFound);
    a.call(L('exec_program'));
    a.xor(eax, eax); // lands in the new frame's EAX
    a.pop(edi); a.pop(esi); a.ret();
    a.bind(notFound);
    a.mov(eax, -ENOENT); a.pop(edi); a.pop(esi); a.ret();
    a.bind(fault);
    a.mov(eax, -EFAULT); a.pop(edi); a.pop(esi); a.ret();
  });
  // mmap2(addr, len, prot, flags, fd, pgoff): anonymous only.
  sysFn(SYS.mmap2, 'sys_mmap', () => {
    const bad = a.label(), nomem = a.label(), found = a.label();
    a.test(edx, edx); a.jz(bad);
    a.add(edx, PAGE - 1); a.jc(bad); a.and(edx, ~(PAGE - 1));
    a.push(ebx);
    a.mov(ebx, cur);
    a.lea(eax, dword(ebx, P.VMA + 16));
    a.lea(ecx, dword(ebx, P.VMA + NVMA * 8));
    const loop = a.here();
    a.cmp(dword(eax, 4), 0); a.je(found);
    a.add(eax, 8);
    a.cmp(eax, ecx); a.jb(loop);
    a.jmp(nomem);
    a.bind(found);
    a.mov(ecx, dword(ebx, P.MMAP_NEXT));
    a.add(edx, ecx); a.jc(nomem);
    a.cmp(edx, USER_STACK_BOTTOM - PAGE); a.ja(nomem);
    a.mov(dword(eax), ecx);
    a.mov(dword(eax, 4), edx);
    a.add(edx, PAGE); // a guard page between regions
    a.mov(dword(ebx, P.MMAP_NEXT), edx);
    a.mov(eax, ecx);
    a.pop(ebx);
    a.ret();
    a.bind(nomem);
    a.pop(ebx);
    a.mov(eax, -ENOMEM); a.ret();
    a.bind(bad);
    a.mov(eax, -EINVAL); a.ret();
  });
  // munmap(addr, len): addr must start an mmap region; len from the start (whole pages).
  sysFn(SYS.munmap, 'sys_munmap', () => {
    const bad = a.label(), found = a.label(), partial = a.label(), unmap = a.label();
    a.add(edx, PAGE - 1); a.and(edx, ~(PAGE - 1));
    a.test(edx, edx); a.jz(bad);
    a.push(ebx);
    a.mov(ebx, cur);
    a.lea(ecx, dword(ebx, P.VMA + 16));
    a.add(ebx, P.VMA + NVMA * 8);
    const loop = a.here(), next = a.label();
    a.cmp(dword(ecx, 4), 0); a.je(next);
    a.cmp(dword(ecx), eax); a.je(found);
    a.bind(next);
    a.add(ecx, 8);
    a.cmp(ecx, ebx); a.jb(loop);
    a.pop(ebx);
    a.jmp(bad);
    a.bind(found);
    a.pop(ebx);
    a.add(edx, eax); // end of the unmapping
    a.cmp(edx, dword(ecx, 4)); a.jb(partial);
    a.mov(edx, dword(ecx, 4));
    a.mov(dword(ecx, 4), 0);
    a.mov(dword(ecx), 0);
    a.jmp(unmap);
    a.bind(partial);
    a.mov(dword(ecx), edx);
    a.bind(unmap);
    a.call(L('unmap_range'));
    a.xor(eax, eax); a.ret();
    a.bind(bad);
    a.mov(eax, -EINVAL); a.ret();
  });

  emitDrivers(kx, sysFn);
  emitPipes(kx, sysFn);
  emitXen(kx, hz);
  for (const x of options.extraSyscalls ?? []) {
    if (!Number.isInteger(x.nr) || x.nr < 200 || x.nr > 239) throw new RangeError(`extra system call "${x.name}": number ${x.nr} is not in 200..239`);
    if (sys.has(x.nr)) throw new RangeError(`extra system call "${x.name}": number ${x.nr} is taken by ${sys.get(x.nr)}`);
    if (!/^\w+$/.test(x.name)) throw new RangeError(`extra system call name "${x.name}": letters, digits and _ only`);
    sysFn(x.nr, `sys_${x.name}`, () => x.emit(kx));
  }

  // ------------------------------------------------------------------ data
  a.section('rodata');
  a.align(4);
  a.bind(L('hexdigits')); a.ascii('0123456789abcdef');
  a.bind(L('banner')); a.asciz(`${options.banner ?? 'virtlab kernel'}\n`);
  a.bind(L('panic_msg')); a.asciz('kernel panic: ');
  a.bind(L('msg_empty')); a.asciz('');
  a.bind(L('msg_badvec')); a.asciz('unexpected interrupt vector');
  a.bind(L('msg_oom')); a.asciz('out of memory');
  a.bind(L('msg_zombie')); a.asciz('a dead process was scheduled');
  a.bind(L('init_name')); a.asciz(options.init);
  a.align(4);
  a.bind(L('stub_table')); a.dd(...stubs);
  const sysTable: (number | Label)[] = new Array(256).fill(0);
  for (const [nr, name] of sys) sysTable[nr] = L(name);
  a.bind(L('syscall_table')); a.dd(...sysTable);
  // Programs: entries of {name, bytes, size, memsz}, then a zero entry.
  const progLabels = programs.map((p, i) => ({ p, name: a.label(`prog_name_${i}`), bytes: a.label(`prog_bytes_${i}`) }));
  a.bind(L('program_table'));
  for (const { p, name, bytes } of progLabels) a.dd(name, bytes, p.bytes.length, p.memsz);
  a.dd(0, 0, 0, 0);
  for (const { p, name, bytes } of progLabels) {
    a.bind(name); a.asciz(p.name);
    a.align(16);
    a.bind(bytes); a.db(p.bytes);
  }
  a.align(PAGE);
  a.bind(L('vdso')); a.db(assembleVdso());

  a.section('data');
  // The GDT alone on its page (layout.ts, SEL_*): monitors write-protect it, so no hot variable may share it.
  a.align(PAGE);
  a.bind(L('gdt'));
  a.dq(0n, 0x00cf9a000000ffffn, 0x00cf92000000ffffn, 0x00cffa000000ffffn, 0x00cff2000000ffffn, 0n);
  a.bind(L('gdt_desc')); a.dw(6 * 8 - 1); a.dd(L('gdt'));
  a.align(4);
  a.bind(L('idt_desc')); a.dw(256 * 8 - 1); a.dd(L('idt'));
  a.align(PAGE);
  for (const v of ['current', 'ticks', 'next_pid', 'kernel_cr3', 'cur_cr3', 'mbi_phys', 'mem_top', 'alloc_base', 'free_count', 'cur_frame',
    'stat_switches', 'stat_cow', 'stat_demand_zero']) {
    a.bind(L(v)); a.dd(0);
  }
  a.bind(L('blk_irq_fn')); a.dd(L('ignore_irq'));
  a.bind(L('net_irq_fn')); a.dd(L('ignore_irq'));

  a.section('bss');
  a.align(PAGE);
  a.bind(L('kernel_pd')); a.reserve(PAGE);
  a.bind(L('kernel_pts')); a.reserve(NPT * PAGE);
  a.bind(L('boot_stack')); a.reserve(2 * PAGE);
  a.bind(L('boot_stack_top'));
  a.bind(L('idt')); a.reserve(256 * 8);
  a.bind(L('tss')); a.reserve(104);
  a.align(4);
  a.bind(L('exec_name')); a.reserve(32);
  a.bind(L('procs')); a.reserve(P.SIZE * MAX_PROCS);
  a.bind(L('refcnt')); a.reserve(2 * MAX_FRAMES);
  a.bind(L('free_stack')); a.reserve(4 * MAX_FRAMES);
  a.align(PAGE);
  a.bind(L('kernel_end'));

  a.section('text');
  fn('ignore_irq', () => a.ret());

  const built = a.build();
  const image = imageFromAssembly(built, {
    name: 'virtlab-kernel',
    entry: built.address('_start'),
    metadata: { builder: 'virtlab-kernel', init: options.init, hz, programs: programs.map((p) => p.name) },
  });
  return withPvNote(image, built.physical('kernel_end'), (name) => built.address(name));
}

/**
 * Appends the kernel's PV note: a read-only segment right after the kernel (in memory the
 * frame allocator later reuses) holding the pv-op site table and the addresses of the PV
 * entry and stubs, behind a magic string — what Xen's domain builder finds in a kernel's
 * ELF notes (XEN_ELFNOTE_ENTRY, ...). The `pv` hypervisor reads it from memory at attach, so
 * a Multiboot ELF carries its site table through any loader. Natively it is inert.
 */
function withPvNote(image: GuestImage, endPhys: number, address: (name: string) => number): GuestImage {
  const symbols: Record<string, number> = {};
  for (const n of XEN_NOTE_SYMBOLS) symbols[n] = address(n);
  const json = JSON.stringify({ version: 1, sites: image.pvopSites.map((s) => [s.addr, s.len, s.kind]), symbols });
  const body = new TextEncoder().encode(json);
  const bytes = new Uint8Array(16 + 4 + body.length);
  bytes.set(new TextEncoder().encode(NOTE_MAGIC), 0);
  new DataView(bytes.buffer).setUint32(16, body.length, true);
  bytes.set(body, 20);
  const seg: GuestSegment = { name: 'pvnote', vaddr: (KERNEL_VIRT + endPhys) >>> 0, paddr: endPhys, bytes, memsz: bytes.length, flags: SEG_R };
  const out: GuestImage = { ...image, segments: [...image.segments, seg] };
  validateGuestImage(out, image.name);
  return out;
}
