// Opcode handlers: system instructions (descriptor tables, control/debug registers, MSRs,
// CPUID, TSC, SYSENTER/SYSEXIT, software interrupts, IRET, HLT, CLI/STI, x87 escapes) and
// the #UD slots of the 0F map that a P6 without MMX/SSE does not have.
import type { Cpu } from './cpu.js';
import {
  CR0_CD, CR0_EM, CR0_ET, CR0_MP, CR0_NE, CR0_NW, CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR0_AM,
  CR4_DE, CR4_MCE, CR4_PAE, CR4_PCE, CR4_PGE, CR4_PSE, CR4_PVI, CR4_TSD, CR4_VME,
  CS, EAX, EBX, ECX, EDX, ESP, SS, Vec,
} from './constants.js';
import { IF, IOPL, OF, RF, VM, ZF } from './flags.js';
import { defineOp } from './op-table.js';
import { deliverEvent, EventKind } from './interrupts.js';
import { interruptReturn } from './far-transfer.js';
import { Descriptor, readDescriptor, SysType } from './segmentation.js';

// ======================================================================================
// Helpers
// ======================================================================================

/** Privileged instructions: #GP(0) unless CPL 0 (real mode is CPL 0; V86 is CPL 3). */
function requireCpl0(cpu: Cpu): void {
  if (cpu.protectedMode && (cpu.cpl !== 0 || cpu.v86)) cpu.raise(Vec.GP, 0);
}

/** Instructions that exist only in protected mode (not real mode, not V86): #UD. */
function requireProtected(cpu: Cpu): void {
  if (!cpu.protectedMode || cpu.v86) cpu.raise(Vec.UD);
}

/** IOPL-sensitive (CLI, STI): #GP(0) when CPL > IOPL, or in V86 mode with IOPL < 3. */
function requireIopl(cpu: Cpu): void {
  if (!cpu.protectedMode) return;
  if (cpu.cpl > ((cpu.flags & IOPL) >>> 12)) cpu.raise(Vec.GP, 0);
}

function setZF(cpu: Cpu, on: boolean): void {
  cpu.flags = on ? (cpu.flags | ZF) >>> 0 : (cpu.flags & ~ZF) >>> 0;
}

const desc = new Descriptor();

/** Undefined opcode: #UD (vector 6). */
const ud = (cpu: Cpu): void => cpu.raise(Vec.UD);

/** Writes a 16-bit selector-like value to r/m: registers get it zero-extended with a 32-bit operand size. */
function storeSelector(cpu: Cpu, v: number): void {
  if (cpu.modrmMod === 3) {
    if (cpu.opsize32) cpu.r32[cpu.modrmRm] = v & 0xffff; else cpu.r16[cpu.modrmRm << 1] = v;
  } else {
    cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, v);
  }
}

// ======================================================================================
// 0F 00: SLDT STR LLDT LTR VERR VERW
// ======================================================================================

function lldt(cpu: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0) {
    // A null selector marks the LDT invalid; later LDT references #GP.
    cpu.ldtrSel = sel; cpu.ldtrBase = 0; cpu.ldtrLimit = 0; cpu.ldtrAttr = 0;
    return;
  }
  const err = sel & 0xfffc;
  if ((sel & 4) !== 0) cpu.raise(Vec.GP, err);
  if (!readDescriptor(cpu, sel, desc) || !desc.isSystem || desc.type !== SysType.LDT) cpu.raise(Vec.GP, err);
  if (!desc.present) cpu.raise(Vec.NP, err);
  cpu.ldtrSel = sel; cpu.ldtrBase = desc.base; cpu.ldtrLimit = desc.limit; cpu.ldtrAttr = desc.attr;
}

