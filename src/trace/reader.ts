/**
 * Reads a whole trace into memory and checks its consistency beyond the container's
 * checksums: header schema, blobs and their hashes, chunks against the index, the trailer.
 */
import { createHash } from 'node:crypto';
import { readSections, Section, TRACE_VERSION_PV, TraceFormatError, type SectionEntry } from './format.js';
import { decodeBlob, decodeChunk, decodeIndex, type Chunk, type IndexEntry, type TraceHeader, type TraceTrailer } from './trace-data.js';

/** A trace, read and checked. */
export interface Trace {
  readonly file: string;
  readonly size: number;
  readonly header: TraceHeader;
  readonly image: Uint8Array;
  readonly disk: Uint8Array | null;
  readonly chunks: readonly Chunk[];
  readonly index: readonly IndexEntry[];
  readonly trailer: TraceTrailer;
  readonly sections: readonly SectionEntry[];
}

/** Parses and checks `bytes` (`file` names it in errors). Throws TraceFormatError. */
export function readTrace(bytes: Uint8Array, file = '<trace>'): Trace {
  const { sections, indexOffset, version } = readSections(bytes, file);
  const first = sections[0];
  if (first === undefined || first.kind !== Section.Header) throw new TraceFormatError(file, first?.offset ?? 16, 'expected the header section first');
  const header = parseJson<TraceHeader>(first, file, 'header');
  checkHeader(header, file, first.offset);
  // The recording mode and the format version go together (a pv trace is version 2).
  const pv = header.mode === 'pv';
  if (pv !== (version === TRACE_VERSION_PV)) {
    throw new TraceFormatError(file, first.offset, pv ? `header: recording mode pv in a version-${version} file (pv recordings are version ${TRACE_VERSION_PV})` : `header: a version-${version} file must say "mode": "pv" (it is the format of pv recordings)`);
  }
  let image: Uint8Array | null = null;
  let disk: Uint8Array | null = null;
  const chunks: Chunk[] = [];
  const chunkOffsets: number[] = [];
  let index: IndexEntry[] | null = null;
  let trailer: TraceTrailer | null = null;
  for (const s of sections.slice(1)) {
    if (trailer !== null) throw new TraceFormatError(file, s.offset, 'section after the trailer');
    switch (s.kind) {
      case Section.Header: throw new TraceFormatError(file, s.offset, 'a second header section');
      case Section.Blob: {
        const b = decodeBlob(s.payload, file, s.offset);
        if (b.name === 'image' && image === null) image = b.data;
        else if (b.name === 'disk' && disk === null) disk = b.data;
        else throw new TraceFormatError(file, s.offset, `unexpected blob "${b.name}" (expected one "image" and at most one "disk")`);
        break;
      }
      case Section.Chunk: {
        if (index !== null) throw new TraceFormatError(file, s.offset, 'chunk after the index');
        const c = decodeChunk(s.payload, file, s.offset, pv);
        const prevEnd = chunks.length > 0 ? chunks[chunks.length - 1]!.end : 0;
        if (c.start !== prevEnd) throw new TraceFormatError(file, s.offset, `chunk starts at position ${c.start}, expected ${prevEnd} (where the previous one ended)`);
        chunks.push(c);
        chunkOffsets.push(s.offset);
        break;
      }
      case Section.Index: index = decodeIndex(s.payload, file, s.offset); break;
      case Section.Trailer: trailer = parseJson<TraceTrailer>(s, file, 'trailer'); break;
    }
  }
  const end = bytes.length - 16;
  if (image === null) throw new TraceFormatError(file, end, 'no "image" blob: the trace does not hold its guest image');
  if (sha256(image) !== header.image.sha256) throw new TraceFormatError(file, sections.find((s) => s.kind === Section.Blob)!.offset, `embedded image's SHA-256 ${sha256(image)} is not the header's ${header.image.sha256}`);
  if ((header.machine.disk !== null) !== (disk !== null)) throw new TraceFormatError(file, end, header.machine.disk !== null ? 'the header has a disk but no "disk" blob is present' : 'a "disk" blob but no disk in the header');
  if (disk !== null && sha256(disk) !== header.machine.disk!.imageSha256) throw new TraceFormatError(file, end, `embedded disk image's SHA-256 is not the header's ${header.machine.disk!.imageSha256}`);
  if (index === null) throw new TraceFormatError(file, indexOffset, 'no index section');
  if (trailer === null) throw new TraceFormatError(file, end, 'no trailer section (truncated recording?)');
  if (index.length !== chunks.length) throw new TraceFormatError(file, indexOffset, `index lists ${index.length} chunks, the file has ${chunks.length}`);
  index.forEach((x, i) => {
    const c = chunks[i]!;
    if (x.offset !== chunkOffsets[i] || x.start !== c.start || x.end !== c.end || x.events !== c.events.length || x.ports !== c.ports.length / 3 || x.tsc !== c.tsc.length || x.tntBits !== c.tntBits || x.tips !== c.tips.length) {
      throw new TraceFormatError(file, indexOffset, `index entry ${i} does not describe the chunk at ${chunkOffsets[i]}`);
    }
  });
  if (!Number.isSafeInteger(trailer.instructions) || trailer.instructions !== (chunks[chunks.length - 1]?.end ?? 0)) {
    throw new TraceFormatError(file, end, `trailer says ${trailer.instructions} instructions, the last chunk ends at ${chunks[chunks.length - 1]?.end ?? 0}`);
  }
  return { file, size: bytes.length, header, image, disk, chunks, index, trailer, sections };
}

function parseJson<T>(s: SectionEntry, file: string, what: string): T {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(s.payload)) as T;
  } catch (e) {
    throw new TraceFormatError(file, s.offset, `${what} section is not valid JSON (${(e as Error).message})`);
  }
}

function checkHeader(h: TraceHeader, file: string, at: number): void {
  const bad = (what: string): never => { throw new TraceFormatError(file, at, `header: ${what}`); };
  if (h === null || typeof h !== 'object') bad('expected an object');
  if (h.schema !== 'virtlab.trace/1') bad(`schema "${String(h.schema)}", expected "virtlab.trace/1"`);
  if (typeof h.image?.sha256 !== 'string' || typeof h.image.path !== 'string') bad('image path and sha256 expected');
  if (h.image.format !== 'multiboot' && h.image.format !== 'flat') bad('image.format must be multiboot or flat');
  const m = h.machine;
  if (typeof m !== 'object' || m === null || !Number.isInteger(m.memoryMiB) || m.memoryMiB < 1 || m.memoryMiB > 2048) bad('machine.memoryMiB must be an integer in 1..2048');
  if (!Number.isSafeInteger(h.maxInstructions) || h.maxInstructions < 1) bad('maxInstructions must be a positive integer');
  if (!Number.isSafeInteger(h.checkpointInterval) || h.checkpointInterval < 1) bad('checkpointInterval must be a positive integer');
  if (typeof h.profile?.name !== 'string') bad('profile.name expected');
  if (h.mode !== undefined && h.mode !== 'pv') bad(`mode "${String(h.mode)}", expected "pv" or no mode (a native recording)`);
}

function sha256(b: Uint8Array): string { return createHash('sha256').update(b).digest('hex'); }
