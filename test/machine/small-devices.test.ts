import { describe, expect, it } from 'vitest';
import { ConsoleSink } from '../../src/machine/devices/console.js';
import { DebugCon } from '../../src/machine/devices/debugcon.js';
import { ExitDevice } from '../../src/machine/devices/exit-device.js';
import { SystemPorts } from '../../src/machine/devices/system-ports.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { createHash } from 'node:crypto';
import { fakeCpu } from './fake-cpu.js';

describe('debug console (port 0xE9)', () => {
  it('writes bytes to the console and reads back 0xE9', () => {
    const io = new PortBus();
    const sink = new ConsoleSink();
    new DebugCon(io, sink);
    io.out8(0xe9, 0x4f); io.out8(0xe9, 0x4b);
    expect(sink.text()).toBe('OK');
    expect(io.in8(0xe9)).toBe(0xe9);
  });
});

describe('console sink', () => {
  it('streams in order on flush and hashes everything', () => {
    const sink = new ConsoleSink();
    const got: number[] = [];
    sink.listener = (c) => got.push(...c);
    for (let i = 0; i < 10000; i++) sink.write(i & 0xff);
    sink.flush();
    sink.write(7);
    const all = Uint8Array.from([...Array.from({ length: 10000 }, (_, i) => i & 0xff), 7]);
    expect(sink.sha256()).toBe(createHash('sha256').update(all).digest('hex'));
    expect(got).toEqual([...all]);
    expect(sink.length).toBe(10001);
  });
});

describe('exit device (port 0xF4, as isa-debug-exit iosize=4)', () => {
  for (const [width, value] of [[1, 0x01], [2, 0x1234], [4, 0x7fffffff]] as const) {
    it(`stops the machine with (v << 1) | 1 on a ${width}-byte write`, () => {
      const cpu = fakeCpu();
      const io = new PortBus();
      new ExitDevice(cpu, io);
      if (width === 1) io.out8(0xf4, value); else if (width === 2) io.out16(0xf4, value); else io.out32(0xf4, value);
      expect(cpu.stopReason).toEqual({ kind: 'exit-device', code: value * 2 + 1 });
      expect(cpu.attention & 1).toBe(1);
    });
  }

  it('covers the four ports of its I/O range, and keeps the first stop', () => {
    const cpu = fakeCpu();
    const io = new PortBus();
    new ExitDevice(cpu, io);
    io.out8(0xf7, 5);
    io.out8(0xf4, 9);
    expect(cpu.stopReason).toEqual({ kind: 'exit-device', code: 11 });
  });
});

describe('system ports', () => {
  it('port 0x80 is a harmless delay port; port 0x92 keeps A20 and resets on bit 0', () => {
    const cpu = fakeCpu();
    const io = new PortBus();
    new SystemPorts(cpu, io);
    io.out8(0x80, 0x55);
    expect(io.in8(0x80)).toBe(0xff);
    expect(io.in8(0x92)).toBe(0x02);
    io.out8(0x92, 0x00);
    expect(io.in8(0x92)).toBe(0x00);
    expect(cpu.stopReason).toBeNull();
    io.out8(0x92, 0x03);
    expect(cpu.stopReason).toMatchObject({ kind: 'shutdown' });
  });
});
