/**
 * Extended page tables (EPT) and the two-dimensional page walk of a 32-bit guest.
 *
 * EPT format: Intel SDM Vol. 3C §29.3 (§28.2 in older editions): a 4-level structure
 * (PML4, PDPT, PD, PT) of 64-bit entries, indexed by guest-physical bits 47:39, 38:30, 29:21
 * and 20:12. Entry bits: 0 read, 1 write, 2 execute, 5:3 memory type (leaves), 6 ignore PAT,
 * 7 page size (PDPTE: 1 GiB leaf, PDE: 2 MiB leaf), address bits N−1:12. An entry with bits
 * 2:0 = 000 is not present (EPT violation); bits 1:0 = 10b (write without read), a reserved
 * memory type (2, 3, 7) in a leaf, or bit 7 set in a PML4E are misconfigurations (§29.3.3.1).
 * EPTP (§25.6.11): bits 2:0 memory type of the structures, 5:3 walk length − 1 (3), bit 6
 * A/D enable (not modelled: 0), bits N−1:12 the PML4 address.
 *
 * Entries are stored as two little-endian 32-bit words; host-physical addresses are below
 * 4 GiB, so the high word is always 0 (a non-zero high word is treated as a reserved-bit
 * misconfiguration).
 */
import type { PhysicalMemory } from '../../machine/memory.js';
import { EPTV_EXECUTABLE, EPTV_FETCH, EPTV_FINAL, EPTV_LINEAR_VALID, EPTV_READ, EPTV_READABLE, EPTV_WRITABLE, EPTV_WRITE } from './exit-reasons.js';

/** EPT entry permission bits. */
export const EPT_R = 1, EPT_W = 2, EPT_X = 4, EPT_RWX = 7;
/** Page-size bit (PDPTE / PDE leaf). */
export const EPT_PS = 0x80;
/** Ignore-PAT bit. */
export const EPT_IPAT = 0x40;

/** EPT memory types (SDM §12.3 / §29.3.7): 2, 3 and 7 are reserved. */
export const EptMemType = { UC: 0, WC: 1, WT: 4, WP: 5, WB: 6 } as const;

/** The kind of access being translated; the values are the EPT-violation qualification bits 2:0. */
export const EptAccess = { Read: EPTV_READ, Write: EPTV_WRITE, Fetch: EPTV_FETCH } as const;

/** Outcome of the last translation. */
export const EptFault = { None: 0, Violation: 1, Misconfiguration: 2 } as const;

/** Host memory as the EPT code sees it: `PhysicalMemory` satisfies it. */
export type HostMemory = Pick<PhysicalMemory, 'read32' | 'write32' | 'size'>;

const PAGE = 4096;

function validMemType(t: number): boolean {
  return t === 0 || t === 1 || t === 4 || t === 5 || t === 6;
}

/** Builds an EPTP for a 4-level structure at `pml4` with write-back paging-structure memory type. */
export function makeEptp(pml4: number): number {
  return ((pml4 & 0xfffff000) | (3 << 3) | EptMemType.WB) >>> 0;
}

/**
 * Builds and edits EPT tables in monitor-owned host memory: page-table pages come from
 * `[poolBase, poolLimit)`, which must lie outside every host frame that a mapping gives the guest.
 */
export class EptBuilder {
  readonly mem: HostMemory;
  readonly eptp: number;
  private next: number;
  private readonly limit: number;
  /** Paging-structure pages allocated (including the PML4). */
  pages = 0;

  constructor(mem: HostMemory, poolBase: number, poolLimit: number) {
    if (poolBase % PAGE !== 0 || poolLimit % PAGE !== 0 || poolBase >= poolLimit || poolLimit > mem.size) {
      throw new RangeError(`EPT pool [0x${poolBase.toString(16)}, 0x${poolLimit.toString(16)}) must be page-aligned and inside host memory`);
    }
    this.mem = mem;
    this.next = poolBase;
    this.limit = poolLimit;
    this.eptp = makeEptp(this.allocPage());
  }

  /** The half-open host range the tables live in, for callers that must keep guests out of it. */
  get poolEnd(): number { return this.limit; }

  private allocPage(): number {
    if (this.next >= this.limit) throw new RangeError('EPT page-table pool exhausted');
    const p = this.next;
    this.next += PAGE;
    for (let i = 0; i < PAGE; i += 4) this.mem.write32(p + i, 0);
    this.pages++;
    return p;
  }

