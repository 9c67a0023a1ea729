import fc from 'fast-check';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGuestCommand } from '../../src/cli/build-guest.js';
import { BUILTIN_GUESTS } from '../../src/guest/builtin-guests.js';
import { ImageError, parseElf32 } from '../../src/guest/elf.js';
import { applyPvops, nativePatcher, SEG_R, SEG_W, SEG_X, validateGuestImage, type GuestImage, type GuestSegment, type PvopSite } from '../../src/guest/image.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { HEADER_SIZE, loadGuestImageFile, readGuestImage, resealGuestImage, writeGuestImage } from '../../src/guest/image-format.js';
import { findMultibootHeader } from '../../src/guest/multiboot.js';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { PVOP_KINDS, type PvopKind } from '../../src/x86/pvop.js';

const profile = loadProfile().profile;

function imageError(f: () => unknown): ImageError {
  try { f(); } catch (e) { if (e instanceof ImageError) return e; throw e; }
  throw new Error('expected an ImageError');
}

/** A small valid image: code with two sites, data, bss. */
function sample(): GuestImage {
  const code = Uint8Array.from([0x31, 0xc0, 0x0f, 0x22, 0xd8, 0x90, 0x90, 0x90, 0xfa, 0x90, 0xc3]);
  return {
    name: 'sample',
    entry: 0x100000,
    segments: [
      { name: 'text', vaddr: 0x100000, paddr: 0x100000, bytes: code, memsz: code.length, flags: SEG_R | SEG_X },
      { name: 'data', vaddr: 0x101000, paddr: 0x101000, bytes: Uint8Array.from([1, 2, 3]), memsz: 0x2000, flags: SEG_R | SEG_W },
    ],
    symbols: [{ name: 'start', addr: 0x100000, size: 11, kind: 'function' }, { name: 'buf', addr: 0x101000, size: 0, kind: 'label' }],
    pvopSites: [
      { addr: 0x100002, len: 6, kind: 'write-cr3', native: code.slice(2, 8) },
      { addr: 0x100008, len: 2, kind: 'irq-disable', native: code.slice(8, 10) },
    ],
    metadata: { builder: 'test', n: 3, nested: { ok: true, list: [1, 'a', null] } },
  };
}

/** Random valid images: 1-4 segments in separate 64 KiB windows, sites inside the first. */
const arbImage: fc.Arbitrary<GuestImage> = fc.record({
  name: fc.string({ minLength: 1, maxLength: 20 }),
  segs: fc.array(fc.record({
    bytes: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    extra: fc.nat({ max: 5000 }),
    flags: fc.constantFrom(SEG_R, SEG_R | SEG_W, SEG_R | SEG_X, SEG_R | SEG_W | SEG_X),
    window: fc.nat({ max: 0xfff }),
    pdelta: fc.constantFrom(0, 0x10000000), // windows are < 0x10000000: no physical overlap either
  }), { minLength: 1, maxLength: 4 }),
  entryOff: fc.nat(),
  sites: fc.array(fc.record({ gap: fc.nat({ max: 20 }), len: fc.integer({ min: 1, max: 12 }), kind: fc.constantFrom(...(Object.keys(PVOP_KINDS) as PvopKind[])) }), { maxLength: 8 }),
  symbols: fc.uniqueArray(fc.record({ name: fc.string({ minLength: 1, maxLength: 12 }), addr: fc.nat({ max: 0xffff_ffff }), size: fc.nat({ max: 0xffff }), kind: fc.constantFrom('label' as const, 'function' as const, 'object' as const) }), { selector: (s) => s.name, maxLength: 10 }),
  metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))),
}).map(({ name, segs, entryOff, sites, symbols, metadata }) => {
  const windows = new Set<number>();
  const segments: GuestSegment[] = [];
  segs.forEach((s, i) => {
    let w = s.window;
    while (windows.has(w)) w = (w + 1) & 0xfff;
    windows.add(w);
    const vaddr = (w * 0x10000) >>> 0;
    segments.push({ name: `s${i}`, vaddr, paddr: (vaddr + s.pdelta) >>> 0, bytes: s.bytes, memsz: s.bytes.length + s.extra, flags: i === 0 ? (s.flags | SEG_X) : s.flags });
  });
  const code = segments[0]!;
  const pvopSites: PvopSite[] = [];
  let at = 0;
  for (const s of sites) {
    at += s.gap;
    if (at + s.len > code.bytes.length) break;
    pvopSites.push({ addr: code.vaddr + at, len: s.len, kind: s.kind, native: code.bytes.slice(at, at + s.len) });
    at += s.len;
  }
  return { name, entry: code.vaddr + (entryOff % code.memsz), segments, symbols, pvopSites, metadata };
});

