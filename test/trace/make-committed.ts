/**
 * Regenerates traces/*.vlt (small traces of standard workloads) and traces/digests.json (the
 * run-record digests of their replays, which test/trace/committed.test.ts checks). Run after a
 * deliberate change of costs, profiles or monitors:
 *   node --import ./scripts/ts-register.mjs test/trace/make-committed.ts
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { replayTrace } from '../../src/trace/replayer.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import { COMMITTED, COMMITTED_MODES } from './committed.js';
import { recordWorkload } from './helpers.js';

const dir = fileURLToPath(new URL('../../traces/', import.meta.url));
const digests: Record<string, Record<string, { profileSha256: string; recordSha256: string; consoleSha256: string; exitStatus: number }>> = {};
for (const t of COMMITTED) {
  const rec = recordWorkload(t.workload, t.params, t.seed);
  writeFileSync(dir + t.file, rec.bytes);
  digests[t.file] = {};
  for (const m of COMMITTED_MODES) {
    const r = replayTrace(rec.bytes, m.options);
    if (r.divergence !== null) throw new Error(`${t.file} ${m.id}: diverged`);
    digests[t.file]![m.id] = {
      profileSha256: m.options.profile.sha256,
      recordSha256: createHash('sha256').update(serializeRunRecord(r.record)).digest('hex'),
      consoleSha256: r.record.consoleSha256,
      exitStatus: r.status,
    };
  }
  console.log(`${t.file}: ${rec.bytes.length} bytes, ${rec.run.outcome.instructions} instructions`);
}
writeFileSync(dir + 'digests.json', JSON.stringify(digests, null, 2) + '\n');
