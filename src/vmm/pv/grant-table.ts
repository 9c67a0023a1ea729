/**
 * Grant tables of the `pv` hypervisor model: Xen's `grant_table_op` (hypercall 20), v1 grant
 * entries (xen/include/public/grant_table.h: `struct grant_entry_v1 { uint16_t flags; domid_t
 * domid; uint32_t frame; }`, 8 bytes, 512 per 4 KiB frame).
 *
 * A domain grants another access to one of its frames by writing an entry (frame = machine
 * frame, as a PV guest does; domid = who may map it; flags GTF_permit_access [| GTF_readonly]).
 * The back ends (domain 0, the hypervisor model itself) map grant references to reach the
 * front end's ring and buffers: every map checks the reference, the entry's type and domid,
 * write permission and that the frame belongs to the granting domain, and marks the entry
 * GTF_reading / GTF_writing while it is in use, as Xen does, so the granting guest can tell
 * when it may revoke.
 *
 * virtlab simplification (documented in docs/pv.md): GNTTABOP_setup_table takes the table's
 * frames *from* the guest (frame_list is read: machine frames the guest owns) instead of Xen
 * allocating them from its heap and returning their numbers; the table therefore lives in
 * guest-owned frames, mapped writable in the guest as Xen's shared grant frames are.
 */
import { XEN_ERRNO, type DomId, type Mfn, type PvDomainContext } from './domain-context.js';
import { DOMID_SELF } from './event-channel.js';
import { mutant } from '../mutants.js';

/** Hypercall number of grant_table_op (xen.h: __HYPERVISOR_grant_table_op). */
export const HYPERVISOR_grant_table_op = 20;

/** GNTTABOP_* (grant_table.h). */
export const GNTTABOP = { map_grant_ref: 0, unmap_grant_ref: 1, setup_table: 2, dump_table: 3, transfer: 4, copy: 5, query_size: 6 } as const;

/** Grant entry flags (grant_table.h GTF_*). */
export const GTF = {
  invalid: 0, permit_access: 1, accept_transfer: 2, type_mask: 3,
  readonly: 1 << 2, reading: 1 << 3, writing: 1 << 4,
} as const;

/** GNTMAP_* flags of map_grant_ref (grant_table.h). */
export const GNTMAP = { device_map: 1, host_map: 2, readonly: 4, application_map: 8, contains_pte: 16 } as const;

/** GNTCOPY_* flags of gnttab_copy (grant_table.h). */
export const GNTCOPY = { source_gref: 1, dest_gref: 2 } as const;

/** Per-operation status codes (grant_table.h GNTST_*). */
export const GNTST = {
  okay: 0, general_error: -1, bad_domain: -2, bad_gntref: -3, bad_handle: -4, bad_virt_addr: -5,
  bad_dev_addr: -6, no_device_space: -7, permission_denied: -8, bad_page: -9, bad_copy_arg: -10,
  address_too_big: -11, eagain: -12,
} as const;

/** Entries 0..7 are reserved for the toolstack (grant_table.h GNTTAB_NR_RESERVED_ENTRIES). */
export const GNTTAB_NR_RESERVED_ENTRIES = 8;
/** Bytes per v1 entry, entries per frame. */
export const GRANT_ENTRY_SIZE = 8;
export const GRANT_ENTRIES_PER_FRAME = 4096 / GRANT_ENTRY_SIZE;
/**
 * Most grant frames a domain may set up. Xen's default is larger (gnttab_max_frames, 32 or 64
 * depending on version); a few frames are plenty for one blkfront and one netfront.
 */
export const MAX_GRANT_FRAMES = 4;
/** Most operations one grant_table_op call processes (Xen would use a continuation beyond its batch). */
export const MAX_GRANT_OPS_PER_CALL = 512;

/** i386 sizes of the argument structures (grant_table.h; 64-bit fields 4-byte aligned). */
export const GNTTAB_ARG_SIZE = { map_grant_ref: 32, unmap_grant_ref: 24, setup_table: 16, dump_table: 4, copy: 24, query_size: 16, transfer: 16 } as const;

