/** Permission bits of a TLB entry, computed once when the entry is filled. */
export const TLB_USER_READ = 1;
export const TLB_USER_WRITE = 2;
export const TLB_SUP_WRITE = 4;
/** The page's dirty bit is already set in the PTE: writes need no assist. */
export const TLB_DIRTY = 8;
/** Global page (CR4.PGE): survives CR3 loads. */
export const TLB_GLOBAL = 16;

/** Shape of a TLB: `sets` (a power of two) × `ways`. */
export interface TlbGeometry {
  readonly sets: number;
  readonly ways: number;
}

/** Counters a TLB keeps; all monotonic. */
export interface TlbCounters {
  hits: number;
  misses: number;
  /** Full flushes (CR3 load, CR0/CR4 paging changes). */
  flushes: number;
  /** Single-entry invalidations (INVLPG). */
  invalidations: number;
  /** Valid entries displaced by a fill. */
  evictions: number;
}

/**
 * A set-associative TLB with LRU replacement, held in typed arrays. It caches 4 KiB
 * translations; a 4 MiB page is cached as the 4 KiB pieces that are used (as a TLB without
 * a separate large-page array would). The hardware page walk that fills it lives in the CPU.
 */
export class Tlb {
  readonly sets: number;
  readonly ways: number;
  private readonly setMask: number;
  /** Virtual page number per entry, -1 when invalid. */
  readonly tag: Int32Array;
  /** Physical page base address per entry. */
  readonly frame: Int32Array;
  readonly perm: Uint8Array;
  private readonly stamp: Uint32Array;
  private clock = 0;
  readonly counters: TlbCounters = { hits: 0, misses: 0, flushes: 0, invalidations: 0, evictions: 0 };

  constructor(geometry: TlbGeometry) {
    const { sets, ways } = geometry;
    if (!Number.isInteger(sets) || sets < 1 || (sets & (sets - 1)) !== 0) {
      throw new RangeError(`TLB sets must be a power of two, got ${sets}`);
    }
    if (!Number.isInteger(ways) || ways < 1 || ways > 64) {
      throw new RangeError(`TLB ways must be an integer in 1..64, got ${ways}`);
    }
    this.sets = sets;
    this.ways = ways;
    this.setMask = sets - 1;
    const n = sets * ways;
    this.tag = new Int32Array(n).fill(-1);
    this.frame = new Int32Array(n);
    this.perm = new Uint8Array(n);
    this.stamp = new Uint32Array(n);
  }

  /** Index of the entry for `vpn`, or -1. Counts a hit or a miss. */
  lookup(vpn: number): number {
    const base = (vpn & this.setMask) * this.ways;
    const end = base + this.ways;
    const tag = this.tag;
    for (let i = base; i < end; i++) {
      if (tag[i] === vpn) {
        this.counters.hits++;
        this.stamp[i] = ++this.clock;
        return i;
      }
    }
    this.counters.misses++;
    return -1;
  }

  /** Index of the entry for `vpn` without counting or touching LRU state, or -1. */
  probe(vpn: number): number {
    const base = (vpn & this.setMask) * this.ways;
    for (let i = base; i < base + this.ways; i++) if (this.tag[i] === vpn) return i;
    return -1;
  }

  /** Fills (or refreshes) the entry for `vpn`; returns its index. */
  insert(vpn: number, frame: number, perm: number): number {
    let victim = this.probe(vpn);
    if (victim < 0) {
      const base = (vpn & this.setMask) * this.ways;
      victim = base;
      let oldest = 0xffffffff;
      for (let i = base; i < base + this.ways; i++) {
        if (this.tag[i] === -1) { victim = i; break; }
        if (this.stamp[i]! < oldest) { oldest = this.stamp[i]!; victim = i; }
      }
      if (this.tag[victim] !== -1) this.counters.evictions++;
    }
    this.tag[victim] = vpn;
    this.frame[victim] = frame;
    this.perm[victim] = perm;
    this.stamp[victim] = ++this.clock;
    return victim;
  }

  /** Drops every entry (or every non-global one). */
  flush(keepGlobal: boolean): void {
    this.counters.flushes++;
    const { tag, perm } = this;
    for (let i = 0; i < tag.length; i++) {
      if (!keepGlobal || (perm[i]! & TLB_GLOBAL) === 0) tag[i] = -1;
    }
  }

  /** Drops the entry for one virtual page, global or not (INVLPG). */
  invalidate(vpn: number): void {
    this.counters.invalidations++;
    const i = this.probe(vpn);
    if (i >= 0) this.tag[i] = -1;
  }
}