  /**
   * Maps `[gpa, gpa + bytes)` to `[hpa, hpa + bytes)` with permissions `perms` (EPT_R/W/X) and
   * memory type `memType`. With `largePages`, 2 MiB-aligned stretches use PDE leaves and
   * 1 GiB-aligned ones PDPTE leaves. Remapping a range replaces its leaves; a range that would
   * split an existing large leaf throws (not needed by the monitor).
   */
  map(gpa: number, hpa: number, bytes: number, perms: number, memType: number = EptMemType.WB,
    largePages = false): void {
    if (gpa % PAGE !== 0 || hpa % PAGE !== 0 || bytes % PAGE !== 0) throw new RangeError('EPT map: unaligned range');
    if (!validMemType(memType)) throw new RangeError(`EPT map: reserved memory type ${memType}`);
    if ((perms & 3) === EPT_W) throw new RangeError('EPT map: write without read is a misconfiguration');
    let g = gpa, h = hpa;
    const end = gpa + bytes;
    while (g < end) {
      const left = end - g;
      let level = 1;
      if (largePages && (g % 0x40000000) === 0 && (h % 0x40000000) === 0 && left >= 0x40000000) level = 3;
      else if (largePages && (g % 0x200000) === 0 && (h % 0x200000) === 0 && left >= 0x200000) level = 2;
      this.setLeaf(g, h, perms, memType, level);
      const step = level === 3 ? 0x40000000 : level === 2 ? 0x200000 : PAGE;
      g += step;
      h += step;
    }
  }

  /** Removes the mappings of `[gpa, gpa + bytes)` (4 KiB granularity). */
  unmap(gpa: number, bytes: number): void {
    for (let g = gpa; g < gpa + bytes; g += PAGE) {
      const slot = this.leafSlot(g, false);
      if (slot >= 0) { this.mem.write32(slot, 0); this.mem.write32(slot + 4, 0); }
    }
  }

  /** Changes the permissions of the 4 KiB leaves of `[gpa, gpa + bytes)` (e.g. read-only for MMIO traps). */
  protect(gpa: number, bytes: number, perms: number): void {
    if ((perms & 3) === EPT_W) throw new RangeError('EPT protect: write without read is a misconfiguration');
    for (let g = gpa; g < gpa + bytes; g += PAGE) {
      const slot = this.leafSlot(g, false);
      if (slot < 0) throw new RangeError(`EPT protect: 0x${g.toString(16)} is not mapped by a 4 KiB leaf`);
      const e = this.mem.read32(slot);
      this.mem.write32(slot, (e & ~EPT_RWX) | perms);
    }
  }

  /** Writes a raw low entry word at the leaf slot of `gpa` (tests use it to build misconfigurations). */
  writeRawLeaf(gpa: number, low: number): void {
    const slot = this.leafSlot(gpa, true);
    this.mem.write32(slot, low);
    this.mem.write32(slot + 4, 0);
  }

  private setLeaf(gpa: number, hpa: number, perms: number, memType: number, level: number): void {
    let table = (this.eptp & 0xfffff000) >>> 0;
    for (let l = 4; l > level; l--) {
      const slot = table + indexAt(gpa, l) * 8;
      let e = this.mem.read32(slot);
      if ((e & EPT_RWX) === 0) {
        const p = this.allocPage();
        e = p | EPT_RWX;
        this.mem.write32(slot, e);
        this.mem.write32(slot + 4, 0);
      } else if ((e & EPT_PS) !== 0) {
        throw new RangeError(`EPT map: 0x${gpa.toString(16)} lies inside a large leaf`);
      }
      table = (e & 0xfffff000) >>> 0;
    }
    const slot = table + indexAt(gpa, level) * 8;
    this.mem.write32(slot, (hpa & 0xfffff000) | perms | (memType << 3) | (level > 1 ? EPT_PS : 0));
    this.mem.write32(slot + 4, 0);
  }

  /** Host address of the 4 KiB leaf entry for `gpa`, or -1 (`create` builds missing tables). */
  private leafSlot(gpa: number, create: boolean): number {
    let table = (this.eptp & 0xfffff000) >>> 0;
    for (let l = 4; l > 1; l--) {
      const slot = table + indexAt(gpa, l) * 8;
      let e = this.mem.read32(slot);
      if ((e & EPT_RWX) === 0) {
        if (!create) return -1;
        e = this.allocPage() | EPT_RWX;
        this.mem.write32(slot, e);
        this.mem.write32(slot + 4, 0);
      }
      if ((e & EPT_PS) !== 0) return -1;
      table = (e & 0xfffff000) >>> 0;
    }
    return table + indexAt(gpa, 1) * 8;
  }
}

