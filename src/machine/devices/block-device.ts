/**
 * The emulated block device: an ATA hard disk, master on the primary IDE channel of an
 * Intel PIIX-style controller (command block 0x1F0–0x1F7, control block 0x3F6, IRQ 14),
 * with PIO and bus-master DMA through the PIIX's BMIDE registers and a physical region
 * descriptor (PRD) table in guest memory (SFF-8038i / PIIX datasheet). Chosen because it
 * is the simplest real disk interface with DMA descriptors, every PC OS has a driver for it,
 * and QEMU emulates the same thing (piix3-ide), so register traffic can be compared.
 *
 * Two layers: `Disk` is the device model proper (image, request queue, seeded latency,
 * completions as inputs), which a paravirtual block back end can drive too; `AtaController`
 * is the register interface on top of it. See docs/devices.md.
 */
import type { Clock } from '../clock.js';
import type { PhysicalMemory } from '../memory.js';
import type { PortBus } from '../port-bus.js';
import {
  InputMismatchError, SeededRandom,
  type DeviceHost, type DeviceInput, type DmaMemory, type InputObserver, type InputSource,
} from './device-io.js';
import { mutant } from '../../vmm/mutants.js';

/** Primary channel command block, control block (alternate status / device control), IRQ. */
export const ATA_PRIMARY_BASE = 0x1f0;
export const ATA_PRIMARY_CONTROL = 0x3f6;
export const ATA_PRIMARY_IRQ = 14;
/**
 * The PIIX bus-master IDE (BMIDE) register block. On real hardware PCI BAR4 places it;
 * virtlab has no PCI configuration space, so it sits where SeaBIOS puts it under QEMU's
 * `pc` machine (0xC040; primary channel at +0, secondary at +8).
 */
export const BMIDE_BASE = 0xc040;
export const SECTOR_SIZE = 512;

/** ATA status register bits. */
export const ATA_SR = { BSY: 0x80, DRDY: 0x40, DF: 0x20, DSC: 0x10, DRQ: 0x08, CORR: 0x04, IDX: 0x02, ERR: 0x01 } as const;
/** ATA error register bits. */
export const ATA_ER = { UNC: 0x40, IDNF: 0x10, ABRT: 0x04, AMNF: 0x01 } as const;
/** Device control register bits (port 0x3F6, write). */
export const ATA_DC = { SRST: 0x04, NIEN: 0x02 } as const;
/** ATA commands implemented (ATA/ATAPI-6, 28-bit LBA or CHS). */
export const ATA_CMD = {
  READ_SECTORS: 0x20, READ_SECTORS_NR: 0x21, WRITE_SECTORS: 0x30, WRITE_SECTORS_NR: 0x31,
  READ_VERIFY: 0x40, READ_VERIFY_NR: 0x41, EXECUTE_DIAGNOSTIC: 0x90,
  READ_DMA: 0xc8, READ_DMA_NR: 0xc9, WRITE_DMA: 0xca, WRITE_DMA_NR: 0xcb,
  CHECK_POWER_MODE: 0xe5, FLUSH_CACHE: 0xe7, IDENTIFY: 0xec, SET_FEATURES: 0xef,
} as const;
/** BMIDE command register bits (BMICOM, base + 0). */
export const BM_CMD = { START: 0x01, WRITE_TO_MEMORY: 0x08 } as const;
/** BMIDE status register bits (BMISTA, base + 2). */
export const BM_STATUS = { ACTIVE: 0x01, ERROR: 0x02, INTERRUPT: 0x04, DRIVE0_DMA: 0x20, DRIVE1_DMA: 0x40 } as const;

/** Completion latency of a request, in CPU cycles: base + perSector × sectors + U[0, jitter]. */
export interface LatencyModel {
  readonly baseCycles: number;
  readonly perSectorCycles: number;
  readonly jitterCycles: number;
}

/** Defaults: at 1 GHz, 50 µs + 2 µs/sector + up to 20 µs (a fast disk with a warm cache). */
export const DEFAULT_DISK_LATENCY: LatencyModel = { baseCycles: 50_000, perSectorCycles: 2_000, jitterCycles: 20_000 };

export interface DiskOptions {
  /** The disk contents (used in place: writes modify it). Its length must be a multiple of 512. */
  readonly image?: Uint8Array;
  /** Size in sectors when no image is given (a zero-filled disk). Default 2048 (1 MiB). */
  readonly sectors?: number;
  /** Seed of the latency jitter. */
  readonly seed: number | string;
  readonly latency?: Partial<LatencyModel>;
  /** Name in inputs (default "disk0"). */
  readonly name?: string;
}

export type DiskOp = 'read' | 'write' | 'verify';

