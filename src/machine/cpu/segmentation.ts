import type { Cpu } from './cpu.js';
import { CS, SS, Vec } from './constants.js';

/**
 * A segment or gate descriptor as read from the GDT/LDT/IDT: its two raw dwords plus
 * decoded views. Callers keep one scratch instance per use site so that protected-mode
 * transfers allocate nothing.
 */
export class Descriptor {
  /** Low and high dwords, as read (int32). */
  lo = 0;
  hi = 0;
  /** Linear address the descriptor was read from (for the accessed bit), -1 if none. */
  addr = -1;

  /** Segment base (segment descriptors). */
  get base(): number { return ((this.lo >>> 16) | ((this.hi & 0xff) << 16) | (this.hi & 0xff000000)) | 0; }
  /** Segment limit, scaled by G (segment descriptors). */
  get limit(): number {
    const raw = (this.lo & 0xffff) | (this.hi & 0xf0000);
    return (this.hi & 0x800000) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw;
  }
  /** Attribute word in the CPU's segment-cache format: access byte | AVL<<12 | D/B<<14 | G<<15. */
  get attr(): number { return (this.hi >>> 8) & 0xf0ff; }
  /** S bit and type (5 bits): 0x10 set for code/data, 0x18 for code. */
  get type(): number { return (this.hi >>> 8) & 0x1f; }
  get dpl(): number { return (this.hi >>> 13) & 3; }
  get present(): boolean { return (this.hi & 0x8000) !== 0; }
  get isCode(): boolean { return (this.hi & 0x1800) === 0x1800; }
  get isData(): boolean { return (this.hi & 0x1800) === 0x1000; }
  get isSystem(): boolean { return (this.hi & 0x1000) === 0; }
  get conforming(): boolean { return (this.hi & 0x1c00) === 0x1c00; }
  /** Code: readable. Data: writable. */
  get rwBit(): boolean { return (this.hi & 0x200) !== 0; }
  /** D/B bit. */
  get big(): boolean { return (this.hi & 0x400000) !== 0; }
  /** Gate: target selector. */
  get gateSelector(): number { return this.lo >>> 16; }
  /** Gate: target offset (32-bit gates use both halves). */
  get gateOffset(): number {
    return (this.hi & 0x800) !== 0 ? ((this.lo & 0xffff) | (this.hi & 0xffff0000)) >>> 0 : this.lo & 0xffff;
  }
  /** Call gate: parameter count. */
  get gateParams(): number { return this.hi & 0x1f; }
  /** Expand-down data segment. */
  get expandDown(): boolean { return (this.hi & 0x1c00) === 0x1400; }

  /** True when `len` bytes at `off` fit in the segment (expand-down aware). */
  fits(off: number, len: number): boolean {
    off >>>= 0;
    const last = off + len - 1;
    if (this.expandDown) {
      const hi = this.big ? 0xffffffff : 0xffff;
      return off > this.limit && last <= hi;
    }
    return last <= this.limit;
  }
}

/** System descriptor types (S = 0). */
export const SysType = {
  TSS16_AVAIL: 1, LDT: 2, TSS16_BUSY: 3, CALL_GATE16: 4, TASK_GATE: 5, INT_GATE16: 6, TRAP_GATE16: 7,
  TSS32_AVAIL: 9, TSS32_BUSY: 11, CALL_GATE32: 12, INT_GATE32: 14, TRAP_GATE32: 15,
} as const;

/**
 * Linear address of the descriptor that `sel` names in the GDT or (TI = 1) the LDT, or -1
 * when the selector's index is beyond the table limit (or the LDT is null).
 */
export function descriptorAddress(cpu: Cpu, sel: number): number {
  const off = sel & 0xfff8;
  if ((sel & 4) !== 0) {
    if ((cpu.ldtrSel & 0xfffc) === 0 || off + 7 > (cpu.ldtrLimit >>> 0)) return -1;
    return (cpu.ldtrBase + off) >>> 0;
  }
  if (off + 7 > (cpu.gdtrLimit >>> 0)) return -1;
  return (cpu.gdtrBase + off) >>> 0;
}

/**
 * Reads the descriptor `sel` names into `d` (an implicit supervisor access: may #PF).
 * Returns false when the selector is outside its table; the caller raises its own fault.
 */
export function readDescriptor(cpu: Cpu, sel: number, d: Descriptor): boolean {
  const addr = descriptorAddress(cpu, sel);
  d.addr = addr;
  if (addr < 0) return false;
  d.lo = cpu.readLin32(addr, false);
  d.hi = cpu.readLin32(addr + 4, false);
  return true;
}

/** Sets the accessed bit of a code/data descriptor in memory, as a segment load does. */
export function setAccessed(cpu: Cpu, d: Descriptor): void {
  if ((d.hi & 0x100) !== 0 || d.addr < 0) return;
  d.hi |= 0x100;
  cpu.writeLin8(d.addr + 5, (d.hi >>> 8) & 0xff, false);
}

/** Loads a segment register's hidden part from a checked descriptor. */
export function loadCache(cpu: Cpu, seg: number, sel: number, d: Descriptor): void {
  cpu.setSegmentCache(seg, sel & 0xffff, d.base, d.limit, d.attr);
}

const scratch = new Descriptor();

/**
 * Loads segment register `seg` with `sel` as MOV/POP/LxS do: real mode sets base = sel×16;
 * protected mode reads the descriptor and applies every check (null, limit, type, DPL/RPL/CPL,
 * present), raising #GP/#SS/#NP with the selector as error code.
 */
export function loadSegment(cpu: Cpu, seg: number, sel: number): void {
  sel &= 0xffff;
  if (!cpu.protectedMode || cpu.v86) {
    cpu.loadRealSegment(seg, sel);
    return;
  }
  if (seg === CS) cpu.unsupported('loadSegment(CS): CS is loaded only by far transfers');
  cpu.cycles += cpu.cost.segmentLoad;
  const err = sel & 0xfffc;
  if (err === 0) {
    // A null selector may sit in a data segment register (accesses through it #GP); never in SS.
    if (seg === SS) cpu.raise(Vec.GP, 0);
    cpu.setNullSegment(seg, sel);
    return;
  }
  const d = scratch;
  if (!readDescriptor(cpu, sel, d)) cpu.raise(Vec.GP, err);
  const rpl = sel & 3, cpl = cpu.cpl;
  if (seg === SS) {
    if (rpl !== cpl || !d.isData || !d.rwBit || d.dpl !== cpl) cpu.raise(Vec.GP, err);
    if (!d.present) cpu.raise(Vec.SS, err);
  } else {
    if (d.isSystem || (d.isCode && !d.rwBit)) cpu.raise(Vec.GP, err);
    // Data and non-conforming code need DPL >= max(CPL, RPL); conforming code does not.
    if (!d.conforming && (rpl > d.dpl || cpl > d.dpl)) cpu.raise(Vec.GP, err);
    if (!d.present) cpu.raise(Vec.NP, err);
  }
  setAccessed(cpu, d);
  loadCache(cpu, seg, sel, d);
}