/** Index of `gpa` at EPT level `l` (4 = PML4 … 1 = PT); guest-physical addresses are 32-bit here. */
function indexAt(gpa: number, l: number): number {
  switch (l) {
    case 4: return 0; // bits 47:39 of a 32-bit address
    case 3: return (gpa >>> 30) & 0x1ff;
    case 2: return (gpa >>> 21) & 0x1ff;
    default: return (gpa >>> 12) & 0x1ff;
  }
}

/** Counters of EPT translation. */
export interface EptCounters {
  /** Guest-physical translations requested. */
  translations: number;
  /** EPT entries read from memory. */
  refs: number;
  /** Translations that hit the nested TLB (no EPT reference). */
  ntlbHits: number;
  /** Walks that started from a cached EPT PDE (one reference instead of four). */
  pdeCacheHits: number;
  violations: number;
  misconfigurations: number;
}

/** Paging-structure caching for EPT translations (Bhargava et al., ASPLOS 2008). */
export interface EptCacheOptions {
  /**
   * Entries of the nested TLB: a fully associative, LRU cache of complete gPA-page → hPA-page
   * translations with their permissions (the "NTLB" of Bhargava et al. §4; AMD Barcelona has
   * one). It serves every guest-physical reference of a 2-D walk: guest page-table pages and
   * the final page. 0 = none.
   */
  ntlbEntries?: number;
  /**
   * Entries of an EPT PDE cache: fully associative, LRU, keyed by gPA bits 31:21, holding the
   * PT address and the permissions accumulated over PML4E/PDPTE/PDE — the nested dimension of
   * their page-walk cache, so an NTLB miss costs one reference (the EPT PTE) instead of four.
   * 0 = none.
   */
  pdeCacheEntries?: number;
}

/** A small fully-associative LRU cache of int keys → two int values, in typed arrays. */
class SmallCache {
  readonly key: Int32Array;
  readonly a: Int32Array;
  readonly b: Int32Array;
  private readonly stamp: Uint32Array;
  private clock = 0;
  constructor(readonly size: number) {
    this.key = new Int32Array(size).fill(-1);
    this.a = new Int32Array(size);
    this.b = new Int32Array(size);
    this.stamp = new Uint32Array(size);
  }
  find(k: number): number {
    for (let i = 0; i < this.size; i++) if (this.key[i] === k) { this.stamp[i] = ++this.clock; return i; }
    return -1;
  }
  put(k: number, a: number, b: number): void {
    let v = 0, oldest = 0xffffffff;
    for (let i = 0; i < this.size; i++) {
      if (this.key[i] === k || this.key[i] === -1) { v = i; break; }
      if (this.stamp[i]! < oldest) { oldest = this.stamp[i]!; v = i; }
    }
    this.key[v] = k; this.a[v] = a; this.b[v] = b; this.stamp[v] = ++this.clock;
  }
  clear(): void { this.key.fill(-1); }
}

/**
 * Translates guest-physical addresses through EPT, counting the entries it reads. The result
 * of the last translation is left in fields (no allocation per access): `hpa`, `fault`,
 * `qualification` (bits 0-5 of the EPT-violation qualification: access and the permissions
 * AND-ed over the levels read), `faultGpa`, `memType`.
 */
export class EptWalker {
  readonly mem: HostMemory;
  eptp: number;
  readonly counters: EptCounters = { translations: 0, refs: 0, ntlbHits: 0, pdeCacheHits: 0, violations: 0, misconfigurations: 0 };
  hpa = 0;
  fault: number = EptFault.None;
  qualification = 0;
  faultGpa = 0;
  memType = 0;
  /** EPT permissions (R/W/X, AND-ed over the levels) of the last successful translation. */
  perms = 0;
  private readonly ntlb: SmallCache | null;
  private readonly pdeCache: SmallCache | null;

