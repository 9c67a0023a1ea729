/** The CPU's hooks for monitors: handler table, event interception, charged accounting. */
import { describe, expect, it } from 'vitest';
import { accountCycles } from '../../src/machine/accounting.js';
import type { Cpu } from '../../src/machine/cpu/cpu.js';
import { EventKind } from '../../src/machine/cpu/interrupts.js';
import { HANDLERS, type Handler } from '../../src/machine/cpu/op-table.js';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { createMonitor } from '../../src/vmm/index.js';

const profile = loadProfile().profile;
// nop; nop; int3; mov al, 1; out 0xf4, al
const CODE = [0x90, 0x90, 0xcc, 0xb0, 0x01, 0xe6, 0xf4];

function machine(): Machine {
  const m = new Machine({ memoryMiB: 1, profile });
  m.loadFlat(Uint8Array.from(CODE), 't.bin', { loadAddress: 0x1000 });
  return m;
}

describe('CPU hooks for monitors', () => {
  it('dispatches through the CPU\'s own table; an overlay keeps the JIT (which calls the wrapped entries)', () => {
    const m = machine();
    expect(m.cpu.table).toBe(HANDLERS);
    expect(m.cpu.jitEnabled).toBe(true);
    let nops = 0;
    const overlay: Handler[] = HANDLERS.slice();
    const nop = HANDLERS[0x290]!;
    overlay[0x290] = (c: Cpu) => { nops++; nop(c); };
    m.cpu.setTable(overlay);
    expect(m.cpu.jitEnabled).toBe(true);
    // Skip the INT3 (no IDT): a monitor that consumes #BP.
    m.cpu.monitor = { onEvent: (cpu, vector, _code, kind) => vector === 3 && kind === EventKind.Software };
    const o = m.run({ maxInstructions: 100 });
    expect(o.exit).toEqual({ reason: 'exit-device', code: 3 });
    expect(nops).toBe(2);
    expect(() => m.cpu.setTable(HANDLERS.slice(0, 10))).toThrow(/1024 slots/);
  });

  it('offers every event to the monitor first; false lets the CPU deliver it', () => {
    const m = machine();
    const seen: [number, number][] = [];
    m.cpu.monitor = { onEvent: (_c, vector, _code, kind) => { seen.push([vector, kind]); return false; } };
    const o = m.run({ maxInstructions: 100 });
    // Flat protected mode with the reset IDTR: INT3's gate is garbage, so delivery faults on.
    expect(seen[0]).toEqual([3, EventKind.Software]);
    expect(o.exit.reason).not.toBe('exit-device');
  });

  it('charge() adds cycles to a category and the total; guest stays the remainder', () => {
    const m = machine();
    m.cpu.monitor = { onEvent: (cpu, vector) => { cpu.charge('exit:test', 1000); return vector === 3; } };
    const o = m.run({ maxInstructions: 100 });
    const a = accountCycles(m.cpu);
    expect(a.categories['exit:test']).toEqual({ cycles: 1000, count: 1 });
    expect(Object.values(a.categories).reduce((s, c) => s + c.cycles, 0)).toBe(o.cycles);
    const n = machine();
    n.cpu.monitor = { onEvent: (_c, vector) => vector === 3 };
    n.run({ maxInstructions: 100 });
    expect(o.cycles - n.cpu.cycles).toBe(1000);
    expect(a.categories.guest!.cycles).toBe(accountCycles(n.cpu).categories.guest!.cycles);
    expect(() => m.cpu.charge('x', -1)).toThrow(/non-negative integer/);
    m.cpu.charge('guest', 5);
    expect(() => accountCycles(m.cpu)).toThrow(/cannot be charged/);
  });

  it('native attaches nothing', () => {
    const m = machine();
    const mon = createMonitor('native');
    mon.attach(m);
    expect(m.cpu.monitor).toBeNull();
    expect(m.cpu.table).toBe(HANDLERS);
    expect(mon.stats()).toEqual({});
    expect(() => createMonitor('vmx')).toThrow(/unknown mode "vmx"/);
  });
});
