/**
 * The translation cache of `full` (binary translation, Adams & Agesen, ASPLOS 2006, §3.1):
 * the set of translated basic blocks of guest kernel code, keyed by the guest-physical
 * address of the block's first byte. A block is straight-line code up to and including the
 * next control transfer, as the guest's bytes decode (iced-x86, the decoder the
 * disassembler already uses; only ever on a translation, never per instruction).
 *
 * The cache does not hold code: the CPU executes the guest's bytes through the monitor's
 * handler overlay, which *is* the translated form (innocuous instructions as they are,
 * sensitive ones rewritten). What the cache models is which code has been translated, so
 * that the translation cost is charged exactly once per block until the guest writes the
 * page it came from.
 */
import { createRequire } from 'node:module';

type Iced = typeof import('iced-x86');
let iced: Iced | null = null;
function load(): Iced {
  if (iced === null) iced = createRequire(import.meta.url)('iced-x86') as Iced;
  return iced;
}

/** At most this many guest instructions per block (the translator stops and chains). */
export const MAX_BLOCK_INSTRUCTIONS = 64;

/** One translated block. */
export interface Block {
  /** Guest-physical address of the first byte (the key). */
  readonly phys: number;
  /** Guest instructions in the block (the translation cost is per instruction). */
  readonly instructions: number;
  /** Guest frames (physical, 4 KiB aligned) the block's bytes come from: one or two. */
  readonly frames: readonly number[];
}

/** Counters the run record shows (`bt.*`). */
export interface TranslationStats {
  blocks: number;
  instructions: number;
  /** Blocks entered again from the cache (chained: no cost). */
  chainedEntries: number;
  /** Blocks dropped because the guest wrote their code page. */
  invalidatedBlocks: number;
  /** Guest writes to a page holding translated code. */
  codeWrites: number;
}

export class TranslationCache {
  readonly stats: TranslationStats = { blocks: 0, instructions: 0, chainedEntries: 0, invalidatedBlocks: 0, codeWrites: 0 };
  private readonly blocks = new Map<number, Block>();
  /** Blocks by the frames their code comes from, for invalidation. */
  private readonly byFrame = new Map<number, Set<number>>();

  get size(): number { return this.blocks.size; }
  has(phys: number): boolean { return this.blocks.has(phys); }
  get(phys: number): Block | undefined { return this.blocks.get(phys); }
  /** Frames holding translated code (to write-protect them). */
  codeFrames(): IterableIterator<number> { return this.byFrame.keys(); }

  /**
   * Translates the block at guest-physical `phys` (linear `lin`) from `bytes` (the guest's
   * code from `phys` on, possibly across a page into `nextFrame`), in 16- or 32-bit mode.
   */
  translate(phys: number, lin: number, bytes: Uint8Array, bitness: 16 | 32, nextFrame: number): Block {
    const { Decoder, DecoderOptions, FlowControl } = load();
    const decoder = new Decoder(bitness, bytes, DecoderOptions.None);
    decoder.ip = BigInt(lin >>> 0);
    let n = 0, len = 0;
    try {
      while (n < MAX_BLOCK_INSTRUCTIONS && decoder.canDecode) {
        const instr = decoder.decode();
        try {
          if (instr.isInvalid) { if (n === 0) n = 1; break; }
          n++;
          len += instr.length;
          if (instr.flowControl !== FlowControl.Next) break;
        } finally {
          instr.free();
        }
      }
    } finally {
      decoder.free();
    }
    if (n === 0) n = 1;
    const frames = [(phys & ~0xfff) >>> 0];
    if ((phys & 0xfff) + len > 4096 && nextFrame >= 0) frames.push(nextFrame);
    const b: Block = { phys, instructions: n, frames };
    this.blocks.set(phys, b);
    for (const f of frames) {
      let s = this.byFrame.get(f);
      if (s === undefined) { s = new Set(); this.byFrame.set(f, s); }
      s.add(phys);
    }
    this.stats.blocks++;
    this.stats.instructions += n;
    return b;
  }

  /** Drops every block with code in `frame`; returns how many. */
  invalidateFrame(frame: number): number {
    const s = this.byFrame.get(frame);
    if (s === undefined) return 0;
    this.byFrame.delete(frame);
    let n = 0;
    for (const phys of s) {
      const b = this.blocks.get(phys);
      if (b === undefined) continue;
      this.blocks.delete(phys);
      n++;
      for (const f of b.frames) if (f !== frame) this.byFrame.get(f)?.delete(phys);
    }
    this.stats.invalidatedBlocks += n;
    return n;
  }

  /** Drops one block (adaptive retranslation replaces it). */
  drop(phys: number): void {
    const b = this.blocks.get(phys);
    if (b === undefined) return;
    this.blocks.delete(phys);
    for (const f of b.frames) {
      const s = this.byFrame.get(f);
      if (s === undefined) continue;
      s.delete(phys);
      if (s.size === 0) this.byFrame.delete(f);
    }
  }

  /** The block containing guest-physical `phys`, if any (linear search: slow path only). */
  blockAt(phys: number): Block | undefined {
    const s = this.byFrame.get((phys & ~0xfff) >>> 0);
    if (s === undefined) return undefined;
    let best: Block | undefined;
    for (const start of s) {
      if (start <= phys && (best === undefined || start > best.phys)) best = this.blocks.get(start);
    }
    return best;
  }
}
