import type { Clock } from '../clock.js';
import type { PortBus } from '../port-bus.js';

/** The PIT's input clock on a PC: 14.31818 MHz / 12. */
export const PIT_HZ = 1_193_182;

/** One counter of the 8254. Times are in PIT input-clock ticks since power-on. */
class Counter {
  /** Operating mode 0–5 (6, 7 are aliases of 2, 3). */
  mode = 0;
  /** Read/write access: 1 = LSB only, 2 = MSB only, 3 = LSB then MSB. */
  rw = 3;
  bcd = false;
  /** The count register as last written (0 means the maximum count). */
  countReg = 0;
  /** The count in use, as a tick count: 1..65536 (binary) or 1..10000 (BCD). */
  n = 65536;
  /** A count has been written and not yet loaded into the counting element. */
  nullCount = true;
  /** The counter is counting (for modes 1 and 5: it has been triggered). */
  running = false;
  /** Tick at which the current count was loaded. */
  loadTick = 0;
  /** Ticks already counted when a gate-low pause began (modes 0, 4), else -1. */
  pausedAt = -1;
  gate: boolean;
  /** Output level while not running (high at power-on: no edge when first programmed). */
  idleOut = true;
  /** LSB/MSB toggles for `rw` = 3. */
  writeMsbNext = false;
  readMsbNext = false;
  writeLsb = 0;
  /** Latched count (or -1) and how many of its bytes remain to be read. */
  latched = -1;
  latchedMsbNext = false;
  /** Latched status byte, or -1. */
  status = -1;
  /** Elapsed ticks at the last evaluation of the output (for edge counting). */
  lastD = 0;

  constructor(gate: boolean) { this.gate = gate; }

  /** Ticks counted at `now` since the count was loaded. */
  elapsed(now: number): number {
    return this.pausedAt >= 0 ? this.pausedAt : now - this.loadTick;
  }

  /** Output level at `now` (8254 datasheet waveforms). */
  out(now: number): boolean {
    if (!this.running) return this.idleOut;
    const d = this.elapsed(now), n = this.n;
    switch (this.mode) {
      case 0: case 1: return d >= n;
      case 2: return d % n !== n - 1;
      case 3: return d % n < ((n + 1) >> 1);
      default: return d !== n; // 4, 5: one tick low at terminal count
    }
  }

  /** The tick (> now) of the next output transition, or Infinity. */
  nextTransition(now: number): number {
    if (!this.running || this.pausedAt >= 0) return Number.POSITIVE_INFINITY;
    const d = this.elapsed(now), n = this.n;
    let at: number;
    switch (this.mode) {
      case 0: case 1: at = d < n ? n : Infinity; break;
      case 2: {
        if (n < 2) return Number.POSITIVE_INFINITY;
        const p = d % n;
        at = p === n - 1 ? d + 1 : d - p + n - 1;
        break;
      }
      case 3: {
        if (n < 2) return Number.POSITIVE_INFINITY;
        const p = d % n, h = (n + 1) >> 1;
        at = p < h ? d - p + h : d - p + n;
        break;
      }
      default: at = d < n ? n : d === n ? n + 1 : Infinity; break;
    }
    return at === Infinity ? at : this.loadTick + at;
  }

  /** Rising edges of the output for elapsed tick counts in (from, to]. */
  risingEdges(from: number, to: number): number {
    if (to <= from) return 0;
    const n = this.n;
    switch (this.mode) {
      case 0: case 1: return from < n && n <= to ? 1 : 0;
      case 2: case 3: return Math.floor(to / n) - Math.floor(from / n);
      default: return from < n + 1 && n + 1 <= to ? 1 : 0;
    }
  }

  /** The value of the counting element at `now`, as the guest reads it. */
  value(now: number): number {
    const mod = this.bcd ? 10000 : 65536;
    if (!this.running) return this.n % mod;
    const d = this.elapsed(now), n = this.n;
    let v: number;
    switch (this.mode) {
      case 2: v = n - (d % n); break;
      case 3: v = n - ((2 * d) % n); break; // decrements by two each tick
      default: v = (((n - d) % mod) + mod) % mod; break; // wraps after terminal count
    }
    v %= mod;
    return this.bcd ? toBcd(v) : v;
  }

  statusByte(now: number): number {
    return (this.out(now) ? 0x80 : 0) | (this.nullCount ? 0x40 : 0) | (this.rw << 4) | (this.mode << 1) | (this.bcd ? 1 : 0);
  }
}