function ltr(cpu: Cpu, sel: number): void {
  const err = sel & 0xfffc;
  if (err === 0) cpu.raise(Vec.GP, 0);
  if ((sel & 4) !== 0) cpu.raise(Vec.GP, err);
  if (!readDescriptor(cpu, sel, desc) || !desc.isSystem ||
    (desc.type !== SysType.TSS16_AVAIL && desc.type !== SysType.TSS32_AVAIL)) cpu.raise(Vec.GP, err);
  if (!desc.present) cpu.raise(Vec.NP, err);
  // Mark the TSS busy in the GDT (type bit 1).
  cpu.writeLin8(desc.addr + 5, ((desc.hi >>> 8) | 2) & 0xff, false);
  cpu.trSel = sel; cpu.trBase = desc.base; cpu.trLimit = desc.limit; cpu.trAttr = desc.attr | 2;
}

/** VERR/VERW: ZF = the segment is readable/writable at max(CPL, RPL). Never faults on the selector. */
function verify(cpu: Cpu, sel: number, write: boolean): void {
  if ((sel & 0xfffc) === 0 || !readDescriptor(cpu, sel, desc) || desc.isSystem) { setZF(cpu, false); return; }
  let ok: boolean;
  if (write) ok = desc.isData && desc.rwBit;
  else ok = desc.isData || desc.rwBit;
  if (ok && !desc.conforming && (desc.dpl < cpu.cpl || desc.dpl < (sel & 3))) ok = false;
  setZF(cpu, ok);
}

defineOp(0x100, 'GRP6 (SLDT/STR/LLDT/LTR/VERR/VERW)', (cpu) => {
  requireProtected(cpu);
  cpu.decodeModrm();
  switch (cpu.modrmReg) {
    case 0: storeSelector(cpu, cpu.ldtrSel); break;
    case 1: storeSelector(cpu, cpu.trSel); break;
    case 2: { requireCpl0(cpu); lldt(cpu, cpu.readRM16()); break; }
    case 3: { requireCpl0(cpu); ltr(cpu, cpu.readRM16()); break; }
    case 4: verify(cpu, cpu.readRM16(), false); break;
    case 5: verify(cpu, cpu.readRM16(), true); break;
    default: cpu.raise(Vec.UD);
  }
});

// ======================================================================================
// 0F 01: SGDT SIDT LGDT LIDT SMSW LMSW INVLPG
// ======================================================================================

function storeTable(cpu: Cpu, limit: number, base: number): void {
  // 16-bit operand size stores a 24-bit base with the top byte zero (386 and later).
  cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, limit);
  cpu.writeMem32(cpu.eaSeg, (cpu.eaOffset + 2) >>> 0, cpu.opsize32 ? base : base & 0xffffff);
}

defineOp(0x101, 'GRP7 (SGDT/SIDT/LGDT/LIDT/SMSW/LMSW/INVLPG)', (cpu) => {
  cpu.decodeModrm();
  cpu.chargeGroup(0x101);
  const reg = cpu.modrmReg;
  if (cpu.modrmMod === 3 && reg !== 4 && reg !== 6) cpu.raise(Vec.UD);
  switch (reg) {
    case 0: storeTable(cpu, cpu.gdtrLimit, cpu.gdtrBase); break;
    case 1: storeTable(cpu, cpu.idtrLimit, cpu.idtrBase); break;
    case 2: case 3: {
      requireCpl0(cpu);
      const limit = cpu.readMem16(cpu.eaSeg, cpu.eaOffset);
      let base = cpu.readMem32(cpu.eaSeg, (cpu.eaOffset + 2) >>> 0);
      if (!cpu.opsize32) base &= 0xffffff;
      if (reg === 2) { cpu.gdtrLimit = limit; cpu.gdtrBase = base; } else { cpu.idtrLimit = limit; cpu.idtrBase = base; }
      break;
    }
    case 4:
      // SMSW r32 stores all of CR0 (as later P6 steppings and newer CPUs do); memory gets 16 bits.
      if (cpu.modrmMod === 3 && cpu.opsize32) cpu.r32[cpu.modrmRm] = cpu.cr0;
      else cpu.writeRM16(cpu.cr0 & 0xffff);
      break;
    case 6: {
      requireCpl0(cpu);
      const v = cpu.readRM16();
      // LMSW loads PE, MP, EM and TS; it can set PE but never clear it.
      const cr0 = (cpu.cr0 & ~(CR0_MP | CR0_EM | CR0_TS)) | (v & (CR0_PE | CR0_MP | CR0_EM | CR0_TS));
      writeCr0(cpu, cr0);
      break;
    }
    case 7:
      requireCpl0(cpu);
      cpu.invalidatePage((cpu.segBase[cpu.eaSeg]! + cpu.eaOffset) >>> 0);
      break;
    default: cpu.raise(Vec.UD);
  }
});

