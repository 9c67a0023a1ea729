/**
 * The user-side runtime the workloads share: a 32-bit FNV-1a-style checksum accumulator,
 * RDTSC timing accumulated in 64 bits, and the two report lines every workload prints:
 *
 *   bench: name=<op> ops=<n> cycles=<total> cycles_per_op=<total / n>
 *   checksum: 0x<8 hex digits>
 *
 * The checksum covers results only (values computed, returned or read), never cycle counts,
 * so it is the same in every execution mode; cycles are reported beside it.
 */
import { eax, ebx, ecx, dl, edx, edi, esi, esp, byte, dword, type Label, type Reg } from '../../x86/operands.js';
import { SYS } from '../kernel/layout.js';
import type { UserBuilder } from '../kernel/user.js';

/** FNV-1a 32-bit offset basis and prime: the checksum is fnv-style over 32-bit words. */
export const CK_BASIS = 0x811c9dc5;
export const CK_PRIME = 16777619;

/** The checksum step, in TypeScript: ck' = (ck ^ v) * prime mod 2^32. */
export function ckMix(ck: number, v: number): number {
  return Math.imul((ck ^ v) >>> 0, CK_PRIME) >>> 0;
}

/** Checksum of a sequence of 32-bit words. */
export function ckOf(values: readonly number[]): number {
  let ck = CK_BASIS;
  for (const v of values) ck = ckMix(ck, v);
  return ck;
}

/** A workload program under construction: the UserBuilder plus the shared runtime. */
export class Wl {
  readonly a: UserBuilder['a'];
  private readonly ck: Label;
  private readonly t0: Label;
  private readonly tot: Label;
  private readonly routines = new Map<string, Label>();
  private vars = 0;

  constructor(readonly u: UserBuilder) {
    this.a = u.a;
    this.ck = this.data('wl_ck', CK_BASIS);
    this.t0 = this.data('wl_t0', 0, 0);
    this.tot = this.data('wl_tot', 0, 0);
  }

  /** A dword variable (or several) in the data section. */
  data(name: string | null, ...values: number[]): Label {
    const a = this.a;
    const l = a.label(name ?? `wl_var${this.vars++}`);
    const cur = a.currentSection;
    a.section('data'); a.align(4); a.bind(l); a.dd(...(values.length > 0 ? values : [0])); a.section(cur);
    return l;
  }

  /** `bytes` of zeroed, page-aligned storage in bss. */
  bss(name: string, bytes: number): Label {
    const a = this.a;
    const l = a.label(name);
    const cur = a.currentSection;
    a.section('bss'); a.align(4096); a.bind(l); a.reserve(bytes); a.section(cur);
    return l;
  }

  /** A constant NUL-terminated string in rodata. */
  str(text: string): Label {
    const a = this.a;
    const l = a.label();
    const cur = a.currentSection;
    a.section('rodata'); a.bind(l); a.asciz(text); a.section(cur);
    return l;
  }

  /** ck = (ck ^ reg) * prime. All registers preserved. */
  mix(reg: Reg): void {
    const a = this.a;
    a.xor(dword(this.ck), reg);
    a.push(eax);
    a.mov(eax, dword(this.ck));
    a.imul(eax, eax, CK_PRIME);
    a.mov(dword(this.ck), eax);
    a.pop(eax);
  }

  /** Mixes a constant. */
  mixConst(v: number): void {
    this.a.push(eax); this.a.mov(eax, v); this.mix(eax); this.a.pop(eax);
  }

  /** Starts a timed interval (clobbers EAX, EDX). */
  tscStart(): void {
    const a = this.a;
    a.rdtsc();
    a.mov(dword(this.t0), eax);
    a.mov(dword(this.t0.plus(4)), edx);
  }

  /** Ends a timed interval, adding it to the total (clobbers EAX, EDX). */
  tscStop(): void {
    const a = this.a;
    a.rdtsc();
    a.sub(eax, dword(this.t0));
    a.sbb(edx, dword(this.t0.plus(4)));
    this.addCycles();
  }

  /** Adds EDX:EAX to the cycle total. */
  addCycles(): void {
    this.a.add(dword(this.tot), eax);
    this.a.adc(dword(this.tot.plus(4)), edx);
  }

