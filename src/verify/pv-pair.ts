/**
 * Two virtlab kernels on one machine (docs/verification.md, "noninterference, kernel pairs"):
 * VM A runs a generated ring-3 program (user-program.ts) and VM B a *secret* one, each
 * under the real virtlab kernel in its own `Machine` with its own monitor — under `pv` two
 * paravirtualized domains, each with its own PvMonitor (memory, P2M, event channels, grant
 * table, back ends) — time-sliced by `runMultiVm` (world switches charged, TLB policies).
 *
 * VM B is one image for every secret: an interpreter (`vsec`) of an action table that sits in
 * its data section behind a magic string; a secret is written into a copy of the image
 * (`secretImage`), so no kernel is built per secret. The actions make B's kernel busy with
 * page-table work — mmap2, first touches (demand-zero faults: a frame and a set-pte, under
 * pv an mmu_update), munmap (unmap_range, lazy-MMU batches), fork + exit + waitpid
 * (copy-on-write copies, free_user) — or with computing, sleeping (blocked: under pv in
 * SCHEDOP_block) and storing data; B then spins, sleeps for ever, or exits (its kernel powers
 * off: B stops).
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { toMultibootElf } from '../guest/image-elf.js';
import { buildKernel } from '../guest/kernel/kernel.js';
import { SYS } from '../guest/kernel/layout.js';
import type { UserBuilder } from '../guest/kernel/user.js';
import type { Machine } from '../machine/machine.js';
import { prepareGuest } from '../trace/run-guest.js';
import { CLAIMS_TIMING_ISOLATION, runMultiVm, type Slice, type TlbPolicy, type Vm } from '../vmm/multi-vm.js';
import type { DomId } from '../vmm/pv/domain-context.js';
import { DOMID_SELF, EventChannels } from '../vmm/pv/event-channel.js';
import { PvMonitor } from '../vmm/pv/pv.js';
import { dword, eax, ebx, ecx, edi, edx, esi } from '../x86/index.js';
import { verifyProfile, type Config } from './run.js';
import { buildUserGuest, USER_GUEST_MIB, userDifference, type UserGuestProgram, type UserOutcome } from './user-program.js';

/** One action of VM B's secret program. */
export type SecretAction =
  | { op: 'mmap'; slot: number; pages: number }
  | { op: 'touch'; slot: number; page: number; value: number }
  | { op: 'munmap'; slot: number }
  | { op: 'fork' }
  | { op: 'compute'; n: number }
  | { op: 'sleep'; ticks: number }
  | { op: 'store'; off: number; value: number };

/** VM B's secret: its actions, then how it ends. */
export interface SecretProgram {
  readonly actions: readonly SecretAction[];
  readonly end: 'spin' | 'sleep' | 'exit';
  /**
   * pv only: B's kernel opens an interdomain event channel to itself (alloc_unbound +
   * bind_interdomain) after its first slice and sends on it after each of the next `channel`
   * slices (0 or absent: none). Issued by the harness through B's event channels (the
   * functions the event_channel_op hypercall reaches), since a ring-3 program has no way to.
   */
  readonly channel?: number;
}

const OPS = { mmap: 1, touch: 2, munmap: 3, fork: 4, compute: 5, sleep: 6, store: 7 } as const;
const ENDS = { spin: 0, sleep: 1, exit: 2 } as const;
/** Marks the action table in B's image. */
const MAGIC = 'VIRTLAB-SECRET-TABLE';
/** Actions a table holds. */
export const MAX_SECRET_ACTIONS = 32;
const SLOTS = 4;