// ======================================================================================
// LAR, LSL
// ======================================================================================

/** System types LAR accepts (SDM, LAR: TSSes, LDT, call and task gates). */
const LAR_OK = [false, true, true, true, true, true, false, false, false, true, false, true, true, false, false, false];
/** System types LSL accepts (TSSes and LDT). */
const LSL_OK = [false, true, true, true, false, false, false, false, false, true, false, true, false, false, false, false];

/** Reads the descriptor for LAR/LSL; false (ZF = 0) when it is not visible at max(CPL, RPL). */
function accessibleFor(cpu: Cpu, sel: number, types: boolean[]): boolean {
  if ((sel & 0xfffc) === 0 || !readDescriptor(cpu, sel, desc)) return false;
  if (desc.isSystem) { if (!types[desc.type]) return false; } else if (desc.conforming) return true;
  return desc.dpl >= cpu.cpl && desc.dpl >= (sel & 3);
}

defineOp(0x102, 'LAR', (cpu) => {
  requireProtected(cpu);
  cpu.decodeModrm();
  const sel = cpu.readRM16();
  if (!accessibleFor(cpu, sel, LAR_OK)) { setZF(cpu, false); return; }
  if (cpu.opsize32) cpu.r32[cpu.modrmReg] = desc.hi & 0x00ffff00; else cpu.r16[cpu.modrmReg << 1] = desc.hi & 0xff00;
  setZF(cpu, true);
});

defineOp(0x103, 'LSL', (cpu) => {
  requireProtected(cpu);
  cpu.decodeModrm();
  const sel = cpu.readRM16();
  if (!accessibleFor(cpu, sel, LSL_OK)) { setZF(cpu, false); return; }
  if (cpu.opsize32) cpu.r32[cpu.modrmReg] = desc.limit; else cpu.r16[cpu.modrmReg << 1] = desc.limit;
  setZF(cpu, true);
});

// ======================================================================================
// CLTS, INVD, WBINVD, UD2, hint NOPs
// ======================================================================================

defineOp(0x106, 'CLTS', (cpu) => { requireCpl0(cpu); cpu.cr0 &= ~CR0_TS; });
// No caches are modelled: invalidation has no visible effect (beyond the privilege check).
defineOp(0x108, 'INVD', (cpu) => { requireCpl0(cpu); });
defineOp(0x109, 'WBINVD', (cpu) => { requireCpl0(cpu); });
defineOp(0x10b, 'UD2', ud);
for (let op = 0x118; op <= 0x11f; op++) {
  // PREFETCHh / reserved hint NOPs / NOP r/m (0F 1F /0): decode the operand, touch nothing.
  defineOp(op, op === 0x11f ? 'NOP r/m' : 'hint NOP r/m', (cpu) => { cpu.decodeModrm(); });
}

// ======================================================================================
// MOV to/from control and debug registers
// ======================================================================================

/** CR0 bits this CPU has (ET is hard-wired to 1 on P6). Other bits are ignored on writes. */
const CR0_BITS = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;
/** CR4 bits virtlab implements; VME, PVI and PAE are P6 features it does not. */
const CR4_BITS = CR4_TSD | CR4_DE | CR4_PSE | CR4_MCE | CR4_PGE | CR4_PCE;

