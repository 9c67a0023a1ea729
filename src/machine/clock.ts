import type { Cpu } from './cpu/cpu.js';

/**
 * The machine's time base and device-timer scheduler. Time is the CPU cycle counter and
 * nothing else (never the wall clock), so a run is reproducible. Device clocks (the PIT's
 * 1,193,182 Hz, ...) are derived from it with exact integer arithmetic: no floating-point
 * rounding that could differ between runs or drift over long runs.
 *
 * Devices register timers; the scheduler keeps `cpu.nextEventCycle` at the earliest deadline
 * and installs itself as `cpu.eventHook`, which fires every due timer in deadline order
 * (ties broken by registration order, so the order is defined).
 */
export class Clock {
  /** CPU core frequency in Hz (from the profile). */
  readonly cpuHz: number;
  private readonly cpu: Cpu;
  private readonly deadlines: number[] = [];
  private readonly callbacks: (() => void)[] = [];
  /** Called after each batch of timers has fired (the machine's halt watchdog). */
  onDispatched: (() => void) | null = null;

  constructor(cpu: Cpu, cpuHz: number) {
    if (!Number.isSafeInteger(cpuHz) || cpuHz <= 0) throw new RangeError(`CPU frequency must be a positive integer (Hz), got ${cpuHz}`);
    this.cpu = cpu;
    this.cpuHz = cpuHz;
    cpu.eventHook = () => this.dispatch();
    cpu.nextEventCycle = Number.POSITIVE_INFINITY;
  }

  /** The current time in CPU cycles. */
  get now(): number { return this.cpu.cycles; }

  /** Registers a timer (initially disarmed); returns its id for `arm`/`disarm`. */
  addTimer(callback: () => void): number {
    this.deadlines.push(Number.POSITIVE_INFINITY);
    this.callbacks.push(callback);
    return this.deadlines.length - 1;
  }

  /** Arms timer `id` to fire once the cycle counter reaches `cycle`. */
  arm(id: number, cycle: number): void {
    this.deadlines[id] = cycle;
    this.recompute();
  }

  disarm(id: number): void {
    this.deadlines[id] = Number.POSITIVE_INFINITY;
    this.recompute();
  }

  /** Number of ticks of a `hz` clock elapsed at cycle `cycles`: floor(cycles × hz / cpuHz), exact. */
  ticksAt(cycles: number, hz: number): number {
    return ticksAt(cycles, this.cpuHz, hz);
  }

  /** The first cycle at which `ticksAt(cycle, hz) >= tick`: ceil(tick × cpuHz / hz), exact. */
  cycleOfTick(tick: number, hz: number): number {
    return -ticksAt(-tick, hz, this.cpuHz);
  }

  private recompute(): void {
    let min = Number.POSITIVE_INFINITY;
    const d = this.deadlines;
    for (let i = 0; i < d.length; i++) if (d[i]! < min) min = d[i]!;
    this.cpu.nextEventCycle = min;
  }

  private dispatch(): void {
    // Fire due timers earliest first; a callback may re-arm its own or another timer.
    for (;;) {
      const now = this.cpu.cycles;
      let best = -1;
      let bestAt = Number.POSITIVE_INFINITY;
      for (let i = 0; i < this.deadlines.length; i++) {
        const at = this.deadlines[i]!;
        if (at <= now && at < bestAt) { best = i; bestAt = at; }
      }
      if (best < 0) break;
      this.deadlines[best] = Number.POSITIVE_INFINITY;
      this.callbacks[best]!();
      if (this.cpu.stopReason !== null) break;
    }
    this.recompute();
    this.onDispatched?.();
  }
}

/**
 * floor(a × num / den) for integers (a may be negative), exact as long as num × den < 2^53:
 * a is split as q × den + r so no intermediate product exceeds that bound.
 */
export function ticksAt(a: number, den: number, num: number): number {
  if (den * num > Number.MAX_SAFE_INTEGER) throw new RangeError('clock ratio too large for exact arithmetic');
  const q = Math.floor(a / den);
  let r = a - q * den;
  let qq = q;
  // Guard against the float division rounding q one off for very large a.
  if (r < 0) { qq -= 1; r += den; } else if (r >= den) { qq += 1; r -= den; }
  const p = r * num;
  let k = Math.floor(p / den);
  if (k * den > p) k -= 1; else if ((k + 1) * den <= p) k += 1;
  return qq * num + k;
}
