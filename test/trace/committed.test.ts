/**
 * The committed traces (traces/, issue 6 item 7) replay without divergence, with their
 * recorded console and status, and give the committed run-record digests. After a deliberate
 * change of costs, profiles or monitors, regenerate them: test/trace/make-committed.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readTrace } from '../../src/trace/reader.js';
import { formatDivergence, replayTrace } from '../../src/trace/replayer.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import { COMMITTED, modesFor } from './committed.js';

const DIR = new URL('../../traces/', import.meta.url);
const DIGESTS = JSON.parse(readFileSync(new URL('digests.json', DIR), 'utf8')) as Record<string, Record<string, { profileSha256: string; recordSha256: string; consoleSha256: string; exitStatus: number }>>;

describe('committed traces', () => {
  for (const t of COMMITTED) {
    it(`${t.file} replays under ${t.mode === 'pv' ? 'pv' : 'native and hw'} with its committed run-record digests`, () => {
      const bytes = readFileSync(new URL(t.file, DIR));
      const trace = readTrace(bytes, t.file);
      expect(trace.header.workload?.name).toBe(t.workload);
      expect(trace.header.mode).toBe(t.mode);
      for (const m of modesFor(t)) {
        const want = DIGESTS[t.file]![m.id]!;
        const r = replayTrace(trace, m.options);
        expect(r.divergence, `${m.id}: ${r.divergence ? formatDivergence(r.divergence) : ''}`).toBeNull();
        expect(r.record.consoleSha256, m.id).toBe(trace.trailer.consoleSha256);
        expect(r.status, m.id).toBe(trace.trailer.exitStatus);
        expect(r.status).toBe(want.exitStatus);
        expect(m.options.profile.sha256, `${m.id}: the profile changed since traces/digests.json was made (regenerate: test/trace/make-committed.ts)`).toBe(want.profileSha256);
        const got = createHash('sha256').update(serializeRunRecord(r.record)).digest('hex');
        expect(got, `${m.id}: run record digest (costs or monitors changed? regenerate: test/trace/make-committed.ts)`).toBe(want.recordSha256);
      }
    }, 60_000);
  }
});
