/** A tiny ELF32 writer for tests: builds executables with the given PT_LOAD segments. */
export interface TestSegment {
  paddr: number;
  vaddr?: number;
  data: Uint8Array | number[];
  /** Default: data length (more = bss). */
  memsz?: number;
}

export interface ElfOptions {
  entry: number;
  segments: TestSegment[];
  cls?: number;
  data?: number;
  type?: number;
  machine?: number;
}

/** ELF header (52 bytes) + program headers (32 each), segment data 16-byte aligned after them. */
export function buildElf32(o: ElfOptions): Uint8Array {
  const phoff = 52;
  let off = phoff + 32 * o.segments.length;
  const placed = o.segments.map((s) => {
    off = (off + 15) & ~15;
    const at = off;
    off += s.data.length;
    return at;
  });
  const out = new Uint8Array(off);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, o.cls ?? 1, o.data ?? 1, 1, 0]);
  dv.setUint16(16, o.type ?? 2, true);
  dv.setUint16(18, o.machine ?? 3, true);
  dv.setUint32(20, 1, true);
  dv.setUint32(24, o.entry, true);
  dv.setUint32(28, phoff, true);
  dv.setUint16(40, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, o.segments.length, true);
  o.segments.forEach((s, i) => {
    const p = phoff + 32 * i;
    dv.setUint32(p, 1, true);
    dv.setUint32(p + 4, placed[i]!, true);
    dv.setUint32(p + 8, s.vaddr ?? s.paddr, true);
    dv.setUint32(p + 12, s.paddr, true);
    dv.setUint32(p + 16, s.data.length, true);
    dv.setUint32(p + 20, s.memsz ?? s.data.length, true);
    dv.setUint32(p + 24, 5, true);
    out.set(s.data, placed[i]!);
  });
  return out;
}

/** A Multiboot v1 header (12 bytes, or 32 with the a.out-kludge addresses). */
export function multibootHeader(flags: number, addresses?: [number, number, number, number, number], checksumDelta = 0): Uint8Array {
  const b = new Uint8Array(addresses ? 32 : 12);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 0x1badb002, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, (-(0x1badb002 + flags) + checksumDelta) >>> 0, true);
  addresses?.forEach((a, i) => dv.setUint32(12 + 4 * i, a, true));
  return b;
}

/** Concatenates byte arrays. */
export function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

/** 32-bit code: `mov al, c; out 0xe9, al` for each char, then `mov al, v; out 0xf4, al`. */
export function printAndExit(text: string, exitValue: number): number[] {
  const code: number[] = [];
  for (const ch of text) code.push(0xb0, ch.charCodeAt(0), 0xe6, 0xe9);
  code.push(0xb0, exitValue, 0xe6, 0xf4);
  return code;
}
