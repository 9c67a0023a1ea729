/**
 * The `pv-isolation` property (issue 8; docs/verification.md): a paravirtualized domain is
 * booted (the virtlab kernel under `pv`, init asleep, the kernel idle in ring 1), then a
 * generated sequence of hostile and random kernel-level actions goes through the real
 * hypercall path (INT 0x82 offered to the monitor, as test/vmm/pv.test.ts does):
 * mmu_update with any frame and flag bits, mmuext_op, update_va_mapping, multicall batches,
 * grant_table_op, event_channel_op, and back-end grant mappings. Afterwards:
 *
 * - `DirectPaging.audit()` is empty (every type count equals the references held);
 * - no present entry of a typed page table maps a frame the domain does not own (shared_info
 *   excepted, as Xen allows), and no L2 entry names a non-table frame;
 * - no writable mapping (page-table entry or back-end grant mapping) of a typed page table;
 * - the hypervisor slots of every typed L2 hold the hypervisor's values;
 * - memory the domain does not own (the frames above guest RAM, the reserved top of guest
 *   RAM) is byte for byte unchanged — the domain's actions never write it;
 * - every refused call returned a Xen errno (grant operations: a GNTST status) and was counted
 *   as `attack.*`; a back-end grant mapping succeeded only for an entry granting domain 0;
 *   an EVTCHNOP_send set no pending bit other than its channel's peer (or itself, for an IPI).
 *
 * Frames are named symbolically ("l2", "l1#2", "hyp+5", "shared_info", ...) and resolved on
 * the booted domain, so a shrunk counterexample reads as hypercall names and arguments.
 */
import fc from 'fast-check';
import { buildKernel } from '../guest/kernel/kernel.js';
import { toMultibootElf } from '../guest/image-elf.js';
import { EAX, EBX, ECX, EDX, ESI } from '../machine/cpu/constants.js';
import { EventKind } from '../machine/cpu/interrupts.js';
import { Machine } from '../machine/machine.js';
import { createMonitor, monitorMemoryMiB } from '../vmm/index.js';
import { DOMID_SELF, HYPERCALL, MMUEXT } from '../vmm/pv/abi.js';
import { XEN_ERRNO, type Pfn } from '../vmm/pv/domain-context.js';
import { EVTCHNOP } from '../vmm/pv/event-channel.js';
import { GNTMAP, GNTST, GNTTABOP, GRANT_ENTRIES_PER_FRAME, GTF } from '../vmm/pv/grant-table.js';
import { FIRST_HYPERVISOR_SLOT, OWN_DOMAIN, OWN_NONE, OWN_SHARED, PT_L1, PT_L2 } from '../vmm/pv/mm.js';
import type { PvMonitor } from '../vmm/pv/pv.js';
import { SHARED_INFO, NR_EVENT_CHANNELS } from '../vmm/pv/shared-info.js';
import { ebx } from '../x86/operands.js';
import { verifyProfile } from './run.js';

/** A machine frame named by its role in the booted domain (resolved by `resolveFrame`). */
export type FrameRef =
  | { readonly k: 'l2' } // the running directory (pinned L2)
  | { readonly k: 'l1'; readonly i: number } // the i-th L1 linked from the running directory
  | { readonly k: 'shared_info' }
  | { readonly k: 'hyp'; readonly i: number } // the i-th frame above guest RAM (window, M2P, bootstrap tables, free)
  | { readonly k: 'reserved'; readonly i: number } // a frame of guest RAM the domain does not own
  | { readonly k: 'p2m'; readonly i: number } // a frame of the domain's P2M list (start_info.mfn_list)
  | { readonly k: 'pfn'; readonly i: number } // the domain's page i
  | { readonly k: 'grant'; readonly i: number } // the i-th grant-table frame (if set up)
  | { readonly k: 'raw'; readonly mfn: number };

type PtUpdate = { readonly op: 'mmu_update'; readonly table: FrameRef; readonly index: number; readonly frame: FrameRef; readonly flags: number };
type ExtOp = { readonly op: 'mmuext_op'; readonly cmd: 'pin_l1' | 'pin_l2' | 'unpin' | 'new_baseptr' | 'invlpg' | 'flush'; readonly frame: FrameRef };
type UvmOp = { readonly op: 'update_va_mapping'; readonly page: number; readonly frame: FrameRef; readonly flags: number; readonly uvmf: number };
type Batchable = PtUpdate | ExtOp | UvmOp;

