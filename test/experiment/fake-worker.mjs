// A stand-in for src/experiment/worker.ts in pool tests: answers at once, or dies when the
// unit's params ask for it (no emulation, no TypeScript to load).
import { parentPort } from 'node:worker_threads';

parentPort.on('message', (m) => {
  if (m.spec.workload.params.crash) process.exit(3);
  parentPort.postMessage({
    result: { schema: 'virtlab.experiment-run/1', id: m.id, spec: m.spec, status: 'ok', error: null, record: null, bench: [], checksum: null, timeline: [] },
    wallMs: 0,
  });
});
