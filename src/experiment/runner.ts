/**
 * `virtlab experiment`: expands a scenario, skips units already stored (resume), runs the
 * rest on the worker pool and stores each result as it arrives.
 */
import { availableParallelism } from 'node:os';
import { executeTask, executeUnit, type UnitResult } from './execute.js';
import { expandMatrix, RECORD_TASK_PREFIX, type RunUnit } from './matrix.js';
import { runPool } from './pool.js';
import { createProgress, type Progress } from './progress.js';
import type { Scenario } from './scenario.js';
import { manifestFor, openStore, readResult, recordingTasks, withTraceDir, writeResult } from './store.js';

export interface ExperimentOptions {
  readonly dir: string;
  /** Worker threads (default os.availableParallelism()). */
  readonly jobs?: number;
  readonly resume?: boolean;
  /** 'workers' (default) or 'inline' (in this thread, one at a time: debugging and tests). */
  readonly executor?: 'workers' | 'inline';
  /** A progress reporter; null for none; default: createProgress on `progressStream`. */
  readonly progress?: Progress | null;
  /** Where the default progress goes (default process.stderr; a TTY gets a bar). */
  readonly progressStream?: Parameters<typeof createProgress>[1];
  /** 'local' (default): this machine's worker pool; 'slurm': a job array (slurm-backend.ts). */
  readonly backend?: 'local' | 'slurm';
  /** Options of the Slurm back end. */
  readonly slurm?: import('./slurm-backend.js').SlurmOptions;
}

export interface ExperimentSummary {
  readonly units: number;
  /** Found stored and valid (resume). */
  readonly skipped: number;
  readonly ran: number;
  readonly failed: number;
  /** Recordings made (DIR/traces), and stored ones found intact and reused (absent: not counted by this back end). */
  readonly recorded?: number;
  readonly reusedTraces?: number;
  /** Failed units with their messages, in matrix order. */
  readonly failures: readonly { readonly unit: RunUnit; readonly error: string }[];
}

/** A unit's name for messages: workload, mode, profile, seed, sweep point. */
export function unitLabel(u: RunUnit): string {
  const m = u.memberships[0]!;
  return [m.workload, m.mode, m.profile, m.seed !== null ? `seed=${m.seed}` : '', m.sweep !== null ? `${m.sweep}=${m.sweepValue}` : ''].filter(Boolean).join(' / ');
}

/** Runs the experiment into `opts.dir`. Throws StoreError for an unusable directory. */
export async function runExperiment(s: Scenario, opts: ExperimentOptions): Promise<ExperimentSummary> {
  // Loaded on demand (and not at the top: slurm-backend imports this module).
  if (opts.backend === 'slurm') return (await import('./slurm-backend.js')).runSlurmExperiment(s, opts);
  const units = expandMatrix(s);
  openStore(opts.dir, manifestFor(s, units), opts.resume ?? false);
  const all = withTraceDir(opts.dir, units);
  const failedIds = new Map<string, string>();
  // Phase 1: the recordings that the unfinished units replay (each once, in parallel; a stored
  // one that is intact is reused). Phase 2: the units, replaying them or running directly.
  const pending = all.filter((u) => readResult(opts.dir, u)?.status !== 'ok');
  const recs = recordingTasks(pending);
  const progress = opts.progress === undefined ? createProgress(recs.length + pending.length, opts.progressStream) : opts.progress;
  let recorded = 0, reusedTraces = 0;
  const recordFailed = new Map<string, string>();
  const acceptRecording = (task: RunUnit, result: UnitResult): void => {
    const o = result.recording;
    if (o?.status === 'recorded') recorded++;
    else if (o?.status === 'reused') reusedTraces++;
    else recordFailed.set(task.id.slice(RECORD_TASK_PREFIX.length), result.error ?? 'recording failed');
    progress?.done(`record ${unitLabel(task).split(' / ')[0]}`, result.status === 'failed' ? result.error ?? 'failed' : null);
  };
  const accept = (unit: RunUnit, result: UnitResult): void => {
    writeResult(opts.dir, result);
    if (result.status === 'failed') failedIds.set(unit.id, result.error ?? 'failed');
    progress?.done(unitLabel(unit), result.status === 'failed' ? result.error ?? 'failed' : null);
  };
  const jobs = Math.max(1, opts.jobs ?? availableParallelism());
  let skipped = units.length - pending.length;
  const todo: RunUnit[] = [];
  try {
    if (opts.executor === 'inline') for (const t of recs) acceptRecording(t, executeTask(t.id, t.spec));
    else await runPool(recs, jobs, (r) => acceptRecording(r.unit, r.result));
    for (const u of pending) {
      // A stored run whose trace was re-recorded with the same bytes is still valid.
      if (readResult(opts.dir, u)?.status === 'ok') { skipped++; progress?.done(`${unitLabel(u)} (kept: its recording is intact again)`, null); continue; }
      const key = u.spec.input.kind === 'replay' ? u.spec.input.trace.key : null;
      const why = key !== null ? recordFailed.get(key) : undefined;
      if (why !== undefined) {
        accept(u, { schema: 'virtlab.experiment-run/1', id: u.id, spec: u.spec, status: 'failed', error: why, record: null, bench: [], checksum: null, timeline: [], input: 'replay', trace: null, divergence: null });
        continue;
      }
      todo.push(u);
    }
    if (opts.executor === 'inline') {
      for (const u of todo) accept(u, executeUnit(u.id, u.spec));
    } else {
      await runPool(todo, jobs, (r) => accept(r.unit, r.result));
    }
  } finally {
    progress?.stop();
  }
  const failures = units.filter((u) => failedIds.has(u.id)).map((unit) => ({ unit, error: failedIds.get(unit.id)! }));
  return { units: units.length, skipped, ran: todo.length, failed: failures.length, failures, recorded, reusedTraces };
}