/**
 * Optional extension of `PvDomainContext` (implemented by the hypervisor when it types frames,
 * as Xen's get_page_type / put_page_type): a writable-type reference on a frame, refused for a
 * frame in use as a page table (or any type that excludes writable mappings). With it, a
 * grant can never give a back end write access to a page-table page, and a frame mapped
 * writable by a back end cannot become a page table meanwhile. Without it (unit tests), every
 * owned frame is writable.
 */
export interface PvFrameTypes {
  /** Takes a writable-type reference on `mfn`; false when the frame's type forbids it. */
  getWritableRef(mfn: Mfn): boolean;
  /** Drops a reference taken by `getWritableRef`. */
  putWritableRef(mfn: Mfn): void;
}

function frameTypes(ctx: PvDomainContext): PvFrameTypes | null {
  const t = ctx as PvDomainContext & Partial<PvFrameTypes>;
  return typeof t.getWritableRef === 'function' && typeof t.putWritableRef === 'function' ? (t as PvFrameTypes) : null;
}

/** Figures (cycles) from the profile's `paravirtualization` section. */
export interface GrantCosts {
  readonly grantMap: number;
  readonly grantUnmap: number;
}

/** A successful mapping, or why it failed. */
export type GrantMapResult =
  | { readonly status: 0; readonly handle: number; readonly mfn: Mfn; readonly readonly: boolean }
  | { readonly status: number; readonly handle: -1; readonly mfn: -1; readonly readonly: boolean };

interface Mapping { ref: number; mapper: number; readonly: boolean; mfn: number }

/** Counters for the run record. */
export interface GrantCounters {
  maps: number;
  unmaps: number;
  copies: number;
  rejected: number;
}

/** The grant table of one (granting) domain, and the mappings others hold of it. */
export class GrantTable {
  readonly counters: GrantCounters = { maps: 0, unmaps: 0, copies: 0, rejected: 0 };
  /** Machine frames holding the table (empty until setup_table). */
  private frames: number[] = [];
  /** handle → mapping (null: free slot). */
  private readonly handles: (Mapping | null)[] = [];
  /** ref → [readers, writers] pinned. */
  private readonly pins = new Map<number, { r: number; w: number }>();
  private readonly buf = new Uint8Array(32);
  private readonly view = new DataView(this.buf.buffer);
  private readonly scratch = new Uint8Array(4096);

  private readonly types: PvFrameTypes | null;

  constructor(private readonly ctx: PvDomainContext, private readonly costs: GrantCosts) {
    this.types = frameTypes(ctx);
  }

  /** Number of entries the table holds now. */
  get nrEntries(): number { return this.frames.length * GRANT_ENTRIES_PER_FRAME; }
  get nrFrames(): number { return this.frames.length; }

  // ------------------------------------------------------------------ the hypercall

  /**
   * grant_table_op(cmd, uop, count): `count` argument structures at guest virtual `uopVa`;
   * each gets its own status (GNTST_*); the call returns 0, or -errno when it could not read
   * or write the structures (-EFAULT), the count is bad (-EINVAL) or the command unknown or
   * not modelled (-ENOSYS).
   */
  hypercall(cmd: number, uopVa: number, count: number): number {
    const c = cmd >>> 0;
    const n = count | 0;
    if (n < 0 || n > MAX_GRANT_OPS_PER_CALL) return this.reject('grant-bad-count', -XEN_ERRNO.EINVAL);
    let size: number;
    switch (c) {
      case GNTTABOP.map_grant_ref: size = GNTTAB_ARG_SIZE.map_grant_ref; break;
      case GNTTABOP.unmap_grant_ref: size = GNTTAB_ARG_SIZE.unmap_grant_ref; break;
      case GNTTABOP.setup_table: size = GNTTAB_ARG_SIZE.setup_table; break;
      case GNTTABOP.dump_table: size = GNTTAB_ARG_SIZE.dump_table; break;
      case GNTTABOP.copy: size = GNTTAB_ARG_SIZE.copy; break;
      case GNTTABOP.query_size: size = GNTTAB_ARG_SIZE.query_size; break;
      case GNTTABOP.transfer:
        // Page flipping (the old netfront receive path) is not modelled.
        return this.reject('grant-transfer-unsupported', -XEN_ERRNO.ENOSYS);
      default: return this.reject('grant-bad-cmd', -XEN_ERRNO.ENOSYS);
    }
    const arg = this.buf.subarray(0, size);
    for (let i = 0; i < n; i++) {
      const va = (uopVa + i * size) >>> 0;
      if (!this.ctx.copyFromGuest(va, arg)) return this.reject('grant-bad-arg-va', -XEN_ERRNO.EFAULT);
      const r = this.op(c, arg);
      if (r !== 0) return r;
      if (!this.ctx.copyToGuest(va, arg)) return this.reject('grant-bad-arg-va', -XEN_ERRNO.EFAULT);
    }
    return 0;
  }