  /** Prints `bench: name=… ops=… cycles=… cycles_per_op=…` from the total; `ops` a constant or a dword variable. */
  report(name: string, ops: number | Label): void {
    const a = this.a, u = this.u;
    a.push(eax); a.push(edx); a.push(ecx);
    u.print(`bench: name=${name} ops=`);
    if (typeof ops === 'number') a.mov(ecx, ops); else a.mov(ecx, dword(ops));
    a.mov(eax, ecx); a.xor(edx, edx); a.call(this.routine('print_u64'));
    u.print(' cycles=');
    a.mov(eax, dword(this.tot)); a.mov(edx, dword(this.tot.plus(4)));
    a.call(this.routine('print_u64'));
    u.print(' cycles_per_op=');
    // 64-by-32 division in two steps (no #DE whatever the total).
    a.push(esi);
    a.mov(esi, eax);
    a.mov(eax, edx); a.xor(edx, edx); a.div(ecx);
    a.push(eax);
    a.mov(eax, esi); a.div(ecx);
    a.pop(edx);
    a.pop(esi);
    a.call(this.routine('print_u64'));
    u.print('\n');
    a.pop(ecx); a.pop(edx); a.pop(eax);
  }

  /** Resets the cycle total (for a second timed phase). */
  resetCycles(): void {
    this.a.mov(dword(this.tot), 0);
    this.a.mov(dword(this.tot.plus(4)), 0);
  }

  /** Prints `checksum: 0x…` and exits 0. */
  finishOk(): void {
    const a = this.a, u = this.u;
    u.print('checksum: 0x');
    a.mov(eax, dword(this.ck));
    a.call(this.routine('print_hex'));
    u.print('\n');
    u.exit(0);
  }

  /** Prints `<what>: failed <EAX as a signed decimal>` and exits 1 (a workload that went wrong). */
  fail(what: string): void {
    const a = this.a, u = this.u;
    u.print(`${what}: failed (`);
    a.neg(eax);
    u.print('-'); u.printDec();
    u.print(')\n');
    u.exit(1);
  }

  /** Jumps to a failure report when EAX is negative. */
  checkResult(what: string): void {
    const a = this.a;
    const ok = a.label();
    a.test(eax, eax); a.jns(ok);
    this.fail(what);
    a.bind(ok);
  }

  /** A runtime routine, emitted once by `finish`. */
  routine(name: 'print_u64' | 'print_hex'): Label {
    let l = this.routines.get(name);
    if (!l) { l = this.a.label(`wl_${name}`); this.routines.set(name, l); }
    return l;
  }

  /** Emits the routines used (call after the program's last instruction). */
  finish(): void {
    const a = this.a, u = this.u;
    const hex = this.routines.get('print_hex');
    if (hex) {
      // print_hex(eax): 8 digits, all registers preserved.
      a.bind(hex);
      a.pusha();
      a.sub(esp, 8);
      a.mov(ecx, 8);
      const loop = a.here();
      a.mov(edx, eax); a.and(edx, 15);
      a.mov(dl, byte({ base: edx, disp: this.hexDigits() }));
      a.mov(byte({ base: esp, index: ecx, scale: 1, disp: -1 }), dl);
      a.shr(eax, 4);
      a.dec(ecx); a.jnz(loop);
      a.mov(ebx, 1); a.mov(ecx, esp); a.mov(edx, 8);
      u.sys(SYS.write);
      a.add(esp, 8);
      a.popa();
      a.ret();
    }
    const dec = this.routines.get('print_u64');
    if (dec) {
      // print_u64(edx:eax): unsigned decimal, all registers preserved.
      a.bind(dec);
      a.pusha();
      a.sub(esp, 24);
      a.lea(edi, dword(esp, 24));
      a.mov(ecx, 10);
      const loop = a.here();
      a.mov(esi, eax); // low
      a.mov(eax, edx); a.xor(edx, edx); a.div(ecx); // high / 10
      a.mov(ebx, eax);
      a.mov(eax, esi); a.div(ecx); // (rem:low) / 10
      a.add(dl, 0x30);
      a.dec(edi);
      a.mov(byte(edi), dl);
      a.mov(edx, ebx);
      a.mov(esi, eax); a.or(esi, edx);
      a.jnz(loop);
      a.mov(ecx, edi);
      a.lea(edx, dword(esp, 24)); a.sub(edx, edi);
      a.mov(ebx, 1);
      u.sys(SYS.write);
      a.add(esp, 24);
      a.popa();
      a.ret();
    }
  }

  private hexLabel: Label | null = null;
  private hexDigits(): Label {
    if (!this.hexLabel) this.hexLabel = this.str('0123456789abcdef');
    return this.hexLabel;
  }
}
