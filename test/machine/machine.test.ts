import { describe, expect, it } from 'vitest';
import { FAULT } from '../../src/machine/cpu/cpu.js';
import { PIT_HZ } from '../../src/machine/devices/pit.js';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { buildElf32, cat, multibootHeader } from '../guest/elf-writer.js';

const profile = loadProfile('p6-provisional').profile;

function flat32(code: number[], max = 10_000) {
  const m = new Machine({ profile });
  m.loadFlat(Uint8Array.from(code), 'test.bin', { loadAddress: 0x100000 });
  return { m, o: m.run({ maxInstructions: max }) };
}

/**
 * Real-mode guest at 0x7C00: programs the PIC (vectors 0x20..), unmasks IRQ0, programs PIT
 * channel 0 in mode 2 with count 4096, and HLTs until its IRQ0 handler (which prints '.',
 * counts in BX and sends EOI) has run three times; then exits with BX.
 */
const TIMER_GUEST = [
  0xfa, // cli
  0xc7, 0x06, 0x80, 0x00, 0x3a, 0x7c, // mov word [0x80], 0x7c3a  (IVT[0x20].ip)
  0xc7, 0x06, 0x82, 0x00, 0x00, 0x00, // mov word [0x82], 0       (IVT[0x20].cs)
  0xb0, 0x11, 0xe6, 0x20, // ICW1
  0xb0, 0x20, 0xe6, 0x21, // ICW2: vector base 0x20
  0xb0, 0x04, 0xe6, 0x21, // ICW3
  0xb0, 0x01, 0xe6, 0x21, // ICW4
  0xb0, 0xfe, 0xe6, 0x21, // OCW1: only IRQ0
  0xb0, 0x34, 0xe6, 0x43, // PIT ch0, lobyte/hibyte, mode 2
  0xb0, 0x00, 0xe6, 0x40,
  0xb0, 0x10, 0xe6, 0x40, // count 0x1000
  0x31, 0xdb, // xor bx, bx
  0xfb, // sti
  0xf4, // loop: hlt
  0x83, 0xfb, 0x03, // cmp bx, 3
  0x72, 0xfa, // jb loop
  0x88, 0xd8, 0xe6, 0xf4, // mov al, bl; out 0xf4, al
  // handler (0x7c3a):
  0x43, // inc bx
  0xb0, 0x2e, 0xe6, 0xe9, // print '.'
  0xb0, 0x20, 0xe6, 0x20, // EOI
  0xcf, // iret
];

