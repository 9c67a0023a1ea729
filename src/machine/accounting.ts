import type { Cpu } from './cpu/cpu.js';

/** One accounting category: cycles charged to it and how many events made them. */
export interface CategoryTotal {
  readonly cycles: number;
  readonly count: number;
}

/**
 * Where a run's cycles went. Every cycle is in exactly one category and the categories sum to
 * `total` (DESIGN.md, "Cycle accounting"). On the bare machine the categories are `guest`
 * (instructions, their memory operands, interrupt delivery), `page-walk` (TLB-miss walk
 * references) and `idle` (halted, waiting for an interrupt); the virtualization modes add theirs
 * (charged through `Cpu.charge`).
 */
export interface CycleAccounting {
  readonly total: number;
  readonly categories: Readonly<Record<string, CategoryTotal>>;
}

/**
 * Splits the CPU's cycle count into categories. Overhead categories are derived from their
 * counters (a walk reference always costs `cost.walkRef`), and `guest` is the remainder, so
 * the hot path keeps a single cycle counter and the sum holds by construction.
 */
export function accountCycles(cpu: Cpu): CycleAccounting {
  const walk = cpu.walkRefs * cpu.cost.walkRef;
  const idle = cpu.idleCycles;
  // Monitor work charged through `cpu.charge`, by category name, sorted (a stable record).
  let charged = 0;
  const extra: Record<string, CategoryTotal> = {};
  for (const name of [...cpu.overhead.keys()].sort()) {
    if (name === 'guest' || name === 'page-walk' || name === 'idle') throw new Error(`cycle accounting: "${name}" cannot be charged by a monitor`);
    const c = cpu.overhead.get(name)!;
    extra[name] = { cycles: c.cycles, count: c.count };
    charged += c.cycles;
  }
  const guest = cpu.cycles - walk - idle - charged;
  if (guest < 0) throw new Error(`cycle accounting is inconsistent: total ${cpu.cycles} < page-walk ${walk} + idle ${idle} + charged ${charged}`);
  return {
    total: cpu.cycles,
    categories: {
      guest: { cycles: guest, count: cpu.instructions },
      'page-walk': { cycles: walk, count: cpu.walkRefs },
      idle: { cycles: idle, count: idle > 0 ? 1 : 0 },
      ...extra,
    },
  };
}
