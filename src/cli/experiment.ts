/**
 * `virtlab experiment SCENARIO [-o DIR] [--jobs N] [--resume]`: runs a scenario's matrix on a
 * worker pool, stores each run in DIR/runs/, then writes the report (DIR/index.html, ...).
 */
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { writeReport } from '../analysis/report.js';
import { runExperiment } from '../experiment/runner.js';
import { loadScenario, ScenarioError, scenarioJsonSchema } from '../experiment/scenario.js';
import { StoreError } from '../experiment/store.js';

export const EXPERIMENT_USAGE = `usage: virtlab experiment SCENARIO.json [-o DIR] [--jobs N] [--resume] [--no-report]
       virtlab experiment --schema      the JSON Schema of scenario files (scenarios/scenario.schema.json)

Runs every unit of the scenario's matrix (workloads × modes × profiles × seeds, and its
sweeps) on a pool of worker threads, writes each finished run atomically to DIR/runs/<id>.json,
then writes the report (DIR/index.html, summary.md, CSV/JSON tables, charts/). See
docs/experiments.md.

options:
  -o, --out DIR   experiment directory (default reports/<scenario file name>)
  --jobs N        worker threads (default ${availableParallelism()}: the machine's cores); 0 runs the
                  units one after another in this thread (debugging)
  --resume        continue an experiment in DIR: stored successful runs are kept, the rest run
  --no-report     only run (virtlab report DIR makes the report later)
  -h, --help      this help

exit status: 0 all runs succeeded; 1 some run failed (the others still ran and are stored);
2 bad input (invalid scenario, unusable directory).
`;

/** Where the command writes (progress: process.stderr unless `progress` is given). */
export interface CommandIo { stdout(s: string): void; stderr(s: string): void; progress?: { write(s: string): unknown; isTTY?: boolean } }

/** `virtlab experiment`: resolves to the exit status. */
export async function experimentCommand(argv: string[], io: CommandIo): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { out: { type: 'string', short: 'o' }, jobs: { type: 'string' }, resume: { type: 'boolean' }, 'no-report': { type: 'boolean' }, schema: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    io.stderr(`virtlab: experiment: ${(e as Error).message}\n(see virtlab experiment --help)\n`);
    return 2;
  }
  if (values.help) { io.stdout(EXPERIMENT_USAGE); return 0; }
  if (values.schema) { io.stdout(JSON.stringify(scenarioJsonSchema(), null, 2) + '\n'); return 0; }
  if (positionals.length !== 1) { io.stderr(`virtlab: experiment: expected one scenario file, got ${positionals.length}\n(see virtlab experiment --help)\n`); return 2; }
  let jobs: number | undefined;
  if (values.jobs !== undefined) {
    jobs = Number(values.jobs);
    if (!/^[0-9]+$/.test(values.jobs) || jobs > 256) { io.stderr(`virtlab: experiment: --jobs: expected an integer in 0..256, got "${values.jobs}"\n`); return 2; }
  }
  const file = positionals[0]!;
  const dir = values.out ?? `reports/${basename(file).replace(/\.json$/i, '')}`;
  try {
    const scenario = loadScenario(file);
    const t0 = performance.now();
    const r = await runExperiment(scenario, { dir, jobs, resume: values.resume ?? false, executor: jobs === 0 ? 'inline' : 'workers', progressStream: io.progress });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    io.stderr(`virtlab: ${r.units} runs: ${r.ran} ran, ${r.skipped} already stored, ${r.failed} failed (${secs} s)\n`);
    for (const f of r.failures) io.stderr(`virtlab: failed: ${f.unit.memberships[0]!.workload} / ${f.unit.memberships[0]!.mode} / ${f.unit.memberships[0]!.profile}: ${f.error}\n`);
    if (!values['no-report']) {
      const rep = await writeReport(dir);
      io.stdout(`${dir}/index.html\n`);
      for (const f of rep.findings) io.stdout(`${f.startsWith('  ') ? '' : '- '}${f.replace(/\*\*/g, '').replace(/`/g, '')}\n`);
    }
    return r.failed ? 1 : 0;
  } catch (e) {
    if (e instanceof ScenarioError || e instanceof StoreError) { io.stderr(`virtlab: ${e.message}\n`); return 2; }
    throw e;
  }
}