function writeCr0(cpu: Cpu, v: number): void {
  v = ((v & CR0_BITS) | CR0_ET) | 0;
  if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) cpu.raise(Vec.GP, 0);
  if ((v & CR0_NW) !== 0 && (v & CR0_CD) === 0) cpu.raise(Vec.GP, 0);
  const old = cpu.cr0;
  cpu.cr0 = v;
  if (((old ^ v) & (CR0_PG | CR0_PE | CR0_WP)) !== 0) {
    cpu.flushTlb(false);
    cpu.updatePaging();
  }
}

function writeCr4(cpu: Cpu, v: number): void {
  if ((v & (CR4_VME | CR4_PVI | CR4_PAE)) !== 0) {
    cpu.unsupported(`MOV CR4 with VME/PVI/PAE (0x${(v >>> 0).toString(16)}): not implemented (CPUID does not report them)`);
  }
  if ((v & ~CR4_BITS) !== 0) cpu.raise(Vec.GP, 0);
  const old = cpu.cr4;
  cpu.cr4 = v;
  if (((old ^ v) & (CR4_PSE | CR4_PGE | CR4_PAE)) !== 0) {
    cpu.flushTlb(false);
    cpu.updatePaging();
  }
}

/** The ModR/M of MOV CR/DR: always a register operand, whatever mod says. */
function crModrm(cpu: Cpu): void {
  const m = cpu.fetch8();
  cpu.modrmReg = (m >> 3) & 7;
  cpu.modrmRm = m & 7;
}

defineOp(0x120, 'MOV r32,CRn', (cpu) => {
  crModrm(cpu);
  requireCpl0(cpu);
  let v: number;
  switch (cpu.modrmReg) {
    case 0: v = cpu.cr0; break;
    case 2: v = cpu.cr2; break;
    case 3: v = cpu.cr3; break;
    case 4: v = cpu.cr4; break;
    default: v = cpu.raise(Vec.UD);
  }
  cpu.r32[cpu.modrmRm] = v;
});

defineOp(0x122, 'MOV CRn,r32', (cpu) => {
  crModrm(cpu);
  requireCpl0(cpu);
  const v = cpu.r32[cpu.modrmRm]!;
  switch (cpu.modrmReg) {
    case 0: writeCr0(cpu, v); break;
    case 2: cpu.cr2 = v; break;
    case 3: cpu.cr3 = v & 0xfffff018; cpu.flushTlb(true); break;
    case 4: writeCr4(cpu, v); break;
    default: cpu.raise(Vec.UD);
  }
});

/** DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD. */
function drIndex(cpu: Cpu, n: number): number {
  if (n === 4 || n === 5) {
    if ((cpu.cr4 & CR4_DE) !== 0) cpu.raise(Vec.UD);
    return n + 2;
  }
  return n;
}

/** DR6 bits that read as 1 on P6 (reserved), and DR7's fixed bit 10. */
const DR6_ONES = 0xffff0ff0 | 0, DR7_ONES = 0x400;

defineOp(0x121, 'MOV r32,DRn', (cpu) => {
  crModrm(cpu);
  requireCpl0(cpu);
  const n = drIndex(cpu, cpu.modrmReg);
  let v = cpu.dr[n]!;
  if (n === 6) v = (v & 0xe00f) | DR6_ONES;
  else if (n === 7) v = (v & ~0xd800) | DR7_ONES;
  cpu.r32[cpu.modrmRm] = v;
});

defineOp(0x123, 'MOV DRn,r32', (cpu) => {
  crModrm(cpu);
  requireCpl0(cpu);
  const n = drIndex(cpu, cpu.modrmReg);
  const v = cpu.r32[cpu.modrmRm]!;
  if (n === 7 && (v & 0xff) !== 0) {
    cpu.unsupported(`MOV DR7 enabling breakpoints (0x${(v >>> 0).toString(16)}): debug-register breakpoints are not implemented`);
  }
  if (n === 7 && (v & 0x2000) !== 0) {
    cpu.unsupported('MOV DR7 setting GD (general detect): not implemented');
  }
  cpu.dr[n] = v;
});

// ======================================================================================
// MSRs, TSC, performance counters
// ======================================================================================