/** One kernel-level action of the generated sequence. */
export type PvAction =
  | Batchable
  | { readonly op: 'multicall'; readonly calls: readonly Batchable[] }
  | { readonly op: 'grant_setup'; readonly frames: readonly FrameRef[] }
  | { readonly op: 'grant_entry'; readonly ref: number; readonly domid: number; readonly flags: number; readonly frame: FrameRef }
  | { readonly op: 'grant_map'; readonly ref: number; readonly readonly: boolean }
  | { readonly op: 'grant_unmap'; readonly handle: number }
  | { readonly op: 'backend_map'; readonly ref: number; readonly readonly: boolean }
  /** The guest grants a frame to domain 0 and the back end maps it (a front end/back end pair). */
  | { readonly op: 'backend_grant'; readonly ref: number; readonly domid: number; readonly flags: number; readonly frame: FrameRef; readonly readonly: boolean }
  | { readonly op: 'backend_unmap'; readonly handle: number }
  /** `port` -1: the port the last successful bind/alloc returned ("last"). */
  | { readonly op: 'evtchn'; readonly cmd: 'send' | 'close' | 'unmask' | 'bind_virq' | 'bind_ipi' | 'alloc_unbound' | 'bind_interdomain'; readonly port: number };

const KV = 0xc000_0000;
const PAGE = 4096;
const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/** A frame reference as text. */
export function frameText(f: FrameRef): string {
  switch (f.k) {
    case 'l2': case 'shared_info': return f.k;
    case 'raw': return hex(f.mfn);
    case 'hyp': return `hyp+${f.i}`;
    default: return `${f.k}#${f.i}`;
  }
}

const flagText = (fl: number): string => {
  const n = ['P', 'W', 'U', 'PWT', 'PCD', 'A', 'D', 'PS', 'G'].filter((_, i) => (fl & (1 << i)) !== 0);
  return n.length === 0 ? '0' : n.join('|') + ((fl & ~0x1ff) !== 0 ? `|${hex(fl & ~0x1ff)}` : '');
};

function batchableText(a: Batchable): string {
  switch (a.op) {
    case 'mmu_update': return `mmu_update(${frameText(a.table)}[${a.index}] := ${frameText(a.frame)} ${flagText(a.flags)})`;
    case 'mmuext_op': return `mmuext_op(${a.cmd} ${frameText(a.frame)})`;
    case 'update_va_mapping': return `update_va_mapping(${hex(KV + a.page * PAGE)} := ${frameText(a.frame)} ${flagText(a.flags)}, uvmf ${a.uvmf})`;
  }
}

/** One action as a line (hypercall name and arguments). */
export function actionText(a: PvAction): string {
  switch (a.op) {
    case 'multicall': return `multicall[${a.calls.map(batchableText).join(', ')}]`;
    case 'grant_setup': return `grant_table_op(setup_table [${a.frames.map(frameText).join(', ')}])`;
    case 'grant_entry': return `grant entry ${a.ref} := { flags ${hex(a.flags)}, domid ${a.domid}, frame ${frameText(a.frame)} } (a guest write)`;
    case 'grant_map': return `grant_table_op(map_grant_ref ref ${a.ref}${a.readonly ? ' readonly' : ''})`;
    case 'grant_unmap': return `grant_table_op(unmap_grant_ref handle ${a.handle})`;
    case 'backend_map': return `back end maps grant ${a.ref}${a.readonly ? ' readonly' : ' writable'}`;
    case 'backend_unmap': return `back end unmaps handle ${a.handle}`;
    case 'backend_grant': return `grant entry ${a.ref} := { flags ${hex(a.flags)}, domid ${a.domid}, frame ${frameText(a.frame)} }; back end maps it${a.readonly ? ' readonly' : ' writable'}`;
    case 'evtchn': return `event_channel_op(${a.cmd} ${a.port < 0 ? 'last' : a.port})`;
    default: return batchableText(a);
  }
}

// ------------------------------------------------------------------ generators

