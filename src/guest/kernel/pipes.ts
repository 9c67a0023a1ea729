/**
 * Pipes: the kernel's one IPC mechanism, for lmbench-style ping-pong and context-switch
 * workloads. NPIPE global pipes of PIPE_BYTES each; pipe i's read end is fd 3 + 2i and its
 * write end fd 4 + 2i, valid in every process (no per-process descriptor table: a forked
 * child simply uses the numbers it inherited). Reads block while the pipe is empty and
 * return what is there (up to len); writes block while it is full and return len. close()
 * marks an end closed; a pipe is free again when both ends are closed.
 */
import { al, eax, ebx, ecx, edi, edx, esi, ebp, byte, dword } from '../../x86/operands.js';
import type { Kx } from './kernel.js';
import { EBADF, EFAULT, EMFILE, KERNEL_VIRT, SYS } from './layout.js';

/** Number of pipes and their capacity (a power of two). */
export const NPIPE = 8, PIPE_BYTES = 512;
/** Pipe object: flags (bit 0 read end open, bit 1 write end open), head (bytes read), tail (bytes written), buffer. */
const PF = { FLAGS: 0, HEAD: 4, TAIL: 8, BUF: 16 } as const;
const STRIDE = 1024;

/** Emits pipe(), read(), close() and `pipe_write` (sys_write's path for fd ≥ 3). */
export function emitPipes(k: Kx, sysFn: (nr: number, name: string, body: () => void) => void): void {
  const { a, L } = k;
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };

  // pipe_of(eax = fd, edx = wanted end: 0 read, 1 write) → eax = pipe object or 0.
  fn('pipe_of', () => {
    const bad = a.label();
    a.sub(eax, 3); a.jb(bad);
    a.mov(ecx, eax); a.and(ecx, 1);
    a.cmp(ecx, edx); a.jne(bad);
    a.shr(eax, 1);
    a.cmp(eax, NPIPE); a.jae(bad);
    a.shl(eax, 10);
    a.add(eax, L('pipes'));
    a.inc(edx); // the end's open bit: 1 (read) or 2 (write)
    a.test(dword(eax, PF.FLAGS), edx); a.jz(bad);
    a.ret();
    a.bind(bad);
    a.xor(eax, eax);
    a.ret();
  });

  // pipe(int fds[2])
  sysFn(SYS.pipe, 'sys_pipe', () => {
    const fault = a.label(), full = a.label(), found = a.label();
    a.cmp(eax, KERNEL_VIRT - 8); a.ja(fault);
    a.mov(edx, L('pipes'));
    a.xor(ecx, ecx);
    const loop = a.here();
    a.cmp(dword(edx, PF.FLAGS), 0); a.je(found);
    a.add(edx, STRIDE); a.inc(ecx);
    a.cmp(ecx, NPIPE); a.jb(loop);
    a.bind(full); a.mov(eax, -EMFILE); a.ret();
    a.bind(found);
    a.mov(dword(edx, PF.FLAGS), 3);
    a.mov(dword(edx, PF.HEAD), 0);
    a.mov(dword(edx, PF.TAIL), 0);
    a.lea(ecx, dword({ base: ecx, index: ecx, scale: 1, disp: 3 }));
    a.mov(dword(eax), ecx); // may fault in (demand-zero / COW): handled like a user access
    a.inc(ecx);
    a.mov(dword(eax, 4), ecx);
    a.xor(eax, eax); a.ret();
    a.bind(fault); a.mov(eax, -EFAULT); a.ret();
  });

  // read(fd, buf, len): fds 0..2 (the console) have no input: 0.
  sysFn(SYS.read, 'sys_read', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    const out = a.label(), bad = a.label(), fault = a.label(), eof = a.label();
    a.mov(edi, edx); a.mov(ebp, ecx);
    a.cmp(eax, 3); a.jb(eof);
    a.mov(edx, edi); a.add(edx, ebp); a.jc(fault);
    a.cmp(edx, KERNEL_VIRT); a.ja(fault);
    a.xor(edx, edx);
    a.call(L('pipe_of'));
    a.test(eax, eax); a.jz(bad);
    a.mov(ebx, eax);
    a.test(ebp, ebp); a.jz(eof);
    const wait = a.here(), ready = a.label();
    a.mov(eax, dword(ebx, PF.TAIL)); a.sub(eax, dword(ebx, PF.HEAD)); a.jnz(ready);
    a.test(dword(ebx, PF.FLAGS), 2); a.jz(eof); // empty and no writer: end of file
    a.mov(eax, ebx); a.call(L('sleep_on'));
    a.jmp(wait);
    a.bind(ready);
    a.cmp(eax, ebp); const fits = a.label(); a.jbe(fits); a.mov(eax, ebp); a.bind(fits);
    a.mov(ebp, eax); // bytes to copy
    a.xor(ecx, ecx);
    const copy = a.here(), copied = a.label();
    a.cmp(ecx, ebp); a.jae(copied);
    a.mov(esi, dword(ebx, PF.HEAD)); a.add(esi, ecx); a.and(esi, PIPE_BYTES - 1);
    a.mov(al, byte({ base: ebx, index: esi, scale: 1, disp: PF.BUF }));
    a.mov(byte({ base: edi, index: ecx, scale: 1 }), al);
    a.inc(ecx);
    a.jmp(copy);
    a.bind(copied);
    a.add(dword(ebx, PF.HEAD), ebp);
    a.mov(eax, ebx); a.call(L('wakeup')); // writers waiting for room
    a.mov(eax, ebp);
    a.jmp(out);
    a.bind(eof); a.xor(eax, eax); a.jmp(out);
    a.bind(fault); a.mov(eax, -EFAULT); a.jmp(out);
    a.bind(bad); a.mov(eax, -EBADF);
    a.bind(out);
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // pipe_write(eax = fd ≥ 3, edx = buf, ecx = len), from sys_write.
  fn('pipe_write', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    const out = a.label(), bad = a.label(), fault = a.label();
    a.mov(esi, edx); a.mov(ebp, ecx);
    a.mov(edx, esi); a.add(edx, ebp); a.jc(fault);
    a.cmp(edx, KERNEL_VIRT); a.ja(fault);
    a.mov(edx, 1);
    a.call(L('pipe_of'));
    a.test(eax, eax); a.jz(bad);
    a.mov(ebx, eax);
    a.xor(edi, edi); // bytes written
    const loop = a.here(), done = a.label(), room = a.label();
    a.cmp(edi, ebp); a.jae(done);
    a.mov(eax, dword(ebx, PF.TAIL)); a.sub(eax, dword(ebx, PF.HEAD));
    a.cmp(eax, PIPE_BYTES); a.jb(room);
    a.test(dword(ebx, PF.FLAGS), 1); a.jz(bad); // nobody will ever read (EPIPE, reported as EBADF)
    a.mov(eax, ebx); a.call(L('sleep_on'));
    a.jmp(loop);
    a.bind(room);
    a.mov(ecx, dword(ebx, PF.TAIL)); a.and(ecx, PIPE_BYTES - 1);
    a.mov(al, byte({ base: esi, index: edi, scale: 1 }));
    a.mov(byte({ base: ebx, index: ecx, scale: 1, disp: PF.BUF }), al);
    a.inc(dword(ebx, PF.TAIL));
    a.inc(edi);
    a.mov(eax, dword(ebx, PF.TAIL)); a.sub(eax, dword(ebx, PF.HEAD));
    a.cmp(eax, PIPE_BYTES); a.jb(loop);
    a.mov(eax, ebx); a.call(L('wakeup')); // full: let readers run
    a.jmp(loop);
    a.bind(done);
    a.mov(eax, ebx); a.call(L('wakeup')); // readers waiting for data
    a.mov(eax, ebp);
    a.jmp(out);
    a.bind(fault); a.mov(eax, -EFAULT); a.jmp(out);
    a.bind(bad); a.mov(eax, -EBADF);
    a.bind(out);
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // close(fd): closes one end of a pipe (fds 0..2: no-op).
  sysFn(SYS.close, 'sys_close', () => {
    const ok = a.label(), bad = a.label();
    a.cmp(eax, 3); a.jb(ok);
    a.push(eax);
    a.mov(edx, eax); a.sub(edx, 3); a.and(edx, 1);
    a.call(L('pipe_of'));
    a.pop(ecx);
    a.test(eax, eax); a.jz(bad);
    a.sub(ecx, 3); a.and(ecx, 1); a.inc(ecx); // the end's bit
    a.not(ecx);
    a.and(dword(eax, PF.FLAGS), ecx);
    a.call(L('wakeup')); // readers see EOF, writers EPIPE
    a.bind(ok); a.xor(eax, eax); a.ret();
    a.bind(bad); a.mov(eax, -EBADF); a.ret();
  });

  a.section('bss');
  a.align(16);
  a.bind(L('pipes')); a.reserve(NPIPE * STRIDE);
  a.section('text');
}
