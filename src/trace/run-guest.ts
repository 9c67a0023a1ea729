/**
 * Runs one guest image under one mode and profile and gives its run record: the library form
 * of `virtlab exec`, for the CLI, the experiment runner and the tests. (A trace replay is the
 * same run with its inputs taken from the trace.)
 */
import { createHash } from 'node:crypto';
import { ImageError, isElf, parseElf32 } from '../guest/elf.js';
import type { WorkloadMachine } from '../guest/workloads/index.js';
import { Machine, type RunOutcome, type RunProgress } from '../machine/machine.js';
import type { LoadedProfile } from '../profiles/index.js';
import { createMonitor, HW_DEFAULTS, monitorMemoryMiB, type Monitor, type MonitorMode } from '../vmm/index.js';
import { statusFor } from './exit-status.js';
import { buildRunRecord, type RunRecord } from '../trace/run-record.js';

/** Options of the modes that take any (`hw`: paging and VPID). */
export interface ModeOptions {
  readonly paging?: 'nested' | 'shadow';
  readonly vpid?: boolean;
}

/** Everything a run depends on. */
export interface GuestRunSpec {
  /** The image bytes and the name it is reported under (a path, or `workload:NAME`). */
  readonly image: { readonly bytes: Uint8Array; readonly path: string };
  /** A raw binary's start (default: the image is a Multiboot ELF). */
  readonly flat?: { readonly loadAddress: number; readonly entry?: number; readonly mode?: 'protected32' | 'real' };
  /** Multiboot command line (default ''). */
  readonly cmdline?: string;
  readonly memoryMiB?: number;
  /** Devices (fresh objects per run: a disk is modified by the run). */
  readonly devices?: WorkloadMachine;
  readonly mode: MonitorMode;
  readonly modeOptions?: ModeOptions;
  readonly profile: LoadedProfile;
  readonly maxInstructions: number;
  readonly sliceInstructions?: number;
  readonly onProgress?: (p: RunProgress) => void;
  /** Receives the guest's console bytes as they are produced. */
  readonly onConsole?: (chunk: Uint8Array) => void;
}

/** A finished run. */
export interface GuestRun {
  readonly outcome: RunOutcome;
  readonly record: RunRecord;
  /** The process status (`statusFor`) and the message for a run that did not exit normally. */
  readonly status: number;
  readonly message: string | null;
  readonly monitor: Monitor;
  readonly machine: Machine;
}

/**
 * Builds the machine and the monitor, loads the image, runs it. Throws RangeError for a
 * mode/profile combination the monitor cannot run (e.g. EPT on a profile without it) and
 * ImageError for an image that cannot be loaded.
 */
export function runGuest(spec: GuestRunSpec): GuestRun {
  const prepared = prepareGuest(spec);
  const outcome = prepared.machine.run({ maxInstructions: spec.maxInstructions, sliceInstructions: spec.sliceInstructions, onProgress: spec.onProgress });
  return finishGuestRun(spec, prepared, outcome);
}

/** A machine built, loaded and taken over by its monitor, not yet run (`runGuest`'s first half). */
export interface PreparedGuest {
  readonly machine: Machine;
  readonly monitor: Monitor;
  readonly memoryMiB: number;
  readonly paging: 'nested' | 'shadow';
  readonly vpid: boolean;
}

/**
 * Builds the machine and the monitor and loads the image, as `runGuest` does, without running
 * it: for the trace recorder and replayer, which run it their own way.
 */
export function prepareGuest(spec: Omit<GuestRunSpec, 'maxInstructions'>): PreparedGuest {
  const memoryMiB = spec.memoryMiB ?? 64;
  const paging = spec.modeOptions?.paging ?? HW_DEFAULTS.paging;
  const vpid = spec.modeOptions?.vpid ?? HW_DEFAULTS.vpid;
  const monitor = createMonitor(spec.mode, { profile: spec.profile.profile, paging, vpid });
  const { bytes, path } = spec.image;
  const machine = new Machine({
    memoryMiB, profile: spec.profile.profile, disk: spec.devices?.disk, nic: spec.devices?.nic,
    monitorMiB: monitorMemoryMiB(spec.mode, memoryMiB, paging),
  });
  if (spec.flat !== undefined) {
    machine.loadFlat(bytes, path, spec.flat);
  } else {
    try {
      machine.loadMultiboot(bytes, path, spec.cmdline ?? '');
    } catch (e) {
      if (e instanceof ImageError && e.detail.startsWith('no multiboot header')) {
        // A more useful message when the file is not what a Multiboot loader can take at all.
        if (isElf(bytes)) parseElf32(bytes, path);
        else throw new ImageError(path, 'not an ELF file and no multiboot header in the first 8192 bytes (a raw binary needs --flat ADDR)');
      }
      throw e;
    }
  }
  monitor.attach(machine);
  if (spec.onConsole) machine.console.listener = spec.onConsole;
  return { machine, monitor, memoryMiB, paging, vpid };
}

/** The run record and status of a prepared guest that has run (`runGuest`'s second half). */
export function finishGuestRun(spec: GuestRunSpec, prepared: PreparedGuest, outcome: RunOutcome): GuestRun {
  const { machine, monitor, memoryMiB, paging, vpid } = prepared;
  const { bytes, path } = spec.image;
  const { status, message } = statusFor(outcome);
  const record = buildRunRecord({
    imagePath: path,
    imageSha256: createHash('sha256').update(bytes).digest('hex'),
    format: spec.flat !== undefined ? 'flat' : 'multiboot',
    profileName: spec.profile.name,
    profileSha256: spec.profile.sha256,
    memoryMiB,
    cpuHz: spec.profile.profile.cpu.frequencyHz.value,
    maxInstructions: spec.maxInstructions,
    outcome,
    exitStatus: status,
    mode: spec.mode,
    monitor: monitor.stats(),
    modeOptions: spec.mode === 'hw' ? { paging, vpid: vpid ? 'on' : 'off' } : undefined,
  });
  return { outcome, record, status, message, monitor, machine };
}
