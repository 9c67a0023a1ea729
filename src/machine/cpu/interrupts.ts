import type { Cpu } from './cpu.js';
import { CS, ESP, SS, Vec } from './constants.js';
import { AC, IF, NT, RF, TF, VM } from './flags.js';
import { Descriptor, readDescriptor, SysType } from './segmentation.js';
import { disassemble } from '../disassemble.js';
import { checkInnerStack, FrameBuilder, loadCodeSegment, loadStackSegment, readTssStack, tssStack } from './far-transfer.js';

/** How an event arrives, which decides the saved EIP and the privilege checks. */
export const EventKind = {
  /** A fault: the saved EIP is the faulting instruction's (cpu.eip is already reset to it). */
  Fault: 0,
  /** A trap: the saved EIP is the next instruction's. */
  Trap: 1,
  /** INT n / INT3 / INTO: a software interrupt (gate DPL is checked against CPL). */
  Software: 2,
  /** An external interrupt from INTR (or NMI). */
  External: 3,
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

/** Exception classes for the double-fault rules (SDM Vol. 3, Table 6-5). */
const BENIGN = 0, CONTRIBUTORY = 1, PAGE_FAULT = 2;

function exceptionClass(vector: number): number {
  switch (vector) {
    case Vec.DE: case Vec.TS: case Vec.NP: case Vec.SS: case Vec.GP: return CONTRIBUTORY;
    case Vec.PF: return PAGE_FAULT;
    default: return BENIGN;
  }
}

/** Exceptions that push an error code (when raised by the CPU, not by INT n). */
function hasErrorCode(vector: number): boolean {
  return vector === Vec.DF || (vector >= Vec.TS && vector <= Vec.PF) || vector === Vec.AC;
}

const NAMES = ['DE', 'DB', 'NMI', 'BP', 'OF', 'BR', 'UD', 'NM', 'DF', 'CSO', 'TS', 'NP', 'SS', 'GP', 'PF', '15', 'MF', 'AC', 'MC', 'XM'];

/** "#GP(0x0010)", "#UD", or "INT 0x80" for diagnostics. */
export function eventName(vector: number, code: number): string {
  const n = vector < NAMES.length ? `#${NAMES[vector]}` : `vector 0x${vector.toString(16)}`;
  return code >= 0 ? `${n}(0x${code.toString(16).padStart(4, '0')})` : n;
}

/**
 * Delivers an exception or interrupt: real-mode IVT, or protected-mode IDT gates.
 *
 * Nothing architectural changes until the whole frame has been written, so a fault during
 * delivery leaves the CPU as it was and is handled here per the double-fault rules: a
 * benign first event, or a contributory one followed by a page fault, is followed by the
 * second exception; contributory+contributory or page fault+(contributory or page fault)
 * becomes #DF; a fault while delivering #DF is a triple fault, which stops the machine
 * (`stopReason` 'triple-fault', `firstFault` naming the first exception of the chain).
 *
 * Never throws for faults, except for a software interrupt whose delivery stopped the
 * machine (the instruction must not retire).
 */
export function deliverEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): void {
  // A monitor sees the event first (a path that is already slow: no cost for native).
  const m = cpu.monitor;
  if (m !== null && m.onEvent(cpu, vector, code, kind)) return;
  deliverArchitectural(cpu, vector, code, kind);
}

/**
 * What a virtual machine monitor attached to a CPU (`cpu.monitor`) must provide to the CPU:
 * the first look at every exception and interrupt (see `src/vmm/monitor.ts`).
 */
export interface CpuMonitor {
  /**
   * Called by `deliverEvent` before architectural delivery, with EIP already reset for a
   * fault. Returns true when the monitor consumed the event (emulated, reflected or turned
   * it into an exit), false to let the CPU deliver it through its IDT. Must not throw FAULT.
   */
  onEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): boolean;
}