/** One request in the disk's queue. */
export interface DiskRequest {
  /** Submission number, from 1: the `seq` of its completion input. */
  readonly seq: number;
  readonly op: DiskOp;
  readonly lba: number;
  readonly count: number;
  /** The cycle at which the latency model completes it (meaningless for external inputs). */
  readonly dueCycle: number;
}

/** Counters of the disk model (monotonic). */
export interface DiskCounters {
  requests: number;
  completions: number;
  cancelled: number;
  sectorsRead: number;
  sectorsWritten: number;
}

/**
 * The disk model: a sector image, a FIFO request queue served one at a time with a seeded
 * latency, and completion as the one nondeterministic input. Front ends (the ATA register
 * interface here, a blkif back end later) submit requests, then move the data when the
 * request completes, through `readSectors` / `writeSectors`.
 */
export class Disk {
  readonly name: string;
  readonly image: Uint8Array;
  readonly sectors: number;
  readonly latency: LatencyModel;
  /** `model`: completions come from the latency model; `external`: only from `applyInput`. */
  inputSource: InputSource = 'model';
  /** Sees every input as it is applied (a recorder). */
  onInput: InputObserver | null = null;
  readonly counters: DiskCounters = { requests: 0, completions: 0, cancelled: 0, sectorsRead: 0, sectorsWritten: 0 };
  private readonly rng: SeededRandom;
  private readonly clock: Clock;
  private readonly timer: number;
  private queue: { req: DiskRequest; done: (req: DiskRequest) => void }[] = [];
  private submitted = 0;
  private lastDue = 0;

  constructor(clock: Clock, options: DiskOptions) {
    this.clock = clock;
    this.name = options.name ?? 'disk0';
    if (options.image !== undefined) {
      if (options.image.length === 0 || options.image.length % SECTOR_SIZE !== 0) {
        throw new RangeError(`disk image size must be a positive multiple of ${SECTOR_SIZE} bytes, got ${options.image.length}`);
      }
      this.image = options.image;
    } else {
      const n = options.sectors ?? 2048;
      if (!Number.isInteger(n) || n < 1 || n > 0x0fffffff) throw new RangeError(`disk size must be 1..${0x0fffffff} sectors, got ${n}`);
      this.image = new Uint8Array(n * SECTOR_SIZE);
    }
    this.sectors = this.image.length / SECTOR_SIZE;
    if (this.sectors > 0x0fffffff) throw new RangeError('disk image larger than 28-bit LBA allows (128 GiB)');
    const l = { ...DEFAULT_DISK_LATENCY, ...options.latency };
    for (const [k, v] of Object.entries(l)) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`disk latency ${k} must be a non-negative integer (cycles), got ${v}`);
    }
    this.latency = l;
    this.rng = new SeededRandom(options.seed);
    this.timer = clock.addTimer(() => this.onTimer());
  }

  /** Requests submitted and not yet completed or cancelled. */
  get pending(): number { return this.queue.length; }

  /** Queues a request; `done` runs when it completes (from the clock, or `applyInput`). */
  submit(op: DiskOp, lba: number, count: number, done: (req: DiskRequest) => void): DiskRequest {
    if (lba < 0 || count < 1 || lba + count > this.sectors) throw new RangeError(`${this.name}: request ${lba}+${count} outside the disk (${this.sectors} sectors)`);
    const l = this.latency;
    // Always draw the jitter, in external mode too, so the generator's sequence is the same.
    const jitter = l.jitterCycles > 0 ? this.rng.below(l.jitterCycles + 1) : 0;
    const start = Math.max(this.clock.now, this.lastDue);
    const dueCycle = start + l.baseCycles + l.perSectorCycles * count + jitter;
    this.lastDue = dueCycle;
    const req: DiskRequest = { seq: ++this.submitted, op, lba, count, dueCycle };
    this.queue.push({ req, done });
    this.counters.requests++;
    this.rearm();
    return req;
  }

  /** Withdraws a queued request (a device reset): it will never complete. */
  cancel(req: DiskRequest): void {
    const i = this.queue.findIndex((q) => q.req === req);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.counters.cancelled++;
    this.rearm();
  }

  /**
   * The one way an input enters the disk: completes the oldest pending request, which must
   * be number `input.seq` (else InputMismatchError: the replay has diverged).
   */
  applyInput(input: DeviceInput): void {
    const head = this.queue[0];
    if (input.kind !== 'block-complete') throw new InputMismatchError(input, 'not a block-device input');
    if (head === undefined) throw new InputMismatchError(input, 'no request is pending');
    if (head.req.seq !== input.seq) throw new InputMismatchError(input, `the oldest pending request is #${head.req.seq}`);
    this.onInput?.(input);
    this.queue.shift();
    this.counters.completions++;
    head.done(head.req);
    this.rearm();
  }

  /** Copies sectors out of the image. */
  readSectors(lba: number, count: number, dst: Uint8Array, dstOffset = 0): void {
    dst.set(this.image.subarray(lba * SECTOR_SIZE, (lba + count) * SECTOR_SIZE), dstOffset);
    this.counters.sectorsRead += count;
  }

  /** Copies sectors into the image. */
  writeSectors(lba: number, src: Uint8Array, srcOffset = 0, count = (src.length - srcOffset) / SECTOR_SIZE): void {
    this.image.set(src.subarray(srcOffset, srcOffset + count * SECTOR_SIZE), lba * SECTOR_SIZE);
    this.counters.sectorsWritten += count;
  }

  private rearm(): void {
    const head = this.queue[0];
    if (head === undefined || this.inputSource !== 'model') this.clock.disarm(this.timer);
    else this.clock.arm(this.timer, head.req.dueCycle);
  }

  private onTimer(): void {
    const head = this.queue[0];
    if (head === undefined || this.inputSource !== 'model') return;
    this.applyInput({ device: this.name, kind: 'block-complete', seq: head.req.seq, data: null });
  }
}

