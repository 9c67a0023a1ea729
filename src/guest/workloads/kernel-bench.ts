/**
 * The kernel half of the nanobenchmarks: a system call `bench(op, n, out)` that runs one
 * privileged operation `n` times inside the kernel, timed by RDTSC, for the operations a
 * user program cannot perform itself (port input, an interrupt-mask write, a page-table
 * entry update, a kernel-mode divide-error trap). Every privileged instruction is a pv-op
 * site, RDTSC included, so each mode patches them as it patches the rest of the kernel.
 *
 * ABI: EAX = SYS_BENCH, EBX = op (BENCH_OP), ECX = n (≥ 1), EDX = pointer to three user
 * dwords that receive {cycles low, cycles high, checksum}. Returns 0, -EINVAL (bad op or
 * n = 0) or -EFAULT (bad pointer).
 */
import { al, eax, ebp, ebx, ecx, edi, edx, esi, esp, dword, fword, ptr, type Label } from '../../x86/operands.js';
import type { ExtraSyscall, Kx } from '../kernel/kernel.js';
import { EFAULT, EINVAL, KERNEL_VIRT, P, PTE_P, PTE_U, PTE_W, SEL_KCODE } from '../kernel/layout.js';

/** The bench system call's number (the kernel's range for workload system calls is 200..239). */
export const SYS_BENCH = 200;

/** The operations of `bench`. */
export const BENCH_OP = {
  /** The empty loop: the harness's own cost per iteration. */
  null: 0,
  /** `in al, 0x80` (the POST port, which reads 0xFF): checksum = Σ bytes read. */
  in: 1,
  /** Rewrite the master 8259A's interrupt mask (OCW1, port 0x21) with its current value: checksum = Σ masks written. */
  picmask: 2,
  /** `sti` then `cli` (two pv-op sites): checksum = n. */
  clisti: 3,
  /** Rewrite a PTE of the current address space, toggling its W bit, then INVLPG: checksum = Σ (entry & 0xfff). */
  ptemod: 4,
  /** The same without the INVLPG. */
  ptemodNoFlush: 5,
  /** `div` by zero in kernel mode, caught by a temporary #DE gate that resumes after it: checksum = traps taken. */
  divzero: 6,
} as const;
export const BENCH_OPS = 7;

/** A user address no program uses: the page whose PTE `ptemod` rewrites. */
export const BENCH_SCRATCH_VA = 0x3000_0000;

/** The bench system call, for `buildKernel({ extraSyscalls: [benchSyscall] })`. */
export const benchSyscall: ExtraSyscall = { nr: SYS_BENCH, name: 'bench', emit: (k) => emitBench(k) };

