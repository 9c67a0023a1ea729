import { ImageError, isElf, parseElf32 } from './elf.js';

/** The guest RAM a loader writes into (structurally, the machine's PhysicalMemory). */
export interface GuestRam {
  readonly size: number;
  readonly u8: Uint8Array;
}

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** EAX at the kernel entry. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** The header must lie, 4-byte aligned, within this many bytes of the file's start. */
export const MULTIBOOT_SEARCH = 8192;
const FLAG_AOUT_KLUDGE = 0x10000;

/**
 * Where the boot information goes, as QEMU puts it: the memory map at 0x9000, the info
 * structure at 0x9500; command line and boot loader name after the kernel image.
 */
export const MMAP_ADDR = 0x9000;
export const MBI_ADDR = 0x9500;
const MBI_SIZE = 88;
/** RAM at the top that SeaBIOS (and so QEMU's Multiboot memory map) reserves for its tables. */
const BIOS_TOP_RESERVED = 0x20000;
/** The boot loader name given to guests. */
export const BOOT_LOADER_NAME = 'virtlab';

/** A parsed Multiboot v1 header. */
export interface MultibootHeader {
  /** File offset of the magic. */
  readonly offset: number;
  readonly flags: number;
  /** The a.out-kludge address fields (present when flags bit 16 is set). */
  readonly addresses?: {
    readonly headerAddr: number;
    readonly loadAddr: number;
    readonly loadEndAddr: number;
    readonly bssEndAddr: number;
    readonly entryAddr: number;
  };
}

/** What the loader did, and the CPU state the kernel must be entered with. */
export interface MultibootLoad {
  readonly header: MultibootHeader;
  /** Physical entry point (EIP). */
  readonly entry: number;
  /** EAX at entry. */
  readonly eax: number;
  /** EBX at entry: the Multiboot information structure. */
  readonly ebx: number;
  /** Physical ranges written from the image (end exclusive, bss included). */
  readonly regions: readonly { start: number; end: number }[];
  /** The command line given to the kernel. */
  readonly cmdline: string;
}

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/**
 * Finds the Multiboot header as QEMU does: the first 4-byte aligned magic in the first
 * 8192 bytes whose checksum is right. A magic with a wrong checksum and no valid header
 * elsewhere is reported as a lying header rather than as "no header".
 */
export function findMultibootHeader(bytes: Uint8Array, file: string): MultibootHeader {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const limit = Math.min(bytes.length - 12, MULTIBOOT_SEARCH - 12);
  let badChecksumAt = -1;
  for (let i = 0; i <= limit; i += 4) {
    if (dv.getUint32(i, true) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = dv.getUint32(i + 4, true);
    const checksum = dv.getUint32(i + 8, true);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) {
      if (badChecksumAt < 0) badChecksumAt = i;
      continue;
    }
    if ((flags & FLAG_AOUT_KLUDGE) === 0) return { offset: i, flags };
    if (i + 32 > bytes.length) {
      throw new ImageError(file, `multiboot header at offset ${hex(i)}: flags bit 16 set but the file ends before the address fields (needs ${hex(i + 32)} bytes, has ${hex(bytes.length)})`);
    }
    return {
      offset: i, flags,
      addresses: {
        headerAddr: dv.getUint32(i + 12, true),
        loadAddr: dv.getUint32(i + 16, true),
        loadEndAddr: dv.getUint32(i + 20, true),
        bssEndAddr: dv.getUint32(i + 24, true),
        entryAddr: dv.getUint32(i + 28, true),
      },
    };
  }
  if (badChecksumAt >= 0) {
    const flags = dv.getUint32(badChecksumAt + 4, true);
    const checksum = dv.getUint32(badChecksumAt + 8, true);
    const want = (-(MULTIBOOT_HEADER_MAGIC + flags)) >>> 0;
    throw new ImageError(file, `multiboot header at offset ${hex(badChecksumAt)}: bad checksum ${hex(checksum)}, expected ${hex(want)} (magic + flags + checksum must be 0 mod 2^32)`);
  }
  throw new ImageError(file, `no multiboot header (magic 0x1badb002 with a valid checksum) in the first ${MULTIBOOT_SEARCH} bytes`);
}

/**
 * Loads a Multiboot v1 kernel into RAM the way QEMU's `-kernel` does (hw/i386/multiboot.c):
 * with flags bit 16, the a.out-kludge addresses decide what is loaded, even for an ELF
 * file; otherwise the ELF32 PT_LOAD segments are loaded at their physical addresses,
 * bss zero-filled. Then the boot information is built: memory sizes, boot device, command
 * line ("<name> <cmdline>", as QEMU forms it), an empty module list, a memory map and the
 * boot loader name. Addresses, flags, memory sizes and the memory map are what QEMU 7.2
 * (with SeaBIOS) gives a kernel, checked with a guest that dumps them; the other
 * registers, which the Multiboot spec leaves undefined, are zero here (QEMU leaves its
 * option ROM's values, e.g. ESP=0x6f08). Every inconsistency is an `ImageError` naming the file and where.
 */
