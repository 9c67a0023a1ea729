/**
 * The Slurm back end of `virtlab experiment`: writes a chunk manifest of the units without a
 * stored success, submits one job array over its chunks (`sbatch --parsable`), polls
 * `squeue`, shows progress as result files appear, resubmits only the chunks whose results
 * are missing (bounded attempts), cancels the job on Ctrl-C, and returns the same summary
 * as the local pool; the CLI then writes the same report. The result files in DIR/runs/ are
 * the only truth: a task's exit status is used for messages, never to decide what is done.
 *
 *   DIR/slurm/submit-N/chunks.json       the chunk manifest (read by `virtlab run-chunk`)
 *   DIR/slurm/submit-N/job.sh            the batch script
 *   DIR/slurm/submit-N/logs/chunk-K.job-J.{out,err}   per-task logs (J changes per attempt)
 *   DIR/slurm/submit-N/replaced/<id>.json   failed results moved aside before they are rerun
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { executeWithRecording } from './chunk-runner.js';
import { ensureTrace, type TraceOutcome } from './execute.js';
import { expandMatrix, type RunUnit } from './matrix.js';
import { chunkCount, chunkUnits, planChunks, writeChunkManifest } from './chunk-manifest.js';
import { createProgress } from './progress.js';
import type { ExperimentOptions, ExperimentSummary } from './runner.js';
import { unitLabel } from './runner.js';
import type { Scenario } from './scenario.js';
export { SlurmError } from './slurm-cli.js';
import { isTerminal, sacctTasks, sbatch, scancel, SlurmError, squeueTasks, type TaskState } from './slurm-cli.js';
import { arraySpec, batchScript } from './slurm-script.js';
import { manifestFor, openStore, readResult, runFile, withTraceDir, writeResult } from './store.js';

/** Options of `--backend slurm` (docs/cluster.md). */
export interface SlurmOptions {
  readonly partition?: string;
  readonly account?: string;
  /** Per-task time limit in Slurm's format; default: the partition's. */
  readonly time?: string;
  /** Default 1: a unit runs on one thread. */
  readonly cpusPerTask?: number;
  /** Array throttle `%N`: at most N chunks at once (default: no limit). */
  readonly maxTasks?: number;
  /** Extra `#SBATCH` options (e.g. "--mem=2G"). */
  readonly extra?: readonly string[];
  /** Units per chunk; default from a calibration run and `chunkSeconds`. */
  readonly chunkSize?: number;
  /** Target wall time of a task, in seconds (default 600). */
  readonly chunkSeconds?: number;
  /** Submissions of a chunk before giving up (default 3). */
  readonly maxAttempts?: number;
  /** Seconds between squeue polls (default 5). */
  readonly pollSeconds?: number;
  /** Node's path on the compute nodes (default: this node's). */
  readonly node?: string;
  /** Print the chunk plan and the core-hour estimate; submit nothing. */
  readonly dryRun?: boolean;
  /** Status lines (default process.stderr). */
  readonly log?: (line: string) => void;
  /** The plan of a dry run (default process.stdout). */
  readonly print?: (line: string) => void;
  /** Cancels the run (default: SIGINT). */
  readonly signal?: AbortSignal;
}

/** Ctrl-C (or the signal) stopped the run: the job was cancelled, stored runs are kept. */
export class SlurmInterrupted extends SlurmError {
  override readonly name: string = 'SlurmInterrupted';
}

const fmt = (s: number): string => (s >= 5400 ? `${(s / 3600).toFixed(1)} h` : s >= 90 ? `${Math.round(s / 60)} min` : `${s.toFixed(1)} s`);

/** The next free DIR/slurm/submit-N. */
function newSubmitDir(dir: string): string {
  const base = join(dir, 'slurm');
  mkdirSync(base, { recursive: true });
  const used = readdirSync(base).map((f) => /^submit-(\d+)$/.exec(f)).filter(Boolean).map((m) => Number(m![1]));
  const d = join(base, `submit-${used.length ? Math.max(...used) + 1 : 1}`);
  mkdirSync(join(d, 'logs'), { recursive: true });
  return d;
}

