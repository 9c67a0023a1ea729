import { PhysicalMemory } from '../memory.js';
import { PortBus } from '../port-bus.js';
import { Tlb, TLB_DIRTY, TLB_GLOBAL, TLB_SUP_WRITE, TLB_USER_READ, TLB_USER_WRITE } from '../tlb.js';
import type { CostTable } from './cost-table.js';
import { FIXED_ONE, IF, TF, VM } from './flags.js';
import { deliverEvent, EventKind, type CpuMonitor } from './interrupts.js';
import { HANDLERS, type Handler } from './op-table.js';
import { CR0_ET, CR0_PE, CR0_PG, CR0_WP, CR4_PGE, CR4_PSE, CS, DS, EBP, EBX, EDI, ES, ESI, ESP, FS, GS, SEG_READ, SEG_WRITE, SS, Vec } from './constants.js';
import './ops.js';
import { Jit, JitRun, LOOK_AFTER } from './jit/jit.js';

export * from './constants.js';

/** The sentinel thrown by `raise`: the fault itself is described by the CPU's fields. */
export const FAULT: unique symbol = Symbol('x86 fault');

/** Why the machine stopped; `null` while it runs. */
export type StopReason =
  | { kind: 'exit-device'; code: number }
  | { kind: 'triple-fault'; detail: string }
  | { kind: 'halt'; detail: string }
  | { kind: 'unsupported'; address: number; bytes: number[]; detail: string }
  | { kind: 'shutdown'; detail: string };

/** A 32-bit page walk's view of who is asking. */
const enum Access { Read = 0, Write = 1, Fetch = 2 }

/**
 * The IA-32 CPU: architectural state in typed arrays, one object per machine (several can
 * live in one process), and the fetch–decode–execute loop. Instruction semantics live in
 * the `ops-*.ts` modules, which register handlers in `op-table.ts`; protected-mode
 * mechanisms live in `segmentation.ts` and `interrupts.ts`.
 *
 * Conventions for handlers: 32-bit values are int32 (signed) in registers and from
 * `read*32`; 8/16-bit reads return unsigned values; writes truncate. A handler that faults
 * calls `raise` (which throws) before changing any architectural state it cannot restore,
 * so a faulting instruction restarts cleanly from `instrStart`.
 */
/** A monitor's TLB-miss walk (`Cpu.pageWalker`). */
export interface PageWalker {
  walk(cpu: Cpu, lin: number, access: number, user: boolean, tlb: Tlb): number;
  readonly largePage: boolean;
}

export class Cpu {
  readonly mem: PhysicalMemory;
  /** `mem.u8`, cached for the fetch fast path. */
  private readonly ram: Uint8Array;
  readonly io: PortBus;

  // ---- general registers ----
  private readonly regBuf = new ArrayBuffer(32);
  readonly r32 = new Int32Array(this.regBuf);
  readonly r16 = new Uint16Array(this.regBuf);
  readonly r8 = new Uint8Array(this.regBuf);
  eip = 0;
  /** EFLAGS, all bits, kept eagerly. */
  flags = FIXED_ONE;

  // ---- segment registers and their descriptor caches ----
  readonly segSel = new Uint16Array(6);
  readonly segBase = new Int32Array(6);
  /** Raw limit (already scaled by G). */
  readonly segLimit = new Uint32Array(6);
  /** Descriptor attributes: bits 0–7 access byte, 12 AVL, 14 D/B, 15 G. */
  readonly segAttr = new Uint16Array(6);
  /** Lowest and highest valid offsets (expand-down aware). */
  readonly segLo = new Uint32Array(6);
  readonly segHi = new Uint32Array(6);
  /** SEG_READ | SEG_WRITE: what data accesses the segment allows; 0 for a null selector. */
  readonly segRW = new Uint8Array(6);

  cpl = 0;
  /**
   * Called once, the first time CS is loaded with CPL 3 (the guest's first entry to user
   * mode), then cleared. Every CPL change loads CS through `setSegmentCache` (far transfers,
   * IRET, SYSEXIT, a monitor's own ring switch), so the check lives there, off the hot path.
   * `Machine` uses it for `RunOutcome.userStart`.
   */
  onFirstUserEntry: (() => void) | null = null;
  /** CS.D: default operand and address size are 32-bit. */
  cs32 = false;
  /** SS.B: the stack pointer is ESP (else SP). */
  ss32 = false;

  // ---- system registers ----
  cr0 = CR0_ET;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  readonly dr = new Int32Array(8);
  gdtrBase = 0; gdtrLimit = 0xffff;
  idtrBase = 0; idtrLimit = 0x3ff;
  ldtrSel = 0; ldtrBase = 0; ldtrLimit = 0; ldtrAttr = 0;
  trSel = 0; trBase = 0; trLimit = 0xffff; trAttr = 0x8b;
  sysenterCs = 0; sysenterEsp = 0; sysenterEip = 0;
  /** Other model-specific registers, by number (values as bigint: 64-bit). */
  readonly msr = new Map<number, bigint>();

  // ---- per-instruction decode state ----
  instrStart = 0;
  opsize32 = false;
  addrsize32 = false;
  /** Segment override prefix, or -1. */
  segOverride = -1;
  /** 0, 0xF2 (REPNE) or 0xF3 (REP/REPE). */
  rep = 0;
  lock = false;
  modrmMod = 0;
  modrmReg = 0;
  modrmRm = 0;
  /** Effective address of the memory operand (an offset within `eaSeg`). */
  eaOffset = 0;
  eaSeg = DS;
  /** Physical address stashed by a read-for-write of a memory operand, -1 when none. */
  private rmwPhys = -1;

  // ---- fetch window: eip in [fetchLo, fetchLo+fetchLen) maps to phys eip+fetchDelta ----
  private fetchLo = 0;
  private fetchLen = 0;
  private fetchDelta = 0;

  // ---- paging ----
  readonly itlb: Tlb;
  readonly dtlb: Tlb;
  /** CR0.PG and CR0.PE: the guest's own paging (its tables translate linear addresses). */
  private pagingOn = false;
  /**
   * Addresses go through the TLB and a walk: the guest's paging is on, or a monitor's walker
   * is installed (EPT translates guest-physical addresses with the guest's paging off too:
   * an unrestricted guest). Derived in `updatePaging`.
   */
  private translating = false;
  /** Memory references made by page walks (PDE/PTE reads). */
  walkRefs = 0;
  /** Page-walk accessed/dirty bit updates written to memory. */
  adUpdates = 0;