/** Counters of the ATA interface (monotonic). */
export interface AtaCounters {
  /** Accesses to the command, control and bus-master registers (a data-port word or dword counts once). */
  registerAccesses: number;
  commands: number;
  /** Commands that ended with ERR set. */
  errors: number;
  /** Rising edges of INTRQ (interrupts raised). */
  interrupts: number;
  /** Bytes moved by bus-master DMA (both directions). */
  dmaBytes: number;
  /** Bytes moved through the data port. */
  pioBytes: number;
  /** DMA transfers that hit a PRD-table problem or a master abort (BMISTA.ERROR). */
  dmaErrors: number;
  /** DMA accesses (PRD entries, data regions) that named memory outside the guest's RAM, refused (master aborts). */
  dmaOutsideRam: number;
}

/**
 * Bus-master access to the guest's RAM only, [0, mem.guestSize): a device model never reads
 * or writes monitor memory above it, whatever address the guest programs. An access
 * reaching past it is a master abort, as on a PC where nothing answers the address: reads
 * give all ones there, writes go no further than the guest's RAM, and the call returns false
 * so the device reports its error (`onRefused` counts it).
 * The verifier's mutant `dma-no-bound` (src/vmm/mutants.ts) bounds it by the whole of
 * physical memory instead (no IOMMU-style bound); it is read here, when the device is
 * attached, never per access.
 */
export function guestRamDma(mem: PhysicalMemory, onRefused: () => void): DmaMemory {
  const u8 = mem.u8;
  const size = mutant('dma-no-bound') ? u8.length : mem.guestSize;
  return {
    read(addr: number, dst: Uint8Array): boolean {
      const a = addr >>> 0, n = dst.length;
      if (a + n <= size) { dst.set(u8.subarray(a, a + n)); return true; }
      for (let i = 0; i < n; i++) dst[i] = a + i < size ? u8[a + i]! : 0xff;
      onRefused();
      return false;
    },
    write(addr: number, src: Uint8Array): boolean {
      const a = addr >>> 0, n = src.length;
      if (a + n <= size) { u8.set(src, a); return true; }
      for (let i = 0; i < n && a + i < size; i++) u8[a + i] = src[i]!;
      onRefused();
      return false;
    },
  };
}

export interface AtaOptions {
  /** Bus-master register base (default BMIDE_BASE). */
  readonly bmBase?: number;
}

type Phase = 'idle' | 'wait' | 'pio-in' | 'pio-out' | 'dma';

/**
 * The primary IDE channel with one ATA disk (master; no slave) and its bus-master DMA
 * engine. Register semantics follow ATA/ATAPI-6 and the PIIX BMIDE interface; where those
 * leave room, QEMU's hw/ide is the reference. See docs/devices.md for the subset.
 */
export class AtaController {
  // Command block registers (the device's shadow registers).
  error = 0x01;
  features = 0;
  sectorCount = 1;
  lbaLow = 1;
  lbaMid = 0;
  lbaHigh = 0;
  device = 0xa0;
  status: number = ATA_SR.DRDY | ATA_SR.DSC;
  deviceControl = 0;
  // Bus-master registers.
  bmCommand = 0;
  bmStatus: number = BM_STATUS.DRIVE0_DMA;
  prdTable = 0;
  /** INTRQ pending inside the device (the line is this and not nIEN). */
  intrq = false;
  readonly counters: AtaCounters = { registerAccesses: 0, commands: 0, errors: 0, interrupts: 0, dmaBytes: 0, pioBytes: 0, dmaErrors: 0, dmaOutsideRam: 0 };
  /** Cylinders, heads, sectors per track reported by IDENTIFY and used for CHS addressing. */
  readonly geometry: { readonly cylinders: number; readonly heads: number; readonly sectorsPerTrack: number };

