/**
 * A stand-in for the `pv` hypervisor, just enough to run the kernel's blkfront/netfront on the
 * real CPU against the real back ends: the kernel boots natively (ring 0), but `drivers_init`
 * brings the front ends up (`xen_front_force`, with an identity `xen_p2m`), `int 0x82`
 * hypercalls for event_channel_op / grant_table_op are taken by a monitor hook and served by
 * EventChannels / GrantTable, and an event upcall is delivered as the IRQ the emulated device
 * would have raised, as the front end entered it in the kernel's `xen_evtchn_irq` table (14
 * disk, 11 net); its handler is the front end's (`blk_irq_fn` / `net_irq_fn`). The `pv` mode's
 * real upcall replaces the last part; everything else (rings, grants, channels, back ends,
 * device models) is the real thing.
 */
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { buildWorkload } from '../../src/guest/workloads/index.js';
import { EAX, EBX, ECX, EDX } from '../../src/machine/cpu/constants.js';
import { EventKind } from '../../src/machine/cpu/interrupts.js';
import { Machine, type RunOutcome } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { XEN_ERRNO, type DomId, type Mfn, type Pfn, type PvDomainContext } from '../../src/vmm/pv/domain-context.js';
import { HYPERVISOR_event_channel_op } from '../../src/vmm/pv/event-channel.js';
import { HYPERVISOR_grant_table_op } from '../../src/vmm/pv/grant-table.js';
import { SHARED_INFO, VCPU_INFO } from '../../src/vmm/pv/shared-info.js';
import { createSplitDrivers, splitDriverCosts, type SplitDrivers } from '../../src/vmm/pv/split-backends.js';

const KERNEL_VIRT = 0xc000_0000;
const SHARED_INFO_PHYS = 0x6f000;

export interface HarnessRun {
  readonly console: string;
  readonly outcome: RunOutcome;
  readonly machine: Machine;
  readonly drivers: SplitDrivers | null;
  readonly rejected: Map<string, number>;
}

/** Runs workload `name` natively (emulated ATA/e1000 drivers) or with the PV front ends under the stand-in. */
export function runWorkload(name: string, params: Record<string, string>, pv: boolean, profileId = 'core2-2008'): HarnessRun {
  const w = buildWorkload(name, params);
  const profile = loadProfile(profileId).profile;
  const m = new Machine({ profile, memoryMiB: 64, ...(w.machine.disk ? { disk: w.machine.disk } : {}), ...(w.machine.nic ? { nic: w.machine.nic } : {}) });
  m.loadMultiboot(toMultibootElf(w.image), 'kernel.elf');
  const rejected = new Map<string, number>();
  let drivers: SplitDrivers | null = null;
  if (pv) {
    const mem = m.mem;
    const frames = mem.guestSize / 4096;
    const sym = (name: string): number => {
      const y = w.image.symbols.find((x) => x.name === name);
      if (!y) throw new Error(`the kernel has no symbol ${name}`);
      return y.addr - KERNEL_VIRT;
    };
    // The kernel's P2M (identity here) and the switch that brings the front ends up natively.
    for (let i = 0; i < 8192; i++) mem.write32(sym('xen_p2m') + 4 * i, i);
    mem.write32(sym('xen_front_force'), 1);
    const evtchnIrq = sym('xen_evtchn_irq');
    const va2pa = (va: number, n: number): number => {
      const v = va >>> 0;
      return v >= KERNEL_VIRT && v + n <= KERNEL_VIRT + 32 * 1024 * 1024 ? v - KERNEL_VIRT : -1;
    };
    const ctx: PvDomainContext = {
      domid: 1 as DomId,
      mem,
      p2m: (pfn: Pfn) => pfn as number as Mfn,
      m2p: (mfn: Mfn) => ((mfn as number) < frames ? (mfn as number as Pfn) : -1),
      ownsMfn: (mfn: Mfn) => Number.isInteger(mfn) && (mfn as number) >= 0 && (mfn as number) < frames,
      copyFromGuest(va: number, dst: Uint8Array): boolean {
        const pa = va2pa(va, dst.length);
        if (pa < 0) return false;
        dst.set(mem.u8.subarray(pa, pa + dst.length));
        return true;
      },
      copyToGuest(va: number, src: Uint8Array): boolean {
        const pa = va2pa(va, src.length);
        if (pa < 0) return false;
        mem.u8.set(src, pa);
        return true;
      },
      charge: (category: string, cycles: number) => m.cpu.charge(category, cycles),
      raiseUpcall(): void {
        // The upcall: take every pending port (clearing it), raise its device's IRQ as a new edge.
        const si = SHARED_INFO_PHYS;
        mem.write32(si + VCPU_INFO.EVTCHN_PENDING_SEL, 0);
        for (let w32 = 0; w32 < 32; w32++) {
          const pend = mem.read32(si + SHARED_INFO.EVTCHN_PENDING + 4 * w32);
          if (pend === 0) continue;
          mem.write32(si + SHARED_INFO.EVTCHN_PENDING + 4 * w32, 0);
          for (let b = 0; b < 32; b++) {
            if ((pend & (1 << b)) === 0) continue;
            // The front end entered its port's IRQ + 1 in the kernel's xen_evtchn_irq table.
            const irq = mem.u8[evtchnIrq + w32 * 32 + b]! - 1;
            if (irq >= 0) { m.pic.setIrq(irq, false); m.pic.setIrq(irq, true); }
          }
        }
      },
      sharedInfoMfn: (SHARED_INFO_PHYS / 4096) as Mfn,
      countRejected: (what: string) => { rejected.set(what, (rejected.get(what) ?? 0) + 1); },
    };
    const d = createSplitDrivers(ctx, splitDriverCosts(profile), { disk: m.disk?.disk ?? null, nic: m.nic });
    drivers = d;
    m.cpu.monitor = {
      onEvent(cpu, vector, _code, kind): boolean {
        if (vector !== 0x82 || kind !== EventKind.Software) return false;
        const nr = cpu.r32[EAX]!;
        let rc: number;
        if (nr === HYPERVISOR_event_channel_op) rc = d.events.hypercall(cpu.r32[EBX]!, cpu.r32[ECX]!);
        else if (nr === HYPERVISOR_grant_table_op) rc = d.grants.hypercall(cpu.r32[EBX]!, cpu.r32[ECX]!, cpu.r32[EDX]!);
        else rc = -XEN_ERRNO.ENOSYS;
        cpu.r32[EAX] = rc;
        return true;
      },
    };
  }
  const outcome = m.run({ maxInstructions: w.maxInstructions });
  return { console: m.console.text(), outcome, machine: m, drivers, rejected };
}
