/**
 * Several VMs on one machine (issue 8, item 1): two or more guests, each its own `Machine`
 * (memory, devices, CPU state, clock) with its own monitor, time-sliced on one logical CPU by
 * a deterministic schedule: a list of slices (which VM, how many guest instructions), run in
 * order and repeated; or, for callers that want it, a round-robin with a fixed quantum.
 *
 * A world switch charges `world-switch` to the VM switched in: the profile's VM exit + VM
 * entry figures (`virtualization.vmExit` + `vmEntry`; no profile has a dedicated
 * world-switch figure, so a switch is priced as one exit out of the previous VM and one entry
 * into the next: a stated approximation, docs/verification.md).
 *
 * The CPU's TLB is shared by the VMs. Each `Machine` keeps its own TLB arrays (they are the
 * entries of that VM's tag), so the sharing is modelled at the switch, from the previous VM's
 * TLB to the next's:
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
 *
 * VM lifetimes: a VM with `after: j` is created at the first round boundary (the start of the
 * schedule) after VM j has stopped, and takes VM j's tag
 * (`tag`, a VPID/ASID) when both name the same one — a recycled tag. On its first entry the
 * monitor flushes that tag's entries (INVVPID single-context, SDM Vol. 3C 29.4.3.3; AMD's
 * TLB_CONTROL flush-this-ASID): the previous owner's translations are gone. The mutant
 * `vpid-reuse-no-flush` skips that flush: the new VM starts with the previous owner's
 * entries (they carry its tag, so its lookups hit them).
 *
 * Scheduling and what the VMs do (docs/verification.md, "Several VMs on one machine"):
 * - a slice is counted in the VM's own retired instructions, and each VM's clock is its own
 *   cycle count: no VM observes another's time (there is no shared wall clock or TSC);
 * - a *halted* (blocked) VM keeps its slice: its CPU idles to its next timer event inside the
 *   slice, in its own time, as an idle loop would (a blocked VM does not yield early);
 * - a *stopped* VM (or one not created yet): with `stopped: 'skip'` (work-conserving, the
 *   default) its slices are dropped, so the other VMs run back to back without world
 *   switches — which VM B's lifetime changes: a channel (A's switch count and cycles); with
 *   `'idle'`, its slices go to the idle VM: the switches out and in still happen and are
 *   charged, and A's timeline is the same whatever B does;
 * - the instruction budget counts scheduled slices (an idle or cut-short slice counts in
 *   full, a skipped one not at all), so with `'idle'` when the run ends does not depend on
 *   what the VMs did either.
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
  /** Its VPID/ASID (tagged policies); default: its index + 1. */
  readonly tag?: number;
  /** Created only when VM `after` has stopped (a later VM; with the same `tag`, a recycled one). */
  readonly after?: number;
}

/** One slice of a schedule: VM `vm` runs `instructions` guest instructions. */
export interface Slice {
  readonly vm: number;
  readonly instructions: number;
}

export interface MultiVmOptions {
  /** Guest instructions per time slice, round-robin (used when `schedule` is absent). */
  readonly quantum?: number;
  /** The slices, run in order and repeated until the run ends (each VM must appear). */
  readonly schedule?: readonly Slice[];
  /** What a stopped (or not yet created) VM's slice is: dropped (default) or the idle VM's. */
  readonly stopped?: 'skip' | 'idle';
  readonly tlb: TlbPolicy;
  /** The machines' profile (the world-switch price). */
  readonly profile: Profile;
  /** Budget: scheduled instructions over all VMs (idle and cut-short slices count in full). */
  readonly maxInstructions: number;
  /** Stop as soon as this VM has stopped (default: when all have). */
  readonly stopWhen?: number;
  /** Called after each slice a VM ran (the harness acts for a VM between its slices). */
  readonly afterSlice?: (vm: number) => void;
}

/** The world-switch price from the profile: VM exit + VM entry (cycles), 0 when it has none. */
export function worldSwitchCycles(profile: Profile): number {
  const v = (profile as unknown as { virtualization?: { vmExit?: { value: number }; vmEntry?: { value: number } } }).virtualization;
  return (v?.vmExit?.value ?? 0) + (v?.vmEntry?.value ?? 0);
}

/** What a multi-VM run did. */
export interface MultiVmResult {
  readonly outcomes: readonly RunOutcome[];
  /** World switches into a VM (not counting the first start, nor switches to the idle VM). */
  readonly switches: number;
  /** Slices given to the idle VM (`stopped: 'idle'`). */
  readonly idleSlices: number;
  /** Slices run, per VM. */
  readonly slices: readonly number[];
  /** Single-tag flushes done when a VM took a recycled tag. */
  readonly tagFlushes: number;
}

/** A round-robin schedule: each VM `quantum` instructions in turn. */
export function roundRobin(vms: number, quantum: number): Slice[] {
  return Array.from({ length: vms }, (_, vm) => ({ vm, instructions: quantum }));
}

/** Copies one TLB's entries into another (same geometry): entries that were not flushed. */
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

/**
 * One slice: `Machine.run` without its outcome (which hashes the console and sums the
 * accounts: too much per slice when slices are short).
 */
function runSlice(m: Machine, n: number): void {
  const cpu = m.cpu;
  for (let left = n; cpu.stopReason === null && left > 0;) {
    const ran = cpu.run(left);
    left -= ran;
    if (ran === 0 && cpu.stopReason === null) break;
  }
  m.console.flush();
}

