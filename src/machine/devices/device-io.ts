/**
 * What the DMA-capable device models (block-device.ts, nic.ts) share: the guest-memory
 * interface their DMA goes through, the seam through which every nondeterministic input
 * enters a device, and the seeded random source of their timing and traffic models.
 * See docs/devices.md.
 */
import seedrandom from 'seedrandom';
import type { Clock } from '../clock.js';
import type { DualPic } from './pic.js';
import type { PhysicalMemory } from '../memory.js';
import type { PortBus } from '../port-bus.js';

/**
 * Guest-physical memory as a bus master sees it. Every DMA of the device models goes
 * through one of these, so a VMM can substitute a translating, checking one (guest-physical
 * to machine frames, ownership checks: the isolation property) without touching a device.
 */
export interface DmaMemory {
  /**
   * Copies guest-physical `[addr, addr + dst.length)` into `dst`. Returns false when any
   * byte is outside memory (a PCI master abort); such bytes read as 0xFF.
   */
  read(addr: number, dst: Uint8Array): boolean;
  /** Copies `src` to guest-physical `addr`; false when any byte is outside memory (dropped). */
  write(addr: number, src: Uint8Array): boolean;
}

/** DMA straight into the machine's RAM (native mode). Addresses are 32-bit physical. */
export function ramDma(mem: PhysicalMemory): DmaMemory {
  const u8 = mem.u8;
  const size = mem.size;
  return {
    read(addr: number, dst: Uint8Array): boolean {
      const a = addr >>> 0;
      const n = dst.length;
      if (a + n <= size) { dst.set(u8.subarray(a, a + n)); return true; }
      for (let i = 0; i < n; i++) dst[i] = a + i < size ? u8[a + i]! : 0xff;
      return false;
    },
    write(addr: number, src: Uint8Array): boolean {
      const a = addr >>> 0;
      const n = src.length;
      if (a + n <= size) { u8.set(src, a); return true; }
      for (let i = 0; i < n && a + i < size; i++) u8[a + i] = src[i]!;
      return false;
    },
  };
}

/**
 * One nondeterministic input to a device: something the guest observes that is not a pure
 * function of what the guest has done so far.
 *  - `block-complete`: the block request numbered `seq` (the device's submission count,
 *    from 1) completes now; its data is the disk image's (in the trace header), so no bytes.
 *  - `net-rx`: frame number `seq` (the link's arrival count, from 1) arrives now; `data` is
 *    the frame (Ethernet header and payload, no FCS).
 */
export interface DeviceInput {
  readonly device: string;
  readonly kind: 'block-complete' | 'net-rx';
  readonly seq: number;
  readonly data: Uint8Array | null;
}

/**
 * Where a device's inputs come from. `model`: the device's own seeded timing and traffic
 * models, timed by the clock (recording, or a plain run). `external`: the models are off
 * and every input is handed in through `applyInput` by someone else (a trace replayer),
 * at the logical position it was recorded at.
 */
export type InputSource = 'model' | 'external';

/** Observer of every input as it is applied (a trace recorder). */
export type InputObserver = (input: DeviceInput) => void;

/** Raised when an input handed in does not fit the device's state (a replay divergence). */
export class InputMismatchError extends Error {
  constructor(readonly input: DeviceInput, detail: string) {
    super(`${input.device}: ${input.kind} #${input.seq}: ${detail}`);
    this.name = 'InputMismatchError';
  }
}

/** The parts of a machine a device is attached to (a `Machine` has all of them). */
export interface DeviceHost {
  readonly io: PortBus;
  readonly mem: PhysicalMemory;
  readonly clock: Clock;
  readonly pic: DualPic;
}

/**
 * A seeded pseudo-random source (seedrandom's Alea). The only randomness of the device
 * models; the seed is explicit and part of the configuration, so a run is reproducible.
 */
export class SeededRandom {
  private readonly prng: seedrandom.PRNG;
  constructor(readonly seed: number | string) {
    this.prng = seedrandom.alea(String(seed));
  }

  /** Uniform in [0, 1), 53-bit. */
  double(): number { return this.prng.double(); }

  /** Uniform integer in [0, n) (n ≥ 1). */
  below(n: number): number { return Math.floor(this.prng.double() * n); }

  /** Uniform integer in [lo, hi]. */
  between(lo: number, hi: number): number { return lo + this.below(hi - lo + 1); }

  /** A byte. */
  byte(): number { return this.prng.int32() & 0xff; }

  /**
   * An exponentially distributed integer with the given mean (≥ 1): Poisson-process
   * inter-arrival times. Math.log is V8's fdlibm port, bit-reproducible across platforms.
   */
  exponential(mean: number): number {
    const u = this.prng.double();
    return Math.max(1, Math.floor(-Math.log(1 - u) * mean));
  }
}
