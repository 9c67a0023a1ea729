import type { Cpu } from '../machine/cpu/cpu.js';
import type { EventKind } from '../machine/cpu/interrupts.js';
import type { Machine } from '../machine/machine.js';
import type { Monitor, MonitorStats } from './monitor.js';

/**
 * `native`: the bare machine, the baseline. Attaching changes nothing: no handler overlay,
 * no `cpu.monitor` (so event delivery does not even make the call), nothing charged.
 */
export class NativeMonitor implements Monitor {
  readonly mode = 'native' as const;
  attach(machine: Machine): void {
    if (machine.cpu.monitor !== null) throw new Error('native: the machine already has a monitor');
  }
  /** Never called (native leaves `cpu.monitor` null); lets every event through. */
  onEvent(_cpu: Cpu, _vector: number, _code: number, _kind: EventKind): boolean { return false; }
  stats(): MonitorStats { return {}; }
}
