/**
 * `virtlab experiment`: expands a scenario, skips units already stored (resume), runs the
 * rest on the worker pool and stores each result as it arrives.
 */
import { availableParallelism } from 'node:os';
import { executeUnit, type UnitResult } from './execute.js';
import { expandMatrix, type RunUnit } from './matrix.js';
import { runPool } from './pool.js';
import { createProgress, type Progress } from './progress.js';
import type { Scenario } from './scenario.js';
import { manifestFor, openStore, readResult, writeResult } from './store.js';

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
}

export interface ExperimentSummary {
  readonly units: number;
  /** Found stored and valid (resume). */
  readonly skipped: number;
  readonly ran: number;
  readonly failed: number;
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
  const units = expandMatrix(s);
  openStore(opts.dir, manifestFor(s, units), opts.resume ?? false);
  const todo: RunUnit[] = [];
  let skipped = 0;
  const failedIds = new Map<string, string>();
  for (const u of units) {
    const r = readResult(opts.dir, u);
    // A stored success is kept; a stored failure is tried again (it may have been a crash).
    if (r?.status === 'ok') skipped++;
    else todo.push(u);
  }
  const progress = opts.progress === undefined ? createProgress(todo.length, opts.progressStream) : opts.progress;
  const accept = (unit: RunUnit, result: UnitResult): void => {
    writeResult(opts.dir, result);
    if (result.status === 'failed') failedIds.set(unit.id, result.error ?? 'failed');
    progress?.done(unitLabel(unit), result.status === 'failed' ? result.error ?? 'failed' : null);
  };
  try {
    if (opts.executor === 'inline') {
      for (const u of todo) accept(u, executeUnit(u.id, u.spec));
    } else {
      const jobs = Math.max(1, opts.jobs ?? availableParallelism());
      await runPool(todo, jobs, (r) => accept(r.unit, r.result));
    }
  } finally {
    progress?.stop();
  }
  const failures = units.filter((u) => failedIds.has(u.id)).map((unit) => ({ unit, error: failedIds.get(unit.id)! }));
  return { units: units.length, skipped, ran: todo.length, failed: failures.length, failures };
}
