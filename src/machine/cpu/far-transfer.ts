import type { Cpu } from './cpu.js';
import { CS } from './constants.js';

/** JMP FAR sel:offset (direct, or through a call gate / TSS in protected mode). */
export function farJump(cpu: Cpu, sel: number, offset: number): void {
  if (!cpu.protectedMode || cpu.v86) {
    cpu.loadRealSegment(CS, sel);
    cpu.eip = cpu.opsize32 ? offset >>> 0 : offset & 0xffff;
    return;
  }
  cpu.unsupported('protected-mode far jumps are not implemented yet');
}

/** CALL FAR sel:offset; pushes CS and EIP of the current operand size. */
export function farCall(cpu: Cpu, sel: number, offset: number): void {
  if (!cpu.protectedMode || cpu.v86) {
    const cs = cpu.segSel[CS]!;
    if (cpu.opsize32) { cpu.push32(cs); cpu.push32(cpu.eip); } else { cpu.push16(cs); cpu.push16(cpu.eip); }
    cpu.loadRealSegment(CS, sel);
    cpu.eip = cpu.opsize32 ? offset >>> 0 : offset & 0xffff;
    return;
  }
  cpu.unsupported('protected-mode far calls are not implemented yet');
}

/** RETF [imm16]: pops EIP and CS, then releases `immBytes` of parameters. */
export function farReturn(cpu: Cpu, immBytes: number): void {
  if (!cpu.protectedMode || cpu.v86) {
    const eip = cpu.pop();
    const cs = cpu.pop();
    cpu.loadRealSegment(CS, cs);
    cpu.eip = eip >>> 0;
    cpu.sp = cpu.sp + immBytes;
    return;
  }
  cpu.unsupported('protected-mode far returns are not implemented yet');
}
