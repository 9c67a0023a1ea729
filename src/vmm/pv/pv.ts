/**
 * `pv`: a Xen-style paravirtualizing hypervisor model for the 32-bit PV ABI (docs/pv.md).
 *
 * The domain builder (`attach`) finds the kernel's PV note, patches every pv-op site (to
 * `int 0x82` hypercall sequences, calls into the kernel's PV stubs, or vcpu_info stores),
 * hands the domain its RAM through a permuted P2M (so a missing pfn→mfn conversion breaks at
 * once), builds start_info, shared_info and a bootstrap page table in hypervisor memory, and
 * enters the kernel's PV entry in ring 1 with paging on. From then on the guest kernel runs
 * deprivileged on the hypervisor's GDT/IDT/TSS (the top 4 MiB) and the read-only M2P
 * (0xFC000000); `onEvent` receives hypercalls (INT 0x82), bounces exceptions through the
 * guest's trap table, lets `int 0x80` through a direct DPL-3 gate, and delivers event upcalls
 * to the registered callback when vcpu_info.evtchn_upcall_mask allows.
 */
import { ImageError } from '../../guest/elf.js';
import { CR0_ET, CR0_PE, CR0_PG, CR0_WP, CS, DS, EAX, EBX, ECX, EDI, EDX, ES, ESI, ESP, FS, GS, SS, Vec, type Cpu } from '../../machine/cpu/cpu.js';
import { IF, IOPL, NT, RF, TF, VM } from '../../machine/cpu/flags.js';
import { EventKind, eventName } from '../../machine/cpu/interrupts.js';
import type { Machine } from '../../machine/machine.js';
import type { PhysicalMemory } from '../../machine/memory.js';
import { hasVmmFigures, toVmmCosts } from '../../profiles/index.js';
import type { Profile } from '../../profiles/schema.js';
import type { Monitor, MonitorStats } from '../monitor.js';
import { MonitorFrames } from '../shadow-paging.js';
import { MONITOR_WINDOW } from '../trap.js';
import {
  CALLBACKOP_register, CALLBACKTYPE, CONSOLEIO_read, CONSOLEIO_write, DOMID_SELF, HYPERCALL, HYPERCALL_NAME,
  HYPERCALL_VECTOR, MACH2PHYS_VIRT_START, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE, MMUEXT, MULTICALL_ENTRY_SIZE,
  PV_KERNEL_CS, PV_KERNEL_SS, SCHEDOP, SHUTDOWN, START_INFO, START_INFO_MAGIC, TI_IF, UVMF_INVLPG, UVMF_TLB_FLUSH, VCPU,
  VCPUOP, VIRQ_TIMER,
} from './abi.js';
import { XEN_ERRNO, type DomId, type Mfn, type Pfn, type PvDomainContext } from './domain-context.js';
import { DirectPaging, OWN_DOMAIN, OWN_SHARED, PT_L1, PT_L2, PT_WRITABLE, Refused } from './mm.js';
import type { PvFrameTypes } from './grant-table.js';
import { findPvNote, patchSite, type PvNote } from './patch.js';
import { createSplitDrivers, splitDriverCosts, type SplitDrivers } from './split-backends.js';

/** Monitor memory `pv` needs (MiB): window (GDT, IDT, TSS), M2P, bootstrap tables, shared_info. */
export const PV_MONITOR_MIB = 4;

/** What `pv` charges (cycles), from the profile's `paravirtualization` figures. */
export interface PvCosts {
  readonly hypercall: number; readonly mmuUpdateBase: number; readonly mmuUpdatePerEntry: number;
  readonly multicallBase: number; readonly multicallPerEntry: number; readonly eventUpcall: number;
  readonly exceptionBounce: number; readonly eventChannelSend: number;
  /** True when the figures are core2-2008's, for a profile without them (schema v1). */
  readonly provisional: boolean;
}

/** The profile's figures; a v1 profile gets core2-2008's (marked provisional). */
export function pvCosts(profile: Profile): PvCosts {
  if (hasVmmFigures(profile)) return { ...toVmmCosts(profile).pv, provisional: false };
  // core2-2008's paravirtualization figures (src/profiles/core2-2008.json, with their sources).
  return { hypercall: 511, mmuUpdateBase: 200, mmuUpdatePerEntry: 150, multicallBase: 100, multicallPerEntry: 40,
    eventUpcall: 450, exceptionBounce: 500, eventChannelSend: 250, provisional: true };
}

const PAGE = 4096;
/** The top of RAM a Multiboot loader reports reserved (SeaBIOS's tables, src/guest/multiboot.ts). */
const BIOS_TOP_RESERVED = 0x20000;
const KERNEL_VIRT = 0xc000_0000;
/** Segment limit of every guest segment: below the hypervisor's window (the M2P stays readable). */
const SEG_LIMIT = MONITOR_WINDOW - 1;
const KCODE_ATTR = 0xc0bb, KDATA_ATTR = 0xc0b3, UCODE_ATTR = 0xc0fb, UDATA_ATTR = 0xc0f3;
/** Window pages: GDT, IDT, TSS. */
const GDT_PAGE = 0, IDT_PAGE = 1, TSS_PAGE = 2;
/** Exceptions that push an error code. */
const ERR_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);

interface TrapEntry { cs: number; eip: number; flags: number }

/** The hypervisor for one PV domain (one `Machine`). */
export class PvMonitor implements Monitor, PvDomainContext, PvFrameTypes {
  readonly mode = 'pv' as const;
  /** The domain's id: 1, or another set before the domain runs when several share a machine (src/verify/pv-pair.ts). */
  domid = 1 as DomId;
  mem!: PhysicalMemory;
  sharedInfoMfn!: Mfn;
  mm!: DirectPaging;
  drivers!: SplitDrivers;
  readonly costs: PvCosts;
  private cpu!: Cpu;
  private machine!: Machine;
  private note!: PvNote;
  private p2mTable!: Int32Array;
  private m2pTable!: Int32Array;
  private nrPages = 0;
  private windowPhys = 0;
  private readonly traps: (TrapEntry | null)[] = new Array<TrapEntry | null>(256).fill(null);
  private eventCb: { cs: number; eip: number } | null = null;
  /** Registered for completeness: virtlab's hypervisor never fails a segment reload on return (it has none to fail). */
  failsafeCb: { cs: number; eip: number } | null = null;
  private sysenterCb: { cs: number; eip: number; mask: boolean } | null = null;
  private kstack: { ss: number; esp: number } | null = null;
  /** Inside a hypercall or bounce: upcalls wait for its end. */
  private busy = false;
  private timerId = -1;
  private periodCycles = 0;
  private nextTick = 0;
  private oneShot = -1;
  private readonly counts = new Map<string, number>();
  private readonly batchSizes = new Map<string, number>();
  /**
   * Consulted where the hypervisor's timer sends VIRQ_TIMER (the trace recorder observes the
   * sends, the replayer suppresses them and sends the recorded ones itself): returning true
   * means the hook handled the VIRQ and the hypervisor does not send it.
   */
  virqHook: ((virq: number) => boolean) | null = null;

