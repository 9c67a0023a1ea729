/**
 * Direct paging, validated (Barham et al., SOSP 2003, §3.3.3; Xen's arch/x86/mm.c): the
 * guest's page tables hold machine frames and are the tables the MMU walks; the hypervisor
 * keeps, per machine frame, a type (none, L1 page table, L2 page table, writable page) with a
 * type reference count and a pinned bit, and checks every update:
 *
 * - an entry may map only a frame the domain owns (or the shared_info page the hypervisor
 *   shares with it);
 * - a writable L1 entry takes a `writable` type reference, so a frame in use as a page table
 *   can never be mapped writable, and a frame mapped writable can never become a page table;
 * - an L2 entry takes an `L1` type reference on the table it points to (validated on its
 *   first reference); 4 MiB pages are refused; the hypervisor's slots (≥ HYPERVISOR_VIRT_START)
 *   belong to the hypervisor;
 * - when a frame's type count drops to zero its entries' references are dropped in turn.
 *
 * Errors are Xen's (-EINVAL for a refused entry or type, -EPERM for a frame of another
 * domain) and each refusal is counted under a reason (`attack.<reason>` in the run record).
 */
import type { PhysicalMemory } from '../../machine/memory.js';
import { XEN_ERRNO } from './domain-context.js';
import { HYPERVISOR_VIRT_START } from './abi.js';
import { mutant } from '../mutants.js';

export const PT_NONE = 0, PT_L1 = 1, PT_L2 = 2, PT_WRITABLE = 3;
const TYPE_NAME = ['none', 'l1', 'l2', 'writable'];

const P = 1, W = 2, PSE = 0x80;
/** First L2 slot of the hypervisor's part of the address space. */
export const FIRST_HYPERVISOR_SLOT = HYPERVISOR_VIRT_START >>> 22;

/** What the MMU model needs from the CPU (a fake in tests). */
export interface MmuHost {
  flushTlb(): void;
  invalidatePage(lin: number): void;
  /** Loads the real CR3 (machine address of the new L2). */
  setBase(machineAddr: number): void;
}

/** A refusal: Xen's negated errno and the reason counted in the record. */
export class Refused {
  constructor(readonly errno: number, readonly reason: string) {}
}

/** Frame ownership: 0 foreign (or free hypervisor memory), 1 the domain's, 2 shared by the hypervisor (mappable, untyped). */
export const OWN_NONE = 0, OWN_DOMAIN = 1, OWN_SHARED = 2;

/** The domain's frames, their types and counts, and the validated updates. */
export class DirectPaging {
  readonly frames: number;
  readonly owner: Uint8Array;
  readonly type: Uint8Array;
  readonly typeCount: Uint32Array;
  /** Writable type references held outside the page tables (grant-table frames, back ends' writable grant mappings): `audit` counts them. */
  readonly externalRefs: Uint32Array;
  readonly pinned: Uint8Array;
  /** Machine frame of the current base (L2), or -1. */
  base = -1;
  /** Slots written into every validated L2: the M2P and the hypervisor window. */
  readonly hypervisorSlots: { index: number; value: number }[] = [];
  /** Frames the domain builder made (bootstrap tables) that may be tables though not the domain's. */
  readonly builderFrames = new Set<number>();
  readonly stats = { updates: 0, validatedEntries: 0, pins: 0, unpins: 0, baseSwitches: 0, devalidations: 0 };

  constructor(private readonly mem: PhysicalMemory, private readonly host: MmuHost) {
    this.frames = mem.size >>> 12;
    this.owner = new Uint8Array(this.frames);
    this.type = new Uint8Array(this.frames);
    this.typeCount = new Uint32Array(this.frames);
    this.externalRefs = new Uint32Array(this.frames);
    this.pinned = new Uint8Array(this.frames);
  }

  private mappable(mfn: number): boolean {
    return mfn < this.frames && this.owner[mfn] !== OWN_NONE;
  }
  private isTableFrame(mfn: number): boolean {
    return mfn < this.frames && (this.owner[mfn] === OWN_DOMAIN || this.builderFrames.has(mfn));
  }

