import { describe, expect, it } from 'vitest';
import { ImageError, parseElf32 } from '../../src/guest/elf.js';
import { loadFlat } from '../../src/guest/flat.js';
import { BOOT_LOADER_NAME, loadMultiboot, MBI_ADDR, MMAP_ADDR } from '../../src/guest/multiboot.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { buildElf32, cat, multibootHeader, printAndExit } from './elf-writer.js';

const MiB = 1024 * 1024;
const ram = (mib = 16) => new PhysicalMemory(mib * MiB);

function cstring(mem: PhysicalMemory, addr: number): string {
  let s = '';
  while (mem.u8[addr] !== 0) s += String.fromCharCode(mem.u8[addr++]!);
  return s;
}

/** A Multiboot ELF kernel: header + code at 1 MiB, plus a bss segment. */
function kernel(): Uint8Array {
  const text = cat(multibootHeader(0x3), printAndExit('ok', 0));
  return buildElf32({
    entry: 0x100000 + 12,
    segments: [
      { paddr: 0x100000, data: text },
      { paddr: 0x101000, data: [1, 2, 3, 4], memsz: 0x2000 },
    ],
  });
}

function errorOf(f: () => unknown): ImageError {
  try { f(); } catch (e) { if (e instanceof ImageError) return e; throw e; }
  throw new Error('expected an ImageError');
}

describe('ELF32 parsing', () => {
  it('reads the entry and PT_LOAD segments', () => {
    const elf = parseElf32(kernel(), 'k.elf');
    expect(elf.entry).toBe(0x10000c);
    expect(elf.segments.map((s) => [s.paddr, s.filesz, s.memsz])).toEqual([[0x100000, 24, 24], [0x101000, 4, 0x2000]]);
  });

  it.each([
    ['not ELF', new Uint8Array([1, 2, 3, 4, 5]), /k\.elf: not an ELF file \(offset 0: expected the magic 7f 45 4c 46, found 01 02 03 04\)/],
    ['ELF64', buildElf32({ entry: 0, segments: [{ paddr: 0, data: [0] }], cls: 2, machine: 62 }), /ELF64 x86-64 image/],
    ['big-endian', buildElf32({ entry: 0, segments: [{ paddr: 0, data: [0] }], data: 2 }), /offset 5: EI_DATA 2, expected 1/],
    ['not i386', buildElf32({ entry: 0, segments: [{ paddr: 0, data: [0] }], machine: 40 }), /offset 18: e_machine 40, expected 3 \(EM_386\)/],
    ['not executable', buildElf32({ entry: 0, segments: [{ paddr: 0, data: [0] }], type: 1 }), /offset 16: e_type 1, expected 2/],
  ])('rejects %s with a one-line message', (_what, bytes, re) => {
    const e = errorOf(() => parseElf32(bytes, 'k.elf'));
    expect(e.message).toMatch(re);
    expect(e.message).not.toContain('\n');
  });

  it('rejects a segment whose data runs past the end of the file', () => {
    const b = kernel();
    new DataView(b.buffer).setUint32(52 + 32 + 16, 0x10000, true); // second p_filesz
    new DataView(b.buffer).setUint32(52 + 32 + 20, 0x10000, true);
    expect(errorOf(() => parseElf32(b, 'k.elf')).message).toMatch(/program header 1 \(offset 0x54\): segment data at file offset 0x\w+\+0x10000 runs past the end of the file/);
  });
});

