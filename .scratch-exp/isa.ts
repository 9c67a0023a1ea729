import { readFileSync } from 'node:fs';
import { recordTrace, replayTrace, formatDivergence } from '../src/trace/index.js';
import { loadProfile } from '../src/profiles/index.js';
const P = loadProfile('skylake-2015');
const bytes = readFileSync('test/guests/bin/isa.elf');
for (const max of [1_000_000, 5_000_000]) {
  const t0 = performance.now();
  const rec = recordTrace({ image: { bytes, path: 'isa.elf' }, memoryMiB: 128, profile: P, maxInstructions: max, branches: false });
  const t = replayTrace(rec.bytes, { mode: 'trap', profile: P, localize: false });
  console.log(max, rec.run.status, t.divergence ? formatDivergence(t.divergence).slice(0, 150) : null, (performance.now() - t0) | 0);
}
