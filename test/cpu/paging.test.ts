import { describe, expect, it } from 'vitest';
import { DS, EAX, EBX, ECX, EDX, Vec } from '../../src/machine/cpu/cpu.js';
import {
  bytes, enterUser, faultOf, haltedIn, KCODE, PD, protectedMachine, pteAddr, stackDword, UCODE,
} from './system-harness.js';

const PAGE = 0x400000 + 0x5000; // a page in the second page table

describe('page faults', () => {
  it('error codes and CR2 for not-present, user/supervisor and read/write cases', () => {
    const cpu = protectedMachine({ paging: true });
    const pte = pteAddr(PAGE);
    // Not present: supervisor read 0, supervisor write 2, user read 4, user write 6.
    cpu.mem.write32(pte, PAGE); // P = 0
    expect(faultOf(cpu, () => cpu.readMem32(DS, PAGE + 8))).toEqual([Vec.PF, 0]);
    expect(cpu.cr2).toBe(PAGE + 8);
    expect(faultOf(cpu, () => cpu.writeMem8(DS, PAGE + 9, 1))).toEqual([Vec.PF, 2]);
    cpu.cpl = 3;
    expect(faultOf(cpu, () => cpu.readMem8(DS, PAGE))).toEqual([Vec.PF, 4]);
    expect(faultOf(cpu, () => cpu.writeMem8(DS, PAGE + 0xfff, 1))).toEqual([Vec.PF, 6]);
    expect(cpu.cr2).toBe(PAGE + 0xfff);
    // Supervisor page, user access: protection violation (P = 1).
    cpu.mem.write32(pte, PAGE | 3);
    cpu.invalidatePage(PAGE);
    expect(faultOf(cpu, () => cpu.readMem8(DS, PAGE))).toEqual([Vec.PF, 5]);
    // Read-only user page: user reads work, user writes fault with 7.
    cpu.mem.write32(pte, PAGE | 5);
    cpu.invalidatePage(PAGE);
    cpu.mem.write32(PAGE, 0x1234);
    expect(cpu.readMem32(DS, PAGE)).toBe(0x1234);
    expect(faultOf(cpu, () => cpu.writeMem32(DS, PAGE, 1))).toEqual([Vec.PF, 7]);
    // The page directory's U/S and R/W bits count too.
    cpu.mem.write32(pte, PAGE | 7);
    cpu.mem.write32(PD + 4, cpu.mem.read32(PD + 4) & ~4);
    cpu.invalidatePage(PAGE);
    expect(faultOf(cpu, () => cpu.readMem8(DS, PAGE))).toEqual([Vec.PF, 5]);
  });

  it('supervisor writes to read-only pages succeed unless CR0.WP', () => {
    const cpu = protectedMachine({ paging: true });
    cpu.mem.write32(pteAddr(PAGE), PAGE | 5);
    cpu.writeMem32(DS, PAGE, 42); // WP = 0
    expect(cpu.mem.read32(PAGE)).toBe(42);
    // MOV EAX,CR0; OR EAX,0x10000; MOV CR0,EAX  (the TLB entry allowing the write must go)
    bytes(cpu, KCODE, [0x0f, 0x20, 0xc0, 0x0d, 0, 0, 1, 0, 0x0f, 0x22, 0xc0]);
    cpu.run(3);
    expect(cpu.cr0 & 0x10000).toBe(0x10000);
    expect(faultOf(cpu, () => cpu.writeMem32(DS, PAGE, 43))).toEqual([Vec.PF, 3]);
  });

  it('a ring-3 write to a supervisor page reaches the #PF handler with the error code and CR2', () => {
    const cpu = protectedMachine({ paging: true });
    cpu.mem.write32(pteAddr(PAGE), PAGE | 3);
    bytes(cpu, UCODE, [0x89, 0x03]); // MOV [EBX],EAX
    enterUser(cpu);
    cpu.r32[EBX] = PAGE + 0x10;
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.PF);
    expect(stackDword(cpu, 0)).toBe(7);
    expect(stackDword(cpu, 1)).toBe(UCODE);
    expect(cpu.cr2).toBe(PAGE + 0x10);
  });
});

describe('accessed and dirty bits', () => {
  it('a read sets A in the PDE and PTE, a write sets D', () => {
    const cpu = protectedMachine({ paging: true });
    const pte = pteAddr(PAGE);
    cpu.mem.write32(pte, PAGE | 7);
    cpu.mem.write32(PD + 4, cpu.mem.read32(PD + 4) & ~0x60);
    cpu.readMem32(DS, PAGE);
    expect(cpu.mem.read32(pte) & 0x60).toBe(0x20);
    expect(cpu.mem.read32(PD + 4) & 0x20).toBe(0x20);
    cpu.writeMem32(DS, PAGE, 1); // TLB hit but not dirty: the walk sets D
    expect(cpu.mem.read32(pte) & 0x60).toBe(0x60);
    expect(cpu.mem.read32(PD + 4) & 0x40).toBe(0); // PDEs of 4 KiB pages have no D bit
  });
});