describe('image file round trip', () => {
  it('write → read gives the same image, and the same bytes again (property)', () => {
    fc.assert(fc.property(arbImage, (image) => {
      validateGuestImage(image, 'gen');
      const file = writeGuestImage(image);
      const back = readGuestImage(file, 'x.vlg');
      expect(back).toEqual(image);
      expect(Buffer.from(writeGuestImage(back)).equals(Buffer.from(file))).toBe(true);
    }), { numRuns: 200 });
  });

  it('round-trips the built-in hello guest', () => {
    const image = BUILTIN_GUESTS.hello!.build({ message: 'x', exit: '0' });
    expect(readGuestImage(writeGuestImage(image), 'h.vlg')).toEqual(image);
  });
});

/** Writes the sample, lets `edit` change the bytes (DataView), reseals unless told not to. */
function corrupt(edit: (dv: DataView, b: Uint8Array) => Uint8Array | void, reseal = true): Uint8Array {
  let b = writeGuestImage(sample());
  const r = edit(new DataView(b.buffer), b);
  if (r) b = r;
  if (reseal) resealGuestImage(b);
  return b;
}

describe('corrupt and inconsistent files: each gives its own error naming the field', () => {
  const u32 = (dv: DataView, at: number): number => dv.getUint32(at, true);
  const segAt = (dv: DataView, i: number): number => u32(dv, 28) + 32 * i;
  const siteAt = (dv: DataView, i: number): number => u32(dv, 44) + 20 * i;
  const symAt = (dv: DataView, i: number): number => u32(dv, 36) + 20 * i;
  it.each([
    ['empty file', () => new Uint8Array(0), /truncated: 0 bytes, too short for the magic/],
    ['bad magic', () => corrupt((_dv, b) => { b[0] = 0x7f; }, false), /magic: not a virtlab guest image \(expected 56 4c 47 55 45 53 54 1a.*found 7f 4c/],
    ['an ELF file', () => toMultibootElf(sample()), /magic: not a virtlab guest image/],
    ['unsupported version', () => corrupt((dv) => dv.setUint16(8, 2, true)), /version: 2 is not supported \(this reader reads version 1\)/],
    ['truncated header', () => writeGuestImage(sample()).slice(0, 40), /truncated: 40 bytes, the header needs 112/],
    ['truncated body', () => { const b = writeGuestImage(sample()); return b.slice(0, b.length - 5); }, /truncated: header\.fileSize is \d+ bytes but the file has \d+/],
    ['trailing bytes', () => { const b = writeGuestImage(sample()); const c = new Uint8Array(b.length + 1); c.set(b); return c; }, /trailing bytes/],
    ['checksum mismatch', () => corrupt((_dv, b) => { b[b.length - 1] ^= 1; }, false), /checksum mismatch: header\.sha256 is [0-9a-f]{16}…, the contents hash to/],
    ['segment table past the end', () => corrupt((dv) => dv.setUint32(24, 1000, true)), /header\.segCount 1000 × 32 bytes at header\.segOff 0x70 runs past the end of the file/],
    ['symbol name outside the string table', () => corrupt((dv) => dv.setUint32(symAt(dv, 1) + 4, 5000, true)), /symbols\[1\]\.name: string at 0x[0-9a-f]+\+5000 lies outside the string table/],
    ['segment data outside the blob', () => corrupt((dv) => dv.setUint32(segAt(dv, 1) + 16, 0x10000, true)), /segments\[1\]\.data: 3 bytes at 0x10000 lie outside the data blob/],
    ['segment data larger than memsz', () => corrupt((dv) => dv.setUint32(segAt(dv, 0) + 8, 4, true)), /segments\[0\]\.dataSize 0xb exceeds segments\[0\]\.memsz 0x4/],
    ['unknown site kind', () => corrupt((dv, b) => { const at = u32(dv, 48) + u32(dv, siteAt(dv, 0) + 8); b[at] = 0x78; }), /pvopSites\[0\]\.kind: "xrite-cr3" is not a known pv-op kind/],
    ['bad symbol kind', () => corrupt((dv) => dv.setUint32(symAt(dv, 0) + 16, 7, true)), /symbols\[0\]\.kind: 7 is not a symbol kind/],
    ['site outside any segment', () => corrupt((dv) => dv.setUint32(siteAt(dv, 1), 0x500000, true)), /pvopSites\[1\] \(irq-disable at 0x500000\): overlaps or precedes|pvopSites\[1\] \(irq-disable at 0x500000\): outside every segment/],
    ['site in a data segment', () => corrupt((dv) => { dv.setUint32(siteAt(dv, 1), 0x101000, true); }), /pvopSites\[1\] \(irq-disable at 0x101000\): in a segment that is not executable/],
    ['overlapping sites', () => corrupt((dv) => dv.setUint32(siteAt(dv, 1), 0x100006, true)), /pvopSites\[1\] \(irq-disable at 0x100006\): overlaps or precedes the previous site \(which ends at 0x100008\)/],
    ['site past its segment\'s bytes', () => corrupt((dv) => { dv.setUint32(siteAt(dv, 1), 0x10000a, true); }), /pvopSites\[1\] \(irq-disable at 0x10000a\): runs past the initialized bytes of its segment/],
    ['native bytes that differ from the segment', () => corrupt((dv, b) => { b[u32(dv, 56) + u32(dv, siteAt(dv, 0) + 16)] = 0xcc; }), /pvopSites\[0\] \(write-cr3 at 0x100002\)\.native: differs from the segment's bytes at 0x100002/],
    ['entry outside code', () => corrupt((dv) => dv.setUint32(16, 0x101004, true)), /entry: 0x101004 is in a segment that is not executable/],
    ['entry outside every segment', () => corrupt((dv) => dv.setUint32(16, 0x900000, true)), /entry: 0x900000 is outside every segment/],
    ['overlapping segments', () => corrupt((dv) => dv.setUint32(segAt(dv, 1), 0x100008, true)), /segments\[0\] \(vaddr 0x100000\+0xb\) and segments\[1\] \(vaddr 0x100008\) overlap/],
    ['bad flags', () => corrupt((dv) => dv.setUint32(segAt(dv, 1) + 12, 9, true)), /segments\[1\] \("data"\)\.flags: 9 has bits other than R/],
    ['metadata not JSON', () => corrupt((dv, b) => { b[u32(dv, 48) + u32(dv, 72)] = 0x5b; }), /header\.meta: /],
  ] as [string, () => Uint8Array, RegExp][])('%s', (_what, make, re) => {
    const e = imageError(() => readGuestImage(make(), 'k.vlg'));
    expect(e.message.startsWith('k.vlg: ')).toBe(true);
    expect(e.message).toMatch(re);
    expect(e.message).not.toContain('\n');
  });

  it('the writer refuses an inconsistent image', () => {
    const s = sample();
    expect(imageError(() => writeGuestImage({ ...s, pvopSites: [s.pvopSites[1]!, s.pvopSites[0]!] })).message).toMatch(/^sample: pvopSites\[1\] \(write-cr3 at 0x100002\): overlaps or precedes/);
    expect(imageError(() => writeGuestImage({ ...s, symbols: [s.symbols[0]!, s.symbols[0]!] })).message).toMatch(/symbols\[1\]\.name: duplicate symbol "start"/);
    expect(HEADER_SIZE).toBe(112);
  });
});

describe('patching pv-op sites', () => {
  it('the native patcher keeps every byte', () => {
    const s = sample();
    const p = applyPvops(s, nativePatcher);
    expect(p.segments.map((x) => [...x.bytes])).toEqual(s.segments.map((x) => [...x.bytes]));
  });

  it('a patcher replaces the site and the rest is NOP-filled; the source image is untouched', () => {
    const s = sample();
    const p = applyPvops(s, (site) => (site.kind === 'write-cr3' ? Uint8Array.from([0xcd, 0x82]) : site.native));
    expect([...p.segments[0]!.bytes.subarray(2, 8)]).toEqual([0xcd, 0x82, 0x90, 0x90, 0x90, 0x90]);
    expect([...s.segments[0]!.bytes.subarray(2, 5)]).toEqual([0x0f, 0x22, 0xd8]);
    expect(p.segments[1]).toBe(s.segments[1]);
    expect(imageError(() => validateGuestImage(p, 'p')).message).toMatch(/native: differs/);
    validateGuestImage(p, 'p', { patched: true });
    expect(imageError(() => applyPvops(s, () => new Uint8Array(7))).message).toMatch(/patcher returned 7 bytes for the 6-byte write-cr3 site at 0x100002/);
  });
});

describe('Multiboot ELF export', () => {
  it('writes PT_LOAD segments with physical addresses, a header in the first 8 KiB, a physical entry', () => {
    const s = sample();
    const hi: GuestImage = { ...s, entry: 0xc0100000, segments: s.segments.map((g) => ({ ...g, vaddr: g.vaddr + 0xc0000000 })), pvopSites: s.pvopSites.map((p) => ({ ...p, addr: p.addr + 0xc0000000 })) };
    const elf = toMultibootElf(hi);
    const parsed = parseElf32(elf, 'k.elf');
    expect(parsed.entry).toBe(0x100000);
    expect(parsed.segments.map((g) => [g.vaddr, g.paddr, g.filesz, g.memsz, g.flags, g.offset % 4096])).toEqual([
      [0xc0100000, 0x100000, 11, 11, 5, 0], [0xc0101000, 0x101000, 3, 0x2000, 6, 0],
    ]);
    const h = findMultibootHeader(elf, 'k.elf');
    expect(h.offset).toBeLessThan(8192);
    expect(h.addresses).toBeUndefined();
  });

  it('the built-in hello guest boots on virtlab\'s Machine and exits through port 0xF4', () => {
    const image = BUILTIN_GUESTS.hello!.build({ message: 'hello, world\n', exit: '3' });
    const m = new Machine({ profile, memoryMiB: 16 });
    m.loadMultiboot(toMultibootElf(image), 'hello.elf');
    const out = m.run({ maxInstructions: 100_000 });
    expect(m.console.text()).toBe('hello, world\n');
    expect(out.exit).toEqual({ reason: 'exit-device', code: (3 << 1) | 1 });
    expect(image.pvopSites.map((p) => p.kind)).toEqual(['port-out', 'port-out']);
  });
});

describe('virtlab build-guest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtlab-build-guest-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = async (...args: string[]): Promise<{ status: number; out: string; err: string }> => {
    let out = '', err = '';
    const status = await buildGuestCommand(args, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; } });
    return { status, out, err };
  };

  it('builds a built-in guest to an image and an ELF, atomically (no temporary files left)', async () => {
    const r = await run('hello', '-o', join(dir, 'h.vlg'), '--elf', join(dir, 'h.elf'), '--param', 'message=ok\n');
    expect(r).toMatchObject({ status: 0, err: '' });
    expect(r.out).toMatch(/^hello: 2 segments .* 2 pv-op sites, entry 0x100000\n$/);
    const image = loadGuestImageFile(join(dir, 'h.vlg'));
    expect(image.metadata).toMatchObject({ message: 'ok\n' });
    const m = new Machine({ profile, memoryMiB: 16 });
    m.loadMultiboot(readFileSync(join(dir, 'h.elf')), 'h.elf');
    m.run({ maxInstructions: 10_000 });
    expect(m.console.text()).toBe('ok\n');
    expect(readdirSync(dir).sort()).toEqual(['h.elf', 'h.vlg']);
  });

  it('builds from a TypeScript module exporting a builder', async () => {
    const r = await run('test/guest/image-module-fixture.ts', '-o', join(dir, 'f.vlg'), '--param', 'text=AB');
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    const image = loadGuestImageFile(join(dir, 'f.vlg'));
    expect(image.name).toBe('fixture');
    expect(image.pvopSites).toHaveLength(2);
    expect(image.metadata).toEqual({ params: { text: 'AB' } });
  });

  it.each([
    [['nosuch', '-o', 'x'], /unknown guest "nosuch" \(built-in guests: hello, workload-[a-z0-9-]+(, workload-[a-z0-9-]+)*; or give a module path\)/],
    [['hello', '-o', 'x', '--param', 'colour=red'], /guest "hello" has no parameter "colour" \(parameters: message, exit\)/],
    [['hello', '-o', 'x', '--param', 'exit=300'], /guest "hello": exit: expected an integer in 0\.\.255, got "300"/],
    [['hello'], /give -o FILE and\/or --elf FILE/],
    [['./missing.ts', '-o', 'x'], /\.\/missing\.ts: no such file/],
    [['hello', '-o', '/nonexistent-dir/x.vlg'], /ENOENT/],
  ] as [string[], RegExp][])('bad input %j → one line, status 2', async (args, re) => {
    const r = await run(...args);
    expect(r.status).toBe(2);
    expect(r.err).toMatch(re);
    expect(r.err.trim()).not.toContain('\n');
  });
});
