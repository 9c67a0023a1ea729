/**
 * A worker thread of the experiment pool: receives tasks ({ id, spec }) — a unit, or a
 * recording (id `record:<key>`) — executes each with `executeTask` and posts back the result. A unit that makes the worker crash is seen by the
 * pool as the worker's exit (see pool.ts).
 */
import { parentPort } from 'node:worker_threads';
import { executeTask } from './execute.js';
import type { UnitSpec } from './matrix.js';

parentPort?.on('message', (m: { id: string; spec: UnitSpec }) => {
  const t0 = performance.now();
  const result = executeTask(m.id, m.spec);
  parentPort!.postMessage({ result, wallMs: performance.now() - t0 });
});
