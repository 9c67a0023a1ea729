import { ImageError } from './elf.js';
import type { GuestRam } from './multiboot.js';

/** How a flat binary starts. */
export interface FlatOptions {
  /** Physical load address. */
  readonly loadAddress: number;
  /** Physical entry point (default: the load address). */
  readonly entry?: number;
}

/** What the flat loader did. */
export interface FlatLoad {
  readonly entry: number;
  readonly start: number;
  readonly end: number;
}

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/**
 * Copies a raw binary into RAM at `loadAddress`. The entry must lie inside the loaded bytes;
 * the machine decides the CPU mode (flat 32-bit protected mode, or real mode).
 */
export function loadFlat(ram: GuestRam, bytes: Uint8Array, file: string, options: FlatOptions): FlatLoad {
  const start = options.loadAddress >>> 0;
  const end = start + bytes.length;
  const entry = (options.entry ?? start) >>> 0;
  if (bytes.length === 0) throw new ImageError(file, 'empty file: nothing to load');
  if (end > ram.size) {
    throw new ImageError(file, `flat image ${hex(start)}-${hex(end - 1)} (${bytes.length} bytes) lies outside RAM (${ram.size / 1048576} MiB: 0x0-${hex(ram.size - 1)})`);
  }
  if (entry < start || entry >= end) {
    throw new ImageError(file, `entry ${hex(entry)} is outside the loaded image ${hex(start)}-${hex(end - 1)}`);
  }
  ram.u8.set(bytes, start);
  return { entry, start, end };
}