  constructor(mem: HostMemory, eptp: number, caches: EptCacheOptions = {}) {
    if (((eptp >>> 3) & 7) !== 3) throw new RangeError('EPTP: only a 4-level walk (length field 3) is supported');
    if (!validMemType(eptp & 7) || (eptp & 7) === 1 || (eptp & 7) === 4 || (eptp & 7) === 5) {
      throw new RangeError('EPTP: paging-structure memory type must be UC or WB');
    }
    this.mem = mem;
    this.eptp = eptp >>> 0;
    this.ntlb = caches.ntlbEntries ? new SmallCache(caches.ntlbEntries) : null;
    this.pdeCache = caches.pdeCacheEntries ? new SmallCache(caches.pdeCacheEntries) : null;
  }

  /** INVEPT: drops every cached EPT-derived translation (after the monitor edits the tables). */
  invalidate(): void {
    this.ntlb?.clear();
    this.pdeCache?.clear();
  }

  /**
   * Translates `gpa` for `access` (an `EptAccess` value). Returns the host-physical address,
   * or -1 with `fault` set to Violation or Misconfiguration.
   */
  translate(gpa: number, access: number): number {
    gpa >>>= 0;
    this.counters.translations++;
    const gfn = gpa >>> 12;
    const ntlb = this.ntlb;
    if (ntlb !== null) {
      const i = ntlb.find(gfn);
      if (i >= 0) {
        const perms = ntlb.b[i]! & 7;
        this.counters.ntlbHits++;
        if (this.allowed(perms, access)) {
          this.fault = EptFault.None;
          this.perms = perms;
          this.memType = (ntlb.b[i]! >>> 3) & 7;
          this.hpa = ((ntlb.a[i]! & 0xfffff000) + (gpa & 0xfff)) >>> 0;
          return this.hpa;
        }
        // Permission denied by the cached translation: walk again (the tables may have grown rights).
      }
    }
    const mem = this.mem;
    let table = (this.eptp & 0xfffff000) >>> 0;
    let perms = EPT_RWX;
    let level = 4;
    const pdc = this.pdeCache;
    if (pdc !== null) {
      const j = pdc.find(gpa >>> 21);
      if (j >= 0) {
        this.counters.pdeCacheHits++;
        table = pdc.a[j]! >>> 0;
        perms = pdc.b[j]!;
        level = 1;
      }
    }
    for (; ; level--) {
      const slot = table + indexAt(gpa, level) * 8;
      const e = mem.read32(slot);
      const hi = mem.read32(slot + 4);
      this.counters.refs++;
      const p = e & EPT_RWX;
      if (p === 0) return this.violation(gpa, access, 0);
      if ((p & 3) === EPT_W || hi !== 0 || (level === 4 && (e & 0xf8) !== 0)) return this.misconfig(gpa);
      perms &= p;
      const leaf = level === 1 || (level <= 3 && (e & EPT_PS) !== 0);
      if (leaf) {
        const mt = (e >>> 3) & 7;
        if (!validMemType(mt)) return this.misconfig(gpa);
        const span = level === 3 ? 0x40000000 : level === 2 ? 0x200000 : PAGE;
        if ((e & 0xfffff000 & (span - 1)) !== 0) return this.misconfig(gpa); // reserved low address bits of a large leaf
        if (!this.allowed(perms, access)) return this.violation(gpa, access, perms);
        const hpa = ((e & 0xfffff000 & ~(span - 1)) + (gpa & (span - 1))) >>> 0;
        this.fault = EptFault.None;
        this.perms = perms;
        this.memType = mt;
        this.hpa = hpa;
        if (ntlb !== null) ntlb.put(gfn, (hpa & 0xfffff000) | 0, perms | (mt << 3));
        return hpa;
      }
      if (level === 2 && pdc !== null) pdc.put(gpa >>> 21, (e & 0xfffff000) | 0, perms);
      table = (e & 0xfffff000) >>> 0;
    }
  }

  private allowed(perms: number, access: number): boolean {
    if (access === EptAccess.Write) return (perms & EPT_W) !== 0;
    if (access === EptAccess.Fetch) return (perms & EPT_X) !== 0;
    return (perms & EPT_R) !== 0;
  }

  /**
   * Records an EPT violation for `gpa` found without a walk (an access checked against the
   * permissions of an earlier translation, e.g. a guest A/D update). Returns -1.
   */
  violation(gpa: number, access: number, perms: number): number {
    this.counters.violations++;
    this.fault = EptFault.Violation;
    this.faultGpa = gpa;
    this.qualification = access | ((perms & EPT_R) ? EPTV_READABLE : 0) | ((perms & EPT_W) ? EPTV_WRITABLE : 0)
      | ((perms & EPT_X) ? EPTV_EXECUTABLE : 0);
    return -1;
  }

