/** A trace's summary: what `virtlab inspect` prints (and `--json` gives). */
import { Section } from './format.js';
import type { Trace } from './reader.js';
import { EVENT_NAMES } from './trace-data.js';

export interface TraceSummary {
  readonly file: string;
  readonly fileBytes: number;
  readonly header: Trace['header'];
  readonly trailer: Trace['trailer'];
  readonly instructions: number;
  /** Stored bytes of the chunks (the logs), without header, images, index and trailer. */
  readonly logBytes: number;
  /** Whole file bytes per logical instruction (images included). */
  readonly bytesPerInstruction: number;
  /** Log bytes per million logical instructions. */
  readonly bytesPerMillionInstructions: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly sections: readonly { kind: number; name: string; offset: number; storedBytes: number; rawBytes: number; crc32: string; span: string | null }[];
}

export function summarizeTrace(t: Trace): TraceSummary {
  const counts: Record<string, number> = { interrupt: 0, 'block-complete': 0, 'net-rx': 0, checkpoint: 0, 'ram-digest': 0, 'port-read': 0, rdtsc: 0, 'tnt-bit': 0, tip: 0 };
  if (t.header.mode === 'pv') counts.virq = 0;
  const vectors: Record<string, number> = {};
  for (const c of t.chunks) {
    for (const e of c.events) {
      counts[EVENT_NAMES[e.kind]!]!++;
      if (e.kind === 4 && e.ram !== null) counts['ram-digest']!++;
      if (e.kind === 1) { const k = `interrupt 0x${e.vector.toString(16).padStart(2, '0')}`; vectors[k] = (vectors[k] ?? 0) + 1; }
    }
    counts['port-read']! += c.ports.length / 3;
    counts.rdtsc! += c.tsc.length;
    counts['tnt-bit']! += c.tntBits;
    counts.tip! += c.tips.length;
  }
  for (const k of Object.keys(vectors).sort()) counts[k] = vectors[k]!;
  let chunkNo = 0;
  const logBytes = t.sections.filter((s) => s.kind === Section.Chunk).reduce((a, s) => a + s.storedBytes + 16, 0);
  const n = t.trailer.instructions;
  return {
    file: t.file,
    fileBytes: t.size,
    header: t.header,
    trailer: t.trailer,
    instructions: n,
    logBytes,
    bytesPerInstruction: n > 0 ? t.size / n : 0,
    bytesPerMillionInstructions: n > 0 ? (logBytes / n) * 1e6 : 0,
    counts,
    sections: t.sections.map((s) => {
      let span: string | null = null;
      if (s.kind === Section.Chunk) { const c = t.chunks[chunkNo++]!; span = `[${c.start}, ${c.end}] ${c.events.length} events, ${c.ports.length / 3} port reads, ${c.tsc.length} rdtsc, ${c.tntBits} tnt, ${c.tips.length} tip`; }
      return { kind: s.kind, name: ['', 'header', 'blob', 'chunk', 'index', 'trailer'][s.kind]!, offset: s.offset, storedBytes: s.storedBytes, rawBytes: s.rawBytes, crc32: '0x' + s.crc32.toString(16).padStart(8, '0'), span };
    }),
  };
}
