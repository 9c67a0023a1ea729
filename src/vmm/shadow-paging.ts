/**
 * Shadow paging, shared by the deprivileging monitors (`trap`, later `full` and `hw`
 * with shadow paging): the real CR3 holds a shadow page directory in monitor memory; the
 * guest's CR0.PG/WP, CR3 and CR4.PSE are virtual state.
 *
 * - Hidden page faults fill shadow PTEs lazily from the guest's tables (walked in
 *   software here), setting the guest's accessed and dirty bits as the hardware would; a
 *   page the guest has not yet dirtied is mapped read-only so the first write comes here.
 * - Guest page-table pages (directories and tables the shadow was built from) are
 *   write-protected in the shadow ("traces"): a guest write to one faults, is emulated by
 *   the CPU's own handler under a temporary writable mapping, and the shadow entries built
 *   from the words it changed are dropped (refilled lazily).
 * - A shadow directory is cached per guest CR3 and stays in sync while cached (its guest
 *   directory stays traced), so address-space switches keep their shadows.
 * - 4 MiB guest pages (PSE) are shadowed as 4 KiB pieces.
 * - Monitor memory (above `mem.guestSize`) is never mapped by a shadow entry. A guest
 *   mapping of a frame beyond its RAM gets what the bare PC gives for a physical address with
 *   no memory behind it: the shadow maps `OPEN_BUS_FRAME`, beyond all of the machine's memory,
 *   where `PhysicalMemory` reads all ones and drops writes; a guest page-table word beyond its
 *   RAM reads all ones (and its A/D bits are not written). Both are counted (`stats.unbacked`).
 */
import { CR0_PG, CR0_WP, CR4_PSE, FAULT, Vec, type Cpu } from '../machine/cpu/cpu.js';
import type { PhysicalMemory } from '../machine/memory.js';
import { PROVISIONAL_VMM_COSTS } from './costs.js';
import { mutant } from './mutants.js';

/** The guest's view of paging (the monitor's virtual control registers). */
export interface GuestPagingState {
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
}

/** What `handleFault` decided. */
export const FaultOutcome = {
  /** A hidden fault: the shadow was filled (or a write upgraded); retry the instruction. */
  Hidden: 0,
  /** A trace fault: the write was emulated and the shadow synced; EIP is past it. */
  Trace: 1,
  /** The guest's own tables forbid the access: reflect #PF to the guest (`guestCode`). */
  Guest: 2,
  /** The machine was stopped (a guest mapping outside its RAM, monitor memory exhausted twice...). */
  Stopped: 3,
} as const;
export type FaultOutcome = (typeof FaultOutcome)[keyof typeof FaultOutcome];

/**
 * What the shadow page-table software costs, per event. It is the same code wherever it
 * runs — after a trap into `trap`'s or `full`'s monitor, or in `hw --paging shadow`'s
 * root-mode handler after a #PF or CR3 exit — so every shadowing monitor charges it from
 * here (`shadowFaultCharge`, `shadowBuildCharge`); `hw` adds only its VM exit and entry.
 */
export interface ShadowSoftwareCosts {
  /** A hidden fault: software walk of the guest's tables, A/D bits, shadow PTE fill (profile `binaryTranslation.hiddenPageFault`). */
  readonly hiddenFault: number;
  /** A trace fault: decoding and emulating the guest's write to a traced page, shadow update (`binaryTranslation.traceFault`). */
  readonly traceFault: number;
  /** Per shadow PTE dropped because the guest word it came from changed (`monitor.shadowPteDrop`). */
  readonly pteDrop: number;
  /** A new shadow address space on a CR3 load that misses the cache (`monitor.shadowSpaceCreate`). */
  readonly spaceCreate: number;
}

/**
 * The shadow software's figures from a profile's VMM sections (`toVmmCosts(profile)`); null
 * (a profile without VMM figures) gives the provisional estimates of src/vmm/costs.ts.
 */
