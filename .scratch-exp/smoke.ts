import { validateScenario } from '../src/experiment/scenario.js';
import { runExperiment } from '../src/experiment/runner.js';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
const dir = '/tmp/rx/out'; rmSync(dir, { recursive: true, force: true });
const s = validateScenario({ name: 'smoke', workloads: [{ name: 'syscall', params: { n: 20 } }, { name: 'web' }], modes: ['native', 'trap', 'full', { mode: 'hw', paging: 'nested', vpid: true }, 'pv'], profiles: ['skylake-2015'], seeds: [1] }, 'smoke.json', 'c'.repeat(64));
const t0 = performance.now(); const c0 = process.cpuUsage();
const r = await runExperiment(s, { dir, executor: 'inline', progress: null });
console.log(JSON.stringify({ ...r, failures: r.failures.map(f => f.error) }), (performance.now() - t0) | 0, process.cpuUsage(c0));
for (const f of readdirSync(dir + '/runs')) { const x = JSON.parse(readFileSync(dir + '/runs/' + f, 'utf8')); console.log(x.spec.workload.name, x.spec.mode, x.status, x.input, x.checksum, x.record?.cycles, x.timeline.length, x.error); }
console.log(readdirSync(dir + '/traces'));