  /** Takes a type reference; validates the frame on its first L1/L2 reference. */
  getType(mfn: number, t: number): Refused | null {
    if (!this.isTableFrame(mfn) && !(t === PT_WRITABLE && this.mappable(mfn))) return new Refused(-XEN_ERRNO.EPERM, 'foreign-frame');
    if (this.owner[mfn] === OWN_SHARED) return null; // shared_info: mappable, never typed
    const c = this.typeCount[mfn]!;
    if (c > 0) {
      if (this.type[mfn] !== t && !(t === PT_WRITABLE && mutant('pv-writable-pagetable'))) return new Refused(-XEN_ERRNO.EINVAL, t === PT_WRITABLE ? 'writable-pagetable' : `type-conflict-${TYPE_NAME[this.type[mfn]!]}-as-${TYPE_NAME[t]}`);
      this.typeCount[mfn] = c + 1;
      return null;
    }
    this.type[mfn] = t;
    this.typeCount[mfn] = 1;
    if (t === PT_L1 || t === PT_L2) {
      const r = this.validate(mfn, t);
      if (r !== null) { this.typeCount[mfn] = 0; this.type[mfn] = PT_NONE; return r; }
    }
    return null;
  }

  /** Drops a type reference; at zero a table's entries are released. */
  putType(mfn: number): void {
    if (this.owner[mfn] === OWN_SHARED) return;
    const c = this.typeCount[mfn]!;
    if (c === 0) throw new Error(`pv: type count underflow on machine frame 0x${mfn.toString(16)}`);
    if (c > 1) { this.typeCount[mfn] = c - 1; return; }
    const t = this.type[mfn]!;
    if (t === PT_L1 || t === PT_L2) {
      this.stats.devalidations++;
      const base = mfn * 4096;
      const n = t === PT_L2 ? FIRST_HYPERVISOR_SLOT : 1024;
      for (let i = 0; i < n; i++) this.putEntry(this.mem.read32(base + i * 4), t);
    }
    this.typeCount[mfn] = 0;
    this.type[mfn] = PT_NONE;
  }

  /** References an entry of a table of type `level` takes. */
  getEntry(e: number, level: number): Refused | null {
    if ((e & P) === 0) return null;
    const target = e >>> 12;
    if (level === PT_L2) {
      if ((e & PSE) !== 0) return new Refused(-XEN_ERRNO.EINVAL, 'large-page');
      if (!this.isTableFrame(target)) return new Refused(-XEN_ERRNO.EPERM, 'foreign-frame');
      return this.getType(target, PT_L1);
    }
    if (!this.mappable(target) && !mutant('pv-foreign-frame')) return new Refused(-XEN_ERRNO.EPERM, 'foreign-frame');
    if ((e & W) !== 0) return this.getType(target, PT_WRITABLE);
    return null;
  }

  putEntry(e: number, level: number): void {
    if ((e & P) === 0) return;
    const target = e >>> 12;
    if (level === PT_L2) this.putType(target);
    else if ((e & W) !== 0) this.putType(target);
  }

  private validate(mfn: number, t: number): Refused | null {
    const base = mfn * 4096;
    const n = t === PT_L2 ? FIRST_HYPERVISOR_SLOT : 1024;
    for (let i = 0; i < n; i++) {
      const r = this.getEntry(this.mem.read32(base + i * 4), t);
      if (r !== null) {
        for (let j = 0; j < i; j++) this.putEntry(this.mem.read32(base + j * 4), t);
        return r;
      }
      if ((this.mem.read32(base + i * 4) & P) !== 0) this.stats.validatedEntries++;
    }
    if (t === PT_L2) {
      for (let i = FIRST_HYPERVISOR_SLOT; i < 1024; i++) this.mem.write32(base + i * 4, 0);
      for (const s of this.hypervisorSlots) this.mem.write32(base + s.index * 4, s.value);
    }
    return null;
  }

  /**
   * One MMU_NORMAL_PT_UPDATE: `ptr` the machine address of the entry, `val` the new entry.
   * A frame that is no page table is written as a plain page the domain owns (Xen's
   * PGT_writable_page case).
   */
  update(ptr: number, val: number): Refused | null {
    const mfn = ptr >>> 12;
    if ((ptr & 3) !== 0) return new Refused(-XEN_ERRNO.EINVAL, 'misaligned-entry');
    if (!this.isTableFrame(mfn)) return new Refused(-XEN_ERRNO.EPERM, 'foreign-table');
    const t = this.typeCount[mfn] === 0 ? PT_NONE : this.type[mfn]!;
    this.stats.updates++;
    if (t !== PT_L1 && t !== PT_L2) {
      // A plain page: the domain may write it only if nothing uses it as a table, and only
      // its own: the builder's bootstrap tables (above guest RAM) are typeless once the
      // kernel runs on its own directory, and stay the hypervisor's.
      if (this.owner[mfn] !== OWN_DOMAIN) return new Refused(-XEN_ERRNO.EPERM, 'foreign-table');
      this.mem.write32(ptr, val);
      return null;
    }
    const idx = (ptr & 0xfff) >>> 2;
    if (t === PT_L2 && idx >= FIRST_HYPERVISOR_SLOT) return new Refused(-XEN_ERRNO.EINVAL, 'hypervisor-slot');
    const old = this.mem.read32(ptr);
    const r = this.getEntry(val, t);
    if (r !== null) return r;
    this.mem.write32(ptr, val);
    this.putEntry(old, t);
    return null;
  }