  /** One operation on the structure in `this.buf`; 0, or -errno that ends the call. */
  private op(c: number, arg: Uint8Array): number {
    const v = this.view;
    const self = this.ctx.domid as number;
    switch (c) {
      case GNTTABOP.setup_table: {
        const dom = v.getUint16(0, true), nr = v.getUint32(4, true), list = v.getUint32(12, true);
        v.setInt16(8, this.setupTable(dom, nr, list), true);
        if (v.getInt16(8, true) === -XEN_ERRNO.EFAULT) return -XEN_ERRNO.EFAULT;
        return 0;
      }
      case GNTTABOP.query_size: {
        const dom = v.getUint16(0, true);
        if (!this.isSelf(dom)) { v.setInt16(12, this.status('grant-bad-domain', GNTST.bad_domain), true); return 0; }
        v.setUint32(4, this.frames.length, true);
        v.setUint32(8, MAX_GRANT_FRAMES, true);
        v.setInt16(12, GNTST.okay, true);
        return 0;
      }
      case GNTTABOP.dump_table: {
        v.setInt16(2, this.isSelf(v.getUint16(0, true)) ? GNTST.okay : this.status('grant-bad-domain', GNTST.bad_domain), true);
        return 0;
      }
      case GNTTABOP.map_grant_ref: {
        const flags = v.getUint32(8, true), ref = v.getUint32(12, true), dom = v.getUint16(16, true);
        let st: number;
        let handle = 0, bus = 0;
        if ((flags & (GNTMAP.device_map | GNTMAP.host_map)) === 0) st = this.status('grant-bad-map-flags', GNTST.general_error);
        else if ((flags & GNTMAP.host_map) !== 0) {
          // Installing the grant in the guest's own page tables (host_addr) is not modelled:
          // guests here only map for device access (dev_bus_addr).
          st = this.status('grant-host-map-unsupported', GNTST.general_error);
        } else if (!this.isSelf(dom)) {
          // The only domain with a grant table is this one; domain 0 (the back ends) grants nothing.
          st = this.status('grant-bad-domain', GNTST.bad_domain);
        } else {
          const m = this.mapGrant(ref, self as DomId, (flags & GNTMAP.readonly) !== 0);
          st = m.status;
          if (m.status === 0) { handle = m.handle; bus = (m.mfn as number) * 4096; }
        }
        v.setInt16(18, st, true);
        v.setUint32(20, st === 0 ? handle : 0, true);
        v.setUint32(24, st === 0 ? bus >>> 0 : 0, true);
        v.setUint32(28, 0, true);
        return 0;
      }
      case GNTTABOP.unmap_grant_ref: {
        const handle = v.getUint32(16, true);
        const m = this.handles[handle];
        // A guest may only release its own mappings, never a back end's.
        const st = m === undefined || m === null || m.mapper !== self ? this.status('grant-bad-handle', GNTST.bad_handle) : this.unmapGrant(handle);
        v.setInt16(20, st, true);
        return 0;
      }
      default: { // copy
        v.setInt16(20, this.copy(arg), true);
        return 0;
      }
    }
  }

