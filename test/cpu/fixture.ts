// A tiny machine for instruction tests: real-mode code at 0100:0000 (linear 0x1000), stack
// 0000:8000, or 32-bit flat code at 0x1000 with ESP = 0x8000.
import { Cpu, CS, ESP } from '../../src/machine/cpu/cpu.js';
import { unitCostTable, type CostTable } from '../../src/machine/cpu/cost-table.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';

export const CODE = 0x1000;
/** Real-mode exception handlers: vector v lands at 0000:(HANDLERS + 4v), a `JMP $` loop. */
export const HANDLERS = 0x600;

/** A CPU with 1 MiB of RAM and one TLB for both instructions and data. */
export function machine(cost: CostTable = unitCostTable()): Cpu {
  const tlb = new Tlb({ sets: 16, ways: 4 });
  return new Cpu(new PhysicalMemory(1 << 20), new PortBus(), cost, { itlb: tlb, dtlb: tlb });
}

/** Real mode, `bytes` at CS:IP = 0100:0000, an IVT whose handlers are recognisable loops. */
export function real(bytes: number[], cost?: CostTable): Cpu {
  const cpu = machine(cost);
  for (let v = 0; v < 32; v++) {
    cpu.mem.write16(v * 4, HANDLERS + v * 4);
    cpu.mem.write16(v * 4 + 2, 0);
    cpu.mem.write16(HANDLERS + v * 4, 0xfeeb);
  }
  cpu.loadRealSegment(CS, CODE >> 4);
  cpu.eip = 0;
  cpu.r16[ESP << 1] = 0x8000;
  cpu.mem.u8.set(bytes, CODE);
  return cpu;
}

/** 32-bit flat protected mode (paging off), code at 0x1000, ESP = 0x8000. */
export function flat(bytes: number[]): Cpu {
  const cpu = machine();
  cpu.resetFlat32(CODE);
  cpu.r32[ESP] = 0x8000;
  cpu.mem.u8.set(bytes, CODE);
  return cpu;
}

/** The vector of the exception a real-mode test machine took, or -1. */
export function vectorTaken(cpu: Cpu): number {
  if (cpu.segSel[CS] !== 0 || cpu.eip < HANDLERS || cpu.eip >= HANDLERS + 128) return -1;
  return (cpu.eip - HANDLERS) >> 2;
}
