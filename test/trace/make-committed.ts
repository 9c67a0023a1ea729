/**
 * Regenerates traces/*.vlt (small traces of standard workloads) and traces/digests.json (the
 * run-record digests of their replays, which test/trace/committed.test.ts checks). Run after a
 * deliberate change of costs, profiles or monitors:
 *   node --import ./scripts/ts-register.mjs test/trace/make-committed.ts [FILE.vlt ...]
 * With file names, only those are regenerated (the other digests are kept).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { replayTrace } from '../../src/trace/replayer.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import { COMMITTED, modesFor } from './committed.js';
import { recordWorkload, VMM } from './helpers.js';

type Digest = { profileSha256: string; recordSha256: string; consoleSha256: string; exitStatus: number };
const dir = fileURLToPath(new URL('../../traces/', import.meta.url));
const only = process.argv.slice(2);
for (const f of only) if (!COMMITTED.some((t) => t.file === f)) throw new Error(`${f}: not a committed trace (test/trace/committed.ts lists them)`);
const old = only.length > 0 && existsSync(dir + 'digests.json') ? JSON.parse(readFileSync(dir + 'digests.json', 'utf8')) as Record<string, Record<string, Digest>> : {};
const digests: Record<string, Record<string, Digest>> = {};
for (const t of COMMITTED) {
  if (only.length > 0 && !only.includes(t.file)) {
    if (old[t.file] !== undefined) digests[t.file] = old[t.file]!;
    continue;
  }
  const rec = recordWorkload(t.workload, t.params, t.seed, t.mode === 'pv' ? { mode: 'pv', profile: VMM } : {});
  writeFileSync(dir + t.file, rec.bytes);
  digests[t.file] = {};
  for (const m of modesFor(t)) {
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
