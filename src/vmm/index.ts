/** The monitors by mode, for the CLI and the experiment runner. */
import type { Profile } from '../profiles/index.js';
import { toVmmCosts } from '../profiles/index.js';
import { HwMonitor, type HwOptions } from './hw/hw.js';
import { checkMode, type Monitor, type MonitorMode } from './monitor.js';
import { NativeMonitor } from './native.js';
import { TrapMonitor, TRAP_MONITOR_MIB } from './trap.js';
import { FullMonitor, FULL_MONITOR_MIB } from './full/full.js';
import { PvMonitor, PV_MONITOR_MIB } from './pv/pv.js';

export { checkMode, MONITOR_MODES, type Monitor, type MonitorMode, type MonitorStats } from './monitor.js';
export type { HwOptions } from './hw/hw.js';

/** `hw` defaults (issue 4, item 6): nested paging, VPID on. */
export const HW_DEFAULTS: HwOptions = { paging: 'nested', vpid: true };

/**
 * Monitor memory (MiB, above the guest's RAM) that a mode needs: `Machine` option `monitorMiB`.
 * `hw` holds its EPT there: identity-mapping `guestMiB` with 4 KiB leaves takes one table page
 * per 2 MiB, one directory per GiB, plus the PDPT and PML4 (e.g. 67 pages for 128 MiB);
 * with `paging` 'shadow' it holds the shadow page tables instead.
 */
export function monitorMemoryMiB(mode: MonitorMode, guestMiB = 64, paging: HwOptions['paging'] = HW_DEFAULTS.paging): number {
  if (mode === 'trap') return TRAP_MONITOR_MIB;
  // Shadow tables: the same pool size as `trap`'s (the cache empties itself when it runs out).
  if (mode === 'hw' && paging === 'shadow') return TRAP_MONITOR_MIB;
  if (mode === 'full') return FULL_MONITOR_MIB;
  if (mode === 'pv') return PV_MONITOR_MIB;
  if (mode === 'hw') {
    const pages = Math.ceil(guestMiB / 2) + Math.ceil(guestMiB / 1024) + 2;
    return Math.max(1, Math.ceil((pages * 4096) / (1 << 20)));
  }
  return 0;
}

/** What a monitor is built from: the profile (its VMM figures) and the `hw` options. */
export interface MonitorOptions {
  /** The machine's profile; `hw` needs a virtlab.profile/2 profile (`toVmmCosts`). */
  readonly profile?: Profile;
  /** `hw` only; defaults `HW_DEFAULTS`. */
  readonly paging?: HwOptions['paging'];
  readonly vpid?: boolean;
}

/** A new monitor for `mode` (a name checked with `checkMode`). */
export function createMonitor(mode: MonitorMode | string, options: MonitorOptions = {}): Monitor {
  const m = checkMode(mode);
  switch (m) {
    case 'native': return new NativeMonitor();
    case 'trap': return new TrapMonitor();
    case 'full': return new FullMonitor();
    case 'pv': return new PvMonitor(options.profile);
    case 'hw': {
      if (options.profile === undefined) throw new Error('createMonitor: hw needs the profile (its VM exit/entry and handler figures)');
      const costs = toVmmCosts(options.profile);
      const paging = options.paging ?? HW_DEFAULTS.paging, vpid = options.vpid ?? HW_DEFAULTS.vpid;
      // A feature the modelled CPU does not have cannot be used (p4-2005, core2-2008: no EPT, no VPID).
      if (paging === 'nested' && !costs.nestedPaging) throw new RangeError(`hw: profile ${options.profile.name} has no nested paging (EPT/NPT): use --paging shadow`);
      if (vpid && !costs.vpid) throw new RangeError(`hw: profile ${options.profile.name} has no VPID: use --vpid off`);
      return new HwMonitor(costs, { paging, vpid });
    }
  }
}
