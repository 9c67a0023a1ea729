import type { Cpu } from './cpu.js';
import { CS, DS, ES, ESP, FS, GS, SS, Vec } from './constants.js';
import { IF, IOPL, NT, RF, VM, WRITABLE } from './flags.js';
import { Descriptor, loadCache, readDescriptor, setAccessed, SysType } from './segmentation.js';

// ======================================================================================
// Shared machinery for far transfers and interrupt delivery
// ======================================================================================

/**
 * Builds a stack frame in a stack that may not be the current SS (the inner stack of a
 * privilege change) without touching architectural state: every slot is limit-checked and
 * written through the linear address, and only `commit` (done by the caller) moves SS:ESP.
 * A fault midway leaves registers unchanged, so the instruction or event restarts cleanly.
 */
export class FrameBuilder {
  base = 0;
  sp = 0;
  big = false;
  lo = 0;
  hi = 0;
  writable = true;
  user = false;
  /** Fault raised when a slot is outside the stack segment. */
  faultVec: number = Vec.SS;
  faultCode = 0;

  /** The current SS:ESP, at the current privilege level. */
  fromCurrent(cpu: Cpu): this {
    this.base = cpu.segBase[SS]!;
    this.sp = cpu.sp;
    this.big = cpu.ss32;
    this.lo = cpu.segLo[SS]!;
    this.hi = cpu.segHi[SS]!;
    this.writable = (cpu.segRW[SS]! & 2) !== 0;
    this.user = cpu.cpl === 3;
    this.faultVec = Vec.SS;
    this.faultCode = 0;
    return this;
  }

  /** A new stack from a checked writable-data descriptor, for privilege level `cpl`. */
  fromDescriptor(d: Descriptor, sp: number, cpl: number, faultCode: number): this {
    this.base = d.base;
    this.big = d.big;
    this.sp = this.big ? sp >>> 0 : sp & 0xffff;
    if (d.expandDown) { this.lo = (d.limit + 1) >>> 0; this.hi = this.big ? 0xffffffff : 0xffff; } else { this.lo = 0; this.hi = d.limit; }
    this.writable = true;
    this.user = cpl === 3;
    this.faultVec = Vec.SS;
    this.faultCode = faultCode;
    return this;
  }

  private slot(cpu: Cpu, size: number): number {
    const sp = this.big ? (this.sp - size) >>> 0 : (this.sp - size) & 0xffff;
    if (!this.writable || sp < this.lo || sp + size - 1 > this.hi) cpu.raise(this.faultVec, this.faultCode);
    this.sp = sp;
    return (this.base + sp) >>> 0;
  }

  push16(cpu: Cpu, v: number): void { cpu.writeLin16(this.slot(cpu, 2), v, this.user); }
  push32(cpu: Cpu, v: number): void { cpu.writeLin32(this.slot(cpu, 4), v, this.user); }
  push(cpu: Cpu, v: number, size32: boolean): void { if (size32) this.push32(cpu, v); else this.push16(cpu, v); }

  /** Makes this the stack pointer (SS must already describe this stack). */
  commitSp(cpu: Cpu): void {
    if (this.big) cpu.r32[ESP] = this.sp; else cpu.r16[ESP << 1] = this.sp;
  }
}

/** Inner-stack pointer read from the TSS by `readTssStack`. */
export const tssStack = { ss: 0, esp: 0 };

/**
 * Reads SSn:ESPn for privilege level `dpl` from the current TSS (32-bit or 16-bit format).
 * `ext` is the EXT bit of error codes. #TS(TR) when the slot lies beyond the TSS limit.
 */
export function readTssStack(cpu: Cpu, dpl: number, ext: number): void {
  const t = cpu.trAttr & 0xf;
  if (t === SysType.TSS32_AVAIL || t === SysType.TSS32_BUSY) {
    const off = 4 + dpl * 8;
    if (off + 5 > (cpu.trLimit >>> 0)) cpu.raise(Vec.TS, (cpu.trSel & 0xfffc) | ext);
    tssStack.esp = cpu.readLin32(cpu.trBase + off, false) >>> 0;
    tssStack.ss = cpu.readLin16(cpu.trBase + off + 4, false);
  } else {
    const off = 2 + dpl * 4;
    if (off + 3 > (cpu.trLimit >>> 0)) cpu.raise(Vec.TS, (cpu.trSel & 0xfffc) | ext);
    tssStack.esp = cpu.readLin16(cpu.trBase + off, false);
    tssStack.ss = cpu.readLin16(cpu.trBase + off + 2, false);
  }
}

