/**
 * The guest image file (`.vlg`): a versioned little-endian binary format. Layout:
 *
 * ```
 * header (112 bytes)
 *   0  magic        8 bytes  "VLGUEST" 0x1A
 *   8  version      u16      1
 *  10  headerSize   u16      112
 *  12  fileSize     u32      the whole file, to detect truncation
 *  16  entry        u32      virtual entry point
 *  20  flags        u32      0 (reserved)
 *  24  segCount     u32  28  segOff    u32   segment table, 32 bytes an entry
 *  32  symCount     u32  36  symOff    u32   symbol table, 20 bytes an entry
 *  40  siteCount    u32  44  siteOff   u32   pv-op site table, 20 bytes an entry
 *  48  strOff       u32  52  strSize   u32   string table (UTF-8, referenced by offset+length)
 *  56  dataOff      u32  60  dataSize  u32   data blob (segment bytes, native site bytes)
 *  64  nameOff      u32  68  nameLen   u32   image name, in the string table
 *  72  metaOff      u32  76  metaLen   u32   metadata as JSON, in the string table
 *  80  sha256       32 bytes over bytes 0..80 and 112..fileSize (everything but itself)
 * segment: vaddr, paddr, memsz, flags, dataOff, dataSize, nameOff, nameLen   (u32 each)
 * symbol:  nameOff, nameLen, addr, size, kind (0 label, 1 function, 2 object)
 * site:    addr, len, kindOff, kindLen, nativeOff (native bytes: len bytes at nativeOff in the blob)
 * ```
 * Offsets in the header are file offsets; offsets in entries are relative to the string
 * table or the data blob. The file holds the native (unpatched) image.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { ImageError } from './elf.js';
import { SYMBOL_KINDS, validateGuestImage, type GuestImage, type GuestSegment, type GuestSymbol, type JsonValue, type PvopSite } from './image.js';
import type { PvopKind } from '../x86/pvop.js';

/** The 8-byte magic: "VLGUEST" and 0x1A (stops `type` on DOS, catches text-mode corruption). */
export const IMAGE_MAGIC = Uint8Array.from([0x56, 0x4c, 0x47, 0x55, 0x45, 0x53, 0x54, 0x1a]);
export const IMAGE_VERSION = 1;
export const HEADER_SIZE = 112;
const HASH_AT = 80;
const SEG_ENTRY = 32;
const SYM_ENTRY = 20;
const SITE_ENTRY = 20;

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);
const align4 = (n: number): number => (n + 3) & ~3;

/** Builds a string table, sharing identical strings. */
class Strings {
  private readonly parts: Uint8Array[] = [];
  private readonly seen = new Map<string, [number, number]>();
  size = 0;
  add(s: string): [number, number] {
    const hit = this.seen.get(s);
    if (hit) return hit;
    const b = Buffer.from(s, 'utf8');
    const ref: [number, number] = [this.size, b.length];
    this.parts.push(b);
    this.size += b.length;
    this.seen.set(s, ref);
    return ref;
  }
  bytes(): Uint8Array { return Buffer.concat(this.parts); }
}

/** SHA-256 over everything but the hash field. */
function digest(file: Uint8Array, end: number): Buffer {
  return createHash('sha256').update(file.subarray(0, HASH_AT)).update(file.subarray(HEADER_SIZE, end)).digest();
}

/**
 * Serializes an image (validated first: an inconsistent image is an ImageError naming the
 * field, never a file). Deterministic: the same image gives the same bytes.
 */