export function shadowSoftwareCosts(vmm: {
  readonly bt: { readonly hiddenPageFault: number; readonly traceFault: number };
  readonly monitor: { readonly shadowPteDrop: number; readonly shadowSpaceCreate: number };
} | null): ShadowSoftwareCosts {
  if (vmm === null) {
    const p = PROVISIONAL_VMM_COSTS;
    return { hiddenFault: p.hiddenFault.value, traceFault: p.traceFault.value, pteDrop: p.syncDrop.value, spaceCreate: p.newSpace.value };
  }
  return {
    hiddenFault: Math.round(vmm.bt.hiddenPageFault), traceFault: Math.round(vmm.bt.traceFault),
    pteDrop: Math.round(vmm.monitor.shadowPteDrop), spaceCreate: Math.round(vmm.monitor.shadowSpaceCreate),
  };
}

/** Accounting categories of the shadow software (the same in every shadowing mode). */
export const SHADOW_CATEGORY = { hidden: 'hidden-fault', trace: 'shadow-sync', build: 'shadow-build' } as const;

/**
 * The shadow software's charge for one #PF that `handleFault` handled with `outcome`, having
 * dropped `drops` shadow PTEs: [category, cycles], or null when the fault was the guest's own
 * (its reflection or injection is the monitor's event machinery, charged by the caller) or the
 * machine stopped.
 */
export function shadowFaultCharge(c: ShadowSoftwareCosts, outcome: FaultOutcome, drops: number): readonly [string, number] | null {
  if (outcome === FaultOutcome.Hidden) return [SHADOW_CATEGORY.hidden, c.hiddenFault];
  if (outcome === FaultOutcome.Trace) return [SHADOW_CATEGORY.trace, c.traceFault + drops * c.pteDrop];
  return null;
}

/** The shadow software's charge for building `n` shadow address spaces. */
export function shadowBuildCharge(c: ShadowSoftwareCosts, n: number): number { return n * c.spaceCreate; }

/** Counters of shadow-paging work, for the run record. */
export interface ShadowStats {
  hiddenFaults: number;
  traceFaults: number;
  /** Shadow entries dropped because a guest page-table word they came from changed. */
  syncDrops: number;
  guestFaults: number;
  invlpg: number;
  cr3Switches: number;
  /** Shadow address spaces built (cache misses on a CR3 load). */
  spacesBuilt: number;
  /** Whole-cache flushes (paging mode changes, monitor memory exhausted). */
  cacheFlushes: number;
  /** Shadows of other address spaces dropped because the guest wrote a frame they came from. */
  unshadowed: number;
  /**
   * Trace faults on a frame that is write-protected only because a monitor watches it (a
   * descriptor table, translated code) and no shadow was built from it: the guest wrote
   * something else on that page (false sharing) or the watched table itself.
   */
  watchedFaults: number;
  /**
   * Guest references to physical memory it does not have (a mapping of a frame beyond its
   * RAM shadowed, a page-table word read beyond its RAM): `attack.unbacked-memory`.
   */
  unbacked: number;
}

/**
 * The frame a shadow entry maps for a guest frame beyond guest RAM: above all of the
 * machine's memory (a machine has far less than 4 GiB), so the CPU's accesses through it
 * read all ones and drop writes, as on the bare machine, and never reach monitor memory.
 */
export const OPEN_BUS_FRAME = 0xfffff000;

/** Frames of monitor memory, handed out and taken back. */
export class MonitorFrames {
  private readonly free: number[] = [];
  private next: number;
  readonly start: number;
  readonly end: number;
  constructor(readonly mem: PhysicalMemory, start = mem.guestSize, end = mem.size) {
    if (start < mem.guestSize || end > mem.size || start % 4096 !== 0 || end % 4096 !== 0 || end <= start) {
      throw new RangeError(`monitor frames must lie in monitor memory [${mem.guestSize}, ${mem.size}), got [${start}, ${end})`);
    }
    this.start = start; this.end = end; this.next = start;
  }
  /** A zeroed frame's physical address, or -1 when none is left. */
  alloc(): number {
    const f = this.free.length > 0 ? this.free.pop()! : this.next < this.end ? (this.next += 4096) - 4096 : -1;
    if (f >= 0) this.mem.u8.fill(0, f, f + 4096);
    return f;
  }
  release(frame: number): void { this.free.push(frame); }
}

