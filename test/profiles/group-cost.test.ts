import { describe, expect, it } from 'vitest';
import { Cpu } from '../../src/machine/cpu/cpu.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';
import { loadProfile, toCostTable } from '../../src/profiles/index.js';

/** Cycles charged for one 32-bit instruction (bytes at 0x1000, flat mode). */
function cyclesOf(bytes: number[], setup: (cpu: Cpu) => void = () => {}): number {
  const { profile } = loadProfile('p6-provisional');
  const mem = new PhysicalMemory(1 << 20);
  const tlb = new Tlb({ sets: 16, ways: 4 });
  const cpu = new Cpu(mem, new PortBus(), toCostTable(profile), { itlb: tlb, dtlb: tlb });
  mem.u8.set(bytes, 0x1000);
  cpu.resetFlat32(0x1000);
  setup(cpu);
  cpu.run(1);
  expect(cpu.instructions).toBe(1);
  return cpu.cycles;
}

describe('group opcodes are charged per member', () => {
  const { profile } = loadProfile('p6-provisional');

  it('DIV r32 costs the profile div32 figure, NOT r32 the ALU figure', () => {
    const div = cyclesOf([0xf7, 0xf3], (cpu) => { cpu.r32[3] = 7; }); // div ebx
    const not = cyclesOf([0xf7, 0xd3]); // not ebx
    expect(not).toBe(profile.classes.aluReg.value);
    expect(div).toBe(profile.events.div32.value);
  });

  it('MUL r8 costs the mul class figure', () => {
    expect(cyclesOf([0xf6, 0xe3])).toBe(profile.classes.mul.value); // mul bl
  });

  it('CALL r/m32 costs the call class figure plus a taken branch', () => {
    const c = cyclesOf([0xff, 0xd0], (cpu) => { cpu.r32[0] = 0x2000; cpu.r32[4] = 0x8000; }); // call eax
    expect(c).toBe(profile.classes.call.value + profile.events.branchTaken.value);
  });
});
