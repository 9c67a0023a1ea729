import { describe, expect, it } from 'vitest';
import { CS, EAX, ECX, EDX, EDI, ES, ESI, ESP, Vec } from '../../src/machine/cpu/cpu.js';
import { IOPL } from '../../src/machine/cpu/flags.js';
import { bytes, enterUser, haltedIn, KCODE, newCpu, protectedMachine, stackDword, TSS, UCODE } from './system-harness.js';

/** A TSS with an I/O bitmap at 0x68 covering every port, all permitted except `denied`. */
function withBitmap(denied: number[], mapBytes = 8193): ReturnType<typeof protectedMachine> {
  const cpu = protectedMachine({ tssLimit: 0x68 + mapBytes - 1, ioMapOffset: 0x68 });
  for (let i = 0; i < mapBytes; i++) cpu.mem.write8(TSS + 0x68 + i, i === 8192 ? 0xff : 0);
  for (const p of denied) cpu.mem.write8(TSS + 0x68 + (p >> 3), cpu.mem.read8(TSS + 0x68 + (p >> 3)) | (1 << (p & 7)));
  return cpu;
}

describe('IN/OUT privilege', () => {
  it('CPL 0 always has access; writes reach the port bus', () => {
    const cpu = protectedMachine();
    const seen: [number, number][] = [];
    cpu.io.registerWrite8(0x80, (p, v) => seen.push([p, v]));
    bytes(cpu, KCODE, [0xb0, 0x5a, 0xe6, 0x80]); // MOV AL,0x5a; OUT 0x80,AL
    cpu.run(2);
    expect(seen).toEqual([[0x80, 0x5a]]);
  });

  it('CPL 3 with IOPL 0 consults the TSS bitmap: permitted ports work, denied ones #GP(0)', () => {
    const cpu = withBitmap([0x80]);
    const seen: number[] = [];
    cpu.io.registerWrite8(0x60, (_p, v) => seen.push(v));
    cpu.io.registerRead8(0x7f, () => 0x42);
    // OUT 0x60,AL; IN AL,0x7f; OUT 0x80,AL
    bytes(cpu, UCODE, [0xe6, 0x60, 0xe4, 0x7f, 0xe6, 0x80]);
    enterUser(cpu);
    cpu.r32[EAX] = 7;
    cpu.run(10);
    expect(seen).toEqual([7]);
    expect(cpu.r32[EAX]! & 0xff).toBe(0x42);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 0)).toBe(0);
    expect(stackDword(cpu, 1)).toBe(UCODE + 4);
  });

  it('every bit of a multi-byte access is checked', () => {
    const cpu = withBitmap([0x81]);
    bytes(cpu, UCODE, [0x66, 0xe5, 0x80]); // IN AX,0x80 touches 0x80 and 0x81
    enterUser(cpu);
    cpu.run(10);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    const c2 = withBitmap([0x84]);
    bytes(c2, UCODE, [0xe5, 0x80, 0xf4]); // IN EAX,0x80: 0x80-0x83 permitted; then HLT (#GP at CPL 3)
    enterUser(c2);
    c2.run(10);
    expect(stackDword(c2, 1)).toBe(UCODE + 2);
  });

  it('a bitmap beyond the TSS limit denies (#GP), and a TSS without a bitmap denies everything', () => {
    const cpu = withBitmap([], 16); // covers ports 0-127 only
    bytes(cpu, UCODE, [0x66, 0xba, 0x00, 0x04, 0xee]); // MOV DX,0x400; OUT DX,AL
    enterUser(cpu);
    cpu.run(10);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 1)).toBe(UCODE + 4);
    const c2 = protectedMachine(); // limit 0x67
    bytes(c2, UCODE, [0xec]);
    enterUser(c2);
    c2.run(10);
    expect(haltedIn(c2)).toBe(Vec.GP);
  });

  it('IOPL 3 grants CPL 3 access without the bitmap', () => {
    const cpu = protectedMachine();
    cpu.io.registerRead8(0x71, () => 0x99);
    bytes(cpu, UCODE, [0xe4, 0x71]);
    enterUser(cpu);
    cpu.flags |= IOPL;
    cpu.run(1);
    expect(cpu.r32[EAX]! & 0xff).toBe(0x99);
  });
});

describe('INS/OUTS', () => {
  it('REP OUTSB and REP INSB move bytes between memory and a port, charging io per access', () => {
    const cpu = newCpu();
    const out: number[] = [];
    let next = 0x10;
    cpu.io.registerWrite8(0x3f8, (_p, v) => out.push(v));
    cpu.io.registerRead8(0x3f8, () => next++);
    (cpu as unknown as { cost: { io: number } }).cost = { ...cpu.cost, io: 5 };
    cpu.loadRealSegment(CS, 0x100);
    cpu.eip = 0;
    cpu.r16[ESP << 1] = 0x8000;
    bytes(cpu, 0x3000, [1, 2, 3, 4]);
    // REP OUTSB; MOV CX,3; REP INSB
    bytes(cpu, 0x1000, [0xf3, 0x6e, 0xb9, 0x03, 0x00, 0xf3, 0x6c]);
    cpu.r16[ESI << 1] = 0x3000;
    cpu.r16[EDI << 1] = 0x4000;
    cpu.r16[ECX << 1] = 4;
    cpu.r16[EDX << 1] = 0x3f8;
    cpu.loadRealSegment(ES, 0);
    const c0 = cpu.cycles;
    cpu.run(3);
    expect(out).toEqual([1, 2, 3, 4]);
    expect([cpu.mem.read8(0x4000), cpu.mem.read8(0x4001), cpu.mem.read8(0x4002)]).toEqual([0x10, 0x11, 0x12]);
    expect(cpu.r16[ECX << 1]).toBe(0);
    expect(cpu.r16[EDI << 1]).toBe(0x4003);
    expect(cpu.cycles - c0).toBeGreaterThanOrEqual(7 * 5);
  });

  it('INS checks the destination before reading the port (no lost input on a fault)', () => {
    const cpu = withBitmap([]);
    let reads = 0;
    cpu.io.registerRead8(0x60, () => { reads++; return 1; });
    bytes(cpu, UCODE, [0x6c]); // INSB to ES:EDI with ES null
    enterUser(cpu);
    cpu.setNullSegment(ES, 0);
    cpu.r32[EDX] = 0x60;
    cpu.r32[EDI] = 0x1000;
    cpu.run(10);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(reads).toBe(0);
  });
});