/** Checks the VMs and the schedule; one-line RangeErrors naming what is wrong. */
function checkSchedule(vms: readonly Vm[], options: MultiVmOptions): Slice[] {
  if (vms.length < 1) throw new RangeError('multi-vm: no VM');
  let schedule: Slice[];
  if (options.schedule !== undefined) {
    schedule = [...options.schedule];
    if (schedule.length === 0) throw new RangeError('multi-vm: the schedule has no slice');
    schedule.forEach((s, k) => {
      if (!Number.isInteger(s.vm) || s.vm < 0 || s.vm >= vms.length) throw new RangeError(`multi-vm: schedule slice ${k}: vm must be an index in 0..${vms.length - 1}, got ${s.vm}`);
      if (!Number.isInteger(s.instructions) || s.instructions < 1) throw new RangeError(`multi-vm: schedule slice ${k}: instructions must be a positive integer, got ${s.instructions}`);
    });
    for (let i = 0; i < vms.length; i++) if (!schedule.some((s) => s.vm === i)) throw new RangeError(`multi-vm: the schedule gives VM ${i} no slice`);
  } else {
    const q = options.quantum;
    if (q === undefined || !Number.isInteger(q) || q < 1) throw new RangeError(`multi-vm: quantum must be a positive integer, got ${q}`);
    schedule = roundRobin(vms.length, q);
  }
  vms.forEach((v, i) => {
    if (v.after !== undefined && (!Number.isInteger(v.after) || v.after < 0 || v.after >= vms.length || v.after === i)) throw new RangeError(`multi-vm: VM ${i}: after must name another VM (0..${vms.length - 1}), got ${v.after}`);
  });
  return schedule;
}

/** Runs the VMs by the schedule until all have stopped, `stopWhen` has, or the budget is spent. */
export function runMultiVm(vms: readonly Vm[], options: MultiVmOptions): MultiVmResult {
  const schedule = checkSchedule(vms, options);
  const skip = (options.stopped ?? 'skip') === 'skip';
  const cost = worldSwitchCycles(options.profile);
  const IDLE = -2;
  const tagOf = (i: number): number => vms[i]!.tag ?? i + 1;
  const created = vms.map((v) => v.after === undefined);
  const entered = vms.map(() => false);
  const slices = vms.map(() => 0);
  const stopped = (i: number): boolean => vms[i]!.machine.cpu.stopReason !== null;
  /** Created and not stopped. */
  const runnable = (i: number): boolean => !stopped(i) && created[i]!;
  /** Creates, at a round boundary, the VMs whose predecessor has stopped. */
  const create = (): void => {
    vms.forEach((v, i) => { if (!created[i] && created[v.after!] && stopped(v.after!)) created[i] = true; });
  };
  let budget = options.maxInstructions, prev = -1, lastRan = -1, switches = 0, idleSlices = 0, tagFlushes = 0;
  for (let k = 0; budget > 0; k = (k + 1) % schedule.length) {
    if (options.stopWhen !== undefined && stopped(options.stopWhen)) break;
    // A VM whose predecessor has stopped is created at the start of the next round: created
    // at once, its slices would be out of phase with the schedule by an amount that depends
    // on when the predecessor stopped (a channel the noninterference property found).
    if (k === 0) create();
    if (!vms.some((_, i) => runnable(i))) {
      // Nothing runnable: the run ends, unless a VM waits for the round boundary to be
      // created (the slices until then are skipped or idle, as any stopped VM's).
      if (!vms.some((v, i) => !created[i] && created[v.after!] && stopped(v.after!))) break;
    }
    const { vm: i, instructions } = schedule[k]!;
    if (!runnable(i)) {
      if (skip) continue;
      // The idle VM runs this slice: nothing executes, the next VM is switched in as usual.
      budget -= instructions;
      idleSlices++;
      prev = IDLE;
      continue;
    }
    const vm = vms[i]!, cpu = vm.machine.cpu;
    if (!entered[i] && vm.after !== undefined && tagOf(i) === tagOf(vm.after) && options.tlb !== 'flush') {
      // A recycled tag: INVVPID single-context on the first entry (the mutant forgets it).
      const old = vms[vm.after]!.machine.cpu;
      if (mutant('vpid-reuse-no-flush')) { copyTlb(old.itlb, cpu.itlb); copyTlb(old.dtlb, cpu.dtlb); cpu.resetFetch(); } else { old.flushTlb(false); cpu.flushTlb(false); tagFlushes++; }
    }
    entered[i] = true;
    if (prev !== i && prev !== -1) {
      switches++;
      if (cost > 0) cpu.charge('world-switch', cost);
      switch (options.tlb) {
        case 'flush':
          if (mutant('world-switch-no-flush') && lastRan >= 0 && lastRan !== i) {
            const p = vms[lastRan]!.machine.cpu;
            copyTlb(p.itlb, cpu.itlb); copyTlb(p.dtlb, cpu.dtlb); cpu.resetFetch();
          } else cpu.flushTlb(false);
          break;
        case 'tagged-shared':
          if (prev >= 0) { const p = vms[prev]!.machine.cpu; shareCapacity(p.itlb, cpu.itlb); shareCapacity(p.dtlb, cpu.dtlb); }
          break;
        case 'tagged-partitioned': break;
      }
    }
    runSlice(vm.machine, Math.min(instructions, budget));
    budget -= instructions;
    slices[i]!++;
    prev = i;
    lastRan = i;
    options.afterSlice?.(i);
  }
  return { outcomes: vms.map((v) => v.machine.outcome()), switches, idleSlices, slices, tagFlushes };
}