describe('Multiboot loading', () => {
  it('loads segments, zero-fills bss and enters with the Multiboot state', () => {
    const mem = ram();
    mem.u8.fill(0xcc, 0x101000, 0x103000); // bss must be cleared
    const r = loadMultiboot(mem, kernel(), 'k.elf', 'console=ttyS0');
    expect(r.entry).toBe(0x10000c);
    expect(r.eax).toBe(0x2badb002);
    expect(r.ebx).toBe(MBI_ADDR);
    expect([...mem.u8.subarray(0x10000c, 0x10000c + 4)]).toEqual([0xb0, 0x6f, 0xe6, 0xe9]);
    expect([...mem.u8.subarray(0x101000, 0x101006)]).toEqual([1, 2, 3, 4, 0, 0]);
    expect(mem.u8[0x102fff]).toBe(0);
    expect(r.regions).toEqual([{ start: 0x100000, end: 0x100018 }, { start: 0x101000, end: 0x103000 }]);
  });

  it('builds the information structure: memory sizes, command line, loader name, memory map', () => {
    const mem = ram(32);
    loadMultiboot(mem, kernel(), 'k.elf', 'a=1');
    const dv = new DataView(mem.u8.buffer);
    const flags = dv.getUint32(MBI_ADDR, true);
    expect(flags & 0x1).toBe(0x1); // mem_*
    expect(flags & 0x4).toBe(0x4); // cmdline
    expect(flags & 0x40).toBe(0x40); // mmap
    expect(flags & 0x200).toBe(0x200); // boot loader name
    // As QEMU 7.2 + SeaBIOS report them (639 KiB; the top 128 KiB reserved).
    expect(dv.getUint32(MBI_ADDR + 4, true)).toBe(639);
    expect(dv.getUint32(MBI_ADDR + 8, true)).toBe(32 * 1024 - 1024 - 128);
    expect(cstring(mem, dv.getUint32(MBI_ADDR + 16, true))).toBe('k.elf a=1');
    expect(cstring(mem, dv.getUint32(MBI_ADDR + 64, true))).toBe(BOOT_LOADER_NAME);
    expect(dv.getUint32(MBI_ADDR + 20, true)).toBe(0); // no modules
    // The strings sit after the image, page aligned, as QEMU places them.
    expect(dv.getUint32(MBI_ADDR + 16, true)).toBe(0x103000);
    const mmapLen = dv.getUint32(MBI_ADDR + 44, true);
    expect(dv.getUint32(MBI_ADDR + 48, true)).toBe(MMAP_ADDR);
    const entries: [number, number, number][] = [];
    for (let at = MMAP_ADDR; at < MMAP_ADDR + mmapLen; at += 4 + dv.getUint32(at, true)) {
      entries.push([dv.getUint32(at + 4, true), dv.getUint32(at + 12, true), dv.getUint32(at + 20, true)]);
    }
    // The map QEMU 7.2 gave a 32 MiB guest (recorded with a guest that dumps it).
    expect(entries).toEqual([
      [0, 0x9fc00, 1], [0x9fc00, 0x400, 2], [0xf0000, 0x10000, 2],
      [0x100000, 32 * MiB - 0x120000, 1], [32 * MiB - 0x20000, 0x20000, 2], [0xfffc0000, 0x40000, 2],
    ]);
  });

  it('finds the header anywhere 4-byte aligned in the first 8192 bytes', () => {
    const text = cat(new Uint8Array(8000), multibootHeader(0), printAndExit('', 1));
    const elf = buildElf32({ entry: 0x200000 + 8012, segments: [{ paddr: 0x200000, data: text }] });
    const r = loadMultiboot(ram(), elf, 'far.elf');
    expect(r.header.offset).toBeGreaterThan(8000);
  });

  it('reports a header past 8192 bytes as missing', () => {
    const text = cat(new Uint8Array(8300), multibootHeader(0));
    const elf = buildElf32({ entry: 0x200000, segments: [{ paddr: 0x200000, data: text }] });
    expect(errorOf(() => loadMultiboot(ram(), elf, 'k.elf')).message).toBe('k.elf: no multiboot header (magic 0x1badb002 with a valid checksum) in the first 8192 bytes');
  });

  it('rejects a bad checksum, naming the offset and the expected value', () => {
    const text = cat(multibootHeader(0x3, undefined, 1), [0x90]);
    const elf = buildElf32({ entry: 0x100000, segments: [{ paddr: 0x100000, data: text }] });
    expect(errorOf(() => loadMultiboot(ram(), elf, 'k.elf')).message).toMatch(/^k\.elf: multiboot header at offset 0x60: bad checksum 0xe4524ffc, expected 0xe4524ffb/);
  });

  it('rejects a segment outside RAM', () => {
    const elf = buildElf32({ entry: 0x100000, segments: [{ paddr: 0x100000, data: cat(multibootHeader(0), [0x90]) }, { paddr: 0x1ff0000, data: [0], memsz: 0x20000 }] });
    expect(errorOf(() => loadMultiboot(ram(32), elf, 'k.elf')).message).toBe('k.elf: program header 1 (PT_LOAD, file offset 0x90): 0x1ff0000-0x200ffff lies outside RAM (32 MiB: 0x0-0x1ffffff)');
  });

  it('rejects overlapping segments, as QEMU does', () => {
    const elf = buildElf32({ entry: 0x100000, segments: [{ paddr: 0x100000, data: cat(multibootHeader(0), [0x90]) }, { paddr: 0x100008, data: [1], memsz: 0x10 }] });
    expect(errorOf(() => loadMultiboot(ram(), elf, 'k.elf')).message).toBe('k.elf: program headers 0 and 1 overlap: 0x100000-0x10000c and 0x100008-0x100017');
  });

  it('rejects an entry point outside every segment', () => {
    const elf = buildElf32({ entry: 0x500000, segments: [{ paddr: 0x100000, data: cat(multibootHeader(0), [0x90]) }] });
    expect(errorOf(() => loadMultiboot(ram(), elf, 'k.elf')).message).toMatch(/e_entry 0x500000 .* is not inside any PT_LOAD segment/);
  });

  it('translates a higher-half entry point to its physical address', () => {
    const elf = buildElf32({ entry: 0xc010000c, segments: [{ paddr: 0x100000, vaddr: 0xc0100000, data: cat(multibootHeader(0), printAndExit('', 1)) }] });
    expect(loadMultiboot(ram(), elf, 'k.elf').entry).toBe(0x10000c);
  });

  describe('a.out kludge (flags bit 16)', () => {
    /** A raw image loaded at 1 MiB with the header at file offset 0x10. */
    function raw(fields: (h: number) => [number, number, number, number, number]): Uint8Array {
      const base = 0x100000;
      const code = printAndExit('K', 2);
      return cat(new Uint8Array(0x10), multibootHeader(0x10002, fields(base)), code);
    }

    it('loads the file from the header-derived offset and zero-fills up to bss_end_addr', () => {
      const mem = ram();
      mem.u8.fill(0xcc, 0x100000, 0x102000);
      const img = raw((b) => [b + 0x10, b, 0, b + 0x2000, b + 0x30]);
      const r = loadMultiboot(mem, img, 'raw.bin');
      expect(r.entry).toBe(0x100030);
      expect(r.header.offset).toBe(0x10);
      expect([...mem.u8.subarray(0x100030, 0x100034)]).toEqual([0xb0, 0x4b, 0xe6, 0xe9]);
      expect(mem.u8[0x100000 + img.length]).toBe(0);
      expect(mem.u8[0x101fff]).toBe(0);
      expect(r.regions).toEqual([{ start: 0x100000, end: 0x102000 }]);
    });

    it('honours the kludge fields even for an ELF file (as QEMU)', () => {
      // Header says: load the file from offset 0 at 0x300000; entry at the code after the header.
      const hdrAt = 0x60; // where buildElf32 puts the first segment's data
      const elf0 = buildElf32({ entry: 0x999999, segments: [{ paddr: 0x100000, data: cat(multibootHeader(0x10000, [0, 0, 0, 0, 0]), printAndExit('E', 3)) }] });
      const fixed = cat(elf0);
      const dv = new DataView(fixed.buffer);
      dv.setUint32(hdrAt + 12, 0x300000 + hdrAt, true);
      dv.setUint32(hdrAt + 16, 0x300000, true);
      dv.setUint32(hdrAt + 28, 0x300000 + hdrAt + 32, true);
      const mem = ram();
      const r = loadMultiboot(mem, fixed, 'k.elf');
      expect(r.entry).toBe(0x300000 + hdrAt + 32);
      expect([...mem.u8.subarray(0x300000, 0x300004)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    });

    it.each([
      ['header_addr below load_addr', (b: number) => [b, b + 0x100, 0, 0, b + 0x30] as [number, number, number, number, number], /header_addr 0x100000 is below load_addr 0x100100/],
      ['load_addr before the file start', (b: number) => [b + 0x10, b - 0x100, 0, 0, b] as [number, number, number, number, number], /exceeds the header's file offset/],
      ['load_end_addr below load_addr', (b: number) => [b + 0x10, b, b - 1, 0, b + 0x30] as [number, number, number, number, number], /load_end_addr 0xfffff is below load_addr 0x100000/],
      ['load_end_addr past the file', (b: number) => [b + 0x10, b, b + 0x10000, 0, b + 0x30] as [number, number, number, number, number], /load_end_addr 0x110000 asks for 0x10000 bytes from file offset 0x0, but the file has 0x\w+ bytes/],
      ['bss_end_addr inside the image', (b: number) => [b + 0x10, b, 0, b + 4, b + 0x30] as [number, number, number, number, number], /bss_end_addr 0x100004 is below the end of the loaded image/],
      ['entry outside the image', (b: number) => [b + 0x10, b, 0, 0, b + 0x5000] as [number, number, number, number, number], /entry_addr 0x105000 is outside the loaded image/],
      ['image outside RAM', (b: number) => [b + 0x10 + 0x3000000, b + 0x3000000, 0, 0, b + 0x3000030] as [number, number, number, number, number], /image: 0x3100000-0x\w+ lies outside RAM \(16 MiB/],
    ])('rejects %s', (_what, fields, re) => {
      const e = errorOf(() => loadMultiboot(ram(), raw(fields), 'raw.bin'));
      expect(e.message).toMatch(/^raw\.bin: multiboot header at offset 0x10/);
      expect(e.message).toMatch(re);
    });
  });

  it('rejects a non-ELF file whose header has no address fields', () => {
    const img = cat(multibootHeader(0), [0x90]);
    expect(errorOf(() => loadMultiboot(ram(), img, 'x.bin')).message).toMatch(/flags bit 16 clear\), so the file must be ELF/);
  });
});

describe('flat loading', () => {
  it('copies the bytes and checks the entry and RAM bounds', () => {
    const mem = ram(1);
    expect(loadFlat(mem, Uint8Array.from([1, 2, 3]), 'f.bin', { loadAddress: 0x7c00 })).toEqual({ entry: 0x7c00, start: 0x7c00, end: 0x7c03 });
    expect([...mem.u8.subarray(0x7c00, 0x7c03)]).toEqual([1, 2, 3]);
    expect(errorOf(() => loadFlat(mem, new Uint8Array(16), 'f.bin', { loadAddress: 0xffff8 })).message).toBe('f.bin: flat image 0xffff8-0x100007 (16 bytes) lies outside RAM (1 MiB: 0x0-0xfffff)');
    expect(errorOf(() => loadFlat(mem, new Uint8Array(16), 'f.bin', { loadAddress: 0x1000, entry: 0x2000 })).message).toMatch(/entry 0x2000 is outside the loaded image 0x1000-0x100f/);
  });
});