  // ---- counters (integers) ----
  cycles = 0;
  instructions = 0;
  readonly eventCounts = new Uint32Array(256);
  readonly cost: CostTable;

  // ---- run control ----
  halted = false;
  stopReason: StopReason | null = null;
  /** The interrupt controller asserts INTR. */
  intrLine = false;
  /** Called with no argument to acknowledge INTR and get its vector. */
  intrAck: () => number = () => 8;
  /** Cycle count at which `eventHook` must run (device timers). */
  nextEventCycle = Number.POSITIVE_INFINITY;
  eventHook: () => void = () => { this.nextEventCycle = Number.POSITIVE_INFINITY; };
  /** Nonzero: something must be checked after the current instruction. */
  attention = 0;
  /** Interrupts are inhibited for one instruction (after STI, MOV SS, POP SS). */
  intrShadow = false;

  // ---- exception state ----
  excVector = 0;
  excCode = -1;
  /** Nesting of exception delivery, for #DF and triple-fault detection. */
  deliveryDepth = 0;
  /** The first exception of a chain that ended in a double or triple fault. */
  firstFault: { vector: number; code: number; eip: number; cs: number } | null = null;

  constructor(mem: PhysicalMemory, io: PortBus, cost: CostTable, tlbs: { itlb: Tlb; dtlb: Tlb }) {
    this.mem = mem;
    this.ram = mem.u8;
    this.io = io;
    this.cost = cost;
    this.itlb = tlbs.itlb;
    this.dtlb = tlbs.dtlb;
    this.resetRealMode();
  }

  // ======================================================================================
  // Reset and simple state
  // ======================================================================================

  /** Real mode, CS:IP = 0:0, flat 64 KiB segments (no BIOS: the loader sets the entry). */
  resetRealMode(): void {
    this.r32.fill(0);
    this.eip = 0;
    this.flags = FIXED_ONE;
    this.cr0 = CR0_ET;
    this.cr2 = this.cr3 = this.cr4 = 0;
    this.cpl = 0;
    // A reset reloads every descriptor cache: 64 KiB, 16-bit, read/write.
    this.segAttr.fill(0);
    for (let s = 0; s < 6; s++) this.loadRealSegment(s, 0);
    this.updatePaging();
    this.halted = false;
    this.stopReason = null;
  }

  get eflags(): number { return this.flags; }
  get protectedMode(): boolean { return (this.cr0 & CR0_PE) !== 0; }
  get v86(): boolean { return (this.flags & VM) !== 0; }

  /** Real-mode (or V86) segment load: base = selector × 16, limit and rights unchanged in cache. */
  loadRealSegment(seg: number, sel: number): void {
    sel &= 0xffff;
    this.segSel[seg] = sel;
    this.segBase[seg] = sel << 4;
    if (!this.protectedMode) {
      // Real mode keeps the cached limit/attributes, but a fresh CPU has 64 KiB read/write,
      // CS included (SDM Table 9-1: CS AR = present, R/W, accessed; CS-override writes work).
      if (this.segAttr[seg] === 0) this.setSegmentCache(seg, sel, sel << 4, 0xffff, 0x93);
      else this.segBase[seg] = sel << 4;
    } else {
      this.setSegmentCache(seg, sel, sel << 4, 0xffff, seg === CS ? 0x9b : 0x93);
    }
    if (seg === CS) this.fetchLen = 0;
  }

  /**
   * Fills a segment register's hidden part. `attr` is the descriptor's attribute word
   * (access byte | D/B << 14 | G << 15); `limit` is already scaled by G.
   */
  setSegmentCache(seg: number, sel: number, base: number, limit: number, attr: number): void {
    this.segSel[seg] = sel;
    this.segBase[seg] = base;
    this.segLimit[seg] = limit >>> 0;
    this.segAttr[seg] = attr;
    const big = (attr & 0x4000) !== 0;
    const isCode = (attr & 0x18) === 0x18;
    const expandDown = !isCode && (attr & 0x1c) === 0x14;
    if (expandDown) {
      this.segLo[seg] = (limit + 1) >>> 0;
      this.segHi[seg] = big ? 0xffffffff : 0xffff;
    } else {
      this.segLo[seg] = 0;
      this.segHi[seg] = limit >>> 0;
    }
    let rw = 0;
    if ((attr & 0x80) !== 0 && (attr & 0x10) !== 0) {
      if (isCode) rw = (attr & 2) ? SEG_READ : 0;
      else rw = SEG_READ | ((attr & 2) ? SEG_WRITE : 0);
    }
    this.segRW[seg] = rw;
    if (seg === CS) {
      this.cs32 = big;
      this.fetchLen = 0;
      if (this.cpl === 3 && this.onFirstUserEntry !== null) {
        const f = this.onFirstUserEntry;
        this.onFirstUserEntry = null;
        f();
      }
    } else if (seg === SS) {
      this.ss32 = big;
    }
  }

  /** Marks a data segment register as holding a null selector (protected mode). */
  setNullSegment(seg: number, sel: number): void {
    this.segSel[seg] = sel;
    this.segRW[seg] = 0;
    this.segAttr[seg] = 0;
    this.segBase[seg] = 0;
    this.segLimit[seg] = 0;
    this.segLo[seg] = 1;
    this.segHi[seg] = 0;
  }

  /** Puts the CPU in the Multiboot entry state: flat 4 GiB protected mode, paging off, IF=0. */
  resetFlat32(eip: number): void {
    this.cr0 = CR0_ET | CR0_PE;
    this.cr4 = 0;
    this.cpl = 0;
    this.flags = FIXED_ONE;
    this.setSegmentCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
    for (const s of [ES, SS, DS, FS, GS]) this.setSegmentCache(s, 0x10, 0, 0xffffffff, 0xc093);
    this.eip = eip >>> 0;
    this.updatePaging();
  }

  // ======================================================================================
  // Faults
  // ======================================================================================

