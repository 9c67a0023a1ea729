/**
 * The guest image: what the assembler produces and every loader consumes. Plain data: code
 * and data segments (virtual and physical addresses, bytes, size in memory, permissions),
 * the entry point, a symbol table (for disassembly and reports) and the pv-op site table
 * (address, length, kind and native bytes of every privileged operation, which a mode
 * patches at load time). Files (image-format.ts) always hold the native, unpatched image.
 */
import { ImageError } from './elf.js';
import type { Assembled, AsmSymbol, SectionKind, SymbolKind } from '../x86/assembler.js';
import type { Label } from '../x86/operands.js';
import { isPvopKind, type PvopSite } from '../x86/pvop.js';

export type { PvopKind, PvopSite } from '../x86/pvop.js';
export type { SymbolKind } from '../x86/assembler.js';

/** Segment permission bits: the ELF PF_* values. */
export const SEG_X = 1;
export const SEG_W = 2;
export const SEG_R = 4;

/** One loadable segment. */
export interface GuestSegment {
  /** The section it came from (informational; may be empty). */
  readonly name?: string;
  /** Virtual address of its first byte. */
  readonly vaddr: number;
  /** Physical (load) address of its first byte. */
  readonly paddr: number;
  /** Initialized contents; the rest up to `memsz` is zero (bss). */
  readonly bytes: Uint8Array;
  readonly memsz: number;
  /** SEG_R | SEG_W | SEG_X. */
  readonly flags: number;
}

export const SYMBOL_KINDS: readonly SymbolKind[] = ['label', 'function', 'object'];

/** A named address (virtual), with a size (0 when unknown) and kind. */
export type GuestSymbol = AsmSymbol;

/** JSON data in an image's metadata. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** A guest image. */
export interface GuestImage {
  readonly name: string;
  /** Virtual address of the entry point; it must lie in an executable segment. */
  readonly entry: number;
  readonly segments: readonly GuestSegment[];
  readonly symbols: readonly GuestSymbol[];
  readonly pvopSites: readonly PvopSite[];
  /** Free-form JSON: builder parameters, versions, descriptions. */
  readonly metadata: Readonly<Record<string, JsonValue>>;
}

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);
const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;

/** Validation options. */
export interface ValidateOptions {
  /** Allow site bytes in the segments to differ from `native` (an image after `applyPvops`). */
  readonly patched?: boolean;
}

/**
 * Checks an image for consistency, throwing an ImageError (prefixed by `file`) that names
 * the field: segments inside the 32-bit space and not overlapping (virtually or physically),
 * bytes ≤ memsz, entry in an executable segment, symbols well-formed and unique, sites of a
 * known kind, inside the initialized bytes of one executable segment, in address order,
 * not overlapping, with `len` native bytes equal to the segment's bytes.
 */
