/**
 * Runs a generated guest (guest-program.ts) under one monitor configuration and reads its
 * guest-visible outcome. A configuration is a mode of `MONITOR_MODES` with `hw` split by
 * its paging (`hw-nested`, `hw-shadow`).
 */
import { Machine } from '../machine/machine.js';
import { loadProfile, type LoadedProfile } from '../profiles/index.js';
import { createMonitor, MONITOR_MODES, monitorMemoryMiB, type Monitor } from '../vmm/index.js';
import { buildGuest, LAYOUT, outcomeOf, type GuestProgram, type Outcome } from './guest-program.js';
import { guestRamDma } from '../machine/devices/block-device.js';
import { DmaWatch } from './invariants.js';

/** A monitor configuration the verifier runs guests under. */
export type Config = string;

/** Every configuration, from `MONITOR_MODES` (a mode added there appears here). */
export const CONFIGS: readonly Config[] = MONITOR_MODES.flatMap((m) => (m === 'hw' ? ['hw-nested', 'hw-shadow'] : [m]));

/**
 * Configurations that cannot run the verifier's flat harness, with why (excluded from the
 * properties and said so in their report).
 */
export const UNSUPPORTED_CONFIGS: Readonly<Record<string, string>> = {
  pv: 'pv runs only a paravirtualized kernel (privileged operations at pv-op sites patched to hypercalls); the flat harness executes them raw',
};

/** The profile the verifier uses: it has EPT and VPID (needed by hw-nested). */
let profile: LoadedProfile | null = null;
export function verifyProfile(): LoadedProfile {
  if (profile === null) profile = loadProfile('skylake-2015');
  return profile;
}

/** A finished run of a generated guest. */
export interface VerifyRun {
  readonly outcome: Outcome;
  readonly machine: Machine;
  readonly monitor: Monitor | null;
  /** The run's exit in one line. */
  readonly exit: string;
  /** The DMA watch (`dmaWatch` runs), else null or absent. */
  readonly dma?: DmaWatch | null;
}

export interface RunOptions {
  /** Instruction budget (default 200 000: the harness boots in about 4 000). */
  readonly maxInstructions?: number;
  /**
   * Attach an ATA disk (for DMA actions). Its sectors hold a nonzero pattern, so that a stray
   * DMA write shows in the memory it lands on.
   */
  readonly disk?: boolean;
  /**
   * With `disk`: watch every DMA access of the disk (invariants.ts `DmaWatch`, around the
   * device's own `guestRamDma`); a violation stops the run like `check`'s.
   */
  readonly dmaWatch?: boolean;
  /** Monitor memory for `native` too (MiB; to observe stray writes above guest RAM). */
  readonly nativeMonitorMiB?: number;
  /** Called every `checkEvery` instructions and at the end (invariant checks); a string stops the run as a violation. */
  readonly check?: (m: Machine, monitor: Monitor | null) => string | null;
  readonly checkEvery?: number;
  /** Built guest bytes (to avoid re-assembling for each configuration). */
  readonly bytes?: Uint8Array;
}

/** Builds the machine for `config`, attaches the monitor (mutants are read here), loads `bytes`. */
export function prepare(config: Config, bytes: Uint8Array, options: RunOptions = {}): { machine: Machine; monitor: Monitor | null; console: number[]; dma: DmaWatch | null } {
  const prof = verifyProfile().profile;
  const mode = config.startsWith('hw') ? 'hw' : config;
  const paging = config === 'hw-shadow' ? 'shadow' : 'nested';
  const monitorMiB = mode === 'native' ? (options.nativeMonitorMiB ?? 0) : monitorMemoryMiB(mode as never, LAYOUT.guestMiB, paging);
  const dma = options.disk && options.dmaWatch ? new DmaWatch() : null;
  const machine = new Machine({ memoryMiB: LAYOUT.guestMiB, profile: prof, monitorMiB, disk: options.disk ? { seed: 7, image: diskPattern(), ...(dma !== null ? { dma } : {}) } : undefined });
  // The device's own bound (mutants are read here), watched.
  if (dma !== null) {
    dma.bind(machine.mem, guestRamDma(machine.mem, () => { machine.disk!.counters.dmaOutsideRam++; }), () => machine.disk!.counters.dmaOutsideRam);
    dma.onViolation = (msg) => { dma.onViolation = null; machine.cpu.stop({ kind: 'shutdown', detail: msg }); };
  }
  const console: number[] = [];
  machine.io.registerWrite8(0xe9, (_p, v) => { console.push(v & 0xff); });
  machine.loadFlat(bytes, 'verify-guest.bin', { loadAddress: LAYOUT.code });
  const monitor = mode === 'native' ? null : createMonitor(mode, { profile: prof, paging, vpid: true });
  monitor?.attach(machine);
  return { machine, monitor, console, dma };
}

/** The verifier's disk: 64 sectors of a nonzero byte pattern (0xA5 xor the low byte of the offset, never 0). */
function diskPattern(): Uint8Array {
  const img = new Uint8Array(64 * 512);
  for (let i = 0; i < img.length; i++) img[i] = (0xa5 ^ (i & 0xff)) || 0x5a;
  return img;
}

/** One line for a machine's exit. */
export function exitLine(m: Machine): string {
  const e = m.outcome().exit;
  if (e.reason === 'exit-device') return `exit ${e.code}`;
  if (e.reason === 'unsupported') return `unsupported ${e.disassembly}: ${e.detail}`;
  return `${e.reason}: ${e.detail}`;
}

/** Runs `p` under `config` and reads its outcome. */
export function runProgram(p: GuestProgram, config: Config, options: RunOptions = {}): VerifyRun {
  const bytes = options.bytes ?? buildGuest(p);
  const { machine, monitor, console, dma } = prepare(config, bytes, options);
  const max = options.maxInstructions ?? 200_000;
  let violation: string | null = null;
  const check = dma === null ? options.check
    : (m: Machine, mon: Monitor | null): string | null => dma.violation ?? options.check?.(m, mon) ?? null;
  if (check === undefined) {
    machine.run({ maxInstructions: max });
  } else {
    const every = options.checkEvery ?? 500;
    let left = max;
    try {
      while (left > 0 && machine.cpu.stopReason === null && violation === null) {
        const before = machine.cpu.instructions;
        machine.run({ maxInstructions: Math.min(every, left) });
        const ran = machine.cpu.instructions - before;
        left -= Math.max(ran, 1);
        violation = check(machine, monitor);
      }
    } catch (e) {
      // A monitor that trips over memory a stray DMA corrupted: the DMA violation is the finding.
      if (dma?.violation == null) throw e;
      violation = dma.violation;
    }
  }
  const exit = violation !== null ? `violation: ${violation}` : exitLine(machine);
  return { outcome: outcomeOf(machine, exit, Uint8Array.from(console), p.paging), machine, monitor, exit, dma };
}