const frameRef: fc.Arbitrary<FrameRef> = fc.oneof(
  { arbitrary: fc.constant<FrameRef>({ k: 'l2' }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 3 }).map((i): FrameRef => ({ k: 'l1', i })), weight: 4 },
  { arbitrary: fc.constant<FrameRef>({ k: 'shared_info' }), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 40 }).map((i): FrameRef => ({ k: 'hyp', i })), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 31 }).map((i): FrameRef => ({ k: 'reserved', i })), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 3 }).map((i): FrameRef => ({ k: 'p2m', i })), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 2100 }).map((i): FrameRef => ({ k: 'pfn', i })), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 1 }).map((i): FrameRef => ({ k: 'grant', i })), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 0xfffff }).map((mfn): FrameRef => ({ k: 'raw', mfn })), weight: 1 },
);
const pteFlags = fc.oneof(fc.constantFrom(1, 3, 7, 5, 0x83, 0), fc.integer({ min: 0, max: 0xfff }));
const ptUpdate: fc.Arbitrary<PtUpdate> = fc.record({
  op: fc.constant('mmu_update' as const), table: frameRef,
  index: fc.oneof(fc.integer({ min: 0, max: 1023 }), fc.constantFrom(768, 1023, FIRST_HYPERVISOR_SLOT, 0)), frame: frameRef, flags: pteFlags,
});
const extOp: fc.Arbitrary<ExtOp> = fc.record({
  op: fc.constant('mmuext_op' as const), cmd: fc.constantFrom('pin_l1', 'pin_l2', 'unpin', 'new_baseptr', 'invlpg', 'flush') as fc.Arbitrary<ExtOp['cmd']>, frame: frameRef,
});
const uvmOp: fc.Arbitrary<UvmOp> = fc.record({
  op: fc.constant('update_va_mapping' as const), page: fc.integer({ min: 0, max: 4095 }), frame: frameRef, flags: pteFlags, uvmf: fc.integer({ min: 0, max: 3 }),
});
const batchable: fc.Arbitrary<Batchable> = fc.oneof(ptUpdate, extOp, uvmOp);
// Mostly a few low references, so that an entry written is also mapped.
const ref = fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3 }), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 2 * GRANT_ENTRIES_PER_FRAME }), weight: 1 });
const handle = fc.integer({ min: 0, max: 5 });
// Grants name page tables often: a writable grant of one is the attack the type check stops.
const grantFrame: fc.Arbitrary<FrameRef> = fc.oneof(
  { arbitrary: fc.constant<FrameRef>({ k: 'l2' }), weight: 1 },
  { arbitrary: fc.integer({ min: 0, max: 1 }).map((i): FrameRef => ({ k: 'l1', i })), weight: 1 },
  { arbitrary: frameRef, weight: 2 },
);
const grantDomid = fc.constantFrom(0, 0, 0, 1, DOMID_SELF);
const grantFlags = fc.constantFrom<number>(GTF.permit_access, GTF.permit_access, GTF.permit_access | GTF.readonly, 0, GTF.accept_transfer);

/** A sequence of hostile/random kernel-level actions. */
export function pvActions(maxLength = 12): fc.Arbitrary<PvAction[]> {
  const action: fc.Arbitrary<PvAction> = fc.oneof(
    { arbitrary: ptUpdate, weight: 6 },
    { arbitrary: extOp, weight: 4 },
    { arbitrary: uvmOp, weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('multicall' as const), calls: fc.array(batchable, { minLength: 1, maxLength: 4 }) }), weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('grant_setup' as const), frames: fc.array(frameRef, { minLength: 0, maxLength: 2 }) }), weight: 2 },
    { arbitrary: fc.record({ op: fc.constant('grant_entry' as const), ref, domid: grantDomid, flags: grantFlags, frame: frameRef }), weight: 3 },
    { arbitrary: fc.record({ op: fc.constant('grant_map' as const), ref, readonly: fc.boolean() }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('grant_unmap' as const), handle }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('backend_map' as const), ref, readonly: fc.boolean() }), weight: 3 },
    { arbitrary: fc.record({ op: fc.constant('backend_unmap' as const), handle }), weight: 1 },
    { arbitrary: fc.record({ op: fc.constant('backend_grant' as const), ref, domid: grantDomid, flags: grantFlags, frame: grantFrame, readonly: fc.boolean() }), weight: 3 },
    { arbitrary: fc.record({
      op: fc.constant('evtchn' as const),
      cmd: fc.constantFrom('send', 'send', 'send', 'close', 'unmask', 'bind_virq', 'bind_ipi', 'alloc_unbound', 'alloc_unbound', 'bind_interdomain') as fc.Arbitrary<'send'>,
      port: fc.oneof({ arbitrary: fc.constant(-1), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 5 }), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: NR_EVENT_CHANNELS + 4 }), weight: 1 }),
    }), weight: 8 },
  );
  return fc.array(action, { minLength: 1, maxLength });
}

// ------------------------------------------------------------------ the booted domain

/** A booted pv domain and the harness's view of it. */
export interface PvDomain {
  readonly machine: Machine;
  readonly monitor: PvMonitor;
  /** A guest-virtual scratch page for hypercall arguments. */
  readonly scratch: number;
  readonly nrPages: number;
  /** Frames the domain's actions must never write: [frame, its bytes at the start]. */
  readonly protectedFrames: readonly number[];
  readonly protectedCopy: Uint8Array;
}

