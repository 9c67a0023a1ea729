/**
 * Nested paging for the `hw` monitor: what the CPU's TLB-miss walk becomes when EPT is on.
 *
 * The monitor maps the guest's RAM [0, guestSize) with EPT, identity (gPA = hPA: the guest's
 * RAM is the bottom of the machine's memory), read/write/execute, write-back, in tables it
 * builds in its own memory above the guest's. `walk` is the drop-in replacement for
 * `Cpu.walk` on a TLB miss: the two-dimensional walk of `NestedWalker`, whose references
 * (guest entries and EPT entries alike) are added to `cpu.walkRefs` and charged at the
 * profile's `walkRef` each, so they land in the `page-walk` category; the TLB is filled with
 * the combined translation (guest permissions, limited by EPT write permission).
 *
 * EPT violations: a guest-physical address outside the guest's RAM is what KVM treats as
 * MMIO. Each access exits (reason 48, charged through `onExit`), the access is emulated as
 * the bare machine does (open bus: reads all-ones, writes dropped), and no TLB entry is made,
 * so the next access exits again. A guest paging structure (directory or table) outside its
 * RAM is an EPT violation of the walk itself: the monitor finishes that walk in software
 * (`unbackedWalk`), reading all ones there as the bare machine's walk does and dropping the
 * A/D writes, again without a TLB entry.
 *
 * Wiring: `HwMonitor.attach` sets `Cpu.pageWalker` to this object; `Cpu.translatePaged`
 * calls its `walk` instead of the CPU's own on a TLB miss (no cost for native: one test on
 * the miss path only), and sets its `largePagesCached` flag when `largePage` is true after
 * the walk (a 4 MiB guest page cached as 4 KiB pieces), as its own walk does.
 */
import { Vec, type Cpu } from '../../machine/cpu/cpu.js';
import type { PhysicalMemory } from '../../machine/memory.js';
import { TLB_DIRTY, TLB_GLOBAL, TLB_SUP_WRITE, TLB_USER_READ, TLB_USER_WRITE, type Tlb } from '../../machine/tlb.js';
import { EPT_RWX, EPT_W, EptBuilder, EptMemType, EptWalker, NestedFault, NestedWalker, type EptCacheOptions } from './ept.js';
import { ExitReason } from './exit-reasons.js';
import type { VmExit } from './vmcs.js';
import { mutant } from '../mutants.js';

const CR0_WP = 0x10000, CR4_PGE = 0x80, CR4_PSE = 0x10;

export class NestedPaging {
  readonly builder: EptBuilder;
  readonly ept: EptWalker;
  readonly walker: NestedWalker;
  /** True when the last successful walk cached a piece of a 4 MiB guest page. */
  largePage = false;
  /** EPT-violation exits taken (MMIO accesses). */
  violations = 0;
  private readonly openBus: number;
  private readonly guestSize: number;
  private readonly mem: PhysicalMemory;

  /**
   * Builds the EPT over `mem` (a machine's memory, with monitor memory above `guestSize`).
   * `largePages` maps the guest's RAM with 2 MiB EPT leaves where aligned (m = 3 for those).
   */
  constructor(mem: PhysicalMemory, caches: EptCacheOptions, private readonly onExit: (x: VmExit) => void, largePages = false) {
    if (mem.size - mem.guestSize < 64 * 1024) {
      throw new Error('hw: nested paging needs monitor memory above guest RAM for the EPT tables (Machine option monitorMiB)');
    }
    this.guestSize = mem.guestSize;
    this.mem = mem;
    this.builder = new EptBuilder(mem, mem.guestSize, mem.size - (mem.size % 4096));
    this.builder.map(0, 0, mem.guestSize, EPT_RWX, EptMemType.WB, largePages);
    if (mutant('ept-off-by-one')) this.builder.map(mem.guestSize - 4096, mem.guestSize, 4096, EPT_RWX); // verifier mutant
    if (mutant('ept-extra-page')) this.builder.map(mem.guestSize, mem.guestSize, 4096, EPT_RWX); // verifier mutant
    this.ept = new EptWalker(mem, this.builder.eptp, caches);
    this.walker = new NestedWalker(mem, this.ept);
    // Past the end of memory: PhysicalMemory reads all-ones there and drops writes.
    this.openBus = mem.size;
  }

