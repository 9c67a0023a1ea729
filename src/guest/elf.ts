/**
 * A guest image that cannot be loaded: a one-line message naming the file, where in it
 * (file offset or guest address) and what was expected. The CLI prints `message` as is.
 */
export class ImageError extends Error {
  override readonly name = 'ImageError';
  constructor(readonly file: string, readonly detail: string) {
    super(`${file}: ${detail}`);
  }
}

/** One PT_LOAD program header. */
export interface ElfSegment {
  /** Index in the program header table. */
  readonly index: number;
  readonly offset: number;
  readonly vaddr: number;
  readonly paddr: number;
  readonly filesz: number;
  readonly memsz: number;
  readonly flags: number;
}

/** The parts of an ELF32 i386 executable a loader needs. */
export interface Elf32Image {
  readonly entry: number;
  readonly segments: readonly ElfSegment[];
}

export const PT_LOAD = 1;
const EM_386 = 3;
/** EM_486, which QEMU's i386 ELF loader also accepts. */
const EM_486 = 6;
const EM_X86_64 = 62;

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/** True when `bytes` starts with the ELF magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/**
 * Parses an ELF32 little-endian i386 executable (ET_EXEC) and its PT_LOAD program headers,
 * checking everything the loader relies on against the file (tables and segment file
 * ranges inside the file, filesz ≤ memsz, no 32-bit overflow). `file` names it in errors.
 */
export function parseElf32(bytes: Uint8Array, file: string): Elf32Image {
  const fail = (detail: string): never => { throw new ImageError(file, detail); };
  if (!isElf(bytes)) {
    fail(`not an ELF file (offset 0: expected the magic 7f 45 4c 46, found ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ') || 'end of file'})`);
  }
  if (bytes.length < 52) fail(`ELF header truncated (file is ${bytes.length} bytes, the ELF32 header needs 52)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const cls = bytes[4]!, data = bytes[5]!;
  if (cls === 2) {
    const machine = dv.getUint16(18, data === 1);
    fail(machine === EM_X86_64 ? 'ELF64 x86-64 image (offset 4: EI_CLASS 2); a 32-bit i386 image is needed' : 'ELF64 image (offset 4: EI_CLASS 2); expected ELF32 (1)');
  }
  if (cls !== 1) fail(`offset 4: EI_CLASS ${cls}, expected 1 (ELF32)`);
  if (data !== 1) fail(`offset 5: EI_DATA ${data}, expected 1 (little-endian)`);
  const type = dv.getUint16(16, true);
  if (type !== 2) fail(`offset 16: e_type ${type}, expected 2 (ET_EXEC, an executable)`);
  const machine = dv.getUint16(18, true);
  if (machine !== EM_386 && machine !== EM_486) fail(`offset 18: e_machine ${machine}, expected 3 (EM_386)`);
  const entry = dv.getUint32(24, true);
  const phoff = dv.getUint32(28, true);
  const phentsize = dv.getUint16(42, true);
  const phnum = dv.getUint16(44, true);
  if (phnum === 0) fail('offset 44: e_phnum 0, expected at least one program header');
  if (phentsize < 32) fail(`offset 42: e_phentsize ${phentsize}, expected 32`);
  if (phoff + phnum * phentsize > bytes.length) {
    fail(`program header table at offset ${hex(phoff)} (${phnum} × ${phentsize} bytes) runs past the end of the file (${bytes.length} bytes)`);
  }
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (dv.getUint32(at, true) !== PT_LOAD) continue;
    const seg: ElfSegment = {
      index: i,
      offset: dv.getUint32(at + 4, true),
      vaddr: dv.getUint32(at + 8, true),
      paddr: dv.getUint32(at + 12, true),
      filesz: dv.getUint32(at + 16, true),
      memsz: dv.getUint32(at + 20, true),
      flags: dv.getUint32(at + 24, true),
    };
    const where = `program header ${i} (offset ${hex(at)})`;
    if (seg.filesz > seg.memsz) fail(`${where}: p_filesz ${hex(seg.filesz)} > p_memsz ${hex(seg.memsz)}`);
    if (seg.offset + seg.filesz > bytes.length) {
      fail(`${where}: segment data at file offset ${hex(seg.offset)}+${hex(seg.filesz)} runs past the end of the file (${bytes.length} bytes)`);
    }
    if (seg.paddr + seg.memsz > 0x1_0000_0000) fail(`${where}: segment ${hex(seg.paddr)}+${hex(seg.memsz)} wraps past 4 GiB`);
    segments.push(seg);
  }
  if (segments.length === 0) fail('no PT_LOAD program header: nothing to load');
  return { entry, segments };
}
