import type { PortBus } from '../port-bus.js';

/** Lowest-priority-first search helper: 8 when no bit of `mask` is set. */
function priorityOf(mask: number, priorityAdd: number): number {
  if (mask === 0) return 8;
  let p = 0;
  while ((mask & (1 << ((p + priorityAdd) & 7))) === 0) p++;
  return p;
}

/**
 * One Intel 8259A programmable interrupt controller. Registers and behaviour follow the
 * 8259A datasheet; where the datasheet leaves room (what a dropped request does, polling),
 * QEMU's i8259 is the reference, since virtlab's outputs are compared with QEMU's.
 */
export class Pic8259 {
  /** Interrupt request register. */
  irr = 0;
  /** In-service register. */
  isr = 0;
  /** Interrupt mask register (OCW1). */
  imr = 0;
  /** Current level of each IR input (for edge detection). */
  lines = 0;
  /** Vector of IR0 (ICW2, low 3 bits zero). */
  vectorBase = 0;
  /** The IR with the lowest priority is (priorityAdd + 7) & 7; rotation changes it. */
  priorityAdd = 0;
  /** ICW1.LTIM: all inputs level-sensitive (PCs use edge mode). */
  levelTriggered = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialMask = false;
  specialFullyNested = false;
  /** OCW3 RR/RIS: reads of the command port return the ISR (true) or the IRR (false). */
  readIsr = false;
  /** OCW3 P: the next command-port read is a poll. */
  poll = false;
  /** 0 = ready; 1, 2, 3 = expecting ICW2, ICW3, ICW4. */
  initState = 0;
  private needIcw4 = false;
  private single = false;
  /** ICW3 as written (master: slave bitmap; slave: its ID). */
  icw3 = 0;

  /** Called whenever the INT output may have changed. */
  onChange: () => void = () => {};

  constructor(readonly isMaster: boolean) {}

  /** Sets the level of input `irq` (0–7). Edge mode latches a request on a rising edge. */
  setIrq(irq: number, level: boolean): void {
    const mask = 1 << irq;
    if (level) {
      if (this.levelTriggered || (this.lines & mask) === 0) this.irr |= mask;
      this.lines |= mask;
    } else {
      // A request whose line drops before it is acknowledged is withdrawn, in edge mode
      // too: the 8259A needs IR held high until INTA (datasheet; QEMU does the same).
      this.irr &= ~mask;
      this.lines &= ~mask;
    }
    this.onChange();
  }

  /** The IR this chip would signal now, or -1. */
  pendingIrq(): number {
    const req = priorityOf(this.irr & ~this.imr, this.priorityAdd);
    if (req === 8) return -1;
    let inService = this.isr;
    if (this.specialMask) inService &= ~this.imr;
    // Special fully nested mode: the master lets a slave interrupt nest within another.
    if (this.specialFullyNested && this.isMaster) inService &= ~(1 << 2);
    const cur = priorityOf(inService, this.priorityAdd);
    return req < cur ? (req + this.priorityAdd) & 7 : -1;
  }

