/**
 * Record and replay (issue 6): the same seed gives the same trace bytes; a replay gives the
 * recording's guest-visible outcome in every mode but trap, with the recorded inputs where
 * the guest takes them; trap's sensitive-instruction lesson shows as a divergence.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readTrace } from '../../src/trace/reader.js';
import { replayTrace, formatDivergence, type ReplayOptions } from '../../src/trace/replayer.js';
import { recordTrace } from '../../src/trace/recorder.js';
import { runGuest } from '../../src/trace/run-guest.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import { summarizeTrace } from '../../src/trace/inspect.js';
import { P6, VMM, recordWorkload, workloadSpec } from './helpers.js';

const MODES: { name: string; opts: Omit<ReplayOptions, 'file'> }[] = [
  { name: 'native', opts: { mode: 'native', profile: P6 } },
  { name: 'hw nested', opts: { mode: 'hw', profile: VMM, modeOptions: { paging: 'nested' } } },
  { name: 'hw shadow', opts: { mode: 'hw', profile: VMM, modeOptions: { paging: 'shadow' } } },
];

describe('recording', () => {
  it('is byte-identical when made twice with the same seed, and differs with another seed where the seed matters', () => {
    const a = recordWorkload('pingpong', { via: 'net', n: 5, delay: 20000 }, 7);
    const b = recordWorkload('pingpong', { via: 'net', n: 5, delay: 20000 }, 7);
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
    const c = recordWorkload('pingpong', { via: 'net', n: 5, delay: 20000 }, 8);
    expect(Buffer.from(a.bytes).equals(Buffer.from(c.bytes))).toBe(false);
    expect(readTrace(c.bytes).header.seed).toBe(8);
  });

  it('is the same run as plain execution (the hooks change nothing the guest or the run record sees)', () => {
    const spec = workloadSpec('database', { txns: 5, dbsize: 16 });
    const plain = runGuest({ ...workloadSpec('database', { txns: 5, dbsize: 16 }), mode: 'native' });
    const rec = recordTrace(spec);
    expect(serializeRunRecord(rec.run.record)).toBe(serializeRunRecord(plain.record));
  });

  it('holds every kind of input of the workloads that have them', () => {
    const counts = (b: Uint8Array): Record<string, number> => summarizeTrace(readTrace(b)).counts as Record<string, number>;
    const db = counts(recordWorkload('database', { txns: 5, dbsize: 16 }).bytes);
    expect(db['block-complete']).toBeGreaterThanOrEqual(5);
    expect(db['port-read']).toBeGreaterThan(0);
    expect(db['tnt-bit']).toBeGreaterThan(1000);
    const net = counts(recordWorkload('pingpong', { via: 'net', n: 5 }).bytes);
    expect(net['net-rx']).toBe(5);
    const fw = counts(recordWorkload('forkwait', { n: 5 }).bytes);
    expect(fw['interrupt 0x20']).toBeGreaterThan(0); // PIT ticks (IRQ 0 at vector 0x20)
    expect(fw.rdtsc).toBeGreaterThan(0);
  });
});

describe('replay', () => {
  for (const [name, params] of [['forkwait', { n: 5 }], ['database', { txns: 5, dbsize: 16 }], ['pingpong', { via: 'net', n: 5 }]] as const) {
    it(`workload:${name}: every mode but trap gives the recording's console and status, without divergence`, () => {
      const rec = recordWorkload(name, params as Record<string, string | number>);
      const cycles = new Set<number>();
      for (const m of MODES) {
        const r = replayTrace(rec.bytes, { ...m.opts, checkBranches: true });
        expect(r.divergence, `${m.name}: ${r.divergence && formatDivergence(r.divergence)}`).toBeNull();
        expect(r.record.consoleSha256, m.name).toBe(rec.run.record.consoleSha256);
        expect(r.status, m.name).toBe(rec.run.status);
        expect(r.outcome.instructions, m.name).toBe(rec.run.outcome.instructions);
        // A halted guest waits as long as it did when recorded: the outside world's time.
        expect(r.outcome.idleCycles, m.name).toBe(rec.run.outcome.idleCycles);
        cycles.add(r.outcome.cycles);
      }
      // The modes differ in cost, not in what the guest saw (its RDTSC readings come from the trace).
      expect(cycles.size).toBe(MODES.length);
      if (name === 'database') expect(rec.run.outcome.idleCycles).toBeGreaterThan(0); // it waits for the disk in HLT
      // full: the same control flow, registers and console; its guest RAM differs (see the report).
      const f = replayTrace(rec.bytes, { mode: 'full', profile: P6, checkRam: false, checkBranches: true });
      expect(f.divergence, f.divergence ? formatDivergence(f.divergence) : '').toBeNull();
      expect(f.record.consoleSha256).toBe(rec.run.record.consoleSha256);
    }, 120_000);
  }

  it('native replay reproduces the recording run record but for nothing (same profile: same cycles)', () => {
    const rec = recordWorkload('forkwait', { n: 5 });
    const r = replayTrace(rec.bytes, { mode: 'native', profile: P6 });
    expect(r.record.instructions).toBe(rec.run.record.instructions);
    expect(r.record.consoleSha256).toBe(rec.run.record.consoleSha256);
    expect(r.record.idleCycles).toBe(rec.run.record.idleCycles);
    expect(r.record.cycles).toBe(rec.run.record.cycles);
  });

  it('trap: the guest that reads PUSHF/POPF sees the real IF, and the replay names the divergence', () => {
    const bytes = readFileSync(new URL('../guests/bin/isa.elf', import.meta.url));
    const rec = recordTrace({ image: { bytes, path: 'isa.elf' }, memoryMiB: 128, profile: P6, maxInstructions: 100_000_000, branches: false });
    expect(replayTrace(rec.bytes, { mode: 'native', profile: P6 }).divergence).toBeNull();
    // (localize: false — no branch differs here, and the branch-checked re-run is slow.)
    const t = replayTrace(rec.bytes, { mode: 'trap', profile: P6, localize: false });
    expect(t.divergence).not.toBeNull();
    const line = formatDivergence(t.divergence!);
    expect(line).toMatch(/^replay diverged at logical instruction \d+: console output byte \d+: expected ".*", actual ".*"; at 0x[0-9a-f]{8}: \S/);
    expect(line).toContain('popf_pushf');
    expect(line).not.toContain('\n');
  }, 120_000);

  it('a divergence found late (a port read off the record) is pinpointed to the first branch that went the other way', () => {
    const rec = recordWorkload('database', { txns: 5, dbsize: 16 });
    const t = readTrace(rec.bytes);
    // The 38th device register read returns another value: the guest's driver takes another path.
    const c0 = t.chunks[0]!;
    const ports = c0.ports.slice();
    ports[37 * 3 + 2] ^= 0xff;
    const bad = { ...t, chunks: [{ ...c0, ports }, ...t.chunks.slice(1)] };
    const fast = replayTrace(bad, { mode: 'native', profile: P6, localize: false });
    expect(fast.divergence).not.toBeNull();
    const exact = replayTrace(bad, { mode: 'native', profile: P6 });
    const d = exact.divergence!;
    expect(d.what).toMatch(/^conditional branch #\d+ \(the first sign; without branch checking the replay found: /);
    expect(d.position).toBeLessThan(fast.divergence!.position);
    expect(d.instruction).toMatch(/^0x[0-9a-f]{8}: j/);
    expect(`${d.expected}/${d.actual}`).toMatch(/^(taken\/not taken|not taken\/taken)$/);
  });
});

describe('determinism of replay', () => {
  it('property: for generated workload parameters and seeds, recording twice gives the same bytes and replays agree across modes', () => {
    fc.assert(fc.property(
      fc.record({ n: fc.integer({ min: 1, max: 4 }), delay: fc.integer({ min: 2000, max: 60000 }), seed: fc.integer({ min: 0, max: 0xffff }) }),
      ({ n, delay, seed }) => {
        const a = recordWorkload('pingpong', { via: 'net', n, delay }, seed);
        const b = recordWorkload('pingpong', { via: 'net', n, delay }, seed);
        expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
        const r1 = replayTrace(a.bytes, { mode: 'native', profile: P6 });
        const r2 = replayTrace(a.bytes, { mode: 'native', profile: P6 });
        expect(serializeRunRecord(r1.record)).toBe(serializeRunRecord(r2.record));
        const h = replayTrace(a.bytes, { mode: 'hw', profile: VMM });
        expect(h.divergence).toBeNull();
        expect(h.record.consoleSha256).toBe(a.run.record.consoleSha256);
      },
    ), { numRuns: 3, seed: 6 });
  }, 180_000);

  it('property: database over seeds and sizes: the disk completions land where they were recorded in every mode', () => {
    fc.assert(fc.property(
      fc.record({ txns: fc.integer({ min: 1, max: 6 }), seed: fc.integer({ min: 0, max: 1000 }) }),
      ({ txns, seed }) => {
        const a = recordWorkload('database', { txns, dbsize: 16, seed }, seed);
        for (const m of MODES.slice(1)) {
          const r = replayTrace(a.bytes, m.opts);
          expect(r.divergence, m.name).toBeNull();
          expect(r.record.consoleSha256).toBe(a.run.record.consoleSha256);
        }
      },
    ), { numRuns: 3, seed: 9 });
  }, 180_000);
});

describe('how a recording ends', () => {
  it('an instruction limit: the replay stops at the same count, status 124', () => {
    const rec = recordWorkload('forkwait', { n: 5 }, null, { maxInstructions: 150_000 });
    expect(rec.run.outcome.exit.reason).toBe('instruction-limit');
    for (const m of MODES) {
      const r = replayTrace(rec.bytes, m.opts);
      expect(r.divergence, m.name).toBeNull();
      expect(r.status).toBe(124);
      expect(r.outcome.instructions).toBe(150_000);
      expect(r.record.consoleSha256).toBe(rec.run.record.consoleSha256);
    }
  });

  it('halted with nothing to wake it: the replay ends halted the same way (status 4, the same detail)', () => {
    // sti; out 0xe9, al ('!'); hlt — at 1 MiB, flat 32-bit protected mode, no timer programmed.
    const bytes = Uint8Array.from([0xfb, 0xb0, 0x21, 0xe6, 0xe9, 0xf4]);
    const rec = recordTrace({ image: { bytes, path: 'halt.bin' }, flat: { loadAddress: 0x100000 }, profile: P6, maxInstructions: 1000 });
    expect(rec.run.outcome.exit.reason).toBe('halt');
    for (const m of MODES) {
      const r = replayTrace(rec.bytes, m.opts);
      expect(r.divergence, m.name).toBeNull();
      expect(r.status, m.name).toBe(4);
      expect(r.outcome.exit).toEqual(rec.run.outcome.exit);
      expect(r.outcome.console.bytes).toBe(1);
    }
  });
});