  constructor(profile?: Profile) {
    this.costs = profile ? pvCosts(profile) : pvCosts({ schema: 'virtlab.profile/1' } as Profile);
  }

  // ====================================================================== PvDomainContext

  p2m(pfn: Pfn): Mfn {
    if (pfn < 0 || pfn >= this.nrPages) throw new RangeError(`pv: pfn 0x${(pfn >>> 0).toString(16)} is not in the domain's ${this.nrPages} pages`);
    return this.p2mTable[pfn]! as Mfn;
  }
  m2p(mfn: Mfn): Pfn | -1 {
    return mfn >= 0 && mfn < this.m2pTable.length ? this.m2pTable[mfn]! as Pfn | -1 : -1;
  }
  ownsMfn(mfn: Mfn): boolean {
    return mfn >= 0 && mfn < this.mm.frames && this.mm.owner[mfn] === OWN_DOMAIN;
  }
  copyFromGuest(va: number, dst: Uint8Array): boolean {
    for (let i = 0; i < dst.length; i++) {
      const p = this.guestPhys(va + i, false);
      if (p < 0) return false;
      dst[i] = this.mem.u8[p]!;
    }
    return true;
  }
  copyToGuest(va: number, src: Uint8Array): boolean {
    for (let i = 0; i < src.length; i++) if (this.guestPhys(va + i, true) < 0) return false;
    for (let i = 0; i < src.length; i++) this.mem.u8[this.guestPhys(va + i, true)] = src[i]!;
    return true;
  }
  charge(category: string, cycles: number): void {
    this.cpu.charge(category, cycles);
  }
  raiseUpcall(): void {
    this.mem.u8[this.vcpu(VCPU.UPCALL_PENDING)] = 1;
    if (!this.busy) this.deliverUpcall();
  }
  countRejected(what: string): void {
    this.bump(`attack.${what}`);
  }
  /** PvFrameTypes: a back end's writable grant mapping is a writable reference (refused for a page-table frame). */
  getWritableRef(mfn: Mfn): boolean {
    if (this.mm.getType(mfn, PT_WRITABLE) !== null) return false;
    this.mm.externalRefs[mfn]!++;
    return true;
  }
  putWritableRef(mfn: Mfn): void {
    this.mm.externalRefs[mfn]!--;
    this.mm.putType(mfn);
  }

  // ====================================================================== the domain builder

