import type { Cpu } from '../../src/machine/cpu/cpu.js';

/** The part of the CPU that Clock and devices touch, for device tests without a CPU. */
export interface FakeCpu {
  cycles: number;
  nextEventCycle: number;
  eventHook: () => void;
  stopReason: unknown;
  attention: number;
  stop(reason: unknown): void;
}

export function fakeCpu(): FakeCpu & Cpu {
  const f: FakeCpu = {
    cycles: 0, nextEventCycle: Number.POSITIVE_INFINITY, eventHook: () => {}, stopReason: null, attention: 0,
    // Same contract as Cpu.stop: the first reason wins.
    stop(reason) { if (f.stopReason === null) { f.stopReason = reason; f.attention |= 1; } },
  };
  return f as FakeCpu & Cpu;
}

/** Advances time to `cycle`, firing due events in order as the CPU would between instructions. */
export function advanceTo(cpu: FakeCpu, cycle: number): void {
  while (cpu.nextEventCycle <= cycle) {
    cpu.cycles = Math.max(cpu.cycles, cpu.nextEventCycle);
    cpu.eventHook();
  }
  cpu.cycles = cycle;
}