describe('4 MiB pages', () => {
  it('with CR4.PSE a PDE with PS maps 4 MiB; A/D are set in the PDE', () => {
    const cpu = protectedMachine({ paging: true });
    cpu.cr4 |= 0x10;
    // Map linear 0x00c00000-0x00ffffff (PDE 3) to physical 0x00400000.
    cpu.mem.write32(PD + 12, 0x400000 | 0x87);
    cpu.flushTlb(false);
    cpu.mem.write32(0x400000 + 0x12344, 0xcafe);
    expect(cpu.readMem32(DS, 0xc12344)).toBe(0xcafe);
    expect(cpu.mem.read32(PD + 12) & 0x60).toBe(0x20);
    cpu.writeMem32(DS, 0xfffff0, 7);
    expect(cpu.mem.read32(0x7ffff0)).toBe(7);
    expect(cpu.mem.read32(PD + 12) & 0x60).toBe(0x60);
    // Reserved bits 12-21 in a 4 MiB PDE: #PF with RSVD and P set.
    cpu.mem.write32(PD + 8, 0x400000 | 0x1000 | 0x83);
    expect(faultOf(cpu, () => cpu.readMem8(DS, 0x800000))).toEqual([Vec.PF, 9]);
  });

  it('without CR4.PSE the PS bit is ignored (the PDE points to a page table)', () => {
    const cpu = protectedMachine({ paging: true });
    const pde = cpu.mem.read32(PD + 4);
    cpu.mem.write32(PD + 4, pde | 0x80);
    cpu.mem.write32(PAGE, 99);
    expect(cpu.readMem32(DS, PAGE)).toBe(99);
  });

  it('INVLPG of any address in a 4 MiB page drops all of its cached pieces', () => {
    const cpu = protectedMachine({ paging: true });
    cpu.cr4 |= 0x10;
    cpu.mem.write32(PD + 12, 0x400000 | 0x87);
    cpu.flushTlb(false);
    cpu.mem.write32(0x400000, 1); cpu.mem.write32(0x500000, 2);
    cpu.mem.write32(0x800000, 3); cpu.mem.write32(0x900000, 4);
    expect(cpu.readMem32(DS, 0xc00000)).toBe(1);
    expect(cpu.readMem32(DS, 0xd00000)).toBe(2);
    cpu.mem.write32(PD + 12, 0x800000 | 0x87);
    expect(cpu.readMem32(DS, 0xd00000)).toBe(2); // stale TLB, as on hardware
    cpu.invalidatePage(0xc00000);
    expect(cpu.readMem32(DS, 0xd00000)).toBe(4);
    expect(cpu.readMem32(DS, 0xc00000)).toBe(3);
  });
});

describe('TLB maintenance', () => {
  it('INVLPG (the instruction) drops a stale translation', () => {
    const cpu = protectedMachine({ paging: true });
    cpu.mem.write32(PAGE, 0x1111);
    cpu.mem.write32(PAGE + 0x1000, 0x2222);
    // MOV EAX,[EBX]; MOV ECX,[EBX]; INVLPG [EBX]; MOV EDX,[EBX]
    bytes(cpu, KCODE, [0x8b, 0x03, 0x8b, 0x0b, 0x0f, 0x01, 0x3b, 0x8b, 0x13]);
    cpu.r32[EBX] = PAGE;
    cpu.run(1);
    cpu.mem.write32(pteAddr(PAGE), (PAGE + 0x1000) | 7);
    cpu.run(3);
    expect(cpu.r32[EAX]).toBe(0x1111);
    expect(cpu.r32[ECX]).toBe(0x1111);
    expect(cpu.r32[EDX]).toBe(0x2222);
  });

  it('MOV CR3 flushes non-global entries; global ones survive with CR4.PGE', () => {
    const cpu = protectedMachine({ paging: true });
    cpu.cr4 |= 0x80; // PGE
    const G = PAGE + 0x2000;
    cpu.mem.write32(pteAddr(PAGE), PAGE | 7);
    cpu.mem.write32(pteAddr(G), G | 0x107);
    cpu.mem.write32(PAGE, 1); cpu.mem.write32(G, 2);
    cpu.mem.write32(PAGE + 0x1000, 3);
    expect(cpu.readMem32(DS, PAGE)).toBe(1);
    expect(cpu.readMem32(DS, G)).toBe(2);
    cpu.mem.write32(pteAddr(PAGE), (PAGE + 0x1000) | 7);
    cpu.mem.write32(pteAddr(G), (PAGE + 0x1000) | 0x107);
    // MOV EAX,CR3; MOV CR3,EAX
    bytes(cpu, KCODE, [0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8]);
    cpu.run(2);
    expect(cpu.readMem32(DS, PAGE)).toBe(3);
    expect(cpu.readMem32(DS, G)).toBe(2); // global: still the old translation
  });
});