  attach(machine: Machine): void {
    const cpu = machine.cpu, mem = machine.mem;
    if (cpu.monitor !== null) throw new Error('pv: the machine already has a monitor');
    if (mem.size - mem.guestSize < PV_MONITOR_MIB * 1024 * 1024) throw new Error(`pv: needs ${PV_MONITOR_MIB} MiB of monitor memory above guest RAM (Machine option monitorMiB)`);
    if (!cpu.protectedMode || (cpu.cr0 & CR0_PG) !== 0 || cpu.cpl !== 0) throw new Error('pv: attach at the Multiboot entry state (flat protected mode, ring 0, paging off)');
    const note = findPvNote(mem.u8, mem.guestSize);
    if (note === null) {
      throw new ImageError('image', 'pv needs a paravirtualized guest: the image carries no pv-op site table (no PV note after the kernel); build it with the virtlab kernel (buildKernel), or run it with --mode native|trap|full|hw');
    }
    this.cpu = cpu; this.machine = machine; this.mem = mem; this.note = note;
    const sym = (name: string): number => {
      const v = note.symbols[name];
      if (typeof v !== 'number') throw new ImageError('image', `pv: the PV note has no symbol "${name}" (a kernel without the PV flavour)`);
      return v >>> 0;
    };
    this.patchSites(sym);

    // --- the domain's memory: a permuted P2M over guest RAM. The domain gets the pages a
    // Multiboot kernel is told are usable (all but the top 128 KiB, which the BIOS keeps,
    // src/guest/multiboot.ts), so both modes see the same amount of memory; the machine
    // frames the permutation gives the pfns above stay the hypervisor's.
    const all = mem.guestSize >>> 12;
    const n = Math.max(256, all - (BIOS_TOP_RESERVED >>> 12));
    this.nrPages = n;
    this.p2mTable = new Int32Array(n);
    this.m2pTable = new Int32Array(mem.size >>> 12).fill(-1);
    const k = permutationMultiplier(all);
    const c = Math.floor(all / 3) + 1;
    const copy = mem.u8.slice(0, mem.guestSize);
    mem.u8.fill(0, 0, mem.guestSize);
    for (let pfn = 0; pfn < n; pfn++) {
      const mfn = Number((BigInt(pfn) * BigInt(k) + BigInt(c)) % BigInt(all));
      this.p2mTable[pfn] = mfn;
      this.m2pTable[mfn] = pfn;
      mem.u8.set(copy.subarray(pfn * PAGE, pfn * PAGE + PAGE), mfn * PAGE);
    }

    this.mm = new DirectPaging(mem, {
      flushTlb: () => cpu.flushTlb(false),
      invalidatePage: (lin) => cpu.invalidatePage(lin),
      setBase: (addr) => { cpu.cr3 = addr; cpu.flushTlb(false); cpu.resetFetch(); },
    });
    for (let pfn = 0; pfn < n; pfn++) this.mm.owner[this.p2mTable[pfn]!] = OWN_DOMAIN;

    // --- hypervisor memory: window (GDT, IDT, TSS), M2P, shared_info, bootstrap tables.
    const frames = new MonitorFrames(mem);
    const windowPt = frames.alloc();
    this.windowPhys = frames.alloc();
    for (let i = 1; i <= TSS_PAGE; i++) frames.alloc(); // contiguous: IDT, TSS
    for (let i = 0; i <= TSS_PAGE; i++) mem.write32(windowPt + i * 4, (this.windowPhys + i * PAGE) | 3);
    const m2pPages = Math.ceil((this.m2pTable.length * 4) / PAGE);
    const m2pPt = frames.alloc();
    for (let i = 0; i < m2pPages; i++) {
      const f = frames.alloc();
      for (let j = 0; j < 1024; j++) mem.write32(f + j * 4, this.m2pTable[i * 1024 + j] ?? -1);
      mem.write32(m2pPt + i * 4, f | 1); // read-only, supervisor
    }
    this.mm.hypervisorSlots.push({ index: MACH2PHYS_VIRT_START >>> 22, value: m2pPt | 3 }, { index: MONITOR_WINDOW >>> 22, value: windowPt | 3 });
    const shared = frames.alloc();
    this.sharedInfoMfn = (shared >>> 12) as Mfn;
    this.mm.owner[shared >>> 12] = OWN_SHARED;
    mem.u8[shared + VCPU.UPCALL_MASK] = 1; // Xen starts a vCPU with events masked
    this.buildGdtIdtTss();

    // --- start_info and the P2M list after the note; the bootstrap page table.
    const siPfn = Math.ceil(note.endPhys / PAGE);
    const listPages = Math.ceil((n * 4) / PAGE);
    const endPfn = siPfn + 1 + listPages;
    if (endPfn > n) throw new ImageError('image', `pv: the kernel and its start_info need ${endPfn} pages; the domain has ${n}`);
    const si = this.p2mTable[siPfn]! * PAGE;
    mem.u8.fill(0, si, si + PAGE);
    mem.u8.set(new TextEncoder().encode(START_INFO_MAGIC), si + START_INFO.MAGIC);
    mem.write32(si + START_INFO.NR_PAGES, n);
    mem.write32(si + START_INFO.SHARED_INFO, shared);
    mem.write32(si + START_INFO.PT_BASE, 0); // the bootstrap tables are the hypervisor's (docs/pv.md)
    mem.write32(si + START_INFO.NR_PT_FRAMES, 0);
    mem.write32(si + START_INFO.MFN_LIST, (KERNEL_VIRT + (siPfn + 1) * PAGE) >>> 0);
    for (let pfn = 0; pfn < n; pfn++) {
      const list = this.p2mTable[siPfn + 1 + (pfn >>> 10)]! * PAGE;
      mem.write32(list + (pfn & 1023) * 4, this.p2mTable[pfn]!);
    }
    const l2 = frames.alloc();
    this.mm.builderFrames.add(l2 >>> 12);
    for (let i = 0; i < Math.ceil(endPfn / 1024); i++) {
      const l1 = frames.alloc();
      this.mm.builderFrames.add(l1 >>> 12);
      for (let j = 0; j < 1024; j++) {
        const pfn = i * 1024 + j;
        if (pfn < endPfn) mem.write32(l1 + j * 4, (this.p2mTable[pfn]! * PAGE) | 3);
      }
      mem.write32(l2 + ((KERNEL_VIRT >>> 22) + i) * 4, l1 | 3);
    }

    // --- the virtual CPU: ring 1, paging on the bootstrap table, the hypervisor's tables.
    cpu.cr0 = CR0_PE | CR0_PG | CR0_WP | CR0_ET;
    cpu.cr4 = 0;
    cpu.updatePaging();
    const r = this.mm.newBase(l2 >>> 12);
    if (r !== null) throw new Error(`pv: the bootstrap page table does not validate (${r.reason})`);
    cpu.gdtrBase = (MONITOR_WINDOW + GDT_PAGE * PAGE) | 0; cpu.gdtrLimit = 6 * 8 - 1;
    cpu.idtrBase = (MONITOR_WINDOW + IDT_PAGE * PAGE) | 0; cpu.idtrLimit = 256 * 8 - 1;
    cpu.trSel = 0x28; cpu.trBase = (MONITOR_WINDOW + TSS_PAGE * PAGE) | 0; cpu.trLimit = 0x67; cpu.trAttr = 0x8b;
    cpu.ldtrSel = 0; cpu.ldtrBase = 0; cpu.ldtrLimit = 0;
    cpu.cpl = 1;
    cpu.setSegmentCache(CS, PV_KERNEL_CS, 0, SEG_LIMIT, KCODE_ATTR);
    for (const s of [SS, DS, ES, FS, GS]) cpu.setSegmentCache(s, PV_KERNEL_SS, 0, SEG_LIMIT, KDATA_ATTR);
    cpu.flags = (cpu.flags & ~(IOPL | TF | NT | RF | VM)) | IF;
    cpu.sysenterCs = 0; // SYSENTER faults: the hypervisor forwards it to the registered callback
    cpu.r32[ESI] = (KERNEL_VIRT + siPfn * PAGE) | 0;
    cpu.r32[ESP] = 0;
    cpu.eip = sym('xen_start');
    cpu.resetFetch();
    cpu.monitor = this;

    // --- event channels, grant table and back ends (src/vmm/pv/split-backends.ts).
    this.drivers = createSplitDrivers(this, splitDriverCosts(machine.profile), { disk: machine.disk?.disk ?? null, nic: machine.nic });
    this.timerId = machine.clock.addTimer(() => this.onTimer());
  }