export function validateGuestImage(image: GuestImage, file: string, options: ValidateOptions = {}): void {
  const fail = (detail: string): never => { throw new ImageError(file, detail); };
  if (typeof image.name !== 'string' || image.name.length === 0) fail('name: must be a non-empty string');
  if (!isU32(image.entry)) fail(`entry: ${String(image.entry)} is not a 32-bit address`);
  if (image.segments.length === 0) fail('segments: an image needs at least one segment');
  image.segments.forEach((s, i) => {
    const at = `segments[${i}]${s.name ? ` ("${s.name}")` : ''}`;
    if (!isU32(s.vaddr)) fail(`${at}.vaddr: ${String(s.vaddr)} is not a 32-bit address`);
    if (!isU32(s.paddr)) fail(`${at}.paddr: ${String(s.paddr)} is not a 32-bit address`);
    if (!isU32(s.memsz) || s.memsz === 0) fail(`${at}.memsz: ${String(s.memsz)} must be in 1..0xffffffff`);
    if (!(s.bytes instanceof Uint8Array)) fail(`${at}.bytes: not a Uint8Array`);
    if (s.bytes.length > s.memsz) fail(`${at}: ${s.bytes.length} bytes of data exceed memsz ${hex(s.memsz)}`);
    if (s.vaddr + s.memsz > 0x1_0000_0000) fail(`${at}: vaddr ${hex(s.vaddr)} + memsz ${hex(s.memsz)} wraps past 4 GiB`);
    if (s.paddr + s.memsz > 0x1_0000_0000) fail(`${at}: paddr ${hex(s.paddr)} + memsz ${hex(s.memsz)} wraps past 4 GiB`);
    if (!Number.isInteger(s.flags) || (s.flags & ~(SEG_R | SEG_W | SEG_X)) !== 0) fail(`${at}.flags: ${String(s.flags)} has bits other than R (4), W (2), X (1)`);
  });
  const segs = image.segments.map((s, i) => ({ s, i }));
  for (const space of ['vaddr', 'paddr'] as const) {
    const sorted = [...segs].sort((a, b) => a.s[space] - b.s[space]);
    for (let k = 1; k < sorted.length; k++) {
      const a = sorted[k - 1]!, b = sorted[k]!;
      if (a.s[space] + a.s.memsz > b.s[space]) {
        fail(`segments[${a.i}] (${space} ${hex(a.s[space])}+${hex(a.s.memsz)}) and segments[${b.i}] (${space} ${hex(b.s[space])}) overlap`);
      }
    }
  }
  const entrySeg = image.segments.find((s) => image.entry >= s.vaddr && image.entry < s.vaddr + s.memsz);
  if (!entrySeg) fail(`entry: ${hex(image.entry)} is outside every segment`);
  if ((entrySeg!.flags & SEG_X) === 0) fail(`entry: ${hex(image.entry)} is in a segment that is not executable (flags ${entrySeg!.flags})`);

  const names = new Set<string>();
  image.symbols.forEach((y, i) => {
    const at = `symbols[${i}]`;
    if (typeof y.name !== 'string' || y.name.length === 0) fail(`${at}.name: must be a non-empty string`);
    if (names.has(y.name)) fail(`${at}.name: duplicate symbol "${y.name}"`);
    names.add(y.name);
    if (!isU32(y.addr)) fail(`${at}.addr (${y.name}): ${String(y.addr)} is not a 32-bit address`);
    if (!isU32(y.size)) fail(`${at}.size (${y.name}): ${String(y.size)} is not a 32-bit size`);
    if (!SYMBOL_KINDS.includes(y.kind)) fail(`${at}.kind (${y.name}): "${String(y.kind)}" is not one of ${SYMBOL_KINDS.join(', ')}`);
  });

  let prevEnd = -1;
  image.pvopSites.forEach((p, i) => {
    const at = `pvopSites[${i}]`;
    if (!isPvopKind(p.kind)) fail(`${at}.kind: "${String(p.kind)}" is not a known pv-op kind`);
    const what = `${at} (${p.kind} at ${isU32(p.addr) ? hex(p.addr) : String(p.addr)})`;
    if (!isU32(p.addr)) fail(`${what}.addr: not a 32-bit address`);
    if (!Number.isInteger(p.len) || p.len < 1 || p.len > 255) fail(`${what}.len: ${String(p.len)} must be in 1..255`);
    if (!(p.native instanceof Uint8Array) || p.native.length !== p.len) fail(`${what}.native: ${p.native?.length ?? 'no'} bytes, but len is ${p.len}`);
    if (p.addr < prevEnd) fail(`${what}: overlaps or precedes the previous site (which ends at ${hex(prevEnd)}); sites must be in address order without overlap`);
    prevEnd = p.addr + p.len;
    const seg = image.segments.find((s) => p.addr >= s.vaddr && p.addr < s.vaddr + s.memsz);
    if (!seg) fail(`${what}: outside every segment`);
    if ((seg!.flags & SEG_X) === 0) fail(`${what}: in a segment that is not executable`);
    const off = p.addr - seg!.vaddr;
    if (off + p.len > seg!.bytes.length) fail(`${what}: runs past the initialized bytes of its segment (${hex(seg!.vaddr)}+${hex(seg!.bytes.length)})`);
    if (!options.patched) {
      for (let k = 0; k < p.len; k++) {
        if (seg!.bytes[off + k] !== p.native[k]) fail(`${what}.native: differs from the segment's bytes at ${hex(p.addr + k)} (the image is patched, or the table is stale)`);
      }
    }
  });
  try {
    JSON.stringify(image.metadata);
  } catch (e) {
    fail(`metadata: not serializable as JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** The segment holding virtual address `vaddr`, or undefined. */
export function segmentAt(image: GuestImage, vaddr: number): GuestSegment | undefined {
  return image.segments.find((s) => vaddr >= s.vaddr && vaddr < s.vaddr + s.memsz);
}

/** The physical address of virtual address `vaddr` through the image's segments. */
export function physicalAddress(image: GuestImage, vaddr: number, file = image.name): number {
  const s = segmentAt(image, vaddr);
  if (!s) throw new ImageError(file, `address ${hex(vaddr)} is outside every segment`);
  return (vaddr - s.vaddr + s.paddr) >>> 0;
}

/**
 * Produces a site's replacement bytes: at most `site.len` bytes; the rest of the site is
 * filled with NOPs (0x90). Return `site.native` to keep the native operation.
 */
export type PvopPatcher = (site: PvopSite, image: GuestImage) => Uint8Array;

/** The patcher of the native modes: every site keeps its native bytes. */
export const nativePatcher: PvopPatcher = (site) => site.native;

/**
 * Returns a copy of `image` with every pv-op site patched by `patcher` (segments without
 * sites are shared, not copied). The result's site table still holds the native bytes.
 */
export function applyPvops(image: GuestImage, patcher: PvopPatcher): GuestImage {
  const copies = new Map<GuestSegment, Uint8Array>();
  for (const site of image.pvopSites) {
    const seg = segmentAt(image, site.addr);
    if (!seg) throw new ImageError(image.name, `pv-op site ${site.kind} at ${hex(site.addr)} is outside every segment`);
    const bytes = patcher(site, image);
    if (!(bytes instanceof Uint8Array) || bytes.length > site.len) {
      throw new ImageError(image.name, `patcher returned ${bytes instanceof Uint8Array ? bytes.length + ' bytes' : 'no bytes'} for the ${site.len}-byte ${site.kind} site at ${hex(site.addr)}`);
    }
    let copy = copies.get(seg);
    if (!copy) copies.set(seg, (copy = seg.bytes.slice()));
    const off = site.addr - seg.vaddr;
    copy.set(bytes, off);
    copy.fill(0x90, off + bytes.length, off + site.len);
  }
  return { ...image, segments: image.segments.map((s) => { const c = copies.get(s); return c ? { ...s, bytes: c } : s; }) };
}

/** Segment flags for each kind of assembler section. */
export const SECTION_FLAGS: Readonly<Record<SectionKind, number>> = { text: SEG_R | SEG_X, rodata: SEG_R, data: SEG_R | SEG_W, bss: SEG_R | SEG_W };

/** Name, entry and metadata for `imageFromAssembly`. */
export interface ImageOptions {
  readonly name: string;
  /** Entry point: a label (its virtual address) or an address. */
  readonly entry: Label | number;
  readonly metadata?: Readonly<Record<string, JsonValue>>;
}

/**
 * Packages an assembled program as a GuestImage: one segment per non-empty section (flags
 * from its kind), every named label as a symbol, the pv-op site table; then validates it.
 */
export function imageFromAssembly(assembled: Assembled, options: ImageOptions): GuestImage {
  const entry = typeof options.entry === 'number' ? options.entry : assembled.address(options.entry);
  const segments: GuestSegment[] = assembled.sections.filter((s) => s.memsz > 0).map((s) => ({
    name: s.name, vaddr: s.vaddr, paddr: s.paddr, bytes: s.bytes, memsz: s.memsz, flags: SECTION_FLAGS[s.kind],
  }));
  const image: GuestImage = { name: options.name, entry, segments, symbols: assembled.symbols, pvopSites: assembled.pvopSites, metadata: options.metadata ?? {} };
  validateGuestImage(image, options.name);
  return image;
}
