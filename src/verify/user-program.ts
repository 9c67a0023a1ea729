/**
 * The verifier's second harness (docs/verification.md, "user-equivalence"): a generated
 * instruction list (the same `Ins` the flat harness takes, arbitraries.ts) run as a USER
 * program (ring 3) under the real virtlab kernel, so that every mode, `pv` included, runs the
 * same image. The program's init prints its registers, arithmetic flags and a checksum of its
 * data area in decimal, then exits; the outcome is the console bytes and the exit status.
 *
 * Only instructions meaningful in ring 3 are emitted: ALU, data movement, loops, stack, and
 * the unprivileged sensitive ones (PUSHF/POPF, SGDT/SIDT/SLDT/STR/SMSW, LAR/LSL/VERR/VERW,
 * MOV from a segment register, PUSH CS/SS/DS). Port output, CLI/STI, MOV from CRn and RET far
 * to ring 0 would fault (#GP kills the process), so `emitUserItem` refuses them.
 */
import fc from 'fast-check';
import { toMultibootElf } from '../guest/image-elf.js';
import { buildKernel } from '../guest/kernel/kernel.js';
import type { UserBuilder } from '../guest/kernel/user.js';
import { USER_BASE } from '../guest/kernel/layout.js';
import { disassemble } from '../machine/disassemble.js';
import { runGuest } from '../trace/run-guest.js';
import { Assembler, ah, al, ax, bp, bx, byte, cs, cx, di, ds, dword, dx, eax, ebp, ebx, ecx, edi, edx, esi, esp, fword, si, ss, word, type Label, type Reg } from '../x86/index.js';
import { plainInstruction, registers, systemInstruction } from './arbitraries.js';
import { emitRegisterOp, REGS, type Ins, type RegName } from './guest-program.js';
import { verifyProfile, type Config } from './run.js';

/** A generated user program: initial registers and instructions (JSON, replayable). */
export interface UserGuestProgram {
  readonly regs: readonly number[];
  readonly items: readonly Ins[];
}

const REG: Record<RegName, Reg> = { eax, ecx, edx, ebx, ebp, esi, edi };
const REG16: Record<RegName, Reg> = { eax: ax, ecx: cx, edx: dx, ebx: bx, ebp: bp, esi: si, edi: di };
const SEG = { cs, ss, ds } as const;

/** Ops of `Ins` that fault in ring 3 (privileged, or port I/O at IOPL 0, or RET far to ring 0). */
export const RING0_ONLY_OPS: ReadonlySet<string> = new Set(['out', 'cli', 'sti', 'crread', 'farret', 'farcall', 'farjmp', 'int', 'popseg', 'ring3']);

/** Bytes of the program's data area (loads, stores, SGDT/SIDT targets), checksummed at the end. */
export const USER_DATA_BYTES = 0x1000;

/** Labels of a user program's data: the data area, loop counters, the register save area. */
interface UserLabels { readonly data: Label; readonly ctr: Label }

/** Emits one instruction in ring-3 form (addresses relative to the program's data area). */
function emitUserItem(a: Assembler, it: Ins, l: UserLabels, depth: number): void {
  const D = (off: number): number => off & 0xffc;
  switch (it.op) {
    case 'alu': case 'alui': case 'movi': case 'shift': case 'unary': case 'imul': emitRegisterOp(a, it); break;
    case 'load': a.mov(REG[it.d], dword(l.data.plus(D(it.off)))); break;
    case 'store': a.mov(dword(l.data.plus(D(it.off))), REG[it.s]); break;
    case 'pushpop': a.push(REG[it.s]); a.pop(REG[it.d]); break;
    case 'pushf': a.pushf(); a.pop(REG[it.d]); break;
    // TF and RF kept clear, as in the flat harness.
    case 'popf': a.push(it.imm & ~0x10100); a.popf(); break;
    case 'sgdt': a.sgdt(fword(l.data.plus(Math.min(D(it.off), 0xff8)))); break;
    case 'sidt': a.sidt(fword(l.data.plus(Math.min(D(it.off), 0xff8)))); break;
    case 'sldt': a.sldt(REG[it.d]); break;
    case 'str': a.str(REG[it.d]); break;
    case 'smsw': a.smsw(REG[it.d]); break;
    case 'lar': case 'lsl': a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG[it.d], REG[it.d]); break;
    case 'verr': case 'verw': a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG16[it.d]); break;
    case 'movsreg':
      if (it.off === undefined) a.emit('mov', REG[it.d], SEG[it.seg]);
      else a.emit('mov', word(l.data.plus(D(it.off))), SEG[it.seg]);
      break;
    case 'pushseg': a.push(SEG[it.seg]); a.pop(REG[it.d]); break;
    case 'loop': {
      // The counter is outside the data area (stores cannot reach it), so every loop ends.
      const ctr = dword(l.ctr.plus(4 * depth));
      a.mov(ctr, Math.max(1, it.n | 0));
      const top = a.here();
      for (const b of it.body) {
        if (b.op === 'pte' || b.op === 'cr3' || b.op === 'rd' || b.op === 'wr' || b.op === 'port' || b.op === 'dma') throw new RangeError(`user program: kernel-level action "${b.op}" inside a loop`);
        emitUserItem(a, b, l, depth + 1);
      }
      a.dec(ctr);
      a.jnz(top);
      break;
    }
    default:
      throw new RangeError(`user program: "${it.op}" faults in ring 3 (not emitted; see RING0_ONLY_OPS)`);
  }
}