  /** GNTTABOP_setup_table (virtlab: frame_list holds the guest's machine frames, read). */
  private setupTable(dom: number, nr: number, listVa: number): number {
    if (!this.isSelf(dom)) return this.status('grant-bad-domain', GNTST.permission_denied);
    if (nr > MAX_GRANT_FRAMES) return this.status('grant-too-many-frames', GNTST.general_error);
    for (const p of this.pins.values()) if (p.r + p.w > 0) return this.status('grant-setup-while-mapped', GNTST.general_error);
    const list = new Uint8Array(4 * nr);
    if (!this.ctx.copyFromGuest(listVa >>> 0, list)) { this.reject('grant-bad-arg-va', 0); return -XEN_ERRNO.EFAULT; }
    const dv = new DataView(list.buffer);
    const frames: number[] = [];
    for (let i = 0; i < nr; i++) {
      const mfn = dv.getUint32(4 * i, true);
      if (!this.ctx.ownsMfn(mfn as Mfn)) return this.status('grant-table-foreign-frame', GNTST.bad_page);
      if (frames.includes(mfn)) return this.status('grant-table-duplicate-frame', GNTST.general_error);
      frames.push(mfn);
    }
    // The hypervisor writes the table (GTF_reading/writing): its frames must be plain writable
    // pages, never page tables — a writable type reference for as long as they are the table.
    const t = this.types;
    if (t !== null) {
      for (let i = 0; i < frames.length; i++) {
        if (!t.getWritableRef(frames[i]! as Mfn)) {
          for (let j = 0; j < i; j++) t.putWritableRef(frames[j]! as Mfn);
          return this.status('grant-table-typed-frame', GNTST.general_error);
        }
      }
      for (const f of this.frames) t.putWritableRef(f as Mfn);
    }
    this.frames = frames;
    return GNTST.okay;
  }

  // ------------------------------------------------------------------ mapping (back ends)