export function loadMultiboot(ram: GuestRam, bytes: Uint8Array, file: string, cmdline = ''): MultibootLoad {
  const header = findMultibootHeader(bytes, file);
  const fail = (detail: string): never => { throw new ImageError(file, detail); };
  const regions: { start: number; end: number }[] = [];
  let entry: number;
  let imageStart: number, imageEnd: number;

  const checkRange = (what: string, start: number, end: number): void => {
    if (end > ram.size) {
      fail(`${what}: ${hex(start)}-${hex(end - 1)} lies outside RAM (${ram.size / 1048576} MiB: 0x0-${hex(ram.size - 1)})`);
    }
    if (start < MBI_ADDR + MBI_SIZE && end > MMAP_ADDR) {
      fail(`${what}: ${hex(start)}-${hex(end - 1)} overlaps the multiboot information area ${hex(MMAP_ADDR)}-${hex(MBI_ADDR + MBI_SIZE - 1)}`);
    }
  };

  if (header.addresses) {
    const a = header.addresses;
    const where = `multiboot header at offset ${hex(header.offset)}`;
    if (a.headerAddr < a.loadAddr) fail(`${where}: header_addr ${hex(a.headerAddr)} is below load_addr ${hex(a.loadAddr)}`);
    if (a.headerAddr - a.loadAddr > header.offset) {
      fail(`${where}: header_addr ${hex(a.headerAddr)} - load_addr ${hex(a.loadAddr)} = ${hex(a.headerAddr - a.loadAddr)} exceeds the header's file offset (load_addr would lie before the start of the file)`);
    }
    const textOffset = header.offset - (a.headerAddr - a.loadAddr);
    let loadSize: number;
    if (a.loadEndAddr !== 0) {
      if (a.loadEndAddr < a.loadAddr) fail(`${where}: load_end_addr ${hex(a.loadEndAddr)} is below load_addr ${hex(a.loadAddr)}`);
      loadSize = a.loadEndAddr - a.loadAddr;
      if (textOffset + loadSize > bytes.length) {
        fail(`${where}: load_end_addr ${hex(a.loadEndAddr)} asks for ${hex(loadSize)} bytes from file offset ${hex(textOffset)}, but the file has ${hex(bytes.length)} bytes`);
      }
    } else {
      loadSize = bytes.length - textOffset;
    }
    let kernelSize = loadSize;
    if (a.bssEndAddr !== 0) {
      if (a.bssEndAddr < a.loadAddr + loadSize) fail(`${where}: bss_end_addr ${hex(a.bssEndAddr)} is below the end of the loaded image ${hex(a.loadAddr + loadSize)}`);
      kernelSize = a.bssEndAddr - a.loadAddr;
    }
    if (a.loadAddr + kernelSize > 0x1_0000_0000) fail(`${where}: the image ${hex(a.loadAddr)}+${hex(kernelSize)} does not fit in the 32-bit address space`);
    checkRange(`${where}: image`, a.loadAddr, a.loadAddr + kernelSize);
    if (a.entryAddr < a.loadAddr || a.entryAddr >= a.loadAddr + kernelSize) {
      fail(`${where}: entry_addr ${hex(a.entryAddr)} is outside the loaded image ${hex(a.loadAddr)}-${hex(a.loadAddr + kernelSize - 1)}`);
    }
    ram.u8.set(bytes.subarray(textOffset, textOffset + loadSize), a.loadAddr);
    ram.u8.fill(0, a.loadAddr + loadSize, a.loadAddr + kernelSize);
    regions.push({ start: a.loadAddr, end: a.loadAddr + kernelSize });
    entry = a.entryAddr;
    imageStart = a.loadAddr;
    imageEnd = a.loadAddr + kernelSize;
  } else {
    if (!isElf(bytes)) {
      fail(`multiboot header at offset ${hex(header.offset)} has no address fields (flags bit 16 clear), so the file must be ELF, but it is not (no ELF magic at offset 0)`);
    }
    const elf = parseElf32(bytes, file);
    // QEMU refuses overlapping ROM regions ("rom: requested regions overlap"); so do we.
    const loaded = elf.segments.filter((s) => s.memsz > 0).sort((a, b) => a.paddr - b.paddr);
    for (let i = 1; i < loaded.length; i++) {
      const a = loaded[i - 1]!, b = loaded[i]!;
      if (b.paddr < a.paddr + a.memsz) {
        fail(`program headers ${a.index} and ${b.index} overlap: ${hex(a.paddr)}-${hex(a.paddr + a.memsz - 1)} and ${hex(b.paddr)}-${hex(b.paddr + b.memsz - 1)}`);
      }
    }
    for (const s of loaded) checkRange(`program header ${s.index} (PT_LOAD, file offset ${hex(s.offset)})`, s.paddr, s.paddr + s.memsz);
    imageStart = Number.POSITIVE_INFINITY;
    imageEnd = 0;
    for (const s of elf.segments) {
      if (s.memsz === 0) continue;
      ram.u8.set(bytes.subarray(s.offset, s.offset + s.filesz), s.paddr);
      ram.u8.fill(0, s.paddr + s.filesz, s.paddr + s.memsz);
      regions.push({ start: s.paddr, end: s.paddr + s.memsz });
      imageStart = Math.min(imageStart, s.paddr);
      imageEnd = Math.max(imageEnd, s.paddr + s.memsz);
    }
    if (regions.length === 0) fail('every PT_LOAD segment is empty: nothing to load');
    // A higher-half kernel links its entry at a virtual address; paging is off at entry,
    // so use the physical address of the segment that contains it.
    entry = elf.entry;
    const inPhys = elf.segments.some((s) => entry >= s.paddr && entry < s.paddr + s.memsz);
    if (!inPhys) {
      const seg = elf.segments.find((s) => entry >= s.vaddr && entry < s.vaddr + s.memsz);
      if (!seg) fail(`e_entry ${hex(elf.entry)} (offset 0x18) is not inside any PT_LOAD segment`);
      entry = (entry - seg!.vaddr + seg!.paddr) >>> 0;
    }
  }

  // Boot information, laid out as QEMU lays it out.
  const mem = ram.u8;
  const dv = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  const page = (v: number): number => (v + 0xfff) & ~0xfff;
  const modsAddr = imageStart + page(imageEnd - imageStart);
  const fullCmdline = `${file} ${cmdline}`;
  const cmdBytes = Buffer.from(fullCmdline + '\0', 'latin1');
  const nameBytes = Buffer.from(BOOT_LOADER_NAME + '\0', 'latin1');
  const cmdAddr = modsAddr;
  const nameAddr = cmdAddr + cmdBytes.length;
  if (nameAddr + nameBytes.length > ram.size) {
    fail(`no room for the command line and boot loader name after the image (at ${hex(cmdAddr)}; RAM ends at ${hex(ram.size)})`);
  }
  mem.set(cmdBytes, cmdAddr);
  mem.set(nameBytes, nameAddr);

  // Memory map (Multiboot mmap entries: size 20, base u64, length u64, type u32), as QEMU
  // passes on SeaBIOS's E820 map: the EBDA and the BIOS area reserved, and the top 128 KiB
  // of RAM (SeaBIOS's tables) and the 256 KiB flash below 4 GiB reserved.
  const highEnd = Math.max(0x100000, ram.size - BIOS_TOP_RESERVED);
  const map: [number, number, number][] = [
    [0, 0x9fc00, 1],
    [0x9fc00, 0x400, 2],
    [0xf0000, 0x10000, 2],
  ];
  if (highEnd > 0x100000) map.push([0x100000, highEnd - 0x100000, 1]);
  if (ram.size > highEnd) map.push([highEnd, ram.size - highEnd, 2]);
  map.push([0xfffc0000, 0x40000, 2]);
  let at = MMAP_ADDR;
  for (const [base, len, type] of map) {
    dv.setUint32(at, 20, true);
    dv.setUint32(at + 4, base, true); dv.setUint32(at + 8, 0, true);
    dv.setUint32(at + 12, len, true); dv.setUint32(at + 16, 0, true);
    dv.setUint32(at + 20, type, true);
    at += 24;
  }

  mem.fill(0, MBI_ADDR, MBI_ADDR + MBI_SIZE);
  // flags: mem, boot_device, cmdline, mods, mmap, boot_loader_name (as QEMU).
  dv.setUint32(MBI_ADDR + 0, 0x1 | 0x2 | 0x4 | 0x8 | 0x40 | 0x200, true);
  // 639 KiB below the EBDA, and the usable RAM above 1 MiB: what QEMU reports from SeaBIOS.
  dv.setUint32(MBI_ADDR + 4, 639, true);
  dv.setUint32(MBI_ADDR + 8, (highEnd - 0x100000) / 1024, true);
  dv.setUint32(MBI_ADDR + 12, 0x8000ffff, true);
  dv.setUint32(MBI_ADDR + 16, cmdAddr, true);
  dv.setUint32(MBI_ADDR + 20, 0, true);
  dv.setUint32(MBI_ADDR + 24, modsAddr, true);
  dv.setUint32(MBI_ADDR + 44, map.length * 24, true);
  dv.setUint32(MBI_ADDR + 48, MMAP_ADDR, true);
  dv.setUint32(MBI_ADDR + 64, nameAddr, true);

  return { header, entry, eax: MULTIBOOT_BOOTLOADER_MAGIC, ebx: MBI_ADDR, regions, cmdline: fullCmdline };
}