/** The interpreter of B's actions (the init program `vsec`). */
function buildSecretInterpreter(u: UserBuilder): void {
  const a = u.a;
  const endw = a.label('vs_end'), table = a.label('vs_table'), slots = a.label('vs_slots'), pc = a.label('vs_pc'), sdata = a.label('vs_data');
  a.section('data');
  a.align(4);
  a.ascii(MAGIC);
  a.bind(endw); a.dd(0);
  a.bind(table); a.zero(MAX_SECRET_ACTIONS * 16 + 16);
  // slots[4] (addresses), then lens[4] (pages), 16 bytes further.
  a.bind(slots); a.zero(2 * SLOTS * 4);
  a.bind(pc); a.dd(0);
  a.bind(sdata); a.zero(1024);
  a.section('text');
  const top = a.label(), end = a.label(), doMmap = a.label(), doTouch = a.label(), doMunmap = a.label(), doFork = a.label();
  const doCompute = a.label(), doSleep = a.label(), doStore = a.label();
  a.mov(dword(pc), table);
  a.bind(top);
  a.mov(esi, dword(pc));
  a.mov(eax, dword(esi));
  a.add(dword(pc), 16);
  for (const [op, l] of [[OPS.mmap, doMmap], [OPS.touch, doTouch], [OPS.munmap, doMunmap], [OPS.fork, doFork], [OPS.compute, doCompute], [OPS.sleep, doSleep], [OPS.store, doStore]] as const) {
    a.cmp(eax, op); a.je(l);
  }
  a.jmp(end);
  // edi = &slots[arg1 & 3]
  const slotPtr = (): void => { a.mov(edi, dword(esi, 4)); a.and(edi, SLOTS - 1); a.shl(edi, 2); a.add(edi, slots); };
  // mmap(slot, pages): slots[slot] = mmap2(0, pages * 4096, 3) (or -errno), lens[slot] = pages.
  a.bind(doMmap);
  slotPtr();
  a.mov(ecx, dword(esi, 8)); a.shl(ecx, 12); a.xor(ebx, ebx); a.mov(edx, 3); u.sys(SYS.mmap2);
  a.mov(dword(edi), eax); a.mov(ecx, dword(esi, 8)); a.mov(dword(edi, 16), ecx);
  a.jmp(top);
  // A valid slot holds a page-aligned, non-zero address (an error is -errno, not aligned).
  const validOrTop = (): void => { a.mov(eax, dword(edi)); a.test(eax, 0xfff); a.jnz(top); a.test(eax, eax); a.jz(top); };
  // touch(slot, page, value): *(slots[slot] + (page % lens[slot]) * 4096) = value.
  a.bind(doTouch);
  slotPtr(); validOrTop();
  a.mov(eax, dword(esi, 8)); a.xor(edx, edx); a.mov(ebx, dword(edi, 16)); a.emit('div', ebx);
  a.shl(edx, 12); a.add(edx, dword(edi)); a.mov(eax, dword(esi, 12)); a.mov(dword(edx), eax);
  a.jmp(top);
  // munmap(slot)
  a.bind(doMunmap);
  slotPtr(); validOrTop();
  a.mov(ebx, eax); a.mov(ecx, dword(edi, 16)); a.shl(ecx, 12); u.sys(SYS.munmap);
  a.mov(dword(edi), 0);
  a.jmp(top);
  // fork: the child exits at once; the parent waits for it.
  a.bind(doFork);
  u.sys(SYS.fork);
  const parent = a.label();
  a.test(eax, eax); a.jnz(parent);
  u.exit(0);
  a.bind(parent);
  a.js(top);
  a.mov(ebx, -1); a.xor(ecx, ecx); u.sys(SYS.waitpid);
  a.jmp(top);
  // compute(n): n * 64 multiply-adds.
  a.bind(doCompute);
  a.mov(ecx, dword(esi, 4)); a.shl(ecx, 6); a.mov(eax, 0x9e3779b1 | 0);
  const c = a.here(); a.imul(eax, eax); a.add(eax, ecx); a.dec(ecx); a.jnz(c);
  a.mov(dword(sdata), eax);
  a.jmp(top);
  // sleep(ticks): blocked in the kernel (its idle loop halts: under pv, SCHEDOP_block).
  a.bind(doSleep);
  a.mov(ebx, dword(esi, 4)); u.sys(SYS.nanosleep);
  a.jmp(top);
  // store(off, value) in B's data.
  a.bind(doStore);
  a.mov(edi, dword(esi, 4)); a.and(edi, 0x3fc); a.add(edi, sdata); a.mov(eax, dword(esi, 8)); a.mov(dword(edi), eax);
  a.jmp(top);
  // The end: spin, sleep for ever, or exit (the kernel then powers the machine off).
  a.bind(end);
  const sleepLoop = a.label(), exit = a.label();
  a.mov(eax, dword(endw)); a.cmp(eax, ENDS.sleep); a.je(sleepLoop); a.cmp(eax, ENDS.exit); a.je(exit);
  const spin = a.here(); a.jmp(spin);
  a.bind(sleepLoop); a.mov(ebx, 1); u.sys(SYS.nanosleep); a.jmp(sleepLoop);
  a.bind(exit); u.exit(0);
}

