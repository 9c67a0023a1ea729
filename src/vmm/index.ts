/** The monitors by mode, for the CLI and the experiment runner. */
import { checkMode, type Monitor, type MonitorMode } from './monitor.js';
import { NativeMonitor } from './native.js';
import { TrapMonitor, TRAP_MONITOR_MIB } from './trap.js';

export { checkMode, MONITOR_MODES, type Monitor, type MonitorMode, type MonitorStats } from './monitor.js';

/** Monitor memory (MiB, above the guest's RAM) that a mode needs: `Machine` option `monitorMiB`. */
export function monitorMemoryMiB(mode: MonitorMode): number {
  return mode === 'trap' ? TRAP_MONITOR_MIB : 0;
}

/** A new monitor for `mode` (a name checked with `checkMode`). */
export function createMonitor(mode: MonitorMode | string): Monitor {
  const m = checkMode(mode);
  switch (m) {
    case 'native': return new NativeMonitor();
    case 'trap': return new TrapMonitor();
  }
}
