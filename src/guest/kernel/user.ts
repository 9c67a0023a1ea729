/**
 * Built-in user programs of the virtlab kernel: each is assembled on its own at USER_BASE
 * and embedded in the kernel image, which `execve(name)` loads. `UserBuilder` adds system
 * call helpers and a tiny runtime (print a string / a decimal) around the assembler.
 */
import { Assembler } from '../../x86/assembler.js';
import { eax, ebx, ecx, edx, dl, edi, ebp, esp, byte, dword, type Label } from '../../x86/operands.js';
import { SYS, USER_BASE, VDSO_ADDR, VDSO_SYSENTER, VDSO_SYSENTER_RETURN } from './layout.js';

/** How a program enters the kernel. */
export type SyscallPath = 'int80' | 'sysenter';

/** A built-in program: a name (what execve takes) and a body that emits its code. */
export interface UserProgram {
  readonly name: string;
  /** Emits the program; execution starts at the first instruction of section text. */
  readonly build: (u: UserBuilder) => void;
  /** Default path of `u.sys` (default 'int80'). */
  readonly syscalls?: SyscallPath;
}

/** An assembled program: bytes loaded at USER_BASE, then zero up to memsz. */
export interface AssembledProgram {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly memsz: number;
  readonly entry: number;
}

/** Helpers for writing a user program. Registers follow the kernel ABI (layout.ts, SYS). */
export class UserBuilder {
  readonly a: Assembler;
  private readonly lib = new Map<string, Label>();
  private strings = 0;

  constructor(readonly defaultPath: SyscallPath) {
    this.a = new Assembler({ bits: 32, origin: USER_BASE });
  }

  /** System call `nr` with the arguments already in EBX, ECX, EDX, ESI, EDI; result in EAX. */
  sys(nr: number, path: SyscallPath = this.defaultPath): void {
    this.a.mov(eax, nr);
    if (path === 'int80') this.a.int(0x80);
    else this.a.call(VDSO_SYSENTER);
  }

  /** exit(code): code is a number or a register. */
  exit(code: number | typeof ebx): void {
    if (typeof code === 'number') this.a.mov(ebx, code); else if (code !== ebx) this.a.mov(ebx, code);
    this.sys(SYS.exit);
  }

  /** Prints a constant string (all registers preserved). */
  print(text: string): void {
    const a = this.a;
    const l = a.label(`str${this.strings++}`);
    const cur = a.currentSection;
    a.section('rodata');
    a.bind(l);
    a.ascii(text);
    a.section(cur);
    a.push(eax); a.push(ebx); a.push(ecx); a.push(edx);
    a.mov(ebx, 1); a.mov(ecx, l); a.mov(edx, text.length);
    this.sys(SYS.write);
    a.pop(edx); a.pop(ecx); a.pop(ebx); a.pop(eax);
  }

  /** Prints EAX as an unsigned decimal (all registers preserved). */
  printDec(): void { this.a.call(this.libFn('print_dec')); }

  /** A runtime routine, emitted once at the end. */
  private libFn(name: string): Label {
    let l = this.lib.get(name);
    if (!l) { l = this.a.label(name); this.lib.set(name, l); }
    return l;
  }

  /** @internal emits the runtime routines that were used. */
  finish(): void {
    const a = this.a;
    const pd = this.lib.get('print_dec');
    if (pd) {
      a.section('text');
      a.bind(pd);
      // Digits are built backwards in a stack buffer, then written with one write().
      a.push(eax); a.push(ebx); a.push(ecx); a.push(edx); a.push(edi);
      a.sub(esp, 16);
      a.lea(edi, dword(esp, 16));
      a.mov(ecx, 10);
      const loop = a.here();
      a.xor(edx, edx);
      a.div(ecx);
      a.add(dl, 0x30);
      a.dec(edi);
      a.mov(byte(edi), dl);
      a.test(eax, eax);
      a.jnz(loop);
      a.mov(ecx, edi);
      a.lea(edx, dword(esp, 16));
      a.sub(edx, edi);
      a.mov(ebx, 1);
      this.sys(SYS.write);
      a.add(esp, 16);
      a.pop(edi); a.pop(edx); a.pop(ecx); a.pop(ebx); a.pop(eax);
      a.ret();
    }
  }
}

/** Assembles a built-in program. */
export function assembleProgram(p: UserProgram): AssembledProgram {
  if (!/^[\w.-]{1,31}$/.test(p.name)) throw new RangeError(`program name "${p.name}": 1..31 characters of [A-Za-z0-9_.-]`);
  const u = new UserBuilder(p.syscalls ?? 'int80');
  u.a.section('rodata', { kind: 'rodata' });
  u.a.section('data', { kind: 'data' });
  u.a.section('bss', { kind: 'bss' });
  u.a.section('text');
  p.build(u);
  u.finish();
  const built = u.a.build();
  let end = USER_BASE, memsz = 0;
  for (const s of built.sections) {
    if (s.memsz === 0) continue;
    if (s.kind !== 'bss') end = Math.max(end, s.vaddr + s.bytes.length);
    memsz = Math.max(memsz, s.vaddr + s.memsz - USER_BASE);
  }
  const bytes = new Uint8Array(end - USER_BASE);
  for (const s of built.sections) if (s.kind !== 'bss' && s.bytes.length > 0) bytes.set(s.bytes, s.vaddr - USER_BASE);
  if (memsz > 0x0100_0000) throw new RangeError(`program "${p.name}": ${memsz} bytes is more than 16 MiB`);
  return { name: p.name, bytes, memsz, entry: USER_BASE };
}

/** The vDSO: `sysenter_call` saves ECX, EDX, EBP, puts the user stack in EBP and enters; SYSEXIT returns after it. */
export function assembleVdso(): Uint8Array {
  const a = new Assembler({ bits: 32, origin: VDSO_ADDR });
  a.push(ecx); a.push(edx); a.push(ebp);
  a.mov(ebp, esp);
  a.sysenter();
  const ret = a.here('sysenter_return');
  a.pop(ebp); a.pop(edx); a.pop(ecx);
  a.ret();
  const built = a.build();
  if (built.address(ret) !== VDSO_SYSENTER_RETURN || VDSO_SYSENTER !== VDSO_ADDR) throw new Error(`vDSO layout: sysenter_return at 0x${built.address(ret).toString(16)}`);
  return built.sections[0]!.bytes;
}
