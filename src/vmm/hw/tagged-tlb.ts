/**
 * A VPID-tagged TLB (SDM Vol. 3C §29.1, "Virtual-Processor Identifiers"): every entry carries
 * the VPID that was current when it was filled, and lookups match only entries of the current
 * VPID. VPID 0 is the host's (and the guest's when VPID is off).
 *
 * With VPID on, VM entry and VM exit flush nothing: guest (VPID n) and host (VPID 0) entries
 * coexist. With VPID off, every VM entry and VM exit invalidates the VPID-0 linear and combined
 * mappings (§29.4.3.3), which here means all entries tagged 0: the guest starts cold after
 * each exit. Both cases are counted.
 *
 * It is a drop-in `Tlb` (same typed arrays `tag`/`frame`/`perm`, same methods), so the CPU
 * can be given one as its itlb/dtlb without change; `flush` (CR3 load, paging-mode changes)
 * and `invalidate` (INVLPG) act on the current VPID only, as MOV to CR3 and INVLPG do in VMX
 * non-root operation with VPID on. `cpu.ts`'s `dropRegion` (4 MiB INVLPG) clears entries of
 * every VPID in the region, which over-invalidates but is architecturally allowed.
 */
import { Tlb, TLB_GLOBAL, type TlbGeometry } from '../../machine/tlb.js';

/** Counters specific to tagging (the base `counters` still count hits, misses, flushes…). */
export interface TaggedTlbCounters {
  /** VM entries + exits seen. */
  transitions: number;
  /** Transitions that flushed (VPID off). */
  transitionFlushes: number;
  /** Valid entries dropped by transition flushes. */
  entriesFlushedByTransitions: number;
  /** Single-context (one VPID) and all-context INVVPID-style flushes. */
  vpidFlushes: number;
}

export class TaggedTlb extends Tlb {
  /** VPID of each entry (meaningful where `tag[i] !== -1`). */
  readonly vpidTag: Uint16Array;
  /** VPID that lookups and fills use now. */
  currentVpid = 0;
  readonly tagCounters: TaggedTlbCounters = { transitions: 0, transitionFlushes: 0, entriesFlushedByTransitions: 0, vpidFlushes: 0 };
  private readonly mask: number;
  private readonly lru: Uint32Array;
  private tick = 0;

  constructor(geometry: TlbGeometry) {
    super(geometry);
    this.mask = this.sets - 1;
    this.vpidTag = new Uint16Array(this.sets * this.ways);
    this.lru = new Uint32Array(this.sets * this.ways);
  }

  override lookup(vpn: number): number {
    const base = (vpn & this.mask) * this.ways;
    const end = base + this.ways;
    const tag = this.tag, vt = this.vpidTag, v = this.currentVpid;
    for (let i = base; i < end; i++) {
      if (tag[i] === vpn && vt[i] === v) {
        this.counters.hits++;
        this.lru[i] = ++this.tick;
        return i;
      }
    }
    this.counters.misses++;
    return -1;
  }

  override probe(vpn: number): number {
    const base = (vpn & this.mask) * this.ways;
    const v = this.currentVpid;
    for (let i = base; i < base + this.ways; i++) if (this.tag[i] === vpn && this.vpidTag[i] === v) return i;
    return -1;
  }

  override insert(vpn: number, frame: number, perm: number): number {
    let victim = this.probe(vpn);
    if (victim < 0) {
      const base = (vpn & this.mask) * this.ways;
      victim = base;
      let oldest = 0xffffffff;
      for (let i = base; i < base + this.ways; i++) {
        if (this.tag[i] === -1) { victim = i; break; }
        if (this.lru[i]! < oldest) { oldest = this.lru[i]!; victim = i; }
      }
      if (this.tag[victim] !== -1) this.counters.evictions++;
    }
    this.tag[victim] = vpn;
    this.vpidTag[victim] = this.currentVpid;
    this.frame[victim] = frame;
    this.perm[victim] = perm;
    this.lru[victim] = ++this.tick;
    return victim;
  }

  /** CR3 load / paging change: drops the current VPID's entries (or its non-global ones). */
  override flush(keepGlobal: boolean): void {
    this.counters.flushes++;
    this.dropVpid(this.currentVpid, keepGlobal);
  }

  /** INVLPG: drops the current VPID's entry for one page. */
  override invalidate(vpn: number): void {
    this.counters.invalidations++;
    const i = this.probe(vpn);
    if (i >= 0) this.tag[i] = -1;
  }

  /**
   * VM entry into the guest with VPID `vpid` (0 = VPID off). Off: flushes every VPID-0 entry
   * (and counts it); on: flushes nothing. The current VPID becomes `vpid`.
   */
  vmEntry(vpid: number): void {
    this.transition(vpid);
    this.currentVpid = vpid & 0xffff;
  }

  /** VM exit to the host (VPID 0). `vpid` is the guest's (0 = VPID off: flush). */
  vmExit(vpid: number): void {
    this.transition(vpid);
    this.currentVpid = 0;
  }

  private transition(vpid: number): void {
    this.tagCounters.transitions++;
    if ((vpid & 0xffff) === 0) {
      this.tagCounters.transitionFlushes++;
      this.tagCounters.entriesFlushedByTransitions += this.dropVpid(0, false);
    }
  }

  /** INVVPID single-context: drops every entry of `vpid`, global or not. */
  flushVpid(vpid: number): void {
    this.tagCounters.vpidFlushes++;
    this.dropVpid(vpid & 0xffff, false);
  }

  /** INVVPID all-context: drops every entry. */
  flushAll(): void {
    this.tagCounters.vpidFlushes++;
    this.tag.fill(-1);
  }

  /** Valid entries (all VPIDs), for tests and the run record. */
  validEntries(vpid?: number): number {
    let n = 0;
    for (let i = 0; i < this.tag.length; i++) {
      if (this.tag[i] !== -1 && (vpid === undefined || this.vpidTag[i] === vpid)) n++;
    }
    return n;
  }

  private dropVpid(vpid: number, keepGlobal: boolean): number {
    const { tag, perm, vpidTag } = this;
    let n = 0;
    for (let i = 0; i < tag.length; i++) {
      if (tag[i] !== -1 && vpidTag[i] === vpid && (!keepGlobal || (perm[i]! & TLB_GLOBAL) === 0)) {
        tag[i] = -1;
        n++;
      }
    }
    return n;
  }
}