/** `deliverEvent` without the monitor: the CPU's own delivery (monitors reflect through it). */
export function deliverArchitectural(cpu: Cpu, vector: number, code: number, kind: EventKind): void {
  let v = vector, c = code, k: EventKind = kind;
  const firstEip = cpu.eip >>> 0, firstCs = cpu.segSel[CS]!, firstLin = (cpu.segBase[CS]! + firstEip) >>> 0;
  // The instruction that caused the first event: the faulting one, or the INT itself.
  const instrLin = kind === EventKind.Fault ? firstLin
    : kind === EventKind.Software ? (cpu.segBase[CS]! + cpu.instrStart) >>> 0 : -1;
  let chain = '';
  let firstSet = false;
  for (;;) {
    cpu.eventCounts[v & 0xff]!++;
    cpu.cycles += cpu.cost.interrupt;
    try {
      if (!cpu.protectedMode) deliverReal(cpu, v, k);
      else deliverProtected(cpu, v, c, k);
      cpu.halted = false;
      // TF is clear now: the handler's first instruction is not single-stepped.
      cpu.attention &= ~2;
      return;
    } catch (e) {
      if (typeof e !== 'symbol') throw e;
      if (cpu.stopReason !== null) {
        if (kind === EventKind.Software) throw e;
        return;
      }
      const nv = cpu.excVector, nc = cpu.excCode;
      chain += `${chain ? ', then ' : ''}${eventName(nv, nc)} while delivering ${k === EventKind.Software ? `INT 0x${v.toString(16)}` : eventName(v, c)}`;
      if (v === Vec.DF && k === EventKind.Fault) {
        if (!firstSet) cpu.firstFault = { vector, code, eip: firstEip, cs: firstCs };
        const f = cpu.firstFault!;
        cpu.stopReason = {
          kind: 'triple-fault',
          detail: `triple fault: first exception ${eventName(f.vector, f.code)} at ${hex16(f.cs)}:${hex32(f.eip)} ` +
            `(linear ${hex32(firstLin)}${instrLin >= 0 ? `, ${describeInstruction(cpu, instrLin)}` : ''}); ${chain}`,
        };
        if (kind === EventKind.Software) throw e;
        return;
      }
      // A software interrupt whose delivery faults is a fault of the INT instruction itself.
      if (k === EventKind.Software) cpu.eip = cpu.instrStart;
      const c1 = k === EventKind.Software || k === EventKind.External ? BENIGN : exceptionClass(v);
      const c2 = exceptionClass(nv);
      if ((c1 === CONTRIBUTORY && c2 === CONTRIBUTORY) || (c1 === PAGE_FAULT && c2 !== BENIGN)) {
        cpu.firstFault = { vector, code, eip: firstEip, cs: firstCs };
        firstSet = true;
        v = Vec.DF; c = 0;
      } else {
        v = nv; c = nc;
      }
      k = EventKind.Fault;
    }
  }
}

/** "movaps xmm0,[eax]" for the instruction at linear `lin` (diagnostics only: loads the disassembler). */
function describeInstruction(cpu: Cpu, lin: number): string {
  const bytes: number[] = [];
  for (let i = 0; i < 15; i++) bytes.push(cpu.peekLinear8(lin + i));
  try {
    const d = disassemble(bytes, lin, cpu.cs32 ? 32 : 16);
    const hexBytes = bytes.slice(0, d.length || 4).map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return `instruction ${d.text} [${hexBytes}]`;
  } catch {
    return `bytes ${bytes.slice(0, 8).map((b) => b.toString(16).padStart(2, '0')).join(' ')}`;
  }
}

function hex16(v: number): string { return (v & 0xffff).toString(16).padStart(4, '0'); }
function hex32(v: number): string { return (v >>> 0).toString(16).padStart(8, '0'); }

const frame = new FrameBuilder();
const dGate = new Descriptor();
const dCode = new Descriptor();
const dStack = new Descriptor();

/** Real mode: the IVT at IDTR.base, a FLAGS/CS/IP frame; clears IF, TF, AC and RF. */
function deliverReal(cpu: Cpu, vector: number, kind: EventKind): void {
  const off = vector * 4;
  if (off + 3 > (cpu.idtrLimit >>> 0)) cpu.raise(Vec.GP, vector * 8 + 2 + (kind === EventKind.Software ? 0 : 1));
  const ip = cpu.readLin16(cpu.idtrBase + off, false);
  const cs = cpu.readLin16(cpu.idtrBase + off + 2, false);
  frame.fromCurrent(cpu);
  frame.push16(cpu, cpu.flags & 0xffff);
  frame.push16(cpu, cpu.segSel[CS]!);
  frame.push16(cpu, cpu.eip & 0xffff);
  frame.commitSp(cpu);
  cpu.flags &= ~(IF | TF | AC | RF);
  cpu.loadRealSegment(CS, cs);
  cpu.eip = ip;
}