/** A small domain: the boot (to the idle loop) takes ~40 ms, so each generated sequence gets a fresh one. */
const MEMORY_MIB = 8;
let bootImage: Uint8Array | null = null;

/** Boots the pv kernel (init asleep, the kernel idle in ring 1). */
export function bootPvDomain(): PvDomain {
  const profile = verifyProfile().profile;
  bootImage ??= toMultibootElf(buildKernel({
    init: 'sleeper', hz: 100,
    programs: [{ name: 'sleeper', build: (u) => { u.a.mov(ebx, 100000); u.sys(162); u.exit(0); } }],
  }));
  const machine = new Machine({ memoryMiB: MEMORY_MIB, profile, monitorMiB: monitorMemoryMiB('pv', MEMORY_MIB) });
  machine.loadMultiboot(bootImage, 'pv-isolation-kernel.elf');
  const monitor = createMonitor('pv', { profile }) as PvMonitor;
  monitor.attach(machine);
  machine.run({ maxInstructions: 500_000 }); // init is asleep and the kernel blocks in sched_op well before
  if (machine.cpu.cpl !== 1) throw new Error(`pv-isolation: the pv kernel did not reach its idle loop in ring 1 (cpl ${machine.cpu.cpl}, ${JSON.stringify(machine.cpu.stopReason ?? 'running')})`);
  const mm = monitor.mm;
  let nrPages = 0;
  while (nrPages < mm.frames && (() => { try { monitor.p2m(nrPages as Pfn); return true; } catch { return false; } })()) nrPages++;
  // Scratch: the direct-map page of the domain's highest page (free in an idle kernel).
  let scratch = -1;
  for (let pfn = nrPages - 1; pfn > nrPages - 64 && scratch < 0; pfn--) {
    const va = KV + pfn * PAGE;
    if (monitor.guestPhys(va, true) >= 0) scratch = va;
  }
  if (scratch < 0) throw new Error('pv-isolation: no writable direct-map page for hypercall arguments');
  // A grant table of one plain page, as a kernel with split-driver front ends sets up (the
  // sequence may set up another, hostile or not).
  const gframe = monitor.p2m((nrPages - 2) as Pfn);
  const b = new Uint8Array(20), dv = new DataView(b.buffer);
  dv.setUint16(0, DOMID_SELF, true); dv.setUint32(4, 1, true); dv.setUint32(12, scratch + 16, true); dv.setUint32(16, gframe, true);
  if (!monitor.copyToGuest(scratch, b)) throw new Error('pv-isolation: cannot write the scratch page');
  const cpu = machine.cpu;
  cpu.r32[EAX] = HYPERCALL.grant_table_op; cpu.r32[EBX] = GNTTABOP.setup_table; cpu.r32[ECX] = scratch; cpu.r32[EDX] = 1;
  monitor.onEvent(cpu, 0x82, -1, EventKind.Software);
  if (cpu.r32[EAX] !== 0 || grantFrames({ monitor } as PvDomain).length !== 1) throw new Error(`pv-isolation: the grant table setup failed (${cpu.r32[EAX]})`);
  const prot: number[] = [];
  for (let m = 0; m < mm.frames; m++) if (mm.owner[m] === OWN_NONE) prot.push(m);
  const copy = new Uint8Array(prot.length * PAGE);
  prot.forEach((m, i) => copy.set(machine.mem.u8.subarray(m * PAGE, m * PAGE + PAGE), i * PAGE));
  return { machine, monitor, scratch, nrPages, protectedFrames: prot, protectedCopy: copy };
}

/** The machine frame a reference names on domain `d` (-1: none, e.g. no grant table yet). */
export function resolveFrame(d: PvDomain, f: FrameRef): number {
  const { monitor, machine } = d;
  const mm = monitor.mm;
  switch (f.k) {
    case 'l2': return mm.base;
    case 'l1': {
      let n = 0;
      for (let i = 0; i < FIRST_HYPERVISOR_SLOT; i++) {
        const e = machine.mem.read32(mm.base * PAGE + i * 4);
        if ((e & 1) !== 0 && n++ === f.i) return e >>> 12;
      }
      return -1;
    }
    case 'shared_info': return monitor.sharedInfoMfn;
    case 'hyp': return (machine.mem.guestSize >>> 12) + f.i;
    case 'reserved': {
      let n = 0;
      for (let m = 0; m < machine.mem.guestSize >>> 12; m++) if (mm.owner[m] === OWN_NONE && n++ === f.i) return m;
      return -1;
    }
    case 'p2m': {
      // start_info (ESI at entry) is gone by now; the P2M list follows start_info, which follows the kernel.
      const list = p2mListPfn(d);
      return list < 0 ? -1 : monitor.p2m((list + f.i) as Pfn);
    }
    case 'pfn': return f.i < d.nrPages ? monitor.p2m(f.i as Pfn) : -1;
    case 'grant': return grantFrames(d)[f.i] ?? -1;
    case 'raw': return f.mfn;
  }
}