  private phase: Phase = 'idle';
  private command = 0;
  private cmdLba = 0;
  private cmdCount = 0;
  /** Sectors of the current command already moved. */
  private done = 0;
  private readonly buffer = new Uint8Array(SECTOR_SIZE);
  private bufPos = 0;
  private request: DiskRequest | null = null;
  private dmaRequested = false;
  private line = false;
  private scratch = new Uint8Array(0);
  private readonly prd = new Uint8Array(8);

  constructor(
    readonly disk: Disk,
    private readonly dma: DmaMemory,
    private readonly setIrq: (level: boolean) => void,
  ) {
    const total = disk.sectors;
    const heads = 16, spt = 63;
    this.geometry = { cylinders: Math.max(1, Math.min(16383, Math.floor(total / (heads * spt)))), heads, sectorsPerTrack: spt };
  }

  /** Registers the command block, control block and bus-master ports. */
  attach(io: PortBus, base = ATA_PRIMARY_BASE, control = ATA_PRIMARY_CONTROL, bmBase = BMIDE_BASE): void {
    io.registerRead16(base, () => this.readData16());
    io.registerWrite16(base, (_p, v) => this.writeData16(v));
    io.registerRead32(base, () => this.readData32());
    io.registerWrite32(base, (_p, v) => this.writeData32(v));
    // Byte access to the data register is not a defined transfer: reads float, writes drop.
    io.registerRead8(base, () => { this.counters.registerAccesses++; return 0xff; });
    io.registerWrite8(base, () => { this.counters.registerAccesses++; });
    for (let r = 1; r < 8; r++) {
      io.registerRead8(base + r, () => this.readRegister(r));
      io.registerWrite8(base + r, (_p, v) => this.writeRegister(r, v));
    }
    io.registerRead8(control, () => this.readAltStatus());
    io.registerWrite8(control, (_p, v) => this.writeDeviceControl(v));
    for (let r = 0; r < 8; r++) {
      io.registerRead8(bmBase + r, () => this.readBm(r));
      io.registerWrite8(bmBase + r, (_p, v) => this.writeBm(r, v));
    }
    io.registerRead32(bmBase + 4, () => { this.counters.registerAccesses++; return this.prdTable | 0; });
    io.registerWrite32(bmBase + 4, (_p, v) => { this.counters.registerAccesses++; this.prdTable = (v & ~3) >>> 0; });
  }

  /** Power-on / hardware reset of the channel (device and bus master). */
  reset(): void {
    this.softReset();
    this.device = 0xa0;
    this.features = 0;
    this.deviceControl = 0;
    this.bmCommand = 0;
    this.bmStatus = BM_STATUS.DRIVE0_DMA;
    this.prdTable = 0;
    this.setIntrq(false);
  }

  private get slaveSelected(): boolean { return (this.device & 0x10) !== 0; }

  // ---- register access -------------------------------------------------------------

  /** Read of command-block register 1–7. */
  readRegister(r: number): number {
    this.counters.registerAccesses++;
    // No slave: with it selected, the master does not drive the bus (QEMU reads 0).
    if (this.slaveSelected) return 0;
    switch (r) {
      case 1: return this.error;
      case 2: return this.sectorCount;
      case 3: return this.lbaLow;
      case 4: return this.lbaMid;
      case 5: return this.lbaHigh;
      case 6: return this.device;
      default:
        // Reading the status register acknowledges the interrupt (ATA: clears INTRQ).
        this.setIntrq(false);
        return this.status;
    }
  }

  /** Write of command-block register 1–7. */
  writeRegister(r: number, v: number): void {
    this.counters.registerAccesses++;
    switch (r) {
      case 1: this.features = v; return;
      case 2: this.sectorCount = v; return;
      case 3: this.lbaLow = v; return;
      case 4: this.lbaMid = v; return;
      case 5: this.lbaHigh = v; return;
      case 6: this.device = v | 0xa0; return; // bits 7 and 5 are obsolete, read as 1
      default: this.writeCommand(v); return;
    }
  }

  /** Alternate status (0x3F6 read): the status without acknowledging the interrupt. */
  readAltStatus(): number {
    this.counters.registerAccesses++;
    return this.slaveSelected ? 0 : this.status;
  }

  /** Device control (0x3F6 write): nIEN masks INTRQ; SRST held then released resets the device. */
  writeDeviceControl(v: number): void {
    this.counters.registerAccesses++;
    const old = this.deviceControl;
    this.deviceControl = v & (ATA_DC.SRST | ATA_DC.NIEN);
    if ((v & ATA_DC.SRST) !== 0) {
      this.softReset();
      this.status = ATA_SR.BSY; // busy for as long as SRST is held
    } else if ((old & ATA_DC.SRST) !== 0) {
      this.status = ATA_SR.DRDY | ATA_SR.DSC;
    }
    this.updateLine();
  }