export function writeGuestImage(image: GuestImage): Uint8Array {
  validateGuestImage(image, image.name);
  const strings = new Strings();
  const name = strings.add(image.name);
  const meta = strings.add(JSON.stringify(image.metadata));
  const segRefs = image.segments.map((s) => strings.add(s.name ?? ''));
  const symRefs = image.symbols.map((s) => strings.add(s.name));
  const siteRefs = image.pvopSites.map((p) => strings.add(p.kind));

  // Data blob: segment bytes (4-aligned), then native site bytes.
  let dataSize = 0;
  const segData = image.segments.map((s) => { const at = dataSize; dataSize = align4(dataSize + s.bytes.length); return at; });
  const siteData = image.pvopSites.map((p) => { const at = dataSize; dataSize += p.len; return at; });
  dataSize = align4(dataSize);

  const segOff = HEADER_SIZE;
  const symOff = segOff + SEG_ENTRY * image.segments.length;
  const siteOff = symOff + SYM_ENTRY * image.symbols.length;
  const strOff = siteOff + SITE_ENTRY * image.pvopSites.length;
  const strBytes = strings.bytes();
  const dataOff = align4(strOff + strBytes.length);
  const fileSize = dataOff + dataSize;
  if (fileSize > 0xffff_ffff) throw new ImageError(image.name, `image too large for the format (${fileSize} bytes)`);

  const out = new Uint8Array(fileSize);
  const dv = new DataView(out.buffer);
  const u32 = (at: number, v: number): void => dv.setUint32(at, v >>> 0, true);
  out.set(IMAGE_MAGIC, 0);
  dv.setUint16(8, IMAGE_VERSION, true);
  dv.setUint16(10, HEADER_SIZE, true);
  u32(12, fileSize); u32(16, image.entry); u32(20, 0);
  u32(24, image.segments.length); u32(28, segOff);
  u32(32, image.symbols.length); u32(36, symOff);
  u32(40, image.pvopSites.length); u32(44, siteOff);
  u32(48, strOff); u32(52, strBytes.length);
  u32(56, dataOff); u32(60, dataSize);
  u32(64, name[0]); u32(68, name[1]); u32(72, meta[0]); u32(76, meta[1]);
  image.segments.forEach((s, i) => {
    const at = segOff + SEG_ENTRY * i;
    [s.vaddr, s.paddr, s.memsz, s.flags, segData[i]!, s.bytes.length, segRefs[i]![0], segRefs[i]![1]].forEach((v, k) => u32(at + 4 * k, v));
    out.set(s.bytes, dataOff + segData[i]!);
  });
  image.symbols.forEach((s, i) => {
    const at = symOff + SYM_ENTRY * i;
    [symRefs[i]![0], symRefs[i]![1], s.addr, s.size, SYMBOL_KINDS.indexOf(s.kind)].forEach((v, k) => u32(at + 4 * k, v));
  });
  image.pvopSites.forEach((p, i) => {
    const at = siteOff + SITE_ENTRY * i;
    [p.addr, p.len, siteRefs[i]![0], siteRefs[i]![1], siteData[i]!].forEach((v, k) => u32(at + 4 * k, v));
    out.set(p.native, dataOff + siteData[i]!);
  });
  out.set(strBytes, strOff);
  out.set(digest(out, fileSize), HASH_AT);
  return out;
}

/** Recomputes the checksum of a (modified) file in place: for tools and tests that edit files. */
export function resealGuestImage(file: Uint8Array): void {
  const end = Math.min(file.length, new DataView(file.buffer, file.byteOffset, file.byteLength).getUint32(12, true));
  file.set(digest(file, end), HASH_AT);
}