  pin(mfn: number, t: number): Refused | null {
    if (mfn >= this.frames || this.owner[mfn] !== OWN_DOMAIN) return new Refused(-XEN_ERRNO.EPERM, 'foreign-frame');
    if (this.pinned[mfn]) return new Refused(-XEN_ERRNO.EINVAL, 'already-pinned');
    const r = this.getType(mfn, t);
    if (r !== null) return r;
    this.pinned[mfn] = 1;
    this.stats.pins++;
    return null;
  }

  unpin(mfn: number): Refused | null {
    if (mfn >= this.frames || this.owner[mfn] !== OWN_DOMAIN) return new Refused(-XEN_ERRNO.EPERM, 'foreign-frame');
    if (!this.pinned[mfn]) return new Refused(-XEN_ERRNO.EINVAL, 'unpin-not-pinned');
    this.pinned[mfn] = 0;
    this.stats.unpins++;
    if (!mutant('pv-unpin-keeps-type')) this.putType(mfn);
    return null;
  }

  /** MMUEXT_NEW_BASEPTR: a type reference on the new L2, dropped on the old one. */
  newBase(mfn: number): Refused | null {
    if (!this.isTableFrame(mfn)) return new Refused(-XEN_ERRNO.EPERM, 'foreign-frame');
    const r = this.getType(mfn, PT_L2);
    if (r !== null) return r;
    const old = this.base;
    this.base = mfn;
    this.host.setBase(mfn * 4096);
    if (old >= 0) this.putType(old);
    this.stats.baseSwitches++;
    return null;
  }

  /** The machine address of the L1 entry mapping `va` in the current base, or -1. */
  entryFor(va: number): number {
    if (this.base < 0) return -1;
    const pde = this.mem.read32(this.base * 4096 + (va >>> 22) * 4);
    if ((pde & P) === 0 || (va >>> 22) >= FIRST_HYPERVISOR_SLOT) return -1;
    return ((pde & ~0xfff) >>> 0) + ((va >>> 12) & 0x3ff) * 4;
  }

  /** A consistency check for tests: every count equals the references the tables hold. */
  audit(): string[] {
    const want = new Uint32Array(this.frames);
    const errors: string[] = [];
    for (let m = 0; m < this.frames; m++) {
      if (this.typeCount[m] === 0) continue;
      const t = this.type[m]!;
      if (this.pinned[m]) want[m]!++;
      if (t !== PT_L1 && t !== PT_L2) continue;
      const n = t === PT_L2 ? FIRST_HYPERVISOR_SLOT : 1024;
      for (let i = 0; i < n; i++) {
        const e = this.mem.read32(m * 4096 + i * 4);
        if ((e & P) === 0) continue;
        const target = e >>> 12;
        if (this.owner[target] === OWN_SHARED) continue;
        if (t === PT_L2) { want[target]!++; if (this.type[target] !== PT_L1) errors.push(`L2 0x${m.toString(16)}[${i}] → 0x${target.toString(16)} not an L1`); }
        else if ((e & W) !== 0) { want[target]!++; if (this.type[target] !== PT_WRITABLE) errors.push(`L1 0x${m.toString(16)}[${i}] maps 0x${target.toString(16)} (${TYPE_NAME[this.type[target]!]}) writable`); }
      }
    }
    if (this.base >= 0) want[this.base]!++;
    for (let m = 0; m < this.frames; m++) want[m] += this.externalRefs[m]!;
    for (let m = 0; m < this.frames; m++) {
      if (want[m] !== this.typeCount[m]) errors.push(`frame 0x${m.toString(16)}: type count ${this.typeCount[m]}, references ${want[m]}`);
    }
    return errors;
  }
}
