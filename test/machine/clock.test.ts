import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Clock, ticksAt } from '../../src/machine/clock.js';
import { PIT_HZ } from '../../src/machine/devices/pit.js';
import { advanceTo, fakeCpu } from './fake-cpu.js';

describe('ticksAt', () => {
  it('is floor(a × num / den) exactly, checked against BigInt arithmetic', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: 1, max: 4_000_000_000 }),
      (a, den) => {
        const want = (BigInt(a) * BigInt(PIT_HZ)) / BigInt(den);
        const got = ticksAt(a, den, PIT_HZ);
        // Only meaningful while the result fits a double exactly.
        if (want > BigInt(Number.MAX_SAFE_INTEGER)) return true;
        return BigInt(got) === want;
      }), { numRuns: 2000 });
  });

  it('converts cycle counts past 2^53 / 1.19e6 without losing precision', () => {
    const cycles = 2 ** 52 + 12345; // cycles × PIT_HZ far exceeds 2^53
    const want = (BigInt(cycles) * 1_193_182n) / 500_000_000n;
    expect(BigInt(ticksAt(cycles, 500_000_000, PIT_HZ))).toBe(want);
  });
});

describe('Clock', () => {
  it('cycleOfTick is the first cycle at which the tick has been reached', () => {
    const clock = new Clock(fakeCpu(), 500_000_000);
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 40 }), (tick) => {
      const c = clock.cycleOfTick(tick, PIT_HZ);
      return clock.ticksAt(c, PIT_HZ) >= tick && clock.ticksAt(c - 1, PIT_HZ) < tick;
    }), { numRuns: 2000 });
  });

  it('fires timers in deadline order and keeps nextEventCycle at the earliest deadline', () => {
    const cpu = fakeCpu();
    const clock = new Clock(cpu, 1000);
    const fired: string[] = [];
    const a = clock.addTimer(() => fired.push(`a@${cpu.cycles}`));
    const b = clock.addTimer(() => fired.push(`b@${cpu.cycles}`));
    clock.arm(a, 50);
    clock.arm(b, 20);
    expect(cpu.nextEventCycle).toBe(20);
    advanceTo(cpu, 100);
    expect(fired).toEqual(['b@20', 'a@50']);
    expect(cpu.nextEventCycle).toBe(Number.POSITIVE_INFINITY);
    clock.arm(a, 200);
    clock.disarm(a);
    expect(cpu.nextEventCycle).toBe(Number.POSITIVE_INFINITY);
  });

  it('fires every due timer when the CPU overshoots several deadlines at once', () => {
    const cpu = fakeCpu();
    const clock = new Clock(cpu, 1000);
    const fired: number[] = [];
    const t1 = clock.addTimer(() => fired.push(1));
    const t2 = clock.addTimer(() => fired.push(2));
    clock.arm(t2, 10);
    clock.arm(t1, 10);
    cpu.cycles = 500;
    cpu.eventHook();
    expect(fired).toEqual([1, 2]); // equal deadlines: registration order
  });
});
