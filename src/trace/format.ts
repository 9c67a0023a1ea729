/**
 * The trace file format, virtlab.trace/1 (docs/trace-format.md): a preamble, then sections —
 * each a 16-byte frame (kind, codec, stored and raw lengths, CRC-32 of the stored bytes) and
 * its payload, deflated with fixed options — and a footer pointing at the index. This module
 * reads and writes the container and the byte-level encodings (varints); what the sections
 * mean is in `trace-data.ts`.
 */
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

/** The first 8 bytes of every trace. */
export const TRACE_MAGIC = 'VLTRACE\0';
/** The format version of a native recording (what this code writes for one). */
export const TRACE_VERSION = 1;
/**
 * The format version of a `pv` recording (docs/trace-format.md, "pv traces"): a version-1
 * reader refuses it up front rather than replaying a paravirtualized guest natively.
 */
export const TRACE_VERSION_PV = 2;
/** The last 8 bytes of every trace. */
export const FOOTER_MAGIC = 'VLTREND\0';

/** Section kinds. */
export const Section = {
  /** JSON: the trace header (image hash, machine, seed, recorder). */
  Header: 1,
  /** A named blob: the guest image, the disk image. */
  Blob: 2,
  /** A chunk of the logs (events, port reads, RDTSC values, checkpoints). */
  Chunk: 3,
  /** The chunk table: file offset and logical span of each chunk. */
  Index: 4,
  /** JSON: how the recording ended. */
  Trailer: 5,
} as const;
export const SECTION_NAMES: Readonly<Record<number, string>> = { 1: 'header', 2: 'blob', 3: 'chunk', 4: 'index', 5: 'trailer' };

const PREAMBLE = 16;
const FRAME = 16;
const FOOTER = 16;
/** Codec 1: raw DEFLATE (RFC 1951) at level 9, memLevel 9, window 15, default strategy. */
const CODEC_DEFLATE = 1;
const DEFLATE_OPTIONS = { level: 9, memLevel: 9, windowBits: 15, strategy: 0 } as const;
/** Most bytes a section may inflate to (a corrupt length must not allocate gigabytes). */
const MAX_RAW = 1 << 30;

/** A trace that cannot be read: one line naming the file, the byte offset and what was expected. */
export class TraceFormatError extends Error {
  override readonly name = 'TraceFormatError';
  constructor(readonly file: string, readonly offset: number, readonly detail: string) {
    super(`${file}: byte ${offset}: ${detail}`);
  }
}

/** One section as stored. */
export interface SectionEntry {
  readonly kind: number;
  /** File offset of the section's frame. */
  readonly offset: number;
  readonly storedBytes: number;
  readonly rawBytes: number;
  readonly crc32: number;
  /** The inflated payload. */
  readonly payload: Uint8Array;
}

/** Builds a trace file section by section. */
export class TraceWriter {
  private readonly parts: Uint8Array[] = [];
  private size = 0;
  /** File offsets of the sections written, by order. */
  readonly offsets: number[] = [];

  constructor(version: number = TRACE_VERSION) {
    const p = new Uint8Array(PREAMBLE);
    p.set(ascii(TRACE_MAGIC), 0);
    const dv = new DataView(p.buffer);
    dv.setUint32(8, version, true);
    dv.setUint32(12, 0, true); // flags, none defined
    this.push(p);
  }

  /** The offset the next section will have. */
  get position(): number { return this.size; }

  /** Appends a section; returns its file offset. */
  section(kind: number, payload: Uint8Array): number {
    const stored = deflateRawSync(payload, DEFLATE_OPTIONS);
    const f = new Uint8Array(FRAME);
    const dv = new DataView(f.buffer);
    f[0] = kind;
    f[1] = CODEC_DEFLATE;
    dv.setUint32(4, stored.length, true);
    dv.setUint32(8, payload.length, true);
    dv.setUint32(12, crc32(stored), true);
    const at = this.size;
    this.offsets.push(at);
    this.push(f);
    this.push(stored);
    return at;
  }

