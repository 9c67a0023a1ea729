/**
 * The nanobenchmarks of Adams & Agesen, "A Comparison of Software and Hardware Techniques
 * for x86 Virtualization" (ASPLOS 2006), on the virtlab kernel: each runs one operation N
 * times between two RDTSCs and reports guest cycles per operation. User-level operations
 * (system call, call/ret, page fault) are timed by the program; privileged ones (port input,
 * the interrupt-mask write, PTE update, kernel-mode divide error) by the kernel's `bench`
 * system call (kernel-bench.ts), with every privileged instruction at a pv-op site.
 */
import { eax, ebp, ebx, ecx, edi, edx, esi, dword } from '../../x86/operands.js';
import { SYS } from '../kernel/layout.js';
import type { UserProgram } from '../kernel/user.js';
import { BENCH_OP, SYS_BENCH } from './kernel-bench.js';
import { int, oneOf, type ParamValues, type WorkloadDef } from './registry.js';
import { Wl } from './runtime.js';

/** A program whose body gets the workload runtime; `finish` is called for it. */
export function wlProgram(name: string, body: (w: Wl) => void, syscalls?: 'int80' | 'sysenter'): UserProgram {
  return { name, syscalls, build: (u) => { const w = new Wl(u); body(w); w.finish(); } };
}

const N = (def: number, max = 10_000_000) => int('operations timed', def, 1, max);
const budget = (ops: number, perOp: number): number => 5_000_000 + ops * perOp;

/** Calls bench(op, n): adds the cycles, mixes the kernel's checksum, prints the report. */
function kernelBench(w: Wl, report: string, op: number, n: number): void {
  const a = w.a;
  const out = w.data(null, 0, 0, 0);
  a.mov(ebx, op); a.mov(ecx, n); a.mov(edx, out);
  w.u.sys(SYS_BENCH);
  w.checkResult('bench');
  a.mov(eax, dword(out)); a.mov(edx, dword(out.plus(4)));
  w.addCycles();
  a.mov(eax, dword(out.plus(8)));
  w.mix(eax);
  w.report(report, n);
}

/**
 * The timed null-system-call loop (getpid n times, results summed into the checksum) that
 * both the ASPLOS `syscall` nanobenchmark and lmbench's null call measure.
 */
export function emitGetpidLoop(w: Wl, report: string, n: number): void {
  const a = w.a;
  w.tscStart();
  a.mov(esi, n); a.xor(edi, edi);
  const loop = a.here();
  w.u.sys(SYS.getpid);
  a.add(edi, eax);
  a.dec(esi); a.jnz(loop);
  w.tscStop();
  w.report(report, n);
  w.mix(edi);
  w.finishOk();
}

function single(name: string, p: ParamValues, body: (w: Wl) => void, perOp: number, syscalls?: 'int80' | 'sysenter') {
  const prog = `nano-${name}`;
  return { programs: [wlProgram(prog, body, syscalls)], init: prog, machine: {}, maxInstructions: budget(p.n as number, perOp) };
}

/** Demand-zero faults on `n` fresh pages, in mmap batches of 256: the timed part is the touching. */
export function emitTouchFresh(w: Wl, n: number, sum: ReturnType<Wl['data']>): void {
  const a = w.a, u = w.u;
  const batch = 256;
  const full = Math.floor(n / batch), rest = n % batch;
  a.xor(edi, edi); // the value written to the next page: its index
  const one = (pages: number): void => {
    a.xor(ebx, ebx); a.mov(ecx, pages * 4096); a.mov(edx, 3);
    u.sys(SYS.mmap2);
    w.checkResult('mmap');
    a.mov(ebp, eax);
    a.push(esi);
    w.tscStart();
    a.mov(ebx, ebp); a.mov(ecx, pages);
    const touch = a.here();
    a.mov(dword(ebx, 64), edi); // a write to a page never touched: one demand-zero fault
    a.inc(edi);
    a.add(ebx, 4096);
    a.dec(ecx); a.jnz(touch);
    w.tscStop();
    // Read back (untimed) and release.
    a.mov(ebx, ebp); a.mov(ecx, pages);
    const back = a.here();
    a.mov(eax, dword(ebx, 64)); a.add(dword(sum), eax);
    a.add(ebx, 4096);
    a.dec(ecx); a.jnz(back);
    a.mov(ebx, ebp); a.mov(ecx, pages * 4096);
    u.sys(SYS.munmap);
    w.checkResult('munmap');
    a.pop(esi);
  };
  if (full > 0) {
    a.mov(esi, full);
    const loop = a.here();
    one(batch);
    a.dec(esi); a.jnz(loop);
  }
  if (rest > 0) one(rest);
}

