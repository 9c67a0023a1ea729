/** The trace's byte encodings: varints, chunks and the container round-trip; bad payloads fail cleanly. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BitWriter } from '../../src/trace/branch-log.js';
import { ByteReader, ByteWriter, readSections, Section, TraceFormatError, TraceWriter } from '../../src/trace/format.js';
import { decodeChunk, encodeChunk, STATE_WORDS, type Chunk, type TraceEvent } from '../../src/trace/trace-data.js';

describe('encodings', () => {
  it('varints round-trip up to 2^53 - 1, and a truncated one is an error at its payload offset', () => {
    fc.assert(fc.property(fc.array(fc.maxSafeNat(), { maxLength: 50 }), (xs) => {
      const w = new ByteWriter();
      for (const x of xs) w.varint(x);
      const r = new ByteReader(w.finish(), 'f', 100, 'test');
      expect(xs.map(() => r.varint())).toEqual(xs);
      expect(r.done).toBe(true);
    }));
    const w = new ByteWriter(); w.varint(300);
    const r = new ByteReader(w.finish().subarray(0, 1), 'f', 100, 'chunk');
    expect(() => r.varint()).toThrow(new TraceFormatError('f', 100, 'chunk, payload byte 1: expected 1 more byte(s), the payload ends'));
    expect(() => new ByteWriter().varint(-1)).toThrow(RangeError);
  });

  it('TNT bits pack LSB first', () => {
    const b = new BitWriter();
    for (const bit of [1, 0, 1, 1, 0, 0, 0, 0, 1]) b.push(bit === 1);
    const t = b.take();
    expect(t.bits).toBe(9);
    expect([...t.bytes]).toEqual([0b00001101, 0b1]);
    expect(b.bits).toBe(0);
  });

  it('chunks round-trip (fast-check over events, reads, branches and console output)', () => {
    const ev = fc.oneof(
      fc.record({ kind: fc.constant(1 as const), d: fc.nat(1000), eip: fc.nat(0xffffffff), idle: fc.nat(1e9), vector: fc.nat(255) }),
      fc.record({ kind: fc.constant(2 as const), d: fc.nat(1000), eip: fc.nat(0xffffffff), idle: fc.nat(10), device: fc.constant('disk0'), seq: fc.nat(1e6) }),
      fc.record({ kind: fc.constant(3 as const), d: fc.nat(1000), eip: fc.nat(0xffffffff), idle: fc.nat(10), device: fc.constant('net0'), seq: fc.nat(1e6), data: fc.uint8Array({ maxLength: 100 }) }),
      fc.record({ kind: fc.constant(4 as const), d: fc.nat(1000), state: fc.array(fc.nat(0xffffffff), { minLength: STATE_WORDS, maxLength: STATE_WORDS }), ram: fc.option(fc.uint8Array({ minLength: 16, maxLength: 16 })) }),
    );
    fc.assert(fc.property(
      fc.nat(1e9), fc.array(ev, { maxLength: 20 }), fc.array(fc.tuple(fc.nat(0xffff), fc.constantFrom(1, 2, 4), fc.nat(0xffffffff)), { maxLength: 20 }),
      fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { maxLength: 5 }), fc.array(fc.boolean(), { maxLength: 100 }), fc.array(fc.nat(0xffffffff), { maxLength: 10 }), fc.uint8Array({ maxLength: 50 }),
      (start, evs, reads, tsc, bits, tips, con) => {
        let pos = start;
        const events: TraceEvent[] = evs.map((e) => {
          pos += e.d;
          const { d: _d, ...rest } = e;
          return (e.kind === 4 ? { kind: 4, pos, state: Uint32Array.from(e.state), ram: e.ram } : { ...rest, pos }) as TraceEvent;
        });
        const bw = new BitWriter();
        for (const b of bits) bw.push(b);
        const t = bw.take();
        const c: Chunk = { start, end: pos + 5, events, ports: reads.flat(), tsc, tnt: t.bytes, tntBits: t.bits, tips, console: con };
        const back = decodeChunk(encodeChunk(c), 'f', 0);
        expect(back).toEqual(c);
      },
    ), { numRuns: 200 });
  });

  it('the container: sections come back with their checksums; the footer must point at an index', () => {
    const w = new TraceWriter();
    w.section(Section.Header, new TextEncoder().encode('{}'));
    const at = w.section(Section.Index, new Uint8Array([0]));
    const bytes = w.finish(at);
    const { sections, indexOffset } = readSections(bytes, 'f');
    expect(indexOffset).toBe(at);
    expect(sections.map((s) => s.kind)).toEqual([Section.Header, Section.Index]);
    expect(() => readSections(new TraceWriter().finish(16), 'g')).toThrow(/g: byte \d+: footer points at 16, which is not an index section/);
  });
});