/** The first pfn of the P2M list (the page after start_info, found by its magic). */
function p2mListPfn(d: PvDomain): number {
  const mem = d.machine.mem;
  for (let pfn = 0; pfn < Math.min(d.nrPages, 2048); pfn++) {
    const a = d.monitor.p2m(pfn as Pfn) * PAGE;
    if (mem.u8[a] === 0x78 && mem.u8[a + 1] === 0x65 && mem.u8[a + 2] === 0x6e && mem.u8[a + 3] === 0x2d) return pfn + 1; // "xen-"
  }
  return -1;
}

function grantFrames(d: PvDomain): readonly number[] {
  return (d.monitor.drivers.grants as unknown as { frames: readonly number[] }).frames;
}

// ------------------------------------------------------------------ running a sequence

const ERRNOS = new Set<number>(Object.values(XEN_ERRNO).map((e) => -e));
const GNTSTS = new Set<number>(Object.values(GNTST));
const CMD: Record<ExtOp['cmd'], number> = {
  pin_l1: MMUEXT.PIN_L1_TABLE, pin_l2: MMUEXT.PIN_L2_TABLE, unpin: MMUEXT.UNPIN_TABLE, new_baseptr: MMUEXT.NEW_BASEPTR, invlpg: MMUEXT.INVLPG_LOCAL, flush: MMUEXT.TLB_FLUSH_LOCAL,
};
const EVT: Record<string, number> = {
  send: EVTCHNOP.send, close: EVTCHNOP.close, unmask: EVTCHNOP.unmask, bind_virq: EVTCHNOP.bind_virq, bind_ipi: EVTCHNOP.bind_ipi, alloc_unbound: EVTCHNOP.alloc_unbound, bind_interdomain: EVTCHNOP.bind_interdomain,
};

/** The sum of a pv monitor's `attack.*` counters (refusals it counted). */
export function attacks(m: PvMonitor): number {
  let n = 0;
  for (const [k, v] of Object.entries(m.stats())) if (k.startsWith('attack.')) n += v;
  return n;
}

/** Outcome of a sequence: the first violated invariant (null: all held) and what ran. */
export interface PvRunResult {
  readonly violation: string | null;
  readonly log: readonly string[];
}

/**
 * Runs `actions` on a freshly booted domain and checks the invariants after each action that
 * concerns a single call (errno, counting, event delivery) and at the end (memory, types).
 */