  /** Rewrites every site of the note in (still identity-loaded) guest memory. */
  private patchSites(sym: (name: string) => number): void {
    const mem = this.mem;
    const phys = (va: number): number => (va >= KERNEL_VIRT ? va - KERNEL_VIRT : va);
    const irets = this.note.sites.filter((s) => s.kind === 'iret').map((s) => s.addr).sort((a, b) => a - b);
    const ctx = {
      sym,
      iretAfter: (addr: number): number => {
        const a = irets.find((x) => x > addr);
        if (a === undefined) throw new ImageError('image', `pv: no iret site after the sysexit site at 0x${addr.toString(16)}`);
        return a;
      },
    };
    let patched = 0, kept = 0;
    const pvStart = sym('xen_text_start'), pvEnd = sym('xen_text_end');
    for (const site of this.note.sites) {
      // The PV flavour's own privileged instructions (xen_iret's IRETs) stay native.
      if (site.addr >= pvStart && site.addr < pvEnd) { kept++; continue; }
      const p = phys(site.addr);
      if (p + site.len > mem.guestSize) throw new ImageError('image', `pv: site ${site.kind} at 0x${site.addr.toString(16)} lies outside RAM`);
      const native = mem.u8.slice(p, p + site.len);
      const bytes = patchSite(site, native, ctx);
      if (bytes.length > site.len) throw new ImageError('image', `pv: the ${site.kind} site at 0x${site.addr.toString(16)} is ${site.len} bytes; its pv form needs ${bytes.length}`);
      mem.u8.set(bytes, p);
      mem.u8.fill(0x90, p + bytes.length, p + site.len);
      patched++;
    }
    // Lazy-MMU brackets and page-table lifetime hooks: `ret` + NOPs natively, jumps to the stubs.
    for (const [hook, stub] of [['lazy_mmu_begin', 'xen_lazy_begin'], ['lazy_mmu_end', 'xen_lazy_end'], ['pv_alloc_pt', 'xen_alloc_pt'],
      ['pv_alloc_pd', 'xen_alloc_pd'], ['pv_release_pt', 'xen_release_pt'], ['pv_release_pd', 'xen_release_pd']] as const) {
      const at = sym(hook);
      const d = (sym(stub) - (at + 5)) | 0;
      const p = phys(at);
      mem.u8.set([0xe9, d & 0xff, (d >>> 8) & 0xff, (d >>> 16) & 0xff, (d >>> 24) & 0xff], p);
    }
    this.counts.set('sites-patched', patched);
    this.counts.set('sites-pv-native', kept);
  }

  private buildGdtIdtTss(): void {
    const mem = this.mem, g = this.windowPhys + GDT_PAGE * PAGE;
    const raw = SEG_LIMIT >>> 12; // 4 KiB granular
    const desc = (access: number): [number, number] => [raw & 0xffff, (access << 8) | (raw & 0xf0000) | 0x00c0_0000];
    const entries: [number, number][] = [[0, 0], desc(0xba), desc(0xb2), desc(0xfa), desc(0xf2)];
    const tss = (MONITOR_WINDOW + TSS_PAGE * PAGE) >>> 0;
    entries.push([((tss & 0xffff) << 16) | 0x67, ((tss >>> 16) & 0xff) | 0x8900 | (tss & 0xff00_0000)]);
    entries.forEach(([lo, hi], i) => { mem.write32(g + i * 8, lo); mem.write32(g + i * 8 + 4, hi); });
    mem.write32(this.windowPhys + TSS_PAGE * PAGE + 0x64, 0x68 << 16); // no I/O bitmap
  }

  // ====================================================================== events

  onEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): boolean {
    if (kind === EventKind.Software && vector === HYPERCALL_VECTOR && cpu.cpl === 1) {
      this.busy = true;
      try {
        this.hypercall();
      } finally {
        this.busy = false;
      }
      if (cpu.stopReason === null) this.deliverUpcall();
      return true;
    }
    if (kind === EventKind.Software && vector === 0x80 && cpu.cpl === 3 && this.directInt80) return false; // the direct gate
    if (kind === EventKind.External) {
      // No device interrupts reach a domain without physical IRQs; acknowledge and drop.
      this.bump('pv:external-dropped');
      return true;
    }
    this.busy = true;
    try {
      if (kind === EventKind.Software) {
        const t = this.traps[vector];
        if (t === null || ((t.flags & 3) < cpu.cpl)) {
          cpu.eip = cpu.instrStart;
          this.bounceException(Vec.GP, vector * 8 + 2);
        } else {
          this.bounce(t.cs, t.eip, -1, (t.flags & TI_IF) !== 0, `bounce:int-0x${vector.toString(16)}`, this.costs.exceptionBounce);
        }
      } else if (vector === Vec.GP && cpu.cpl === 3 && this.sysenterCb !== null && this.atSysenter()) {
        this.sysenter();
      } else if (vector === Vec.GP && code === 0 && cpu.cpl === 1 && this.emulatePortIo()) {
        // done: a permitted port access, performed for the guest kernel
      } else {
        this.bounceException(vector, ERR_VECTORS.has(vector) ? code : -1);
      }
    } finally {
      this.busy = false;
    }
    if (cpu.stopReason === null) this.deliverUpcall();
    return true;
  }

  private directInt80 = false;

  /**
   * Xen's emulate_privileged_op for port I/O: an IN/OUT of the guest kernel (ring 1, IOPL 0,
   * so it faults) on a port the domain may use is performed on the machine's port bus;
   * anything else is bounced to the guest as the #GP it is.
   */
  private emulatePortIo(): boolean {
    const cpu = this.cpu;
    const lin = (cpu.segBase[CS]! + cpu.eip) >>> 0;
    let op = cpu.peekLinear8(lin), at = lin;
    if (op === 0x66) op = cpu.peekLinear8(++at);
    let port: number;
    if (op === 0xe4 || op === 0xe5 || op === 0xe6 || op === 0xe7) port = cpu.peekLinear8(at + 1);
    else if (op === 0xec || op === 0xed || op === 0xee || op === 0xef) port = cpu.r32[EDX]! & 0xffff;
    else return false;
    const width = (op & 1) === 0 ? 1 : cpu.peekLinear8(lin) === 0x66 ? 2 : 4;
    for (let p = port; p < port + width; p++) if (!permittedPort(p)) { this.countRejected('io-port'); return false; }
    cpu.cpl = 0; // the hypervisor's own access, with the guest's registers
    try {
      cpu.stepInstruction();
    } finally {
      cpu.cpl = 1;
    }
    cpu.resetFetch();
    this.bump('emulate:io', this.costs.exceptionBounce);
    return true;
  }

  private atSysenter(): boolean {
    const cpu = this.cpu;
    const lin = (cpu.segBase[CS]! + cpu.eip) >>> 0;
    return cpu.peekLinear8(lin) === 0x0f && cpu.peekLinear8(lin + 1) === 0x34;
  }

  /** An exception, through the guest's trap table (Xen's do_trap / propagate_page_fault). */
  private bounceException(vector: number, code: number): void {
    const cpu = this.cpu;
    if (vector === Vec.PF) this.mem.write32(this.vcpu(VCPU.CR2), cpu.cr2);
    const t = this.traps[vector];
    if (t === null) {
      this.crash(`unhandled ${eventName(vector, code)} at ${hex(cpu.segBase[CS]! + cpu.eip)} (no handler in the trap table)`);
      return;
    }
    this.bounce(t.cs, t.eip, code, (t.flags & TI_IF) !== 0, `bounce:${eventName(vector, -1)}`, this.costs.exceptionBounce);
  }

  /** Xen's SYSENTER callback: ring 1 on the kernel stack, events masked, no frame. */
  private sysenter(): void {
    const cpu = this.cpu, cb = this.sysenterCb!;
    if (this.kstack === null) { this.crash('SYSENTER before stack_switch'); return; }
    this.bump('bounce:sysenter', this.costs.exceptionBounce);
    cpu.cpl = 1;
    cpu.setSegmentCache(SS, this.kstack.ss, 0, SEG_LIMIT, KDATA_ATTR);
    cpu.setSegmentCache(CS, (cb.cs & ~3) | 1, 0, SEG_LIMIT, KCODE_ATTR);
    cpu.r32[ESP] = this.kstack.esp;
    cpu.eip = cb.eip;
    if (cb.mask) this.mem.u8[this.vcpu(VCPU.UPCALL_MASK)] = 1;
    cpu.flags &= ~(TF | NT | RF | VM);
    cpu.resetFetch();
  }

  /**
   * Builds a bounce frame on the guest kernel stack (Xen's create_bounce_frame: [SS, ESP,]
   * EFLAGS with IF = !evtchn_upcall_mask, CS, EIP[, error code]) and enters cs:eip in ring 1.
   */
  private bounce(cs: number, eip: number, code: number, maskEvents: boolean, category: string, cycles: number): void {
    const cpu = this.cpu;
    const fromUser = cpu.cpl === 3;
    let esp: number, ss: number;
    if (fromUser) {
      if (this.kstack === null) { this.crash('an event from user mode before stack_switch'); return; }
      esp = this.kstack.esp; ss = this.kstack.ss;
    } else {
      esp = cpu.r32[ESP]!; ss = cpu.segSel[SS]!;
    }
    const maskAddr = this.vcpu(VCPU.UPCALL_MASK);
    const masked = this.mem.u8[maskAddr] !== 0;
    const flags = ((cpu.flags & ~IF) | (masked ? 0 : IF)) >>> 0;
    const words: number[] = [];
    if (fromUser) words.push(cpu.segSel[SS]!, cpu.r32[ESP]!);
    words.push(flags, cpu.segSel[CS]!, cpu.eip);
    if (code >= 0) words.push(code);
    let sp = esp >>> 0;
    for (const w of words) {
      sp = (sp - 4) >>> 0;
      const p = this.guestPhys(sp, true);
      if (p < 0) { this.crash(`the guest kernel stack at ${hex(sp)} is not writable while delivering ${category}`); return; }
      this.mem.write32(p, w);
    }
    this.bump(category, cycles);
    if (fromUser) {
      cpu.cpl = 1;
      cpu.setSegmentCache(SS, ss, 0, SEG_LIMIT, KDATA_ATTR);
    }
    cpu.setSegmentCache(CS, (cs & ~3) | 1, 0, SEG_LIMIT, KCODE_ATTR);
    cpu.r32[ESP] = sp | 0;
    cpu.eip = eip >>> 0;
    if (maskEvents) this.mem.u8[maskAddr] = 1;
    cpu.flags &= ~(TF | NT | RF | VM);
    cpu.halted = false;
    cpu.resetFetch();
    cpu.updateAttention();
  }

  /** Delivers a pending upcall when the guest's mask allows (vcpu_info.evtchn_upcall_*). */
  private deliverUpcall(): void {
    const cpu = this.cpu;
    if (this.eventCb === null || cpu.stopReason !== null) return;
    if (this.mem.u8[this.vcpu(VCPU.UPCALL_PENDING)] === 0 || this.mem.u8[this.vcpu(VCPU.UPCALL_MASK)] !== 0) return;
    this.busy = true;
    try {
      this.bounce(this.eventCb.cs, this.eventCb.eip, -1, true, 'event', this.costs.eventUpcall);
      this.bump('upcalls');
    } finally {
      this.busy = false;
    }
  }

  private onTimer(): void {
    const clock = this.machine.clock;
    if (this.periodCycles > 0 && clock.now >= this.nextTick) {
      while (this.nextTick <= clock.now) this.nextTick += this.periodCycles;
    }
    if (this.oneShot >= 0 && clock.now >= this.oneShot) this.oneShot = -1;
    this.armTimer();
    if (this.virqHook === null || !this.virqHook(VIRQ_TIMER)) this.drivers.events.sendVirq(VIRQ_TIMER);
  }

  private armTimer(): void {
    const next = Math.min(this.periodCycles > 0 ? this.nextTick : Infinity, this.oneShot >= 0 ? this.oneShot : Infinity);
    if (next === Infinity) this.machine.clock.disarm(this.timerId);
    else this.machine.clock.arm(this.timerId, next);
  }

  private nsToCycles(ns: number): number { return Math.round((ns * this.machine.clock.cpuHz) / 1e9); }

  private crash(why: string): void {
    this.bump('domain-crash');
    this.cpu.stop({ kind: 'shutdown', detail: `pv: domain crashed: ${why}` });
  }

  // ====================================================================== hypercalls

  private hypercall(): void {
    const r = this.cpu.r32;
    const nr = r[EAX]! >>> 0;
    if (nr === HYPERCALL.iret) { this.iret(); return; }
    const name = HYPERCALL_NAME[nr] ?? `#${nr}`;
    const res = this.dispatch(nr, r[EBX]! >>> 0, r[ECX]! >>> 0, r[EDX]! >>> 0, r[ESI]! >>> 0, r[EDI]! >>> 0);
    // The op's own work is charged inside; the trap in and out, and the dispatch, here.
    this.bump(`hypercall:${name}`, this.costs.hypercall);
    if (this.cpu.stopReason === null || nr !== HYPERCALL.sched_op) r[EAX] = res;
  }

  /** One hypercall (also a multicall entry): returns EAX. */
  private dispatch(nr: number, a1: number, a2: number, a3: number, a4: number, a5: number): number {
    void a5;
    switch (nr) {
      case HYPERCALL.set_trap_table: return this.setTrapTable(a1);
      case HYPERCALL.mmu_update: return this.mmuUpdate(a1, a2, a3, a4);
      case HYPERCALL.stack_switch: return this.stackSwitch(a1, a2);
      case HYPERCALL.set_callbacks: {
        const e = this.kernelCs(a1), f = this.kernelCs(a3);
        if (e < 0 || f < 0) return this.reject(-XEN_ERRNO.EINVAL, 'bad-selector');
        this.eventCb = { cs: e, eip: a2 }; this.failsafeCb = { cs: f, eip: a4 };
        return 0;
      }
      case HYPERCALL.multicall: return this.multicall(a1, a2);
      case HYPERCALL.update_va_mapping: return this.updateVaMapping(a1, a2, a3);
      case HYPERCALL.set_timer_op: {
        const ns = a1 + a2 * 2 ** 32;
        this.oneShot = ns === 0 ? -1 : Math.max(this.cpu.cycles, this.nsToCycles(ns));
        this.armTimer();
        return 0;
      }
      case HYPERCALL.xen_version: return (3 << 16) | 0;
      case HYPERCALL.console_io: return this.consoleIo(a1, a2, a3);
      case HYPERCALL.grant_table_op: return this.drivers.grants.hypercall(a1, a2, a3);
      case HYPERCALL.vcpu_op: return this.vcpuOp(a1, a2, a3);
      case HYPERCALL.mmuext_op: return this.mmuextOp(a1, a2, a3, a4);
      case HYPERCALL.sched_op: return this.schedOp(a1, a2);
      case HYPERCALL.callback_op: return this.callbackOp(a1, a2);
      case HYPERCALL.event_channel_op: return this.drivers.events.hypercall(a1, a2);
      default: return this.reject(-XEN_ERRNO.ENOSYS, 'bad-hypercall');
    }
  }

  private reject(errno: number, what: string): number {
    this.countRejected(what);
    return errno;
  }

  /** A ring-1 code selector of the guest kernel (its GDT index 1, RPL forced to 1 as Xen's fixup), or -1. */
  private kernelCs(sel: number): number {
    return (sel & 0xfffc) === (PV_KERNEL_CS & 0xfffc) ? PV_KERNEL_CS : -1;
  }

  private setTrapTable(va: number): number {
    if (va === 0) { this.traps.fill(null); this.setDirectInt80(null); return 0; }
    const buf = new Uint8Array(8);
    const next: (TrapEntry | null)[] = new Array<TrapEntry | null>(256).fill(null);
    for (let i = 0; i < 256; i++) {
      if (!this.copyFromGuest(va + i * 8, buf)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-trap-table');
      const dv = new DataView(buf.buffer);
      const eip = dv.getUint32(4, true);
      if (eip === 0) break;
      const cs = this.kernelCs(dv.getUint16(2, true));
      if (cs < 0) return this.reject(-XEN_ERRNO.EPERM, 'bad-selector');
      next[buf[0]!] = { cs, eip, flags: buf[1]! };
    }
    for (let v = 0; v < 256; v++) this.traps[v] = next[v]!;
    const t = this.traps[0x80];
    // Xen installs the direct trap only for a DPL-3 gate that does not mask events.
    this.setDirectInt80(t !== null && (t.flags & 3) === 3 && (t.flags & TI_IF) === 0 ? t : null);
    return 0;
  }

  private setDirectInt80(t: TrapEntry | null): void {
    const at = this.windowPhys + IDT_PAGE * PAGE + 0x80 * 8;
    if (t === null) { this.mem.write32(at, 0); this.mem.write32(at + 4, 0); this.directInt80 = false; return; }
    this.mem.write32(at, ((t.cs & 0xfffc) << 16) | (t.eip & 0xffff));
    this.mem.write32(at + 4, (t.eip & 0xffff_0000) | 0x8000 | (3 << 13) | (0xf << 8));
    this.directInt80 = true;
  }

  private stackSwitch(ss: number, esp: number): number {
    if ((ss & 0xfffc) !== (PV_KERNEL_SS & 0xfffc)) return this.reject(-XEN_ERRNO.EPERM, 'bad-stack-selector');
    this.kstack = { ss: PV_KERNEL_SS, esp };
    const tss = this.windowPhys + TSS_PAGE * PAGE;
    this.mem.write32(tss + 12, esp);
    this.mem.write32(tss + 16, PV_KERNEL_SS);
    return 0;
  }

  private mmuUpdate(reqVa: number, count: number, doneVa: number, dom: number): number {
    if (dom !== DOMID_SELF && dom !== this.domid) return this.reject(-XEN_ERRNO.EPERM, 'foreign-domain');
    const buf = new Uint8Array(16), dv = new DataView(buf.buffer);
    let done = 0, res = 0;
    for (; done < count; done++) {
      if (!this.copyFromGuest(reqVa + done * 16, buf)) { res = this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer'); break; }
      const ptrLo = dv.getUint32(0, true), ptrHi = dv.getUint32(4, true), val = dv.getUint32(8, true), valHi = dv.getUint32(12, true);
      if (ptrHi !== 0 || valHi !== 0) { res = this.reject(-XEN_ERRNO.EINVAL, 'address-above-4g'); break; }
      const cmd = ptrLo & 3;
      if (cmd === MMU_MACHPHYS_UPDATE) { res = this.reject(-XEN_ERRNO.ENOSYS, 'machphys-update'); break; }
      if (cmd !== MMU_NORMAL_PT_UPDATE) { res = this.reject(-XEN_ERRNO.ENOSYS, 'bad-mmu-update-cmd'); break; }
      const r = this.mm.update(ptrLo & ~3, val);
      if (r !== null) { res = this.reject(r.errno, r.reason); break; }
    }
    this.bump('mmu_update.entries', 0, done);
    this.batch('mmu_update', done);
    this.cpu.charge('hypercall:mmu_update', this.costs.mmuUpdateBase + this.costs.mmuUpdatePerEntry * done);
    if (doneVa !== 0) this.writeGuest32(doneVa, done);
    return res;
  }

  private updateVaMapping(va: number, val: number, flags: number): number {
    this.cpu.charge('hypercall:update_va_mapping', this.costs.mmuUpdateBase + this.costs.mmuUpdatePerEntry);
    const at = this.mm.entryFor(va);
    if (at < 0) return this.reject(-XEN_ERRNO.EINVAL, 'unmapped-va');
    const r = this.mm.update(at, val);
    if (r !== null) return this.reject(r.errno, r.reason);
    if ((flags & 3) === UVMF_INVLPG) this.cpu.invalidatePage(va);
    else if ((flags & 3) === UVMF_TLB_FLUSH) this.cpu.flushTlb(false);
    return 0;
  }

  private mmuextOp(opsVa: number, count: number, doneVa: number, dom: number): number {
    if (dom !== DOMID_SELF && dom !== this.domid) return this.reject(-XEN_ERRNO.EPERM, 'foreign-domain');
    const buf = new Uint8Array(12), dv = new DataView(buf.buffer);
    let done = 0, res = 0;
    for (; done < count; done++) {
      if (!this.copyFromGuest(opsVa + done * 12, buf)) { res = this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer'); break; }
      const cmd = dv.getUint32(0, true), arg1 = dv.getUint32(4, true);
      let r: Refused | null = null;
      switch (cmd) {
        case MMUEXT.PIN_L1_TABLE: r = this.mm.pin(arg1, PT_L1); break;
        case MMUEXT.PIN_L2_TABLE: r = this.mm.pin(arg1, PT_L2); break;
        case MMUEXT.UNPIN_TABLE: r = this.mm.unpin(arg1); break;
        case MMUEXT.NEW_BASEPTR: r = this.mm.newBase(arg1); break;
        case MMUEXT.TLB_FLUSH_LOCAL: case MMUEXT.TLB_FLUSH_ALL: this.cpu.flushTlb(false); break;
        case MMUEXT.INVLPG_LOCAL: case MMUEXT.INVLPG_ALL: this.cpu.invalidatePage(arg1); break;
        default: r = new Refused(-XEN_ERRNO.ENOSYS, 'bad-mmuext-cmd');
      }
      if (r !== null) { res = this.reject(r.errno, r.reason); break; }
    }
    this.batch('mmuext_op', done);
    this.cpu.charge('hypercall:mmuext_op', this.costs.mmuUpdateBase + this.costs.mmuUpdatePerEntry * done);
    if (doneVa !== 0) this.writeGuest32(doneVa, done);
    return res;
  }

  private multicall(listVa: number, count: number): number {
    const buf = new Uint8Array(MULTICALL_ENTRY_SIZE), dv = new DataView(buf.buffer);
    this.cpu.charge('hypercall:multicall', this.costs.multicallBase + this.costs.multicallPerEntry * count);
    this.batch('multicall', count);
    for (let i = 0; i < count; i++) {
      const at = listVa + i * MULTICALL_ENTRY_SIZE;
      if (!this.copyFromGuest(at, buf)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer');
      const op = dv.getUint32(0, true);
      const a = (k: number): number => dv.getUint32(8 + k * 4, true);
      const res = op === HYPERCALL.multicall || op === HYPERCALL.iret ? this.reject(-XEN_ERRNO.EINVAL, 'bad-multicall-op')
        : this.dispatch(op, a(0), a(1), a(2), a(3), a(4));
      this.bump(`multicall:${HYPERCALL_NAME[op] ?? `#${op}`}`);
      this.writeGuest32(at + 4, res);
    }
    return 0;
  }

  private consoleIo(cmd: number, count: number, va: number): number {
    if (cmd === CONSOLEIO_read) return 0;
    if (cmd !== CONSOLEIO_write) return this.reject(-XEN_ERRNO.ENOSYS, 'bad-console-cmd');
    if (count > 1 << 16) return this.reject(-XEN_ERRNO.EINVAL, 'bad-console-count');
    const b = new Uint8Array(count);
    if (!this.copyFromGuest(va, b)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer');
    for (const x of b) this.machine.console.write(x);
    return 0;
  }

  private vcpuOp(cmd: number, vcpu: number, argVa: number): number {
    if (vcpu !== 0) return this.reject(-XEN_ERRNO.ENOENT, 'bad-vcpu');
    const buf = new Uint8Array(8), dv = new DataView(buf.buffer);
    switch (cmd) {
      case VCPUOP.set_periodic_timer: {
        if (!this.copyFromGuest(argVa, buf)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer');
        const ns = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
        if (ns < 1000) return this.reject(-XEN_ERRNO.EINVAL, 'bad-timer-period');
        this.periodCycles = Math.max(1, this.nsToCycles(ns));
        this.nextTick = this.cpu.cycles + this.periodCycles;
        this.armTimer();
        return 0;
      }
      case VCPUOP.stop_periodic_timer: this.periodCycles = 0; this.armTimer(); return 0;
      case VCPUOP.set_singleshot_timer: {
        if (!this.copyFromGuest(argVa, buf)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer');
        const ns = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
        this.oneShot = Math.max(this.cpu.cycles, this.nsToCycles(ns));
        this.armTimer();
        return 0;
      }
      case VCPUOP.stop_singleshot_timer: this.oneShot = -1; this.armTimer(); return 0;
      default: return this.reject(-XEN_ERRNO.ENOSYS, 'bad-vcpu-op');
    }
  }

  private schedOp(cmd: number, argVa: number): number {
    const cpu = this.cpu;
    switch (cmd) {
      case SCHEDOP.yield: return 0; // one vCPU: nothing else to run
      case SCHEDOP.block: {
        // Re-enables events atomically, then waits for one (sched.h).
        this.mem.u8[this.vcpu(VCPU.UPCALL_MASK)] = 0;
        if (this.mem.u8[this.vcpu(VCPU.UPCALL_PENDING)] === 0) { cpu.halted = true; cpu.updateAttention(); }
        this.bump('block');
        return 0;
      }
      case SCHEDOP.shutdown: {
        const b = new Uint8Array(8);
        if (!this.copyFromGuest(argVa, b)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer');
        const dv = new DataView(b.buffer);
        const reason = dv.getUint32(0, true), status = dv.getUint32(4, true);
        if (reason === SHUTDOWN.poweroff) cpu.stop({ kind: 'exit-device', code: status * 2 + 1 });
        else cpu.stop({ kind: 'shutdown', detail: `pv: the domain shut down (reason ${reason})` });
        return 0;
      }
      default: return this.reject(-XEN_ERRNO.ENOSYS, 'bad-sched-op');
    }
  }

  private callbackOp(cmd: number, argVa: number): number {
    if (cmd !== CALLBACKOP_register) return this.reject(-XEN_ERRNO.ENOSYS, 'bad-callback-op');
    const b = new Uint8Array(12);
    if (!this.copyFromGuest(argVa, b)) return this.reject(-XEN_ERRNO.EFAULT, 'bad-buffer');
    const dv = new DataView(b.buffer);
    const type = dv.getUint16(0, true), flags = dv.getUint16(2, true), cs = this.kernelCs(dv.getUint32(4, true)), eip = dv.getUint32(8, true);
    if (cs < 0) return this.reject(-XEN_ERRNO.EINVAL, 'bad-selector');
    switch (type) {
      case CALLBACKTYPE.event: this.eventCb = { cs, eip }; return 0;
      case CALLBACKTYPE.failsafe: this.failsafeCb = { cs, eip }; return 0;
      case CALLBACKTYPE.sysenter: case CALLBACKTYPE.sysenter_deprecated: this.sysenterCb = { cs, eip, mask: (flags & 1) !== 0 }; return 0;
      default: return this.reject(-XEN_ERRNO.EINVAL, 'bad-callback-type');
    }
  }

  /**
   * HYPERVISOR_iret: the frame at ESP is EAX, EIP, CS, EFLAGS[, ESP, SS]; the upcall mask
   * becomes !EFLAGS.IF (Xen's do_iret).
   */
  private iret(): void {
    const cpu = this.cpu;
    const sp = cpu.r32[ESP]! >>> 0;
    const w: number[] = [];
    for (let i = 0; i < 6; i++) {
      const p = this.guestPhys(sp + i * 4, false);
      if (p < 0) { if (i < 4) { this.crash(`iret: the frame at ${hex(sp)} is unreadable`); return; } w.push(0); continue; }
      w.push(this.mem.read32(p));
    }
    const [eax, eip, cs, eflags, esp, ss] = w as [number, number, number, number, number, number];
    const rpl = cs & 3;
    let codeAttr: number;
    if ((cs & 0xfffc) === 0x08 && rpl === 1) codeAttr = KCODE_ATTR;
    else if ((cs & 0xfffc) === 0x18 && rpl === 3) codeAttr = UCODE_ATTR;
    else { this.countRejected('iret-bad-cs'); this.crash(`iret to CS ${hex(cs)}`); return; }
    if (rpl === 3 && (ss & 0xffff) !== 0x23) { this.countRejected('iret-bad-ss'); this.crash(`iret to user SS ${hex(ss)}`); return; }
    this.bump('hypercall:iret', this.costs.hypercall);
    cpu.r32[EAX] = eax;
    cpu.eip = eip >>> 0; // the CPU keeps EIP unsigned
    cpu.flags = ((eflags & ~(IOPL | VM | NT | RF)) | IF | 2) >>> 0;
    this.mem.u8[this.vcpu(VCPU.UPCALL_MASK)] = (eflags & IF) !== 0 ? 0 : 1;
    if (rpl === 3) {
      cpu.cpl = 3;
      cpu.setSegmentCache(CS, cs & 0xffff, 0, SEG_LIMIT, codeAttr);
      cpu.setSegmentCache(SS, 0x23, 0, SEG_LIMIT, UDATA_ATTR);
      cpu.r32[ESP] = esp;
    } else {
      cpu.setSegmentCache(CS, cs & 0xffff, 0, SEG_LIMIT, codeAttr);
      cpu.r32[ESP] = (sp + 16) | 0;
    }
    cpu.resetFetch();
    cpu.updateAttention();
  }

  // ====================================================================== helpers

  /** Machine address of a vcpu_info[0] field. */
  private vcpu(field: number): number { return this.sharedInfoMfn * PAGE + field; }

  /**
   * Guest virtual → machine address through the current tables (supervisor access, write
   * protection honoured as the CPU does with CR0.WP); -1 when not mapped, or in the
   * hypervisor's range.
   */
  guestPhys(va: number, write: boolean): number {
    va >>>= 0;
    if (va >= MONITOR_WINDOW || this.mm.base < 0) return -1;
    const pde = this.mem.read32(this.mm.base * PAGE + (va >>> 22) * 4);
    if ((pde & 1) === 0 || (write && (pde & 2) === 0)) return -1;
    const pte = this.mem.read32(((pde & ~0xfff) >>> 0) + ((va >>> 12) & 0x3ff) * 4);
    if ((pte & 1) === 0 || (write && (pte & 2) === 0)) return -1;
    return (((pte & ~0xfff) >>> 0) + (va & 0xfff)) >>> 0;
  }

  private writeGuest32(va: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.copyToGuest(va, b);
  }

  private bump(kind: string, cycles = 0, n = 1): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + n);
    if (cycles !== 0) this.cpu.charge(kind, cycles);
  }

  private batch(op: string, n: number): void {
    this.batchSizes.set(`batch.${op}.max`, Math.max(this.batchSizes.get(`batch.${op}.max`) ?? 0, n));
  }

  stats(): MonitorStats {
    const out: Record<string, number> = {};
    for (const k of [...this.counts.keys()].sort()) out[k] = this.counts.get(k)!;
    for (const [k, v] of this.batchSizes) out[k] = v;
    if (this.mm) for (const [k, v] of Object.entries(this.mm.stats)) out[`mm.${k}`] = v;
    if (this.drivers) {
      for (const [k, v] of Object.entries(this.drivers.events.counters)) out[`evtchn.${k}`] = v;
      for (const [k, v] of Object.entries(this.drivers.grants.counters)) out[`gnttab.${k}`] = v;
    }
    return out;
  }
}

/**
 * The I/O ports a domain may use (Xen's per-domain ioport capabilities, which the toolstack
 * grants; virtlab grants the legacy ports its kernel and nanobenchmarks touch): the 8259A
 * pair, the POST port 0x80, COM1. No disk, NIC, PIT, PCI or exit-port access: those go
 * through the PV interfaces.
 */
export function permittedPort(p: number): boolean {
  return p === 0x20 || p === 0x21 || p === 0xa0 || p === 0xa1 || p === 0x80 || (p >= 0x3f8 && p <= 0x3ff);
}

/** An odd multiplier coprime with n (a permutation pfn → (k·pfn + c) mod n). */
function permutationMultiplier(n: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  for (const k of [40503, 2654435761 % 1_000_003, 7919, 104729, 1_000_003]) if (gcd(k % n || 1, n) === 1 && k % n > 1) return k % n;
  return 1;
}

function hex(v: number): string { return '0x' + (v >>> 0).toString(16).padStart(8, '0'); }
