/**
 * Wiring of the `pv` model's event channels, grant table and split-driver back ends for one
 * domain, with their cost figures. The hypervisor (`pv.ts`) calls `createSplitDrivers` once
 * when it builds the domain and routes `event_channel_op` / `grant_table_op` to
 * `drivers.events.hypercall` / `drivers.grants.hypercall`.
 *
 * The front-end ↔ back-end handshake is virtlab's simplification of xenstore (docs/pv.md):
 * each back end listens on a fixed domain-0 port (blkback 1, netback 2), and finds its ring
 * pages at fixed grant references (blkif 2, netif TX 3 / RX 4: the first refs after the two
 * Xen reserves for the console and xenstore). A missing device has no listener, so the front
 * end's EVTCHNOP_bind_interdomain fails with -EINVAL and its driver stays absent (-ENODEV).
 */
import type { Disk } from '../../machine/devices/block-device.js';
import type { E1000 } from '../../machine/devices/nic.js';
import { hasVmmFigures, toVmmCosts } from '../../profiles/index.js';
import type { Profile } from '../../profiles/schema.js';
import { Blkback, type BackendDeviceCosts } from './blkback.js';
import type { PvDomainContext } from './domain-context.js';
import { EventChannels, type EventChannelCosts } from './event-channel.js';
import { GrantTable, type GrantCosts } from './grant-table.js';
import { Netback, redirectLinkReceiver } from './netback.js';

/** Well-known domain-0 ports of the back ends (the handshake; xenstore's event-channel keys in Xen). */
export const BLKBACK_PORT = 1;
export const NETBACK_PORT = 2;

/**
 * Register accesses per operation of virtlab's native drivers (src/guest/kernel/drivers.ts),
 * which is what domain 0's driver does to the physical device on the guest's behalf:
 * an ATA READ/WRITE DMA request is 10 accesses in `ata_submit` (BMIDE stop, status clear, PRD
 * address, drive/LBA, count, 3 LBA bytes, command, start) and 4 in `ata_irq`; the e1000 is
 * driven through its I/O window (IOADDR then IODATA: 2 accesses per register), so a
 * transmitted frame is a TDT write and the completion's ICR read (4), a received frame the
 * ICR read and an RDT write (4).
 */
export const DOM0_ACCESSES = { blockRequest: 14, netTx: 4, netRx: 4 } as const;

/** Every figure the event channels, grant table and back ends charge. */
export interface SplitDriverCosts extends EventChannelCosts, GrantCosts, BackendDeviceCosts {}

/**
 * Figures from the profile: `paravirtualization.eventChannelSend`, `grantMap`, `grantUnmap`;
 * `devices.portIoEmulation` as the back end's per-request work (decoding one request and
 * updating the device model is the same order of work as one emulated register access; the
 * profile has no separate figure) and `devices.dmaPerByte` per byte copied. A profile without
 * virtualization figures (schema v1) gets core2-2008's values, marked provisional in
 * `provisional`.
 */
export function splitDriverCosts(profile: Profile): SplitDriverCosts & { readonly provisional: boolean } {
  // Domain 0 drives the real device with its native driver: the same register accesses the
  // guest's own native driver makes in the other modes, each at the profile's bus cost
  // (`events.portIo`; see DOM0_ACCESSES for the counts).
  const io = profile.events.portIo.value;
  const dom0 = {
    dom0BlockRequest: DOM0_ACCESSES.blockRequest * io,
    dom0NetTx: DOM0_ACCESSES.netTx * io,
    dom0NetRx: DOM0_ACCESSES.netRx * io,
  };
  if (hasVmmFigures(profile)) {
    const c = toVmmCosts(profile);
    return {
      eventChannelSend: c.pv.eventChannelSend, grantMap: c.pv.grantMap, grantUnmap: c.pv.grantUnmap,
      perRequest: c.devices.portIoEmulation, dmaPerByte: c.devices.dmaPerByte, ...dom0, provisional: false,
    };
  }
  // Provisional: the core2-2008 profile's estimates (see its sources), for schema-v1 profiles.
  return { eventChannelSend: 250, grantMap: 1200, grantUnmap: 1500, perRequest: 1000, dmaPerByte: 0.333, ...dom0, provisional: true };
}

/** The domain's event channels, grant table and back ends. */
export interface SplitDrivers {
  readonly events: EventChannels;
  readonly grants: GrantTable;
  readonly blkback: Blkback | null;
  readonly netback: Netback | null;
  /** Gives the link back to the e1000 (undoes the receive redirection). */
  detach(): void;
  /** Every counter, for the run record: `evtchn.*`, `gnttab.*`, `blkback.*`, `netback.*`. */
  stats(): Record<string, number>;
}

/**
 * Builds the event channels and grant table of the domain behind `ctx`, and a back end for
 * each device the machine has: blkback over the ATA controller's `Disk`, netback over the
 * e1000's `NetLink` (taking the link's arrivals from the e1000, which a PV guest never
 * programs).
 */
export function createSplitDrivers(ctx: PvDomainContext, costs: SplitDriverCosts, devices: { readonly disk?: Disk | null; readonly nic?: E1000 | null }): SplitDrivers {
  const events = new EventChannels(ctx, costs);
  const grants = new GrantTable(ctx, costs);
  const blkback = devices.disk ? new Blkback(ctx, events, grants, devices.disk, costs, BLKBACK_PORT) : null;
  if (!devices.disk) events.dom0Absent(BLKBACK_PORT);
  if (!devices.nic) events.dom0Absent(NETBACK_PORT);
  let netback: Netback | null = null;
  let undo = (): void => undefined;
  if (devices.nic) {
    netback = new Netback(ctx, events, grants, devices.nic.link, costs, NETBACK_PORT);
    undo = redirectLinkReceiver(devices.nic, netback);
  }
  const stats = (): Record<string, number> => {
    const out: Record<string, number> = {};
    const add = (prefix: string, c: object | null | undefined): void => {
      if (c) for (const [k, v] of Object.entries(c)) out[`${prefix}.${k}`] = v as number;
    };
    add('evtchn', events.counters);
    add('gnttab', grants.counters);
    add('blkback', blkback?.counters);
    add('netback', netback?.counters);
    return out;
  };
  return { events, grants, blkback, netback, detach: () => undo(), stats };
}