describe('Machine', () => {
  it('runs a flat 32-bit program: console, exit device, counters', () => {
    const { m, o } = flat32([0xb0, 0x41, 0xe6, 0xe9, 0xb0, 0x01, 0xe6, 0xf4]);
    expect(m.console.text()).toBe('A');
    expect(o.exit).toEqual({ reason: 'exit-device', code: 3 });
    expect(o.instructions).toBe(4);
    expect(o.console.bytes).toBe(1);
    // Two MOVs and two OUTs: class costs plus two port accesses, from the profile.
    const p = profile;
    expect(o.cycles).toBe(2 * p.classes.mov.value + 2 * p.classes.portIoInstruction.value + 2 * p.events.portIo.value);
  });

  it('enters a Multiboot kernel with EAX = 0x2BADB002 and EBX = the info structure', () => {
    const code = [
      0x3d, 0x02, 0xb0, 0xad, 0x2b, // cmp eax, 0x2badb002
      0x75, 0x08, // jne fail
      0xb0, 0x4d, 0xe6, 0xe9, // print 'M'
      0xb0, 0x00, 0xe6, 0xf4, // exit 0 -> code 1
      0xb0, 0x58, 0xe6, 0xe9, // fail: print 'X'
      0xb0, 0x01, 0xe6, 0xf4,
    ];
    const elf = buildElf32({ entry: 0x10000c, segments: [{ paddr: 0x100000, data: cat(multibootHeader(0x3), code) }] });
    const m = new Machine({ profile, memoryMiB: 8 });
    const r = m.loadMultiboot(elf, 'k.elf');
    expect(m.cpu.r32[3]).toBe(r.ebx);
    const o = m.run({ maxInstructions: 100 });
    expect(m.console.text()).toBe('M');
    expect(o.exit).toEqual({ reason: 'exit-device', code: 1 });
    expect(m.cpu.protectedMode).toBe(true);
  });

  it('interleaves port 0xE9 and COM1 output in one stream, in order', () => {
    const { m } = flat32([
      0xb0, 0x61, 0xe6, 0xe9, // 'a' on E9
      0x66, 0xba, 0xf8, 0x03, 0xb0, 0x55, 0xee, // mov dx, 0x3f8; mov al, 'U'; out dx, al
      0xb0, 0x62, 0xe6, 0xe9, // 'b' on E9
      0xb0, 0x00, 0xe6, 0xf4,
    ]);
    expect(m.console.text()).toBe('aUb');
  });

  it('delivers PIT timer interrupts through the PIC to a halted real-mode guest', () => {
    const m = new Machine({ profile, memoryMiB: 1 });
    m.loadFlat(Uint8Array.from(TIMER_GUEST), 'timer.bin', { loadAddress: 0x7c00, mode: 'real' });
    const o = m.run({ maxInstructions: 10_000 });
    expect(m.console.text()).toBe('...');
    expect(o.exit).toEqual({ reason: 'exit-device', code: 7 });
    expect(o.events['0x20']).toBe(3);
    expect(o.devices.timerTicks).toBe(3);
    expect(o.idleCycles).toBeGreaterThan(0);
    // The third tick is at PIT tick 3 × 4096 after the count was written.
    const hz = profile.cpu.frequencyHz.value;
    expect(o.cycles).toBeGreaterThanOrEqual(m.clock.cycleOfTick(3 * 4096, PIT_HZ));
    expect(o.cycles).toBeLessThan(Math.ceil((3 * 4096 + 100) * hz / PIT_HZ));
  });

  it('stops a CPU halted with every interrupt masked instead of spinning forever', () => {
    const guest = [...TIMER_GUEST];
    guest[guest.indexOf(0xfe)] = 0xff; // OCW1: mask IRQ0 too
    const m = new Machine({ profile, memoryMiB: 1 });
    m.loadFlat(Uint8Array.from(guest), 'masked.bin', { loadAddress: 0x7c00, mode: 'real' });
    const o = m.run({ maxInstructions: 10_000 });
    expect(o.exit.reason).toBe('halt');
    expect((o.exit as { detail: string }).detail).toMatch(/no interrupt can reach the CPU/);
    expect(o.devices.timerTicks).toBeGreaterThanOrEqual(2);
    expect(m.console.text()).toBe('');
  });

  it('is deterministic: the same run twice gives the same outcome', () => {
    const run = () => {
      const m = new Machine({ profile, memoryMiB: 1 });
      m.loadFlat(Uint8Array.from(TIMER_GUEST), 'timer.bin', { loadAddress: 0x7c00, mode: 'real' });
      return m.run({ maxInstructions: 10_000, sliceInstructions: 7 });
    };
    expect(run()).toEqual(run());
  });

  it('stops at the instruction limit', () => {
    const { o } = flat32([0xeb, 0xfe], 1000); // jmp $
    expect(o.exit.reason).toBe('instruction-limit');
    expect(o.instructions).toBe(1000);
  });

  it('reports HLT with interrupts disabled as a halt', () => {
    const { o } = flat32([0xfa, 0xf4]);
    expect(o.exit.reason).toBe('halt');
  });

  it('reports a triple fault with its detail', () => {
    const { o } = flat32([0x0f, 0x0b]); // UD2 with no IDT
    expect(o.exit.reason).toBe('triple-fault');
    expect((o.exit as { detail: string }).detail).toMatch(/#UD/);
  });

  it('reports an unsupported instruction with address, bytes and disassembly', () => {
    const m = new Machine({ profile });
    m.loadFlat(Uint8Array.from([0x0f, 0x22, 0xe0, 0x90]), 'test.bin', { loadAddress: 0x100000 });
    m.cpu.instrStart = m.cpu.eip;
    try { m.cpu.unsupported('test feature'); } catch (e) { expect(e).toBe(FAULT); }
    expect(m.outcome().exit).toEqual({ reason: 'unsupported', address: 0x100000, bytes: '0f 22 e0', disassembly: 'mov cr4,eax', detail: 'test feature' });
  });

  it('disassembles in 16-bit mode when CS is 16-bit', () => {
    const m = new Machine({ profile, memoryMiB: 1 });
    m.loadFlat(Uint8Array.from([0xb8, 0x34, 0x12]), 'test.bin', { loadAddress: 0x7c00, mode: 'real' });
    m.cpu.instrStart = m.cpu.eip;
    try { m.cpu.unsupported('x'); } catch { /* the FAULT sentinel */ }
    expect(m.outcome().exit).toMatchObject({ address: 0x7c00, bytes: 'b8 34 12', disassembly: 'mov ax,1234h' });
  });

  it('rejects an invalid memory size', () => {
    expect(() => new Machine({ profile, memoryMiB: 0 })).toThrow(/memory size/);
  });
});
