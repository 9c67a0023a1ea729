/**
 * pv traces (docs/trace-format.md, "pv traces"): a paravirtualized guest recorded under the pv
 * hypervisor replays under pv only, bit-identically (in a worker thread too), with its inputs
 * (timer VIRQs, back-end completions, frame arrivals, RDTSC) at their logical positions; and
 * its guest-visible outcome is the native trace's for the same workload, params and seed.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VMM_PROFILE } from '../../src/profiles/index.js';
import { readTrace } from '../../src/trace/reader.js';
import { replayTrace, TraceModeError } from '../../src/trace/replayer.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import { Section, TraceFormatError, TraceWriter, TRACE_VERSION_PV } from '../../src/trace/format.js';
import { encodeBlob, encodeChunk, encodeIndex, Ev, type Chunk, type IndexEntry } from '../../src/trace/trace-data.js';
import type { Trace } from '../../src/trace/reader.js';
import { virtlab } from '../cli/in-process.js';
import { P6, VMM, recordWorkload } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function inWorker(bytes: Uint8Array): Promise<{ record: string; divergence: unknown }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./replay-worker.ts', import.meta.url), {
      workerData: { bytes, mode: 'pv', profile: DEFAULT_VMM_PROFILE },
      execArgv: ['--import', join(ROOT, 'scripts', 'ts-register.mjs')],
    });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

/**
 * The console with what differs by design between the two kernels blanked, and nothing else:
 * the guest's own timing figures (RDTSC differences: pv's cost, not an outcome) and the boot
 * banner line of the disk or NIC driver (the native kernel's ata/e1000 driver, the pv kernel's
 * blkfront/netfront front end).
 */
const untimed = (b: Uint8Array | string): string => Buffer.from(b as Uint8Array).toString('latin1')
  .replace(/cycles(_per_op)?=\d+/g, 'cycles$1=#')
  .replace(/^(ata\d|blkfront): .*$/gm, '<disk driver>')
  .replace(/^(e1000|netfront): .*$/gm, '<nic driver>');

/** Writes `t` again with its chunks changed by `edit` (a valid file: checksums and index recomputed). */
function rewrite(t: Trace, edit: (c: Chunk) => Chunk): Uint8Array {
  const w = new TraceWriter(TRACE_VERSION_PV);
  const enc = new TextEncoder();
  w.section(Section.Header, enc.encode(JSON.stringify(t.header)));
  w.section(Section.Blob, encodeBlob('image', t.image));
  if (t.disk !== null) w.section(Section.Blob, encodeBlob('disk', t.disk));
  const index: IndexEntry[] = [];
  for (const c0 of t.chunks) {
    const c = edit(c0);
    const offset = w.section(Section.Chunk, encodeChunk(c));
    index.push({ offset, start: c.start, end: c.end, events: c.events.length, ports: c.ports.length / 3, tsc: c.tsc.length, tntBits: c.tntBits, tips: c.tips.length });
  }
  const at = w.section(Section.Index, encodeIndex(index));
  w.section(Section.Trailer, enc.encode(JSON.stringify(t.trailer)));
  return w.finish(at);
}

