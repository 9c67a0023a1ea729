/**
 * Resource-control invariants, checked on a running machine from outside (no side effects
 * on the guest or the monitor): what the guest can reach through the real page tables (the
 * shadow), the EPT, or DMA.
 *
 * - Shadow paging (`trap`, `full`, `hw-shadow`): every present shadow PTE below the
 *   monitor's window maps a frame of guest RAM or `OPEN_BUS_FRAME`; it agrees with the
 *   guest's own translation of that page (no stale or wrong frame); it is writable only if
 *   the guest's mapping is and the frame is not a traced page table; user-accessible only if
 *   the guest's mapping is; shadow tables live in monitor memory.
 * - Nested paging (`hw-nested`): the EPT maps every guest-physical page of RAM to itself and
 *   nothing beyond the guest's RAM.
 * - DMA: every bus-master access is watched (`DmaWatch`, wrapped around the device's own
 *   bound): one reaching at or beyond the guest's RAM must be refused (false, counted in
 *   `dmaOutsideRam`) and a write must change no byte there, which holds under every
 *   monitor although their memory above the guest's RAM changes legitimately. On a native
 *   machine given spare memory above its RAM, nothing there may change at all.
 */
import type { Machine } from '../machine/machine.js';
import type { DmaMemory } from '../machine/devices/device-io.js';
import { OPEN_BUS_FRAME, type GuestPagingState, type ShadowPaging } from '../vmm/shadow-paging.js';
import type { Monitor } from '../vmm/index.js';
import type { NestedPaging } from '../vmm/hw/nested-paging.js';

const WINDOW_PDE = 1023;

/** The shadow paging object of a monitor that has one (trap, full, hw --paging shadow), else null. */
export function shadowOf(monitor: Monitor | null): ShadowPaging | null {
  const m = monitor as unknown as { shadow?: ShadowPaging | null; trap?: { shadow?: ShadowPaging } } | null;
  return m?.shadow ?? m?.trap?.shadow ?? null;
}

/** The nested paging object of `hw --paging nested`, else null. */
export function nestedOf(monitor: Monitor | null): NestedPaging | null {
  return (monitor as unknown as { nested?: NestedPaging | null } | null)?.nested ?? null;
}

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/** The first violated shadow invariant, or null. */
export function checkShadow(m: Machine, sp: ShadowPaging): string | null {
  const mem = m.mem, guest = mem.guestSize;
  const pd = (m.cpu.cr3 & 0xfffff000) >>> 0;
  if (pd < guest) return `the real CR3 ${hex(pd)} is in guest RAM`;
  for (let i = 0; i < WINDOW_PDE; i++) {
    const pde = mem.read32(pd + 4 * i);
    if ((pde & 1) === 0) continue;
    const pt = (pde & 0xfffff000) >>> 0;
    if (pt < guest) return `shadow PDE ${i} points at ${hex(pt)}, in guest RAM`;
    for (let j = 0; j < 1024; j++) {
      const pte = mem.read32(pt + 4 * j);
      if ((pte & 1) === 0) continue;
      const lin = ((i << 22) | (j << 12)) >>> 0;
      const frame = (pte & 0xfffff000) >>> 0;
      if (frame !== OPEN_BUS_FRAME && frame + 4096 > guest) return `shadow maps ${hex(lin)} to ${hex(frame)}, outside guest RAM`;
      const g = sp.guestTranslate(lin, false, false);
      if (g < 0) return `shadow maps ${hex(lin)} (to ${hex(frame)}) where the guest has no mapping`;
      const gf = (g & 0xfffff000) >>> 0;
      const want = gf + 4096 <= guest ? gf : OPEN_BUS_FRAME;
      if (frame !== want) return `shadow maps ${hex(lin)} to ${hex(frame)}, the guest to ${hex(gf)}`;
      if ((pte & 2) !== 0) {
        if (sp.guestTranslate(lin, true, false) < 0) return `shadow PTE for ${hex(lin)} is writable, the guest's mapping is read-only`;
        if (sp.isTraced(frame)) return `shadow PTE for ${hex(lin)} is writable, but ${hex(frame)} is a traced guest page table`;
      }
      if ((pte & 4) !== 0 && sp.guestTranslate(lin, false, true) < 0) return `shadow PTE for ${hex(lin)} is user-accessible, the guest's mapping is supervisor-only`;
      // A shadow entry exists only once the guest's accessed bit is set, and is writable only
      // once its dirty bit is (the hardware would have set them on the access the shadow caches).
      const ad = guestAccessedDirty(m, sp, lin);
      if (ad !== null) {
        if ((ad & 0x20) === 0) return `shadow maps ${hex(lin)} but the guest's entry has no accessed bit`;
        if ((pte & 2) !== 0 && (ad & 0x40) === 0) return `shadow PTE for ${hex(lin)} is writable but the guest's entry has no dirty bit`;
      }
    }
  }
  return null;
}

