// Builders for protected-mode test machines: GDT, IDT, TSS and page tables written straight
// into guest memory, so each test states the architectural setup it relies on.
import { Cpu, CS, DS, ES, ESP, FAULT, FS, GS, SS } from '../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../src/machine/cpu/cost-table.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';
import { loadSegment } from '../../src/machine/cpu/segmentation.js';

export const GDT = 0x1000;
export const IDT = 0x2000;
export const TSS = 0x3000;
export const PD = 0x10000;
export const KCODE = 0x100000;
export const KSTACK_TOP = 0x190000;
export const UCODE = 0x200000;
export const USTACK_TOP = 0x290000;
/** Where vector v's default handler lives (a HLT). */
export const handlerAddr = (v: number): number => KCODE + 0x8000 + v * 16;

// Selectors of the standard GDT.
export const KCS = 0x08, KDS = 0x10, UCS = 0x1b, UDS = 0x23, TSS_SEL = 0x28;

export function newCpu(): Cpu {
  return new Cpu(new PhysicalMemory(16 << 20), new PortBus(), unitCostTable(), {
    itlb: new Tlb({ sets: 16, ways: 4 }), dtlb: new Tlb({ sets: 16, ways: 4 }),
  });
}

/** A code/data segment descriptor: `access` is the access byte, `flags` the G/D nibble. */
export function segDesc(base: number, limit: number, access: number, flags = 0xc): [number, number] {
  const lim = flags & 8 ? limit >>> 12 : limit;
  const lo = ((base & 0xffff) << 16) | (lim & 0xffff);
  const hi = ((base >>> 16) & 0xff) | (access << 8) | (lim & 0xf0000) | (flags << 20) | (base & 0xff000000);
  return [lo | 0, hi | 0];
}

/** A gate descriptor (call/interrupt/trap): type 0xC/0xE/0xF (32-bit) or 4/6/7 (16-bit). */
export function gateDesc(sel: number, off: number, type: number, dpl: number, params = 0, present = true): [number, number] {
  const lo = (sel << 16) | (off & 0xffff);
  const hi = (off & 0xffff0000) | (present ? 0x8000 : 0) | (dpl << 13) | (type << 8) | (params & 0x1f);
  return [lo | 0, hi | 0];
}

export function putDesc(cpu: Cpu, table: number, index: number, d: [number, number]): void {
  cpu.mem.write32(table + index * 8, d[0]);
  cpu.mem.write32(table + index * 8 + 4, d[1]);
}

export function putIdt(cpu: Cpu, vector: number, d: [number, number]): void {
  putDesc(cpu, IDT, vector, d);
}

export function bytes(cpu: Cpu, addr: number, b: number[]): void {
  cpu.mem.u8.set(b, addr);
}

export interface PmOptions {
  /** Identity-map 16 MiB with 4 KiB pages (user, writable) and turn paging on. */
  paging?: boolean;
  /** TSS limit (default 0x67: no I/O bitmap). */
  tssLimit?: number;
  /** I/O bitmap offset written at TSS+0x66. */
  ioMapOffset?: number;
}

/**
 * Flat protected mode at CPL 0: GDT {null, kernel code/data, user code/data (DPL 3), TSS},
 * an IDT whose 32 exception vectors are interrupt gates to HLT stubs, TSS.SS0:ESP0 =
 * KDS:KSTACK_TOP, EIP = KCODE.
 */
