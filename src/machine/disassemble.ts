import { createRequire } from 'node:module';

type Iced = typeof import('iced-x86');
let iced: Iced | null = null;

/** iced-x86 is a wasm module: loaded on first use only (never on the hot path). */
function load(): Iced {
  if (iced === null) iced = createRequire(import.meta.url)('iced-x86') as Iced;
  return iced;
}

/** One decoded instruction: its bytes and its NASM-syntax text. */
export interface Disassembly {
  readonly text: string;
  /** Length in bytes, or 0 when the bytes are not a valid encoding. */
  readonly length: number;
}

/**
 * Disassembles the instruction at the start of `bytes` (as at linear `address`, for
 * relative branch targets) in 16- or 32-bit mode. Every wasm object is freed.
 */
export function disassemble(bytes: ArrayLike<number>, address: number, bitness: 16 | 32): Disassembly {
  const { Decoder, DecoderOptions, Formatter, FormatterSyntax } = load();
  const decoder = new Decoder(bitness, Uint8Array.from(bytes), DecoderOptions.None);
  decoder.ip = BigInt(address >>> 0);
  const instr = decoder.decode();
  const formatter = new Formatter(FormatterSyntax.Nasm);
  try {
    if (instr.isInvalid) return { text: '(invalid encoding)', length: 0 };
    return { text: formatter.format(instr), length: instr.length };
  } finally {
    formatter.free();
    instr.free();
    decoder.free();
  }
}
