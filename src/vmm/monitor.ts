/**
 * The contract between a virtual machine monitor and the machine (docs/vmm-design.md).
 *
 * A monitor is TypeScript, not emulated x86: it attaches to one `Machine`'s CPU, sees every
 * exception and interrupt first (`onEvent`, through `cpu.monitor`), may install a handler
 * table overlay (`cpu.setTable`), and charges its own work with `cpu.charge(category,
 * cycles)`, so that `accountCycles` keeps every cycle in exactly one category.
 */
import type { Cpu } from '../machine/cpu/cpu.js';
import type { CpuMonitor, EventKind } from '../machine/cpu/interrupts.js';
import type { Machine } from '../machine/machine.js';

/** The execution modes (DESIGN.md, "Execution modes") that have a monitor so far. */
export const MONITOR_MODES = ['native', 'trap', 'hw', 'full', 'pv'] as const;
export type MonitorMode = (typeof MONITOR_MODES)[number];

/** Counters a monitor reports in the run record (all monotonic, integers). */
export type MonitorStats = Readonly<Record<string, number>>;

/** A virtual machine monitor for one machine. */
export interface Monitor extends CpuMonitor {
  /** The mode id (`native`, `trap`, ...). */
  readonly mode: MonitorMode;
  /**
   * Takes over the machine after the guest image is loaded (the CPU is in the loader's
   * entry state) and before it runs: deprivileges, builds shadow structures, hooks the CPU.
   */
  attach(machine: Machine): void;
  /** See `CpuMonitor.onEvent`. */
  onEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): boolean;
  /** Counters for the run record (exits per kind, hidden faults, shadow syncs, ...). */
  stats(): MonitorStats;
}

/** Throws a clear error for a mode that is not one of `MONITOR_MODES`. */
export function checkMode(mode: string): MonitorMode {
  if ((MONITOR_MODES as readonly string[]).includes(mode)) return mode as MonitorMode;
  throw new RangeError(`unknown mode "${mode}" (known: ${MONITOR_MODES.join(', ')})`);
}
