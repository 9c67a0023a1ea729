/**
 * `trap` and `full` load segments from the monitor's copies of the guest's GDT/LDT, so the
 * CPU sets the descriptors' accessed bits there; the monitor carries them to the guest's own
 * tables (trap.ts `syncAccessed`). After a run the guest's GDT bytes must be what the bare
 * machine leaves (e.g. forkwait's user code descriptor 0x00cffb00, not 0x00cffa00).
 */
import { describe, expect, it } from 'vitest';
import type { Cpu } from '../../src/machine/cpu/cpu.js';
import { DEFAULT_PROFILE, DEFAULT_VMM_PROFILE, loadProfile } from '../../src/profiles/index.js';
import { workloadForExec } from '../../src/cli/workloads.js';
import { prepareGuest } from '../../src/trace/run-guest.js';
import type { MonitorMode } from '../../src/vmm/index.js';
import { readGuest } from '../e2e/guest-harness.js';

/** Physical address of linear `lin` through the page tables at `cr3` (4 KiB and 4 MiB pages), -1 if unmapped. */
function physOf(cpu: Cpu, cr3: number, paging: boolean, lin: number): number {
  if (!paging) return lin >>> 0;
  const m = cpu.mem;
  const pde = m.read32(((cr3 & ~0xfff) + ((lin >>> 22) << 2)) >>> 0);
  if ((pde & 1) === 0) return -1;
  if ((pde & 0x80) !== 0) return ((pde & 0xffc00000) | (lin & 0x3fffff)) >>> 0;
  const pte = m.read32(((pde & ~0xfff) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0);
  if ((pte & 1) === 0) return -1;
  return ((pte & ~0xfff) | (lin & 0xfff)) >>> 0;
}

/** The GDT's words, and the physical address of each (from the native run). */
interface Gdt { words: number[]; phys: number[] }

function run(image: string, params: string[], mode: MonitorMode, at?: Gdt): Gdt {
  let bytes: Uint8Array, devices, maxInstructions = 100_000_000;
  if (image.startsWith('workload:')) {
    const w = workloadForExec(image, params);
    bytes = w.bytes; devices = w.machine; maxInstructions = w.maxInstructions;
  } else {
    bytes = readGuest(image);
  }
  const p = prepareGuest({
    image: { bytes, path: image }, devices, mode,
    profile: loadProfile(mode === 'native' ? DEFAULT_PROFILE : DEFAULT_VMM_PROFILE),
  });
  const o = p.machine.run({ maxInstructions });
  expect(o.exit.reason).toBe('exit-device');
  const cpu = p.machine.cpu;
  // Natively the guest's page tables are the CPU's; under trap/full the guest's CR3 is the
  // monitor's virtual one, but the guest's GDT sits at the same guest-physical place: the
  // native run tells where (`at`), and the others are read there.
  let phys = at?.phys;
  if (phys === undefined) {
    const paging = (cpu.cr0 & 0x80000000) !== 0;
    phys = [];
    for (let off = 0; off + 3 <= cpu.gdtrLimit; off += 4) phys.push(physOf(cpu, cpu.cr3, paging, (cpu.gdtrBase + off) >>> 0));
  }
  return { words: phys.map((ph) => (ph >= 0 ? cpu.mem.read32(ph) : -1)), phys };
}

describe('trap and full: the guest\'s GDT gets the accessed bits the bare machine sets', () => {
  const GUESTS: [string, string[]][] = [['workload:forkwait', ['n=10']], ['sys', []], ['hello', []], ['compute', []]];
  for (const [g, params] of GUESTS) {
    it(g, () => {
      const native = run(g, params, 'native');
      // The guest loaded segments: some code/data descriptor has A set natively.
      expect(native.words.some((w, i) => i % 2 === 1 && (w & 0x1100) === 0x1100)).toBe(true);
      for (const mode of ['trap', 'full'] as const) {
        const m = run(g, params, mode, native);
        expect(m.words.map((w) => (w >>> 0).toString(16)), mode).toEqual(native.words.map((w) => (w >>> 0).toString(16)));
      }
    }, 120_000);
  }
});
