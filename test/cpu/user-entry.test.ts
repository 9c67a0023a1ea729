// Cpu.onFirstUserEntry: the hook behind RunOutcome.userStart (the first load of CS at CPL 3).
import { describe, expect, it } from 'vitest';
import { ECX, EDX } from '../../src/machine/cpu/cpu.js';
import { bytes, KCODE, KCS, protectedMachine, UCODE, USTACK_TOP } from './system-harness.js';

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** Kernel: 3 NOPs, then an IRET frame to ring 3 at UCODE; user: NOP, SYSENTER; kernel: SYSEXIT. */
function machine(jit: boolean): { cpu: ReturnType<typeof protectedMachine>; calls: { instructions: number; cpl: number; cs: number }[] } {
  const cpu = protectedMachine();
  cpu.jitEnabled = jit;
  bytes(cpu, KCODE, [0x90, 0x90, 0x90, 0x6a, 0x23, 0x68, ...le32(USTACK_TOP), 0x9c, 0x6a, 0x1b, 0x68, ...le32(UCODE), 0xcf]);
  bytes(cpu, UCODE, [0x90, 0x0f, 0x34, 0xf4]);
  cpu.sysenterCs = KCS; cpu.sysenterEsp = 0x180000; cpu.sysenterEip = KCODE + 0x300;
  bytes(cpu, KCODE + 0x300, [0x0f, 0x35]);
  cpu.r32[ECX] = USTACK_TOP - 0x40; cpu.r32[EDX] = UCODE + 3;
  const calls: { instructions: number; cpl: number; cs: number }[] = [];
  cpu.onFirstUserEntry = () => { calls.push({ instructions: cpu.instructions, cpl: cpu.cpl, cs: cpu.segSel[1]! }); };
  return { cpu, calls };
}

describe('the first entry to user mode', () => {
  for (const jit of [false, true]) {
    it(`is reported once, at the IRET to ring 3, before it retires (jit ${jit ? 'on' : 'off'})`, () => {
      const { cpu, calls } = machine(jit);
      cpu.run(8);
      expect(cpu.cpl).toBe(0);
      expect(calls).toEqual([]);
      cpu.run(1); // the IRET
      expect(cpu.cpl).toBe(3);
      expect(calls).toEqual([{ instructions: 8, cpl: 3, cs: 0x1b }]);
      expect(cpu.onFirstUserEntry).toBeNull();
      // NOP, SYSENTER (ring 0), SYSEXIT (ring 3 again): not a first entry any more.
      cpu.run(3);
      expect(cpu.cpl).toBe(3);
      expect(cpu.eip).toBe(UCODE + 3);
      expect(calls).toHaveLength(1);
    });
  }

  it('SYSEXIT is a first entry too', () => {
    const { cpu, calls } = machine(false);
    cpu.eip = KCODE + 0x300;
    cpu.run(1);
    expect(cpu.cpl).toBe(3);
    expect(calls).toEqual([{ instructions: 0, cpl: 3, cs: KCS + 16 + 3 }]);
  });

  it('a far JMP that reloads CS at CPL 0 does not trigger it', () => {
    const { cpu, calls } = machine(false);
    bytes(cpu, KCODE + 0x400, [0xea, ...le32(KCODE + 0x410), KCS, 0]); // JMP FAR 0008:KCODE+0x410
    cpu.eip = KCODE + 0x400;
    cpu.run(1);
    expect(cpu.eip).toBe(KCODE + 0x410);
    expect(cpu.cpl).toBe(0);
    expect(calls).toEqual([]);
    expect(cpu.onFirstUserEntry).not.toBeNull();
  });
});
