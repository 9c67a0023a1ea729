import { writeFileAtomicSync } from '../guest/image-format.js';
import type { RunOutcome } from '../machine/machine.js';
import type { MonitorMode, MonitorStats } from '../vmm/monitor.js';

/** The run record of `virtlab exec`: schema 'virtlab.run/1'. Key order is fixed. */
export interface RunRecord {
  readonly schema: 'virtlab.run/1';
  readonly image: { readonly path: string; readonly sha256: string; readonly format: 'multiboot' | 'flat' };
  /** The execution mode (DESIGN.md): `native`, or the monitor that ran the guest. */
  readonly mode: MonitorMode;
  readonly profile: { readonly name: string; readonly sha256: string };
  readonly machine: { readonly memoryMiB: number; readonly cpuHz: number };
  readonly limits: { readonly maxInstructions: number };
  readonly instructions: number;
  readonly cycles: number;
  readonly idleCycles: number;
  readonly accounting: RunOutcome['accounting'];
  /**
   * The counters at the guest's first entry to user mode (boot ends there: the workloads run
   * as user programs), `{instructions, cycles, categories}`; null if the guest never entered
   * ring 3. The experiment reports measure "cycles after boot" from it.
   */
  readonly userStart: RunOutcome['userStart'];
  readonly tlb: RunOutcome['tlb'];
  readonly exit: Readonly<Record<string, string | number>>;
  /** The process exit status `virtlab exec` returned. */
  readonly exitStatus: number;
  readonly consoleBytes: number;
  readonly consoleSha256: string;
  readonly events: RunOutcome['events'];
  readonly devices: RunOutcome['devices'];
  /** The monitor's counters (traps per kind, hidden faults, shadow syncs...); empty for native. */
  readonly monitor: MonitorStats;
  /** The mode's options, for modes that take any (`hw`: paging and VPID); absent otherwise. */
  readonly modeOptions?: Readonly<Record<string, string | number | boolean>>;
}

/** Builds the record in its fixed key order from a run's outcome. */
export function buildRunRecord(args: {
  imagePath: string; imageSha256: string; format: 'multiboot' | 'flat';
  profileName: string; profileSha256: string; memoryMiB: number; cpuHz: number;
  maxInstructions: number; outcome: RunOutcome; exitStatus: number;
  mode?: MonitorMode; monitor?: MonitorStats; modeOptions?: Readonly<Record<string, string | number | boolean>>;
}): RunRecord {
  const o = args.outcome;
  const exit: Record<string, string | number> = { reason: o.exit.reason };
  switch (o.exit.reason) {
    case 'exit-device': exit.code = o.exit.code; break;
    case 'unsupported':
      exit.address = o.exit.address;
      exit.bytes = o.exit.bytes;
      exit.disassembly = o.exit.disassembly;
      exit.detail = o.exit.detail;
      break;
    default: exit.detail = o.exit.detail; break;
  }
  return {
    schema: 'virtlab.run/1',
    image: { path: args.imagePath, sha256: args.imageSha256, format: args.format },
    mode: args.mode ?? 'native',
    profile: { name: args.profileName, sha256: args.profileSha256 },
    machine: { memoryMiB: args.memoryMiB, cpuHz: args.cpuHz },
    limits: { maxInstructions: args.maxInstructions },
    instructions: o.instructions,
    cycles: o.cycles,
    idleCycles: o.idleCycles,
    accounting: { total: o.accounting.total, categories: { ...o.accounting.categories } },
    userStart: o.userStart === null ? null : { instructions: o.userStart.instructions, cycles: o.userStart.cycles, categories: { ...o.userStart.categories } },
    tlb: {
      itlb: { ...o.tlb.itlb },
      dtlb: { ...o.tlb.dtlb },
      walkReferences: o.tlb.walkReferences,
      accessedDirtyUpdates: o.tlb.accessedDirtyUpdates,
    },
    exit,
    exitStatus: args.exitStatus,
    consoleBytes: o.console.bytes,
    consoleSha256: o.console.sha256,
    events: { ...o.events },
    devices: {
      portAccesses: o.devices.portAccesses, timerTicks: o.devices.timerTicks, spuriousInterrupts: o.devices.spuriousInterrupts,
      ...(o.devices.ata !== undefined ? { ata: { ...o.devices.ata } } : {}),
      ...(o.devices.e1000 !== undefined ? { e1000: { ...o.devices.e1000 } } : {}),
    },
    monitor: { ...(args.monitor ?? {}) },
    ...(args.modeOptions !== undefined ? { modeOptions: { ...args.modeOptions } } : {}),
  };
}

/** The record's bytes: 2-space JSON with a final newline (same record ⇒ same bytes). */
export function serializeRunRecord(r: RunRecord): string {
  return JSON.stringify(r, null, 2) + '\n';
}

/** Writes `text` to `file` atomically (a temporary file in the same directory, fsync, rename). */
export function writeFileAtomic(file: string, text: string): void {
  writeFileAtomicSync(file, Buffer.from(text, 'utf8'));
}