/** Emits the body of `sys_bench` (at its label) and, after it, the operations and their table. */
function emitBench(k: Kx): void {
  const { a, L, pv, inb, outb } = k;
  const cur = dword(L('current'));
  const back = a.currentSection;
  a.section('data');
  a.align(4);
  const t0lo = a.label('bench_t0_lo'), t0hi = a.label('bench_t0_hi'), traps = a.label('bench_traps'), gate = a.label('bench_saved_gate');
  a.bind(t0lo); a.dd(0);
  a.bind(t0hi); a.dd(0);
  a.bind(traps); a.dd(0);
  a.bind(gate); a.dd(0, 0);
  a.section(back);

  const start = (): void => {
    pv('read-tsc', () => a.rdtsc());
    a.mov(dword(t0lo), eax);
    a.mov(dword(t0hi), edx);
  };
  /** RDTSC − t0 into out[0..1]; out (EBP) is a checked user pointer. */
  const stop = (): void => {
    pv('read-tsc', () => a.rdtsc());
    a.sub(eax, dword(t0lo));
    a.sbb(edx, dword(t0hi));
    a.mov(dword(ebp), eax);
    a.mov(dword(ebp, 4), edx);
  };
  const table: Label[] = [];
  const op = (name: string, body: () => void): void => {
    const l = a.label(`bench_op_${name}`);
    table.push(l);
    a.bind(l);
    body();
    a.jmp(L('bench_done'));
  };

  {
    // Handlers get EBX, ECX, EDX in EAX, EDX, ECX (kernel.ts).
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(ebx, eax); // op
    a.mov(esi, edx); // n
    a.mov(ebp, ecx); // out
    const inval = a.label(), fault = a.label();
    a.cmp(ebx, BENCH_OPS); a.jae(inval);
    a.test(esi, esi); a.jz(inval);
    a.cmp(ebp, KERNEL_VIRT - 12); a.ja(fault);
    // Touch the result words first: a copy-on-write or demand-zero fault on them must not
    // land inside the timed loop (nor between the two RDTSCs).
    a.mov(dword(ebp), 0); a.mov(dword(ebp, 4), 0); a.mov(dword(ebp, 8), 0);
    a.xor(edi, edi); // checksum
    a.jmp(dword({ index: ebx, scale: 4, disp: L('bench_table') }));
    a.bind(inval); a.mov(eax, -EINVAL); a.jmp(L('bench_ret'));
    a.bind(fault); a.mov(eax, -EFAULT); a.jmp(L('bench_ret'));
  }

  op('null', () => {
    start();
    const loop = a.here();
    a.inc(edi);
    a.dec(esi); a.jnz(loop);
    stop();
  });
  op('in', () => {
    start();
    const loop = a.here();
    inb(0x80);
    a.movzx(eax, al);
    a.add(edi, eax);
    a.dec(esi); a.jnz(loop);
    stop();
  });
  op('picmask', () => {
    inb(0x21);
    a.movzx(ebx, al); // the current mask: rewriting it changes nothing but costs the write
    start();
    const loop = a.here();
    a.mov(eax, ebx);
    outb(0x21);
    a.add(edi, ebx);
    a.dec(esi); a.jnz(loop);
    stop();
  });
  op('clisti', () => {
    start();
    const loop = a.here();
    pv('irq-enable', () => a.sti());
    pv('irq-disable', () => a.cli());
    a.inc(edi);
    a.dec(esi); a.jnz(loop);
    stop();
  });
  for (const flush of [true, false]) {
    op(flush ? 'ptemod' : 'ptemod_noflush', () => {
      // A frame of our own behind BENCH_SCRATCH_VA, its PTE found (page table allocated) first.
      a.call(L('alloc_frame'));
      a.push(eax);
      a.mov(eax, BENCH_SCRATCH_VA);
      a.mov(edx, cur); a.mov(edx, dword(edx, P.PD)); a.mov(ecx, 1);
      a.call(L('pte_ptr'));
      a.mov(ecx, eax); // the PTE's address
      a.pop(ebx);
      a.or(ebx, PTE_P | PTE_U | PTE_W); // the value written first (then W toggles)
      a.push(ecx);
      a.push(edi);
      a.mov(edi, ecx);
      start();
      a.xor(ecx, ecx); // checksum (EDI holds the PTE address here)
      const loop = a.here();
      a.mov(eax, ebx);
      pv('set-pte', () => a.mov(dword(edi), eax));
      if (flush) pv('flush-tlb-entry', () => a.invlpg(ptr(BENCH_SCRATCH_VA)));
      a.and(eax, 0xfff); a.add(ecx, eax);
      a.xor(ebx, PTE_W);
      a.dec(esi); a.jnz(loop);
      a.push(ecx);
      stop();
      a.pop(ecx);
      // Unmap and free the frame.
      a.xor(eax, eax);
      pv('set-pte', () => a.mov(dword(edi), eax));
      pv('flush-tlb-entry', () => a.invlpg(ptr(BENCH_SCRATCH_VA)));
      a.pop(edi);
      a.add(edi, ecx);
      a.pop(ecx);
      a.mov(eax, ebx); a.call(L('frame_put'));
    });
  }
  op('divzero', () => {
    // Gate 0 → bench_de (interrupt gate, DPL 0), reloaded through the load-idt site so that a
    // mode that keeps its own copy of the guest IDT sees the change; restored afterwards.
    a.mov(eax, dword(L('idt'))); a.mov(dword(gate), eax);
    a.mov(eax, dword(L('idt').plus(4))); a.mov(dword(gate.plus(4)), eax);
    a.mov(eax, L('bench_de'));
    a.mov(edx, eax); a.and(edx, 0xffff_0000); a.or(edx, 0x8e00);
    a.and(eax, 0xffff); a.or(eax, SEL_KCODE << 16);
    a.mov(dword(L('idt')), eax); a.mov(dword(L('idt').plus(4)), edx);
    pv('load-idt', () => a.lidt(fword(L('idt_desc'))));
    a.mov(dword(traps), 0);
    a.xor(ebx, ebx);
    start();
    const loop = a.here();
    a.mov(eax, esi); a.xor(edx, edx);
    a.div(ebx); // #DE: bench_de resumes at bench_de_resume
    a.bind(L('bench_de_resume'));
    a.dec(esi); a.jnz(loop);
    stop();
    a.mov(eax, dword(gate)); a.mov(dword(L('idt')), eax);
    a.mov(eax, dword(gate.plus(4))); a.mov(dword(L('idt').plus(4)), eax);
    pv('load-idt', () => a.lidt(fword(L('idt_desc'))));
    a.mov(edi, dword(traps));
  });
  a.bind(L('bench_done'));
  a.mov(dword(ebp, 8), edi);
  a.xor(eax, eax);
  a.bind(L('bench_ret'));
  a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
  a.ret();

  // The temporary divide-error handler: same privilege, so the frame is EIP, CS, EFLAGS.
  a.bind(L('bench_de'));
  a.inc(dword(traps));
  a.mov(dword(esp), L('bench_de_resume'));
  pv('iret', () => a.iret());

  const back2 = a.currentSection;
  a.section('rodata');
  a.align(4);
  a.bind(L('bench_table'));
  a.dd(...table);
  a.section(back2);
}
