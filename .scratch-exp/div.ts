import { validateScenario } from '../src/experiment/scenario.js';
import { expandMatrix } from '../src/experiment/matrix.js';
import { withTraceDir } from '../src/experiment/store.js';
import { ensureTrace, executeUnit } from '../src/experiment/execute.js';
for (const w of ['syscall', 'cr8wr', 'divzero', 'in', 'pgfault', 'ptemod', 'null-call']) {
  const s = validateScenario({ name: 'd', workloads: [w], modes: ['native'], profiles: ['skylake-2015'] }, 'd.json');
  const [u] = withTraceDir('/tmp/rx/div', expandMatrix(s));
  ensureTrace(u!.spec);
  const t0 = performance.now();
  const r = executeUnit(u!.id, { ...u!.spec, mode: 'trap' });
  console.log(w, r.status, r.divergence?.slice(0, 200), (performance.now() - t0) | 0);
}
