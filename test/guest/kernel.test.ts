import { describe, expect, it } from 'vitest';
import { SYS, KILL_SEGV } from '../../src/guest/kernel/layout.js';
import type { UserBuilder, UserProgram } from '../../src/guest/kernel/user.js';
import { disassembleAll } from '../../src/x86/pvop.js';
import { al, eax, ebx, ecx, edx, esi, edi, byte, dword, type Label } from '../../src/x86/operands.js';
import { runKernel } from './kernel-harness.js';

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
    u.print('parent alive\n');
    u.exit(0);
    a.bind(child1);
    a.mov(eax, dword(0x2000_0000)); // unmapped
    u.exit(1);
    a.bind(child2);
    a.mov(ebx, 1); a.mov(ecx, 0x2000_0000); a.mov(edx, 16); u.sys(SYS.write); // the kernel reads it
    u.exit(2);
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
    expect(image.symbols.some((s) => s.name === 'lazy_mmu_begin')).toBe(true);
  });
});