  readData16(): number {
    this.counters.registerAccesses++;
    if (this.phase !== 'pio-in' || this.slaveSelected) return 0xffff;
    const b = this.buffer, p = this.bufPos;
    const v = b[p]! | (b[p + 1]! << 8);
    this.bufPos = p + 2;
    this.counters.pioBytes += 2;
    if (this.bufPos === SECTOR_SIZE) this.pioInSectorDone();
    return v;
  }

  readData32(): number {
    if (this.phase !== 'pio-in' || this.slaveSelected) { this.counters.registerAccesses++; return -1; }
    const lo = this.readData16();
    this.counters.registerAccesses--; // one dword access
    const hi = this.readData16();
    return (lo | (hi << 16)) | 0;
  }

  writeData16(v: number): void {
    this.counters.registerAccesses++;
    if (this.phase !== 'pio-out' || this.slaveSelected) return;
    this.buffer[this.bufPos] = v;
    this.buffer[this.bufPos + 1] = v >> 8;
    this.bufPos += 2;
    this.counters.pioBytes += 2;
    if (this.bufPos === SECTOR_SIZE) this.pioOutSectorDone();
  }

  writeData32(v: number): void {
    this.writeData16(v & 0xffff);
    this.counters.registerAccesses--;
    this.writeData16(v >>> 16);
  }

  /** Read of bus-master register `r` (0–7 of the primary channel's block). */
  readBm(r: number): number {
    this.counters.registerAccesses++;
    switch (r) {
      case 0: return this.bmCommand;
      case 2: return this.bmStatus;
      case 4: case 5: case 6: case 7: return (this.prdTable >>> ((r - 4) * 8)) & 0xff;
      default: return 0;
    }
  }

  writeBm(r: number, v: number): void {
    this.counters.registerAccesses++;
    switch (r) {
      case 0: {
        const wasStarted = (this.bmCommand & BM_CMD.START) !== 0;
        this.bmCommand = v & (BM_CMD.START | BM_CMD.WRITE_TO_MEMORY);
        const started = (this.bmCommand & BM_CMD.START) !== 0;
        if (started && !wasStarted) {
          this.bmStatus |= BM_STATUS.ACTIVE;
          if (this.phase === 'dma' && this.dmaRequested && this.request === null) this.startDma();
        } else if (!started && wasStarted) {
          // Stopping the engine: a transfer in flight will find it stopped and fail.
          this.bmStatus &= ~BM_STATUS.ACTIVE;
        }
        return;
      }
      case 2:
        // ERROR and INTERRUPT are write-1-to-clear; the drive DMA-capable bits are R/W.
        this.bmStatus = (this.bmStatus & ~(v & (BM_STATUS.ERROR | BM_STATUS.INTERRUPT)) & ~(BM_STATUS.DRIVE0_DMA | BM_STATUS.DRIVE1_DMA))
          | (v & (BM_STATUS.DRIVE0_DMA | BM_STATUS.DRIVE1_DMA));
        return;
      case 4: case 5: case 6: case 7: {
        const shift = (r - 4) * 8;
        this.prdTable = (((this.prdTable & ~(0xff << shift)) | (v << shift)) & ~3) >>> 0;
        return;
      }
      default: return;
    }
  }

  // ---- commands ----------------------------------------------------------------------

  private writeCommand(cmd: number): void {
    // An absent slave ignores commands; a busy device too (the host must wait for !BSY).
    if (this.slaveSelected) return;
    if ((this.status & (ATA_SR.BSY | ATA_SR.DRQ)) !== 0 || (this.deviceControl & ATA_DC.SRST) !== 0) return;
    this.counters.commands++;
    this.command = cmd;
    this.error = 0;
    this.setIntrq(false);
    const C = ATA_CMD;
    switch (cmd) {
      case C.READ_SECTORS: case C.READ_SECTORS_NR:
      case C.READ_VERIFY: case C.READ_VERIFY_NR:
      case C.READ_DMA: case C.READ_DMA_NR: {
        if (!this.decodeAddress()) return;
        this.status = ATA_SR.BSY;
        const dma = cmd === C.READ_DMA || cmd === C.READ_DMA_NR;
        const verify = cmd === C.READ_VERIFY || cmd === C.READ_VERIFY_NR;
        if (dma) { this.beginDma(); return; }
        this.phase = 'wait';
        this.request = this.disk.submit(verify ? 'verify' : 'read', this.cmdLba, this.cmdCount, () => this.readReady(verify));
        return;
      }
      case C.WRITE_SECTORS: case C.WRITE_SECTORS_NR:
        if (!this.decodeAddress()) return;
        // PIO data-out: DRQ at once for the first sector, no interrupt (ATA protocol).
        this.phase = 'pio-out';
        this.bufPos = 0;
        this.status = ATA_SR.DRDY | ATA_SR.DSC | ATA_SR.DRQ;
        return;
      case C.WRITE_DMA: case C.WRITE_DMA_NR:
        if (!this.decodeAddress()) return;
        this.status = ATA_SR.BSY;
        this.beginDma();
        return;
      case C.IDENTIFY:
        this.fillIdentify();
        this.phase = 'pio-in';
        this.cmdCount = 1;
        this.done = 0;
        this.bufPos = 0;
        this.status = ATA_SR.DRDY | ATA_SR.DSC | ATA_SR.DRQ;
        this.setIntrq(true);
        return;
      case C.EXECUTE_DIAGNOSTIC:
        this.setSignature();
        this.error = 0x01; // device 0 passed, device 1 absent
        this.finish();
        return;
      case C.FLUSH_CACHE:
        this.finish(); // writes reach the image at once: nothing to flush
        return;
      case C.CHECK_POWER_MODE:
        this.sectorCount = 0xff; // active or idle
        this.finish();
        return;
      case C.SET_FEATURES:
        // 0x03 set transfer mode, 0x02/0x82 write cache on/off, 0xAA/0x55 read look-ahead.
        if (this.features === 0x03 || this.features === 0x02 || this.features === 0x82 || this.features === 0xaa || this.features === 0x55) this.finish();
        else this.abort(ATA_ER.ABRT);
        return;
      default:
        this.abort(ATA_ER.ABRT);
        return;
    }
  }