let interpreterImage: { bytes: Uint8Array; at: number } | null = null;

/** B's image with an empty table (built once), and where its table starts. */
function interpreter(): { bytes: Uint8Array; at: number } {
  if (interpreterImage === null) {
    const bytes = toMultibootElf(buildKernel({ init: 'vsec', hz: 100, banner: 'virtlab secret', programs: [{ name: 'vsec', build: buildSecretInterpreter }] }));
    const magic = Buffer.from(MAGIC, 'latin1');
    const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).indexOf(magic);
    if (at < 0 || Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).indexOf(magic, at + 1) >= 0) throw new Error('pv-pair: the secret table marker is not unique in the interpreter image');
    interpreterImage = { bytes, at: at + magic.length };
  }
  return interpreterImage;
}

/** VM B's image for `s`: the interpreter with `s` written into its table. */
export function secretImage(s: SecretProgram): Uint8Array {
  if (s.actions.length > MAX_SECRET_ACTIONS) throw new RangeError(`pv-pair: a secret has at most ${MAX_SECRET_ACTIONS} actions, got ${s.actions.length}`);
  const { bytes, at } = interpreter();
  const out = bytes.slice();
  const dv = new DataView(out.buffer, out.byteOffset + at);
  dv.setUint32(0, ENDS[s.end], true);
  s.actions.forEach((x, i) => {
    const w = [OPS[x.op], 0, 0, 0];
    switch (x.op) {
      case 'mmap': w[1] = x.slot; w[2] = Math.max(1, x.pages); break;
      case 'touch': w[1] = x.slot; w[2] = x.page; w[3] = x.value; break;
      case 'munmap': w[1] = x.slot; break;
      case 'fork': break;
      case 'compute': w[1] = x.n; break;
      case 'sleep': w[1] = x.ticks; break;
      case 'store': w[1] = x.off; w[2] = x.value; break;
    }
    w.forEach((v, j) => dv.setUint32(4 + i * 16 + j * 4, v >>> 0, true));
  });
  return out;
}

/** A generated secret: page-table work most of the time, computing, sleeping and data too. */
export const secretKernelProgram = (): fc.Arbitrary<SecretProgram> => {
  const slot = fc.integer({ min: 0, max: SLOTS - 1 });
  const action: fc.Arbitrary<SecretAction> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('mmap' as const), slot, pages: fc.integer({ min: 1, max: 16 }) }) },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('touch' as const), slot, page: fc.integer({ min: 0, max: 15 }), value: fc.integer() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('munmap' as const), slot }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('fork' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('compute' as const), n: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('sleep' as const), ticks: fc.integer({ min: 1, max: 2 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('store' as const), off: fc.integer({ min: 0, max: 255 }).map((w) => w * 4), value: fc.integer() }) },
  );
  return fc.record({ actions: fc.array(action, { maxLength: 12 }), end: fc.constantFrom('spin' as const, 'sleep' as const, 'exit' as const), channel: fc.integer({ min: 0, max: 3 }) });
};

/**
 * A generated schedule for `vms` VMs: 1..4 slices (each VM at least once, in a generated
 * order), lengths around a generated base so that no VM gets more than a few times another's
 * share (VM A must finish in a bounded number of B's instructions). Independent of any secret.
 */
export const scheduleArb = (vms: number, bases: readonly number[]): fc.Arbitrary<Slice[]> =>
  fc.record({
    base: fc.constantFrom(...bases),
    extra: fc.array(fc.record({ vm: fc.integer({ min: 0, max: vms - 1 }), k: fc.integer({ min: 1, max: 8 }) }), { maxLength: 3 }),
    order: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: vms, maxLength: vms }),
    first: fc.integer({ min: 0, max: vms - 1 }),
  }).map(({ base, extra, order, first }) => {
    // Every VM once (rotated to start at `first`), then the extra slices; lengths base*k/4.
    const s: Slice[] = order.map((k, j) => ({ vm: (j + first) % vms, instructions: Math.max(1, Math.round((base * k) / 4)) }));
    for (const e of extra) s.push({ vm: e.vm, instructions: Math.max(1, Math.round((base * e.k) / 4)) });
    return s;
  });

