/**
 * `virtlab experiment SCENARIO [-o DIR] [--jobs N] [--resume]`: runs a scenario's matrix on a
 * worker pool, stores each run in DIR/runs/, then writes the report (DIR/index.html, ...).
 */
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { writeReport } from '../analysis/report.js';
import { runExperiment } from '../experiment/runner.js';
import { loadScenario, ScenarioError, scenarioJsonSchema, type Scenario } from '../experiment/scenario.js';
import { StoreError } from '../experiment/store.js';
import { SlurmError, SlurmInterrupted } from '../experiment/slurm-backend.js';
import type { SlurmOptions } from '../experiment/slurm-backend.js';

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
  --backend B     local (default: worker threads here) or slurm (a job array; docs/cluster.md)

slurm back end (docs/cluster.md; DIR must be on the cluster's shared file system):
  --partition P --account A --time T   #SBATCH values (T in Slurm's format, e.g. 1:00:00)
  --cpus-per-task N      per chunk task (default 1: a run is single-threaded)
  --max-tasks N          array throttle %N: at most N chunks at once
  --sbatch OPT           one more #SBATCH option, e.g. --sbatch=--mem=2G (repeatable)
  --chunk-size N         runs per chunk (default: from a calibration run and --chunk-seconds)
  --chunk-seconds S      target length of a task (default 600)
  --max-attempts N       submissions of a chunk whose results are missing (default 3)
  --poll-seconds S       squeue polling interval (default 5)
  --node PATH            node on the compute nodes (default: this one's path)
  --dry-run              print the chunk plan, core-hour estimate and batch script; submit nothing
  -h, --help      this help

exit status: 0 all runs succeeded; 1 some run failed (the others still ran and are stored);
2 bad input (invalid scenario, unusable directory, a Slurm tool missing or refusing the job);
130 interrupted (the Slurm job is cancelled; stored runs are kept: --resume continues).
`;

/** Where the command writes (progress: process.stderr unless `progress` is given). */
export interface CommandIo { stdout(s: string): void; stderr(s: string): void; progress?: { write(s: string): unknown; isTTY?: boolean } }

/** `virtlab experiment`: resolves to the exit status. */
export async function experimentCommand(argv: string[], io: CommandIo): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { out: { type: 'string', short: 'o' }, jobs: { type: 'string' }, resume: { type: 'boolean' }, 'no-report': { type: 'boolean' }, backend: { type: 'string' },
        partition: { type: 'string' }, account: { type: 'string' }, time: { type: 'string' }, 'cpus-per-task': { type: 'string' },
        'max-tasks': { type: 'string' }, sbatch: { type: 'string', multiple: true }, 'chunk-size': { type: 'string' }, 'chunk-seconds': { type: 'string' },
        'max-attempts': { type: 'string' }, 'poll-seconds': { type: 'string' }, node: { type: 'string' }, 'dry-run': { type: 'boolean' }, schema: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
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
  const backend = values.backend ?? 'local';
  if (backend !== 'local' && backend !== 'slurm') { io.stderr(`virtlab: experiment: --backend: expected local or slurm, got "${backend}"\n`); return 2; }
  const slurmFlags = ['partition', 'account', 'time', 'cpus-per-task', 'max-tasks', 'sbatch', 'chunk-size', 'chunk-seconds', 'max-attempts', 'poll-seconds', 'node', 'dry-run'] as const;
  const stray = slurmFlags.filter((f) => values[f] !== undefined);
  if (backend === 'local' && stray.length) { io.stderr(`virtlab: experiment: --${stray[0]} belongs to --backend slurm\n`); return 2; }
  const num = (flag: 'cpus-per-task' | 'max-tasks' | 'chunk-size' | 'chunk-seconds' | 'max-attempts' | 'poll-seconds', max: number, real = false): number | undefined => {
    const v = values[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!(real ? /^[0-9]+(\.[0-9]+)?$/ : /^[0-9]+$/).test(v) || n <= 0 || n > max) throw new RangeError(`--${flag}: expected a ${real ? 'number' : 'whole number'} in (0, ${max}], got "${v}"`);
    return n;
  };
  // Slurm settings from the flags; the scenario's `slurm` section fills what the flags leave out.
  let slurmFromFlags: SlurmOptions | undefined;
  try {
    if (backend === 'slurm') {
      slurmFromFlags = {
        partition: values.partition, account: values.account, time: values.time, node: values.node, dryRun: values['dry-run'],
        cpusPerTask: num('cpus-per-task', 1024), maxTasks: num('max-tasks', 1e6), extra: values.sbatch, chunkSize: num('chunk-size', 1e6),
        chunkSeconds: num('chunk-seconds', 7 * 86400, true), maxAttempts: num('max-attempts', 100), pollSeconds: num('poll-seconds', 3600, true),
        log: (l) => io.stderr(l + '\n'), print: (l) => io.stdout(l + '\n'),
      };
    }
  } catch (e) {
    io.stderr(`virtlab: experiment: ${(e as Error).message}\n`);
    return 2;
  }
  const file = positionals[0]!;
  const dir = values.out ?? `reports/${basename(file).replace(/\.json$/i, '')}`;
  try {
    const scenario = loadScenario(file);
    const slurm = slurmFromFlags === undefined ? undefined : withScenarioSlurm(slurmFromFlags, scenario.slurm);
    const t0 = performance.now();
    const r = await runExperiment(scenario, { dir, jobs, resume: values.resume ?? false, executor: jobs === 0 ? 'inline' : 'workers', progressStream: io.progress, backend, slurm });
    if (slurm?.dryRun) return 0;
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
    if (e instanceof SlurmInterrupted) { io.stderr(`virtlab: ${e.message}\n`); return 130; }
    if (e instanceof ScenarioError || e instanceof StoreError || e instanceof SlurmError) { io.stderr(`virtlab: ${e.message}\n`); return 2; }
    throw e;
  }
}

/** Flags first; a setting the flags leave out comes from the scenario's `slurm` section. */
function withScenarioSlurm(f: SlurmOptions, sc: Scenario['slurm']): SlurmOptions {
  return {
    ...f,
    partition: f.partition ?? sc.partition, account: f.account ?? sc.account, time: f.time ?? sc.time,
    cpusPerTask: f.cpusPerTask ?? sc.cpusPerTask, maxTasks: f.maxTasks ?? sc.maxTasks, extra: f.extra ?? sc.sbatch ?? [],
    chunkSize: f.chunkSize ?? sc.chunkSize, chunkSeconds: f.chunkSeconds ?? sc.chunkSeconds,
    maxAttempts: f.maxAttempts ?? sc.maxAttempts, pollSeconds: f.pollSeconds ?? sc.pollSeconds,
  };
}