/**
 * Checks the inner stack segment `ss` for privilege level `cpl` (from the TSS) into `d`:
 * #TS for a null, out-of-table, wrong-privilege or non-writable selector, #SS if not present.
 */
export function checkInnerStack(cpu: Cpu, ss: number, cpl: number, ext: number, d: Descriptor): void {
  const err = (ss & 0xfffc) | ext;
  if ((ss & 0xfffc) === 0) cpu.raise(Vec.TS, ext);
  if (!readDescriptor(cpu, ss, d)) cpu.raise(Vec.TS, err);
  if ((ss & 3) !== cpl || d.dpl !== cpl || !d.isData || !d.rwBit) cpu.raise(Vec.TS, err);
  if (!d.present) cpu.raise(Vec.SS, err);
}

/** Loads CS from a checked code descriptor and sets CPL. */
export function loadCodeSegment(cpu: Cpu, sel: number, d: Descriptor, cpl: number): void {
  setAccessed(cpu, d);
  cpu.cpl = cpl;
  loadCache(cpu, CS, (sel & 0xfffc) | cpl, d);
}

/** Loads SS from a checked stack descriptor. */
export function loadStackSegment(cpu: Cpu, sel: number, d: Descriptor): void {
  setAccessed(cpu, d);
  loadCache(cpu, SS, sel, d);
}

/**
 * After a return to an outer privilege level: data segment registers whose descriptors the
 * new CPL may not use (data or non-conforming code with DPL < CPL) are loaded with null.
 */
export function nullInaccessibleSegments(cpu: Cpu): void {
  const cpl = cpu.cpl;
  for (const seg of DATA_SEGS) {
    const a = cpu.segAttr[seg]!;
    if ((a & 0x10) === 0) continue; // already null (or a system segment cannot be here)
    const conformingCode = (a & 0x1c) === 0x1c;
    if (!conformingCode && ((a >> 5) & 3) < cpl) cpu.setNullSegment(seg, 0);
  }
}
const DATA_SEGS = [ES, DS, FS, GS];

const dCode = new Descriptor();
const dGate = new Descriptor();
const dStack = new Descriptor();
const frame = new FrameBuilder();
/** Call-gate parameters being copied (at most 31). */
const params = new Int32Array(32);

function taskSwitch(cpu: Cpu, what: string, sel: number): never {
  cpu.unsupported(`${what} to selector 0x${sel.toString(16)}: hardware task switching is not implemented`);
}

// ======================================================================================
// JMP FAR / CALL FAR
// ======================================================================================

/**
 * Checks a far-transfer target CS that the transfer itself names (direct JMP/CALL, or a call
 * gate's target): code, privilege, present. Returns the CPL the code will run at.
 */
function checkDirectCode(cpu: Cpu, sel: number, d: Descriptor): void {
  const err = sel & 0xfffc;
  if (d.conforming) {
    if (d.dpl > cpu.cpl) cpu.raise(Vec.GP, err);
  } else if ((sel & 3) > cpu.cpl || d.dpl !== cpu.cpl) {
    cpu.raise(Vec.GP, err);
  }
  if (!d.present) cpu.raise(Vec.NP, err);
}

/** Reads and checks a call gate's target code descriptor into dCode. */
function gateTarget(cpu: Cpu, g: Descriptor): number {
  const tsel = g.gateSelector;
  if ((tsel & 0xfffc) === 0) cpu.raise(Vec.GP, 0);
  if (!readDescriptor(cpu, tsel, dCode) || !dCode.isCode || dCode.dpl > cpu.cpl) cpu.raise(Vec.GP, tsel & 0xfffc);
  return tsel;
}

/** Validates a call gate named by `sel` (already read into dGate). */
function checkCallGate(cpu: Cpu, sel: number): void {
  const err = sel & 0xfffc;
  if (dGate.dpl < cpu.cpl || dGate.dpl < (sel & 3)) cpu.raise(Vec.GP, err);
  if (!dGate.present) cpu.raise(Vec.NP, err);
}

