/**
 * Trace figures (issue 6, item 6): bytes per guest instruction of a trace, and record and
 * replay speed relative to plain execution, for a compute-bound guest and a few workloads.
 * Run: node --import ./scripts/ts-register.mjs test/trace/trace-bench.ts [--repeat N] [NAME ...]
 * (NAME: compute-bench, sys-heavy, or workload:NAME). Figures are printed, never asserted.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { workloadForExec } from '../../src/cli/workloads.js';
import { loadProfile, DEFAULT_PROFILE } from '../../src/profiles/index.js';
import { recordTrace } from '../../src/trace/recorder.js';
import { replayTrace } from '../../src/trace/replayer.js';
import { readTrace } from '../../src/trace/reader.js';
import { summarizeTrace } from '../../src/trace/inspect.js';
import { runGuest, type GuestRunSpec } from '../../src/trace/run-guest.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { repeat: { type: 'string', default: '3' } } });
const repeat = Math.max(1, Number(values.repeat) || 1);
const names = positionals.length > 0 ? positionals : ['compute-bench', 'workload:callret', 'workload:forkwait', 'workload:database', 'workload:web'];
const profile = loadProfile(DEFAULT_PROFILE);

function spec(name: string): Omit<GuestRunSpec, 'mode' | 'profile'> {
  if (name.startsWith('workload:')) {
    const w = workloadForExec(name, name === 'workload:callret' ? ['n=2000000'] : []);
    return { image: { bytes: w.bytes, path: name }, devices: w.machine, maxInstructions: w.maxInstructions, memoryMiB: 64 };
  }
  const bytes = readFileSync(new URL(`../guests/bin/${name}.elf`, import.meta.url));
  return { image: { bytes, path: name }, maxInstructions: 2_000_000_000, memoryMiB: 128 };
}
/**
 * Best CPU time (user + system) of `repeat` runs: on a shared host CPU time is far steadier
 * than wall time. Fresh specs each run: disks are modified by a run.
 */
function best<T>(f: () => T): { s: number; r: T } {
  let s = Infinity, r!: T;
  for (let i = 0; i < repeat; i++) {
    const c0 = process.cpuUsage();
    r = f();
    const c = process.cpuUsage(c0);
    s = Math.min(s, (c.user + c.system) / 1e6);
  }
  return { s, r };
}
const M = (n: number, s: number): string => `${(n / s / 1e6).toFixed(1)} M/s`;
for (const name of names) {
  const plain = best(() => runGuest({ ...spec(name), mode: 'native', profile }));
  const n = plain.r.outcome.instructions;
  const rec = best(() => recordTrace({ ...spec(name), profile }));
  const recNoBr = best(() => recordTrace({ ...spec(name), profile, branches: false }));
  const bytes = rec.r.bytes;
  const sum = summarizeTrace(readTrace(bytes));
  const rep = best(() => replayTrace(bytes, { mode: 'native', profile }));
  const repBr = best(() => replayTrace(bytes, { mode: 'native', profile, checkBranches: true }));
  const ok = rep.r.divergence === null && repBr.r.divergence === null && rep.r.record.consoleSha256 === plain.r.record.consoleSha256;
  console.log(`${name}: ${n.toLocaleString('en')} instructions; trace ${bytes.length} bytes (logs ${sum.logBytes} = ${(sum.logBytes / n).toFixed(5)} bytes/instruction; ` +
    `${sum.counts['tnt-bit']} TNT bits, ${sum.counts.tip} TIPs, ${sum.counts['port-read']} port reads, ${sum.counts.interrupt} interrupts); without the control-flow log ${recNoBr.r.bytes.length} bytes`);
  console.log(`  plain ${M(n, plain.s)}; record ${M(n, rec.s)} (${(plain.s / rec.s * 100).toFixed(0)}% of plain; without control flow ${(plain.s / recNoBr.s * 100).toFixed(0)}%); ` +
    `replay native ${M(n, rep.s)} (${(plain.s / rep.s * 100).toFixed(0)}%), with branch checking ${M(n, repBr.s)} (${(plain.s / repBr.s * 100).toFixed(0)}%); replay matches: ${ok}`);
}