/** MSR numbers virtlab implements. */
export const Msr = {
  TSC: 0x10, PLATFORM_ID: 0x17, BIOS_SIGN_ID: 0x8b,
  SYSENTER_CS: 0x174, SYSENTER_ESP: 0x175, SYSENTER_EIP: 0x176, DEBUGCTL: 0x1d9,
} as const;

/** Key under which `cpu.msr` keeps the TSC's offset from the cycle counter (after WRMSR 0x10). */
const TSC_OFFSET_KEY = -0x10;

/** The time-stamp counter: cycles since reset plus any offset a WRMSR set (deterministic). */
export function readTsc(cpu: Cpu): bigint {
  const off = cpu.msr.get(TSC_OFFSET_KEY) ?? 0n;
  const t = (BigInt(cpu.cycles) + off) & 0xffffffffffffffffn;
  // A trace recorder observes the value, a replayer substitutes the recorded one (src/trace).
  return cpu.tscHook === null ? t : cpu.tscHook(t);
}

function readMsr(cpu: Cpu, n: number): bigint {
  switch (n) {
    case Msr.TSC: return readTsc(cpu);
    case Msr.SYSENTER_CS: return BigInt(cpu.sysenterCs >>> 0);
    case Msr.SYSENTER_ESP: return BigInt(cpu.sysenterEsp >>> 0);
    case Msr.SYSENTER_EIP: return BigInt(cpu.sysenterEip >>> 0);
    case Msr.PLATFORM_ID: return 0n;
    case Msr.BIOS_SIGN_ID: case Msr.DEBUGCTL: return cpu.msr.get(n) ?? 0n;
    default: return cpu.raise(Vec.GP, 0);
  }
}

function writeMsr(cpu: Cpu, n: number, v: bigint): void {
  switch (n) {
    case Msr.TSC: cpu.msr.set(TSC_OFFSET_KEY, v - BigInt(cpu.cycles)); return;
    case Msr.SYSENTER_CS: cpu.sysenterCs = Number(v & 0xffffffffn) | 0; return;
    case Msr.SYSENTER_ESP: cpu.sysenterEsp = Number(v & 0xffffffffn) | 0; return;
    case Msr.SYSENTER_EIP: cpu.sysenterEip = Number(v & 0xffffffffn) | 0; return;
    // The microcode signature: software writes 0, executes CPUID, then reads it (0: no update).
    case Msr.BIOS_SIGN_ID: cpu.msr.set(n, 0n); return;
    case Msr.DEBUGCTL:
      if (v !== 0n) cpu.unsupported(`WRMSR DEBUGCTL = 0x${v.toString(16)}: branch tracing is not implemented`);
      cpu.msr.set(n, 0n);
      return;
    default: cpu.raise(Vec.GP, 0);
  }
}

defineOp(0x130, 'WRMSR', (cpu) => {
  requireCpl0(cpu);
  const v = (BigInt(cpu.r32[EDX]! >>> 0) << 32n) | BigInt(cpu.r32[EAX]! >>> 0);
  writeMsr(cpu, cpu.r32[ECX]! >>> 0, v);
});

defineOp(0x132, 'RDMSR', (cpu) => {
  requireCpl0(cpu);
  const v = readMsr(cpu, cpu.r32[ECX]! >>> 0);
  cpu.r32[EAX] = Number(v & 0xffffffffn) | 0;
  cpu.r32[EDX] = Number(v >> 32n) | 0;
});

defineOp(0x131, 'RDTSC', (cpu) => {
  if ((cpu.cr4 & CR4_TSD) !== 0 && cpu.protectedMode && (cpu.cpl !== 0 || cpu.v86)) cpu.raise(Vec.GP, 0);
  const t = readTsc(cpu);
  cpu.r32[EAX] = Number(t & 0xffffffffn) | 0;
  cpu.r32[EDX] = Number(t >> 32n) | 0;
});

