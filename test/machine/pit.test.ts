import { describe, expect, it } from 'vitest';
import { Clock } from '../../src/machine/clock.js';
import { Pit, PIT_HZ } from '../../src/machine/devices/pit.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { advanceTo, fakeCpu } from './fake-cpu.js';

/** A PIT whose clock runs at `cpuHz`; records IRQ0 level changes as [cycle, level]. */
function setup(cpuHz = PIT_HZ) {
  const cpu = fakeCpu();
  const clock = new Clock(cpu, cpuHz);
  const io = new PortBus();
  const irq: [number, boolean][] = [];
  const pit = new Pit(io, clock, (l) => irq.push([cpu.cycles, l]));
  return { cpu, clock, io, pit, irq, rises: () => irq.filter(([, l]) => l).map(([c]) => c) };
}

function program(io: PortBus, channel: number, mode: number, count: number): void {
  io.out8(0x43, (channel << 6) | 0x30 | (mode << 1));
  io.out8(0x40 + channel, count & 0xff);
  io.out8(0x40 + channel, count >> 8);
}

describe('8254 PIT', () => {
  it('mode 2 raises IRQ0 every N ticks, at exact tick boundaries', () => {
    const { io, cpu, rises } = setup();
    cpu.cycles = 100;
    program(io, 0, 2, 1000);
    advanceTo(cpu, 100 + 3500);
    expect(rises()).toEqual([1100, 2100, 3100]);
  });

  it('derives ticks exactly from a 500 MHz cycle counter', () => {
    const { io, cpu, clock, rises } = setup(500_000_000);
    program(io, 0, 2, 11932); // ~100 Hz
    advanceTo(cpu, 500_000_000); // one second
    const r = rises();
    expect(r.length).toBe(Math.floor(PIT_HZ / 11932));
    // Each rise is the first cycle of tick k × 11932.
    r.forEach((c, k) => expect(c).toBe(clock.cycleOfTick((k + 1) * 11932, PIT_HZ)));
  });

  it('mode 0 raises the output once at terminal count and reads the count down', () => {
    const { io, cpu, rises, pit } = setup();
    program(io, 0, 0, 500);
    advanceTo(cpu, 200);
    io.out8(0x43, 0x00); // latch channel 0
    const lo = io.in8(0x40), hi = io.in8(0x40);
    expect(lo | (hi << 8)).toBe(300);
    advanceTo(cpu, 5000);
    expect(rises()).toEqual([500]);
    expect(pit.irq0Edges).toBe(1);
  });

  it('latch holds the value until read, while the counter keeps running', () => {
    const { io, cpu } = setup();
    program(io, 0, 2, 1000);
    advanceTo(cpu, 10);
    io.out8(0x43, 0x00);
    advanceTo(cpu, 400);
    expect(io.in8(0x40) | (io.in8(0x40) << 8)).toBe(990);
    // Unlatched reads follow the counter.
    expect(io.in8(0x40) | (io.in8(0x40) << 8)).toBe(600);
  });

  it('supports LSB-only and MSB-only access', () => {
    const { io, cpu } = setup();
    io.out8(0x43, 0x00 | 0x10 | (2 << 1)); // LSB only, mode 2
    io.out8(0x40, 200);
    advanceTo(cpu, 50);
    expect(io.in8(0x40)).toBe(150);
    io.out8(0x43, 0x00 | 0x20 | (2 << 1)); // MSB only
    io.out8(0x40, 0x02); // count 0x200
    advanceTo(cpu, 50 + 256);
    expect(io.in8(0x40)).toBe(0x01);
  });

  it('read-back returns status (output, null count, access, mode) and count', () => {
    const { io, cpu } = setup();
    io.out8(0x43, 0x34); // ch0 lohi mode 2
    io.out8(0x43, 0xe2); // read-back status of ch0 only
    expect(io.in8(0x40)).toBe(0x80 | 0x40 | 0x30 | 0x04); // out high, null count
    io.out8(0x40, 100); io.out8(0x40, 0);
    advanceTo(cpu, 30);
    io.out8(0x43, 0xc2); // status and count
    expect(io.in8(0x40)).toBe(0x80 | 0x30 | 0x04);
    expect(io.in8(0x40) | (io.in8(0x40) << 8)).toBe(70);
  });

  it('mode 3 is a square wave: high for ceil(N/2), low for floor(N/2)', () => {
    const { io, cpu, irq } = setup();
    program(io, 0, 3, 5);
    advanceTo(cpu, 12);
    // Starts high (no change reported), falls at 3, rises at 5, falls at 8, rises at 10.
    expect(irq).toEqual([[3, false], [5, true], [8, false], [10, true]]);
  });

  it('coalesces edges stepped over by a long instruction into one IRQ edge', () => {
    const { io, cpu, rises, pit } = setup();
    program(io, 0, 2, 10);
    cpu.cycles = 35; // the "instruction" took us past three periods
    cpu.eventHook();
    expect(rises()).toEqual([35]);
    expect(pit.irq0Edges).toBe(3);
    advanceTo(cpu, 41);
    expect(rises()).toEqual([35, 40]);
  });

  it('port 0x61 gates channel 2 and shows its output', () => {
    const { io, cpu } = setup();
    io.out8(0x61, 0x00); // gate low
    io.out8(0x43, 0xb0); // ch2 lohi mode 0
    io.out8(0x42, 100); io.out8(0x42, 0);
    advanceTo(cpu, 500);
    expect(io.in8(0x61) & 0x20).toBe(0); // never counted
    io.out8(0x61, 0x01); // gate high: counting resumes
    advanceTo(cpu, 599);
    expect(io.in8(0x61) & 0x20).toBe(0);
    advanceTo(cpu, 600);
    expect(io.in8(0x61) & 0x21).toBe(0x21);
  });

  it('port 0x61 bit 4 toggles with the refresh clock', () => {
    const { io, cpu } = setup();
    const a = io.in8(0x61) & 0x10;
    advanceTo(cpu, 18);
    const b = io.in8(0x61) & 0x10;
    expect(a).not.toBe(b);
  });

  it('count 0 means 65536', () => {
    const { io, cpu, rises } = setup();
    program(io, 0, 2, 0);
    advanceTo(cpu, 70000);
    expect(rises()).toEqual([65536]);
  });

  it('counts in BCD when asked', () => {
    const { io, cpu } = setup();
    io.out8(0x43, 0x35); // ch0 lohi mode 2 BCD
    io.out8(0x40, 0x00); io.out8(0x40, 0x10); // 1000 decimal
    advanceTo(cpu, 1);
    expect(io.in8(0x40) | (io.in8(0x40) << 8)).toBe(0x0999);
  });
});
