import { describe, expect, it } from 'vitest';
import { ConsoleSink } from '../../src/machine/devices/console.js';
import { Uart16550 } from '../../src/machine/devices/uart.js';
import { PortBus } from '../../src/machine/port-bus.js';

function setup() {
  const io = new PortBus();
  const sink = new ConsoleSink();
  const levels: boolean[] = [];
  const uart = new Uart16550(io, sink, (l) => levels.push(l));
  return { io, sink, uart, levels, irq: () => levels.length > 0 && levels[levels.length - 1]! };
}

describe('16550 UART on COM1', () => {
  it('sends THR bytes to the console and always reports the transmitter empty', () => {
    const { io, sink } = setup();
    expect(io.in8(0x3fd) & 0x60).toBe(0x60);
    for (const c of 'hi\n') io.out8(0x3f8, c.charCodeAt(0));
    expect(sink.text()).toBe('hi\n');
    expect(io.in8(0x3fd) & 0x60).toBe(0x60);
  });

  it('maps the divisor latch over THR/IER while LCR.DLAB is set', () => {
    const { io, sink } = setup();
    io.out8(0x3fb, 0x80);
    io.out8(0x3f8, 0x01); // 115200 baud
    io.out8(0x3f9, 0x00);
    expect(io.in8(0x3f8)).toBe(0x01);
    expect(io.in8(0x3f9)).toBe(0x00);
    io.out8(0x3fb, 0x03); // 8N1, DLAB off
    expect(io.in8(0x3fb)).toBe(0x03);
    expect(sink.length).toBe(0); // divisor writes are not output
    expect(io.in8(0x3f9)).toBe(0); // IER untouched
  });

  it('keeps the scratch register', () => {
    const { io } = setup();
    io.out8(0x3ff, 0x5a);
    expect(io.in8(0x3ff)).toBe(0x5a);
  });

  it('reports no interrupt in IIR when none is enabled', () => {
    const { io } = setup();
    expect(io.in8(0x3fa) & 0x0f).toBe(0x01);
  });

  it('raises the THRE interrupt when enabled, clears it on IIR read, re-raises after a write', () => {
    const { io, irq } = setup();
    io.out8(0x3f9, 0x02); // IER.THRI
    expect(irq()).toBe(true);
    expect(io.in8(0x3fa) & 0x0f).toBe(0x02);
    expect(irq()).toBe(false); // reading IIR cleared it
    expect(io.in8(0x3fa) & 0x0f).toBe(0x01);
    io.out8(0x3f8, 0x41);
    expect(irq()).toBe(true);
  });

  it('receives bytes with a data-ready interrupt, and shows FIFO mode in IIR', () => {
    const { io, uart, irq } = setup();
    io.out8(0x3f9, 0x01); // IER.RDI
    uart.receive(0x31);
    expect(io.in8(0x3fd) & 1).toBe(1);
    expect(irq()).toBe(true);
    expect(io.in8(0x3fa)).toBe(0x04);
    expect(io.in8(0x3f8)).toBe(0x31);
    expect(io.in8(0x3fd) & 1).toBe(0);
    expect(irq()).toBe(false);
    io.out8(0x3fa, 0x07); // enable and clear FIFOs
    expect(io.in8(0x3fa) & 0xc0).toBe(0xc0);
  });

  it('loops transmitted bytes back and mirrors MCR in MSR in loopback mode', () => {
    const { io, sink } = setup();
    io.out8(0x3fc, 0x1a); // loopback, RTS, OUT2
    expect(io.in8(0x3fe) & 0xf0).toBe(0x90); // CTS + DCD: what Linux's probe checks
    io.out8(0x3f8, 0xae);
    expect(sink.length).toBe(0);
    expect(io.in8(0x3fd) & 1).toBe(1);
    expect(io.in8(0x3f8)).toBe(0xae);
    io.out8(0x3fc, 0x0b);
    expect(io.in8(0x3fe)).toBe(0xb0); // DCD, DSR, CTS: a connected line
  });
});