export function protectedMachine(opts: PmOptions = {}): Cpu {
  const cpu = newCpu();
  putDesc(cpu, GDT, 0, [0, 0]);
  putDesc(cpu, GDT, 1, segDesc(0, 0xffffffff, 0x9a));
  putDesc(cpu, GDT, 2, segDesc(0, 0xffffffff, 0x92));
  putDesc(cpu, GDT, 3, segDesc(0, 0xffffffff, 0xfa));
  putDesc(cpu, GDT, 4, segDesc(0, 0xffffffff, 0xf2));
  putDesc(cpu, GDT, 5, segDesc(TSS, opts.tssLimit ?? 0x67, 0x89, 0));
  cpu.gdtrBase = GDT; cpu.gdtrLimit = 16 * 8 - 1;
  cpu.idtrBase = IDT; cpu.idtrLimit = 256 * 8 - 1;
  for (let v = 0; v < 32; v++) {
    putIdt(cpu, v, gateDesc(KCS, handlerAddr(v), 0xe, 0));
    cpu.mem.write8(handlerAddr(v), 0xf4);
  }
  cpu.mem.write32(TSS + 4, KSTACK_TOP);
  cpu.mem.write32(TSS + 8, KDS);
  cpu.mem.write16(TSS + 0x66, opts.ioMapOffset ?? 0x68);
  cpu.resetFlat32(KCODE);
  cpu.setSegmentCache(CS, KCS, 0, 0xffffffff, 0xc09b);
  for (const s of [ES, SS, DS, FS, GS]) cpu.setSegmentCache(s, KDS, 0, 0xffffffff, 0xc093);
  cpu.trSel = TSS_SEL; cpu.trBase = TSS; cpu.trLimit = opts.tssLimit ?? 0x67; cpu.trAttr = 0x8b;
  cpu.r32[ESP] = KSTACK_TOP;
  if (opts.paging) {
    identityMap(cpu, 16 << 20);
    cpu.cr3 = PD;
    cpu.cr0 |= 0x80000000;
    cpu.updatePaging();
  }
  return cpu;
}

/** Identity-maps [0, size) with 4 KiB user/writable pages; page tables follow the directory. */
export function identityMap(cpu: Cpu, size: number): void {
  const tables = Math.ceil(size / (4 << 20));
  for (let t = 0; t < tables; t++) {
    const pt = PD + 0x1000 * (t + 1);
    cpu.mem.write32(PD + t * 4, pt | 7);
    for (let i = 0; i < 1024; i++) cpu.mem.write32(pt + i * 4, ((t << 22) + (i << 12)) | 7);
  }
}

/** Address of the PTE for linear `lin` (4 KiB pages made by identityMap). */
export function pteAddr(lin: number): number {
  return PD + 0x1000 * ((lin >>> 22) + 1) + ((lin >>> 12) & 0x3ff) * 4;
}

/** Switches the CPU to ring 3 at UCODE with user segments (as if an IRET had done it). */
export function enterUser(cpu: Cpu, eip = UCODE, esp = USTACK_TOP): void {
  cpu.cpl = 3;
  cpu.setSegmentCache(CS, UCS, 0, 0xffffffff, 0xc0fb);
  cpu.setSegmentCache(SS, UDS, 0, 0xffffffff, 0xc0f3);
  for (const s of [DS, ES, FS, GS]) loadSegment(cpu, s, UDS);
  cpu.eip = eip;
  cpu.r32[ESP] = esp;
}

/** Runs `fn`, expecting an x86 fault; returns [vector, error code]. */
export function faultOf(cpu: Cpu, fn: () => void): [number, number] {
  try {
    fn();
  } catch (e) {
    if (e !== FAULT) throw e;
    return [cpu.excVector, cpu.excCode];
  }
  throw new Error('expected a fault');
}

/** Which default exception handler the CPU is halted in, or -1. */
export function haltedIn(cpu: Cpu): number {
  const off = cpu.eip - 1 - (KCODE + 0x8000);
  if (off < 0 || off >= 32 * 16 || off % 16 !== 0) return -1;
  return off / 16;
}

/** The dword at SS:ESP + `i`×4 (flat stacks). */
export function stackDword(cpu: Cpu, i: number): number {
  return cpu.mem.read32((cpu.segBase[SS]! + cpu.r32[ESP]! + i * 4) >>> 0) >>> 0;
}
