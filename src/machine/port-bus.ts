/** A device's handler for reads of one I/O port at one width. */
export type PortReader = (port: number) => number;
/** A device's handler for writes of one I/O port at one width. */
export type PortWriter = (port: number, value: number) => void;

/**
 * The x86 I/O port space (64 Ki ports). Devices register byte handlers; 16- and 32-bit
 * accesses go to a wide handler when one is registered, else they are split into byte
 * accesses (as the ISA bus does). Unclaimed ports read as all-ones and ignore writes.
 */
export class PortBus {
  private readonly r8: (PortReader | undefined)[] = new Array(65536);
  private readonly w8: (PortWriter | undefined)[] = new Array(65536);
  private readonly r16 = new Map<number, PortReader>();
  private readonly w16 = new Map<number, PortWriter>();
  private readonly r32 = new Map<number, PortReader>();
  private readonly w32 = new Map<number, PortWriter>();
  /** Count of port accesses, for the run record. */
  accesses = 0;

  registerRead8(port: number, fn: PortReader): void { this.r8[port & 0xffff] = fn; }
  registerWrite8(port: number, fn: PortWriter): void { this.w8[port & 0xffff] = fn; }
  registerRead16(port: number, fn: PortReader): void { this.r16.set(port & 0xffff, fn); }
  registerWrite16(port: number, fn: PortWriter): void { this.w16.set(port & 0xffff, fn); }
  registerRead32(port: number, fn: PortReader): void { this.r32.set(port & 0xffff, fn); }
  registerWrite32(port: number, fn: PortWriter): void { this.w32.set(port & 0xffff, fn); }

  in8(port: number): number {
    this.accesses++;
    const fn = this.r8[port & 0xffff];
    return fn ? fn(port & 0xffff) & 0xff : 0xff;
  }

  in16(port: number): number {
    const p = port & 0xffff;
    const fn = this.r16.get(p);
    if (fn) { this.accesses++; return fn(p) & 0xffff; }
    return this.in8(p) | (this.in8((p + 1) & 0xffff) << 8);
  }

  in32(port: number): number {
    const p = port & 0xffff;
    const fn = this.r32.get(p);
    if (fn) { this.accesses++; return fn(p) | 0; }
    return (this.in16(p) | (this.in16((p + 2) & 0xffff) << 16)) | 0;
  }

  out8(port: number, value: number): void {
    this.accesses++;
    const fn = this.w8[port & 0xffff];
    if (fn) fn(port & 0xffff, value & 0xff);
  }

  out16(port: number, value: number): void {
    const p = port & 0xffff;
    const fn = this.w16.get(p);
    if (fn) { this.accesses++; fn(p, value & 0xffff); return; }
    this.out8(p, value);
    this.out8((p + 1) & 0xffff, value >>> 8);
  }

  out32(port: number, value: number): void {
    const p = port & 0xffff;
    const fn = this.w32.get(p);
    if (fn) { this.accesses++; fn(p, value | 0); return; }
    this.out16(p, value);
    this.out16((p + 2) & 0xffff, value >>> 16);
  }
}