  /** Takes the LBA or CHS address and the count from the registers; false (and an error) if bad. */
  private decodeAddress(): boolean {
    const count = this.sectorCount === 0 ? 256 : this.sectorCount;
    let lba: number;
    if ((this.device & 0x40) !== 0) {
      lba = ((this.device & 0x0f) << 24) | (this.lbaHigh << 16) | (this.lbaMid << 8) | this.lbaLow;
    } else {
      const g = this.geometry;
      const cyl = (this.lbaHigh << 8) | this.lbaMid, head = this.device & 0x0f, sector = this.lbaLow;
      if (sector === 0 || sector > g.sectorsPerTrack || head >= g.heads || cyl >= g.cylinders) { this.abort(ATA_ER.IDNF); return false; }
      lba = (cyl * g.heads + head) * g.sectorsPerTrack + sector - 1;
    }
    if (lba + count > this.disk.sectors) { this.abort(ATA_ER.IDNF); return false; }
    this.cmdLba = lba;
    this.cmdCount = count;
    this.done = 0;
    return true;
  }

  /** Sets the address registers to sector `lba` (where a command ended or failed). */
  private setAddress(lba: number): void {
    if ((this.device & 0x40) !== 0) {
      this.lbaLow = lba & 0xff;
      this.lbaMid = (lba >>> 8) & 0xff;
      this.lbaHigh = (lba >>> 16) & 0xff;
      this.device = (this.device & 0xf0) | ((lba >>> 24) & 0x0f);
    } else {
      const g = this.geometry;
      const cyl = Math.floor(lba / (g.heads * g.sectorsPerTrack));
      const rem = lba % (g.heads * g.sectorsPerTrack);
      this.lbaMid = cyl & 0xff;
      this.lbaHigh = (cyl >> 8) & 0xff;
      this.device = (this.device & 0xf0) | Math.floor(rem / g.sectorsPerTrack);
      this.lbaLow = (rem % g.sectorsPerTrack) + 1;
    }
  }

  /** Ends the command successfully with an interrupt. */
  private finish(): void {
    this.phase = 'idle';
    this.request = null;
    this.status = ATA_SR.DRDY | ATA_SR.DSC;
    this.setIntrq(true);
  }

  /** Ends the command with ERR and `errorBits`, with an interrupt. */
  private abort(errorBits: number): void {
    this.phase = 'idle';
    this.request = null;
    this.dmaRequested = false;
    this.error = errorBits;
    this.status = ATA_SR.DRDY | ATA_SR.DSC | ATA_SR.ERR;
    this.counters.errors++;
    this.setIntrq(true);
  }

  /** A PIO read or verify request completed: first data block ready (or, for verify, done). */
  private readReady(verify: boolean): void {
    this.request = null;
    if (verify) {
      this.disk.counters.sectorsRead += this.cmdCount;
      this.setAddress(this.cmdLba + this.cmdCount - 1);
      this.finish();
      return;
    }
    this.loadPioSector();
  }

  private loadPioSector(): void {
    this.disk.readSectors(this.cmdLba + this.done, 1, this.buffer);
    this.bufPos = 0;
    this.phase = 'pio-in';
    this.status = ATA_SR.DRDY | ATA_SR.DSC | ATA_SR.DRQ;
    // PIO data-in: an interrupt for every DRQ data block.
    this.setIntrq(true);
  }