/** One cached shadow address space. */
interface Space {
  /** Guest CR3 frame, or -1 for the guest's paging-off identity space. */
  readonly key: number;
  /** Physical address of the shadow directory (monitor memory). */
  readonly pd: number;
  /** Shadow page table frame per directory index. */
  readonly pts: Map<number, number>;
  /** The guest page-table frame each shadow table was built from (-1 for a 4 MiB page or paging off). */
  readonly srcPt: Map<number, number>;
}

const PRESENT = 1, RW = 2, US = 4, ACC = 0x20, DIRTY = 0x40, PS = 0x80;
/** Most cached address spaces before the least recently loaded is dropped. */
const MAX_SPACES = 64;

/** Shadow page tables for one CPU. */
export class ShadowPaging {
  readonly stats: ShadowStats = { hiddenFaults: 0, traceFaults: 0, syncDrops: 0, guestFaults: 0, invlpg: 0, cr3Switches: 0, spacesBuilt: 0, cacheFlushes: 0, unshadowed: 0, watchedFaults: 0, unbacked: 0 };

  /** The counters as run-record entries (`shadow.<name>`), in a fixed order: every monitor that shadows reports them alike. */
  statsRecord(): Record<string, number> {
    const s = this.stats;
    return {
      'shadow.hidden-faults': s.hiddenFaults,
      'shadow.trace-faults': s.traceFaults,
      'shadow.sync-drops': s.syncDrops,
      'shadow.guest-faults': s.guestFaults,
      'shadow.invlpg': s.invlpg,
      'shadow.cr3-switches': s.cr3Switches,
      'shadow.spaces-built': s.spacesBuilt,
      'shadow.cache-flushes': s.cacheFlushes,
      'shadow.unshadowed': s.unshadowed,
      'shadow.watched-faults': s.watchedFaults,
      'attack.unbacked-memory': s.unbacked,
    };
  }
  /** Error code for the guest after `FaultOutcome.Guest`. */
  guestCode = 0;
  /** Cached spaces in load order (most recent last). */
  private readonly spaces = new Map<number, Space>();
  private current: Space | null = null;
  /** Guest frames write-protected because a shadow was built from them: frame → users. */
  private readonly traced = new Map<number, number>();
  /**
   * PDE a monitor keeps in every shadow directory (its own linear window), or null.
   * Index and value; the value must point at monitor memory mapped supervisor-only.
   */
  monitorPde: { index: number; value: number } | null = null;

  constructor(private readonly cpu: Cpu, private readonly frames: MonitorFrames, private readonly guest: GuestPagingState) {}

  /** Physical address of the current shadow directory (for the real CR3). */
  get shadowCr3(): number { return this.current!.pd; }

  private get guestSize(): number { return this.cpu.mem.guestSize; }
  private get guestPaging(): boolean { return (this.guest.cr0 & CR0_PG) !== 0; }

  // ======================================================================================
  // Address spaces
  // ======================================================================================

  /**
   * Makes the shadow of the guest's current paging state current and loads the real CR3
   * with it (flushing the TLB, as the guest's own CR3 load would). Call on every guest CR3
   * load and after `flushAll`.
   */
  activate(): void {
    if (this.current !== null && mutant('cr3-stale-shadow')) { this.stats.cr3Switches++; return; } // verifier mutant
    const key = this.guestPaging ? (this.guest.cr3 & 0xfffff000) >>> 0 : -1;
    let s = this.spaces.get(key);
    if (s !== undefined) {
      this.spaces.delete(key); // re-insert: most recently used last
      this.spaces.set(key, s);
    } else {
      if (this.spaces.size >= MAX_SPACES) this.dropSpace(this.spaces.values().next().value!);
      const pd = this.allocFrame();
      if (pd < 0) return;
      s = { key, pd, pts: new Map(), srcPt: new Map() };
      if (this.monitorPde !== null) this.cpu.mem.write32(pd + this.monitorPde.index * 4, this.monitorPde.value);
      this.spaces.set(key, s);
      if (key >= 0) this.trace(key);
      this.stats.spacesBuilt++;
    }
    this.current = s;
    this.stats.cr3Switches++;
    this.cpu.cr3 = s.pd;
    this.cpu.flushTlb(false);
  }