/** JMP FAR sel:offset (direct, or through a call gate / TSS in protected mode). */
export function farJump(cpu: Cpu, sel: number, offset: number): void {
  sel &= 0xffff;
  if (!cpu.protectedMode || cpu.v86) {
    cpu.loadRealSegment(CS, sel);
    cpu.eip = cpu.opsize32 ? offset >>> 0 : offset & 0xffff;
    return;
  }
  cpu.cycles += cpu.cost.segmentLoad;
  if ((sel & 0xfffc) === 0) cpu.raise(Vec.GP, 0);
  if (!readDescriptor(cpu, sel, dGate)) cpu.raise(Vec.GP, sel & 0xfffc);
  if (dGate.isCode) {
    checkDirectCode(cpu, sel, dGate);
    const eip = cpu.opsize32 ? offset >>> 0 : offset & 0xffff;
    if (eip > dGate.limit) cpu.raise(Vec.GP, 0);
    loadCodeSegment(cpu, sel, dGate, cpu.cpl);
    cpu.eip = eip;
    return;
  }
  const t = dGate.isSystem ? dGate.type : -1;
  if (t === SysType.CALL_GATE16 || t === SysType.CALL_GATE32) {
    checkCallGate(cpu, sel);
    const tsel = gateTarget(cpu, dGate);
    // A jump never changes privilege: conforming DPL <= CPL, non-conforming DPL = CPL.
    if (!dCode.conforming && dCode.dpl !== cpu.cpl) cpu.raise(Vec.GP, tsel & 0xfffc);
    if (!dCode.present) cpu.raise(Vec.NP, tsel & 0xfffc);
    const eip = dGate.gateOffset;
    if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
    loadCodeSegment(cpu, tsel, dCode, cpu.cpl);
    cpu.eip = eip;
    return;
  }
  if (t === SysType.TSS16_AVAIL || t === SysType.TSS32_AVAIL || t === SysType.TASK_GATE) taskSwitch(cpu, 'JMP FAR through a TSS or task gate', sel);
  cpu.raise(Vec.GP, sel & 0xfffc);
}

/** CALL FAR sel:offset; pushes CS and EIP of the current operand size. */
export function farCall(cpu: Cpu, sel: number, offset: number): void {
  sel &= 0xffff;
  if (!cpu.protectedMode || cpu.v86) {
    // Both slots are written before SP moves, so a stack fault leaves SP unchanged.
    const size32 = cpu.opsize32;
    frame.fromCurrent(cpu);
    frame.push(cpu, cpu.segSel[CS]!, size32);
    frame.push(cpu, cpu.eip, size32);
    frame.commitSp(cpu);
    cpu.loadRealSegment(CS, sel);
    cpu.eip = size32 ? offset >>> 0 : offset & 0xffff;
    return;
  }
  cpu.cycles += cpu.cost.segmentLoad;
  if ((sel & 0xfffc) === 0) cpu.raise(Vec.GP, 0);
  if (!readDescriptor(cpu, sel, dGate)) cpu.raise(Vec.GP, sel & 0xfffc);
  const cpl = cpu.cpl;
  if (dGate.isCode) {
    checkDirectCode(cpu, sel, dGate);
    const size32 = cpu.opsize32;
    const eip = size32 ? offset >>> 0 : offset & 0xffff;
    frame.fromCurrent(cpu);
    frame.push(cpu, cpu.segSel[CS]!, size32);
    frame.push(cpu, cpu.eip, size32);
    if (eip > dGate.limit) cpu.raise(Vec.GP, 0);
    frame.commitSp(cpu);
    loadCodeSegment(cpu, sel, dGate, cpl);
    cpu.eip = eip;
    return;
  }
  const t = dGate.isSystem ? dGate.type : -1;
  if (t === SysType.CALL_GATE16 || t === SysType.CALL_GATE32) {
    checkCallGate(cpu, sel);
    const tsel = gateTarget(cpu, dGate);
    if (!dCode.present) cpu.raise(Vec.NP, tsel & 0xfffc);
    const size32 = t === SysType.CALL_GATE32;
    const eip = dGate.gateOffset;
    if (!dCode.conforming && dCode.dpl < cpl) {
      // More privileged: switch to the inner stack from the TSS, copy the parameters.
      const newCpl = dCode.dpl;
      readTssStack(cpu, newCpl, 0);
      const ss = tssStack.ss, esp = tssStack.esp;
      checkInnerStack(cpu, ss, newCpl, 0, dStack);
      const n = dGate.gateParams;
      const size = size32 ? 4 : 2;
      const oldSp = cpu.sp;
      for (let i = 0; i < n; i++) {
        const off = cpu.ss32 ? (oldSp + i * size) >>> 0 : (oldSp + i * size) & 0xffff;
        params[i] = size32 ? cpu.readMem32(SS, off) : cpu.readMem16(SS, off);
      }
      frame.fromDescriptor(dStack, esp, newCpl, ss & 0xfffc);
      frame.push(cpu, cpu.segSel[SS]!, size32);
      frame.push(cpu, cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!, size32);
      for (let i = n - 1; i >= 0; i--) frame.push(cpu, params[i]!, size32);
      frame.push(cpu, cpu.segSel[CS]!, size32);
      frame.push(cpu, cpu.eip, size32);
      if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
      cpu.cycles += cpu.cost.privilegeChange;
      loadStackSegment(cpu, ss, dStack);
      frame.commitSp(cpu);
      loadCodeSegment(cpu, tsel, dCode, newCpl);
      cpu.eip = eip;
      return;
    }
    // Same privilege (conforming, or DPL = CPL): the gate's size decides the pushes.
    frame.fromCurrent(cpu);
    frame.push(cpu, cpu.segSel[CS]!, size32);
    frame.push(cpu, cpu.eip, size32);
    if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
    frame.commitSp(cpu);
    loadCodeSegment(cpu, tsel, dCode, cpl);
    cpu.eip = eip;
    return;
  }
  if (t === SysType.TSS16_AVAIL || t === SysType.TSS32_AVAIL || t === SysType.TASK_GATE) taskSwitch(cpu, 'CALL FAR through a TSS or task gate', sel);
  cpu.raise(Vec.GP, sel & 0xfffc);
}