  private misconfig(gpa: number): number {
    this.counters.misconfigurations++;
    this.fault = EptFault.Misconfiguration;
    this.faultGpa = gpa;
    this.qualification = 0;
    return -1;
  }
}

// ==========================================================================================
// Two-dimensional walk
// ==========================================================================================

/** Outcome of a 2-D translation. */
export const NestedFault = { None: 0, GuestPageFault: 1, EptViolation: 2, EptMisconfiguration: 3 } as const;

/** Access kinds of the 2-D walk. */
export const GuestAccess = { Read: 0, Write: 1, Fetch: 2 } as const;

/** Counters of the 2-D walker (EPT references are in `ept.counters.refs`). */
export interface NestedCounters {
  walks: number;
  /** Guest PDE/PTE reads. */
  guestRefs: number;
  /** Guest accessed/dirty bits written (through EPT). */
  adUpdates: number;
  guestPageFaults: number;
}

const CR0_PE = 0x1, CR0_WP = 0x10000, CR0_PG = 0x80000000, CR4_PSE = 0x10;

/**
 * Translates a guest-linear address through the guest's 2-level 32-bit tables (4 KiB pages,
 * 4 MiB with CR4.PSE; the same rules as `Cpu.walk`), where every guest-physical reference —
 * CR3 → PDE, PDE → PTE, and the final address — goes through EPT. References: n guest + (n+1)m
 * EPT = (n+1)(m+1) − 1 on a cold walk with no caches (14 for n = 2, m = 4).
 *
 * Guest A/D updates are writes to guest-physical memory, so the page-table page must be
 * EPT-writable; if not, the walk ends in an EPT violation (data write, linear address valid,
 * "paging-structure entry" rather than final translation), as on hardware.
 *
 * Results are left in fields: `hpa`, `gpa` (the final guest-physical address), `fault`,
 * `pfErrorCode` (for a guest #PF: P, W/R, U/S bits), `qualification` (full EPT-violation
 * qualification with bits 7/8), `faultGpa`.
 */
export class NestedWalker {
  readonly mem: HostMemory;
  readonly ept: EptWalker;
  readonly counters: NestedCounters = { walks: 0, guestRefs: 0, adUpdates: 0, guestPageFaults: 0 };
  hpa = 0;
  gpa = 0;
  fault: number = NestedFault.None;
  pfErrorCode = 0;
  qualification = 0;
  faultGpa = 0;
  /**
   * Guest-side result of the last successful walk: U/S and R/W combined over the levels, the
   * leaf's dirty and global bits, and whether it was a 4 MiB page.
   */
  user = false;
  rw = false;
  dirty = false;
  global = false;
  large = false;

  constructor(mem: HostMemory, ept: EptWalker) {
    this.mem = mem;
    this.ept = ept;
  }

  /** Total memory references so far: guest entries plus EPT entries. */
  get refs(): number {
    return this.counters.guestRefs + this.ept.counters.refs;
  }