  /** Drops every shadow (guest paging mode changed: PG, WP, PSE) and re-activates. */
  flushAll(): void {
    for (const s of [...this.spaces.values()]) this.dropSpace(s);
    this.current = null;
    this.stats.cacheFlushes++;
    this.activate();
  }

  /** A frame for a shadow directory: the cache is emptied when monitor memory runs out. */
  private allocFrame(): number {
    let f = this.frames.alloc();
    if (f >= 0) return f;
    for (const s of [...this.spaces.values()]) this.dropSpace(s);
    this.current = null;
    this.stats.cacheFlushes++;
    f = this.frames.alloc();
    if (f < 0) this.cpu.stop({ kind: 'shutdown', detail: 'monitor memory exhausted by shadow page tables' });
    return f;
  }

  private dropSpace(s: Space): void {
    for (const i of [...s.pts.keys()]) this.dropPde(s, i);
    if (s.key >= 0) this.untrace(s.key);
    this.frames.release(s.pd);
    this.spaces.delete(s.key);
    if (this.current === s) this.current = null;
  }

  /** Drops the shadow table under directory index `i` of `s`. */
  private dropPde(s: Space, i: number): void {
    const pt = s.pts.get(i);
    if (pt === undefined) return;
    this.cpu.mem.write32(s.pd + i * 4, 0);
    s.pts.delete(i);
    const src = s.srcPt.get(i)!;
    s.srcPt.delete(i);
    if (src >= 0) this.untrace(src);
    this.frames.release(pt);
    if (s === this.current) this.cpu.flushTlb(false);
  }

  // ---- traces ----

  private trace(frame: number): void {
    if (frame + 4096 > this.guestSize) return; // beyond guest RAM: nothing the guest can write
    const n = this.traced.get(frame) ?? 0;
    this.traced.set(frame, n + 1);
    if (n === 0) this.writeProtect(frame);
  }

  private untrace(frame: number): void {
    const n = this.traced.get(frame);
    if (n === undefined) return;
    if (n <= 1) this.traced.delete(frame); else this.traced.set(frame, n - 1);
  }

  /** True when guest frame `frame` is write-protected (a page table some shadow came from, or watched). */
  isTraced(frame: number): boolean { return this.traced.has(frame) || this.watchers.has(frame); }

  /** Frames a monitor watches (e.g. the guest's GDT), with what to do after a guest write. */
  private readonly watchers = new Map<number, () => void>();

  /**
   * Write-protects guest frame `frame` in every shadow and calls `onWrite` after each guest
   * write to it (emulated as a trace fault); `unwatchAll` ends it.
   */
  watch(frame: number, onWrite: () => void): void {
    if (frame + 4096 > this.guestSize) return;
    const had = this.isTraced(frame);
    this.watchers.set(frame, onWrite);
    if (!had) this.writeProtect(frame);
  }

  unwatchAll(): void { this.watchers.clear(); }

  /**
   * The guest writes frame `frame`, traced only because a cached address space other than
   * the current one was built from it (often a page table the guest has since freed and
   * reused): drop those shadows (rebuilt if that space is loaded again) rather than trace
   * every write. The current space's shadow is always in sync, so its uses stay.
   */
  private releaseStale(frame: number): void {
    for (const s of [...this.spaces.values()]) {
      if (s === this.current) continue;
      if (s.key === frame) { this.dropSpace(s); this.stats.unshadowed++; continue; }
      for (const [pdi, src] of [...s.srcPt]) if (src === frame) { this.dropPde(s, pdi); this.stats.unshadowed++; }
    }
  }

  /** Clears the write bit of every shadow PTE that maps `frame` (it has just become traced). */
  private writeProtect(frame: number): void {
    const mem = this.cpu.mem;
    let hit = false;
    for (const s of this.spaces.values()) {
      for (const pt of s.pts.values()) {
        for (let a = pt; a < pt + 4096; a += 4) {
          const e = mem.read32(a);
          if ((e & (PRESENT | RW)) === (PRESENT | RW) && ((e & 0xfffff000) >>> 0) === frame) { mem.write32(a, e & ~RW); hit = true; }
        }
      }
    }
    if (hit) this.cpu.flushTlb(false);
  }

  // ======================================================================================
  // The guest's tables, walked in software
  // ======================================================================================

