import { describe, expect, it } from 'vitest';
import { EventKind } from '../../../src/machine/cpu/interrupts.js';
import { Machine } from '../../../src/machine/machine.js';
import { loadProfile, toVmmCosts } from '../../../src/profiles/index.js';
import { ExitReason } from '../../../src/vmm/hw/exit-reasons.js';
import { HwMonitor } from '../../../src/vmm/hw/hw.js';

const profile = loadProfile('skylake-2015').profile;
const costs = toVmmCosts(profile);
const EXIT = (r: number) => costs.vmExit + costs.vmEntry + costs.handlerByReason[r]!;

function run(code: number[], hw: HwMonitor | null) {
  const m = new Machine({ profile });
  m.loadFlat(Uint8Array.from(code), 'test.bin', { loadAddress: 0x100000 });
  if (hw) hw.attach(m);
  const o = m.run({ maxInstructions: 10_000 });
  return { m, o };
}

const OUT_A = [0xb0, 0x41, 0xe6, 0xe9]; // mov al, 'A'; out 0xe9, al
const EXIT_1 = [0xb0, 0x01, 0xe6, 0xf4]; // mov al, 1; out 0xf4, al
const CPUID = [0x31, 0xc0, 0x0f, 0xa2]; // xor eax, eax; cpuid