  private pioInSectorDone(): void {
    this.done++;
    if (this.done < this.cmdCount) { this.loadPioSector(); return; }
    // Last block read: no further interrupt.
    if (this.command !== ATA_CMD.IDENTIFY) this.setAddress(this.cmdLba + this.cmdCount - 1);
    this.phase = 'idle';
    this.status = ATA_SR.DRDY | ATA_SR.DSC;
  }

  private pioOutSectorDone(): void {
    this.disk.writeSectors(this.cmdLba + this.done, this.buffer, 0, 1);
    this.done++;
    if (this.done < this.cmdCount) {
      this.bufPos = 0;
      this.status = ATA_SR.DRDY | ATA_SR.DSC | ATA_SR.DRQ;
      this.setIntrq(true);
      return;
    }
    // The last block is written: the command completes after the modelled latency.
    this.phase = 'wait';
    this.status = ATA_SR.BSY;
    this.request = this.disk.submit('write', this.cmdLba, this.cmdCount, () => {
      this.setAddress(this.cmdLba + this.cmdCount - 1);
      this.finish();
    });
  }

  /** A DMA command was issued: the transfer starts when the bus master is started too. */
  private beginDma(): void {
    this.phase = 'dma';
    this.dmaRequested = true;
    this.request = null;
    if ((this.bmCommand & BM_CMD.START) !== 0) this.startDma();
  }

  private startDma(): void {
    const op: DiskOp = this.command === ATA_CMD.READ_DMA || this.command === ATA_CMD.READ_DMA_NR ? 'read' : 'write';
    this.request = this.disk.submit(op, this.cmdLba, this.cmdCount, () => this.completeDma(op));
  }

  /**
   * The DMA request completed: move the data through the PRD table now (the whole transfer
   * happens at the completion instant), then end the command and interrupt.
   */
  private completeDma(op: DiskOp): void {
    this.request = null;
    this.dmaRequested = false;
    const bytes = this.cmdCount * SECTOR_SIZE;
    if ((this.bmCommand & BM_CMD.START) === 0) {
      // The host stopped the engine mid-transfer: nothing moved.
      this.bmStatus |= BM_STATUS.ERROR;
      this.counters.dmaErrors++;
      this.abort(ATA_ER.ABRT);
      this.bmStatus |= BM_STATUS.INTERRUPT;
      return;
    }
    const toMemory = op === 'read';
    if (((this.bmCommand & BM_CMD.WRITE_TO_MEMORY) !== 0) !== toMemory) {
      // Engine direction contradicts the command: refuse rather than move data the wrong way.
      this.finishDmaError();
      return;
    }
    if (this.scratch.length < bytes) this.scratch = new Uint8Array(bytes);
    const data = this.scratch.subarray(0, bytes);
    if (toMemory) this.disk.readSectors(this.cmdLba, this.cmdCount, data);
    // Walk the PRD table: up to 8192 entries (a 64 KiB table's worth, the PIIX bound).
    let pos = 0, addr = this.prdTable >>> 0, eot = false, ok = true;
    for (let n = 0; n < 8192 && pos < bytes && !eot; n++, addr = (addr + 8) >>> 0) {
      if (!this.dma.read(addr, this.prd)) { ok = false; break; }
      const p = this.prd;
      const base = (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) & ~1;
      let len = (p[4]! | (p[5]! << 8)) & ~1;
      if (len === 0) len = 0x10000;
      eot = (p[7]! & 0x80) !== 0;
      const take = Math.min(len, bytes - pos);
      const chunk = data.subarray(pos, pos + take);
      const fine = toMemory ? this.dma.write(base >>> 0, chunk) : this.dma.read(base >>> 0, chunk);
      pos += take;
      this.counters.dmaBytes += take;
      if (!fine) { ok = false; break; }
      if (take < len) { eot = false; break; } // the region outlasts the transfer: engine stays active
    }
    if (!ok || pos < bytes) {
      // A master abort, or a PRD table shorter than the transfer.
      if (!toMemory && pos > 0) this.disk.writeSectors(this.cmdLba, data.subarray(0, pos - (pos % SECTOR_SIZE)));
      this.finishDmaError();
      return;
    }
    if (!toMemory) this.disk.writeSectors(this.cmdLba, data);
    // SFF-8038i: ACTIVE stays set when the PRD table is larger than the transfer.
    if (eot) this.bmStatus &= ~BM_STATUS.ACTIVE;
    this.bmStatus |= BM_STATUS.INTERRUPT;
    this.setAddress(this.cmdLba + this.cmdCount - 1);
    this.finish();
  }

  private finishDmaError(): void {
    this.counters.dmaErrors++;
    this.bmStatus = (this.bmStatus | BM_STATUS.ERROR | BM_STATUS.INTERRUPT) & ~BM_STATUS.ACTIVE;
    this.abort(ATA_ER.ABRT);
  }

