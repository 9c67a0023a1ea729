/**
 * `npm run bench`: how fast virtlab runs real guests, what a machine costs in memory, and
 * how that compares with v86 on the same guest.
 *
 * - compute-bench: an integer/memory loop (LCG fill, sieve, checksum over 64 KiB; ~150 M
 *   instructions), test/guests/src/compute.c.
 * - sys-heavy: ring 3 ↔ ring 0 round trips (INT 0x80, SYSENTER/SYSEXIT), demand page
 *   faults, unmaps with INVLPG, timer interrupts; test/guests/src/sys.c built with -DHEAVY.
 *
 * - the verifier: seconds to the first counterexample for every mutant of the catalogue
 *   (issue 8's target: under 10 s on average), one seed, unshrunk (`virtlab verify --mutants`
 *   gives the full table over several seeds).
 * - the assembler: instructions assembled per second (guest images are assembled at run time).
 *
 * Figures are printed, never asserted. Options: --repeat N (best of N runs, default 1),
 * --no-v86 (skip the comparison), --no-verify (skip the verifier), --guest NAME (run only
 * that virtlab guest).
 */
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { newMachine, readExpected, readGuest, describeExit, GUEST_MEMORY_MIB } from '../test/e2e/guest-harness.js';
import { runOnV86, v86Unavailable } from './v86-peer.js';
import { MUTANT_RUNS, runMutants } from '../src/verify/mutation.js';
import { Assembler } from '../src/x86/assembler.js';
import { eax, ecx, edx, dword, mem } from '../src/x86/operands.js';

const { values: opts } = parseArgs({
  options: {
    repeat: { type: 'string', default: '1' },
    'no-v86': { type: 'boolean', default: false },
    'no-verify': { type: 'boolean', default: false },
    guest: { type: 'string', multiple: true },
  },
});
const repeat = Math.max(1, Number(opts.repeat) || 1);
const guests = opts.guest ?? ['compute-bench', 'sys-heavy'];

const MiB = 1024 * 1024;
const fmtMiB = (b: number): string => (b / MiB).toFixed(1) + ' MiB';
const fmtDelta = (b: number): string => (b < 0 ? '' : '+') + fmtMiB(b);
/** A full GC before each memory reading, so the figures are not garbage left over. */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface VirtlabRun {
  seconds: number;
  instructions: number;
  cycles: number;
  idleCycles: number;
  matches: boolean;
  exit: string;
}

/** Memory in use now, after a full collection. */
function memNow(): NodeJS.MemoryUsage {
  gc();
  return process.memoryUsage();
}

/** Memory beyond `before`, less the guest RAM, as "JS heap + typed arrays". */
function overhead(before: NodeJS.MemoryUsage, after: NodeJS.MemoryUsage, ram: number): string {
  const heap = after.heapUsed - before.heapUsed;
  const ab = after.arrayBuffers - before.arrayBuffers - ram;
  return `${fmtMiB(heap + ab)} (JS heap ${fmtMiB(heap)}, typed arrays other than RAM ${fmtMiB(ab)}; RSS ${fmtDelta(after.rss - before.rss)})`;
}

function runVirtlab(name: string): VirtlabRun {
  const elf = readGuest(name);
  const m0 = memNow();
  const machine = newMachine();
  const m1 = memNow();
  const ram = machine.mem.size;
  machine.loadMultiboot(elf, name + '.elf');
  const t0 = performance.now();
  const outcome = machine.run({ maxInstructions: 2_000_000_000, sliceInstructions: 10_000_000 });
  const seconds = (performance.now() - t0) / 1000;
  const m2 = memNow();
  const expected = readExpected(name);
  // The machine's console stream interleaves 0xE9 and COM1; these guests use 0xE9 only.
  const matches = machine.console.text() === expected.debugcon + expected.serial;
  console.log(`  machine memory beyond its ${fmtMiB(ram)} of guest RAM: ${overhead(m0, m1, ram)} once built, ` +
    `${overhead(m0, m2, ram)} after the run`);
  return { seconds, instructions: outcome.instructions, cycles: outcome.cycles, idleCycles: outcome.idleCycles, matches, exit: describeExit(outcome) };
}