function toBcd(v: number): number {
  return (v % 10) | (Math.floor(v / 10) % 10) << 4 | (Math.floor(v / 100) % 10) << 8 | (Math.floor(v / 1000) % 10) << 12;
}

function fromBcd(v: number): number {
  return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
}

/**
 * Intel 8254 programmable interval timer at ports 0x40–0x43, plus port 0x61 (channel 2
 * gate, speaker enable, refresh toggle, channel 2 output). Channel 0's output drives IRQ0.
 *
 * Time is derived from the CPU cycle counter through `Clock` (exact integer conversion to
 * 1,193,182 Hz ticks). Output waveforms follow the 8254 datasheet for all six modes;
 * IRQ0 follows channel 0's output level, with a timer armed at each transition, so the
 * PIC sees the rising edges at exact ticks. Simplifications (documented choices):
 * a count is loaded at the tick of the write (the chip loads it on the next clock edge);
 * a new count written in modes 2 and 3 restarts the period at once (as QEMU), instead of
 * at the end of the current one; channels 0 and 1 have their gate tied high, so modes 1
 * and 5 (gate-triggered) never start on them, as on a PC.
 */
export class Pit {
  readonly counters = [new Counter(true), new Counter(true), new Counter(false)];
  private readonly clock: Clock;
  private readonly timer: number;
  private readonly setIrq0: (level: boolean) => void;
  private irqLevel = true;
  private speaker = false;
  /** Rising edges of channel 0's output seen so far (timer interrupts requested). */
  irq0Edges = 0;

  constructor(io: PortBus, clock: Clock, setIrq0: (level: boolean) => void) {
    this.clock = clock;
    this.setIrq0 = setIrq0;
    this.timer = clock.addTimer(() => this.onTimer());
    for (let c = 0; c < 3; c++) {
      io.registerRead8(0x40 + c, () => this.readCounter(c));
      io.registerWrite8(0x40 + c, (_p, v) => this.writeCounter(c, v));
    }
    io.registerWrite8(0x43, (_p, v) => this.writeControl(v));
    io.registerRead8(0x43, () => 0xff); // the control register cannot be read
    io.registerRead8(0x61, () => this.readPort61());
    io.registerWrite8(0x61, (_p, v) => this.writePort61(v));
  }

  /** Current time in PIT ticks. */
  now(): number { return this.clock.ticksAt(this.clock.now, PIT_HZ); }

  writeControl(v: number): void {
    const now = this.now();
    const sc = v >> 6;
    if (sc === 3) {
      // Read-back command: bit 5 clear = latch counts, bit 4 clear = latch status.
      for (let c = 0; c < 3; c++) {
        if ((v & (2 << c)) === 0) continue;
        const ctr = this.counters[c]!;
        if ((v & 0x20) === 0 && ctr.latched < 0) { ctr.latched = ctr.value(now); ctr.latchedMsbNext = false; }
        if ((v & 0x10) === 0 && ctr.status < 0) ctr.status = ctr.statusByte(now);
      }
      return;
    }
    const ctr = this.counters[sc]!;
    const rw = (v >> 4) & 3;
    if (rw === 0) {
      // Counter latch command; a second latch before the first is read is ignored.
      if (ctr.latched < 0) { ctr.latched = ctr.value(now); ctr.latchedMsbNext = false; }
      return;
    }
    let mode = (v >> 1) & 7;
    if (mode > 5) mode -= 4;
    ctr.rw = rw;
    ctr.mode = mode;
    ctr.bcd = (v & 1) !== 0;
    ctr.running = false;
    ctr.pausedAt = -1;
    ctr.nullCount = true;
    ctr.idleOut = mode !== 0;
    ctr.writeMsbNext = false;
    ctr.readMsbNext = false;
    ctr.latched = -1;
    ctr.status = -1;
    this.update();
  }

  writeCounter(c: number, v: number): void {
    const ctr = this.counters[c]!;
    let count: number;
    if (ctr.rw === 1) count = v;
    else if (ctr.rw === 2) count = v << 8;
    else if (!ctr.writeMsbNext) {
      ctr.writeLsb = v;
      ctr.writeMsbNext = true;
      // Mode 0: writing the first byte stops the count (and the output is low).
      if (ctr.mode === 0) { ctr.running = false; ctr.idleOut = false; this.update(); }
      return;
    } else {
      ctr.writeMsbNext = false;
      count = ctr.writeLsb | (v << 8);
    }
    this.loadCount(c, count);
  }