  /**
   * Translates `lin` for `access` (`GuestAccess`) at user (`user` = CPL 3) or supervisor level
   * with guest control registers `cr0`, `cr3`, `cr4`. Returns the host-physical address or -1.
   */
  translate(cr0: number, cr3: number, cr4: number, lin: number, access: number, user: boolean): number {
    lin >>>= 0;
    this.counters.walks++;
    const ept = this.ept, mem = this.mem;
    const write = access === GuestAccess.Write;
    const errBase = (write ? 2 : 0) | (user ? 4 : 0);
    const wp = (cr0 & CR0_WP) !== 0;

    if ((cr0 & CR0_PG) === 0 || (cr0 & CR0_PE) === 0) {
      // The guest's paging is off (unrestricted guest): guest-physical = linear, every access
      // allowed by the guest, and the EPT still applies (SDM Vol. 3C 26.6.2 / 28.2.1).
      this.user = true; this.rw = true; this.dirty = true; this.global = false; this.large = false;
      this.gpa = lin;
      const hpa0 = ept.translate(lin, access === GuestAccess.Write ? EptAccess.Write : access === GuestAccess.Fetch ? EptAccess.Fetch : EptAccess.Read);
      if (hpa0 < 0) return this.eptFault(true);
      this.fault = NestedFault.None;
      this.hpa = hpa0;
      return hpa0;
    }

    const pdeGpa = ((cr3 & 0xfffff000) + ((lin >>> 22) << 2)) >>> 0;
    const pdeHpa = ept.translate(pdeGpa, EptAccess.Read);
    if (pdeHpa < 0) return this.eptFault(false);
    const pdePerms = ept.perms;
    let pde = mem.read32(pdeHpa);
    this.counters.guestRefs++;
    if ((pde & 1) === 0) return this.guestFault(errBase);

    let gpa: number;
    let us: boolean, rw: boolean;
    if ((pde & 0x80) !== 0 && (cr4 & CR4_PSE) !== 0) {
      if ((pde & 0x003ff000) !== 0) return this.guestFault(errBase | 1 | 8);
      us = (pde & 4) !== 0; rw = (pde & 2) !== 0;
      if (!this.permitted(user, write, us, rw, wp)) return this.guestFault(errBase | 1);
      const want = pde | 0x20 | (write ? 0x40 : 0);
      if (want !== pde) {
        if (!this.adWrite(pdeGpa, pdeHpa, pdePerms, want)) return -1;
        pde = want;
      }
      gpa = ((pde & 0xffc00000) + (lin & 0x3fffff)) >>> 0;
      this.dirty = (pde & 0x40) !== 0;
      this.global = (pde & 0x100) !== 0;
      this.large = true;
    } else {
      const pteGpa = ((pde & 0xfffff000) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
      const pteHpa = ept.translate(pteGpa, EptAccess.Read);
      if (pteHpa < 0) return this.eptFault(false);
      const ptePerms = ept.perms;
      let pte = mem.read32(pteHpa);
      this.counters.guestRefs++;
      if ((pte & 1) === 0) return this.guestFault(errBase);
      us = (pde & pte & 4) !== 0; rw = (pde & pte & 2) !== 0;
      if (!this.permitted(user, write, us, rw, wp)) return this.guestFault(errBase | 1);
      if ((pde & 0x20) === 0 && !this.adWrite(pdeGpa, pdeHpa, pdePerms, pde | 0x20)) return -1;
      const want = pte | 0x20 | (write ? 0x40 : 0);
      if (want !== pte) {
        if (!this.adWrite(pteGpa, pteHpa, ptePerms, want)) return -1;
        pte = want;
      }
      gpa = ((pte & 0xfffff000) + (lin & 0xfff)) >>> 0;
      this.dirty = (pte & 0x40) !== 0;
      this.global = (pte & 0x100) !== 0;
      this.large = false;
    }
    this.user = us;
    this.rw = rw;
    this.gpa = gpa;
    const eAccess = access === GuestAccess.Write ? EptAccess.Write : access === GuestAccess.Fetch ? EptAccess.Fetch : EptAccess.Read;
    const hpa = ept.translate(gpa, eAccess);
    if (hpa < 0) return this.eptFault(true);
    this.fault = NestedFault.None;
    this.hpa = hpa;
    return hpa;
  }

  private permitted(user: boolean, write: boolean, us: boolean, rw: boolean, wp: boolean): boolean {
    if (user) return us && (!write || rw);
    return !write || rw || !wp;
  }

  /**
   * Writes a guest A/D update to the entry the walk just read (at `hpa`, reached through EPT
   * with permissions `perms`). It is a data write for EPT (SDM §29.3.3.2), so it needs write
   * permission; the entry is already located, so it costs no further EPT reference.
   */
  private adWrite(entryGpa: number, hpa: number, perms: number, value: number): boolean {
    if ((perms & EPT_W) === 0) {
      this.ept.violation(entryGpa, EptAccess.Write, perms);
      this.eptFault(false);
      return false;
    }
    this.mem.write32(hpa, value);
    this.counters.adUpdates++;
    return true;
  }

  private guestFault(code: number): number {
    this.counters.guestPageFaults++;
    this.fault = NestedFault.GuestPageFault;
    this.pfErrorCode = code;
    return -1;
  }

  private eptFault(final: boolean): number {
    const ept = this.ept;
    this.faultGpa = ept.faultGpa;
    if (ept.fault === EptFault.Misconfiguration) {
      this.fault = NestedFault.EptMisconfiguration;
      this.qualification = 0;
    } else {
      this.fault = NestedFault.EptViolation;
      this.qualification = ept.qualification | EPTV_LINEAR_VALID | (final ? EPTV_FINAL : 0);
    }
    return -1;
  }
}