// ======================================================================================
// RETF / IRET
// ======================================================================================

/** Reads the stack `depth` bytes above SS:ESP, `size32` wide, without popping. */
function peek(cpu: Cpu, depth: number, size32: boolean): number {
  const off = cpu.ss32 ? (cpu.sp + depth) >>> 0 : (cpu.sp + depth) & 0xffff;
  return size32 ? cpu.readMem32(SS, off) : cpu.readMem16(SS, off);
}

/** Adds `n` to the stack pointer (per SS.B). */
function releaseStack(cpu: Cpu, n: number): void {
  if (cpu.ss32) cpu.r32[ESP] = cpu.r32[ESP]! + n; else cpu.r16[ESP << 1] = cpu.r16[ESP << 1]! + n;
}

/** Checks the return CS of RETF/IRET into dCode (RPL = the privilege returned to). */
function checkReturnCode(cpu: Cpu, csSel: number): void {
  const err = csSel & 0xfffc;
  if (err === 0) cpu.raise(Vec.GP, 0);
  if (!readDescriptor(cpu, csSel, dCode) || !dCode.isCode) cpu.raise(Vec.GP, err);
  const rpl = csSel & 3;
  if (rpl < cpu.cpl) cpu.raise(Vec.GP, err);
  if (dCode.conforming ? dCode.dpl > rpl : dCode.dpl !== rpl) cpu.raise(Vec.GP, err);
  if (!dCode.present) cpu.raise(Vec.NP, err);
}

/** Checks the outer SS popped by RETF/IRET into dStack. */
function checkReturnStack(cpu: Cpu, ssSel: number, rpl: number): void {
  const err = ssSel & 0xfffc;
  if (err === 0) cpu.raise(Vec.GP, 0);
  if (!readDescriptor(cpu, ssSel, dStack)) cpu.raise(Vec.GP, err);
  if ((ssSel & 3) !== rpl || !dStack.isData || !dStack.rwBit || dStack.dpl !== rpl) cpu.raise(Vec.GP, err);
  if (!dStack.present) cpu.raise(Vec.SS, err);
}

/** RETF [imm16]: pops EIP and CS, then releases `immBytes` of parameters. */
export function farReturn(cpu: Cpu, immBytes: number): void {
  const size32 = cpu.opsize32;
  const size = size32 ? 4 : 2;
  if (!cpu.protectedMode || cpu.v86) {
    const eip = peek(cpu, 0, size32);
    const cs = peek(cpu, size, size32) & 0xffff;
    cpu.loadRealSegment(CS, cs);
    cpu.eip = size32 ? eip >>> 0 : eip & 0xffff;
    releaseStack(cpu, 2 * size + immBytes);
    return;
  }
  cpu.cycles += cpu.cost.segmentLoad;
  const eipRaw = peek(cpu, 0, size32);
  const csSel = peek(cpu, size, size32) & 0xffff;
  const eip = size32 ? eipRaw >>> 0 : eipRaw & 0xffff;
  checkReturnCode(cpu, csSel);
  const rpl = csSel & 3;
  if (rpl === cpu.cpl) {
    if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
    loadCodeSegment(cpu, csSel, dCode, rpl);
    cpu.eip = eip;
    releaseStack(cpu, 2 * size + immBytes);
    return;
  }
  // Return to an outer privilege level: the outer SS:ESP sits above the parameters.
  const espRaw = peek(cpu, 2 * size + immBytes, size32);
  const ssSel = peek(cpu, 3 * size + immBytes, size32) & 0xffff;
  checkReturnStack(cpu, ssSel, rpl);
  if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
  cpu.cycles += cpu.cost.privilegeChange;
  loadCodeSegment(cpu, csSel, dCode, rpl);
  cpu.eip = eip;
  loadStackSegment(cpu, ssSel, dStack);
  const esp = size32 ? espRaw : espRaw & 0xffff;
  if (cpu.ss32) cpu.r32[ESP] = esp + immBytes; else cpu.r16[ESP << 1] = esp + immBytes;
  nullInaccessibleSegments(cpu);
}