// No performance counters are modelled, so every counter number is invalid: #GP(0).
defineOp(0x133, 'RDPMC', (cpu) => cpu.raise(Vec.GP, 0));

// ======================================================================================
// SYSENTER / SYSEXIT
// ======================================================================================

/** Flat 4 GiB code and data attributes with DPL `dpl` (accessed, present, D/B, G). */
const FLAT_CODE = 0xc09b, FLAT_DATA = 0xc093;

defineOp(0x134, 'SYSENTER', (cpu) => {
  const sel = cpu.sysenterCs & 0xfffc;
  if (!cpu.protectedMode || sel === 0) cpu.raise(Vec.GP, 0);
  cpu.flags = (cpu.flags & ~(VM | IF | RF)) >>> 0;
  cpu.cpl = 0;
  cpu.setSegmentCache(CS, sel, 0, 0xffffffff, FLAT_CODE);
  cpu.setSegmentCache(SS, (sel + 8) & 0xfffc, 0, 0xffffffff, FLAT_DATA);
  cpu.r32[ESP] = cpu.sysenterEsp;
  cpu.eip = cpu.sysenterEip >>> 0;
});

defineOp(0x135, 'SYSEXIT', (cpu) => {
  const sel = cpu.sysenterCs & 0xfffc;
  if (!cpu.protectedMode || sel === 0 || cpu.cpl !== 0 || cpu.v86) cpu.raise(Vec.GP, 0);
  cpu.cpl = 3;
  cpu.setSegmentCache(CS, ((sel + 16) & 0xfffc) | 3, 0, 0xffffffff, FLAT_CODE | 0x60);
  cpu.setSegmentCache(SS, ((sel + 24) & 0xfffc) | 3, 0, 0xffffffff, FLAT_DATA | 0x60);
  cpu.r32[ESP] = cpu.r32[ECX]!;
  cpu.eip = cpu.r32[EDX]! >>> 0;
});

// ======================================================================================
// CPUID
// ======================================================================================

/**
 * CPUID identity: "GenuineIntel", family 6 model 3 stepping 3 (a Pentium II-class P6; not
 * model 1, whose SEP bit software must ignore). Feature bits are what virtlab implements:
 * PSE, TSC, MSR, CX8, SEP, PGE, CMOV. No FPU, VME, DE, PAE, MCE, APIC, MTRR, MCA, PAT, MMX,
 * FXSR or SSE.
 */
export const CPUID_SIGNATURE = 0x00000633;
export const CPUID_FEATURES_EDX =
  (1 << 3) /* PSE */ | (1 << 4) /* TSC */ | (1 << 5) /* MSR */ | (1 << 8) /* CX8 */ |
  (1 << 11) /* SEP */ | (1 << 13) /* PGE */ | (1 << 15) /* CMOV */;

defineOp(0x1a2, 'CPUID', (cpu) => {
  const leaf = cpu.r32[EAX]! >>> 0;
  switch (leaf) {
    case 0:
      cpu.r32[EAX] = 2;
      cpu.r32[EBX] = 0x756e6547; // "Genu"
      cpu.r32[EDX] = 0x49656e69; // "ineI"
      cpu.r32[ECX] = 0x6c65746e; // "ntel"
      return;
    case 1:
      cpu.r32[EAX] = CPUID_SIGNATURE;
      cpu.r32[EBX] = 0;
      cpu.r32[ECX] = 0;
      cpu.r32[EDX] = CPUID_FEATURES_EDX;
      return;
    default:
      // Leaf 2 (and, as on Intel CPUs, any leaf above the maximum): one iteration, no
      // cache/TLB descriptors (the modelled TLBs are configurable, so none is claimed).
      cpu.r32[EAX] = 1;
      cpu.r32[EBX] = 0;
      cpu.r32[ECX] = 0;
      cpu.r32[EDX] = 0;
  }
});

// ======================================================================================
// ARPL, WAIT, x87 escapes
// ======================================================================================

