/**
 * Exports a guest image as a Multiboot v1 ELF32 executable, bootable by QEMU
 * (`qemu-system-i386 -kernel`), GRUB, and virtlab's own loader (multiboot.ts).
 *
 * Layout: ELF header, one PT_LOAD program header per segment (p_vaddr virtual, p_paddr the
 * load address, p_align 4 KiB with file offsets congruent to the virtual address), the
 * Multiboot header right after the program headers (so inside the first 8 KiB, 4-aligned,
 * flags 0x3: page-aligned modules, memory information; no a.out kludge: the ELF headers
 * say what to load), then the segment data. e_entry is the *physical* entry point, since
 * paging is off at entry and QEMU jumps to e_entry as is.
 */
import { ImageError } from './elf.js';
import { physicalAddress, type GuestImage } from './image.js';
import { MULTIBOOT_HEADER_MAGIC, MULTIBOOT_SEARCH } from './multiboot.js';

const EHDR = 52;
const PHDR = 32;
const PAGE = 4096;
const MB_FLAGS = 0x3;

/** Options of the export. */
export interface MultibootElfOptions {
  /** Multiboot header flags (default 0x3; bit 16, the a.out kludge, is not allowed). */
  readonly multibootFlags?: number;
}

/** The ELF file for `image`. The image is exported as is (patch it first for a non-native mode). */
export function toMultibootElf(image: GuestImage, options: MultibootElfOptions = {}): Uint8Array {
  const flags = options.multibootFlags ?? MB_FLAGS;
  if ((flags & 0x10000) !== 0) throw new ImageError(image.name, 'multiboot flags: bit 16 (a.out kludge) is not used for ELF exports');
  const n = image.segments.length;
  if (n === 0) throw new ImageError(image.name, 'segments: nothing to export');
  const mbAt = (EHDR + PHDR * n + 3) & ~3;
  if (mbAt + 12 > MULTIBOOT_SEARCH) throw new ImageError(image.name, `too many segments (${n}) for the Multiboot header to stay in the first ${MULTIBOOT_SEARCH} bytes`);
  const entry = physicalAddress(image, image.entry);

  // Place each segment's data at a file offset congruent to its vaddr modulo the page size.
  let off = mbAt + 12;
  const offsets = image.segments.map((s) => {
    const want = s.vaddr % PAGE;
    off += (want - (off % PAGE) + PAGE) % PAGE;
    const at = off;
    off += s.bytes.length;
    return at;
  });
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  const u16 = (at: number, v: number): void => dv.setUint16(at, v, true);
  const u32 = (at: number, v: number): void => dv.setUint32(at, v >>> 0, true);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1 /* ELFCLASS32 */, 1 /* little-endian */, 1 /* EV_CURRENT */, 0 /* System V ABI */]);
  u16(16, 2); // ET_EXEC
  u16(18, 3); // EM_386
  u32(20, 1); // EV_CURRENT
  u32(24, entry);
  u32(28, EHDR); // e_phoff
  u32(32, 0); // e_shoff: no section headers
  u32(36, 0); // e_flags
  u16(40, EHDR);
  u16(42, PHDR);
  u16(44, n);
  u16(46, 40); // e_shentsize (no sections, but the standard size)
  u16(48, 0);
  u16(50, 0);
  image.segments.forEach((s, i) => {
    const p = EHDR + PHDR * i;
    u32(p, 1); // PT_LOAD
    u32(p + 4, offsets[i]!);
    u32(p + 8, s.vaddr);
    u32(p + 12, s.paddr);
    u32(p + 16, s.bytes.length);
    u32(p + 20, s.memsz);
    u32(p + 24, s.flags); // the image's flags are the ELF PF_* bits
    u32(p + 28, PAGE);
    out.set(s.bytes, offsets[i]!);
  });
  u32(mbAt, MULTIBOOT_HEADER_MAGIC);
  u32(mbAt + 4, flags);
  u32(mbAt + 8, -(MULTIBOOT_HEADER_MAGIC + flags));
  return out;
}