describe('HwMonitor', () => {
  it('same outcome as native; I/O and CPUID exits charged as exit + entry + handler', () => {
    const code = [...OUT_A, ...CPUID, ...EXIT_1];
    const n = run(code, null);
    const hw = new HwMonitor(costs, { paging: 'nested', vpid: true });
    const h = run(code, hw);
    expect(h.m.console.text()).toBe('A');
    expect(h.o.exit).toEqual(n.o.exit);
    expect(h.o.instructions).toBe(n.o.instructions);
    expect(hw.stats()).toMatchObject({ 'exit:io-instruction': 2, 'exit:cpuid': 1, 'tlb.transition-flushes': 0 });
    const device = Math.round(costs.devices.portIoEmulation);
    const expected = 2 * EXIT(ExitReason.IoInstruction) + EXIT(ExitReason.Cpuid) + 2 * device;
    expect(h.o.cycles - n.o.cycles).toBe(expected);
    expect(h.o.accounting.categories.device).toEqual({ cycles: 2 * device, count: 2 });
    const cat = h.o.accounting.categories;
    expect(cat['exit:io-instruction']).toEqual({ cycles: 2 * EXIT(30), count: 2 });
    expect(cat['exit:cpuid']).toEqual({ cycles: EXIT(10), count: 1 });
    const sum = Object.values(cat).reduce((s, c) => s + c.cycles, 0);
    expect(sum).toBe(h.o.accounting.total);
  });

  it('CR0 writes exit only when a host-owned bit changes against the read shadow', () => {
    const code = [
      0x0f, 0x20, 0xc0, // mov eax, cr0
      0x0f, 0x22, 0xc0, // mov cr0, eax          (no change: no exit)
      0x0d, 0x20, 0x00, 0x00, 0x00, // or eax, 0x20 (NE, host-owned)
      0x0f, 0x22, 0xc0, // mov cr0, eax          (exit; shadow updated)
      0x0f, 0x22, 0xc0, // mov cr0, eax          (same again: no exit)
      0x0d, 0x08, 0x00, 0x00, 0x00, // or eax, 8 (TS, guest-owned)
      0x0f, 0x22, 0xc0, // mov cr0, eax          (no exit)
      0x0f, 0x06, // clts                         (TS guest-owned: no exit)
      ...EXIT_1,
    ];
    const hw = new HwMonitor(costs, { paging: 'nested', vpid: true });
    const h = run(code, hw);
    expect(h.o.exit).toEqual({ reason: 'exit-device', code: 3 });
    expect(hw.stats()['exit:cr-access']).toBe(1);
    expect(hw.vmcs.cr0Shadow & 0x20).toBe(0x20);
  });

  it('pass-through MSRs do not exit, others do', () => {
    const code = [
      0xb9, 0x74, 0x01, 0x00, 0x00, // mov ecx, 0x174 (SYSENTER_CS)
      0x31, 0xc0, 0x31, 0xd2, // xor eax, eax; xor edx, edx
      0x0f, 0x30, // wrmsr   (passed through)
      0x0f, 0x32, // rdmsr   (passed through)
      ...EXIT_1,
    ];
    const hw = new HwMonitor(costs, { paging: 'nested', vpid: true });
    run(code, hw);
    expect(hw.stats()['exit:wrmsr']).toBeUndefined();
    expect(hw.stats()['exit:rdmsr']).toBeUndefined();
    expect(hw.stats()['exit:io-instruction']).toBe(1);
  });

  it('VPID off: the launch and every exit and entry flush the TLBs', () => {
    const hw = new HwMonitor(costs, { paging: 'nested', vpid: false });
    const h = run([...OUT_A, ...CPUID, ...EXIT_1], hw);
    expect(hw.stats()['tlb.transition-flushes']).toBe(1 + 2 * 3);
    expect(h.o.tlb.dtlb.flushes).toBeGreaterThanOrEqual(7);
  });

  it('exceptions in the bitmap and external interrupts exit; INT n and #GP do not', () => {
    const m = new Machine({ profile });
    m.loadFlat(Uint8Array.from(EXIT_1), 'test.bin', { loadAddress: 0x100000 });
    const hw = new HwMonitor(costs, { paging: 'nested', vpid: true });
    hw.attach(m);
    const before = m.cpu.cycles;
    expect(hw.onEvent(m.cpu, 6, -1, EventKind.Fault)).toBe(false); // #UD: charged, then delivered
    expect(hw.onEvent(m.cpu, 13, 0, EventKind.Fault)).toBe(false);
    expect(hw.onEvent(m.cpu, 0x80, -1, EventKind.Software)).toBe(false);
    expect(hw.onEvent(m.cpu, 0x20, -1, EventKind.External)).toBe(false);
    expect(hw.stats()).toMatchObject({ 'exit:exception-nmi': 1, 'exit:external-interrupt': 1 });
    expect(m.cpu.cycles - before).toBe(EXIT(0) + EXIT(1));
  });

  it('refuses shadow paging without monitor memory for the shadow tables, and a second monitor', () => {
    const m = new Machine({ profile });
    m.loadFlat(Uint8Array.from(EXIT_1), 'test.bin', { loadAddress: 0x100000 });
    expect(() => new HwMonitor(costs, { paging: 'shadow', vpid: true }).attach(m)).toThrow(/shadow needs monitor memory/);
    new HwMonitor(costs, { paging: 'nested', vpid: true }).attach(m);
    expect(() => new HwMonitor(costs, { paging: 'nested', vpid: true }).attach(m)).toThrow(/already/);
  });

  it('nested paging: builds the EPT in monitor memory and installs it where the CPU has the hook', () => {
    const m = new Machine({ profile, memoryMiB: 8, monitorMiB: 1 });
    m.loadFlat(Uint8Array.from(EXIT_1), 'test.bin', { loadAddress: 0x100000 });
    Object.defineProperty(m.cpu, 'pageWalker', { value: null, writable: true, configurable: true });
    const hw = new HwMonitor({ ...costs, nestedWalkCacheEntries: 0 }, { paging: 'nested', vpid: true });
    hw.attach(m);
    expect(hw.nested).not.toBeNull();
    expect(hw.walkModelled).toBe(true);
    expect((m.cpu as unknown as { pageWalker: unknown }).pageWalker).toBe(hw.nested);
    expect(hw.vmcs.eptp & ~0xfff).toBe(8 * 1024 * 1024);
    // An access beyond guest RAM is an EPT-violation exit, charged like any other.
    const cpu = m.cpu;
    cpu.mem.write32(0x1000, 0x2000 | 7);
    cpu.mem.write32(0x2000, 0x00900000 | 7); // lin 0 → gpa 9 MiB: past the guest's 8 MiB
    cpu.cr3 = 0x1000; cpu.cr0 |= 0x80000000; cpu.updatePaging();
    const c0 = cpu.cycles;
    hw.nested!.walk(cpu, 0x10, 0, false, cpu.dtlb);
    // EPT references: 4 (PD page) + 4 (PT page) + 3 (the final walk stops at the EPT PDE
    // of the unmapped 2 MiB region 8-10 MiB).
    expect(hw.stats()).toMatchObject({ 'exit:ept-violation': 1, 'ept.violations': 1, 'ept.walks': 1, 'ept.guest-refs': 2, 'ept.ept-refs': 11, 'ept.2d-walk-modelled': 1 });
    expect(cpu.cycles - c0).toBe(EXIT(48) + 13 * cpu.cost.walkRef);
  });

  it('without the CPU hook, the run record says the 2-D walk is not modelled', () => {
    const m = new Machine({ profile, monitorMiB: 1 });
    m.loadFlat(Uint8Array.from(EXIT_1), 'test.bin', { loadAddress: 0x100000 });
    // The Cpu has the hook (`pageWalker`); take it away to model a CPU without it.
    delete (m.cpu as unknown as { pageWalker?: unknown }).pageWalker;
    const hw = new HwMonitor(costs, { paging: 'nested', vpid: true });
    hw.attach(m);
    expect(hw.stats()['ept.2d-walk-modelled']).toBe(0);
  });
});