  private loadCount(c: number, count: number): void {
    const ctr = this.counters[c]!;
    ctr.countReg = count;
    ctr.n = ctr.bcd ? (fromBcd(count) || 10000) : (count || 65536);
    ctr.nullCount = false;
    const gateTriggered = ctr.mode === 1 || ctr.mode === 5;
    if (gateTriggered) {
      // Waits for a rising edge of the gate (channel 2 only on a PC).
      if (!ctr.running) ctr.idleOut = true;
    } else {
      ctr.running = true;
      ctr.loadTick = this.now();
      ctr.lastD = 0;
      ctr.pausedAt = ctr.gate ? -1 : 0;
      if (!ctr.gate && (ctr.mode === 2 || ctr.mode === 3)) { ctr.running = false; ctr.idleOut = true; }
    }
    this.update();
  }

  readCounter(c: number): number {
    const ctr = this.counters[c]!;
    if (ctr.status >= 0) { const s = ctr.status; ctr.status = -1; return s; }
    if (ctr.latched >= 0) {
      const v = ctr.latched;
      if (ctr.rw === 1) { ctr.latched = -1; return v & 0xff; }
      if (ctr.rw === 2) { ctr.latched = -1; return v >> 8; }
      if (!ctr.latchedMsbNext) { ctr.latchedMsbNext = true; return v & 0xff; }
      ctr.latched = -1;
      ctr.latchedMsbNext = false;
      return v >> 8;
    }
    const v = ctr.value(this.now());
    if (ctr.rw === 1) return v & 0xff;
    if (ctr.rw === 2) return v >> 8;
    const msb = ctr.readMsbNext;
    ctr.readMsbNext = !msb;
    return msb ? v >> 8 : v & 0xff;
  }

  /** Sets a counter's gate input (channel 2 through port 0x61). */
  setGate(c: number, level: boolean): void {
    const ctr = this.counters[c]!;
    if (ctr.gate === level) return;
    const now = this.now();
    ctr.gate = level;
    if (ctr.nullCount) return;
    switch (ctr.mode) {
      case 0: case 4:
        // Gate low suspends counting; high resumes it.
        if (!ctr.running) break;
        if (!level) ctr.pausedAt = now - ctr.loadTick;
        else if (ctr.pausedAt >= 0) { ctr.loadTick = now - ctr.pausedAt; ctr.pausedAt = -1; }
        break;
      case 2: case 3:
        // Gate low forces the output high and stops counting; a rising edge reloads.
        if (!level) { ctr.running = false; ctr.idleOut = true; } else { ctr.running = true; ctr.loadTick = now; ctr.lastD = 0; ctr.pausedAt = -1; }
        break;
      default:
        // Modes 1, 5: a rising edge (re)triggers.
        if (level) { ctr.running = true; ctr.loadTick = now; ctr.lastD = 0; ctr.pausedAt = -1; }
        break;
    }
    this.update();
  }

  private readPort61(): number {
    const now = this.now();
    // Bit 4 toggles with the DRAM refresh request, every 15.085 µs (18 PIT ticks).
    const refresh = Math.floor(now / 18) & 1;
    return (this.counters[2]!.gate ? 1 : 0) | (this.speaker ? 2 : 0) | (refresh << 4) | (this.counters[2]!.out(now) ? 0x20 : 0);
  }

  private writePort61(v: number): void {
    this.speaker = (v & 2) !== 0;
    this.setGate(2, (v & 1) !== 0);
  }

  /**
   * Re-evaluates channel 0's output, drives IRQ0 and arms the timer for the next output
   * transition. A long instruction may step over a whole output phase; every rising edge
   * since the last evaluation still reaches the PIC as an edge (coalesced, as the IRR
   * would coalesce them), and the line is then held high until the next transition.
   */
  private update(): void {
    const now = this.now();
    const ctr = this.counters[0]!;
    const level = ctr.out(now);
    let edges = 0;
    if (ctr.running) {
      const d = ctr.elapsed(now);
      edges = ctr.risingEdges(ctr.lastD, d);
      ctr.lastD = d;
    }
    if (edges > 0) {
      this.irq0Edges += edges;
      if (this.irqLevel) this.setIrq0(false);
      this.irqLevel = true;
      this.setIrq0(true);
    } else if (level !== this.irqLevel) {
      if (level) this.irq0Edges++;
      this.irqLevel = level;
      this.setIrq0(level);
    }
    const next = ctr.nextTransition(now);
    if (next === Number.POSITIVE_INFINITY) this.clock.disarm(this.timer);
    else this.clock.arm(this.timer, this.clock.cycleOfTick(next, PIT_HZ));
  }

  private onTimer(): void {
    this.update();
  }
}
