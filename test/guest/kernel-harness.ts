import { toMultibootElf } from '../../src/guest/image-elf.js';
import type { GuestImage } from '../../src/guest/image.js';
import { buildKernel, type KernelOptions } from '../../src/guest/kernel/kernel.js';
import { Machine, type MachineOptions, type RunOutcome } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';

export const profile = loadProfile('p6-provisional').profile;

export interface KernelRun {
  readonly image: GuestImage;
  readonly machine: Machine;
  readonly outcome: RunOutcome;
  readonly console: string;
  /** The init program's exit code, when the kernel stopped the machine through port 0xF4. */
  readonly exitCode: number | null;
}

/** Builds the kernel with `options`, boots it on a fresh machine and runs it. */
export function runKernel(options: KernelOptions, machine: Partial<MachineOptions> = {}, maxInstructions = 30_000_000): KernelRun {
  const image = buildKernel(options);
  const m = new Machine({ profile, memoryMiB: 64, ...machine });
  m.loadMultiboot(toMultibootElf(image), 'kernel.elf');
  const outcome = m.run({ maxInstructions });
  const exitCode = outcome.exit.reason === 'exit-device' ? (outcome.exit.code - 1) / 2 : null;
  return { image, machine: m, outcome, console: m.console.text(), exitCode };
}