/** Labels printed before each value (EAX…EDI, ESP, flags, checksum). */
const PRINTED = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'flags', 'sum'] as const;

/** The init program's body: initial registers, the items, the dump (printDec of every value), exit 0. */
export function buildUserProgram(p: UserGuestProgram, u: UserBuilder): void {
  const a = u.a;
  const l: UserLabels = { data: a.label('vdata'), ctr: a.label('vctr') };
  const save = a.label('vsave');
  // Data area: a fixed, non-zero pattern so loads read something (a Weyl sequence).
  a.section('data');
  a.align(4);
  a.bind(l.data);
  for (let i = 0; i < USER_DATA_BYTES / 4; i++) a.dd((Math.imul(i + 1, 0x9e3779b1) >>> 0) | 0);
  a.bind(l.ctr); a.zero(16);
  a.bind(save); a.zero(4 * PRINTED.length);
  a.section('text');
  REGS.forEach((r, i) => a.mov(REG[r], (p.regs[i] ?? 0) | 0));
  for (const it of p.items) emitUserItem(a, it, l, 0);
  // Save registers, then the arithmetic flags with LAHF and SETO (no PUSHF: the harness adds no sensitive instruction).
  [eax, ecx, edx, ebx, esp, ebp, esi, edi].forEach((r, i) => a.mov(dword(save.plus(4 * i)), r));
  a.lahf(); a.mov(byte(save.plus(32)), ah);
  a.emit('seto', al); a.mov(byte(save.plus(33)), al);
  // Checksum of the data area: sum = rol(sum, 5) ^ word.
  a.xor(eax, eax); a.mov(esi, l.data); a.mov(ecx, USER_DATA_BYTES / 4);
  const top = a.here();
  a.rol(eax, 5); a.xor(eax, dword(esi)); a.add(esi, 4);
  a.dec(ecx); a.jnz(top);
  a.mov(dword(save.plus(36)), eax);
  for (let i = 0; i < PRINTED.length; i++) {
    u.print(`${i === 0 ? '' : ' '}${PRINTED[i]}=`);
    a.mov(eax, dword(save.plus(4 * i)));
    u.printDec();
  }
  u.print('\n');
  u.exit(0);
}

/** The kernel image (Multiboot ELF) whose init runs `p` in ring 3. */
export function buildUserGuest(p: UserGuestProgram): Uint8Array {
  return toMultibootElf(buildKernel({
    init: 'vgen', hz: 100, banner: 'virtlab verify',
    programs: [{ name: 'vgen', build: (u) => buildUserProgram(p, u) }],
  }));
}

/** Configurations user-equivalence runs: every mode, `pv` included. */
export const USER_CONFIGS: readonly Config[] = ['native', 'full', 'hw-nested', 'hw-shadow', 'pv', 'trap'];

/** A user program's outcome: the console bytes and the exit status. */
export interface UserOutcome {
  readonly console: string;
  readonly status: number;
  /** The run's exit in one line (reason and code, or the message of a run that did not exit). */
  readonly exit: string;
  /** init's exit code (the kernel writes code * 2 + 1 to port 0xF4), null if it did not exit. */
  readonly initExit: number | null;
}

/** Memory of the kernel's machine (MiB): enough for the kernel, small enough to boot fast. */
export const USER_GUEST_MIB = 16;