async function main(): Promise<void> {
  console.log(`virtlab benchmark (node ${process.version}, ${GUEST_MEMORY_MIB} MiB guests)`);
  const results = new Map<string, VirtlabRun>();
  for (const name of guests) {
    let best: VirtlabRun | null = null;
    for (let i = 0; i < repeat; i++) {
      console.log(`${name}: run ${i + 1}/${repeat} on virtlab...`);
      const r = runVirtlab(name);
      if (best === null || r.seconds < best.seconds) best = r;
    }
    const r = best!;
    results.set(name, r);
    console.log(`${name} on virtlab: ${r.instructions.toLocaleString('en-US')} instructions in ${r.seconds.toFixed(2)} s = ` +
      `${(r.instructions / r.seconds / 1e6).toFixed(2)} M instructions/s; ${r.cycles.toLocaleString('en-US')} cycles ` +
      `(${(r.cycles / r.instructions).toFixed(2)} per instruction, ${r.idleCycles.toLocaleString('en-US')} idle); ` +
      `${r.exit}; output ${r.matches ? 'matches QEMU' : 'DIFFERS FROM QEMU'}`);
  }

  benchAssembler();
  if (!opts['no-verify']) benchVerifier();

  const peer = 'compute-bench';
  if (opts['no-v86']) { console.log('v86 comparison skipped (--no-v86)'); return; }
  const why = v86Unavailable();
  if (why !== null) { console.log(`v86 comparison skipped: ${why}`); return; }
  const mine = results.get(peer);
  if (!mine) { console.log(`v86 comparison skipped: ${peer} was not run on virtlab`); return; }
  let best: Awaited<ReturnType<typeof runOnV86>> | null = null;
  try {
    for (let i = 0; i < repeat; i++) {
      console.log(`${peer}: run ${i + 1}/${repeat} on v86...`);
      const r = await runOnV86(readGuest(peer), GUEST_MEMORY_MIB * MiB);
      if (best === null || r.secondsGuest < best.secondsGuest) best = r;
    }
  } catch (e) {
    console.log(`v86 comparison skipped: v86 failed (${(e as Error).message})`);
    return;
  }
  const v = best!;
  const expected = readExpected(peer);
  const vMips = v.instructionsGuest / v.secondsGuest / 1e6;
  const mMips = mine.instructions / mine.seconds / 1e6;
  console.log(`${peer} on v86: ${v.secondsGuest.toFixed(2)} s from the first output to the exit write ` +
    `(${v.secondsBootToExit.toFixed(2)} s including the BIOS boot); v86 counted ${v.instructionsGuest.toLocaleString('en-US')} instructions ` +
    `= ${vMips.toFixed(1)} M/s; output ${v.debugcon === expected.debugcon ? 'matches QEMU' : 'DIFFERS FROM QEMU'}, exit value 0x${v.exitValue.toString(16)}`);
  console.log(`virtlab/v86: time ${(mine.seconds / v.secondsGuest).toFixed(1)}x, speed ${(mMips / vMips).toFixed(3)}x ` +
    `(virtlab ${mMips.toFixed(2)} M/s, v86 ${vMips.toFixed(1)} M/s)`);
}

/** Assembler throughput on 30,000 instructions with 3,000 labels. */
function benchAssembler(): void {
  const t0 = performance.now();
  const a = new Assembler();
  const labels = Array.from({ length: 3000 }, (_, i) => a.label(`f${i}`));
  for (let i = 0; i < 3000; i++) {
    a.bind(labels[i]!);
    a.mov(eax, dword(ecx, i)); a.add(eax, 1); a.mov(dword(edx, 8), eax); a.cmp(eax, i);
    a.jz(labels[(i * 7 + 1) % 3000]!); a.call(labels[(i * 13) % 3000]!); a.lea(ecx, mem({ base: eax, disp: 4 }));
    a.push(ecx); a.pop(edx); a.ret();
  }
  a.build();
  const s = (performance.now() - t0) / 1000;
  console.log(`assembler: 30,000 instructions, 3,000 labels in ${s.toFixed(2)} s = ${(30_000 / s / 1000).toFixed(0)} k instructions/s`);
}

/** Seconds to the first counterexample per mutant (one seed, MUTANT_RUNS runs, unshrunk). */
function benchVerifier(): void {
  console.log(`verifier: every mutant, seed 1, up to ${MUTANT_RUNS} runs per property, unshrunk...`);
  const rs = runMutants({ seeds: 1, runs: MUTANT_RUNS, shrink: false });
  for (const r of rs) console.log(`  ${r.mutant.padEnd(26)} ${r.caught ? `${r.meanSeconds!.toFixed(2)} s, ${r.meanRuns} runs (${r.property})` : 'NOT CAUGHT'}`);
  const caught = rs.filter((r) => r.caught);
  const slowest = caught.reduce((m, r) => (r.meanSeconds! > m.meanSeconds! ? r : m), caught[0]!);
  console.log(`verifier: ${caught.length} of ${rs.length} mutants caught; mean ${(caught.reduce((t, r) => t + r.meanSeconds!, 0) / caught.length).toFixed(2)} s, slowest ${slowest.mutant} ${slowest.meanSeconds!.toFixed(2)} s (target: under 10 s)`);
}

main().then(
  () => process.exit(0),   // v86 may leave timers behind
  (e: unknown) => { console.error(e); process.exit(1); },
);
