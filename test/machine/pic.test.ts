import { describe, expect, it } from 'vitest';
import { DualPic } from '../../src/machine/devices/pic.js';
import { PortBus } from '../../src/machine/port-bus.js';

/** A PC-style PIC pair initialised like Linux/BIOS: vectors 0x20 and 0x28, cascade on IR2. */
function setup(opts: { autoEoi?: boolean } = {}): { io: PortBus; pic: DualPic; intr: () => boolean } {
  const io = new PortBus();
  let intr = false;
  const pic = new DualPic(io, (l) => { intr = l; });
  const icw4 = opts.autoEoi ? 0x03 : 0x01;
  io.out8(0x20, 0x11); io.out8(0x21, 0x20); io.out8(0x21, 0x04); io.out8(0x21, icw4);
  io.out8(0xa0, 0x11); io.out8(0xa1, 0x28); io.out8(0xa1, 0x02); io.out8(0xa1, icw4);
  io.out8(0x21, 0x00); io.out8(0xa1, 0x00);
  return { io, pic, intr: () => intr };
}

describe('8259A pair', () => {
  it('takes vector bases from ICW2 and delivers a master IRQ', () => {
    const { pic, intr } = setup();
    expect(intr()).toBe(false);
    pic.setIrq(1, true);
    expect(intr()).toBe(true);
    expect(pic.acknowledge()).toBe(0x21);
    expect(intr()).toBe(false);
    expect(pic.master.isr).toBe(0x02);
  });

  it('is edge triggered: a line held high requests once, a new rising edge requests again', () => {
    const { io, pic, intr } = setup();
    pic.setIrq(3, true);
    expect(pic.acknowledge()).toBe(0x23);
    io.out8(0x20, 0x20); // EOI
    pic.setIrq(3, true); // still high: no new edge
    expect(intr()).toBe(false);
    pic.setIrq(3, false);
    pic.setIrq(3, true);
    expect(intr()).toBe(true);
  });

  it('masks with OCW1 and reads the mask back', () => {
    const { io, pic, intr } = setup();
    io.out8(0x21, 0xff);
    expect(io.in8(0x21)).toBe(0xff);
    pic.setIrq(4, true);
    expect(intr()).toBe(false);
    expect(pic.master.irr & 0x10).toBe(0x10); // requested but masked
    io.out8(0x21, 0xef);
    expect(intr()).toBe(true);
  });

  it('resolves priorities: lower IR first, and blocks lower priority while a higher one is in service', () => {
    const { io, pic, intr } = setup();
    pic.setIrq(5, true);
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x21);
    // IR5 is pending but lower priority than IR1 in service.
    expect(intr()).toBe(false);
    pic.setIrq(0, true); // higher priority nests
    expect(intr()).toBe(true);
    expect(pic.acknowledge()).toBe(0x20);
    io.out8(0x20, 0x20); // non-specific EOI clears IR0 (the highest in service)
    expect(pic.master.isr).toBe(0x02);
    io.out8(0x20, 0x20);
    expect(pic.master.isr).toBe(0);
    expect(pic.acknowledge()).toBe(0x25);
  });

  it('specific EOI clears only the named level', () => {
    const { io, pic } = setup();
    pic.setIrq(0, true); pic.acknowledge();
    pic.setIrq(6, true);
    io.out8(0x20, 0x60 | 0); // specific EOI for IR0
    expect(pic.master.isr).toBe(0);
    pic.acknowledge();
    expect(pic.master.isr).toBe(0x40);
    io.out8(0x20, 0x60 | 3); // wrong level: nothing changes
    expect(pic.master.isr).toBe(0x40);
    io.out8(0x20, 0x60 | 6);
    expect(pic.master.isr).toBe(0);
  });

  it('reads IRR or ISR through OCW3', () => {
    const { io, pic } = setup();
    pic.setIrq(7, true);
    pic.setIrq(6, true);
    io.out8(0x20, 0x0a); // read IRR
    expect(io.in8(0x20)).toBe(0xc0);
    pic.acknowledge();
    io.out8(0x20, 0x0b); // read ISR
    expect(io.in8(0x20)).toBe(0x40);
    io.out8(0x20, 0x0a);
    expect(io.in8(0x20)).toBe(0x80);
  });

  it('cascades the slave through IR2 and needs EOI on both chips', () => {
    const { io, pic, intr } = setup();
    pic.setIrq(12, true);
    expect(intr()).toBe(true);
    expect(pic.acknowledge()).toBe(0x2c);
    expect(pic.slave.isr).toBe(0x10);
    expect(pic.master.isr).toBe(0x04);
    pic.setIrq(9, true); // higher priority on the slave, but master IR2 is in service
    expect(intr()).toBe(false);
    io.out8(0xa0, 0x20);
    io.out8(0x20, 0x20);
    expect(intr()).toBe(true);
    expect(pic.acknowledge()).toBe(0x29);
  });

  it('gives spurious IRQ7 when the request vanishes before INTA, without setting ISR', () => {
    const { pic, intr } = setup();
    pic.setIrq(4, true);
    expect(intr()).toBe(true);
    pic.setIrq(4, false); // request withdrawn: the 8259A needs IR held until INTA
    expect(pic.acknowledge()).toBe(0x27);
    expect(pic.master.isr).toBe(0);
    expect(pic.spurious).toBe(1);
  });

  it('gives spurious IRQ15 from the slave, with master IR2 in service', () => {
    const { io, pic } = setup();
    pic.setIrq(10, true);
    io.out8(0xa1, 0x04); // mask IR10 on the slave after it was requested
    // The slave output fell with the mask, so the master sees no request: master spurious.
    expect(pic.acknowledge()).toBe(0x27);
    // Now make the slave request vanish after the master latched IR2.
    io.out8(0xa1, 0x00);
    pic.slave.imr = 0x04; // mask without notifying: the master's IR2 request stays latched
    expect(pic.acknowledge()).toBe(0x2f);
    expect(pic.master.isr).toBe(0x04);
    expect(pic.slave.isr).toBe(0);
  });

  it('auto-EOI mode does not set ISR', () => {
    const { pic, intr } = setup({ autoEoi: true });
    pic.setIrq(1, true);
    expect(pic.acknowledge()).toBe(0x21);
    expect(pic.master.isr).toBe(0);
    pic.setIrq(1, false);
    pic.setIrq(2 + 1, true);
    expect(intr()).toBe(true);
  });

  it('rotates priorities on rotate-on-non-specific-EOI', () => {
    const { io, pic } = setup();
    pic.setIrq(0, true);
    pic.acknowledge();
    io.out8(0x20, 0xa0); // rotate on non-specific EOI: IR0 becomes lowest priority
    pic.setIrq(0, false); pic.setIrq(0, true);
    pic.setIrq(5, true);
    expect(pic.acknowledge()).toBe(0x25);
  });

  it('polls with OCW3 P', () => {
    const { io, pic } = setup();
    pic.setIrq(3, true);
    io.out8(0x20, 0x0c);
    expect(io.in8(0x20)).toBe(0x83);
    expect(pic.master.isr).toBe(0x08);
    io.out8(0x20, 0x0c);
    expect(io.in8(0x20)).toBe(0x00);
  });

  it('ICW1 clears the mask and in-service state', () => {
    const { io, pic } = setup();
    io.out8(0x21, 0xf0);
    pic.setIrq(1, true); pic.acknowledge();
    io.out8(0x20, 0x11);
    expect(pic.master.isr).toBe(0);
    expect(pic.master.imr).toBe(0);
    expect(pic.master.initState).toBe(1);
    io.out8(0x21, 0x08); io.out8(0x21, 0x04); io.out8(0x21, 0x01);
    expect(pic.master.initState).toBe(0);
    expect(pic.master.vectorBase).toBe(0x08);
  });
});