export function runPvActions(actions: readonly PvAction[], domain?: PvDomain): PvRunResult {
  const d = domain ?? bootPvDomain();
  const { machine, monitor } = d;
  const mem = machine.mem, cpu = machine.cpu;
  const log: string[] = [];
  const backend: { handle: number; mfn: number; readonly: boolean }[] = [];
  let lastPort = 0;
  const S = d.scratch;
  const put = (off: number, words: readonly number[]): boolean => {
    const b = new Uint8Array(words.length * 4), dv = new DataView(b.buffer);
    words.forEach((w, i) => dv.setUint32(i * 4, w >>> 0, true));
    return monitor.copyToGuest(S + off, b);
  };
  const get = (off: number): number => {
    const p = monitor.guestPhys(S + off, false);
    return p < 0 ? 0 : mem.read32(p);
  };
  const call = (nr: number, ...args: number[]): number => {
    const regs = [EBX, ECX, EDX, ESI];
    cpu.cpl = 1; // an upcall bounce leaves the kernel in ring 1; a crashed domain may not be
    cpu.r32[EAX] = nr;
    args.forEach((v, i) => { cpu.r32[regs[i]!] = v; });
    monitor.onEvent(cpu, 0x82, -1, EventKind.Software);
    return cpu.r32[EAX]!;
  };
  // A refused call: a Xen errno, and counted.
  const refusedOk = (what: string, res: number, before: number, allowUncounted = false): string | null => {
    if (res >= 0) return null;
    if (!ERRNOS.has(res)) return `${what} returned ${res}, not a Xen errno`;
    if (!allowUncounted && attacks(monitor) <= before) return `${what} was refused (${res}) but not counted as attack.*`;
    return null;
  };
  const pte = (a: { frame: FrameRef; flags: number }): number => {
    const f = resolveFrame(d, a.frame);
    return f < 0 ? a.flags & 0xfff : ((f << 12) | (a.flags & 0xfff)) >>> 0;
  };
  // Writes a batchable op's argument block at scratch+off; returns [hypercall nr, args].
  const encode = (a: Batchable, off: number): [number, number[]] | null => {
    switch (a.op) {
      case 'mmu_update': {
        const t = resolveFrame(d, a.table);
        if (t < 0 || !put(off, [(t * PAGE + a.index * 4) >>> 0, 0, pte(a), 0])) return null;
        return [HYPERCALL.mmu_update, [S + off, 1, 0, DOMID_SELF]];
      }
      case 'mmuext_op': {
        const f = resolveFrame(d, a.frame);
        const arg = a.cmd === 'invlpg' ? KV + (f & 0xfff) * PAGE : f;
        if (f < 0 || !put(off, [CMD[a.cmd], arg, 0])) return null;
        return [HYPERCALL.mmuext_op, [S + off, 1, 0, DOMID_SELF]];
      }
      case 'update_va_mapping': {
        const va = (KV + a.page * PAGE) >>> 0;
        if (va === (S >>> 0)) return null; // the harness keeps its argument page
        return [HYPERCALL.update_va_mapping, [va, pte(a), a.uvmf]];
      }
    }
  };

  for (const a of actions) {
    const before = attacks(monitor);
    const text = actionText(a);
    let v: string | null = null;
    switch (a.op) {
      case 'mmu_update': case 'mmuext_op': case 'update_va_mapping': {
        const e = encode(a, 0);
        if (e === null) { log.push(`${text}: skipped`); continue; }
        const res = call(e[0], ...e[1]);
        log.push(`${text} = ${res}`);
        v = refusedOk(text, res, before);
        break;
      }
      case 'multicall': {
        const list = 1024; // entries at scratch+1024, arguments at scratch+16*i
        const words: number[] = [];
        let ok = true;
        a.calls.forEach((c, i) => {
          const e = ok ? encode(c, i * 16) : null;
          if (e === null) { ok = false; return; }
          words.push(e[0], 0, ...e[1], ...new Array<number>(6 - e[1].length).fill(0));
        });
        if (!ok || !put(list, words)) { log.push(`${text}: skipped`); continue; }
        const res = call(HYPERCALL.multicall, S + list, a.calls.length);
        const results = a.calls.map((_, i) => get(list + i * 32 + 4) | 0);
        log.push(`${text} = ${res} [${results.join(', ')}]`);
        v = refusedOk(text, res, before);
        const refused = results.filter((r) => r < 0);
        for (const r of refused) if (!ERRNOS.has(r)) v ??= `${text}: an entry returned ${r}, not a Xen errno`;
        if (attacks(monitor) - before < refused.length) v ??= `${text}: ${refused.length} entries refused, ${attacks(monitor) - before} counted as attack.*`;
        break;
      }
      case 'grant_setup': {
        const frames = a.frames.map((f) => resolveFrame(d, f));
        if (!put(64, frames.map((f) => f >>> 0)) && frames.length > 0) { log.push(`${text}: skipped`); continue; }
        put(0, [DOMID_SELF, frames.length, 0, S + 64]);
        const res = call(HYPERCALL.grant_table_op, GNTTABOP.setup_table, S, 1);
        const st = (get(8) << 16) >> 16;
        log.push(`${text} = ${res}, status ${st}`);
        v = refusedOk(text, res, before) ?? grantStatus(text, st, before);
        break;
      }
      case 'grant_entry': {
        const gf = grantFrames(d);
        const fr = gf[Math.floor(a.ref / GRANT_ENTRIES_PER_FRAME)];
        if (fr === undefined) { log.push(`${text}: skipped (no such grant frame)`); continue; }
        const at = fr * PAGE + (a.ref % GRANT_ENTRIES_PER_FRAME) * 8;
        const f = resolveFrame(d, a.frame);
        // The guest writes its own grant-table frame (a plain page it owns).
        mem.write16(at + 2, a.domid); mem.write32(at + 4, f >>> 0); mem.write16(at, a.flags);
        log.push(text);
        break;
      }
      case 'grant_map': {
        put(0, [0, 0, GNTMAP.device_map | (a.readonly ? GNTMAP.readonly : 0), a.ref, DOMID_SELF, 0, 0, 0]);
        const res = call(HYPERCALL.grant_table_op, GNTTABOP.map_grant_ref, S, 1);
        const st = (get(16) >> 16);
        log.push(`${text} = ${res}, status ${st}, handle ${get(20)}`);
        v = refusedOk(text, res, before) ?? grantStatus(text, st, before);
        break;
      }
      case 'grant_unmap': {
        put(0, [0, 0, 0, 0, a.handle, 0]);
        const res = call(HYPERCALL.grant_table_op, GNTTABOP.unmap_grant_ref, S, 1);
        const st = (get(20) << 16) >> 16;
        log.push(`${text} = ${res}, status ${st}`);
        v = refusedOk(text, res, before) ?? grantStatus(text, st, before);
        break;
      }
      case 'backend_grant': case 'backend_map': {
        if (a.op === 'backend_grant') {
          const fr0 = grantFrames(d)[Math.floor(a.ref / GRANT_ENTRIES_PER_FRAME)];
          if (fr0 === undefined) { log.push(`${text}: skipped (no such grant frame)`); continue; }
          const at0 = fr0 * PAGE + (a.ref % GRANT_ENTRIES_PER_FRAME) * 8;
          mem.write16(at0 + 2, a.domid); mem.write32(at0 + 4, resolveFrame(d, a.frame) >>> 0); mem.write16(at0, a.flags);
        }
        const gf = grantFrames(d);
        const fr = gf[Math.floor(a.ref / GRANT_ENTRIES_PER_FRAME)];
        const at = fr === undefined ? -1 : fr * PAGE + (a.ref % GRANT_ENTRIES_PER_FRAME) * 8;
        const flags = at < 0 ? 0 : mem.read16(at), domid = at < 0 ? -1 : mem.read16(at + 2);
        const m = monitor.drivers.grants.mapGrant(a.ref, 0 as never, a.readonly);
        log.push(`${text} = status ${m.status}${m.status === 0 ? `, handle ${m.handle}, frame ${hex(m.mfn)}` : ''}`);
        if (m.status === 0) {
          backend.push({ handle: m.handle, mfn: m.mfn, readonly: a.readonly });
          if (domid !== 0 || (flags & GTF.type_mask) !== GTF.permit_access) v = `${text}: mapped by domain 0 though the entry grants domain ${domid} (flags ${hex(flags)})`;
          else if (!a.readonly && (flags & GTF.readonly) !== 0) v = `${text}: mapped writable though the entry is read-only`;
        } else v = grantStatus(text, m.status, before);
        break;
      }
      case 'backend_unmap': {
        const i = backend.findIndex((b) => b.handle === a.handle);
        if (i < 0) { log.push(`${text}: skipped (not a back-end handle)`); continue; }
        const st = monitor.drivers.grants.unmapGrant(a.handle);
        backend.splice(i, 1);
        log.push(`${text} = status ${st}`);
        v = grantStatus(text, st, before);
        break;
      }
      case 'evtchn': {
        const cmd = EVT[a.cmd]!;
        const port = a.port < 0 ? lastPort : a.port;
        // What the channel is before a send: its peer (or itself) is the only port it may set pending.
        let expect = -1;
        if (a.cmd === 'send' && port < NR_EVENT_CHANNELS) {
          put(0, [DOMID_SELF, port, 0, 0, 0, 0]);
          if (call(HYPERCALL.event_channel_op, EVTCHNOP.status, S) === 0) {
            const st = get(8), rd = get(16) & 0xffff, rp = get(20);
            if (st === 2 && rd === (monitor.domid as number)) expect = rp; // interdomain loopback
            else if (st === 5) expect = port; // IPI
          }
        }
        const pendBefore = pendingWords(d);
        // alloc_unbound: remote domain self (even) or 0 (odd); bind_interdomain: remote port port/2 of self (even) or domain 0 (odd).
        const args = a.cmd === 'alloc_unbound' ? [DOMID_SELF | ((port & 1) === 0 ? (monitor.domid as number) << 16 : 0), 0]
          : a.cmd === 'bind_interdomain' ? [(port & 1) === 0 ? monitor.domid as number : 0, port >>> 1, 0]
            : a.cmd === 'bind_virq' ? [port, 0, 0] : a.cmd === 'bind_ipi' ? [0, 0] : [port];
        put(0, args);
        const res = call(HYPERCALL.event_channel_op, cmd, S);
        const outAt = a.cmd === 'alloc_unbound' || a.cmd === 'bind_ipi' ? 4 : a.cmd === 'bind_interdomain' || a.cmd === 'bind_virq' ? 8 : -1;
        if (res === 0 && outAt >= 0) lastPort = get(outAt);
        log.push(`${text} = ${res}${outAt >= 0 && res === 0 ? ` (port ${lastPort})` : ''}`);
        // Binding to a back end this machine lacks is refused without counting (as Xen's failed xenstore lookup).
        v = refusedOk(text, res, before, a.cmd === 'bind_interdomain');
        if (a.cmd === 'send') {
          const after = pendingWords(d);
          for (let w = 0; w < after.length && v === null; w++) {
            const fresh = (after[w]! & ~pendBefore[w]!) >>> 0;
            for (let b = 0; b < 32; b++) {
              if ((fresh & (1 << b)) !== 0 && w * 32 + b !== expect) { v = `${text}: set port ${w * 32 + b} pending (the channel's peer: ${expect < 0 ? 'none' : expect})`; break; }
            }
          }
        }
        break;
      }
    }
    if (v !== null) return { violation: v, log };
  }
  const inv = checkDomain(d, backend);
  return { violation: inv, log };

  function grantStatus(what: string, st: number, before0: number): string | null {
    if (st >= 0) return null;
    if (!GNTSTS.has(st)) return `${what}: status ${st}, not a GNTST code`;
    if (attacks(monitor) <= before0) return `${what}: refused (status ${st}) but not counted as attack.*`;
    return null;
  }
}

