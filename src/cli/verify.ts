/**
 * `virtlab verify`: runs a verification property (docs/verification.md), the mutation
 * analysis, or replays a saved counterexample.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MUTANT_NAMES, checkMutant } from '../vmm/mutants.js';
import { runMutants, type MutantResult } from '../verify/mutation.js';
import { checkProperty, difference, PROPERTY_NAMES, runProperty, type PropertyReport, type PvProgram } from '../verify/properties.js';
import { runPvActions } from '../verify/pv-isolation.js';
import { listing, type GuestProgram } from '../verify/guest-program.js';
import { CONFIGS, runProgram } from '../verify/run.js';
import { UsageError } from './errors.js';
import { mutantReportHtml, writeMutantReport } from '../verify/report.js';

export const VERIFY_USAGE = `usage: virtlab verify --property NAME [--runs N] [--seed S] [--config C,...] [--mutant M] [--exclude OP,...] [--save FILE] [--json FILE]
       virtlab verify --mutants [--only M,...] [--seeds N] [--runs N] [--json FILE] [--html FILE] [-o DIR]
       virtlab verify --replay FILE [--config C,...]
       virtlab verify --list

properties: ${PROPERTY_NAMES.join(', ')}
configurations: ${CONFIGS.join(', ')}
mutants: ${MUTANT_NAMES.join(', ')}
A counterexample is saved (--save) as the guest program's JSON; --replay runs it natively
and under each configuration and prints the differences (a pv-isolation counterexample,
{ "pv": [actions] }, is replayed on a freshly booted pv domain, hypercall by hypercall).
Exit status 0 when the property
holds (trap-not-equivalent: when its counterexamples are found), 1 otherwise, 2 for bad input.
--mutants -o DIR writes the mutant report beside the experiment reports (e.g. -o reports/verify):
DIR/index.html, DIR/mutants.json, DIR/charts/time-to-failure.{vl.json,svg,png}.
`;

function int(flag: string, text: string | undefined, dflt: number, min: number, max: number): number {
  if (text === undefined) return dflt;
  const v = Number(text);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new UsageError(`verify ${flag}: expected an integer in ${min}..${max}, got "${text}"`);
  return v;
}

function configs(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const cs = text.split(',').filter(Boolean);
  for (const c of cs) if (!CONFIGS.includes(c)) throw new UsageError(`verify --config: unknown configuration "${c}" (known: ${CONFIGS.join(', ')})`);
  return cs;
}

function printReport(r: PropertyReport, out: (s: string) => void): void {
  out(`${r.property}: ${r.ok ? 'OK' : 'FAILED'} (${r.runs} runs, seed ${r.seed}, ${r.seconds.toFixed(1)} s; ${r.configs.join(', ')})\n`);
  if (r.firstFailure) out(`  first counterexample after ${r.firstFailure.run} runs, ${r.firstFailure.seconds.toFixed(2)} s\n`);
  if (r.counterexample) {
    out(`  ${r.counterexample.message}\n  shrunk program:\n`);
    for (const l of r.counterexample.listing) out(`    ${l}\n`);
  }
  for (const f of r.findings) out(`  found: ${f}\n`);
  for (const n of r.notes) out(`  note: ${n}\n`);
}

function mutantLine(r: MutantResult): string {
  const t = r.caught ? `caught ${r.caughtSeeds}/${r.seeds}, ${r.meanRuns!.toFixed(1)} runs, ${r.meanSeconds!.toFixed(2)} s` : `NOT caught (${r.seeds} seeds)`;
  return `${r.mutant.padEnd(24)} ${t}${r.property ? ` by ${r.property}` : ''}${r.counterexample ? `: ${r.counterexample.message} [${r.counterexample.listing.join('; ')}]` : ''}\n`;
}

/** Runs `virtlab verify`; returns the exit status. */
export function verifyCommand(argv: string[], io: { stdout: (s: string) => void; stderr: (s: string) => void }): number {
  let a;
  try {
    a = parseArgs({
      args: argv, allowPositionals: false, options: {
        property: { type: 'string' }, runs: { type: 'string' }, seed: { type: 'string' }, config: { type: 'string' },
        mutant: { type: 'string' }, exclude: { type: 'string' }, mutants: { type: 'boolean' }, only: { type: 'string' }, seeds: { type: 'string' },
        json: { type: 'string' }, html: { type: 'string' }, out: { type: 'string', short: 'o' }, save: { type: 'string' }, replay: { type: 'string' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new UsageError(`verify: ${(e as Error).message.split('\n')[0]}`);
  }
  const v = a.values;
  if (v.help) { io.stdout(VERIFY_USAGE); return 0; }
  if (v.list) { io.stdout(VERIFY_USAGE); return 0; }
  const runs = v.runs === undefined ? undefined : int('--runs', v.runs, 0, 1, 1_000_000);
  const seed = int('--seed', v.seed, 1, 0, 0x7fffffff);
  if (v.replay !== undefined) {
    let p: GuestProgram;
    try { p = JSON.parse(readFileSync(v.replay, 'utf8')) as GuestProgram; } catch (e) { throw new UsageError(`verify --replay ${v.replay}: ${(e as Error).message.split('\n')[0]}`); }
    const pv = (p as unknown as PvProgram).pv;
    if (pv !== undefined) {
      // A pv-isolation counterexample: the action sequence, run on a freshly booted pv domain.
      if (!Array.isArray(pv)) throw new UsageError(`verify --replay ${v.replay}: expected "pv" to be an array of actions`);
      const r = runPvActions(pv);
      for (const l of r.log) io.stdout(`  ${l}\n`);
      io.stdout(`pv: ${r.violation ?? 'all invariants hold'}\n`);
      return r.violation === null ? 0 : 1;
    }
    if (!Array.isArray(p.items) || !Array.isArray(p.regs) || typeof p.paging !== 'boolean') throw new UsageError(`verify --replay ${v.replay}: expected a guest program (JSON with regs, items, paging)`);
    for (const l of listing(p.items)) io.stdout(`  ${l}\n`);
    const ref = runProgram(p, 'native');
    let differs = false;
    for (const c of configs(v.config) ?? CONFIGS.filter((x) => x !== 'native' && x !== 'pv')) {
      const r = runProgram(p, c);
      const d = difference(ref, r, p.paging);
      io.stdout(`${c}: ${d ?? 'same outcome as native'} (${r.exit})\n`);
      differs ||= d !== null;
    }
    return differs ? 1 : 0;
  }
  if (v.mutants) {
    const only = v.only?.split(',').filter(Boolean);
    for (const m of only ?? []) { try { checkMutant(m); } catch (e) { throw new UsageError(`verify --only: ${(e as Error).message}`); } }
    const results = runMutants({ mutants: only, seeds: int('--seeds', v.seeds, 3, 1, 100), runs: runs ?? 60, onResult: (r) => io.stdout(mutantLine(r)) });
    const caught = results.filter((r) => r.caught).length;
    io.stdout(`${caught} of ${results.length} mutants caught\n`);
    const meta = { seeds: int('--seeds', v.seeds, 3, 1, 100), runs: runs ?? 60 };
    if (v.json !== undefined) writeFileSync(v.json, JSON.stringify({ schema: 'virtlab.mutants/1', ...meta, results }, null, 2) + '\n');
    if (v.html !== undefined) writeFileSync(v.html, mutantReportHtml(results, meta));
    if (v.out !== undefined) {
      const w = writeMutantReport(v.out, results, meta);
      io.stdout(`report: ${v.out}/index.html (${w.files.join(', ')})\n`);
      if (w.renderError !== null) io.stderr(`verify -o ${v.out}: the chart was not rendered to SVG/PNG (${w.renderError}); index.html draws it in the browser\n`);
    }
    return caught === results.length ? 0 : 1;
  }
  if (v.property === undefined) throw new UsageError('verify: give --property NAME, --mutants, --replay FILE or --list (see virtlab verify --help)');
  try { checkProperty(v.property); } catch (e) { throw new UsageError(`verify: ${(e as Error).message}`); }
  if (v.mutant !== undefined) { try { checkMutant(v.mutant); } catch (e) { throw new UsageError(`verify: ${(e as Error).message}`); } }
  const r = runProperty(v.property, { runs, seed, configs: configs(v.config), mutant: v.mutant ?? null, exclude: v.exclude?.split(',').filter(Boolean) });
  printReport(r, io.stdout);
  if (v.json !== undefined) writeFileSync(v.json, JSON.stringify(r, null, 2) + '\n');
  if (v.save !== undefined && r.counterexample !== null) {
    writeFileSync(v.save, JSON.stringify(r.counterexample.program, null, 2) + '\n');
    io.stdout(`counterexample saved to ${v.save} (virtlab verify --replay ${v.save})\n`);
  }
  return r.ok ? 0 : 1;
}
