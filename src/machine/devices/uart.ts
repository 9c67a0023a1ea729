import type { PortBus } from '../port-bus.js';
import type { ConsoleSink } from './console.js';

/** COM1's I/O base and IRQ on a PC. */
export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;

const IER_RDI = 1, IER_THRI = 2, IER_RLSI = 4;
const IIR_NONE = 1, IIR_THRI = 2, IIR_RDI = 4, IIR_RLSI = 6, IIR_TIMEOUT = 0x0c;
const LSR_DR = 1, LSR_OE = 2, LSR_THRE = 0x20, LSR_TEMT = 0x40, LSR_ERRORS = 0x1e;
const MCR_LOOP = 0x10;
const FIFO_SIZE = 16;

/**
 * A 16550A UART: THR/RBR, IER, IIR/FCR, LCR (with DLAB and the divisor latch), MCR, LSR,
 * MSR and SCR, receive FIFO, loopback mode. Transmission is instantaneous (no baud-rate
 * timing, so the THR is always empty: LSR.THRE and TEMT always set) and transmitted bytes
 * go to the console sink. This is what Linux-style and simple polling drivers need.
 * Interrupt identification and the THRE interrupt follow QEMU's serial.c, the reference
 * for comparisons: the IRQ line is not gated by MCR.OUT2 (QEMU does not gate it either).
 * Without input, the modem status reports DCD, DSR and CTS asserted (a connected line).
 */
export class Uart16550 {
  ier = 0;
  iir = IIR_NONE;
  lcr = 0;
  mcr = 0;
  lsr = LSR_THRE | LSR_TEMT;
  scr = 0;
  divisor = 12; // 9600 baud, the usual BIOS default
  fifoEnabled = false;
  private fcr = 0;
  private rx: number[] = [];
  private thrPending = false;
  private irqLevel = false;
  /** Bytes transmitted to the console. */
  transmitted = 0;

  constructor(io: PortBus, private readonly sink: ConsoleSink, private readonly setIrq: (level: boolean) => void, base = COM1_PORT) {
    for (let i = 0; i < 8; i++) {
      io.registerRead8(base + i, () => this.read(i));
      io.registerWrite8(base + i, (_p, v) => this.write(i, v));
    }
  }

  /** Delivers a received byte (input from outside the machine). */
  receive(byte: number): void {
    const limit = this.fifoEnabled ? FIFO_SIZE : 1;
    if (this.rx.length >= limit) {
      this.lsr |= LSR_OE;
      if (!this.fifoEnabled) this.rx[0] = byte & 0xff;
    } else {
      this.rx.push(byte & 0xff);
    }
    this.lsr |= LSR_DR;
    this.updateIrq();
  }

  private get dlab(): boolean { return (this.lcr & 0x80) !== 0; }

  private rxTrigger(): number {
    return [1, 4, 8, 14][this.fcr >> 6]!;
  }

  read(reg: number): number {
    switch (reg) {
      case 0: {
        if (this.dlab) return this.divisor & 0xff;
        const v = this.rx.length > 0 ? this.rx.shift()! : 0;
        if (this.rx.length === 0) this.lsr &= ~LSR_DR;
        this.updateIrq();
        return v;
      }
      case 1: return this.dlab ? this.divisor >> 8 : this.ier;
      case 2: {
        const v = this.iir;
        // Reading the IIR while it reports THRE clears that interrupt.
        if ((v & 0x0f) === IIR_THRI) { this.thrPending = false; this.updateIrq(); }
        return v;
      }
      case 3: return this.lcr;
      case 4: return this.mcr;
      case 5: {
        const v = this.lsr;
        this.lsr &= ~(LSR_ERRORS);
        if ((v & LSR_ERRORS) !== 0) this.updateIrq();
        return v;
      }
      case 6: {
        if ((this.mcr & MCR_LOOP) !== 0) {
          // Loopback: RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
          const m = this.mcr;
          return ((m & 2) << 3) | ((m & 1) << 5) | ((m & 4) << 4) | ((m & 8) << 4);
        }
        return 0xb0;
      }
      default: return this.scr;
    }
  }

  write(reg: number, v: number): void {
    switch (reg) {
      case 0:
        if (this.dlab) { this.divisor = (this.divisor & 0xff00) | v; return; }
        this.thrPending = false;
        if ((this.mcr & MCR_LOOP) !== 0) this.receive(v);
        else { this.sink.write(v); this.transmitted++; }
        // The byte leaves at once: the THR is empty again.
        this.thrPending = true;
        this.updateIrq();
        return;
      case 1: {
        if (this.dlab) { this.divisor = (this.divisor & 0xff) | (v << 8); return; }
        const old = this.ier;
        this.ier = v & 0x0f;
        // Enabling the THRE interrupt with the THR empty raises it at once.
        if ((old & IER_THRI) === 0 && (this.ier & IER_THRI) !== 0) this.thrPending = true;
        this.updateIrq();
        return;
      }
      case 2:
        this.fcr = v & 0xc9;
        this.fifoEnabled = (v & 1) !== 0;
        if ((v & 2) !== 0 || !this.fifoEnabled) { this.rx = []; this.lsr &= ~LSR_DR; }
        this.updateIrq();
        return;
      case 3: this.lcr = v; return;
      case 4: this.mcr = v & 0x1f; return;
      case 5: return; // LSR is read-only (factory test)
      case 6: return;
      default: this.scr = v; return;
    }
  }

  private updateIrq(): void {
    let id = IIR_NONE;
    if ((this.ier & IER_RLSI) !== 0 && (this.lsr & LSR_ERRORS) !== 0) id = IIR_RLSI;
    else if ((this.ier & IER_RDI) !== 0 && (this.lsr & LSR_DR) !== 0) {
      // No character timer: data below the FIFO trigger level reports a timeout at once.
      id = !this.fifoEnabled || this.rx.length >= this.rxTrigger() ? IIR_RDI : IIR_TIMEOUT;
    } else if ((this.ier & IER_THRI) !== 0 && this.thrPending) id = IIR_THRI;
    // Modem-status interrupts never occur: the modem lines never change.
    this.iir = id | (this.fifoEnabled ? 0xc0 : 0);
    const level = id !== IIR_NONE;
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.setIrq(level);
    }
  }
}