export const NANO: readonly WorkloadDef[] = [
  {
    name: 'syscall', group: 'nano',
    description: 'null system call (getpid) round trip from user mode, int 0x80 or SYSENTER',
    params: { n: N(10_000), path: oneOf('system-call entry path', 'int80', ['int80', 'sysenter']) },
    build: (p) => single('syscall', p, (w) => emitGetpidLoop(w, 'syscall', p.n as number), 400, p.path as 'int80' | 'sysenter'),
  },
  {
    name: 'in', group: 'nano',
    description: 'port read in the kernel: in al, 0x80 (the POST port, reads 0xFF)',
    params: { n: N(10_000) },
    build: (p) => single('in', p, (w) => { kernelBench(w, 'in', BENCH_OP.in, p.n as number); w.finishOk(); }, 10),
  },
  {
    name: 'cr8wr', group: 'nano',
    description: "the 32-bit analogue of cr8wr: an interrupt-mask write in the kernel (8259A IMR rewrite, or an sti/cli pair)",
    params: { n: N(10_000), via: oneOf('pic: rewrite the master 8259A mask (OCW1, port 0x21); cli: an sti+cli pair', 'pic', ['pic', 'cli']) },
    build: (p) => single('cr8wr', p, (w) => {
      kernelBench(w, p.via === 'pic' ? 'cr8wr-pic' : 'cr8wr-cli', p.via === 'pic' ? BENCH_OP.picmask : BENCH_OP.clisti, p.n as number);
      w.finishOk();
    }, 30),
  },
  {
    name: 'callret', group: 'nano',
    description: 'call and return of an empty user-mode function',
    params: { n: N(100_000) },
    build: (p) => single('callret', p, (w) => {
      const a = w.a, n = p.n as number;
      const f = a.label('callee');
      w.tscStart();
      a.mov(esi, n); a.xor(edi, edi);
      const loop = a.here();
      a.call(f);
      a.dec(esi); a.jnz(loop);
      w.tscStop();
      w.report('callret', n);
      w.mix(edi);
      w.finishOk();
      a.bind(f);
      a.inc(edi);
      a.ret();
    }, 10),
  },
  {
    name: 'pgfault', group: 'nano',
    description: 'user-mode write to a fresh anonymous page: one demand-zero page fault each',
    params: { n: int('page faults timed', 1000, 1, 1_000_000) },
    build: (p) => single('pgfault', p, (w) => {
      const sum = w.data('sum', 0);
      emitTouchFresh(w, p.n as number, sum);
      w.report('pgfault', p.n as number);
      w.a.mov(eax, dword(sum)); w.mix(eax);
      w.finishOk();
    }, 4000),
  },
  {
    name: 'divzero', group: 'nano',
    description: 'divide error (#DE) raised and handled in the kernel, resuming after the div',
    params: { n: N(10_000) },
    build: (p) => single('divzero', p, (w) => { kernelBench(w, 'divzero', BENCH_OP.divzero, p.n as number); w.finishOk(); }, 20),
  },
  {
    name: 'ptemod', group: 'nano',
    description: 'page-table entry update in the kernel (W bit toggled), with or without INVLPG',
    params: { n: N(10_000), flush: int('1: INVLPG after each update, 0: none', 1, 0, 1) },
    build: (p) => single('ptemod', p, (w) => {
      kernelBench(w, 'ptemod', p.flush === 1 ? BENCH_OP.ptemod : BENCH_OP.ptemodNoFlush, p.n as number);
      w.finishOk();
    }, 20),
  },
];