const lastLine = (file: string): string | null => {
  try { return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).pop() ?? null; } catch { return null; }
};

/** Runs the experiment through Slurm (see the module comment). */
export async function runSlurmExperiment(s: Scenario, opts: ExperimentOptions & { readonly slurm?: SlurmOptions }): Promise<ExperimentSummary> {
  const so = opts.slurm ?? {};
  const log = so.log ?? ((l: string) => { process.stderr.write(l + '\n'); });
  const print = so.print ?? ((l: string) => { process.stdout.write(l + '\n'); });
  const dir = resolve(opts.dir);
  const units = expandMatrix(s);
  if (!so.dryRun) openStore(dir, manifestFor(s, units), opts.resume ?? false);
  const todo: RunUnit[] = [];
  let skipped = 0;
  for (const u of units) {
    if (existsSync(runFile(dir, u.id)) && readResult(dir, u)?.status === 'ok') skipped++;
    else todo.push(u);
  }
  const progress = opts.progress === undefined ? createProgress(todo.length, opts.progressStream) : opts.progress;
  const ran = todo.length;
  try {
    if (todo.length === 0) return summarize(units, dir, skipped, 0, new Map());
    const allTodo = withTraceDir(dir, todo);
    todo.splice(0, todo.length, ...allTodo);
    // Calibration: the first unit runs here, timed, to size the chunks (and is stored: it is a
    // real run, with the same result it would have on a node). A failed run is no measure (it
    // may stop at once), so up to 3 are tried until one succeeds.
    let unitSeconds: number | null = null;
    if (so.chunkSize === undefined || so.dryRun) {
      const ensured = new Map<string, TraceOutcome>();
      let n = 0;
      for (const u of todo.slice(0, 3)) {
        n++;
        // A dry run writes nothing: it times a direct run of the unit (replay costs about the
        // same). Otherwise the recording (if any) is made first, untimed: many units share it.
        const spec = so.dryRun ? { ...u.spec, input: { kind: 'direct' as const, reason: 'calibration' }, traceDir: undefined } : u.spec;
        if (!so.dryRun && spec.input.kind === 'replay' && 'recipe' in spec.input.trace && !ensured.has(spec.input.trace.key)) ensured.set(spec.input.trace.key, ensureTrace(spec));
        const t0 = performance.now();
        const r = executeWithRecording(u.id, spec, ensured);
        const secs = (performance.now() - t0) / 1000;
        unitSeconds = r.status === 'ok' ? secs : Math.max(unitSeconds ?? 0, secs);
        log(`virtlab: calibration: ${unitLabel(u)}: ${r.status} in ${fmt(secs)} here`);
        if (!so.dryRun) {
          writeResult(dir, r);
          progress?.done(unitLabel(u), r.status === 'failed' ? r.error ?? 'failed' : null);
        }
        if (r.status === 'ok') break;
      }
      if (!so.dryRun) todo.splice(0, n);
    }
    const target = so.chunkSeconds ?? 600;
    const chunkSize = so.chunkSize ?? Math.max(1, Math.floor(target / Math.max(unitSeconds!, 1e-3)));
    const cpus = so.cpusPerTask ?? 1;
    const nChunks = Math.ceil(todo.length / chunkSize);
    if (so.dryRun) {
      print(`plan: ${units.length} runs, ${skipped} already stored, ${todo.length} to run in ${nChunks} chunk(s) of up to ${chunkSize} run(s)`);
      if (unitSeconds !== null) {
        const coreHours = (todo.length * unitSeconds * cpus) / 3600;
        const task = Math.min(chunkSize, todo.length) * unitSeconds;
        print(`estimate (from a calibration run of ${fmt(unitSeconds)}; runs differ, so treat it as an order of magnitude): ${fmt(task)} per task, ${coreHours < 0.1 ? coreHours.toPrecision(2) : coreHours.toFixed(1)} core-hours in all (${cpus} CPU(s) per task)`);
        print(`suggested --time: ${Math.max(10, Math.ceil((3 * task) / 60))} (minutes: three times the estimated task length, at least 10)`);
      }
      print(batchScript(jobOptions(s, so, cpus), join(dir, 'slurm/submit-N/chunks.json'), join(dir, 'slurm/submit-N/logs')).trimEnd());
      return { units: units.length, skipped, ran: 0, failed: 0, failures: [], recorded: 0, reusedTraces: 0 };
    }
    if (todo.length === 0) return summarize(units, dir, skipped, ran, new Map());
    // The units carry DIR/traces (where chunks find and write recordings), as in the local runner.
    const sub = newSubmitDir(dir);
    // A stored failure is run again (as locally); moved aside so that "no file" means "to do".
    for (const u of todo) {
      if (existsSync(runFile(dir, u.id))) {
        mkdirSync(join(sub, 'replaced'), { recursive: true });
        renameSync(runFile(dir, u.id), join(sub, 'replaced', `${u.id}.json`));
      }
    }
    const manifestPath = join(sub, 'chunks.json');
    const manifest = planChunks(dir, s.sha256, todo, chunkSize, unitLabel);
    writeChunkManifest(manifestPath, manifest);
    const scriptPath = join(sub, 'job.sh');
    writeFileSync(scriptPath, batchScript(jobOptions(s, so, cpus), manifestPath, join(sub, 'logs')), { mode: 0o755 });
    const missing = await submitAndWait(so, log, dir, sub, scriptPath, manifest, (u, err) => progress?.done(u, err));
    return summarize(units, dir, skipped, ran, missing);
  } finally {
    progress?.stop();
  }
}

