/**
 * Guest physical memory: one flat RAM array. Addresses past the end of RAM read as all-ones
 * (an open bus) and writes to them are dropped, as on a PC with nothing decoded there.
 */
export class PhysicalMemory {
  /** RAM bytes (guest RAM, then the monitor's area); index = physical address. */
  readonly u8: Uint8Array;
  /** The same RAM as 32-bit words, for aligned accesses. */
  readonly i32: Int32Array;
  readonly size: number;
  /**
   * The guest's RAM: [0, guestSize). Above it, up to `size`, lies memory a virtual machine
   * monitor owns (shadow page tables, its descriptor tables): the loaders and the boot
   * information see only `guestSize`, and no guest-reachable mapping points above it.
   */
  readonly guestSize: number;

  constructor(sizeBytes: number, monitorBytes = 0) {
    if (sizeBytes <= 0 || sizeBytes % 4096 !== 0) {
      throw new RangeError(`memory size must be a positive multiple of 4096 bytes, got ${sizeBytes}`);
    }
    if (monitorBytes < 0 || monitorBytes % 4096 !== 0) {
      throw new RangeError(`monitor memory size must be a non-negative multiple of 4096 bytes, got ${monitorBytes}`);
    }
    this.guestSize = sizeBytes;
    sizeBytes += monitorBytes;
    this.size = sizeBytes;
    this.u8 = new Uint8Array(sizeBytes);
    this.i32 = new Int32Array(this.u8.buffer);
  }

  /** The guest's RAM alone, as the image loaders and the boot information see it. */
  guestView(): { readonly size: number; readonly u8: Uint8Array } {
    return { size: this.guestSize, u8: this.u8.subarray(0, this.guestSize) };
  }

  read8(addr: number): number {
    return addr < this.size ? this.u8[addr]! : 0xff;
  }

  read16(addr: number): number {
    if (addr + 1 < this.size) return this.u8[addr]! | (this.u8[addr + 1]! << 8);
    return this.read8(addr) | (this.read8(addr + 1) << 8);
  }

  /** Returns a signed int32. */
  read32(addr: number): number {
    if ((addr & 3) === 0 && addr < this.size) return this.i32[addr >>> 2]!;
    if (addr + 3 < this.size) {
      const m = this.u8;
      return m[addr]! | (m[addr + 1]! << 8) | (m[addr + 2]! << 16) | (m[addr + 3]! << 24);
    }
    return this.read16(addr) | (this.read16(addr + 2) << 16);
  }

  write8(addr: number, v: number): void {
    if (addr < this.size) this.u8[addr] = v;
  }

  write16(addr: number, v: number): void {
    if (addr + 1 < this.size) {
      this.u8[addr] = v;
      this.u8[addr + 1] = v >> 8;
    } else {
      this.write8(addr, v);
      this.write8(addr + 1, v >> 8);
    }
  }

  write32(addr: number, v: number): void {
    if ((addr & 3) === 0 && addr < this.size) {
      this.i32[addr >>> 2] = v;
    } else if (addr + 3 < this.size) {
      const m = this.u8;
      m[addr] = v;
      m[addr + 1] = v >> 8;
      m[addr + 2] = v >> 16;
      m[addr + 3] = v >> 24;
    } else {
      this.write16(addr, v);
      this.write16(addr + 2, v >>> 16);
    }
  }
}
