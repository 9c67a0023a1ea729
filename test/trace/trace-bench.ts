/**
 * Trace figures (issue 6, item 6): bytes per guest instruction of a trace, and record and
 * replay speed relative to plain execution, for a compute-bound guest and a few workloads.
 * Run: node --import ./scripts/ts-register.mjs test/trace/trace-bench.ts [--repeat N] [--mode pv] [NAME ...]
 * (NAME: compute-bench, sys-heavy, or workload:NAME). Figures are printed, never asserted.
 * --mode pv: the paravirtualized guest recorded, run and replayed under pv (skylake-2015).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { workloadForExec } from '../../src/cli/workloads.js';
import { loadProfile, DEFAULT_PROFILE, DEFAULT_VMM_PROFILE } from '../../src/profiles/index.js';
import { recordTrace } from '../../src/trace/recorder.js';
import { replayTrace } from '../../src/trace/replayer.js';
import { readTrace } from '../../src/trace/reader.js';
import { summarizeTrace } from '../../src/trace/inspect.js';
import { runGuest, type GuestRunSpec } from '../../src/trace/run-guest.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { repeat: { type: 'string', default: '3' }, mode: { type: 'string', default: 'native' } } });
if (values.mode !== 'native' && values.mode !== 'pv') throw new Error(`--mode: native or pv, got ${values.mode}`);
const mode = values.mode as 'native' | 'pv';
const repeat = Math.max(1, Number(values.repeat) || 1);
const names = positionals.length > 0 ? positionals : ['compute-bench', 'workload:callret', 'workload:forkwait', 'workload:database', 'workload:web'];
const profile = loadProfile(mode === 'pv' ? DEFAULT_VMM_PROFILE : DEFAULT_PROFILE);

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
  if (mode === 'pv' && !name.startsWith('workload:')) { console.log(`${name}: skipped under pv (not a paravirtualized kernel: no PV note)`); continue; }
  const plain = best(() => runGuest({ ...spec(name), mode, profile }));
  const n = plain.r.outcome.instructions;
  const rec = best(() => recordTrace({ ...spec(name), profile, mode }));
  const recNoBr = best(() => recordTrace({ ...spec(name), profile, mode, branches: false }));
  const bytes = rec.r.bytes;
  const sum = summarizeTrace(readTrace(bytes));
  const rep = best(() => replayTrace(bytes, { mode, profile }));
  const repBr = best(() => replayTrace(bytes, { mode, profile, checkBranches: true }));
  const ok = rep.r.divergence === null && repBr.r.divergence === null && rep.r.record.consoleSha256 === plain.r.record.consoleSha256;
  console.log(`${name}: ${n.toLocaleString('en')} instructions; trace ${bytes.length} bytes (logs ${sum.logBytes} = ${(sum.logBytes / n).toFixed(5)} bytes/instruction; ` +
    `${sum.counts['tnt-bit']} TNT bits, ${sum.counts.tip} TIPs, ${sum.counts['port-read']} port reads, ${sum.counts.interrupt} interrupts${mode === 'pv' ? `, ${sum.counts.virq} VIRQs, ${sum.counts['block-complete']} block completions, ${sum.counts['net-rx']} arrivals` : ''}); without the control-flow log ${recNoBr.r.bytes.length} bytes`);
  console.log(`  plain ${M(n, plain.s)}; record ${M(n, rec.s)} (${(plain.s / rec.s * 100).toFixed(0)}% of plain; without control flow ${(plain.s / recNoBr.s * 100).toFixed(0)}%); ` +
    `replay ${mode} ${M(n, rep.s)} (${(plain.s / rep.s * 100).toFixed(0)}%), with branch checking ${M(n, repBr.s)} (${(plain.s / repBr.s * 100).toFixed(0)}%); replay matches: ${ok}`);
}
