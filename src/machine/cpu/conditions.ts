import type { Cpu } from './cpu.js';
import { CF, OF, PF, SF, ZF } from './flags.js';

/**
 * Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc) against EFLAGS:
 * O, NO, B, AE, E, NE, BE, A, S, NS, P, NP, L, GE, LE, G.
 */
export function testCondition(cpu: Cpu, cc: number): boolean {
  const f = cpu.flags;
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = (f & OF) !== 0; break;
    case 1: r = (f & CF) !== 0; break;
    case 2: r = (f & ZF) !== 0; break;
    case 3: r = (f & (CF | ZF)) !== 0; break;
    case 4: r = (f & SF) !== 0; break;
    case 5: r = (f & PF) !== 0; break;
    case 6: r = ((f & SF) !== 0) !== ((f & OF) !== 0); break;
    default: r = (f & ZF) !== 0 || ((f & SF) !== 0) !== ((f & OF) !== 0); break;
  }
  return (cc & 1) !== 0 ? !r : r;
}