  /**
   * Maps grant `ref` of this domain for domain `mapper` (0: a back end), read-only or
   * writable. Checks as Xen's map_grant_ref: reference in range (GNTST_bad_gntref), entry of
   * type GTF_permit_access naming `mapper` and not read-only for a writable map
   * (GNTST_general_error), frame owned by the granting domain (GNTST_bad_page). Marks the
   * entry GTF_reading (and GTF_writing when writable) while mapped. Charges `grantMap`.
   */
  mapGrant(ref: number, mapper: DomId, readonly: boolean): GrantMapResult {
    const fail = (what: string, st: number): GrantMapResult => ({ status: this.status(what, st), handle: -1, mfn: -1, readonly });
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.nrEntries) return fail('grant-bad-ref', GNTST.bad_gntref);
    const at = this.entryAddr(ref);
    const mem = this.ctx.mem;
    const flags = mem.read16(at), domid = mem.read16(at + 2), frame = mem.read32(at + 4) >>> 0;
    if ((flags & GTF.type_mask) !== GTF.permit_access) return fail('grant-revoked', GNTST.general_error);
    if (domid !== (mapper as number) && !mutant('pv-grant-any-domid')) return fail('grant-wrong-domid', GNTST.general_error);
    if (!readonly && (flags & GTF.readonly) !== 0) return fail('grant-write-readonly', GNTST.general_error);
    if (!this.ctx.ownsMfn(frame as Mfn)) return fail('grant-foreign-frame', GNTST.bad_page);
    // Xen: get_page_type(PGT_writable_page) for a writable mapping (a page table cannot be one).
    if (!readonly && this.types !== null && !mutant('pv-grant-typed-frame') && !this.types.getWritableRef(frame as Mfn)) return fail('grant-typed-frame', GNTST.general_error);
    mem.write16(at, flags | GTF.reading | (readonly ? 0 : GTF.writing));
    const pin = this.pins.get(ref) ?? { r: 0, w: 0 };
    if (readonly) pin.r++; else pin.w++;
    this.pins.set(ref, pin);
    let handle = this.handles.indexOf(null);
    const m: Mapping = { ref, mapper: mapper as number, readonly, mfn: frame };
    if (handle < 0) { handle = this.handles.length; this.handles.push(m); } else this.handles[handle] = m;
    this.counters.maps++;
    this.ctx.charge('hypercall:grant_table_op', this.costs.grantMap);
    return { status: 0, handle, mfn: frame as Mfn, readonly };
  }

  /**
   * Releases a mapping: GTF_writing clears when no writable mapping of the entry is left,
   * GTF_reading when none at all. GNTST_bad_handle for an unknown handle. Charges `grantUnmap`.
   */
  unmapGrant(handle: number): number {
    const m = Number.isInteger(handle) && handle >= 0 ? this.handles[handle] : undefined;
    if (m === undefined || m === null) return this.status('grant-bad-handle', GNTST.bad_handle);
    this.handles[handle] = null;
    if (!m.readonly && this.types !== null) this.types.putWritableRef(m.mfn as Mfn);
    const pin = this.pins.get(m.ref)!;
    if (m.readonly) pin.r--; else pin.w--;
    // The table may have been set up again (not while pinned), so the entry is still in range.
    const at = this.entryAddr(m.ref);
    const mem = this.ctx.mem;
    let flags = mem.read16(at);
    if (pin.w === 0) flags &= ~GTF.writing;
    if (pin.r + pin.w === 0) { flags &= ~GTF.reading; this.pins.delete(m.ref); }
    mem.write16(at, flags);
    this.counters.unmaps++;
    this.ctx.charge('hypercall:grant_table_op', this.costs.grantUnmap);
    return GNTST.okay;
  }

  /** The machine frame behind a live handle (−1 if none). */
  frameOf(handle: number): number {
    const m = this.handles[handle];
    return m === undefined || m === null ? -1 : m.mfn;
  }

  /** Live mappings (for tests and the run record). */
  get liveMappings(): number { return this.handles.reduce((n, m) => n + (m === null ? 0 : 1), 0); }

  // ------------------------------------------------------------------ copy

  /** GNTTABOP_copy of one `gnttab_copy` in the argument buffer; returns its status. */
  private copy(arg: Uint8Array): number {
    const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
    const len = v.getUint16(16, true), flags = v.getUint16(18, true);
    const self = this.ctx.domid as number;
    const side = (off: number, gref: boolean, write: boolean): { st: number; addr: number; handle: number } => {
      const u = v.getUint32(off, true), domid = v.getUint16(off + 4, true), offset = v.getUint16(off + 6, true);
      if (offset + len > 4096) return { st: this.status('grant-copy-bad-arg', GNTST.bad_copy_arg), addr: 0, handle: -1 };
      if (!this.isSelf(domid)) return { st: this.status('grant-bad-domain', GNTST.bad_domain), addr: 0, handle: -1 };
      if (gref) {
        const m = this.mapGrant(u, self as DomId, !write);
        if (m.status !== 0) return { st: m.status, addr: 0, handle: -1 };
        return { st: 0, addr: (m.mfn as number) * 4096 + offset, handle: m.handle };
      }
      if (!this.ctx.ownsMfn(u as Mfn)) return { st: this.status('grant-copy-foreign-frame', GNTST.bad_page), addr: 0, handle: -1 };
      if (write && this.types !== null) {
        if (!this.types.getWritableRef(u as Mfn)) return { st: this.status('grant-copy-typed-frame', GNTST.general_error), addr: 0, handle: -1 };
        this.types.putWritableRef(u as Mfn); // the copy is immediate: the reference is not kept
      }
      return { st: 0, addr: u * 4096 + offset, handle: -1 };
    };
    const src = side(0, (flags & GNTCOPY.source_gref) !== 0, false);
    if (src.st !== 0) return src.st;
    const dst = side(8, (flags & GNTCOPY.dest_gref) !== 0, true);
    if (dst.st === 0) {
      const mem = this.ctx.mem.u8;
      this.scratch.set(mem.subarray(src.addr, src.addr + len));
      mem.set(this.scratch.subarray(0, len), dst.addr);
      this.counters.copies++;
    }
    if (dst.handle >= 0) this.unmapGrant(dst.handle);
    if (src.handle >= 0) this.unmapGrant(src.handle);
    return dst.st;
  }

  // ------------------------------------------------------------------ internals

  private entryAddr(ref: number): number {
    return this.frames[Math.floor(ref / GRANT_ENTRIES_PER_FRAME)]! * 4096 + (ref % GRANT_ENTRIES_PER_FRAME) * GRANT_ENTRY_SIZE;
  }

  private isSelf(dom: number): boolean {
    return dom === DOMID_SELF || dom === (this.ctx.domid as number);
  }

  /** Counts a refused operation and returns its GNTST status. */
  private status(what: string, st: number): number {
    this.counters.rejected++;
    this.ctx.countRejected(what);
    return st;
  }

  /** Counts a refused call and returns its -errno (0: count only). */
  private reject(what: string, rc: number): number {
    this.counters.rejected++;
    this.ctx.countRejected(what);
    return rc;
  }
}