/** True when `bytes` starts with the image magic. */
export function isGuestImageFile(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && IMAGE_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Parses an image file. Every problem is an ImageError that names the file and the field:
 * bad magic or version, a truncated header or file, a checksum mismatch, a table or
 * reference outside the file, an unknown kind, then the image's own consistency
 * (`validateGuestImage`: sites outside segments or overlapping, entry outside code, ...).
 */
export function readGuestImage(bytes: Uint8Array, file: string): GuestImage {
  const fail = (detail: string): never => { throw new ImageError(file, detail); };
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes, too short for the magic (8 bytes)`);
  if (!isGuestImageFile(bytes)) {
    const found = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    fail(`magic: not a virtlab guest image (expected 56 4c 47 55 45 53 54 1a, "VLGUEST\\x1a", found ${found})`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 12) fail(`truncated: ${bytes.length} bytes, the header needs ${HEADER_SIZE}`);
  const version = dv.getUint16(8, true);
  if (version !== IMAGE_VERSION) fail(`version: ${version} is not supported (this reader reads version ${IMAGE_VERSION})`);
  const headerSize = dv.getUint16(10, true);
  if (headerSize !== HEADER_SIZE) fail(`headerSize: ${headerSize}, expected ${HEADER_SIZE} for version ${IMAGE_VERSION}`);
  if (bytes.length < HEADER_SIZE) fail(`truncated: ${bytes.length} bytes, the header needs ${HEADER_SIZE}`);
  const u32 = (at: number): number => dv.getUint32(at, true);
  const fileSize = u32(12);
  if (bytes.length < fileSize) fail(`truncated: header.fileSize is ${fileSize} bytes but the file has ${bytes.length}`);
  if (bytes.length > fileSize) fail(`header.fileSize is ${fileSize} bytes but the file has ${bytes.length} (trailing bytes)`);
  const want = Buffer.from(bytes.subarray(HASH_AT, HASH_AT + 32));
  const got = digest(bytes, fileSize);
  if (!got.equals(want)) fail(`checksum mismatch: header.sha256 is ${want.toString('hex').slice(0, 16)}…, the contents hash to ${got.toString('hex').slice(0, 16)}… (the file is corrupt)`);

  const table = (field: string, countAt: number, offAt: number, entry: number): [number, number] => {
    const count = u32(countAt), off = u32(offAt);
    if (off < HEADER_SIZE && count > 0) fail(`header.${field}Off ${hex(off)} points into the header`);
    if (off + count * entry > fileSize) fail(`header.${field}Count ${count} × ${entry} bytes at header.${field}Off ${hex(off)} runs past the end of the file (${hex(fileSize)})`);
    return [count, off];
  };
  const [segCount, segOff] = table('seg', 24, 28, SEG_ENTRY);
  const [symCount, symOff] = table('sym', 32, 36, SYM_ENTRY);
  const [siteCount, siteOff] = table('site', 40, 44, SITE_ENTRY);
  const strOff = u32(48), strSize = u32(52), dataOff = u32(56), dataSize = u32(60);
  if (strOff + strSize > fileSize) fail(`header.strOff ${hex(strOff)} + header.strSize ${hex(strSize)} runs past the end of the file (${hex(fileSize)})`);
  if (dataOff + dataSize > fileSize) fail(`header.dataOff ${hex(dataOff)} + header.dataSize ${hex(dataSize)} runs past the end of the file (${hex(fileSize)})`);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const str = (field: string, off: number, len: number): string => {
    if (off + len > strSize) fail(`${field}: string at ${hex(off)}+${len} lies outside the string table (${strSize} bytes)`);
    try {
      return decoder.decode(bytes.subarray(strOff + off, strOff + off + len));
    } catch {
      return fail(`${field}: not valid UTF-8`);
    }
  };
  const blob = (field: string, off: number, len: number): Uint8Array => {
    if (off + len > dataSize) fail(`${field}: ${len} bytes at ${hex(off)} lie outside the data blob (${dataSize} bytes)`);
    return bytes.slice(dataOff + off, dataOff + off + len);
  };

  const name = str('header.name', u32(64), u32(68));
  const metaText = str('header.meta', u32(72), u32(76));
  let metadata: Record<string, JsonValue>;
  try {
    const m: unknown = JSON.parse(metaText);
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new Error('not a JSON object');
    metadata = m as Record<string, JsonValue>;
  } catch (e) {
    return fail(`header.meta: ${e instanceof Error ? e.message : String(e)}`);
  }
  const segments: GuestSegment[] = [];
  for (let i = 0; i < segCount; i++) {
    const at = segOff + SEG_ENTRY * i;
    const f = `segments[${i}]`;
    const size = u32(at + 20), memsz = u32(at + 8);
    if (size > memsz) fail(`${f}.dataSize ${hex(size)} exceeds ${f}.memsz ${hex(memsz)}`);
    const segName = str(`${f}.name`, u32(at + 24), u32(at + 28));
    segments.push({
      ...(segName ? { name: segName } : {}),
      vaddr: u32(at), paddr: u32(at + 4), memsz, flags: u32(at + 12), bytes: blob(`${f}.data`, u32(at + 16), size),
    });
  }
  const symbols: GuestSymbol[] = [];
  for (let i = 0; i < symCount; i++) {
    const at = symOff + SYM_ENTRY * i;
    const kind = u32(at + 16);
    if (kind >= SYMBOL_KINDS.length) fail(`symbols[${i}].kind: ${kind} is not a symbol kind (0 label, 1 function, 2 object)`);
    symbols.push({ name: str(`symbols[${i}].name`, u32(at), u32(at + 4)), addr: u32(at + 8), size: u32(at + 12), kind: SYMBOL_KINDS[kind]! });
  }
  const pvopSites: PvopSite[] = [];
  for (let i = 0; i < siteCount; i++) {
    const at = siteOff + SITE_ENTRY * i;
    const len = u32(at + 4);
    if (len < 1 || len > 255) fail(`pvopSites[${i}].len: ${len} must be in 1..255`);
    const kind = str(`pvopSites[${i}].kind`, u32(at + 8), u32(at + 12)) as PvopKind;
    pvopSites.push({ addr: u32(at), len, kind, native: blob(`pvopSites[${i}].native`, u32(at + 16), len) });
  }
  const image: GuestImage = { name, entry: u32(16), segments, symbols, pvopSites, metadata };
  validateGuestImage(image, file);
  return image;
}

/** Reads and parses an image file; a missing file is an ImageError too. */
export function loadGuestImageFile(path: string): GuestImage {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageError(path, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? String(e)})`);
  }
  return readGuestImage(bytes, path);
}

/** Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename. */
export function writeFileAtomicSync(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const fd = openSync(tmp, 'w');
  try {
    for (let o = 0; o < bytes.length;) o += writeSync(fd, bytes, o, bytes.length - o);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
}

/** Serializes `image` and writes it to `path` atomically. */
export function saveGuestImageFile(path: string, image: GuestImage): void {
  writeFileAtomicSync(path, writeGuestImage(image));
}
