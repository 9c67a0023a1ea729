/**
 * Runs the committed test guests (test/guests/bin/*.elf, multiboot kernels built by
 * test/guests/build.sh) on virtlab and compares them with what QEMU printed
 * (test/guests/expected/*.json, recorded by test/guests/record-qemu.sh). Shared by the
 * end-to-end tests, the status report (guest-report.ts) and the benchmark.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine, type RunOutcome } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';

/** The repository root: found by walking up (this file also runs compiled, from dist/). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'test', 'guests', 'bin'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find test/guests/bin above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const ROOT = findRoot();
export const GUESTS = join(ROOT, 'test', 'guests');

/** RAM given to guests: QEMU's -m 128 when recording (mem_upper in `hello` depends on it). */
export const GUEST_MEMORY_MIB = 128;

/** What QEMU did with a guest, as recorded by record-qemu.sh. */
export interface QemuRecord {
  readonly guest: string;
  /** Bytes written to port 0xE9, latin-1. */
  readonly debugcon: string;
  /** Bytes sent on COM1, latin-1. */
  readonly serial: string;
  /** QEMU's process exit status: (code << 1) | 1 after an isa-debug-exit write, 0 after a triple fault. */
  readonly exitStatus: number;
  readonly exitCode: number | null;
  readonly qemuVersion: string;
  readonly command: string;
}

export function readExpected(name: string): QemuRecord {
  return JSON.parse(readFileSync(join(GUESTS, 'expected', name + '.json'), 'utf8')) as QemuRecord;
}

export function readGuest(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(GUESTS, 'bin', name + '.elf')));
}

/** A virtlab run of one guest, with the two console streams kept apart as QEMU keeps them. */
export interface GuestRun {
  readonly debugcon: string;
  readonly serial: string;
  readonly outcome: RunOutcome;
  readonly machine: Machine;
}

/** Builds a machine with the default profile and the guests' RAM size. */
export function newMachine(memoryMiB = GUEST_MEMORY_MIB): Machine {
  return new Machine({ memoryMiB, profile: loadProfile().profile });
}

/**
 * Runs guest `name`. Port 0xE9 writes are captured here rather than by the machine's
 * debug console, so the machine's console stream holds COM1 output only: the two streams
 * stay apart, as in QEMU's -debugcon and -serial files.
 */
export function runGuest(name: string, maxInstructions = 50_000_000): GuestRun {
  const machine = newMachine();
  const e9: number[] = [];
  machine.io.registerWrite8(0xe9, (_p, v) => { e9.push(v & 0xff); });
  machine.loadMultiboot(readGuest(name), name + '.elf');
  const outcome = machine.run({ maxInstructions });
  return {
    debugcon: Buffer.from(e9).toString('latin1'),
    serial: machine.console.text(),
    outcome,
    machine,
  };
}

/**
 * QEMU's process exit status for an outcome, to compare with the recording: the exit
 * device's code is already QEMU's (v << 1) | 1, of which a process keeps the low byte; 0
 * when the guest never wrote the exit port (QEMU exits 0 after a triple fault).
 */
export function qemuStatusOf(outcome: RunOutcome): number {
  return outcome.exit.reason === 'exit-device' ? outcome.exit.code % 256 : 0;
}

/** One line describing how a run ended, with the address and disassembly when unsupported. */
export function describeExit(outcome: RunOutcome): string {
  const e = outcome.exit;
  switch (e.reason) {
    case 'exit-device': return `exit-device status ${e.code} (guest wrote 0x${Math.floor(e.code / 2).toString(16)})`;
    case 'unsupported': return `unsupported at 0x${(e.address >>> 0).toString(16)}: ${e.bytes} = ${e.disassembly} (${e.detail})`;
    default: return `${e.reason}: ${e.detail}`;
  }
}

/** The lines of `actual` that differ from `expected`, side by side (at most `max`). */
export function lineDiff(expected: string, actual: string, max = 20): string[] {
  const a = expected.split('\n');
  const b = actual.split('\n');
  const out: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length) && out.length < max; i++) {
    if (a[i] !== b[i]) out.push(`line ${i + 1}: qemu ${JSON.stringify(a[i] ?? '(none)')} virtlab ${JSON.stringify(b[i] ?? '(none)')}`);
  }
  return out;
}