  /** Appends the footer (index offset) and returns the whole file. */
  finish(indexOffset: number): Uint8Array {
    const f = new Uint8Array(FOOTER);
    const dv = new DataView(f.buffer);
    dv.setUint32(0, indexOffset, true);
    dv.setUint32(4, crc32(f.subarray(0, 4)), true);
    f.set(ascii(FOOTER_MAGIC), 8);
    this.push(f);
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }

  private push(b: Uint8Array): void { this.parts.push(b); this.size += b.length; }
}

/**
 * Reads and checks the whole container: preamble, every section's frame, checksum and
 * inflation, and the footer. Throws TraceFormatError at the first problem.
 */
export function readSections(bytes: Uint8Array, file: string): { sections: SectionEntry[]; indexOffset: number; version: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < PREAMBLE) throw new TraceFormatError(file, bytes.length, `file ends inside the ${PREAMBLE}-byte preamble (a virtlab trace starts with "VLTRACE\\0")`);
  for (let i = 0; i < 8; i++) {
    if (bytes[i] !== TRACE_MAGIC.charCodeAt(i)) throw new TraceFormatError(file, i, `bad magic: expected "VLTRACE\\0" (a virtlab trace), got ${hexBytes(bytes.subarray(0, 8))}`);
  }
  const version = dv.getUint32(8, true);
  if (version !== TRACE_VERSION && version !== TRACE_VERSION_PV) throw new TraceFormatError(file, 8, `unsupported format version ${version} (this virtlab reads version ${TRACE_VERSION}, and ${TRACE_VERSION_PV} for pv recordings)`);
  const flags = dv.getUint32(12, true);
  if (flags !== 0) throw new TraceFormatError(file, 12, `unknown flags 0x${flags.toString(16)} (expected 0)`);
  if (bytes.length < PREAMBLE + FOOTER) throw new TraceFormatError(file, bytes.length, 'file ends before the footer (truncated)');
  const end = bytes.length - FOOTER;
  for (let i = 0; i < 8; i++) {
    if (bytes[end + 8 + i] !== FOOTER_MAGIC.charCodeAt(i)) throw new TraceFormatError(file, end + 8, `bad footer: expected "VLTREND\\0" in the last 8 bytes (truncated or not a virtlab trace)`);
  }
  const indexOffset = dv.getUint32(end, true);
  if (dv.getUint32(end + 4, true) !== crc32(bytes.subarray(end, end + 4))) throw new TraceFormatError(file, end, 'footer checksum mismatch');
  const sections: SectionEntry[] = [];
  let o = PREAMBLE;
  while (o < end) {
    if (o + FRAME > end) throw new TraceFormatError(file, o, `section frame of ${FRAME} bytes runs past the end of the sections (at ${end})`);
    const kind = bytes[o]!;
    if (SECTION_NAMES[kind] === undefined) throw new TraceFormatError(file, o, `unknown section kind ${kind} (expected 1-5)`);
    const codec = bytes[o + 1]!;
    if (codec !== CODEC_DEFLATE) throw new TraceFormatError(file, o + 1, `unknown codec ${codec} (expected ${CODEC_DEFLATE}, raw DEFLATE)`);
    if (bytes[o + 2] !== 0 || bytes[o + 3] !== 0) throw new TraceFormatError(file, o + 2, 'reserved frame bytes must be 0');
    const stored = dv.getUint32(o + 4, true);
    const raw = dv.getUint32(o + 8, true);
    const crc = dv.getUint32(o + 12, true);
    const start = o + FRAME;
    if (stored > end - start) throw new TraceFormatError(file, o + 4, `${SECTION_NAMES[kind]} section of ${stored} bytes runs past the end of the sections (${end - start} bytes left): truncated`);
    if (raw > MAX_RAW) throw new TraceFormatError(file, o + 8, `${SECTION_NAMES[kind]} section claims ${raw} bytes inflated (at most ${MAX_RAW})`);
    const data = bytes.subarray(start, start + stored);
    const actual = crc32(data);
    if (actual !== crc) throw new TraceFormatError(file, o + 12, `${SECTION_NAMES[kind]} section checksum mismatch: expected CRC-32 ${hex32(crc)}, computed ${hex32(actual)}`);
    let payload: Uint8Array;
    try {
      payload = new Uint8Array(inflateRawSync(data, { maxOutputLength: Math.max(raw, 1) }));
    } catch (e) {
      throw new TraceFormatError(file, start, `${SECTION_NAMES[kind]} section does not inflate (${(e as Error).message})`);
    }
    if (payload.length !== raw) throw new TraceFormatError(file, o + 8, `${SECTION_NAMES[kind]} section inflates to ${payload.length} bytes, frame says ${raw}`);
    sections.push({ kind, offset: o, storedBytes: stored, rawBytes: raw, crc32: crc, payload });
    o = start + stored;
  }
  if (!sections.some((s) => s.offset === indexOffset && s.kind === Section.Index)) {
    throw new TraceFormatError(file, end, `footer points at ${indexOffset}, which is not an index section`);
  }
  return { sections, indexOffset, version };
}