/** Protected mode: IDT interrupt/trap gates, with a stack switch to an inner ring. */
function deliverProtected(cpu: Cpu, vector: number, code: number, kind: EventKind): void {
  const ext = kind === EventKind.Software ? 0 : 1;
  const idtErr = vector * 8 + 2 + ext;
  if (cpu.v86) cpu.unsupported(`${eventName(vector, code)} in virtual-8086 mode: V86 interrupt delivery is not implemented`);
  if (vector * 8 + 7 > (cpu.idtrLimit >>> 0)) cpu.raise(Vec.GP, idtErr);
  const addr = (cpu.idtrBase + vector * 8) >>> 0;
  dGate.addr = addr;
  dGate.lo = cpu.readLin32(addr, false);
  dGate.hi = cpu.readLin32(addr + 4, false);
  const t = dGate.type; // S bit included: code/data descriptors are >= 0x10
  if (t === SysType.TASK_GATE) {
    cpu.unsupported(`${eventName(vector, code)} through a task gate: hardware task switching is not implemented`);
  }
  if (t !== SysType.INT_GATE16 && t !== SysType.INT_GATE32 && t !== SysType.TRAP_GATE16 && t !== SysType.TRAP_GATE32) {
    cpu.raise(Vec.GP, idtErr);
  }
  if (kind === EventKind.Software && dGate.dpl < cpu.cpl) cpu.raise(Vec.GP, idtErr);
  if (!dGate.present) cpu.raise(Vec.NP, idtErr);
  const tsel = dGate.gateSelector;
  if ((tsel & 0xfffc) === 0) cpu.raise(Vec.GP, ext);
  const terr = (tsel & 0xfffc) | ext;
  if (!readDescriptor(cpu, tsel, dCode) || !dCode.isCode || dCode.dpl > cpu.cpl) cpu.raise(Vec.GP, terr);
  if (!dCode.present) cpu.raise(Vec.NP, terr);
  const size32 = (t & 8) !== 0;
  const eip = dGate.gateOffset;
  const pushCode = code >= 0 && kind !== EventKind.Software && kind !== EventKind.External && hasErrorCode(vector);
  // The pushed image has RF = 1 for fault-class exceptions (SDM Vol. 3 §17.3.1.1), so the
  // restarted instruction would not re-trigger an instruction breakpoint.
  const oldFlags = kind === EventKind.Fault && vector !== Vec.DB ? (cpu.flags | RF) >>> 0 : cpu.flags;
  let newCpl = cpu.cpl;
  const inner = !dCode.conforming && dCode.dpl < cpu.cpl;
  if (inner) {
    newCpl = dCode.dpl;
    readTssStack(cpu, newCpl, ext);
    const ss = tssStack.ss, esp = tssStack.esp;
    checkInnerStack(cpu, ss, newCpl, ext, dStack);
    frame.fromDescriptor(dStack, esp, newCpl, (ss & 0xfffc) | ext);
    frame.push(cpu, cpu.segSel[SS]!, size32);
    frame.push(cpu, cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!, size32);
  } else {
    frame.fromCurrent(cpu);
    frame.faultCode = ext;
  }
  frame.push(cpu, size32 ? oldFlags : oldFlags & 0xffff, size32);
  frame.push(cpu, cpu.segSel[CS]!, size32);
  frame.push(cpu, cpu.eip, size32);
  if (pushCode) frame.push(cpu, code, size32);
  if (eip > dCode.limit) cpu.raise(Vec.GP, ext);
  // Commit: nothing below can fault.
  if (inner) {
    cpu.cycles += cpu.cost.privilegeChange;
    loadStackSegment(cpu, tssStack.ss, dStack);
  }
  frame.commitSp(cpu);
  loadCodeSegment(cpu, tsel, dCode, newCpl);
  cpu.eip = eip;
  let clear = TF | NT | RF | VM;
  if ((t & 1) === 0) clear |= IF; // interrupt gate (trap gates leave IF)
  cpu.flags = (cpu.flags & ~clear) >>> 0;
}
