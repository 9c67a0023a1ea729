/**
 * A worker_threads pool for run units. Each worker runs one unit at a time; a worker that
 * dies (crash, out of memory) loses only its unit, which is retried once on a new worker and
 * then reported as failed. Under the TypeScript sources (vitest, ts-node) the workers load
 * worker.ts through scripts/ts-register.mjs; compiled, they load worker.js.
 */
import { Worker } from 'node:worker_threads';
import type { UnitResult } from './execute.js';
import type { RunUnit } from './matrix.js';

/** A unit's result as the pool hands it over. */
export interface PoolResult {
  readonly unit: RunUnit;
  readonly result: UnitResult;
  /** Wall-clock milliseconds of the execution (progress and ETA only; never stored). */
  readonly wallMs: number;
}

function workerSource(): { url: URL; execArgv: string[] } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const register = new URL('../../scripts/ts-register.mjs', here);
    return { url: new URL('./worker.ts', here), execArgv: ['--import', register.href] };
  }
  return { url: new URL('./worker.js', here), execArgv: [] };
}

/**
 * Runs `units` on `jobs` workers; calls `onResult` for each as it finishes (in completion
 * order). Resolves when all are done. `worker` replaces the worker module (tests).
 */
export async function runPool(units: readonly RunUnit[], jobs: number, onResult: (r: PoolResult) => void, worker?: { url: URL; execArgv: string[] }): Promise<void> {
  if (units.length === 0) return;
  const src = worker ?? workerSource();
  const queue = units.map((unit) => ({ unit, attempts: 0 }));
  let active = 0;
  await new Promise<void>((resolveAll, rejectAll) => {
    const spawn = (): void => {
      const item = queue.shift();
      if (!item) {
        if (active === 0) resolveAll();
        return;
      }
      active++;
      let current = item;
      // running: has a unit; retiring: terminated because the queue is empty; dead: crashed, handled.
      let state: 'running' | 'retiring' | 'dead' = 'running';
      const w = new Worker(src.url, { execArgv: src.execArgv, stdout: false, stderr: false });
      const next = (): void => {
        const n = queue.shift();
        if (!n) { state = 'retiring'; void w.terminate(); return; }
        current = n;
        w.postMessage({ id: n.unit.id, spec: n.unit.spec });
      };
      w.on('message', (m: { result: UnitResult; wallMs: number }) => {
        try {
          onResult({ unit: current.unit, result: m.result, wallMs: m.wallMs });
        } catch (e) {
          state = 'dead';
          void w.terminate();
          rejectAll(e);
          return;
        }
        next();
      });
      const died = (why: string): void => {
        if (state !== 'running') return;
        state = 'dead';
        current.attempts++;
        if (current.attempts < 2) {
          queue.unshift(current);
        } else {
          const { unit } = current;
          onResult({
            unit, wallMs: 0,
            result: { schema: 'virtlab.experiment-run/1', id: unit.id, spec: unit.spec, status: 'failed', error: `the worker running it died twice (${why})`, record: null, bench: [], checksum: null, timeline: [] },
          });
        }
        active--;
        spawn();
      };
      w.on('error', (e) => died(e.message.split('\n')[0]!));
      w.on('exit', (code) => {
        if (state === 'running') { died(`exit code ${code}`); return; }
        if (state === 'retiring') {
          active--;
          if (queue.length) spawn();
          else if (active === 0) resolveAll();
        }
      });
      w.postMessage({ id: item.unit.id, spec: item.unit.spec });
    };
    for (let i = 0; i < Math.min(jobs, queue.length); i++) spawn();
  });
}