// ---- byte encodings ----

/** A growable byte buffer with LEB128 varints. */
export class ByteWriter {
  private buf = new Uint8Array(256);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let c = this.buf.length * 2;
    while (c < this.length + n) c *= 2;
    const b = new Uint8Array(c);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }

  u8(v: number): void { this.room(1); this.buf[this.length++] = v & 0xff; }

  u32(v: number): void {
    this.room(4);
    const b = this.buf, o = this.length;
    b[o] = v & 0xff; b[o + 1] = (v >>> 8) & 0xff; b[o + 2] = (v >>> 16) & 0xff; b[o + 3] = (v >>> 24) & 0xff;
    this.length += 4;
  }

  /** Unsigned LEB128 of a non-negative safe integer. */
  varint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint: not a non-negative safe integer: ${v}`);
    this.room(8);
    while (v >= 0x80) { this.buf[this.length++] = (v % 0x80) | 0x80; v = Math.floor(v / 0x80); }
    this.buf[this.length++] = v;
  }

  /** A 64-bit unsigned value (bigint), as 8 bytes little-endian. */
  u64(v: bigint): void { this.u32(Number(v & 0xffffffffn) | 0); this.u32(Number((v >> 32n) & 0xffffffffn) | 0); }

  bytes(b: Uint8Array): void { this.room(b.length); this.buf.set(b, this.length); this.length += b.length; }

  /** A copy of what was written. */
  finish(): Uint8Array { return this.buf.slice(0, this.length); }
}

/** Reads what ByteWriter wrote; running past the end throws TraceFormatError. */
export class ByteReader {
  offset = 0;
  constructor(private readonly b: Uint8Array, private readonly file: string, private readonly base: number, private readonly what: string) {}

  get done(): boolean { return this.offset >= this.b.length; }

  fail(detail: string): never {
    throw new TraceFormatError(this.file, this.base, `${this.what}, payload byte ${this.offset}: ${detail}`);
  }

  private need(n: number): void { if (this.offset + n > this.b.length) this.fail(`expected ${n} more byte(s), the payload ends`); }

  u8(): number { this.need(1); return this.b[this.offset++]!; }

  u32(): number {
    this.need(4);
    const b = this.b, o = this.offset;
    this.offset += 4;
    return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  }

  varint(): number {
    let v = 0, mul = 1;
    for (let i = 0; i < 8; i++) {
      const x = this.u8();
      v += (x & 0x7f) * mul;
      if ((x & 0x80) === 0) {
        if (!Number.isSafeInteger(v)) this.fail('varint beyond 2^53');
        return v;
      }
      mul *= 0x80;
    }
    return this.fail('varint longer than 8 bytes');
  }

  u64(): bigint { const lo = this.u32(), hi = this.u32(); return (BigInt(hi) << 32n) | BigInt(lo); }

  bytes(n: number): Uint8Array { this.need(n); const s = this.b.subarray(this.offset, this.offset + n); this.offset += n; return s; }
}

function ascii(s: string): Uint8Array { return Uint8Array.from(s, (c) => c.charCodeAt(0)); }
function hexBytes(b: Uint8Array): string { return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' '); }
function hex32(v: number): string { return '0x' + (v >>> 0).toString(16).padStart(8, '0'); }