  /** SRST: abort any command, registers to the ATA signature. Bus-master registers survive. */
  private softReset(): void {
    if (this.request !== null) {
      this.disk.cancel(this.request);
      this.request = null;
    }
    this.phase = 'idle';
    this.dmaRequested = false;
    this.bufPos = 0;
    this.setSignature();
    this.error = 0x01;
    this.status = ATA_SR.DRDY | ATA_SR.DSC;
    this.setIntrq(false);
  }

  /** The ATA device signature in the command block (ATA, not ATAPI). */
  private setSignature(): void {
    this.sectorCount = 1;
    this.lbaLow = 1;
    this.lbaMid = 0;
    this.lbaHigh = 0;
    this.device = 0xa0;
  }

  /** IDENTIFY DEVICE data (ATA/ATAPI-6 layout), in the PIO buffer. */
  private fillIdentify(): void {
    const w = new Uint16Array(256);
    const g = this.geometry;
    const total = this.disk.sectors;
    const text = (first: number, words: number, s: string): void => {
      const padded = s.padEnd(words * 2, ' ');
      for (let i = 0; i < words; i++) w[first + i] = (padded.charCodeAt(2 * i) << 8) | padded.charCodeAt(2 * i + 1);
    };
    w[0] = 0x0040; // fixed device
    w[1] = g.cylinders;
    w[3] = g.heads;
    w[6] = g.sectorsPerTrack;
    text(10, 10, 'VL00000001');
    text(23, 4, '1.0');
    text(27, 20, 'VIRTLAB ATA DISK');
    w[47] = 0x8000; // READ/WRITE MULTIPLE not supported
    w[49] = 0x0300; // LBA and DMA supported
    w[51] = 0x0200; // PIO timing mode 2
    w[53] = 0x0007; // words 54–58, 64–70 and 88 valid
    w[54] = g.cylinders;
    w[55] = g.heads;
    w[56] = g.sectorsPerTrack;
    const chs = g.cylinders * g.heads * g.sectorsPerTrack;
    w[57] = chs & 0xffff;
    w[58] = chs >>> 16;
    w[60] = total & 0xffff;
    w[61] = total >>> 16;
    w[63] = 0x0407; // multiword DMA 0–2 supported, mode 2 selected
    w[64] = 0x0003; // PIO modes 3 and 4
    w[65] = 120; w[66] = 120; w[67] = 120; w[68] = 120;
    w[80] = 0x007e; // ATA-1 … ATA-6
    w[82] = 0x4000; // NOP (word valid)
    w[83] = 0x7000; // FLUSH CACHE supported, word valid
    w[84] = 0x4000;
    w[85] = 0x4000;
    w[86] = 0x3000;
    w[87] = 0x4000;
    w[88] = 0x003f; // UDMA 0–5 supported (none selected: the model has no UDMA timing)
    w[93] = 0x4009; // reset result: device 0 passed diagnostics (jumper-selected), no device 1
    // Word 255: signature 0xA5 and a checksum making the byte sum of the block 0.
    let sum = 0xa5;
    for (let i = 0; i < 255; i++) sum += (w[i]! & 0xff) + (w[i]! >> 8);
    w[255] = ((((256 - (sum & 0xff)) & 0xff) << 8) | 0xa5);
    for (let i = 0; i < 256; i++) { this.buffer[2 * i] = w[i]! & 0xff; this.buffer[2 * i + 1] = w[i]! >> 8; }
  }

  private setIntrq(v: boolean): void {
    this.intrq = v;
    this.updateLine();
  }

  private updateLine(): void {
    const level = this.intrq && (this.deviceControl & ATA_DC.NIEN) === 0;
    if (level === this.line) return;
    this.line = level;
    if (level) this.counters.interrupts++;
    this.setIrq(level);
  }
}

export interface BlockDeviceOptions extends DiskOptions, AtaOptions {
  /** Override the DMA path (a VMM's checking/translating one); default: straight to RAM. */
  readonly dma?: DmaMemory;
}

/**
 * Builds the disk model and its ATA interface and wires them into a machine: ports
 * 0x1F0–0x1F7, 0x3F6, the BMIDE block at `bmBase` (default 0xC040–0xC047), IRQ 14 through
 * the PIC, completions timed by the clock.
 */
export function attachBlockDevice(host: DeviceHost, options: BlockDeviceOptions): AtaController {
  const disk = new Disk(host.clock, options);
  // The bus master reaches the guest's RAM only (never monitor memory above it).
  const ata: AtaController = new AtaController(disk, options.dma ?? guestRamDma(host.mem, () => { ata.counters.dmaOutsideRam++; }),
    (level) => host.pic.setIrq(ATA_PRIMARY_IRQ, level));
  ata.attach(host.io, ATA_PRIMARY_BASE, ATA_PRIMARY_CONTROL, options.bmBase ?? BMIDE_BASE);
  return ata;
}
