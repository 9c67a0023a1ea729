import { describe, expect, it } from 'vitest';
import { SYS, KILL_FPE, KILL_SEGV } from '../../src/guest/kernel/layout.js';
import type { UserBuilder, UserProgram } from '../../src/guest/kernel/user.js';
import { disassembleAll } from '../../src/x86/pvop.js';
import { al, eax, ebx, ecx, edx, esi, edi, byte, dword, type AddrExpr, type Label } from '../../src/x86/operands.js';
import { profile, runKernel } from './kernel-harness.js';
import { buildDemoKernel } from '../../src/guest/kernel/demo.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { Machine } from '../../src/machine/machine.js';
import type { Kx } from '../../src/guest/kernel/kernel.js';

/** Emits a dword variable in the program's data section. */
function dataWord(u: UserBuilder, name: string, value: number): Label {
  const a = u.a;
  const l = a.label(name);
  a.section('data'); a.bind(l); a.dd(value); a.section('text');
  return l;
}

/** waitpid(-1, &status) → EAX = pid; status in the variable. */
function waitAny(u: UserBuilder, status: Label): void {
  u.a.mov(ebx, -1); u.a.mov(ecx, status); u.sys(SYS.waitpid);
}

const forkwait: UserProgram = {
  name: 'forkwait',
  build: (u) => {
    const a = u.a;
    const status = dataWord(u, 'status', 0);
    const child = a.label();
    u.sys(SYS.fork);
    a.test(eax, eax); a.jz(child);
    a.mov(esi, eax); // child pid
    waitAny(u, status);
    const bad = a.label();
    a.cmp(eax, esi); a.jne(bad);
    u.print('child status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    a.mov(ebx, dword(status)); a.add(ebx, 1); u.exit(ebx);
    a.bind(bad); u.exit(99);
    a.bind(child);
    u.sys(SYS.getpid);
    u.print('child pid '); u.printDec(); u.print('\n');
    u.exit(42);
  },
};

const cow: UserProgram = {
  name: 'cow',
  build: (u) => {
    const a = u.a;
    const v = dataWord(u, 'v', 100);
    const status = dataWord(u, 'status', 0);
    a.mov(dword(v), 5); // before fork: the child must see 5
    const child = a.label();
    u.sys(SYS.fork);
    a.test(eax, eax); a.jz(child);
    waitAny(u, status);
    u.print('parent v='); a.mov(eax, dword(v)); u.printDec(); u.print('\n');
    a.mov(dword(v), 9);
    u.print('parent v='); a.mov(eax, dword(v)); u.printDec(); u.print('\n');
    a.mov(ebx, dword(status)); u.exit(ebx);
    a.bind(child);
    u.print('child saw v='); a.mov(eax, dword(v)); u.printDec(); u.print('\n');
    a.mov(dword(v), 7);
    u.print('child v='); a.mov(eax, dword(v)); u.printDec(); u.print('\n');
    a.mov(ebx, dword(v)); u.exit(ebx);
  },
};

const segv: UserProgram = {
  name: 'segv',
  build: (u) => {
    const a = u.a;
    const status = dataWord(u, 'status', 0);
    const child1 = a.label(), child2 = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child1);
    waitAny(u, status);
    u.print('user fault status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child2);
    waitAny(u, status);
    u.print('kernel-mode fault status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    const child3 = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child3);
    waitAny(u, status);
    u.print('divide error status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    u.print('parent alive\n');
    u.exit(0);
    a.bind(child1);
    a.mov(eax, dword(0x2000_0000)); // unmapped
    u.exit(1);
    a.bind(child2);
    a.mov(ebx, 1); a.mov(ecx, 0x2000_0000); a.mov(edx, 16); u.sys(SYS.write); // the kernel reads it
    u.exit(2);
    a.bind(child3);
    a.xor(ecx, ecx); a.xor(edx, edx); a.div(ecx);
    u.exit(3);
  },
};

/** Two processes that never yield, each printing its letter between busy loops. */
const preempt: UserProgram = {
  name: 'preempt',
  build: (u) => {
    const a = u.a;
    const status = dataWord(u, 'status', 0);
    const body = (letter: string): void => {
      a.mov(edi, 8);
      const outer = a.here();
      a.mov(ecx, 150_000);
      const spin = a.here();
      a.dec(ecx); a.jnz(spin);
      u.print(letter);
      a.dec(edi); a.jnz(outer);
    };
    const child = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child);
    body('A');
    waitAny(u, status);
    u.print('\n');
    u.exit(0);
    a.bind(child);
    body('B');
    u.exit(0);
  },
};

/** The same calls through either path: getpid, write, fork, waitpid, exit, yield, time. */
function syscallsProgram(path: 'int80' | 'sysenter'): UserProgram {
  return {
    name: 'calls',
    syscalls: path,
    build: (u) => {
      const a = u.a;
      const status = dataWord(u, 'status', 0);
      u.sys(SYS.getpid); u.print('pid '); u.printDec(); u.print('\n');
      u.sys(SYS.sched_yield); u.print('yield '); u.printDec(); u.print('\n');
      a.mov(ebx, 1); a.mov(ecx, 0x1234); a.mov(edx, 3); a.mov(esi, 0x55); a.mov(edi, 0x66);
      u.sys(SYS.getpid);
      // Registers other than EAX survive the call.
      const bad = a.label();
      a.cmp(ebx, 1); a.jne(bad); a.cmp(ecx, 0x1234); a.jne(bad); a.cmp(edx, 3); a.jne(bad);
      a.cmp(esi, 0x55); a.jne(bad); a.cmp(edi, 0x66); a.jne(bad);
      u.print('registers kept\n');
      a.mov(ebx, 3); u.sys(SYS.nanosleep); u.print('slept\n');
      const child = a.label();
      u.sys(SYS.fork); a.test(eax, eax); a.jz(child);
      waitAny(u, status);
      u.print('reaped '); u.printDec(); u.print(' status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
      a.mov(ebx, 12345); u.sys(SYS.getpid + 200); // unknown: -ENOSYS
      a.neg(eax); u.print('enosys '); u.printDec(); u.print('\n');
      u.exit(0);
      a.bind(bad); u.print('registers clobbered\n'); u.exit(1);
      a.bind(child);
      u.print('child\n');
      u.exit(5);
    },
  };
}

const mmap: UserProgram = {
  name: 'mmap',
  build: (u) => {
    const a = u.a;
    const status = dataWord(u, 'status', 0);
    const base = dataWord(u, 'base', 0);
    a.mov(ebx, 0); a.mov(ecx, 3 * 4096); a.mov(edx, 3); a.mov(esi, 0x22); a.mov(edi, -1);
    u.sys(SYS.mmap2);
    a.mov(dword(base), eax);
    u.print('mmap at '); u.printDec(); u.print('\n');
    // Demand-zero: every page reads 0 before it is written; write i+1 at each page, sum back.
    a.mov(esi, eax);
    a.xor(edx, edx);
    for (let i = 0; i < 3; i++) { a.add(edx, dword(esi, i * 4096 + 8)); a.mov(dword(esi, i * 4096 + 8), i + 1); }
    a.xor(eax, eax);
    for (let i = 0; i < 3; i++) a.add(eax, dword(esi, i * 4096 + 8));
    a.add(eax, edx);
    u.print('sum '); u.printDec(); u.print('\n');
    a.mov(ebx, esi); a.mov(ecx, 3 * 4096); u.sys(SYS.munmap);
    u.print('munmap '); u.printDec(); u.print('\n');
    a.mov(ebx, esi); a.mov(ecx, 4096); u.sys(SYS.munmap);
    a.neg(eax); u.print('munmap again -'); u.printDec(); u.print('\n');
    const child = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child);
    waitAny(u, status);
    u.print('touch after munmap: status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    u.exit(0);
    a.bind(child);
    a.mov(esi, dword(base));
    a.mov(eax, dword(esi, 8));
    u.exit(0);
  },
};



const disk: UserProgram = {
  name: 'disk',
  build: (u) => {
    const a = u.a;
    const wbuf = a.label('wbuf'), rbuf = a.label('rbuf');
    a.section('bss'); a.bind(wbuf); a.reserve(1024); a.bind(rbuf); a.reserve(1024); a.section('text');
    // Pattern: byte i = (i * 7 + 3) & 0xff over two sectors.
    a.xor(ecx, ecx);
    const fill = a.here();
    a.mov(eax, ecx); a.imul(eax, eax, 7); a.add(eax, 3);
    a.mov(byte({ base: ecx, disp: wbuf }), al);
    a.inc(ecx); a.cmp(ecx, 1024); a.jb(fill);
    a.mov(ebx, 3); a.mov(ecx, wbuf); a.mov(edx, 2); u.sys(SYS.blk_write);
    u.print('write '); u.printDec(); u.print('\n');
    a.mov(ebx, 3); a.mov(ecx, rbuf); a.mov(edx, 2); u.sys(SYS.blk_read);
    u.print('read '); u.printDec(); u.print('\n');
    a.mov(esi, wbuf); a.mov(edi, rbuf); a.mov(ecx, 1024); a.cmpsb('repe');
    const differ = a.label(), next = a.label();
    a.jne(differ); u.print('match\n'); a.jmp(next);
    a.bind(differ); u.print('mismatch\n');
    a.bind(next);
    a.mov(ebx, 0); a.mov(ecx, rbuf); a.mov(edx, 1); u.sys(SYS.blk_read);
    a.mov(eax, dword(rbuf)); u.print('sector 0: '); u.printDec(); u.print('\n');
    a.mov(ebx, 1_000_000); a.mov(ecx, rbuf); a.mov(edx, 1); u.sys(SYS.blk_read);
    a.neg(eax); u.print('beyond the disk: -'); u.printDec(); u.print('\n');
    a.mov(ebx, 0); a.mov(ecx, rbuf); a.mov(edx, 9); u.sys(SYS.blk_read);
    a.neg(eax); u.print('9 sectors: -'); u.printDec(); u.print('\n');
    u.exit(0);
  },
};

const PEER_MAC = [0x52, 0x54, 0x00, 0x00, 0x00, 0x02];
const GUEST_MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

const net: UserProgram = {
  name: 'net',
  build: (u) => {
    const a = u.a;
    const frame = a.label('frame'), rbuf = a.label('rbuf');
    a.section('data'); a.bind(frame);
    a.db(PEER_MAC, [0, 0, 0, 0, 0, 0], [0x88, 0xb5], 'ping virtlab');
    a.zero(60 - 26);
    a.section('bss'); a.bind(rbuf); a.reserve(2048); a.section('text');
    for (let round = 0; round < 2; round++) {
      a.mov(ebx, frame); a.mov(ecx, 60); u.sys(SYS.net_send);
      u.print('sent '); u.printDec(); u.print('\n');
      a.mov(ebx, rbuf); a.mov(ecx, 2048); u.sys(SYS.net_recv);
      u.print('received '); u.printDec(); u.print(': ');
      a.mov(ebx, 1); a.mov(ecx, rbuf.plus(14)); a.mov(edx, 12); u.sys(SYS.write);
      u.print('\n');
      // The reply comes back to our MAC from the peer's.
      a.mov(esi, rbuf.plus(6)); a.mov(edi, frame); a.mov(ecx, 6); a.cmpsb('repe');
      const bad = a.label(), ok = a.label();
      a.jne(bad); u.print('from peer\n'); a.jmp(ok);
      a.bind(bad); u.print('not from peer\n');
      a.bind(ok);
      a.mov(byte(frame.plus(25)), 0x32 + round); // 'ping virtlaa' -> next payload
    }
    u.exit(0);
  },
};


const execParent: UserProgram = {
  name: 'init',
  build: (u) => {
    const a = u.a;
    const status = dataWord(u, 'status', 0);
    const name = a.label('name'), bad = a.label('badname');
    a.section('rodata'); a.bind(name); a.asciz('hello2'); a.bind(bad); a.asciz('nosuch'); a.section('text');
    a.mov(ebx, bad); u.sys(SYS.execve);
    a.neg(eax); u.print('exec nosuch: -'); u.printDec(); u.print('\n');
    const child = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child);
    waitAny(u, status);
    u.print('hello2 exited '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    u.exit(0);
    a.bind(child);
    a.mov(ebx, name); u.sys(SYS.execve);
    u.print('exec returned\n');
    u.exit(1);
  },
};
const hello2: UserProgram = {
  name: 'hello2',
  build: (u) => {
    const a = u.a;
    const big = a.label('big');
    a.section('bss'); a.bind(big); a.reserve(3 * 4096); a.section('text');
    a.mov(eax, dword(big.plus(8192))); // bss is demand-zero
    u.print('hello2 pid '); u.sys(SYS.getpid); u.printDec(); u.print(' bss '); a.mov(eax, dword(big.plus(8192))); u.printDec(); u.print('\n');
    u.exit(9);
  },
};

/** Forks until the process table is full, then reaps every child. */
const many: UserProgram = {
  name: 'many',
  build: (u) => {
    const a = u.a;
    const status = dataWord(u, 'status', 0);
    const child = a.label(), full = a.label();
    a.xor(edi, edi);
    const loop = a.here();
    u.sys(SYS.fork);
    a.test(eax, eax); a.jz(child); a.js(full);
    a.inc(edi);
    a.cmp(edi, 40); a.jb(loop);
    a.bind(full);
    a.neg(eax); u.print('fork failed with -'); u.printDec(); u.print(' after '); a.mov(eax, edi); u.printDec(); u.print(' children\n');
    a.xor(esi, esi);
    const reap = a.here(), done = a.label();
    waitAny(u, status);
    a.test(eax, eax); a.js(done);
    a.add(esi, dword(status));
    a.jmp(reap);
    a.bind(done);
    u.print('status sum '); a.mov(eax, esi); u.printDec(); u.print('\n');
    u.exit(0);
    a.bind(child);
    u.sys(SYS.getpid);
    a.mov(ebx, eax); u.exit(ebx);
  },
};


/** Ping-pong over two pipes: each side adds one to a counter and passes it back, 50 rounds. */
const pingpong: UserProgram = {
  name: 'pingpong',
  build: (u) => {
    const a = u.a;
    const p1 = a.label('p1'), p2 = a.label('p2'), word = a.label('word');
    a.section('data'); a.bind(p1); a.dd(0, 0); a.bind(p2); a.dd(0, 0); a.bind(word); a.dd(0); a.section('text');
    const status = dataWord(u, 'status', 0);
    a.mov(ebx, p1); u.sys(SYS.pipe);
    a.mov(ebx, p2); u.sys(SYS.pipe);
    u.print('fds '); a.mov(eax, dword(p1)); u.printDec(); u.print(' '); a.mov(eax, dword(p2.plus(4))); u.printDec(); u.print('\n');
    // read(fd, word, 4) / write(fd, word, 4)
    const xfer = (nr: number, fd: Label | AddrExpr): void => { a.mov(ebx, dword(fd)); a.mov(ecx, word); a.mov(edx, 4); u.sys(nr); };
    const child = a.label();
    u.sys(SYS.fork); a.test(eax, eax); a.jz(child);
    a.mov(edi, 50);
    const ploop = a.here();
    a.inc(dword(word));
    xfer(SYS.write, p1.plus(4));
    xfer(SYS.read, p2);
    a.dec(edi); a.jnz(ploop);
    u.print('parent got '); a.mov(eax, dword(word)); u.printDec(); u.print('\n');
    a.mov(ebx, dword(p1.plus(4))); u.sys(SYS.close); // the child's next read sees end of file
    waitAny(u, status);
    u.print('child status '); a.mov(eax, dword(status)); u.printDec(); u.print('\n');
    u.exit(0);
    a.bind(child);
    const cloop = a.here(), eof = a.label();
    xfer(SYS.read, p1);
    a.test(eax, eax); a.jz(eof);
    a.inc(dword(word));
    xfer(SYS.write, p2.plus(4));
    a.jmp(cloop);
    a.bind(eof);
    a.mov(ebx, dword(word)); a.and(ebx, 0xff); u.exit(ebx);
  },
};

describe('virtlab kernel', () => {
  it('boots, prints the banner, runs init and stops with its exit code', () => {
    const r = runKernel({ init: 'hi', banner: 'test kernel 1', programs: [{ name: 'hi', build: (u) => { u.print('hi from init\n'); u.exit(3); } }] });
    expect(r.console).toMatch(/^test kernel 1\nmemory: \d+ free pages\n/);
    expect(r.console).toContain('hi from init\n');
    expect(r.exitCode).toBe(3);
  });

  it('fork, wait and exit pass the exit code to the parent', () => {
    const r = runKernel({ init: 'forkwait', programs: [forkwait] });
    expect(r.console).toContain('child pid 2\n');
    expect(r.console).toContain('child status 42\n');
    expect(r.exitCode).toBe(43);
  });

  it('copy-on-write: parent and child each see their own writes', () => {
    const r = runKernel({ init: 'cow', programs: [cow] });
    expect(r.console).toContain('child saw v=5\nchild v=7\n');
    expect(r.console).toContain('parent v=5\nparent v=9\n');
    expect(r.exitCode).toBe(7);
    expect(r.outcome.events['0x0e']).toBeGreaterThanOrEqual(2); // COW faults
  });

  it('a fault on an unmapped address kills the process, not the kernel', () => {
    const r = runKernel({ init: 'segv', programs: [segv] });
    expect(r.console).toMatch(/pid 2: segmentation fault at 0x20000000 \(eip 0x0804[0-9a-f]{4}\), killed\n/);
    expect(r.console).toContain(`user fault status ${KILL_SEGV}\n`);
    expect(r.console).toContain(`kernel-mode fault status ${KILL_SEGV}\n`);
    expect(r.console).toContain(`divide error status ${KILL_FPE}\n`);
    expect(r.console).toMatch(/pid 4: exception 0 at 0x0804[0-9a-f]{4}, killed\n/);
    expect(r.console).toContain('parent alive\n');
    expect(r.exitCode).toBe(0);
  });

  it('the timer preempts two busy processes and interleaves them', () => {
    const r = runKernel({ init: 'preempt', programs: [preempt], hz: 1000 });
    const line = r.console.split('\n').find((l) => /^[AB]+$/.test(l)) ?? '';
    expect(line.replace(/B/g, '')).toBe('AAAAAAAA');
    expect(line.replace(/A/g, '')).toBe('BBBBBBBB');
    const switches = (line.match(/AB|BA/g) ?? []).length;
    expect(switches).toBeGreaterThanOrEqual(3);
    expect(r.exitCode).toBe(0);
  });

  it('int 0x80 and SYSENTER give the same results', () => {
    const viaInt = runKernel({ init: 'calls', programs: [syscallsProgram('int80')] });
    const viaSysenter = runKernel({ init: 'calls', programs: [syscallsProgram('sysenter')] });
    expect(viaInt.console).toContain('registers kept\n');
    expect(viaInt.console).toContain('reaped 2 status 5\n');
    expect(viaInt.console).toContain('enosys 38\n');
    expect(viaSysenter.console).toBe(viaInt.console);
    expect(viaSysenter.exitCode).toBe(0);
    expect(viaInt.exitCode).toBe(0);
    // The sysenter run really used SYSENTER: far fewer int 0x80 deliveries.
    expect(viaSysenter.outcome.events['0x80'] ?? 0).toBe(0);
    expect(viaInt.outcome.events['0x80']).toBeGreaterThan(10);
  });

  it('mmap gives demand-zero memory; munmap takes it away', () => {
    const r = runKernel({ init: 'mmap', programs: [mmap] });
    expect(r.console).toContain('mmap at 1073741824\n');
    expect(r.console).toContain('sum 6\n');
    expect(r.console).toContain('munmap 0\n');
    expect(r.console).toContain('munmap again -22\n');
    expect(r.console).toContain(`touch after munmap: status ${KILL_SEGV}\n`);
    expect(r.exitCode).toBe(0);
  });


  it('block read/write round trip through the ATA driver (bus-master DMA, IRQ 14)', () => {
    const image = new Uint8Array(64 * 512);
    image.set([1, 2, 0, 0], 0); // sector 0 starts with the dword 0x201 = 513
    const r = runKernel({ init: 'disk', programs: [disk] }, { disk: { image, seed: 7 } });
    expect(r.console).toContain('ata0: disk, bus-master DMA\n');
    expect(r.console).toContain('write 2\nread 2\nmatch\n');
    expect(r.console).toContain('sector 0: 513\n');
    expect(r.console).toContain('beyond the disk: -5\n');
    expect(r.console).toContain('9 sectors: -22\n');
    const written = r.machine.disk!.disk.image.subarray(3 * 512, 5 * 512);
    expect([...written]).toEqual(Array.from({ length: 1024 }, (_, i) => (i * 7 + 3) & 0xff));
    expect(r.exitCode).toBe(0);
    expect(r.machine.disk!.counters.interrupts).toBe(4);
  });

  it('a packet sent through the e1000 comes back from the echo peer', () => {
    const r = runKernel({ init: 'net', programs: [net] }, { nic: { seed: 3, echo: { delayCycles: 20_000, jitterCycles: 5_000 } } });
    expect(r.console).toContain('e1000: mac 52:54:00:12:34:56\n');
    expect(r.console).toContain('sent 60\nreceived 60: ping virtlab\nfrom peer\n');
    expect(r.console).toContain('sent 60\nreceived 60: ping virtlaa\nfrom peer\n'.replace('virtlaa', 'virtla2'));
    const sent = r.machine.nic!.link.transmittedFrames;
    expect(sent.length).toBe(2);
    expect([...sent[0]!.subarray(0, 12)]).toEqual([...PEER_MAC, ...GUEST_MAC]); // the kernel filled in the source MAC
    expect(r.exitCode).toBe(0);
  });


  it('execve replaces a process with a built-in program; an unknown name is ENOENT', () => {
    const r = runKernel({ init: 'init', programs: [execParent, hello2] });
    expect(r.console).toContain('exec nosuch: -2\n');
    expect(r.console).toContain('hello2 pid 2 bss 0\n');
    expect(r.console).toContain('hello2 exited 9\n');
    expect(r.console).not.toContain('exec returned');
    expect(r.exitCode).toBe(0);
  });

  it('at most 16 processes; reaped processes give back every page', () => {
    const r = runKernel({ init: 'many', programs: [many] });
    // Slot 0 is idle, slot 1 init: 14 children fit.
    expect(r.console).toContain('fork failed with -11 after 14 children\n');
    expect(r.console).toContain(`status sum ${[...Array(14).keys()].reduce((s, i) => s + i + 2, 0)}\n`);
    expect(r.exitCode).toBe(0);
    // After init's exit only its directory and kernel stack are still allocated.
    const boot = Number(/memory: (\d+) free pages/.exec(r.console)![1]);
    const sym = r.image.symbols.find((s) => s.name === 'free_count')!;
    const phys = sym.addr - 0xc000_0000;
    const free = r.machine.mem.u8[phys]! | (r.machine.mem.u8[phys + 1]! << 8) | (r.machine.mem.u8[phys + 2]! << 16);
    expect(free).toBe(boot - 2);
  });

  it('is deterministic: the same run twice gives the same output and cycle count', () => {
    const a = runKernel({ init: 'preempt', programs: [preempt] });
    const b = runKernel({ init: 'preempt', programs: [preempt] });
    expect(b.console).toBe(a.console);
    expect(b.outcome.cycles).toBe(a.outcome.cycles);
    expect(b.outcome.instructions).toBe(a.outcome.instructions);
  });


  it('pipes carry a ping-pong between two processes; closing the write end gives end of file', () => {
    const r = runKernel({ init: 'pingpong', programs: [pingpong] });
    expect(r.console).toContain('fds 3 6\n');
    expect(r.console).toContain('parent got 100\n');
    expect(r.console).toContain('child status 100\n'); // it read 99, sent 100, then saw end of file
    expect(r.exitCode).toBe(0);
  });


  it('extra system calls host kernel-level harnesses (here: N port reads timed by RDTSC)', () => {
    const benchIn = {
      nr: 200, name: 'bench_in', emit: (k: Kx) => {
        const a = k.a;
        a.push(ebx); a.push(esi);
        a.mov(esi, eax); // N
        k.pv('read-tsc', () => a.rdtsc());
        a.mov(ebx, eax);
        const loop = a.here();
        k.inb(0x61);
        a.dec(esi); a.jnz(loop);
        k.pv('read-tsc', () => a.rdtsc());
        a.sub(eax, ebx);
        a.pop(esi); a.pop(ebx);
        a.ret();
      },
    };
    const prog: UserProgram = {
      name: 'bench', build: (u) => {
        const a = u.a;
        a.mov(ebx, 100); u.sys(200);
        a.mov(esi, eax);
        a.mov(ebx, 200); u.sys(200);
        a.cmp(eax, esi); const ok = a.label(); a.ja(ok);
        u.exit(1);
        a.bind(ok); u.print('200 reads take longer than 100\n'); u.exit(0);
      },
    };
    const r = runKernel({ init: 'bench', programs: [prog], extraSyscalls: [benchIn] });
    expect(r.console).toContain('200 reads take longer than 100\n');
    expect(r.exitCode).toBe(0);
    expect(r.image.pvopSites.filter((s) => s.kind === 'read-tsc').length).toBe(2);
    expect(() => runKernel({ init: 'bench', programs: [prog], extraSyscalls: [{ ...benchIn, nr: 20 }] })).toThrow(/not in 200\.\.239/);
  });


  it('the demo kernel runs its self-check to the end', () => {
    const image = buildDemoKernel();
    const m = new Machine({ profile, memoryMiB: 64 });
    m.loadMultiboot(toMultibootElf(image), 'demo.elf');
    const o = m.run({ maxInstructions: 30_000_000 });
    expect(m.console.text()).toContain('init: child exited 42, v is still 1\nhello: via sysenter, pid 3\ninit: hello exited 7\ninit: reader summed 55\ninit: mmap page reads 77\ninit: done\n');
    expect(o.exit).toEqual({ reason: 'exit-device', code: 1 });
  });


  it('manages only the memory the boot loader reports', () => {
    const small = runKernel({ init: 'forkwait', programs: [forkwait] }, { memoryMiB: 8 });
    const free = Number(/memory: (\d+) free pages/.exec(small.console)![1]);
    expect(free).toBeLessThan(8 * 256);
    expect(free).toBeGreaterThan(8 * 256 - 400); // the kernel image and the BIOS-reserved top
    expect(small.exitCode).toBe(43);
  });

  it('every privileged instruction in the kernel is inside a pv-op site', () => {
    const r = runKernel({ init: 'hi', programs: [{ name: 'hi', build: (u) => u.exit(0) }] }, {}, 5_000_000);
    const image = r.image;
    const privileged = /^(cli|sti|hlt|in |out |rep ins|rep outs|ins[bwd]|outs[bwd]|lgdt|lidt|lldt|ltr|lmsw|clts|invd|wbinvd|invlpg|mov cr\d|mov \w+,cr\d|mov dr\d|mov \w+,dr\d|iretd?|sysexit|wrmsr|rdmsr|pushfd?|popfd?)\b/;
    const sites = image.pvopSites;
    const inSite = (addr: number): boolean => sites.some((s) => addr >= s.addr && addr < s.addr + s.len);
    let checked = 0;
    const outside: string[] = [];
    for (const seg of image.segments) {
      if ((seg.flags & 1) === 0) continue;
      for (const ins of disassembleAll(seg.bytes, seg.vaddr, 32)) {
        expect(ins.text).not.toBe('(bad)');
        if (privileged.test(ins.text)) {
          checked++;
          if (!inSite(ins.address)) outside.push(`${ins.address.toString(16)}: ${ins.text}`);
        }
      }
    }
    expect(outside).toEqual([]);
    expect(checked).toBeGreaterThan(40);
    const kinds = new Set(sites.map((s) => s.kind));
    for (const k of ['write-cr3', 'set-pte', 'flush-tlb-entry', 'flush-tlb', 'safe-halt', 'irq-disable', 'port-in', 'port-out', 'load-idt', 'load-gdt', 'load-tr', 'set-kernel-stack', 'iret', 'sysexit', 'wrmsr', 'read-cr2'] as const) {
      expect(kinds.has(k), k).toBe(true);
    }
    // The kernel stays out of the hypervisor hole and is mapped high.
    for (const seg of image.segments) expect(seg.vaddr + seg.memsz).toBeLessThanOrEqual(0xfc00_0000);
    expect(image.symbols.find((s) => s.name === 'schedule')!.addr).toBeGreaterThanOrEqual(0xc000_0000);
    for (const hook of ['lazy_mmu_begin', 'lazy_mmu_end', 'pv_alloc_pt', 'pv_release_pt', 'pv_alloc_pd', 'pv_release_pd']) {
      const sym = image.symbols.find((s) => s.name === hook);
      expect(sym, hook).toBeDefined();
      const seg = image.segments.find((g) => sym!.addr >= g.vaddr && sym!.addr < g.vaddr + g.bytes.length)!;
      const body = seg.bytes.subarray(sym!.addr - seg.vaddr, sym!.addr - seg.vaddr + 16);
      expect([...body]).toEqual([0xc3, ...Array(15).fill(0x90)]); // ret + room for a patch
    }
  });
});
