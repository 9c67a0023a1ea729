import { describe, expect, it } from 'vitest';
import { EAX, EBX, ECX, EDX, Vec } from '../../src/machine/cpu/cpu.js';
import { bytes, enterUser, haltedIn, KCODE, protectedMachine, UCODE } from './system-harness.js';

function regsAfter(code: number[], setup: (cpu: ReturnType<typeof protectedMachine>) => void = () => {}, n = 1) {
  const cpu = protectedMachine();
  bytes(cpu, KCODE, code);
  setup(cpu);
  cpu.run(n);
  return cpu;
}

describe('CPUID', () => {
  it('leaf 0: maximum leaf and the GenuineIntel vendor string', () => {
    const cpu = regsAfter([0x0f, 0xa2], (c) => { c.r32[EAX] = 0; });
    expect(cpu.r32[EAX]).toBe(2);
    const s = [cpu.r32[EBX]!, cpu.r32[EDX]!, cpu.r32[ECX]!]
      .map((v) => String.fromCharCode(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff)).join('');
    expect(s).toBe('GenuineIntel');
  });

  it('leaf 1: a P6 family signature and exactly the implemented features', () => {
    const cpu = regsAfter([0x0f, 0xa2], (c) => { c.r32[EAX] = 1; });
    expect((cpu.r32[EAX]! >> 8) & 0xf).toBe(6);
    const edx = cpu.r32[EDX]!;
    const bit = (n: number): boolean => ((edx >>> n) & 1) === 1;
    expect(bit(0)).toBe(false); // FPU
    expect(bit(3)).toBe(true); // PSE
    expect(bit(4)).toBe(true); // TSC
    expect(bit(5)).toBe(true); // MSR
    expect(bit(6)).toBe(false); // PAE
    expect(bit(8)).toBe(true); // CX8
    expect(bit(11)).toBe(true); // SEP
    expect(bit(13)).toBe(true); // PGE
    expect(bit(15)).toBe(true); // CMOV
    expect(bit(23)).toBe(false); // MMX
    expect(bit(25)).toBe(false); // SSE
  });
});

describe('time-stamp counter and MSRs', () => {
  it('RDTSC is monotonic and identical across two identical runs', () => {
    const run = (): number[] => {
      // RDTSC; MOV ESI,EAX; NOP; NOP; RDTSC
      const cpu = regsAfter([0x0f, 0x31, 0x89, 0xc6, 0x90, 0x90, 0x0f, 0x31], () => {}, 5);
      return [cpu.r32[6]! >>> 0, cpu.r32[EAX]! >>> 0, cpu.r32[EDX]!];
    };
    const a = run(), b = run();
    expect(a[1]).toBeGreaterThan(a[0]!);
    expect(a).toEqual(b);
  });

  it('CR4.TSD makes RDTSC privileged', () => {
    const cpu = protectedMachine();
    cpu.cr4 |= 4;
    bytes(cpu, UCODE, [0x0f, 0x31]);
    enterUser(cpu);
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.GP);
  });

  it('WRMSR/RDMSR: SYSENTER MSRs round-trip, the TSC can be set, unknown MSRs #GP(0)', () => {
    // MOV ECX,0x175; MOV EAX,0x12345678; WRMSR; XOR EAX,EAX... use RDMSR into EAX again.
    const cpu = regsAfter([
      0xb9, 0x75, 0x01, 0, 0, 0xb8, 0x78, 0x56, 0x34, 0x12, 0x0f, 0x30, // WRMSR 0x175
      0xb8, 0, 0, 0, 0, 0x0f, 0x32, // MOV EAX,0; RDMSR
    ], () => {}, 5);
    expect(cpu.sysenterEsp).toBe(0x12345678);
    expect(cpu.r32[EAX]).toBe(0x12345678);
    expect(cpu.r32[EDX]).toBe(0);

    const c2 = regsAfter([0x0f, 0x30, 0x0f, 0x31], (c) => { c.r32[ECX] = 0x10; c.r32[EAX] = 1000; c.r32[EDX] = 1; }, 2);
    expect(c2.r32[EDX]).toBe(1);
    expect(c2.r32[EAX]! >>> 0).toBeGreaterThanOrEqual(1000);
    expect(c2.r32[EAX]! >>> 0).toBeLessThan(1010);

    const c3 = regsAfter([0x0f, 0x32], (c) => { c.r32[ECX] = 0x12345; }, 5);
    expect(haltedIn(c3)).toBe(Vec.GP);
  });
});