  /** Result of `guestWalk`: frame (or -1 with `guestCode` set), and what the walk found. */
  private wFrame = 0;
  private wUser = false;
  private wWrite = false;
  private wDirty = false;
  /** Guest page-table frame of the leaf (-1: a 4 MiB page). */
  private wPt = -1;

  /**
   * Walks the guest's tables for `lin` as the hardware would for an access at virtual
   * privilege `user`, setting accessed/dirty bits. False (with `guestCode`) on a guest #PF.
   */
  private guestWalk(lin: number, write: boolean, user: boolean): boolean {
    const err = (write ? 2 : 0) | (user ? 4 : 0);
    if (!this.guestPaging) {
      this.wFrame = (lin & 0xfffff000) >>> 0; this.wUser = true; this.wWrite = true; this.wDirty = true; this.wPt = -1;
      return true;
    }
    const wp = (this.guest.cr0 & CR0_WP) !== 0;
    const pdeAddr = ((this.guest.cr3 & 0xfffff000) + ((lin >>> 22) << 2)) >>> 0;
    let pde = this.readGuest(pdeAddr);
    if ((pde & PRESENT) === 0) { this.guestCode = err; return false; }
    if ((pde & PS) !== 0 && (this.guest.cr4 & CR4_PSE) !== 0) {
      if ((pde & 0x003ff000) !== 0) { this.guestCode = err | 1 | 8; return false; }
      const us = (pde & US) !== 0, rw = (pde & RW) !== 0;
      if (!allowed(user, write, us, rw, wp)) { this.guestCode = err | 1; return false; }
      const want = pde | ACC | (write ? DIRTY : 0);
      if (want !== pde) { this.writeGuest(pdeAddr, want); pde = want; }
      this.wFrame = ((pde & 0xffc00000) + (lin & 0x3ff000)) >>> 0;
      this.wUser = us; this.wWrite = rw; this.wDirty = (pde & DIRTY) !== 0; this.wPt = -1;
      return true;
    }
    const pt = (pde & 0xfffff000) >>> 0;
    const pteAddr = (pt + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
    let pte = this.readGuest(pteAddr);
    if ((pte & PRESENT) === 0) { this.guestCode = err; return false; }
    const us = (pde & pte & US) !== 0, rw = (pde & pte & RW) !== 0;
    if (!allowed(user, write, us, rw, wp)) { this.guestCode = err | 1; return false; }
    if ((pde & ACC) === 0) this.writeGuest(pdeAddr, pde | ACC);
    const want = pte | ACC | (write ? DIRTY : 0);
    if (want !== pte) { this.writeGuest(pteAddr, want); pte = want; }
    this.wFrame = (pte & 0xfffff000) >>> 0;
    this.wUser = us; this.wWrite = rw; this.wDirty = (pte & DIRTY) !== 0;
    // A table beyond guest RAM is never traced (the guest cannot change it: writes are dropped).
    this.wPt = pt + 4096 <= this.guestSize ? pt : -1;
    return true;
  }

  /** Reads a guest page-table word: all ones beyond guest RAM, as the bare machine reads there (counted). */
  private readGuest(addr: number): number {
    if (addr + 4 > this.guestSize) { this.stats.unbacked++; return -1; }
    return this.cpu.mem.read32(addr);
  }

  /** Writes a guest page-table word (A/D bits); dropped beyond guest RAM. */
  private writeGuest(addr: number, v: number): void {
    if (mutant('shadow-skips-ad')) return; // verifier mutant: only A/D updates come here
    if (addr + 4 <= this.guestSize) this.cpu.mem.write32(addr, v);
  }

  /** The frame a shadow entry maps for guest frame `frame`: itself, or `OPEN_BUS_FRAME` beyond guest RAM (counted). */
  private backing(frame: number): number {
    if (frame + 4096 <= this.guestSize) return mutant('shadow-wrong-frame') ? (frame ^ 0x1000) >>> 0 : frame; // verifier mutant
    if (mutant('shadow-no-frame-check')) return frame; // verifier mutant
    if (this.cpu.mem.size > OPEN_BUS_FRAME) {
      this.cpu.stop({ kind: 'shutdown', detail: `the guest maps physical 0x${(frame >>> 0).toString(16)}, beyond its RAM, and the machine has no address left beyond its memory for an open-bus mapping` });
      throw FAULT;
    }
    this.stats.unbacked++;
    return OPEN_BUS_FRAME;
  }

  /** A guest-physical word for the monitor's own reads (gates, descriptors): all ones beyond guest RAM. */
  private peekGuest(addr: number): number {
    return addr + 4 <= this.guestSize ? this.cpu.mem.read32(addr) : -1;
  }

  /** The guest's translation of `lin` (virtual privilege `user`), without side effects; -1 if it would fault. */
  guestTranslate(lin: number, write: boolean, user: boolean): number {
    lin >>>= 0;
    if (!this.guestPaging) return lin;
    const wp = (this.guest.cr0 & CR0_WP) !== 0;
    const pde = this.peekGuest(((this.guest.cr3 & 0xfffff000) + ((lin >>> 22) << 2)) >>> 0);
    if ((pde & PRESENT) === 0) return -1;
    if ((pde & PS) !== 0 && (this.guest.cr4 & CR4_PSE) !== 0) {
      if ((pde & 0x003ff000) !== 0 || !allowed(user, write, (pde & US) !== 0, (pde & RW) !== 0, wp)) return -1;
      return ((pde & 0xffc00000) + (lin & 0x3fffff)) >>> 0;
    }
    const pte = this.peekGuest(((pde & 0xfffff000) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0);
    if ((pte & PRESENT) === 0 || !allowed(user, write, (pde & pte & US) !== 0, (pde & pte & RW) !== 0, wp)) return -1;
    return ((pte & 0xfffff000) + (lin & 0xfff)) >>> 0;
  }

  // ======================================================================================
  // Faults
  // ======================================================================================

  /**
   * A #PF while the guest runs on the shadow (`cpu.cr2` = the linear address, `code` the
   * hardware error code, `user` = the guest's virtual CPL is 3). Fills the shadow, emulates
   * a write to a traced page, or tells the caller to reflect the fault.
   */
  handleFault(code: number, user: boolean): FaultOutcome {
    const cpu = this.cpu;
    const lin = cpu.cr2 >>> 0;
    const write = (code & 2) !== 0;
    try {
      if (!this.guestWalk(lin, write, user)) { this.stats.guestFaults++; return FaultOutcome.Guest; }
      const frame = this.backing(this.wFrame);
      const pti = (lin >>> 12) & 0x3ff;
      const pt = this.ensurePt(lin);
      if (pt < 0) return cpu.stopReason !== null ? FaultOutcome.Stopped : FaultOutcome.Hidden;
      const wantWrite = this.wWrite || (!user && (this.guest.cr0 & CR0_WP) === 0);
      if (write && this.traced.has(frame)) this.releaseStale(frame);
      const traced = this.isTraced(frame) && !mutant('shadow-pt-writable'); // verifier mutant
      if (write && traced) {
        if (!this.traced.has(frame)) this.stats.watchedFaults++;
        this.emulateTracedWrite(lin);
        this.stats.traceFaults++;
        return cpu.stopReason !== null ? FaultOutcome.Stopped : FaultOutcome.Trace;
      }
      if (write && !this.wWrite) {
        // Supervisor write to a read-only page with the guest's CR0.WP clear: allowed to the
        // guest kernel but not to its user code, which shares the shadow entry: emulate.
        this.emulateTracedWrite(lin);
        this.stats.traceFaults++;
        return cpu.stopReason !== null ? FaultOutcome.Stopped : FaultOutcome.Trace;
      }
      // Writable in the shadow only once the guest's dirty bit is set (so the first write
      // comes here and sets it), and never for a traced page-table page.
      const w = wantWrite && this.wWrite && this.wDirty && !traced;
      cpu.mem.write32(pt + pti * 4, frame | PRESENT | (w ? RW : 0) | (this.wUser || mutant('shadow-ignores-us') ? US : 0)); // verifier mutant
      cpu.invalidatePage(lin);
      this.stats.hiddenFaults++;
      return FaultOutcome.Hidden;
    } catch (e) {
      if (e !== FAULT) throw e;
      return FaultOutcome.Stopped;
    }
  }

  /**
   * Runs the faulting instruction once with the CPU's own handler while the page(s) it
   * writes are temporarily writable in the shadow, then drops the shadow entries built from
   * the guest words it changed.
   */
  private emulateTracedWrite(lin: number): void {
    const cpu = this.cpu;
    const mem = cpu.mem;
    const opened: { lin: number; pteAddr: number; old: number; frame: number; snap: Int32Array }[] = [];
    const start = cpu.instrStart;
    // Makes linear page `l` writable in the shadow (after `guestWalk` for it succeeded).
    const open = (l: number): void => {
      const pt = this.ensurePt(l);
      if (pt < 0) throw FAULT; // cache flushed: the caller retries the instruction
      const pteAddr = pt + ((l >>> 12) & 0x3ff) * 4;
      let old = mem.read32(pteAddr);
      if ((old & PRESENT) === 0) old = this.wFrame | PRESENT | (this.wUser ? US : 0);
      const frame = (old & 0xfffff000) >>> 0;
      opened.push({ lin: l, pteAddr, old, frame, snap: mem.i32.slice(frame >>> 2, (frame >>> 2) + 1024) });
      mem.write32(pteAddr, old | RW);
      cpu.invalidatePage(l);
    };
    open(lin);
    try {
      for (let attempt = 0; ; attempt++) {
        cpu.eip = start;
        cpu.resetFetch();
        try {
          cpu.stepInstruction();
          break;
        } catch (e) {
          if (e !== FAULT || cpu.stopReason !== null || attempt >= 4 || cpu.excVector !== Vec.PF) throw e;
          // Another page of the same instruction (a source operand not yet shadowed, a split
          // write): fill or open it and run the instruction again; a guest fault propagates.
          const l2 = cpu.cr2 >>> 0, w2 = (cpu.excCode & 2) !== 0;
          if (!this.guestWalk(l2, w2, cpu.cpl === 3)) throw e;
          this.wFrame = this.backing(this.wFrame);
          if (w2) open(l2);
          else {
            const pt2 = this.ensurePt(l2);
            if (pt2 < 0) throw e;
            mem.write32(pt2 + ((l2 >>> 12) & 0x3ff) * 4, this.wFrame | PRESENT | (this.wUser ? US : 0));
            cpu.invalidatePage(l2);
          }
        }
      }
    } finally {
      for (const o of opened) {
        mem.write32(o.pteAddr, o.old & ~RW);
        cpu.invalidatePage(o.lin);
      }
      for (const o of opened) this.syncFrame(o.frame, o.snap);
    }
  }

  /** The shadow table for `lin`'s directory index (built from the last `guestWalk`'s table). */
  private ensurePt(lin: number): number {
    const s = this.current!;
    const pdi = lin >>> 22;
    let pt = s.pts.get(pdi);
    if (pt !== undefined) return pt;
    pt = this.frames.alloc();
    if (pt < 0) {
      // Monitor memory exhausted: start over with an empty cache; the access is retried.
      this.flushAll();
      return -1;
    }
    s.pts.set(pdi, pt);
    s.srcPt.set(pdi, this.wPt);
    this.cpu.mem.write32(s.pd + pdi * 4, pt | PRESENT | RW | US);
    if (this.wPt >= 0) this.trace(this.wPt);
    return pt;
  }

  /** The guest changed words of page-table frame `frame` (was `snap`): drop what was built from them. */
  private syncFrame(frame: number, snap: Int32Array): void {
    const mem = this.cpu.mem;
    const base = frame >>> 2;
    let changed = false;
    for (let i = 0; i < 1024; i++) {
      if (mem.i32[base + i] === snap[i]) continue;
      changed = true;
      if (this.traced.has(frame)) this.guestWordChanged(frame, i);
    }
    if (changed) this.watchers.get(frame)?.();
  }

  /** Word `i` of guest frame `frame` changed: as a directory entry, and as a table entry. */
  private guestWordChanged(frame: number, i: number): void {
    const mem = this.cpu.mem;
    for (const s of [...this.spaces.values()]) {
      if (s.key === frame && s.pts.has(i)) { this.dropPde(s, i); this.stats.syncDrops++; }
      for (const [pdi, src] of s.srcPt) {
        if (src !== frame) continue;
        const pt = s.pts.get(pdi)!;
        if (mem.read32(pt + i * 4) !== 0) {
          mem.write32(pt + i * 4, 0);
          this.stats.syncDrops++;
          if (s === this.current) this.cpu.invalidatePage(((pdi << 22) | (i << 12)) >>> 0);
        }
      }
    }
  }

  /**
   * Makes sure the shadow maps `lin` for a supervisor access (`write`: writable), filling it
   * from the guest's tables as a hidden fault would. For work the CPU does for the monitor
   * on the guest's memory (building a reflected event frame), whose faults the CPU would
   * otherwise chain into a double fault. False when the guest's own tables forbid it.
   */
  prefault(lin: number, write: boolean): boolean {
    lin >>>= 0;
    const cpu = this.cpu;
    const s = this.current!;
    const pt = s.pts.get(lin >>> 22);
    if (pt !== undefined) {
      const e = cpu.mem.read32(pt + ((lin >>> 12) & 0x3ff) * 4);
      if ((e & PRESENT) !== 0 && (!write || (e & RW) !== 0)) return true;
    }
    if (!this.guestWalk(lin, write, false)) return false;
    const frame = this.backing(this.wFrame);
    if (write && this.traced.has(frame)) this.releaseStale(frame);
    if (write && this.isTraced(frame)) return false; // a write-protected frame: let it fault
    const p2 = this.ensurePt(lin);
    if (p2 < 0) return false;
    const w = this.wWrite && this.wDirty && !this.isTraced(frame);
    cpu.mem.write32(p2 + ((lin >>> 12) & 0x3ff) * 4, frame | PRESENT | (w ? RW : 0) | (this.wUser ? US : 0));
    cpu.invalidatePage(lin);
    this.stats.hiddenFaults++;
    return true;
  }

  /** Guest INVLPG: drop the shadow entry (a 4 MiB region's whole table) and the TLB entry. */
  invalidate(lin: number): void {
    lin >>>= 0;
    this.stats.invlpg++;
    const s = this.current;
    if (s !== null) {
      const pdi = lin >>> 22;
      const pt = s.pts.get(pdi);
      if (pt !== undefined) {
        if (s.srcPt.get(pdi)! < 0) this.dropPde(s, pdi);
        else this.cpu.mem.write32(pt + ((lin >>> 12) & 0x3ff) * 4, 0);
      }
      // The guest may have changed its directory entry without a trace (it was not yet
      // the source of this table): drop the table when it no longer matches.
      if (s.key >= 0 && s.pts.has(pdi)) {
        const pde = this.peekGuest(((s.key + pdi * 4) >>> 0));
        const src = s.srcPt.get(pdi)!;
        if ((pde & PRESENT) === 0 || (pde & PS) !== 0 || ((pde & 0xfffff000) >>> 0) !== src) this.dropPde(s, pdi);
      }
    }
    this.cpu.invalidatePage(lin);
  }

  /** Every shadow PTE's frame, for checks: [linear page, frame, writable, user] of the current space. */
  *currentMappings(): Generator<[number, number, boolean, boolean]> {
    const s = this.current;
    if (s === null) return;
    const mem = this.cpu.mem;
    for (const [pdi, pt] of s.pts) {
      for (let i = 0; i < 1024; i++) {
        const e = mem.read32(pt + i * 4);
        if ((e & PRESENT) !== 0) yield [((pdi << 22) | (i << 12)) >>> 0, (e & 0xfffff000) >>> 0, (e & RW) !== 0, (e & US) !== 0];
      }
    }
  }

  /** Every shadow PTE of every cached space (for isolation checks). */
  *allShadowFrames(): Generator<number> {
    const mem = this.cpu.mem;
    for (const s of this.spaces.values()) {
      for (const pt of s.pts.values()) {
        for (let i = 0; i < 1024; i++) {
          const e = mem.read32(pt + i * 4);
          if ((e & PRESENT) !== 0) yield (e & 0xfffff000) >>> 0;
        }
      }
    }
  }
}

function allowed(user: boolean, write: boolean, us: boolean, rw: boolean, wp: boolean): boolean {
  if (user) return us && (!write || rw);
  return !write || rw || !wp;
}