function jobOptions(s: Scenario, so: SlurmOptions, cpus: number): Parameters<typeof batchScript>[0] {
  return {
    jobName: `virtlab-${s.name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}`,
    partition: so.partition, account: so.account, time: so.time, cpusPerTask: cpus, extra: so.extra ?? [], node: so.node,
  };
}

/** Why a unit has no result at the end: its chunk's last task. */
type Missing = Map<string, string>;

async function submitAndWait(so: SlurmOptions, log: (l: string) => void, dir: string, sub: string, script: string,
  manifest: ReturnType<typeof planChunks>, done: (label: string, err: string | null) => void): Promise<Missing> {
  const maxAttempts = so.maxAttempts ?? 3;
  const pollMs = (so.pollSeconds ?? 5) * 1000;
  const squeueGraceMs = Math.max(10 * pollMs, 600_000);
  const pending = new Map(manifest.units.map((u) => [u.id, u]));
  const collect = (): void => {
    for (const [id, u] of pending) {
      if (!existsSync(runFile(dir, id))) continue;
      const r = readResult(dir, { id, spec: u.spec, memberships: [] });
      if (!r) continue;
      pending.delete(id);
      done(u.label, r.status === 'failed' ? r.error ?? 'failed' : null);
    }
  };
  const chunksMissing = (): number[] => {
    const out: number[] = [];
    for (let k = 0; k < chunkCount(manifest); k++) if (chunkUnits(manifest, k).some((u) => pending.has(u.id))) out.push(k);
    return out;
  };
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  const signal = so.signal ?? ac.signal;
  if (!so.signal) process.once('SIGINT', onSigint);
  const lastTask = new Map<number, string>();
  try {
    let chunks = chunksMissing();
    for (let attempt = 1; attempt <= maxAttempts && chunks.length; attempt++) {
      const array = arraySpec(chunks, so.maxTasks);
      const job = await sbatch([`--array=${array}`], script);
      log(`virtlab: submitted Slurm job ${job} (attempt ${attempt}/${maxAttempts}): ${chunks.length} chunk(s) [${array}], logs in ${join(sub, 'logs')}`);
      let tasks: TaskState[] | null = [];
      let lastStatus = '';
      let squeueErrors = 0;
      for (;;) {
        if (signal.aborted) {
          try { await scancel(job); } catch (e) { log(`virtlab: ${(e as Error).message}`); }
          collect();
          throw new SlurmInterrupted(`interrupted: cancelled Slurm job ${job} (scancel); the ${manifest.units.length - pending.size} run(s) stored so far are kept: continue with --resume`);
        }
        try {
          tasks = await squeueTasks(job);
          squeueErrors = 0;
        } catch (e) {
          // A controller that is briefly unreachable (restart, overload) must not end the
          // driver: the job goes on. Only a long outage stops it, saying how to continue.
          if (!(e instanceof SlurmError) || /not found on PATH/.test(e.message) || ++squeueErrors * pollMs > squeueGraceMs) {
            throw new SlurmError(`${(e as Error).message}; Slurm job ${job} may still be running: check squeue, and once it has ended rerun with --resume (stored runs are kept)`);
          }
          if (squeueErrors === 1) log(`virtlab: ${(e as Error).message} (retrying for up to ${fmt(squeueGraceMs / 1000)})`);
          await sleep(pollMs, signal);
          continue;
        }
        collect();
        const ended = tasks === null || tasks.every((t) => isTerminal(t.state));
        const counts = new Map<string, number>();
        for (const t of tasks ?? []) counts.set(t.state, (counts.get(t.state) ?? 0) + 1);
        const status = [...counts].map(([k, v]) => `${v} ${k.toLowerCase()}`).join(', ');
        if (status !== lastStatus) { log(`virtlab: job ${job}: ${status || 'no longer listed by squeue'}; ${manifest.units.length - pending.size}/${manifest.units.length} runs stored`); lastStatus = status; }
        if (ended) break;
        await sleep(pollMs, signal);
      }
      // A result written just before the task ended may take a moment to show on a shared
      // file system: one more look before calling it missing.
      if (chunksMissing().length) { await sleep(Math.min(pollMs, 2000), signal); collect(); }
      chunks = chunksMissing();
      if (!chunks.length) break;
      const acct = await sacctTasks(job);
      for (const k of chunks) {
        const t = tasks?.find((x) => x.task === k);
        const a = acct?.get(k);
        const err = join(sub, 'logs', `chunk-${k}.job-${job}.err`);
        const why = `${a ? `${a.state}, exit ${a.exitCode}` : t ? `${t.state}${t.reason && t.reason !== 'None' ? ` (${t.reason})` : ''}` : 'not listed by squeue any more'}`;
        const last = lastLine(err);
        lastTask.set(k, `chunk ${k}, job ${job}_${k}: ${why}; log ${err}${last ? `: ${last}` : ''}`);
        log(`virtlab: chunk ${k} (job ${job}_${k}) ended ${why} with ${chunkUnits(manifest, k).filter((u) => pending.has(u.id)).length} run(s) missing; log: ${err}${last ? `\n  ${last}` : ''}`);
      }
      if (attempt < maxAttempts) log(`virtlab: resubmitting ${chunks.length} chunk(s) with missing results`);
    }
  } finally {
    if (!so.signal) process.removeListener('SIGINT', onSigint);
  }
  const missing: Missing = new Map();
  for (let k = 0; k < chunkCount(manifest); k++) {
    for (const u of chunkUnits(manifest, k)) if (pending.has(u.id)) missing.set(u.id, `no result after ${maxAttempts} submission(s) (${lastTask.get(k) ?? `chunk ${k}`}); rerun with --resume`);
  }
  return missing;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((res) => {
    if (signal.aborted) { res(); return; }
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); res(); }, ms);
    const onAbort = (): void => { clearTimeout(t); res(); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function summarize(units: readonly RunUnit[], dir: string, skipped: number, ran: number, missing: Missing): ExperimentSummary {
  const failures: { unit: RunUnit; error: string }[] = [];
  for (const u of units) {
    const m = missing.get(u.id);
    if (m !== undefined) { failures.push({ unit: u, error: m }); continue; }
    const r = existsSync(runFile(dir, u.id)) ? readResult(dir, u) : null;
    if (r?.status === 'failed') failures.push({ unit: u, error: r.error ?? 'failed' });
  }
  return { units: units.length, skipped, ran, failed: failures.length, failures };
}