/**
 * IRET/IRETD (opcode CF): real mode, V86 with IOPL 3, protected mode to the same or an outer
 * privilege level. Task returns (NT = 1) and returns to V86 stop the machine as unsupported.
 */
export function interruptReturn(cpu: Cpu): void {
  const size32 = cpu.opsize32;
  const size = size32 ? 4 : 2;
  if (!cpu.protectedMode) {
    const eip = peek(cpu, 0, size32);
    const cs = peek(cpu, size, size32) & 0xffff;
    const fl = peek(cpu, 2 * size, size32);
    cpu.loadRealSegment(CS, cs);
    cpu.eip = size32 ? eip >>> 0 : eip & 0xffff;
    releaseStack(cpu, 3 * size);
    // Real mode: every writable flag but VM (VIF/VIP do not exist without VME).
    cpu.setFlags(fl & ~RF, size32 ? WRITABLE & ~VM : WRITABLE & 0xffff);
    return;
  }
  if (cpu.v86) {
    // Without CR4.VME, IRET in V86 mode is IOPL-sensitive; IOPL and VM do not change.
    if ((cpu.flags & IOPL) !== IOPL) cpu.raise(Vec.GP, 0);
    const eip = peek(cpu, 0, size32);
    const cs = peek(cpu, size, size32) & 0xffff;
    const fl = peek(cpu, 2 * size, size32);
    cpu.loadRealSegment(CS, cs);
    cpu.eip = size32 ? eip >>> 0 : eip & 0xffff;
    releaseStack(cpu, 3 * size);
    cpu.setFlags(fl & ~RF, (size32 ? WRITABLE : WRITABLE & 0xffff) & ~(VM | IOPL));
    return;
  }
  if ((cpu.flags & NT) !== 0) taskSwitch(cpu, 'IRET with EFLAGS.NT set (task return)', cpu.readLin16(cpu.trBase, false));
  cpu.cycles += cpu.cost.segmentLoad;
  const eipRaw = peek(cpu, 0, size32);
  const csSel = peek(cpu, size, size32) & 0xffff;
  const fl = peek(cpu, 2 * size, size32);
  if (size32 && (fl & VM) !== 0 && cpu.cpl === 0) {
    cpu.unsupported('IRET to virtual-8086 mode is not implemented');
  }
  const eip = size32 ? eipRaw >>> 0 : eipRaw & 0xffff;
  checkReturnCode(cpu, csSel);
  const oldCpl = cpu.cpl;
  // Which flags the old privilege level may change (SDM, IRET).
  let mask = WRITABLE & ~VM;
  if (oldCpl > ((cpu.flags & IOPL) >>> 12)) mask &= ~IF;
  if (oldCpl !== 0) mask &= ~IOPL;
  if (!size32) mask &= 0xffff;
  // RF is restored from the image and then cleared when the next instruction starts; with no
  // instruction breakpoints modelled nothing can observe it in between, so it is cleared here.
  const rpl = csSel & 3;
  if (rpl === oldCpl) {
    if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
    loadCodeSegment(cpu, csSel, dCode, rpl);
    cpu.eip = eip;
    releaseStack(cpu, 3 * size);
    cpu.setFlags(fl & ~RF, mask);
    return;
  }
  const espRaw = peek(cpu, 3 * size, size32);
  const ssSel = peek(cpu, 4 * size, size32) & 0xffff;
  checkReturnStack(cpu, ssSel, rpl);
  if (eip > dCode.limit) cpu.raise(Vec.GP, 0);
  cpu.cycles += cpu.cost.privilegeChange;
  cpu.setFlags(fl & ~RF, mask);
  loadCodeSegment(cpu, csSel, dCode, rpl);
  cpu.eip = eip;
  loadStackSegment(cpu, ssSel, dStack);
  const esp = size32 ? espRaw : espRaw & 0xffff;
  if (cpu.ss32) cpu.r32[ESP] = esp; else cpu.r16[ESP << 1] = esp;
  nullInaccessibleSegments(cpu);
}

