/**
 * Replays the differential-fuzzing corpus (docs/fuzzing.md): each program is regenerated
 * from its seed (gen.ts), run on virtlab with the interpreter and with the JIT compiling
 * every block at once, and each comparable line (checkpoint registers and masked EFLAGS,
 * fault vector/error code/CR2/EIP, data-window hash) must match the digest recorded from
 * QEMU 7.2 (or, for the seeds in known.ts, the SDM result). No QEMU needed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from './gen.js';
import { digest, lines, runVirtlab } from './harness.js';
import { KNOWN_QEMU_DIFFERENCES } from './known.js';

interface Entry { seed: string; kind: string; lines: number; digests: string; last: string }
const corpus = JSON.parse(readFileSync(join(import.meta.dirname, 'corpus.json'), 'utf8')) as { programs: Entry[]; regressions: string[] };

/** The first line that differs from the recording, described for a failure message; null if none. */
const programs = new Map<string, ReturnType<typeof generate>>();
function program(seed: string): ReturnType<typeof generate> {
  let p = programs.get(seed);
  if (p === undefined) { p = generate(seed); programs.set(seed, p); }
  return p;
}

function mismatch(e: Entry, jit: boolean): string | null {
  const p = program(e.seed);
  const got = lines(p, runVirtlab(p, jit).bytes);
  const want = e.digests.split(' ');
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (got[i] === undefined || digest(got[i]!) !== want[i]) {
      const k = /after#(\d+)|\(#(\d+)\)/.exec(got[i] ?? '');
      const n = k ? Number(k[1] ?? k[2]) : -1;
      return `seed ${e.seed} (${jit ? 'JIT' : 'interpreter'}): line ${i} of ${want.length} differs: virtlab ${got[i] ?? '(none)'}`
        + (i === want.length - 1 ? `; recorded ${e.last}` : '')
        + (n >= 0 ? `; instruction #${n} = ${p.instrBytes[n]} (fuzz.ts show ${e.seed} for all lines)` : '');
    }
  }
  return null;
}

describe('differential corpus (QEMU 7.2 recordings)', () => {
  it('holds a few hundred programs, faulting ones included', () => {
    expect(corpus.programs.length).toBeGreaterThanOrEqual(300);
    expect(corpus.programs.filter((e) => e.last.startsWith('hash=') && e.digests.split(' ').length > 1).length).toBeGreaterThan(200);
    expect(corpus.programs.filter((e) => e.kind === 'fault').length).toBeGreaterThan(40);
  });

  it('regenerates the recorded programs (generator unchanged)', () => {
    // The number of lines depends only on the program; a changed generator shows here first.
    for (const e of corpus.programs.slice(0, 20)) {
      const p = generate(e.seed);
      expect(p.checkpointMasks.length, `seed ${e.seed}`).toBeGreaterThanOrEqual(e.lines - 2);
    }
  });

  it('interpreter: every program matches', { timeout: 120_000 }, () => {
    const bad = corpus.programs.map((e) => mismatch(e, false)).filter((m): m is string => m !== null);
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('JIT (threshold 0): every fourth program, and the regressions, match', { timeout: 120_000 }, () => {
    const bad = corpus.programs.filter((e, i) => i % 4 === 0 || corpus.regressions.includes(e.seed)).map((e) => mismatch(e, true)).filter((m): m is string => m !== null);
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('keeps the regression seeds and the known QEMU differences', () => {
    const seeds = new Set(corpus.programs.map((e) => e.seed));
    for (const s of [...corpus.regressions, ...Object.keys(KNOWN_QEMU_DIFFERENCES)]) expect(seeds.has(s), s).toBe(true);
  });
});
