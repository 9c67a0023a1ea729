/**
 * `virtlab verify`: runs a verification property (docs/verification.md), the mutation
 * analysis, or replays a saved counterexample.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { MUTANT_NAMES, checkMutant } from '../vmm/mutants.js';
import { MUTANT_RUNS, runMutants, type MutantResult } from '../verify/mutation.js';
import { checkProperty, PROPERTY_NAMES, runProperty, type PropertyReport } from '../verify/properties.js';
import { CASE_KINDS, CASE_SCHEMA, caseFile, CaseFileError, caseKind, replayFile, reportCaseFile, writeCaseFile } from '../verify/replay.js';
import { CONFIGS } from '../verify/run.js';
import { UsageError } from './errors.js';
import { mutantReportHtml, writeMutantReport } from '../verify/report.js';

export const VERIFY_USAGE = `usage: virtlab verify --property NAME [--runs N] [--seed S] [--config C,...] [--mutant M] [--exclude OP,...] [--save FILE] [--json FILE]
       virtlab verify --mutants [--only M,...] [--seeds N] [--runs N] [--json FILE] [--html FILE] [-o DIR]
       virtlab verify --replay FILE [--config C,...] [--mutant M|none]
       virtlab verify --list

properties: ${PROPERTY_NAMES.join(', ')}
configurations: ${CONFIGS.join(', ')}
mutants: ${MUTANT_NAMES.join(', ')}
A counterexample is saved (--save FILE; --mutants: one file per caught mutant) as a
${CASE_SCHEMA} file: the case and what produced it (property, configurations, seed,
mutant). --replay runs it again under those conditions, its mutant active (--mutant M sets
or overrides it, --mutant none replays without), prints the listing and a result per
configuration, and exits 1 when the failure shows, 0 when not. Kinds of case: ${CASE_KINDS.map((k) => k.what).join('; ')}.
Exit status 0 when the property
holds (trap-not-equivalent: when its counterexamples are found), 1 otherwise, 2 for bad input.
--mutants -o DIR writes the mutant report beside the experiment reports (e.g. -o reports/verify):
DIR/index.html, DIR/mutants.json, DIR/charts/time-to-failure.{vl.json,svg,png} and
DIR/counterexamples/<mutant>.json (without -o, beside --json FILE).
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
    let mutant: string | null | undefined;
    if (v.mutant === 'none') mutant = null;
    else if (v.mutant !== undefined) { try { checkMutant(v.mutant); } catch (e) { throw new UsageError(`verify --mutant: ${(e as Error).message} (or none)`); } mutant = v.mutant; }
    let r;
    try { r = replayFile(v.replay, { configs: configs(v.config), mutant }); } catch (e) {
      if (e instanceof CaseFileError) throw new UsageError(`verify --replay ${e.message}`);
      throw e;
    }
    const f = r.file;
    const from = f.property === null ? 'property not recorded' : `property ${f.property}${f.configs ? ` (${f.configs.join(', ')})` : ''}${f.seed !== null ? `, seed ${f.seed}` : ''}`;
    io.stdout(`${v.replay}: ${r.kind.what}; ${from}; mutant ${r.mutant ?? 'none'}${r.mutant !== f.mutant ? ` (the file's: ${f.mutant ?? 'none'})` : ''}\n`);
    for (const l of r.result.listing) io.stdout(`  ${l}\n`);
    for (const l of r.result.log ?? []) io.stdout(`  | ${l}\n`);
    for (const l of r.result.lines ?? []) io.stdout(`${l}\n`);
    for (const x of r.result.results) io.stdout(`${x.config}: ${x.failed ? 'FAIL' : 'ok'}: ${x.detail}\n`);
    for (const n of r.result.notes ?? []) io.stdout(`  note: ${n}\n`);
    const n = r.result.results.filter((x) => x.failed).length;
    io.stdout(r.failed ? `replay: FAIL (${n} of ${r.result.results.length} show the failure)\n` : `replay: PASS (none of ${r.result.results.length} shows a failure)\n`);
    return r.failed ? 1 : 0;
  }
  if (v.mutants) {
    const only = v.only?.split(',').filter(Boolean);
    for (const m of only ?? []) { try { checkMutant(m); } catch (e) { throw new UsageError(`verify --only: ${(e as Error).message}`); } }
    // Each caught mutant's counterexample as a file: DIR/counterexamples/<mutant>.json (-o DIR), else beside --json FILE.
    const cxDir = v.out ?? (v.json !== undefined ? dirname(v.json) : null);
    const files = new Map<string, string>();
    const results = runMutants({
      mutants: only, seeds: int('--seeds', v.seeds, 3, 1, 100), runs: runs ?? MUTANT_RUNS,
      onResult: (r) => {
        if (cxDir !== null && r.counterexample !== null && r.caughtBy != null) {
          const rel = `counterexamples/${r.mutant}.json`;
          writeCaseFile(join(cxDir, rel), caseFile(r.counterexample, { ...r.caughtBy, mutant: r.mutant }));
          files.set(r.mutant, rel);
        }
        io.stdout(mutantLine(r) + (files.has(r.mutant) ? `${''.padEnd(25)}counterexample: ${join(cxDir!, files.get(r.mutant)!)}\n` : ''));
      },
    }).map((r) => ({ ...r, counterexampleFile: files.get(r.mutant) ?? null }));
    const caught = results.filter((r) => r.caught).length;
    io.stdout(`${caught} of ${results.length} mutants caught\n`);
    const meta = { seeds: int('--seeds', v.seeds, 3, 1, 100), runs: runs ?? MUTANT_RUNS };
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
  const cx = reportCaseFile(r, v.mutant ?? null);
  if (v.save !== undefined && cx !== null) {
    writeCaseFile(v.save, cx);
    io.stdout(`counterexample saved to ${v.save} (virtlab verify --replay ${v.save})\n`);
    if (r.property === 'noninterference' && caseKind(cx.case)?.key === 'items') io.stderr(`verify --save ${v.save}: only VM A's program was saved (noninterference does not give its whole case yet): --replay cannot reproduce it\n`);
  }
  return r.ok ? 0 : 1;
}