/** The kernel-pair configurations: every mode (two virtlab kernels). */
export const PAIR_CONFIGS: readonly Config[] = ['pv', 'native', 'trap', 'full', 'hw-nested', 'hw-shadow'];

/** What VM A shows after a pair run. */
export interface PairOutcome {
  readonly user: UserOutcome;
  /** SHA-256 of A's guest RAM (16 hex digits). */
  readonly ram: string;
  readonly cycles: number;
  readonly instructions: number;
  readonly machine: Machine;
  /** World switches, idle slices, B's exit. */
  readonly switches: number;
  readonly idleSlices: number;
  readonly bExit: string;
}

/** Prepares one kernel VM under `config` (the `virtlab exec` path, not yet run). */
export function prepareKernelVm(bytes: Uint8Array, config: Config, path: string): Vm {
  const mode = (config.startsWith('hw') ? 'hw' : config) as never;
  const g = prepareGuest({
    image: { bytes, path }, mode, modeOptions: config === 'hw-shadow' ? { paging: 'shadow' } : config === 'hw-nested' ? { paging: 'nested' } : undefined,
    profile: verifyProfile(), memoryMiB: USER_GUEST_MIB,
  });
  return { machine: g.machine, monitor: g.monitor };
}

function exitOf(m: Machine): { exit: string; initExit: number | null; status: number } {
  const e = m.outcome().exit;
  const exit = e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${'detail' in e ? e.detail : ''}`;
  return { exit, initExit: e.reason === 'exit-device' ? (e.code - 1) / 2 : null, status: e.reason === 'exit-device' ? 0 : 1 };
}

/** Scheduled-instruction budget of a pair run (A needs about 180 000 of its own). */
export const PAIR_BUDGET = 12_000_000;

/**
 * Under pv: A is domain 1, B domain 2, their event channels connected (either may name the
 * other); B's `channel` steps run after its slices. Elsewhere: nothing (no event channels).
 */
function channelHook(va: Vm, vb: Vm, b: SecretProgram): ((vm: number) => void) | undefined {
  if (!(va.monitor instanceof PvMonitor) || !(vb.monitor instanceof PvMonitor)) return undefined;
  va.monitor.domid = 1 as DomId; vb.monitor.domid = 2 as DomId;
  const ev = vb.monitor.drivers.events;
  EventChannels.connectDomains([va.monitor.drivers.events, ev]);
  const sends = b.channel ?? 0;
  if (sends <= 0) return undefined;
  let step = 0, port = -1;
  return (vm) => {
    if (vm !== 1 || step > sends || vb.machine.cpu.stopReason !== null) return;
    if (step === 0) {
      const u = ev.allocUnbound(DOMID_SELF, DOMID_SELF);
      port = u > 0 ? ev.bindInterdomain(DOMID_SELF, u) : -1;
    } else if (port > 0) ev.send(port);
    step++;
  };
}

/** Runs A (image) beside B (secret) under `config`; A's outcome. */
export function runKernelPair(aImage: Uint8Array, b: SecretProgram, config: Config, policy: TlbPolicy, schedule: readonly Slice[]): PairOutcome {
  const va = prepareKernelVm(aImage, config, 'vm-a.elf'), vb = prepareKernelVm(secretImage(b), config, 'vm-b.elf');
  const afterSlice = channelHook(va, vb, b);
  const r = runMultiVm([va, vb], { schedule, tlb: policy, stopped: 'idle', profile: verifyProfile().profile, maxInstructions: PAIR_BUDGET, stopWhen: 0, afterSlice });
  const m = va.machine, e = exitOf(m);
  const ram = createHash('sha256').update(m.mem.u8.subarray(0, m.mem.guestSize)).update(sharedInfo(m)).digest('hex').slice(0, 16);
  return {
    user: { console: m.console.text(), status: e.status, exit: e.exit, initExit: e.initExit }, ram, cycles: m.cpu.cycles, instructions: m.cpu.instructions,
    machine: m, switches: r.switches, idleSlices: r.idleSlices, bExit: exitOf(vb.machine).exit,
  };
}

/**
 * A pv domain's shared_info page (its event bitmaps, vcpu_info, time): guest-visible memory of
 * the domain that lives above guest RAM, in the hypervisor's frames; empty for other modes.
 */
function sharedInfo(m: Machine): Uint8Array {
  const mon = m.cpu.monitor;
  if (!(mon instanceof PvMonitor)) return new Uint8Array(0);
  const at = (mon.sharedInfoMfn as number) * 4096;
  return m.mem.u8.subarray(at, at + 4096);
}

/**
 * The first 32-bit word where two machines' guest RAM (and, under pv, shared_info) differs:
 * `0xADDR: a vs b` (`shared_info+0xOFF: ...`), or null.
 */
export function ramDifference(a: Machine, b: Machine): string | null {
  const x = a.mem.u8, y = b.mem.u8, n = Math.min(a.mem.guestSize, b.mem.guestSize);
  if (Buffer.compare(x.subarray(0, n), y.subarray(0, n)) !== 0) {
    for (let i = 0; i < n; i += 4) {
      const u = a.mem.read32(i) >>> 0, v = b.mem.read32(i) >>> 0;
      if (u !== v) return `0x${i.toString(16)}: 0x${u.toString(16)} vs 0x${v.toString(16)}`;
    }
  }
  const sa = sharedInfo(a), sb = sharedInfo(b);
  for (let i = 0; i + 4 <= Math.min(sa.length, sb.length); i += 4) {
    const u = new DataView(sa.buffer, sa.byteOffset + i, 4).getUint32(0, true), v = new DataView(sb.buffer, sb.byteOffset + i, 4).getUint32(0, true);
    if (u !== v) return `shared_info+0x${i.toString(16)}: 0x${u.toString(16)} vs 0x${v.toString(16)}`;
  }
  return null;
}

/** A kernel-pair noninterference case. */
export interface KernelPairCase {
  readonly a: UserGuestProgram;
  readonly b0: SecretProgram;
  readonly b1: SecretProgram;
  readonly policy: TlbPolicy;
  readonly schedule: readonly Slice[];
}

/** The verdict on one case under one configuration. */
export interface PairVerdict {
  /** A failure (A's observation depends on B's secret where it must not), or null. */
  readonly failure: string | null;
  /** Differences the policy does not claim to prevent (timing, and what A's kernel derives from time). */
  readonly channel: string | null;
  readonly r0: PairOutcome;
  readonly r1: PairOutcome;
}

/**
 * Runs A beside B0 and beside B1 and compares what A sees: its console and exit always; its
 * guest RAM and cycles where the policy claims timing isolation. Under a policy that does not
 * (`tagged-shared`), a difference in A's cycles — and in its RAM, since A's kernel counts
 * timer ticks, which come at A's cycle counts — is the timing channel, reported, not failed.
 * A's run must also finish cleanly (init exits 0 after its dump line): a pair that crashed A
 * the same way twice would otherwise pass.
 */
export function checkKernelPair(k: KernelPairCase, config: Config, aImage?: Uint8Array): PairVerdict {
  const img = aImage ?? buildUserGuest(k.a);
  const r0 = runKernelPair(img, k.b0, config, k.policy, k.schedule), r1 = runKernelPair(img, k.b1, config, k.policy, k.schedule);
  const where = `${config}, ${k.policy}`;
  let failure: string | null = null, channel: string | null = null;
  if (r0.user.initExit !== 0 || !/ sum=\d+\n$/.test(r0.user.console)) failure = `${where}: VM A did not finish cleanly beside B0: ${r0.user.exit}, console ${JSON.stringify(r0.user.console.slice(-160))}`;
  const d = userDifference(r0.user, r1.user);
  if (failure === null && d !== null) failure = `${where}: VM A's output depends on VM B's secret: ${d}`;
  if (failure === null && (r0.ram !== r1.ram || r0.cycles !== r1.cycles)) {
    const what = r0.ram !== r1.ram ? `VM A's RAM differs at ${ramDifference(r0.machine, r1.machine)} (cycles ${r0.cycles} vs ${r1.cycles})` : `VM A's cycles ${r0.cycles} vs ${r1.cycles}`;
    if (CLAIMS_TIMING_ISOLATION[k.policy]) failure = `${where} (claims timing isolation): ${what}`;
    else channel = `${where}: ${what}`;
  }
  return { failure, channel, r0, r1 };
}
