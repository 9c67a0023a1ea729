/**
 * Bad traces (issue 6, "Bad input"): a wrong magic or version, a truncated file, a flipped
 * bit, a section whose checksum fails, a trace whose embedded image is not the header's —
 * each a TraceFormatError naming the byte offset and what was expected; a fuzz test over
 * mutated valid traces; and the CLI's one line and exit status 2, nothing written.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readSections, Section, TraceFormatError, TraceWriter } from '../../src/trace/format.js';
import { readTrace } from '../../src/trace/reader.js';
import { virtlab } from '../cli/in-process.js';
import { recordWorkload } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'vl-trace-bad-'));
const GOOD = recordWorkload('syscall', { n: 20 }).bytes;

function formatError(bytes: Uint8Array): TraceFormatError {
  try {
    readTrace(bytes, 't.vlt');
  } catch (e) {
    if (e instanceof TraceFormatError) return e;
    throw e;
  }
  throw new Error('no error for a damaged trace');
}

describe('damaged traces', () => {
  it('reads the good one', () => {
    expect(readTrace(GOOD, 'good.vlt').trailer.instructions).toBeGreaterThan(0);
  });

  it('a wrong magic: offset 0, what a trace starts with', () => {
    const b = GOOD.slice(); b[0] = 0x7f;
    const e = formatError(b);
    expect(e.offset).toBe(0);
    expect(e.message).toMatch(/^t\.vlt: byte 0: bad magic: expected "VLTRACE\\0"/);
  });

  it('another version: offset 8, the version read and the one expected', () => {
    const b = GOOD.slice(); b[8] = 9;
    expect(formatError(b).message).toBe('t.vlt: byte 8: unsupported format version 9 (this virtlab reads version 1, and 2 for pv recordings)');
  });

  it('a flipped bit in a chunk: that section\'s checksum, at its frame', () => {
    const { sections } = readSections(GOOD, 'x');
    const chunk = sections.find((s) => s.kind === Section.Chunk)!;
    const b = GOOD.slice(); b[chunk.offset + 16 + 3]! ^= 0x10;
    const e = formatError(b);
    expect(e.offset).toBe(chunk.offset + 12);
    expect(e.message).toMatch(/chunk section checksum mismatch: expected CRC-32 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}$/);
  });

  it('truncated: inside a section, or without its footer', () => {
    const { sections } = readSections(GOOD, 'x');
    const chunk = sections.find((s) => s.kind === Section.Chunk)!;
    // Cut inside the chunk and keep a valid-looking footer: the section runs past the end.
    const cut = new Uint8Array(chunk.offset + 20 + 16);
    cut.set(GOOD.subarray(0, chunk.offset + 20));
    cut.set(GOOD.subarray(GOOD.length - 16), chunk.offset + 20);
    expect(formatError(cut).message).toMatch(new RegExp(`^t\\.vlt: byte ${chunk.offset + 4}: chunk section of \\d+ bytes runs past the end of the sections .*truncated$`));
    expect(formatError(GOOD.subarray(0, GOOD.length - 5)).message).toMatch(/bad footer: expected "VLTREND\\0" in the last 8 bytes \(truncated or not a virtlab trace\)$/);
    expect(formatError(GOOD.subarray(0, 10)).message).toMatch(/^t\.vlt: byte 10: file ends inside the 16-byte preamble/);
  });

  it('a trace for another image: the embedded image is not the one the header names', () => {
    const { sections, indexOffset } = readSections(GOOD, 'x');
    const w = new TraceWriter();
    let newIndex = 0;
    for (const s of sections) {
      let p = s.payload;
      if (s.kind === Section.Header) {
        const h = JSON.parse(new TextDecoder().decode(p));
        h.image.sha256 = '0'.repeat(64);
        p = new TextEncoder().encode(JSON.stringify(h));
      }
      const at = w.section(s.kind, p);
      if (s.offset === indexOffset) newIndex = at;
    }
    const e = formatError(w.finish(newIndex));
    expect(e.message).toMatch(/embedded image's SHA-256 [0-9a-f]{64} is not the header's 0{64}$/);
  });

  it('fuzz: any byte changed or any truncation gives a TraceFormatError (never another error, a crash or a hang)', () => {
    fc.assert(fc.property(
      fc.oneof(
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(GOOD.length - 1), xor: fc.integer({ min: 1, max: 255 }) }),
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat(GOOD.length - 1), xor: fc.constant(0) }),
        fc.record({ kind: fc.constant('splice' as const), at: fc.nat(GOOD.length - 1), xor: fc.integer({ min: 1, max: 64 }) }),
      ),
      ({ kind, at, xor }) => {
        let b: Uint8Array;
        if (kind === 'flip') { b = GOOD.slice(); b[at]! ^= xor; }
        else if (kind === 'cut') b = GOOD.slice(0, at);
        else { b = new Uint8Array(GOOD.length - Math.min(xor, GOOD.length - at)); b.set(GOOD.subarray(0, at)); b.set(GOOD.subarray(at + Math.min(xor, GOOD.length - at)), at); }
        const e = formatError(b);
        expect(e.message.startsWith('t.vlt: byte ')).toBe(true);
        expect(e.offset).toBeGreaterThanOrEqual(0);
        expect(e.offset).toBeLessThanOrEqual(GOOD.length);
        expect(e.message).not.toContain('\n');
      },
    ), { numRuns: 300, seed: 42 });
  });

  it('virtlab replay and inspect of a damaged trace: one line with the file and offset, exit status 2, no run record', () => {
    const b = GOOD.slice(); b[GOOD.length - 30]! ^= 1;
    const file = join(dir, 'bad.vlt');
    writeFileSync(file, b);
    const json = join(dir, 'bad.json');
    const r = virtlab('replay', file, '--mode', 'native', '--json', json);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^virtlab: ${file.replace(/[.]/g, '\\.')}: byte \\d+: .+\\n$`));
    expect(r.stdout).toBe('');
    expect(existsSync(json)).toBe(false);
    const i = virtlab('inspect', file);
    expect(i.status).toBe(2);
    expect(i.stderr.split('\n').length).toBe(2);
    const missing = virtlab('inspect', join(dir, 'nope.vlt'));
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('nope.vlt: no such file');
  });
});