describe('pv traces', () => {
  it('records a pv guest with its timer VIRQs and replays it under pv bit-identically: twice, under another profile, in a worker thread', async () => {
    // forkwait n=60 runs long enough (~5M instructions) for the pv timer to fire.
    const rec = recordWorkload('forkwait', { n: 60 }, null, { mode: 'pv', profile: VMM });
    const t = readTrace(rec.bytes, 'fw.vlt');
    expect(t.header.mode).toBe('pv');
    expect(new DataView(rec.bytes.buffer, rec.bytes.byteOffset).getUint32(8, true)).toBe(2);
    const virqs = t.chunks.flatMap((c) => c.events).filter((e) => e.kind === Ev.Virq);
    expect(virqs.length).toBeGreaterThan(0);
    expect(t.trailer.counts.virq).toBe(virqs.length);
    expect(rec.run.record.mode).toBe('pv');

    const a = replayTrace(rec.bytes, { mode: 'pv', profile: VMM });
    expect(a.divergence).toBeNull();
    const ra = serializeRunRecord(a.record);
    // Same mode and profile as the recording: the replay's record is the recording run's.
    expect(ra).toBe(serializeRunRecord(rec.run.record));
    expect(serializeRunRecord(replayTrace(rec.bytes, { mode: 'pv', profile: VMM }).record)).toBe(ra);
    // The upcalls the VIRQs raised were delivered as in the recording.
    expect(a.record.monitor['evtchn.upcalls']).toBe(rec.run.record.monitor['evtchn.upcalls']);

    // Another profile: other timing, the same inputs at the same positions, the same guest output.
    const p = replayTrace(rec.bytes, { mode: 'pv', profile: P6, checkBranches: true });
    expect(p.divergence).toBeNull();
    expect(p.record.consoleSha256).toBe(rec.run.record.consoleSha256);
    expect(p.record.cycles).not.toBe(rec.run.record.cycles);

    const w = await inWorker(rec.bytes);
    expect(w.divergence).toBeNull();
    expect(w.record).toBe(ra);

    // The VIRQs are inputs: rewritten without the first one, or with it one instruction late,
    // the trace no longer describes the run and the replay says where.
    const first = virqs[0]!;
    const same = rewrite(t, (c) => c);
    expect(replayTrace(same, { mode: 'pv', profile: VMM }).divergence).toBeNull();
    const dropped = replayTrace(rewrite(t, (c) => ({ ...c, events: c.events.filter((e) => e !== first) })), { mode: 'pv', profile: VMM, localize: false });
    expect(dropped.divergence).not.toBeNull();
    expect(dropped.divergence!.position).toBeGreaterThanOrEqual(first.pos);
    const late = replayTrace(rewrite(t, (c) => ({ ...c, events: c.events.map((e) => (e === first ? { ...first, pos: first.pos + 1 } : e)) })), { mode: 'pv', profile: VMM, localize: false });
    expect(late.divergence).not.toBeNull();
  }, 240_000);

  it('refuses, up front, a pv trace under any other mode and a native trace under pv', () => {
    const pvRec = recordWorkload('syscall', { n: 20 }, null, { mode: 'pv', profile: VMM });
    for (const mode of ['native', 'trap', 'full', 'hw'] as const) {
      let err: unknown = null;
      try { replayTrace(pvRec.bytes, { mode, profile: mode === 'native' ? P6 : VMM }); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(TraceModeError);
      expect((err as Error).message).toMatch(/^this trace was recorded under pv: .*replay it with --mode pv$/);
    }
    const nat = recordWorkload('syscall', { n: 20 });
    expect(() => replayTrace(nat.bytes, { mode: 'pv', profile: VMM })).toThrow(/^this trace was recorded natively: .*cannot follow a native trace/);
    // Recording under another monitor is refused.
    expect(() => recordWorkload('syscall', { n: 20 }, null, { mode: 'hw' as never })).toThrow(RangeError);
  }, 60_000);

  it('a pv header in a version-1 file (or the reverse) is a format error at the header', () => {
    const pvRec = recordWorkload('syscall', { n: 20 }, null, { mode: 'pv', profile: VMM });
    const b = pvRec.bytes.slice(); b[8] = 1;
    expect(() => readTrace(b, 'p.vlt')).toThrow(TraceFormatError);
    expect(() => readTrace(b, 'p.vlt')).toThrow(/header: recording mode pv in a version-1 file/);
    const nat = recordWorkload('syscall', { n: 20 }).bytes.slice(); nat[8] = 2;
    expect(() => readTrace(nat, 'n.vlt')).toThrow(/a version-2 file must say "mode": "pv"/);
  }, 60_000);

  for (const [name, params, seed] of [
    ['database', { txns: 10, dbsize: 16 }, 1],
    ['pingpong', { via: 'net', n: 10 }, 1],
    ['forkwait', { n: 10 }, null],
  ] as const) {
    it(`${name}: the pv trace's guest-visible outcome is the native trace's (exit status, console but for timing figures)`, () => {
      const nat = recordWorkload(name, params, seed);
      const pv = recordWorkload(name, params, seed, { mode: 'pv', profile: VMM });
      const rp = replayTrace(pv.bytes, { mode: 'pv', profile: VMM });
      expect(rp.divergence).toBeNull();
      const tn = readTrace(nat.bytes), tp = readTrace(pv.bytes);
      expect(tp.trailer.exitStatus).toBe(tn.trailer.exitStatus);
      expect(tp.trailer.exit).toEqual(tn.trailer.exit);
      expect(rp.status).toBe(nat.run.status);
      const cn = Buffer.concat(tn.chunks.map((c) => c.console)), cp = Buffer.concat(tp.chunks.map((c) => c.console));
      expect(untimed(cp)).toBe(untimed(cn));
      expect(untimed(cp)).toMatch(/checksum: 0x[0-9a-f]+/);
      // The pv guest did its I/O through the back ends, whose inputs the trace holds.
      if (name === 'database') expect(tp.trailer.counts['block-complete']).toBeGreaterThan(0);
      if (name === 'pingpong') expect(tp.trailer.counts['net-rx']).toBeGreaterThan(0);
      expect(tp.trailer.counts['port-read']).toBe(0);
    }, 120_000);
  }

  it('virtlab record --mode pv, inspect, and a one-line error for replay --mode native', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vl-trace-pv-'));
    const f = join(dir, 's.vlt');
    const r = virtlab('record', 'workload:syscall', '--param', 'n=20', '--mode', 'pv', '-o', f);
    expect(r.stderr).toBe('');
    expect(readTrace(readFileSync(f)).header.mode).toBe('pv');
    expect(virtlab('inspect', f).stdout).toContain('recorded under: pv');
    const bad = virtlab('replay', f, '--mode', 'native');
    expect(bad.status).toBe(2);
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain(`virtlab: ${f}: this trace was recorded under pv`);
    const ok = virtlab('replay', f, '--mode', 'pv');
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(r.status);
    expect(ok.stdout).toBe(r.stdout);
    expect(virtlab('record', 'workload:syscall', '--mode', 'full', '-o', f).status).toBe(2);
  }, 60_000);
});
