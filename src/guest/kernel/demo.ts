/**
 * A demonstration kernel: `init` exercises fork/wait/exit, copy-on-write, exec, pipes,
 * mmap/munmap, sleep and yield, printing what it sees, and exits 0. Suitable for
 * `virtlab build-guest` and for comparing virtlab with QEMU (the native image is a
 * Multiboot ELF; output goes to COM1).
 */
import { eax, ebx, ecx, edx, esi, edi, dword } from '../../x86/operands.js';
import type { GuestImage } from '../image.js';
import { buildKernel } from './kernel.js';
import { SYS } from './layout.js';
import type { UserProgram } from './user.js';

const init: UserProgram = {
  name: 'init',
  build: (u) => {
    const a = u.a;
    const status = a.label('status'), v = a.label('v'), fds = a.label('fds'), word = a.label('word'), hello = a.label('hello_name');
    a.section('data'); a.bind(status); a.dd(0); a.bind(v); a.dd(1); a.bind(fds); a.dd(0, 0); a.bind(word); a.dd(0);
    a.section('rodata'); a.bind(hello); a.asciz('hello');
    a.section('text');
    const wait = (): void => { a.mov(ebx, -1); a.mov(ecx, status); u.sys(SYS.waitpid); };
    u.print('init: pid '); u.sys(SYS.getpid); u.printDec(); u.print('\n');
    // fork + copy-on-write + exit status
    const c1 = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(c1);
    wait();
    u.print('init: child exited '); a.mov(eax, dword(status)); u.printDec();
    u.print(', v is still '); a.mov(eax, dword(v)); u.printDec(); u.print('\n');
    // exec
    const c2 = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(c2);
    wait();
    u.print('init: hello exited '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    // pipe ping-pong
    a.mov(ebx, fds); u.sys(SYS.pipe);
    const c3 = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(c3);
    a.mov(edi, 10);
    const send = a.here();
    a.inc(dword(word));
    a.mov(ebx, dword(fds.plus(4))); a.mov(ecx, word); a.mov(edx, 4); u.sys(SYS.write);
    a.dec(edi); a.jnz(send);
    a.mov(ebx, dword(fds.plus(4))); u.sys(SYS.close);
    wait();
    u.print('init: reader summed '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    // mmap / munmap
    a.xor(ebx, ebx); a.mov(ecx, 8192); a.mov(edx, 3); a.mov(esi, 0x22); a.mov(edi, -1); u.sys(SYS.mmap2);
    a.mov(esi, eax);
    a.mov(dword(esi, 4096), 77);
    a.mov(eax, dword(esi, 4096)); a.add(eax, dword(esi));
    u.print('init: mmap page reads '); u.printDec(); u.print('\n');
    a.mov(ebx, esi); a.mov(ecx, 8192); u.sys(SYS.munmap);
    a.mov(ebx, 2); u.sys(SYS.nanosleep);
    u.sys(SYS.sched_yield);
    u.print('init: done\n');
    u.exit(0);

    a.bind(c1);
    a.mov(dword(v), 2);
    a.mov(ebx, dword(v)); a.add(ebx, 40); u.exit(ebx);
    a.bind(c2);
    a.mov(ebx, hello); u.sys(SYS.execve);
    u.exit(127);
    a.bind(c3);
    a.xor(esi, esi);
    const recv = a.here(), eof = a.label();
    a.mov(ebx, dword(fds)); a.mov(ecx, word); a.mov(edx, 4); u.sys(SYS.read);
    a.test(eax, eax); a.jz(eof);
    a.add(esi, dword(word));
    a.jmp(recv);
    a.bind(eof);
    a.mov(ebx, esi); u.exit(ebx);
  },
};

const hello: UserProgram = {
  name: 'hello',
  syscalls: 'sysenter',
  build: (u) => { u.print('hello: via sysenter, pid '); u.sys(SYS.getpid); u.printDec(); u.print('\n'); u.exit(7); },
};

/** The demonstration programs (init, hello). */
export const DEMO_PROGRAMS: readonly UserProgram[] = [init, hello];

/** The demonstration kernel image. */
export function buildDemoKernel(options: { hz?: number } = {}): GuestImage {
  return buildKernel({ init: 'init', programs: DEMO_PROGRAMS, hz: options.hz, banner: 'virtlab kernel (demo)' });
}