  /** Raises exception `vector` (with `code` as its error code, or -1 for none). */
  raise(vector: number, code = -1): never {
    this.excVector = vector;
    this.excCode = code;
    throw FAULT;
  }

  /** Stops the machine on something virtlab does not implement (never a silent wrong result). */
  unsupported(detail: string): never {
    const bytes: number[] = [];
    const lin = (this.segBase[CS]! + this.instrStart) >>> 0;
    for (let i = 0; i < 15; i++) bytes.push(this.peekLinear8(lin + i));
    this.stopReason = { kind: 'unsupported', address: lin, bytes, detail };
    throw FAULT;
  }

  /** Reads a byte for diagnostics, without faults, counters or A/D updates (0 if unmapped). */
  peekLinear8(lin: number): number {
    const phys = this.peekTranslate(lin >>> 0);
    return phys < 0 ? 0 : this.mem.read8(phys);
  }

  /** Translates without side effects; -1 when not mapped. */
  peekTranslate(lin: number): number {
    if (!this.pagingOn) return lin;
    const pde = this.mem.read32(((this.cr3 & ~0xfff) + ((lin >>> 22) << 2)) >>> 0);
    if ((pde & 1) === 0) return -1;
    if ((pde & 0x80) && (this.cr4 & CR4_PSE)) return ((pde & 0xffc00000) + (lin & 0x3fffff)) >>> 0;
    const pte = this.mem.read32(((pde & ~0xfff) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0);
    if ((pte & 1) === 0) return -1;
    return ((pte & ~0xfff) + (lin & 0xfff)) >>> 0;
  }

  // ======================================================================================
  // Paging
  // ======================================================================================

  /** Re-reads CR0.PG and drops cached translations; call after any CR0/CR3/CR4 change. */
  updatePaging(): void {
    this.pagingOn = (this.cr0 & CR0_PG) !== 0 && (this.cr0 & CR0_PE) !== 0;
    this.translating = this.pagingOn || this.pageWalker !== null;
    this.fetchLen = 0;
  }

  /** CR3 load: flushes non-global TLB entries. */
  flushTlb(keepGlobal: boolean): void {
    const pge = keepGlobal && (this.cr4 & CR4_PGE) !== 0;
    this.itlb.flush(pge);
    if (this.dtlb !== this.itlb) this.dtlb.flush(pge);
    this.fetchLen = 0;
  }

  /** INVLPG. */
  invalidatePage(lin: number): void {
    const vpn = lin >>> 12;
    this.itlb.invalidate(vpn);
    if (this.dtlb !== this.itlb) this.dtlb.invalidate(vpn);
    if (this.largePagesCached) {
      // A 4 MiB page is cached as 4 KiB pieces: INVLPG of any address in it must drop them
      // all (SDM: INVLPG invalidates the whole large-page translation). Entries of 4 KiB
      // pages in the same 4 MiB region go too, which the architecture permits.
      dropRegion(this.itlb, lin >>> 22);
      if (this.dtlb !== this.itlb) dropRegion(this.dtlb, lin >>> 22);
    }
    this.fetchLen = 0;
  }

  /** A 4 MiB page has been put in a TLB (INVLPG must then drop whole 4 MiB regions). */
  private largePagesCached = false;

  /**
   * A monitor's replacement for the TLB-miss walk (`hw` with nested paging: the 2-D walk
   * through the guest's tables and the EPT), or null for the CPU's own walk. Consulted only
   * on a TLB miss, so native speed is unaffected. `walk` fills `tlb`, counts its references
   * in `walkRefs` and charges them to `cycles`; `largePage` says the fill was a piece of a
   * 4 MiB guest page (INVLPG must then drop whole regions). Call `updatePaging` after
   * setting it (translation with the guest's paging off depends on it).
   */
  pageWalker: PageWalker | null = null;

  /**
   * Linear → physical for a data access at the current privilege (`user` = CPL 3 unless
   * this is an implicit supervisor access such as a descriptor-table read).
   */
  translate(lin: number, write: boolean, user: boolean): number {
    if (!this.translating) return lin >>> 0;
    return this.translatePaged(lin >>> 0, write ? Access.Write : Access.Read, user, this.dtlb);
  }

  private translatePaged(lin: number, access: Access, user: boolean, tlb: Tlb): number {
    const vpn = lin >>> 12;
    const i = tlb.lookup(vpn);
    if (i >= 0) {
      const p = tlb.perm[i]!;
      const write = access === Access.Write;
      const need = user ? (write ? TLB_USER_WRITE : TLB_USER_READ) : (write ? TLB_SUP_WRITE : 0);
      if ((p & need) === need && (!write || (p & TLB_DIRTY) !== 0)) {
        return (tlb.frame[i]! + (lin & 0xfff)) >>> 0;
      }
    }
    const pw = this.pageWalker;
    if (pw !== null) {
      const r = pw.walk(this, lin, access, user, tlb);
      if (pw.largePage) this.largePagesCached = true;
      return r;
    }
    return this.walk(lin, access, user, tlb);
  }

  /** The two-level page walk (4 KiB and, with CR4.PSE, 4 MiB pages); fills the TLB. */
  private walk(lin: number, access: Access, user: boolean, tlb: Tlb): number {
    const write = access === Access.Write;
    const mem = this.mem;
    const pdeAddr = ((this.cr3 & 0xfffff000) + ((lin >>> 22) << 2)) >>> 0;
    let pde = mem.read32(pdeAddr);
    this.walkRefs++;
    this.cycles += this.cost.walkRef;
    const errBase = (write ? 2 : 0) | (user ? 4 : 0);
    if ((pde & 1) === 0) this.pageFault(lin, errBase);
    const wp = (this.cr0 & CR0_WP) !== 0;
    if ((pde & 0x80) !== 0 && (this.cr4 & CR4_PSE) !== 0) {
      // 4 MiB page: the PDE is the leaf. Bits 12-21 are reserved without PAT/PSE-36.
      if ((pde & 0x003ff000) !== 0) this.pageFault(lin, errBase | 1 | 8);
      const us = (pde & 4) !== 0, rw = (pde & 2) !== 0;
      this.checkPageAccess(lin, errBase, user, write, us, rw, wp);
      const want = pde | 0x20 | (write ? 0x40 : 0);
      if (want !== pde) { mem.write32(pdeAddr, want); this.adUpdates++; pde = want; }
      const frame = ((pde & 0xffc00000) + (lin & 0x3ff000)) >>> 0;
      this.largePagesCached = true;
      tlb.insert(lin >>> 12, frame, this.permBits(us, rw, wp, (pde & 0x40) !== 0, (pde & 0x100) !== 0));
      return (frame + (lin & 0xfff)) >>> 0;
    }
    const pteAddr = ((pde & 0xfffff000) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
    let pte = mem.read32(pteAddr);
    this.walkRefs++;
    this.cycles += this.cost.walkRef;
    if ((pte & 1) === 0) this.pageFault(lin, errBase);
    const us = (pde & pte & 4) !== 0, rw = (pde & pte & 2) !== 0;
    this.checkPageAccess(lin, errBase, user, write, us, rw, wp);
    if ((pde & 0x20) === 0) { mem.write32(pdeAddr, pde | 0x20); this.adUpdates++; }
    const want = pte | 0x20 | (write ? 0x40 : 0);
    if (want !== pte) { mem.write32(pteAddr, want); this.adUpdates++; pte = want; }
    const frame = (pte & 0xfffff000) >>> 0;
    tlb.insert(lin >>> 12, frame, this.permBits(us, rw, wp, (pte & 0x40) !== 0, (pte & 0x100) !== 0));
    return (frame + (lin & 0xfff)) >>> 0;
  }

  private checkPageAccess(lin: number, errBase: number, user: boolean, write: boolean,
    us: boolean, rw: boolean, wp: boolean): void {
    if (user) {
      if (!us || (write && !rw)) this.pageFault(lin, errBase | 1);
    } else if (write && !rw && wp) {
      this.pageFault(lin, errBase | 1);
    }
  }

  private permBits(us: boolean, rw: boolean, wp: boolean, dirty: boolean, global: boolean): number {
    let p = 0;
    if (us) p |= TLB_USER_READ;
    if (us && rw) p |= TLB_USER_WRITE;
    if (rw || !wp) p |= TLB_SUP_WRITE;
    if (dirty) p |= TLB_DIRTY;
    if (global && (this.cr4 & CR4_PGE) !== 0) p |= TLB_GLOBAL;
    return p;
  }

  private pageFault(lin: number, code: number): never {
    this.cr2 = lin | 0;
    this.raise(Vec.PF, code);
  }

  // ======================================================================================
  // Instruction fetch
  // ======================================================================================

  /** Refills the fetch window for the current EIP (limit check, ITLB lookup). */
  refillFetch(): void {
    const eip = this.eip >>> 0;
    if (eip > this.segHi[CS]!) this.raise(Vec.GP, 0);
    const lin = (this.segBase[CS]! + eip) >>> 0;
    const phys = this.translating
      ? this.translatePaged(lin, Access.Fetch, this.cpl === 3, this.itlb)
      : lin;
    const pageOff = lin & 0xfff;
    const lo = eip - pageOff;
    let start = lo < 0 ? 0 : lo;
    const endPage = lo + 4096;
    const endLimit = this.segHi[CS]! + 1;
    const end = endPage < endLimit ? endPage : endLimit;
    this.fetchDelta = phys - eip;
    // Code outside RAM (open bus) is fetched byte by byte through the slow path.
    if (phys - pageOff + 4096 > this.mem.size) { this.fetchLo = eip; this.fetchLen = 0; this.fetchOpenBus = true; return; }
    this.fetchOpenBus = false;
    if (start + this.fetchDelta < 0) start = -this.fetchDelta;
    this.fetchLo = start;
    this.fetchLen = end - start;
  }

  private fetchOpenBus = false;

  private fetch8Slow(): number {
    this.refillFetch();
    const eip = this.eip;
    this.eip = eip + 1;
    if (this.fetchOpenBus) return this.mem.read8(eip + this.fetchDelta);
    return this.ram[eip + this.fetchDelta]!;
  }

  /** Physical address of the byte at EIP when it lies in the current fetch window, else -1. */
  fetchPhys(): number {
    const eip = this.eip;
    return ((eip - this.fetchLo) >>> 0) < this.fetchLen ? eip + this.fetchDelta : -1;
  }

  fetch8(): number {
    const eip = this.eip;
    if (((eip - this.fetchLo) >>> 0) < this.fetchLen) {
      this.eip = eip + 1;
      return this.ram[eip + this.fetchDelta]!;
    }
    return this.fetch8Slow();
  }

  fetch16(): number {
    const eip = this.eip;
    if (((eip + 1 - this.fetchLo) >>> 0) < this.fetchLen && eip >= this.fetchLo) {
      this.eip = eip + 2;
      const a = eip + this.fetchDelta;
      return this.ram[a]! | (this.ram[a + 1]! << 8);
    }
    const lo = this.fetch8();
    return lo | (this.fetch8() << 8);
  }

  /** Returns a signed int32. */
  fetch32(): number {
    const eip = this.eip;
    if (((eip + 3 - this.fetchLo) >>> 0) < this.fetchLen && eip >= this.fetchLo) {
      this.eip = eip + 4;
      const a = eip + this.fetchDelta;
      const m = this.ram;
      return m[a]! | (m[a + 1]! << 8) | (m[a + 2]! << 16) | (m[a + 3]! << 24);
    }
    const a = this.fetch16();
    return a | (this.fetch16() << 16);
  }

  /** Fetches an immediate of the current operand size (16-bit: unsigned; 32-bit: int32). */
  fetchImm(): number {
    return this.opsize32 ? this.fetch32() : this.fetch16();
  }

  /** Sign-extended 8-bit immediate as an int32. */
  fetchS8(): number {
    return (this.fetch8() << 24) >> 24;
  }

  // ======================================================================================
  // ModR/M
  // ======================================================================================

  /** Reads the ModR/M byte (and SIB, displacement); computes `eaOffset`/`eaSeg` for memory forms. */
  decodeModrm(): void {
    const m = this.fetch8();
    const mod = m >> 6;
    this.modrmMod = mod;
    this.modrmReg = (m >> 3) & 7;
    this.modrmRm = m & 7;
    if (mod === 3) return;
    this.cycles += this.cost.memOperand;
    if (this.addrsize32) this.decodeEa32(mod, m & 7);
    else this.decodeEa16(mod, m & 7);
  }

  private decodeEa16(mod: number, rm: number): void {
    const r = this.r16;
    let off: number;
    let seg = DS;
    switch (rm) {
      case 0: off = r[EBX << 1]! + r[ESI << 1]!; break;
      case 1: off = r[EBX << 1]! + r[EDI << 1]!; break;
      case 2: off = r[EBP << 1]! + r[ESI << 1]!; seg = SS; break;
      case 3: off = r[EBP << 1]! + r[EDI << 1]!; seg = SS; break;
      case 4: off = r[ESI << 1]!; break;
      case 5: off = r[EDI << 1]!; break;
      case 6:
        if (mod === 0) { off = this.fetch16(); } else { off = r[EBP << 1]!; seg = SS; }
        break;
      default: off = r[EBX << 1]!; break;
    }
    if (mod === 1) off += this.fetchS8();
    else if (mod === 2) off += this.fetch16();
    this.eaOffset = off & 0xffff;
    this.eaSeg = this.segOverride >= 0 ? this.segOverride : seg;
  }

  private decodeEa32(mod: number, rm: number): void {
    const r = this.r32;
    let off: number;
    let seg = DS;
    if (rm === 4) {
      const sib = this.fetch8();
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      const scale = sib >> 6;
      if (base === 5 && mod === 0) {
        off = this.fetch32();
      } else {
        off = r[base]!;
        if (base === ESP || base === EBP) seg = SS;
      }
      if (index !== 4) off += r[index]! << scale;
    } else if (rm === 5 && mod === 0) {
      off = this.fetch32();
    } else {
      off = r[rm]!;
      if (rm === EBP) seg = SS;
    }
    if (mod === 1) off += this.fetchS8();
    else if (mod === 2) off += this.fetch32();
    this.eaOffset = off >>> 0;
    this.eaSeg = this.segOverride >= 0 ? this.segOverride : seg;
  }

  /** The segment for an implicit DS access, honouring an override prefix. */
  get dataSeg(): number {
    return this.segOverride >= 0 ? this.segOverride : DS;
  }

  // ---- register operands by ModR/M number ----
  getReg8(r: number): number { return this.r8[r < 4 ? r << 2 : ((r - 4) << 2) + 1]!; }
  setReg8(r: number, v: number): void { this.r8[r < 4 ? r << 2 : ((r - 4) << 2) + 1] = v; }
  getReg16(r: number): number { return this.r16[r << 1]!; }
  setReg16(r: number, v: number): void { this.r16[r << 1] = v; }
  getReg32(r: number): number { return this.r32[r]!; }
  setReg32(r: number, v: number): void { this.r32[r] = v; }

  // ---- r/m operands (after decodeModrm) ----
  readRM8(): number { return this.modrmMod === 3 ? this.getReg8(this.modrmRm) : this.readMem8(this.eaSeg, this.eaOffset); }
  readRM16(): number { return this.modrmMod === 3 ? this.r16[this.modrmRm << 1]! : this.readMem16(this.eaSeg, this.eaOffset); }
  readRM32(): number { return this.modrmMod === 3 ? this.r32[this.modrmRm]! : this.readMem32(this.eaSeg, this.eaOffset); }
  writeRM8(v: number): void { if (this.modrmMod === 3) this.setReg8(this.modrmRm, v); else this.writeMem8(this.eaSeg, this.eaOffset, v); }
  writeRM16(v: number): void { if (this.modrmMod === 3) this.r16[this.modrmRm << 1] = v; else this.writeMem16(this.eaSeg, this.eaOffset, v); }
  writeRM32(v: number): void { if (this.modrmMod === 3) this.r32[this.modrmRm] = v; else this.writeMem32(this.eaSeg, this.eaOffset, v); }

  /**
   * Read-modify-write operands: the read checks write permission (as the CPU does for a
   * locked/RMW access) and remembers the physical address so the write-back does not
   * translate twice.
   */
  readRMW8(): number {
    if (this.modrmMod === 3) return this.getReg8(this.modrmRm);
    const phys = this.dataAddr(this.eaSeg, this.eaOffset, 1, true);
    this.rmwPhys = phys;
    return this.mem.read8(phys);
  }
  readRMW16(): number {
    if (this.modrmMod === 3) return this.r16[this.modrmRm << 1]!;
    // Page crossing is decided on the linear address (segment base included), as for 32 bits.
    if (((this.segBase[this.eaSeg]! + this.eaOffset) & 0xfff) > 0xffe) { this.rmwPhys = -1; return this.readMemW16(this.eaSeg, this.eaOffset); }
    const phys = this.dataAddr(this.eaSeg, this.eaOffset, 2, true);
    this.rmwPhys = phys;
    return this.mem.read16(phys);
  }
  readRMW32(): number {
    if (this.modrmMod === 3) return this.r32[this.modrmRm]!;
    const lin = (this.segBase[this.eaSeg]! + this.eaOffset) >>> 0;
    if ((lin & 0xfff) > 0xffc) { this.rmwPhys = -1; return this.readMemW32(this.eaSeg, this.eaOffset); }
    const phys = this.dataAddr(this.eaSeg, this.eaOffset, 4, true);
    this.rmwPhys = phys;
    return this.mem.read32(phys);
  }
  writeRMW8(v: number): void {
    if (this.modrmMod === 3) this.setReg8(this.modrmRm, v); else this.mem.write8(this.rmwPhys, v);
  }
  writeRMW16(v: number): void {
    if (this.modrmMod === 3) this.r16[this.modrmRm << 1] = v;
    else if (this.rmwPhys >= 0) this.mem.write16(this.rmwPhys, v);
    else this.writeMem16(this.eaSeg, this.eaOffset, v);
  }
  writeRMW32(v: number): void {
    if (this.modrmMod === 3) this.r32[this.modrmRm] = v;
    else if (this.rmwPhys >= 0) this.mem.write32(this.rmwPhys, v);
    else this.writeMem32(this.eaSeg, this.eaOffset, v);
  }

  // ======================================================================================
  // Segmented memory access
  // ======================================================================================

  /** #GP(0), or #SS(0) for the stack segment, on a segment limit or rights violation. */
  segmentFault(seg: number): never {
    this.raise(seg === SS ? Vec.SS : Vec.GP, 0);
  }

  /** Checks a data access of `len` bytes at `seg:off` and returns its physical address (no page crossing). */
  dataAddr(seg: number, off: number, len: number, write: boolean): number {
    off >>>= 0;
    if ((this.segRW[seg]! & (write ? SEG_WRITE : SEG_READ)) === 0 || off < this.segLo[seg]! || off + len - 1 > this.segHi[seg]!) {
      this.segmentFault(seg);
    }
    const lin = (this.segBase[seg]! + off) >>> 0;
    if (!this.translating) return lin;
    return this.translatePaged(lin, write ? Access.Write : Access.Read, this.cpl === 3, this.dtlb);
  }

  private checkSeg(seg: number, off: number, len: number, write: boolean): number {
    off >>>= 0;
    if ((this.segRW[seg]! & (write ? SEG_WRITE : SEG_READ)) === 0 || off < this.segLo[seg]! || off + len - 1 > this.segHi[seg]!) {
      this.segmentFault(seg);
    }
    return (this.segBase[seg]! + off) >>> 0;
  }

  readMem8(seg: number, off: number): number {
    return this.mem.read8(this.dataAddr(seg, off, 1, false));
  }

  readMem16(seg: number, off: number): number {
    const lin = this.checkSeg(seg, off, 2, false);
    if ((lin & 0xfff) !== 0xfff) return this.mem.read16(this.translate(lin, false, this.cpl === 3));
    return this.readLin8(lin, false) | (this.readLin8(lin + 1, false) << 8);
  }

  /** Same as readMem16 but checks for writing (read half of a read-modify-write). */
  private readMemW16(seg: number, off: number): number {
    const lin = this.checkSeg(seg, off, 2, true);
    const a = this.translate(lin, true, this.cpl === 3);
    const b = this.translate((lin + 1) >>> 0, true, this.cpl === 3);
    return this.mem.read8(a) | (this.mem.read8(b) << 8);
  }

  readMem32(seg: number, off: number): number {
    const lin = this.checkSeg(seg, off, 4, false);
    if ((lin & 0xfff) <= 0xffc) return this.mem.read32(this.translate(lin, false, this.cpl === 3));
    return this.readLinSplit32(lin, false);
  }

  private readMemW32(seg: number, off: number): number {
    const lin = this.checkSeg(seg, off, 4, true);
    return this.readLinSplit32(lin, true);
  }

  private readLinSplit32(lin: number, forWrite: boolean): number {
    const user = this.cpl === 3;
    const a = [0, 1, 2, 3].map((i) => this.translate((lin + i) >>> 0, forWrite, user));
    return this.mem.read8(a[0]!) | (this.mem.read8(a[1]!) << 8) | (this.mem.read8(a[2]!) << 16) | (this.mem.read8(a[3]!) << 24);
  }

  writeMem8(seg: number, off: number, v: number): void {
    this.mem.write8(this.dataAddr(seg, off, 1, true), v);
  }

  writeMem16(seg: number, off: number, v: number): void {
    const lin = this.checkSeg(seg, off, 2, true);
    if ((lin & 0xfff) !== 0xfff) { this.mem.write16(this.translate(lin, true, this.cpl === 3), v); return; }
    // Page-crossing: translate both halves before writing either (no partial write on #PF).
    const user = this.cpl === 3;
    const a = this.translate(lin, true, user), b = this.translate((lin + 1) >>> 0, true, user);
    this.mem.write8(a, v);
    this.mem.write8(b, v >> 8);
  }

  writeMem32(seg: number, off: number, v: number): void {
    const lin = this.checkSeg(seg, off, 4, true);
    if ((lin & 0xfff) <= 0xffc) { this.mem.write32(this.translate(lin, true, this.cpl === 3), v); return; }
    const user = this.cpl === 3;
    const a = [0, 1, 2, 3].map((i) => this.translate((lin + i) >>> 0, true, user));
    for (let i = 0; i < 4; i++) this.mem.write8(a[i]!, v >> (8 * i));
  }

  // ---- linear accesses (descriptor tables, TSS: `user` false = implicit supervisor) ----
  readLin8(lin: number, user: boolean): number { return this.mem.read8(this.translate(lin >>> 0, false, user)); }
  readLin16(lin: number, user: boolean): number {
    lin >>>= 0;
    if ((lin & 0xfff) !== 0xfff) return this.mem.read16(this.translate(lin, false, user));
    return this.readLin8(lin, user) | (this.readLin8(lin + 1, user) << 8);
  }
  readLin32(lin: number, user: boolean): number {
    lin >>>= 0;
    if ((lin & 0xfff) <= 0xffc) return this.mem.read32(this.translate(lin, false, user));
    return this.readLin16(lin, user) | (this.readLin16(lin + 2, user) << 16);
  }
  writeLin8(lin: number, v: number, user: boolean): void { this.mem.write8(this.translate(lin >>> 0, true, user), v); }
  writeLin16(lin: number, v: number, user: boolean): void {
    lin >>>= 0;
    if ((lin & 0xfff) !== 0xfff) { this.mem.write16(this.translate(lin, true, user), v); return; }
    const a = this.translate(lin, true, user), b = this.translate((lin + 1) >>> 0, true, user);
    this.mem.write8(a, v); this.mem.write8(b, v >> 8);
  }
  writeLin32(lin: number, v: number, user: boolean): void {
    lin >>>= 0;
    if ((lin & 0xfff) <= 0xffc) { this.mem.write32(this.translate(lin, true, user), v); return; }
    const a = [0, 1, 2, 3].map((i) => this.translate((lin + i) >>> 0, true, user));
    for (let i = 0; i < 4; i++) this.mem.write8(a[i]!, v >> (8 * i));
  }

  // ======================================================================================
  // Stack
  // ======================================================================================

  /** Current stack pointer value (ESP or SP per SS.B). */
  get sp(): number { return this.ss32 ? this.r32[ESP]! >>> 0 : this.r16[ESP << 1]!; }
  set sp(v: number) { if (this.ss32) this.r32[ESP] = v; else this.r16[ESP << 1] = v; }

  push16(v: number): void {
    const sp = this.ss32 ? (this.r32[ESP]! - 2) >>> 0 : (this.r16[ESP << 1]! - 2) & 0xffff;
    this.writeMem16(SS, sp, v);
    this.sp = sp;
  }
  push32(v: number): void {
    const sp = this.ss32 ? (this.r32[ESP]! - 4) >>> 0 : (this.r16[ESP << 1]! - 4) & 0xffff;
    this.writeMem32(SS, sp, v);
    this.sp = sp;
  }
  /** Pushes a value of the current operand size. */
  push(v: number): void { if (this.opsize32) this.push32(v); else this.push16(v); }
  pop16(): number {
    const sp = this.sp;
    const v = this.readMem16(SS, sp);
    this.sp = this.ss32 ? sp + 2 : (sp + 2) & 0xffff;
    return v;
  }
  pop32(): number {
    const sp = this.sp;
    const v = this.readMem32(SS, sp);
    this.sp = this.ss32 ? sp + 4 : (sp + 4) & 0xffff;
    return v;
  }
  pop(): number { return this.opsize32 ? this.pop32() : this.pop16(); }
  /** Reads the stack `depth` bytes above the top without popping. */
  peekStack16(depth: number): number { return this.readMem16(SS, this.ss32 ? (this.sp + depth) >>> 0 : (this.sp + depth) & 0xffff); }
  peekStack32(depth: number): number { return this.readMem32(SS, this.ss32 ? (this.sp + depth) >>> 0 : (this.sp + depth) & 0xffff); }

  // ======================================================================================
  // Flags helpers
  // ======================================================================================

  /** Writes EFLAGS bits in `mask` from `value`, keeping bit 1 set. */
  setFlags(value: number, mask: number): void {
    this.flags = ((this.flags & ~mask) | (value & mask) | FIXED_ONE) >>> 0;
    if ((this.flags & (TF)) !== 0) this.attention |= 1;
  }

  /** Jumps within the current code segment (checks the CS limit lazily, at the next fetch). */
  jumpNear(target: number): void {
    this.eip = this.opsize32 ? target >>> 0 : target & 0xffff;
  }

  // ======================================================================================
  // The execution loop
  // ======================================================================================

  /**
   * Runs until `budget` more instructions have retired, the CPU halts with nothing to wake
   * it, or the machine stops. Returns the number of instructions retired.
   */
  run(budget: number): number {
    const start = this.instructions;
    const target = start + budget;
    while (this.instructions < target && this.stopReason === null) {
      if (this.halted) {
        if (!this.idle()) break;
        continue;
      }
      try {
        this.runBlock(target);
      } catch (e) {
        if (e !== FAULT) throw e;
        if (this.stopReason !== null) break;
        this.eip = this.instrStart;
        this.fetchLen = 0;
        deliverEvent(this, this.excVector, this.excCode, EventKind.Fault);
      }
    }
    return this.instructions - start;
  }

  private runBlock(target: number): void {
    let lookJit = true;
    while (this.instructions < target) {
      // Compiled code runs whole instructions and stops where the checks below would fire.
      if (lookJit && this.jit !== null && this.attention === 0) {
        const r = this.jit.run(this, target);
        if (r === JitRun.Ran) {
          if (this.attention !== 0 || this.cycles >= this.nextEventCycle) {
            if (this.afterInstruction()) return;
          }
          continue;
        }
        lookJit = r === JitRun.Again;
      }
      const idx = this.stepInstruction();
      if (LOOK_AFTER[idx] !== 0) lookJit = true;
      if (this.attention !== 0 || this.cycles >= this.nextEventCycle) {
        lookJit = true;
        if (this.afterInstruction()) return;
      }
    }
  }

  /** Asynchronous work between instructions; true when the block loop must return. */
  private afterInstruction(): boolean {
    // Events between instructions belong to the next instruction boundary: a fault raised
    // while delivering them must save the next EIP, not the retired instruction's.
    this.instrStart = this.eip;
    if (this.cycles >= this.nextEventCycle) this.eventHook();
    if (this.stopReason !== null || this.halted) return true;
    if (this.intrShadow) {
      this.intrShadow = false;
      this.updateAttention();
      return false;
    }
    if ((this.attention & 2) !== 0) {
      // Single-step trap after an instruction that began with TF set (even if it cleared TF,
      // as POPF may); delivering an event clears the bit, so INT n and faults do not trap.
      // DR6.BS is set before delivery so the handler sees it.
      this.dr[6] |= 0x4000;
      deliverEvent(this, Vec.DB, -1, EventKind.Trap);
    }
    this.attention &= ~2;
    if ((this.flags & TF) !== 0) this.attention |= 2;
    if (this.intrLine && (this.flags & IF) !== 0) {
      const vector = this.intrAck();
      deliverEvent(this, vector, -1, EventKind.External);
    }
    this.updateAttention();
    return false;
  }

  /** Recomputes whether `afterInstruction` must run. */
  updateAttention(): void {
    let a = this.attention & 2;
    if ((this.flags & TF) !== 0) a |= 1;
    if (this.intrLine || this.intrShadow || this.halted || this.stopReason !== null) a |= 1;
    this.attention = a;
  }

  /**
   * Stops the machine after the current instruction (devices: exit port, reset); the first
   * reason given wins.
   */
  stop(reason: StopReason): void {
    if (this.stopReason !== null) return;
    this.stopReason = reason;
    this.attention |= 1;
  }

  /** Raises or lowers INTR (called by the interrupt controller). */
  setIntrLine(level: boolean): void {
    this.intrLine = level;
    this.updateAttention();
  }

  /** Blocks STI/MOV SS-style: no interrupt before the next instruction retires. */
  inhibitInterrupts(): void {
    this.intrShadow = true;
    this.attention |= 1;
  }

  /**
   * Halted: advance time to the next device event (charged to `idle` by the caller's
   * accounting), then take an interrupt if one is pending. False when nothing can wake it.
   */
  private idle(): boolean {
    if (this.intrLine && (this.flags & IF) !== 0) {
      this.halted = false;
      try {
        const vector = this.intrAck();
        deliverEvent(this, vector, -1, EventKind.External);
      } catch (e) {
        if (e !== FAULT) throw e;
      }
      return this.stopReason === null;
    }
    if ((this.flags & IF) === 0 || this.nextEventCycle === Number.POSITIVE_INFINITY) {
      this.stopReason = { kind: 'halt', detail: (this.flags & IF) === 0
        ? `HLT with interrupts disabled at ${hex(this.segBase[CS]! + this.instrStart)}`
        : `HLT with no interrupt source armed at ${hex(this.segBase[CS]! + this.instrStart)}` };
      return false;
    }
    const skipped = this.nextEventCycle - this.cycles;
    if (skipped > 0) { this.idleCycles += skipped; this.cycles = this.nextEventCycle; }
    this.eventHook();
    return this.stopReason === null;
  }

  /** Cycles spent halted, waiting for an interrupt. */
  idleCycles = 0;

  /**
   * The time-stamp counter as the guest reads it (RDTSC, RDMSR 0x10), or null for the cycle
   * count: a trace recorder observes the value, a replayer returns the recorded one
   * (src/trace). Consulted only by those instructions, so other code pays nothing.
   */
  tscHook: ((tsc: bigint) => bigint) | null = null;

  // ---- virtualization hooks (docs/vmm-design.md): none is tested per instruction ----

  /**
   * The dispatch table `runBlock` uses: the shared native `HANDLERS` unless a monitor has
   * installed an overlay with `setTable`. The JIT compiles for this table: it calls the
   * entries that differ from `HANDLERS` through it instead of transcribing them (jit/jit.ts).
   */
  table: readonly Handler[] = HANDLERS;
  /**
   * The virtual machine monitor attached to this CPU, or null (native): `deliverEvent`
   * offers it every exception and interrupt before architectural delivery.
   */
  monitor: CpuMonitor | null = null;
  /** Overhead cycles charged by `charge`, per category, in order of first charge. */
  readonly overhead = new Map<string, { cycles: number; count: number }>();

  /** Installs a dispatch table (an overlay of `HANDLERS`, or `HANDLERS` itself). */
  setTable(table: readonly Handler[]): void {
    if (table.length !== HANDLERS.length) throw new RangeError(`a handler table has ${HANDLERS.length} slots, got ${table.length}`);
    this.table = table;
  }

  /**
   * Charges `cycles` of monitor work to overhead `category` (one event): adds them to the
   * cycle counter and to the category, so `accountCycles` can keep `guest` the remainder.
   */
  charge(category: string, cycles: number): void {
    if (!Number.isInteger(cycles) || cycles < 0) throw new RangeError(`charge(${category}): cycles must be a non-negative integer, got ${cycles}`);
    const c = this.overhead.get(category);
    if (c === undefined) this.overhead.set(category, { cycles, count: 1 });
    else { c.cycles += cycles; c.count++; }
    this.cycles += cycles;
  }

  /**
   * Executes exactly one instruction at EIP through the interpreter (no JIT, no interrupt
   * or event checks afterwards); a fault propagates as FAULT with `eip` not yet reset. For
   * monitors that emulate an instruction with the CPU's own handlers (e.g. a write to a
   * write-protected guest page table, done under a temporary writable mapping). The run
   * loop uses it too: there is one decode path. Returns the handler index it ran.
   */
  stepInstruction(): number {
    this.instrStart = this.eip;
    let os = this.cs32, as = this.cs32;
    this.segOverride = -1;
    this.rep = 0;
    this.lock = false;
    let op = this.fetch8();
    prefixes: for (;;) {
      switch (op) {
        case 0x66: os = !this.cs32; break;
        case 0x67: as = !this.cs32; break;
        case 0x26: this.segOverride = ES; break;
        case 0x2e: this.segOverride = CS; break;
        case 0x36: this.segOverride = SS; break;
        case 0x3e: this.segOverride = DS; break;
        case 0x64: this.segOverride = FS; break;
        case 0x65: this.segOverride = GS; break;
        case 0xf0: this.lock = true; break;
        case 0xf2: case 0xf3: this.rep = op; break;
        default: break prefixes;
      }
      if (((this.eip - this.instrStart) >>> 0) >= 15) this.raise(Vec.GP, 0);
      op = this.fetch8();
    }
    if (op === 0x0f) op = 0x100 | this.fetch8();
    this.opsize32 = os;
    this.addrsize32 = as;
    const idx = os ? op | 0x200 : op;
    this.cycles += this.cost.base[idx]!;
    this.table[idx]!(this);
    this.instructions++;
    return idx;
  }

  /** Drops the instruction-fetch window (after a monitor changes mappings or CS). */
  resetFetch(): void { this.fetchLen = 0; }

  /** The block compiler (`jit/`); null: interpret only. Exactly equivalent either way. */
  jit: Jit | null = new Jit();
  /** Turns the JIT on or off (turning it on again starts with an empty block cache). */
  get jitEnabled(): boolean { return this.jit !== null; }
  set jitEnabled(on: boolean) { this.jit = on ? (this.jit ?? new Jit()) : null; }

  /**
   * Charges the extra cost of the group member selected by ModR/M.reg (call after
   * decodeModrm in a group opcode's handler); `op` is the opcode (0x000–0x1FF).
   */
  chargeGroup(op: number): void {
    this.cycles += this.cost.groupExtra[(((this.opsize32 ? 0x200 : 0) | op) << 3) | this.modrmReg]!;
  }

  /** HLT: stop fetching until an interrupt (or forever, if none can come). */
  halt(): void {
    this.halted = true;
    this.attention |= 1;
  }
}

/** Drops every TLB entry for the 4 MiB region `region` (linear address >>> 22). */
function dropRegion(tlb: Tlb, region: number): void {
  const tag = tlb.tag;
  for (let i = 0; i < tag.length; i++) if (tag[i] !== -1 && (tag[i]! >>> 10) === region) tag[i] = -1;
}

function hex(v: number): string {
  return '0x' + (v >>> 0).toString(16).padStart(8, '0');
}
