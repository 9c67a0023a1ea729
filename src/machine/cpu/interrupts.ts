import type { Cpu } from './cpu.js';
import { CS, Vec } from './constants.js';
import { AC, IF, RF, TF } from './flags.js';

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

/**
 * Delivers an exception or interrupt: real-mode IVT, or protected-mode IDT gates.
 * Tracks double and triple faults.
 */
export function deliverEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): void {
  cpu.eventCounts[vector & 0xff]!++;
  cpu.cycles += cpu.cost.interrupt;
  cpu.halted = false;
  if (!cpu.protectedMode) {
    deliverReal(cpu, vector);
    return;
  }
  cpu.unsupported(`protected-mode delivery of vector ${vector} (kind ${kind}, code ${code}) is not implemented yet`);
}

function deliverReal(cpu: Cpu, vector: number): void {
  const off = vector * 4;
  if (off + 3 > cpu.idtrLimit) {
    cpu.stopReason = { kind: 'triple-fault', detail: `vector ${vector} beyond the real-mode IVT limit` };
    return;
  }
  const ip = cpu.readLin16(cpu.idtrBase + off, false);
  const cs = cpu.readLin16(cpu.idtrBase + off + 2, false);
  const saveOs = cpu.opsize32;
  cpu.opsize32 = false;
  cpu.push16(cpu.flags & 0xffff);
  cpu.push16(cpu.segSel[CS]!);
  cpu.push16(cpu.eip & 0xffff);
  cpu.opsize32 = saveOs;
  cpu.flags &= ~(IF | TF | AC | RF);
  cpu.loadRealSegment(CS, cs);
  cpu.eip = ip;
  void Vec;
}
