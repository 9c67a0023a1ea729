/**
 * A small PvDomainContext for the unit tests of the event channels, grant tables and back
 * ends: machine memory of 256 frames; the domain (id 1) owns frames 0..127 with P2M identity;
 * frames 128..255 belong to someone else. Guest virtual = physical for the domain's frames
 * (copyFromGuest/copyToGuest fail elsewhere, as an unmapped address would).
 */
import type { Cpu } from '../../src/machine/cpu/cpu.js';
import { Clock } from '../../src/machine/clock.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import type { DomId, Mfn, Pfn, PvDomainContext } from '../../src/vmm/pv/domain-context.js';
import { VCPU_INFO } from '../../src/vmm/pv/shared-info.js';

export const OWNED_FRAMES = 128;
export const SHARED_INFO_MFN = 100;

export interface FakeContext extends PvDomainContext {
  readonly charges: Map<string, { cycles: number; count: number }>;
  readonly rejected: Map<string, number>;
  upcalls: number;
}

export function fakeContext(domid = 1): FakeContext {
  const mem = new PhysicalMemory(256 * 4096);
  const charges = new Map<string, { cycles: number; count: number }>();
  const rejected = new Map<string, number>();
  const owns = (mfn: number): boolean => Number.isInteger(mfn) && mfn >= 0 && mfn < OWNED_FRAMES;
  const inGuest = (va: number, n: number): boolean => va >= 0 && va + n <= OWNED_FRAMES * 4096;
  const ctx: FakeContext = {
    domid: domid as DomId,
    mem,
    p2m(pfn: Pfn): Mfn {
      if (!owns(pfn)) throw new RangeError(`pfn ${pfn} out of range`);
      return pfn as number as Mfn;
    },
    m2p(mfn: Mfn): Pfn | -1 { return owns(mfn) ? (mfn as number as Pfn) : -1; },
    ownsMfn(mfn: Mfn): boolean { return owns(mfn); },
    copyFromGuest(va: number, dst: Uint8Array): boolean {
      if (!inGuest(va, dst.length)) return false;
      dst.set(mem.u8.subarray(va, va + dst.length));
      return true;
    },
    copyToGuest(va: number, src: Uint8Array): boolean {
      if (!inGuest(va, src.length)) return false;
      mem.u8.set(src, va);
      return true;
    },
    charge(category: string, cycles: number): void {
      if (!Number.isInteger(cycles) || cycles < 0) throw new RangeError(`bad charge ${cycles}`);
      const c = charges.get(category) ?? { cycles: 0, count: 0 };
      c.cycles += cycles; c.count++;
      charges.set(category, c);
    },
    raiseUpcall(): void {
      ctx.upcalls++;
      mem.u8[SHARED_INFO_MFN * 4096 + VCPU_INFO.EVTCHN_UPCALL_PENDING] = 1;
    },
    sharedInfoMfn: SHARED_INFO_MFN as Mfn,
    countRejected(what: string): void { rejected.set(what, (rejected.get(what) ?? 0) + 1); },
    charges,
    rejected,
    upcalls: 0,
  };
  return ctx;
}

/** A clock over a stand-in CPU whose cycle count the test moves. */
export function fakeClock(): { clock: Clock; advanceTo(cycle: number): void; readonly now: number } {
  const cpu = { cycles: 0, eventHook: null as (() => void) | null, nextEventCycle: Number.POSITIVE_INFINITY, stopReason: null };
  const clock = new Clock(cpu as unknown as Cpu, 1_000_000_000);
  return {
    clock,
    get now() { return cpu.cycles; },
    advanceTo(cycle: number): void {
      cpu.cycles = cycle;
      while (cpu.nextEventCycle <= cpu.cycles) cpu.eventHook!();
    },
  };
}

/** Writes a little-endian structure of (offset, bytes, value) fields at `addr`. */
export function poke(mem: PhysicalMemory, addr: number, fields: readonly [number, 1 | 2 | 4, number][]): void {
  for (const [off, n, v] of fields) {
    if (n === 1) mem.write8(addr + off, v & 0xff);
    else if (n === 2) mem.write16(addr + off, v & 0xffff);
    else mem.write32(addr + off, v | 0);
  }
}