defineOp(0x63, 'ARPL', (cpu) => {
  requireProtected(cpu);
  cpu.decodeModrm();
  const src = cpu.r16[cpu.modrmReg << 1]!;
  const dst = cpu.readRMW16();
  if ((dst & 3) < (src & 3)) {
    cpu.writeRMW16((dst & ~3) | (src & 3));
    setZF(cpu, true);
  } else {
    setZF(cpu, false);
  }
});

defineOp(0x9b, 'WAIT', (cpu) => {
  // No FPU, so no pending x87 exception to report; only the TS/MP task-switch check.
  if ((cpu.cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) cpu.raise(Vec.NM);
});

// virtlab has no x87 FPU (CPUID.FPU = 0): every escape raises #NM, as with CR0.EM = 1, so an
// OS can emulate it. The instruction restarts from its first byte; nothing is decoded.
for (let op = 0xd8; op <= 0xdf; op++) defineOp(op, 'x87 escape (#NM: no FPU)', (cpu) => cpu.raise(Vec.NM));

// ======================================================================================
// INT3, INT n, INTO, ICEBP, IRET, HLT, CLI, STI
// ======================================================================================

/** V86 without VME: software interrupts are IOPL-sensitive. */
function softwareInterrupt(cpu: Cpu, vector: number): void {
  if (cpu.lock) cpu.raise(Vec.UD);
  if (cpu.v86 && (cpu.flags & IOPL) !== IOPL) cpu.raise(Vec.GP, 0);
  deliverEvent(cpu, vector, -1, EventKind.Software);
}

defineOp(0xcc, 'INT3', (cpu) => softwareInterrupt(cpu, Vec.BP));
defineOp(0xcd, 'INT imm8', (cpu) => softwareInterrupt(cpu, cpu.fetch8()));
defineOp(0xce, 'INTO', (cpu) => { if (cpu.lock) ud(cpu); if ((cpu.flags & OF) !== 0) softwareInterrupt(cpu, Vec.OF); });
// ICEBP (INT1): a #DB trap delivered like a hardware event (no gate DPL check).
defineOp(0xf1, 'ICEBP', (cpu) => deliverEvent(cpu, Vec.DB, -1, EventKind.Trap));
defineOp(0xcf, 'IRET', (cpu) => { if (cpu.lock) ud(cpu); interruptReturn(cpu); });

defineOp(0xf4, 'HLT', (cpu) => { if (cpu.lock) ud(cpu); requireCpl0(cpu); cpu.halt(); });

defineOp(0xfa, 'CLI', (cpu) => { requireIopl(cpu); cpu.flags = (cpu.flags & ~IF) >>> 0; });
defineOp(0xfb, 'STI', (cpu) => {
  requireIopl(cpu);
  if ((cpu.flags & IF) === 0) {
    cpu.flags = (cpu.flags | IF) >>> 0;
    // Interrupts stay blocked until the instruction after STI has retired.
    cpu.inhibitInterrupts();
  }
});

// RSM: virtlab has no system-management mode, and outside SMM RSM is #UD.
defineOp(0x1aa, 'RSM', ud);

// ======================================================================================
// #UD for the rest of the 0F map that this CPU does not have
// ======================================================================================

/**
 * 0F opcodes that are invalid on this CPU: undefined slots, and MMX/SSE/SSE2/SSE3 encodings
 * (CPUID reports none). Slots owned by other modules are not listed.
 */
const UD_0F = [
  0x04, 0x05, 0x07, 0x0a, 0x0c, 0x0d, 0x0e, 0x0f,
  ...range(0x10, 0x17), ...range(0x24, 0x2f), ...range(0x36, 0x3f),
  ...range(0x50, 0x7f),
  0xa6, 0xa7, 0xae, 0xb8, 0xb9, ...range(0xc2, 0xc6), ...range(0xd0, 0xff),
];
function range(a: number, b: number): number[] {
  const r: number[] = [];
  for (let i = a; i <= b; i++) r.push(i);
  return r;
}
for (const op of UD_0F) defineOp(0x100 | op, 'invalid (#UD)', ud);