  /**
   * The TLB-miss walk for `lin` (`access`: 0 read, 1 write, 2 fetch; `user`: CPL 3 access).
   * Returns the host-physical address; raises #PF for a guest page fault.
   */
  walk(cpu: Cpu, lin: number, access: number, user: boolean, tlb: Tlb): number {
    const w = this.walker;
    const refs0 = w.refs, ad0 = w.counters.adUpdates;
    const hpa = w.translate(cpu.cr0, cpu.cr3, cpu.cr4, lin, access, user);
    const refs = w.refs - refs0;
    cpu.walkRefs += refs;
    cpu.cycles += refs * cpu.cost.walkRef;
    cpu.adUpdates += w.counters.adUpdates - ad0;
    if (hpa >= 0) {
      let p = 0;
      const wp = (cpu.cr0 & CR0_WP) !== 0;
      const eptWrite = (this.ept.perms & EPT_W) !== 0;
      if (w.user) p |= TLB_USER_READ;
      if (w.user && w.rw && eptWrite) p |= TLB_USER_WRITE;
      if ((w.rw || !wp) && eptWrite) p |= TLB_SUP_WRITE;
      if (w.dirty) p |= TLB_DIRTY;
      if (w.global && (cpu.cr4 & CR4_PGE) !== 0) p |= TLB_GLOBAL;
      tlb.insert(lin >>> 12, (hpa & 0xfffff000) >>> 0, p);
      this.largePage = w.large;
      return hpa;
    }
    switch (w.fault) {
      case NestedFault.GuestPageFault:
        cpu.cr2 = lin | 0;
        return cpu.raise(Vec.PF, w.pfErrorCode);
      case NestedFault.EptViolation:
        if (w.faultGpa >= this.guestSize) {
          this.violations++;
          this.onExit({ reason: ExitReason.EptViolation, qualification: w.qualification, interruptionInfo: 0, errorCode: 0 });
          // Bit 8: the final access (emulated as open bus); clear: a guest paging structure.
          if ((w.qualification & 0x100) !== 0) return this.openBus + (lin & 0xfff);
          return this.unbackedWalk(cpu, lin, access, user);
        }
        return cpu.unsupported(`hw: EPT violation at guest-physical 0x${w.faultGpa.toString(16)} (qualification 0x${w.qualification.toString(16)}): a guest page table outside guest RAM`);
      default:
        throw new Error(`hw: EPT misconfiguration at guest-physical 0x${w.faultGpa.toString(16)} (a monitor bug)`);
    }
  }

  /**
   * The guest's walk of `lin`, done by the monitor after an EPT violation on one of its
   * paging structures beyond guest RAM (EPT is the identity on guest RAM): entries there read
   * all ones and their A/D updates are dropped, as on the bare machine. A guest page fault is
   * raised as the CPU's walk would; the result is open bus beyond guest RAM.
   */
  private unbackedWalk(cpu: Cpu, lin: number, access: number, user: boolean): number {
    const size = this.guestSize, mem = this.mem;
    const rd = (a: number): number => (a + 4 <= size ? mem.read32(a) : -1);
    const wr = (a: number, v: number): void => { if (a + 4 <= size) mem.write32(a, v); };
    const write = access === 1;
    const err = (write ? 2 : 0) | (user ? 4 : 0);
    const wp = (cpu.cr0 & CR0_WP) !== 0;
    const ok = (us: boolean, rw: boolean): boolean => (user ? us && (!write || rw) : !write || rw || !wp);
    const fault = (code: number): number => { cpu.cr2 = lin | 0; return cpu.raise(Vec.PF, code); };
    const pdeA = ((cpu.cr3 & 0xfffff000) + ((lin >>> 22) << 2)) >>> 0;
    const pde = rd(pdeA);
    if ((pde & 1) === 0) return fault(err);
    let gpa: number;
    if ((pde & 0x80) !== 0 && (cpu.cr4 & CR4_PSE) !== 0) {
      if ((pde & 0x003ff000) !== 0) return fault(err | 1 | 8);
      if (!ok((pde & 4) !== 0, (pde & 2) !== 0)) return fault(err | 1);
      wr(pdeA, pde | 0x20 | (write ? 0x40 : 0));
      gpa = ((pde & 0xffc00000) + (lin & 0x3fffff)) >>> 0;
    } else {
      const pteA = ((pde & 0xfffff000) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
      const pte = rd(pteA);
      if ((pte & 1) === 0) return fault(err);
      if (!ok((pde & pte & 4) !== 0, (pde & pte & 2) !== 0)) return fault(err | 1);
      if ((pde & 0x20) === 0) wr(pdeA, pde | 0x20);
      wr(pteA, pte | 0x20 | (write ? 0x40 : 0));
      gpa = ((pte & 0xfffff000) + (lin & 0xfff)) >>> 0;
    }
    return gpa < size ? gpa : this.openBus + (lin & 0xfff);
  }
}
