// Opcode handlers: port I/O (IN, OUT, INS, OUTS) and the protected-mode I/O permission check.
import type { Cpu } from './cpu.js';
import { EAX, EDX, ES, Vec } from './constants.js';
import { DF, IOPL } from './flags.js';
import { defineOp } from './op-table.js';
import { advanceDI, advanceSI, runString, stringDI, stringSI } from './ops-string.js';
import { SysType } from './segmentation.js';

/**
 * The I/O privilege check of IN/OUT/INS/OUTS (SDM Vol. 1 §19.5): in protected mode with
 * CPL > IOPL, or in V86 mode, every bit of the access in the TSS I/O permission bitmap must
 * be clear. The bitmap starts at the 16-bit offset at TSS+0x66; the CPU always reads two
 * bytes, so both must lie within the TSS limit; a 16-bit TSS has no bitmap. Else #GP(0).
 */
export function checkIoPermission(cpu: Cpu, port: number, len: number): void {
  // Every I/O instruction comes here first: LOCK on any of them is #UD, before any #GP.
  if (cpu.lock) cpu.raise(Vec.UD);
  if (!cpu.protectedMode) return;
  if (!cpu.v86 && cpu.cpl <= ((cpu.flags & IOPL) >>> 12)) return;
  const t = cpu.trAttr & 0xf;
  const limit = cpu.trLimit >>> 0;
  if ((t !== SysType.TSS32_AVAIL && t !== SysType.TSS32_BUSY) || limit < 0x67) cpu.raise(Vec.GP, 0);
  const mapOff = cpu.readLin16(cpu.trBase + 0x66, false);
  const byteOff = mapOff + (port >>> 3);
  if (byteOff + 1 > limit) cpu.raise(Vec.GP, 0);
  const bits = cpu.readLin16(cpu.trBase + byteOff, false);
  const mask = ((1 << len) - 1) << (port & 7);
  if ((bits & mask) !== 0) cpu.raise(Vec.GP, 0);
}

function portIn(cpu: Cpu, port: number, len: number): number {
  cpu.cycles += cpu.cost.io;
  return len === 1 ? cpu.io.in8(port) : len === 2 ? cpu.io.in16(port) : cpu.io.in32(port);
}

function portOut(cpu: Cpu, port: number, len: number, v: number): void {
  cpu.cycles += cpu.cost.io;
  if (len === 1) cpu.io.out8(port, v); else if (len === 2) cpu.io.out16(port, v); else cpu.io.out32(port, v);
}

function inAcc(cpu: Cpu, port: number, len: number): void {
  checkIoPermission(cpu, port, len);
  const v = portIn(cpu, port, len);
  if (len === 1) cpu.r8[0] = v; else if (len === 2) cpu.r16[EAX] = v; else cpu.r32[EAX] = v;
}

function outAcc(cpu: Cpu, port: number, len: number): void {
  checkIoPermission(cpu, port, len);
  portOut(cpu, port, len, len === 1 ? cpu.r8[0]! : len === 2 ? cpu.r16[EAX]! : cpu.r32[EAX]!);
}

const dx = (cpu: Cpu): number => cpu.r16[EDX << 1]!;

defineOp(0xe4, 'IN AL,imm8', (cpu) => inAcc(cpu, cpu.fetch8(), 1));
defineOp(0xe5, 'IN eAX,imm8', (cpu) => inAcc(cpu, cpu.fetch8(), 2), (cpu) => inAcc(cpu, cpu.fetch8(), 4));
defineOp(0xe6, 'OUT imm8,AL', (cpu) => outAcc(cpu, cpu.fetch8(), 1));
defineOp(0xe7, 'OUT imm8,eAX', (cpu) => outAcc(cpu, cpu.fetch8(), 2), (cpu) => outAcc(cpu, cpu.fetch8(), 4));
defineOp(0xec, 'IN AL,DX', (cpu) => inAcc(cpu, dx(cpu), 1));
defineOp(0xed, 'IN eAX,DX', (cpu) => inAcc(cpu, dx(cpu), 2), (cpu) => inAcc(cpu, dx(cpu), 4));
defineOp(0xee, 'OUT DX,AL', (cpu) => outAcc(cpu, dx(cpu), 1));
defineOp(0xef, 'OUT DX,eAX', (cpu) => outAcc(cpu, dx(cpu), 2), (cpu) => outAcc(cpu, dx(cpu), 4));

// ---- INS / OUTS: one element per iteration; REP through the string helpers ----

/**
 * One INS element: the destination ES:(E)DI is checked (segment and both pages) before the
 * port is read, so a fault never loses a port read that has side effects.
 */
function insStep(cpu: Cpu, len: number): void {
  const di = stringDI(cpu);
  cpu.dataAddr(ES, di, len, true);
  if (len > 1) cpu.translate((cpu.segBase[ES]! + di + len - 1) >>> 0, true, cpu.cpl === 3);
  const v = portIn(cpu, dx(cpu), len);
  if (len === 1) cpu.writeMem8(ES, di, v); else if (len === 2) cpu.writeMem16(ES, di, v); else cpu.writeMem32(ES, di, v);
  advanceDI(cpu, (cpu.flags & DF) !== 0 ? -len : len);
}

function outsStep(cpu: Cpu, len: number): void {
  const si = stringSI(cpu);
  const seg = cpu.dataSeg;
  const v = len === 1 ? cpu.readMem8(seg, si) : len === 2 ? cpu.readMem16(seg, si) : cpu.readMem32(seg, si);
  portOut(cpu, dx(cpu), len, v);
  advanceSI(cpu, (cpu.flags & DF) !== 0 ? -len : len);
}

const ins8 = (cpu: Cpu): void => insStep(cpu, 1);
const ins16 = (cpu: Cpu): void => insStep(cpu, 2);
const ins32 = (cpu: Cpu): void => insStep(cpu, 4);
const outs8 = (cpu: Cpu): void => outsStep(cpu, 1);
const outs16 = (cpu: Cpu): void => outsStep(cpu, 2);
const outs32 = (cpu: Cpu): void => outsStep(cpu, 4);

defineOp(0x6c, 'INSB', (cpu) => { checkIoPermission(cpu, dx(cpu), 1); runString(cpu, ins8, false, 0x6c); });
defineOp(0x6d, 'INSW',
  (cpu) => { checkIoPermission(cpu, dx(cpu), 2); runString(cpu, ins16, false, 0x6d); },
  (cpu) => { checkIoPermission(cpu, dx(cpu), 4); runString(cpu, ins32, false, 0x6d); });
defineOp(0x6e, 'OUTSB', (cpu) => { checkIoPermission(cpu, dx(cpu), 1); runString(cpu, outs8, false, 0x6e); });
defineOp(0x6f, 'OUTSW',
  (cpu) => { checkIoPermission(cpu, dx(cpu), 2); runString(cpu, outs16, false, 0x6f); },
  (cpu) => { checkIoPermission(cpu, dx(cpu), 4); runString(cpu, outs32, false, 0x6f); });