function pendingWords(d: PvDomain): Uint32Array {
  const base = d.monitor.sharedInfoMfn * PAGE + SHARED_INFO.EVTCHN_PENDING;
  const out = new Uint32Array(NR_EVENT_CHANNELS / 32);
  for (let i = 0; i < out.length; i++) out[i] = d.machine.mem.read32(base + i * 4);
  return out;
}

/** The end-of-sequence invariants; the first violation, or null. */
export function checkDomain(d: PvDomain, backend: readonly { handle: number; mfn: number; readonly: boolean }[] = []): string | null {
  const mm = d.monitor.mm, mem = d.machine.mem;
  const audit = mm.audit();
  if (audit.length > 0) return `audit: ${audit.slice(0, 3).join('; ')}${audit.length > 3 ? ` (+${audit.length - 3})` : ''}`;
  const isTable = (m: number): boolean => mm.typeCount[m]! > 0 && (mm.type[m] === PT_L1 || mm.type[m] === PT_L2);
  for (let m = 0; m < mm.frames; m++) {
    if (!isTable(m)) continue;
    const l2 = mm.type[m] === PT_L2;
    const n = l2 ? FIRST_HYPERVISOR_SLOT : 1024;
    for (let i = 0; i < n; i++) {
      const e = mem.read32(m * PAGE + i * 4);
      if ((e & 1) === 0) continue;
      const t = e >>> 12;
      if (l2) {
        if (!(mm.owner[t] === OWN_DOMAIN || mm.builderFrames.has(t)) || mm.type[t] !== PT_L1) return `L2 ${hex(m)}[${i}] = ${hex(e)}: names ${hex(t)}, not an L1 of the domain`;
        continue;
      }
      if (t >= mm.frames || (mm.owner[t] !== OWN_DOMAIN && mm.owner[t] !== OWN_SHARED)) return `L1 ${hex(m)}[${i}] = ${hex(e)}: maps ${hex(t)}, a frame the domain does not own`;
      if ((e & 2) !== 0 && isTable(t)) return `L1 ${hex(m)}[${i}] = ${hex(e)}: maps page table ${hex(t)} writable`;
    }
    if (l2) {
      for (const s of mm.hypervisorSlots) {
        // The CPU sets the accessed/dirty bits of the directory entries it walks.
        if ((mem.read32(m * PAGE + s.index * 4) & ~0x60) !== (s.value & ~0x60)) return `L2 ${hex(m)}: hypervisor slot ${s.index} = ${hex(mem.read32(m * PAGE + s.index * 4))}, not ${hex(s.value)}`;
      }
    }
  }
  for (const b of backend) if (!b.readonly && isTable(b.mfn)) return `back-end grant handle ${b.handle}: maps page table ${hex(b.mfn)} writable`;
  const u8 = mem.u8;
  for (let i = 0; i < d.protectedFrames.length; i++) {
    const m = d.protectedFrames[i]!;
    for (let j = 0; j < PAGE; j++) {
      if (u8[m * PAGE + j] !== d.protectedCopy[i * PAGE + j]) {
        const what = mm.builderFrames.has(m) ? "the hypervisor's bootstrap page table" : m >= mem.guestSize >>> 12 ? 'hypervisor' : 'reserved guest RAM';
        return `memory the domain does not own changed: frame ${hex(m)} (${what}) +${hex(j)}: ${hex(d.protectedCopy[i * PAGE + j]!)} → ${hex(u8[m * PAGE + j]!)}`;
      }
    }
  }
  return null;
}