  /** INTA for `irq`: moves the request into service (or not, in auto-EOI mode). */
  acknowledge(irq: number): void {
    const mask = 1 << irq;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.priorityAdd = (irq + 1) & 7;
    } else {
      this.isr |= mask;
    }
    if (!this.levelTriggered) this.irr &= ~mask;
    this.onChange();
  }

  /** Write to the command port (base + 0): ICW1, OCW2 or OCW3. */
  writeCommand(v: number): void {
    if ((v & 0x10) !== 0) {
      // ICW1: start of the initialization sequence.
      this.imr = 0;
      this.isr = 0;
      this.priorityAdd = 0;
      this.vectorBase = 0;
      this.readIsr = false;
      this.poll = false;
      this.specialMask = false;
      this.autoEoi = false;
      this.rotateOnAutoEoi = false;
      this.specialFullyNested = false;
      this.needIcw4 = (v & 1) !== 0;
      this.single = (v & 2) !== 0;
      this.levelTriggered = (v & 8) !== 0;
      if (this.levelTriggered) this.irr = this.lines; else this.irr = 0;
      this.initState = 1;
      this.onChange();
      return;
    }
    if ((v & 0x08) !== 0) {
      // OCW3.
      if ((v & 0x04) !== 0) this.poll = true;
      if ((v & 0x02) !== 0) this.readIsr = (v & 1) !== 0;
      if ((v & 0x40) !== 0) this.specialMask = (v & 0x20) !== 0;
      this.onChange();
      return;
    }
    // OCW2.
    switch (v >> 5) {
      case 0: this.rotateOnAutoEoi = false; break;
      case 4: this.rotateOnAutoEoi = true; break;
      case 1: case 5: {
        // Non-specific EOI: clears the highest-priority in-service bit.
        const p = priorityOf(this.isr, this.priorityAdd);
        if (p !== 8) {
          const irq = (p + this.priorityAdd) & 7;
          this.isr &= ~(1 << irq);
          if ((v >> 5) === 5) this.priorityAdd = (irq + 1) & 7;
        }
        break;
      }
      case 3: this.isr &= ~(1 << (v & 7)); break;
      case 6: this.priorityAdd = ((v & 7) + 1) & 7; break;
      case 7: this.isr &= ~(1 << (v & 7)); this.priorityAdd = ((v & 7) + 1) & 7; break;
      default: break; // 2: no operation
    }
    this.onChange();
  }

  /** Write to the data port (base + 1): ICW2–4 during initialization, else OCW1 (mask). */
  writeData(v: number): void {
    switch (this.initState) {
      case 1:
        this.vectorBase = v & 0xf8;
        this.initState = this.single ? (this.needIcw4 ? 3 : 0) : 2;
        break;
      case 2:
        this.icw3 = v;
        this.initState = this.needIcw4 ? 3 : 0;
        break;
      case 3:
        this.autoEoi = (v & 2) !== 0;
        this.specialFullyNested = (v & 0x10) !== 0;
        this.initState = 0;
        break;
      default:
        this.imr = v;
        break;
    }
    this.onChange();
  }

  /** Read of the command port: IRR or ISR per OCW3, or the poll word. */
  readCommand(): number {
    if (this.poll) {
      this.poll = false;
      const irq = this.pendingIrq();
      if (irq < 0) return 0;
      this.acknowledge(irq);
      return 0x80 | irq;
    }
    return this.readIsr ? this.isr : this.irr;
  }

  readData(): number { return this.imr; }
}

/**
 * The PC/AT pair of 8259As: master at 0x20/0x21, slave at 0xA0/0xA1 cascaded on the
 * master's IR2. It drives the CPU's INTR line and answers its interrupt acknowledge.
 */
export class DualPic {
  readonly master = new Pic8259(true);
  readonly slave = new Pic8259(false);
  /** Acknowledged spurious interrupts (IRQ7 / IRQ15 with nothing in service). */
  spurious = 0;
  /**
   * Drives the CPU's INTR line. A trace replayer replaces it (the trace, not the devices'
   * timing in the mode's time, decides when the CPU is interrupted).
   */
  setIntr: (level: boolean) => void;

  constructor(io: PortBus, setIntr: (level: boolean) => void) {
    this.setIntr = setIntr;
    this.master.onChange = () => this.update();
    this.slave.onChange = () => this.master.setIrq(2, this.slave.pendingIrq() >= 0);
    io.registerWrite8(0x20, (_p, v) => this.master.writeCommand(v));
    io.registerWrite8(0x21, (_p, v) => this.master.writeData(v));
    io.registerRead8(0x20, () => this.master.readCommand());
    io.registerRead8(0x21, () => this.master.readData());
    io.registerWrite8(0xa0, (_p, v) => this.slave.writeCommand(v));
    io.registerWrite8(0xa1, (_p, v) => this.slave.writeData(v));
    io.registerRead8(0xa0, () => this.slave.readCommand());
    io.registerRead8(0xa1, () => this.slave.readData());
  }

  /** Sets the level of IRQ line `irq` (0–15). IRQ2 is the cascade and cannot be driven. */
  setIrq(irq: number, level: boolean): void {
    if (irq >= 8) this.slave.setIrq(irq - 8, level);
    else if (irq !== 2) this.master.setIrq(irq, level);
  }

  /** A short pulse: the line rises and stays up until the next `setIrq(irq, false)`. */
  raiseEdge(irq: number): void {
    this.setIrq(irq, false);
    this.setIrq(irq, true);
  }

  private update(): void {
    this.setIntr(this.master.pendingIrq() >= 0);
  }

  /**
   * The CPU's interrupt acknowledge cycle: returns the vector. A request that vanished
   * between INTR and INTA gives the spurious IRQ7 of the chip concerned (IRQ15 for the
   * slave, with the master's IR2 still put in service, as on the hardware).
   */
  acknowledge(): number {
    const m = this.master;
    const irq = m.pendingIrq();
    if (irq < 0) {
      this.spurious++;
      return m.vectorBase + 7;
    }
    let vector: number;
    if (irq === 2) {
      const s = this.slave;
      const irq2 = s.pendingIrq();
      if (irq2 >= 0) {
        s.acknowledge(irq2);
        vector = s.vectorBase + irq2;
      } else {
        this.spurious++;
        vector = s.vectorBase + 7;
      }
    } else {
      vector = m.vectorBase + irq;
    }
    m.acknowledge(irq);
    return vector;
  }
}