/**
 * The guest's leaf entry for `lin` (4 KiB pages; null when the guest's paging is off or the
 * page is large). The guest paging state is the monitor's virtual CR0/CR3 that ShadowPaging
 * holds (private there: read through a structural cast, for this checker only).
 */
function guestAccessedDirty(m: Machine, sp: ShadowPaging, lin: number): number | null {
  const g = (sp as unknown as { guest: GuestPagingState }).guest;
  if ((g.cr0 & 0x80000000) === 0) return null;
  const pde = m.mem.read32(((g.cr3 & 0xfffff000) + ((lin >>> 22) << 2)) >>> 0);
  if ((pde & 1) === 0 || ((pde & 0x80) !== 0 && (g.cr4 & 0x10) !== 0)) return null;
  const ptAddr = ((pde & 0xfffff000) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
  if (ptAddr + 4 > m.mem.guestSize) return null;
  return (m.mem.read32(ptAddr) & (pde | ~0x20)) & 0x60;
}

/** Reads a 4-level EPT for `gpa` without side effects: host-physical address or -1. */
function eptLookup(m: Machine, eptp: number, gpa: number): number {
  let table = (eptp & 0xfffff000) >>> 0;
  const idx = [0, Math.floor(gpa / 2 ** 30) & 511, (gpa >>> 21) & 511, (gpa >>> 12) & 511];
  for (let level = 0; level < 4; level++) {
    const lo = m.mem.read32(table + 8 * idx[level]!);
    if ((lo & 7) === 0) return -1;
    const addr = (lo & 0xfffff000) >>> 0;
    if (level === 1 && (lo & 0x80) !== 0) return (((lo & 0xc0000000) >>> 0) + (gpa % 2 ** 30));
    if (level === 2 && (lo & 0x80) !== 0) return (((lo & 0xffe00000) >>> 0) + (gpa & 0x1fffff)) >>> 0;
    if (level === 3) return (addr + (gpa & 0xfff)) >>> 0;
    table = addr;
  }
  return -1;
}

/** The first violated EPT invariant, or null (checks every page of RAM and 1 MiB beyond). */
export function checkEpt(m: Machine, np: NestedPaging): string | null {
  const guest = m.mem.guestSize, eptp = np.builder.eptp;
  for (let gpa = 0; gpa < guest + (1 << 20); gpa += 4096) {
    const h = eptLookup(m, eptp, gpa);
    if (gpa < guest && h !== gpa) return `EPT maps guest-physical ${hex(gpa)} to ${h < 0 ? 'nothing' : hex(h)}`;
    if (gpa >= guest && h >= 0) return `EPT maps guest-physical ${hex(gpa)}, beyond guest RAM, to ${hex(h)}`;
  }
  return null;
}

/** Memory above the guest's RAM on a machine where nobody may write it: the first nonzero word, or null. */
export function checkNothingAboveRam(m: Machine): string | null {
  const i32 = m.mem.i32;
  for (let i = m.mem.guestSize >>> 2; i < i32.length; i++) if (i32[i] !== 0) return `memory at ${hex(i * 4)}, beyond guest RAM, was written (${hex(i32[i]!)})`;
  return null;
}

/**
 * A DMA path that checks each access of the one it wraps (`inner`, set once the machine
 * exists: the device's `guestRamDma`) against the guest's RAM bound, for resource control
 * under any configuration. Per DMA transfer (a PRD entry or a data region), not per
 * instruction: the snapshot of the bytes beyond RAM is taken only for an access reaching
 * there. The first violation is kept in `violation` (one line, with the address).
 */
export class DmaWatch implements DmaMemory {
  inner: DmaMemory | null = null;
  violation: string | null = null;
  /** Accesses that reached at or beyond the guest's RAM (all refused unless `violation`). */
  outside = 0;
  private mem: { readonly u8: Uint8Array; readonly guestSize: number } | null = null;
  private refused: () => number = () => 0;
  /** Called once, at the first violation (the run stops there: the monitor's memory may be corrupt). */
  onViolation: ((message: string) => void) | null = null;

  /** Binds the watch to the machine's memory, the device's DMA path and its refusal counter. */
  bind(mem: { readonly u8: Uint8Array; readonly guestSize: number }, inner: DmaMemory, refused: () => number): void {
    this.mem = mem; this.inner = inner; this.refused = refused;
  }

  read(addr: number, dst: Uint8Array): boolean {
    const a = addr >>> 0, n = dst.length, size = this.mem!.guestSize;
    if (a + n <= size) return this.inner!.read(addr, dst);
    const before = this.refused();
    const ok = this.inner!.read(addr, dst);
    this.outside++;
    if (this.violation === null) {
      if (ok) this.violation = `DMA read of ${n} bytes at ${hex(a)} reaches beyond guest RAM (${hex(size)}) and was not refused`;
      else if (this.refused() === before) this.violation = `DMA read of ${n} bytes at ${hex(a)} beyond guest RAM was refused but not counted (dmaOutsideRam)`;
      else {
        for (let i = Math.max(0, size - a); i < n; i++) {
          if (dst[i] !== 0xff) { this.violation = `DMA read at ${hex(a + i)}, beyond guest RAM, returned ${hex(dst[i]!)} (memory, not a master abort)`; break; }
        }
      }
    }
    if (this.violation !== null) this.onViolation?.(this.violation);
    return ok;
  }

  write(addr: number, src: Uint8Array): boolean {
    const a = addr >>> 0, n = src.length, { u8, guestSize: size } = this.mem!;
    if (a + n <= size) return this.inner!.write(addr, src);
    // The bytes at or beyond RAM the write covers (those that exist), before and after.
    const lo = Math.max(a, size), hi = Math.min(a + n, u8.length);
    const snap = hi > lo ? u8.slice(lo, hi) : null;
    const before = this.refused();
    const ok = this.inner!.write(addr, src);
    this.outside++;
    if (this.violation === null) {
      if (snap !== null) {
        for (let i = 0; i < snap.length; i++) {
          if (u8[lo + i] !== snap[i]) { this.violation = `DMA write of ${n} bytes at ${hex(a)} changed ${hex(lo + i)}, beyond guest RAM (${hex(snap[i]!)} -> ${hex(u8[lo + i]!)})`; break; }
        }
      }
      if (this.violation === null && ok) this.violation = `DMA write of ${n} bytes at ${hex(a)} reaches beyond guest RAM (${hex(size)}) and was not refused`;
      if (this.violation === null && this.refused() === before) this.violation = `DMA write of ${n} bytes at ${hex(a)} beyond guest RAM was refused but not counted (dmaOutsideRam)`;
    }
    if (this.violation !== null) this.onViolation?.(this.violation);
    return ok;
  }
}

/** The invariant check for a configuration's monitor (shadow or EPT), or null for none. */
export function mappingCheck(m: Machine, monitor: Monitor | null): string | null {
  const sp = shadowOf(monitor);
  if (sp !== null) return checkShadow(m, sp);
  const np = nestedOf(monitor);
  if (np !== null) return checkEpt(m, np);
  return null;
}