/** Runs a built user guest under `config` (runGuest, the `virtlab exec` path). */
export function runUserGuest(image: Uint8Array, config: Config, maxInstructions = 20_000_000): UserOutcome {
  const mode = (config.startsWith('hw') ? 'hw' : config) as never;
  const r = runGuest({
    image: { bytes: image, path: 'verify-user-guest.elf' },
    mode, modeOptions: config === 'hw-shadow' ? { paging: 'shadow' } : config === 'hw-nested' ? { paging: 'nested' } : undefined,
    profile: verifyProfile(), memoryMiB: USER_GUEST_MIB, maxInstructions,
  });
  const e = r.outcome.exit;
  const exit = e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${r.message ?? ''}`;
  return { console: r.machine.console.text(), status: r.status, exit, initExit: e.reason === 'exit-device' ? (e.code - 1) / 2 : null };
}

/** The first difference between two outcomes, or null. */
export function userDifference(a: UserOutcome, b: UserOutcome): string | null {
  if (a.status !== b.status || a.exit !== b.exit) return `exit: ${a.exit} (status ${a.status}) vs ${b.exit} (status ${b.status})`;
  if (a.console === b.console) return null;
  // The first differing console line, which names the value (eax=..., flags=..., sum=...).
  const la = a.console.split('\n'), lb = b.console.split('\n');
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] === lb[i]) continue;
    const wa = (la[i] ?? '').split(' '), wb = (lb[i] ?? '').split(' ');
    const diff = wa.map((w, j) => (w !== wb[j] ? `${w} vs ${wb[j] ?? '(none)'}` : null)).filter((x) => x !== null);
    return `console line ${i + 1}: ${diff.length > 0 ? diff.join(', ') : `${JSON.stringify(la[i])} vs ${JSON.stringify(lb[i])}`}`;
  }
  return 'console differs';
}

/**
 * Runs `p` natively and under each config; the first difference (`native vs C: ...`), or null.
 * With `requireClean`, a native run that does not print its dump and exit 0 is a failure too
 * (so a harness that crashes the same way everywhere cannot pass vacuously).
 */
export function userEquivalenceCheck(p: UserGuestProgram, configs: readonly Config[], requireClean = false): string | null {
  const image = buildUserGuest(p);
  const ref = runUserGuest(image, 'native');
  if (requireClean && (ref.initExit !== 0 || !/ sum=\d+\n$/.test(ref.console))) return `native run did not finish cleanly: ${ref.exit} (status ${ref.status}), console ${JSON.stringify(ref.console.slice(-200))}`;
  for (const c of configs) {
    if (c === 'native') continue;
    const d = userDifference(ref, runUserGuest(image, c));
    if (d !== null) return `native vs ${c}: ${d}`;
  }
  return null;
}

/** Instructions meaningful in ring 3 without the sensitive ones (port output left out). */
export const userPlainInstruction = (): fc.Arbitrary<Ins> => plainInstruction().filter((i) => !RING0_ONLY_OPS.has(i.op));

/** The sensitive unprivileged instructions the user harness takes (`exclude` as systemInstruction's). */
export const userSensitiveInstruction = (exclude: ReadonlySet<string> = new Set()): fc.Arbitrary<Ins> | null => {
  const sys = systemInstruction(new Set([...exclude, ...RING0_ONLY_OPS]));
  // Selector probes over the kernel's own GDT (selectors 0..0x3f, every RPL): PROBE_SELECTORS
  // are the flat harness's GDT, and a random 16-bit selector rarely hits a descriptor.
  const probes = (['lar', 'lsl', 'verr', 'verw'] as const).filter((op) => !exclude.has(op));
  if (probes.length === 0) return sys;
  const probe = fc.record({ op: fc.constantFrom(...probes), d: fc.constantFrom(...REGS), sel: fc.integer({ min: 0, max: 0x3f }) }) as fc.Arbitrary<Ins>;
  return sys === null ? probe : fc.oneof({ weight: 2, arbitrary: sys }, { weight: 1, arbitrary: probe });
};

/** User programs: plain instructions and loops; with `sensitiveWeight` > 0, sensitive ones too. */
export const userProgram = (options: { maxLength?: number; sensitiveWeight?: number; exclude?: ReadonlySet<string> } = {}): fc.Arbitrary<UserGuestProgram> => {
  const loop = fc.record({ op: fc.constant('loop' as const), n: fc.integer({ min: 1, max: 4 }), body: fc.array(userPlainInstruction(), { minLength: 1, maxLength: 4 }) });
  const sens = (options.sensitiveWeight ?? 0) > 0 ? userSensitiveInstruction(options.exclude) : null;
  const ins: fc.Arbitrary<Ins> = sens === null
    ? fc.oneof({ weight: 6, arbitrary: userPlainInstruction() }, { weight: 1, arbitrary: loop as fc.Arbitrary<Ins> })
    : fc.oneof({ weight: 6, arbitrary: userPlainInstruction() }, { weight: options.sensitiveWeight!, arbitrary: sens }, { weight: 1, arbitrary: loop as fc.Arbitrary<Ins> });
  return fc.record({ regs: registers(), items: fc.array(ins, { minLength: 1, maxLength: options.maxLength ?? 16 }) });
};

/** The items assembled alone in their ring-3 form and disassembled (at USER_BASE), one per line. */
export function userListing(items: readonly Ins[]): string[] {
  if (items.length === 0) return ['(no program: the harness alone shows it)'];
  const a = new Assembler({ bits: 32, origin: USER_BASE });
  a.section('text');
  const l: UserLabels = { data: a.label('vdata'), ctr: a.label('vctr') };
  for (const it of items) emitUserItem(a, it, l, 0);
  a.section('data', { kind: 'data' }); a.bind(l.data); a.zero(USER_DATA_BYTES); a.bind(l.ctr); a.zero(16);
  const bytes = a.build().sections.find((s) => s.name === 'text')?.bytes ?? new Uint8Array(0);
  const out: string[] = [];
  for (let off = 0; off < bytes.length;) {
    const d = disassemble(bytes.subarray(off, off + 15), USER_BASE + off, 32);
    if (d.length === 0) { out.push(`${(USER_BASE + off).toString(16)}: (invalid)`); break; }
    out.push(`${(USER_BASE + off).toString(16)}: ${d.text}`);
    off += d.length;
  }
  return out;
}
