/**
 * Several VMs on one machine (issue 8, item 1): two or more guests, each its own `Machine`
 * (memory, devices, CPU state) with its own monitor of one kind, time-sliced on one logical
 * CPU by a deterministic round-robin with a quantum in instructions.
 *
 * A world switch charges `world-switch` to the VM switched in: the profile's VM exit + VM
 * entry figures (`virtualization.vmExit` + `vmEntry`; no profile has a dedicated
 * world-switch figure, so a switch is priced as one exit out of the previous VM and one entry
 * into the next: a stated approximation, docs/verification.md).
 *
 * The CPU's TLB is shared by the VMs. Each `Machine` keeps its own TLB arrays, so the sharing
 * is modelled at the switch, from the previous VM's TLB to the next's:
 * - `flush` (untagged TLB): every switch flushes it, so the VM switched in starts cold,
 *   whatever the other VM did: no TLB channel, at the price of refills;
 * - `tagged-shared` (VPID/ASID tags, one TLB's capacity): entries survive the switch, but the
 *   previous VM's entries occupy ways of the same sets, evicting the next VM's: its refill
 *   cost depends on what the other VM touched — a timing channel;
 * - `tagged-partitioned` (tags, capacity partitioned per VM): entries survive and nobody
 *   evicts anybody's: no channel.
 * The mutant `world-switch-no-flush` makes `flush` forget to flush: the VM switched in then
 * holds the other VM's translations (an untagged TLB that is not flushed is incorrect, not
 * just leaky).
 */
import type { Machine, RunOutcome } from '../machine/machine.js';
import type { Tlb } from '../machine/tlb.js';
import type { Profile } from '../profiles/index.js';
import type { Monitor } from './monitor.js';
import { mutant } from './mutants.js';

/** How the shared TLB behaves at a world switch. */
export const TLB_POLICIES = ['flush', 'tagged-shared', 'tagged-partitioned'] as const;
export type TlbPolicy = (typeof TLB_POLICIES)[number];

/** Whether a policy claims timing isolation through the TLB. */
export const CLAIMS_TIMING_ISOLATION: Readonly<Record<TlbPolicy, boolean>> = {
  flush: true, 'tagged-shared': false, 'tagged-partitioned': true,
};

/** One VM: its machine and its monitor (null for native). */
export interface Vm {
  readonly machine: Machine;
  readonly monitor: Monitor | null;
}

export interface MultiVmOptions {
  /** Guest instructions per time slice. */
  readonly quantum: number;
  readonly tlb: TlbPolicy;
  /** The machines' profile (the world-switch price). */
  readonly profile: Profile;
  /** Total instruction budget over all VMs. */
  readonly maxInstructions: number;
  /** Stop as soon as this VM has stopped (default: when all have). */
  readonly stopWhen?: number;
}

/** The world-switch price from the profile: VM exit + VM entry (cycles), 0 when it has none. */
export function worldSwitchCycles(profile: Profile): number {
  const v = (profile as unknown as { virtualization?: { vmExit?: { value: number }; vmEntry?: { value: number } } }).virtualization;
  return (v?.vmExit?.value ?? 0) + (v?.vmEntry?.value ?? 0);
}

/** What a multi-VM run did. */
export interface MultiVmResult {
  readonly outcomes: readonly RunOutcome[];
  readonly switches: number;
}

/** Copies one TLB's entries into another (same geometry): the untagged TLB that was not flushed. */
function copyTlb(from: Tlb, to: Tlb): void {
  to.tag.set(from.tag); to.frame.set(from.frame); to.perm.set(from.perm);
}

/** The previous VM's valid entries take ways from the next VM's sets (shared capacity). */
function shareCapacity(prev: Tlb, next: Tlb): void {
  const ways = next.ways;
  for (let s = 0; s < next.sets; s++) {
    let used = 0;
    for (let i = s * ways; i < (s + 1) * ways; i++) if (prev.tag[i] !== -1) used++;
    // Keep at most `ways - used` of next's entries in this set (the lowest ways, deterministically).
    let keep = ways - used;
    for (let i = s * ways; i < (s + 1) * ways; i++) {
      if (next.tag[i] === -1) continue;
      if (keep > 0) keep--; else { next.tag[i] = -1; next.counters.evictions++; }
    }
  }
}

/** Runs the VMs round-robin until all have stopped or the budget is spent. */
export function runMultiVm(vms: readonly Vm[], options: MultiVmOptions): MultiVmResult {
  if (vms.length < 1) throw new RangeError('multi-vm: no VM');
  if (!Number.isInteger(options.quantum) || options.quantum < 1) throw new RangeError(`multi-vm: quantum must be a positive integer, got ${options.quantum}`);
  const cost = worldSwitchCycles(options.profile);
  let budget = options.maxInstructions, prev = -1, switches = 0;
  for (;;) {
    let ranAny = false;
    for (let i = 0; i < vms.length && budget > 0; i++) {
      const vm = vms[i]!, cpu = vm.machine.cpu;
      if (cpu.stopReason !== null) continue;
      if (options.stopWhen !== undefined && vms[options.stopWhen]!.machine.cpu.stopReason !== null) break;
      if (prev !== i && prev >= 0) {
        const p = vms[prev]!.machine.cpu;
        switches++;
        if (cost > 0) cpu.charge('world-switch', cost);
        switch (options.tlb) {
          case 'flush':
            if (mutant('world-switch-no-flush')) { copyTlb(p.itlb, cpu.itlb); copyTlb(p.dtlb, cpu.dtlb); }
            else cpu.flushTlb(false);
            break;
          case 'tagged-shared': shareCapacity(p.itlb, cpu.itlb); shareCapacity(p.dtlb, cpu.dtlb); break;
          case 'tagged-partitioned': break;
        }
      }
      const before = cpu.instructions;
      vm.machine.run({ maxInstructions: Math.min(options.quantum, budget) });
      const ran = cpu.instructions - before;
      budget -= Math.max(ran, 1);
      prev = i;
      ranAny = true;
    }
    if (!ranAny || budget <= 0) break;
    if (options.stopWhen !== undefined && vms[options.stopWhen]?.machine.cpu.stopReason !== null) break;
  }
  return { outcomes: vms.map((v) => v.machine.outcome()), switches };
}
