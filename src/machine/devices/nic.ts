/**
 * The emulated NIC: a subset of the Intel 82540EM Gigabit Ethernet controller (the "e1000"
 * that QEMU, VMware and VirtualBox emulate), reached through its I/O-mapped register
 * access window — IOADDR at I/O base + 0, IODATA at + 4 (PCI/PCI-X Family of Gigabit
 * Ethernet Controllers Software Developer's Manual, 8254x SDM, "I/O-Mapped Access to
 * Internal Registers") — because virtlab has no MMIO. Every register access is therefore
 * two real port accesses, as a driver using the I/O BAR makes. Legacy transmit and receive
 * descriptor rings in guest memory, head/tail registers, ICR/IMS interrupt causes.
 *
 * Two layers: `NetLink` is the device model proper (the wire: the seeded peer that sends
 * frames, the sink of transmitted frames, arrivals as inputs), which a paravirtual net back
 * end can drive too; `E1000` is the register interface on top of it. See docs/devices.md.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { PortBus } from '../port-bus.js';
import { guestRamDma } from './block-device.js';
import {
  InputMismatchError, SeededRandom,
  type DeviceHost, type DeviceInput, type DmaMemory, type InputObserver, type InputSource,
} from './device-io.js';

/**
 * I/O base of the e1000's I/O BAR. PCI BAR2 places it on real hardware; virtlab has no PCI
 * configuration space, so it is fixed where SeaBIOS puts it under QEMU's `pc` machine.
 */
export const E1000_IO_BASE = 0xc000;
/** The IRQ the PIIX routes the NIC's INTA# to (as on QEMU's `pc` machine). */
export const E1000_IRQ = 11;
/** QEMU's default guest MAC address. */
export const DEFAULT_GUEST_MAC: readonly number[] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/** The simulated peer's MAC address. */
export const DEFAULT_PEER_MAC: readonly number[] = [0x52, 0x54, 0x00, 0x00, 0x00, 0x02];
/** EtherType of generated frames: IEEE 802 local experimental 1. */
export const GENERATED_ETHERTYPE = 0x88b5;

/** Register offsets (8254x SDM, table 13-2), of the subset implemented. */
export const E1000_REG = {
  CTRL: 0x0000, STATUS: 0x0008, EECD: 0x0010, EERD: 0x0014, CTRL_EXT: 0x0018,
  ICR: 0x00c0, ITR: 0x00c4, ICS: 0x00c8, IMS: 0x00d0, IMC: 0x00d8,
  RCTL: 0x0100, TCTL: 0x0400, TIPG: 0x0410,
  RDBAL: 0x2800, RDBAH: 0x2804, RDLEN: 0x2808, RDH: 0x2810, RDT: 0x2818, RDTR: 0x2820, RADV: 0x282c,
  TDBAL: 0x3800, TDBAH: 0x3804, TDLEN: 0x3808, TDH: 0x3810, TDT: 0x3818, TIDV: 0x3820,
  MPC: 0x4010, GPRC: 0x4074, BPRC: 0x4078, MPRC: 0x407c, GPTC: 0x4080,
  GORCL: 0x4088, GORCH: 0x408c, GOTCL: 0x4090, GOTCH: 0x4094,
  TORL: 0x40c0, TORH: 0x40c4, TOTL: 0x40c8, TOTH: 0x40cc, TPR: 0x40d0, TPT: 0x40d4,
  MTA: 0x5200, RAL0: 0x5400, RAH0: 0x5404,
} as const;
/** Interrupt cause bits (ICR, ICS, IMS, IMC). */
export const E1000_ICR = { TXDW: 0x01, TXQE: 0x02, LSC: 0x04, RXDMT0: 0x10, RXO: 0x40, RXT0: 0x80 } as const;
export const E1000_CTRL = { SLU: 1 << 6, RST: 1 << 26 } as const;
export const E1000_RCTL = { EN: 1 << 1, UPE: 1 << 3, MPE: 1 << 4, LPE: 1 << 5, LBM_MAC: 1 << 6, BAM: 1 << 15, BSEX: 1 << 25, SECRC: 1 << 26 } as const;
export const E1000_TCTL = { EN: 1 << 1, PSP: 1 << 3 } as const;
/** Legacy transmit descriptor CMD bits. */
export const E1000_TXD_CMD = { EOP: 0x01, IFCS: 0x02, IC: 0x04, RS: 0x08, RPS: 0x10, DEXT: 0x20, VLE: 0x40, IDE: 0x80 } as const;
/** Descriptor status bits (TX: DD; RX: DD, EOP). */
export const E1000_STA = { DD: 0x01, EOP: 0x02 } as const;
const EERD_START = 0x01, EERD_DONE = 0x10;
/** STATUS: full duplex, link up, 1000 Mb/s. */
const STATUS_VALUE = 0x01 | 0x02 | 0x80;
const REG_SPACE = 0x20000;
const MAX_TX_FRAME = 16384;

// ---- the wire ----------------------------------------------------------------------------

/** An open-loop Poisson arrival process of generated frames addressed to the guest. */
export interface PoissonArrivals {
  /** Mean time between arrivals, in CPU cycles. */
  readonly meanInterarrivalCycles: number;
  /** Frame size range, bytes without FCS (default 60..1514), uniform. */
  readonly minBytes?: number;
  readonly maxBytes?: number;
  /** Stop after this many frames (default: unbounded). */
  readonly count?: number;
  /** No arrival before this cycle (default 0). */
  readonly startCycle?: number;
}

/** A peer that answers every frame the guest transmits (ping-pong, request/response). */
export interface EchoPeer {
  /** Reply delay, in cycles: delay + U[0, jitter]. */
  readonly delayCycles: number;
  readonly jitterCycles?: number;
}

export interface NetLinkOptions {
  /** Seed of every generator on the link (each derives its own stream from it). */
  readonly seed: number | string;
  /** Name in inputs (default "net0"). */
  readonly name?: string;
  /** The guest NIC's MAC (generated frames' destination; default 52:54:00:12:34:56). */
  readonly guestMac?: readonly number[];
  readonly peerMac?: readonly number[];
  readonly arrivals?: PoissonArrivals;
  /** Frames delivered at given cycles (in any order; ties keep list order). */
  readonly frames?: readonly { readonly atCycle: number; readonly data: Uint8Array }[];
  readonly echo?: EchoPeer;
}

/** The receiving side a link delivers to (the e1000, or a PV net back end). */
export interface NetPort {
  receive(frame: Uint8Array): void;
}

/** Counters of the link (monotonic). */
export interface NetLinkCounters {
  arrivals: number;
  arrivalBytes: number;
  transmitted: number;
  transmittedBytes: number;
}

/** A scheduled arrival; `poisson` marks the Poisson stream's, which generates the next on delivery. */
interface Scheduled { at: number; order: number; data: Uint8Array; poisson: boolean }

/**
 * The wire and whoever is at the other end of it. Arrivals (from the Poisson source, the
 * frame list, the echo peer) are the link's inputs: each enters through `applyInput`, which
 * a recorder observes and a replayer calls directly. Transmitted frames are outputs: kept in
 * order, and hashed.
 */
export class NetLink {
  readonly name: string;
  readonly guestMac: Uint8Array;
  readonly peerMac: Uint8Array;
  /** `model`: arrivals come from the generators, timed by the clock; `external`: only from `applyInput`. */
  inputSource: InputSource = 'model';
  onInput: InputObserver | null = null;
  /** Every frame the guest transmitted, in order (copies, no FCS). */
  readonly transmittedFrames: Uint8Array[] = [];
  readonly counters: NetLinkCounters = { arrivals: 0, arrivalBytes: 0, transmitted: 0, transmittedBytes: 0 };
  private port: NetPort | null = null;
  private readonly clock: Clock;
  private readonly timer: number;
  private readonly queue: Scheduled[] = [];
  private order = 0;
  private readonly txHash = createHash('sha256');
  private readonly arrivalRng: SeededRandom;
  private readonly echoRng: SeededRandom;
  private readonly arrivalCfg: Required<PoissonArrivals> | null;
  private generated = 0;
  private readonly echo: Required<EchoPeer> | null;

  constructor(clock: Clock, private readonly options: NetLinkOptions) {
    this.clock = clock;
    this.name = options.name ?? 'net0';
    this.guestMac = mac(options.guestMac ?? DEFAULT_GUEST_MAC, 'guestMac');
    this.peerMac = mac(options.peerMac ?? DEFAULT_PEER_MAC, 'peerMac');
    this.arrivalRng = new SeededRandom(`${options.seed}/arrivals`);
    this.echoRng = new SeededRandom(`${options.seed}/echo`);
    const a = options.arrivals;
    if (a !== undefined) {
      const cfg = { minBytes: 60, maxBytes: 1514, count: Number.POSITIVE_INFINITY, startCycle: 0, ...a };
      if (!(cfg.meanInterarrivalCycles >= 1) || !Number.isFinite(cfg.meanInterarrivalCycles)) throw new RangeError(`arrivals.meanInterarrivalCycles must be ≥ 1, got ${cfg.meanInterarrivalCycles}`);
      if (!Number.isInteger(cfg.minBytes) || !Number.isInteger(cfg.maxBytes) || cfg.minBytes < 18 || cfg.maxBytes > MAX_TX_FRAME || cfg.minBytes > cfg.maxBytes) {
        throw new RangeError(`arrival frame sizes must satisfy 18 ≤ minBytes ≤ maxBytes ≤ ${MAX_TX_FRAME}, got ${cfg.minBytes}..${cfg.maxBytes}`);
      }
      this.arrivalCfg = cfg;
    } else {
      this.arrivalCfg = null;
    }
    const e = options.echo;
    if (e !== undefined) {
      const cfg = { jitterCycles: 0, ...e };
      if (!Number.isSafeInteger(cfg.delayCycles) || cfg.delayCycles < 0 || !Number.isSafeInteger(cfg.jitterCycles) || cfg.jitterCycles < 0) throw new RangeError('echo delay and jitter must be non-negative integers (cycles)');
      this.echo = cfg;
    } else {
      this.echo = null;
    }
    this.timer = clock.addTimer(() => this.onTimer());
  }

  /** Connects the receiving device and starts the generators (in `model` mode). */
  attach(port: NetPort): void {
    this.port = port;
    if (this.inputSource !== 'model') return;
    for (const f of this.options.frames ?? []) {
      if (!Number.isSafeInteger(f.atCycle) || f.atCycle < 0) throw new RangeError(`frame arrival cycle must be a non-negative integer, got ${f.atCycle}`);
      this.schedule(f.atCycle, f.data.slice());
    }
    if (this.arrivalCfg !== null) this.generateArrival(this.arrivalCfg.startCycle);
  }

  /**
   * Switches where inputs come from. Going `external` drops the scheduled arrivals (the
   * replayer will hand them in); call before `attach`, or at a point the trace records.
   */
  setInputSource(source: InputSource): void {
    this.inputSource = source;
    if (source === 'external') this.queue.length = 0;
    this.rearm();
  }

  /** A frame the guest sent (no FCS): goes to the sink; the echo peer may answer. */
  transmit(frame: Uint8Array): void {
    const copy = frame.slice();
    this.transmittedFrames.push(copy);
    this.counters.transmitted++;
    this.counters.transmittedBytes += copy.length;
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, copy.length, true);
    this.txHash.update(len);
    this.txHash.update(copy);
    if (this.echo !== null && this.inputSource === 'model' && copy.length >= 14) {
      const reply = copy.slice();
      const broadcast = (copy[0]! & 1) !== 0;
      reply.set(copy.subarray(6, 12), 0);
      reply.set(broadcast ? this.peerMac : copy.subarray(0, 6), 6);
      const jitter = this.echo.jitterCycles > 0 ? this.echoRng.below(this.echo.jitterCycles + 1) : 0;
      this.schedule(this.clock.now + this.echo.delayCycles + jitter, reply);
    }
  }

  /** SHA-256 (hex) of the transmitted frames, each as a 4-byte little-endian length and its bytes. */
  transmittedSha256(): string {
    return this.txHash.copy().digest('hex');
  }

  /**
   * The one way an input enters the link: frame number `input.seq` arrives now and is
   * handed to the device (else InputMismatchError: the replay has diverged).
   */
  applyInput(input: DeviceInput): void {
    if (input.kind !== 'net-rx' || input.data === null) throw new InputMismatchError(input, 'not a network arrival');
    if (input.seq !== this.counters.arrivals + 1) throw new InputMismatchError(input, `the next arrival is #${this.counters.arrivals + 1}`);
    this.onInput?.(input);
    this.counters.arrivals++;
    this.counters.arrivalBytes += input.data.length;
    this.port?.receive(input.data);
  }

  private schedule(at: number, data: Uint8Array): void {
    const s: Scheduled = { at, order: this.order++, data, poisson: false };
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.at > at) i--; // stable: equal times keep arrival order
    this.queue.splice(i, 0, s);
    this.rearm();
  }

  private generateArrival(after: number): void {
    const cfg = this.arrivalCfg!;
    if (this.generated >= cfg.count) return;
    const r = this.arrivalRng;
    const at = after + r.exponential(cfg.meanInterarrivalCycles);
    const size = r.between(cfg.minBytes, cfg.maxBytes);
    const f = new Uint8Array(size);
    f.set(this.guestMac, 0);
    f.set(this.peerMac, 6);
    f[12] = GENERATED_ETHERTYPE >> 8;
    f[13] = GENERATED_ETHERTYPE & 0xff;
    const n = ++this.generated;
    if (size >= 18) new DataView(f.buffer).setUint32(14, n);
    for (let i = 18; i < size; i++) f[i] = r.byte();
    const s: Scheduled = { at, order: this.order++, data: f, poisson: true };
    let i = this.queue.length;
    while (i > 0 && this.queue[i - 1]!.at > at) i--;
    this.queue.splice(i, 0, s);
    this.rearm();
  }

  private rearm(): void {
    const head = this.queue[0];
    if (head === undefined || this.inputSource !== 'model') this.clock.disarm(this.timer);
    else this.clock.arm(this.timer, head.at);
  }

  private onTimer(): void {
    while (this.inputSource === 'model' && this.queue.length > 0 && this.queue[0]!.at <= this.clock.now) {
      const s = this.queue.shift()!;
      if (s.poisson) this.generateArrival(s.at);
      this.applyInput({ device: this.name, kind: 'net-rx', seq: this.counters.arrivals + 1, data: s.data });
    }
    this.rearm();
  }
}

function mac(m: readonly number[], what: string): Uint8Array {
  if (m.length !== 6 || m.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) throw new RangeError(`${what} must be 6 bytes`);
  return Uint8Array.from(m);
}

// ---- CRC-32 (the Ethernet FCS) -------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** The IEEE 802.3 CRC-32 of `data` (as an unsigned number; sent little-endian as the FCS). */
export function crc32(data: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

// ---- the 82540EM register interface ----------------------------------------------------------

/** Counters of the e1000 interface (monotonic). */
export interface E1000Counters {
  /** Port accesses to IOADDR/IODATA (each dword access counts once). */
  portAccesses: number;
  /** Device register accesses (through IODATA). */
  registerAccesses: number;
  /** Rising edges of the interrupt line. */
  interrupts: number;
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  /** Bytes moved by DMA: buffers and descriptors, both directions. */
  dmaBytes: number;
  /** Frames dropped: receiver disabled, address filter, too long, or no free descriptors. */
  rxDropped: number;
  /** Frames dropped for lack of receive descriptors (also counted by the MPC register). */
  rxNoBuffer: number;
  /** Descriptors the model does not implement (extended/offload: DEXT set), skipped. */
  unsupportedDescriptors: number;
  /** DMA to or from addresses outside memory (master aborts). */
  dmaErrors: number;
  /** DMA accesses (descriptors, buffers) that named memory outside the guest's RAM, refused (master aborts). */
  dmaOutsideRam: number;
  /** Accesses to registers outside the implemented subset (kept as plain storage). */
  unmodelledRegisterAccesses: number;
}

const MODELLED = new Set<number>(Object.values(E1000_REG));

/**
 * An Intel 82540EM subset behind its I/O-mapped register window. See docs/devices.md for
 * the registers and behaviour implemented and what is left out (offloads, flow control,
 * interrupt moderation, PHY/MDIC, EEPROM bit-banging).
 */
export class E1000 implements NetPort {
  /** The register file, one 32-bit word per 4-byte offset. */
  readonly regs = new Uint32Array(REG_SPACE / 4);
  /** The 64-word EEPROM: MAC address and checksum. */
  readonly eeprom = new Uint16Array(64);
  /** IOADDR: the register offset IODATA accesses. */
  ioAddr = 0;
  readonly counters: E1000Counters = {
    portAccesses: 0, registerAccesses: 0, interrupts: 0, txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0,
    dmaBytes: 0, rxDropped: 0, rxNoBuffer: 0, unsupportedDescriptors: 0, dmaErrors: 0, dmaOutsideRam: 0, unmodelledRegisterAccesses: 0,
  };
  private line = false;
  private txFrame = new Uint8Array(MAX_TX_FRAME);
  private txLen = 0;
  private txOverflow = false;
  private readonly desc = new Uint8Array(16);
  private readonly wb = new Uint8Array(8);
  private readonly dd = Uint8Array.of(E1000_STA.DD);

  constructor(
    readonly link: NetLink,
    private readonly dma: DmaMemory,
    private readonly setIrq: (level: boolean) => void,
  ) {
    const m = link.guestMac;
    for (let i = 0; i < 3; i++) this.eeprom[i] = m[2 * i]! | (m[2 * i + 1]! << 8);
    let sum = 0;
    for (let i = 0; i < 63; i++) sum += this.eeprom[i]!;
    this.eeprom[63] = (0xbaba - sum) & 0xffff; // words 0..63 sum to 0xBABA (8254x SDM 5.6.1)
    this.reset();
  }

  /** Registers IOADDR (base + 0) and IODATA (base + 4), dword access. */
  attach(io: PortBus, base = E1000_IO_BASE): void {
    io.registerRead32(base, () => { this.counters.portAccesses++; return this.ioAddr | 0; });
    io.registerWrite32(base, (_p, v) => { this.counters.portAccesses++; this.ioAddr = v & (REG_SPACE - 4); });
    io.registerRead32(base + 4, () => { this.counters.portAccesses++; return this.readRegister(this.ioAddr) | 0; });
    io.registerWrite32(base + 4, (_p, v) => { this.counters.portAccesses++; this.writeRegister(this.ioAddr, v >>> 0); });
  }

  /** Device reset (power-on or CTRL.RST): registers to defaults; the link's traffic is unaffected. */
  reset(): void {
    this.regs.fill(0);
    const m = this.link.guestMac;
    // RAL0/RAH0 are loaded from the EEPROM, with Address Valid.
    this.regs[E1000_REG.RAL0 >> 2] = (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0;
    this.regs[E1000_REG.RAH0 >> 2] = (m[4]! | (m[5]! << 8) | 0x80000000) >>> 0;
    this.txLen = 0;
    this.txOverflow = false;
    this.updateLine();
  }

  private reg(off: number): number { return this.regs[off >> 2]!; }
  private setReg(off: number, v: number): void { this.regs[off >> 2] = v >>> 0; }

  /** A read through IODATA of register `off`. */
  readRegister(off: number): number {
    this.counters.registerAccesses++;
    const R = E1000_REG;
    if (!MODELLED.has(off) && !(off >= R.MTA && off < R.MTA + 512)) this.counters.unmodelledRegisterAccesses++;
    switch (off) {
      case R.STATUS: return STATUS_VALUE;
      case R.ICR: {
        const v = this.reg(R.ICR);
        this.setReg(R.ICR, 0); // read-to-clear
        this.updateLine();
        return v;
      }
      case R.ICS: return this.reg(R.ICR); // ICS reads are undefined; give the causes
      case R.IMC: return 0;
      default:
        if (off >= 0x4000 && off < 0x4100) {
          // Statistics registers clear on read.
          const v = this.reg(off);
          this.setReg(off, 0);
          return v;
        }
        return this.reg(off);
    }
  }

  /** A write through IODATA of register `off`. */
  writeRegister(off: number, v: number): void {
    this.counters.registerAccesses++;
    const R = E1000_REG;
    if (!MODELLED.has(off) && !(off >= R.MTA && off < R.MTA + 512)) this.counters.unmodelledRegisterAccesses++;
    switch (off) {
      case R.CTRL:
        if ((v & E1000_CTRL.RST) !== 0) { this.reset(); return; } // self-clearing
        this.setReg(off, v);
        return;
      case R.STATUS: return;
      case R.EERD: {
        if ((v & EERD_START) === 0) { this.setReg(off, v & ~EERD_DONE); return; }
        const a = (v >>> 8) & 0xff;
        const data = a < 64 ? this.eeprom[a]! : 0xffff;
        this.setReg(off, ((data << 16) | (a << 8) | EERD_DONE) >>> 0); // completes at once
        return;
      }
      case R.ICR: this.setReg(off, this.reg(off) & ~v); this.updateLine(); return; // write 1 to clear
      case R.ICS: this.raise(v); return;
      case R.IMS: this.setReg(off, this.reg(off) | v); this.updateLine(); return;
      case R.IMC: this.setReg(R.IMS, this.reg(R.IMS) & ~v); this.updateLine(); return;
      case R.RDBAL: case R.TDBAL: this.setReg(off, v & ~0xf); return;
      case R.RDLEN: case R.TDLEN: this.setReg(off, v & 0xfff80); return;
      case R.RDH: case R.RDT: case R.TDH: this.setReg(off, v & 0xffff); return;
      case R.TDT:
        this.setReg(off, v & 0xffff);
        this.processTx();
        return;
      default:
        if (off >= 0x4000 && off < 0x4100) return; // statistics are read-only
        this.setReg(off, v);
        return;
    }
  }

  private raise(causes: number): void {
    this.setReg(E1000_REG.ICR, this.reg(E1000_REG.ICR) | causes);
    this.updateLine();
  }

  private updateLine(): void {
    const level = (this.reg(E1000_REG.ICR) & this.reg(E1000_REG.IMS)) !== 0;
    if (level === this.line) return;
    this.line = level;
    if (level) this.counters.interrupts++;
    this.setIrq(level);
  }

  private stat(off: number, n = 1): void { this.setReg(off, this.reg(off) + n); }

  /** Adds to a 64-bit low/high statistics pair. */
  private stat64(lo: number, n: number): void {
    const v = this.reg(lo) + n;
    this.setReg(lo, v);
    if (v > 0xffffffff) this.setReg(lo + 4, this.reg(lo + 4) + Math.floor(v / 0x100000000));
  }

  /** Transmits descriptors from TDH up to TDT (on a TDT write). */
  private processTx(): void {
    const R = E1000_REG;
    if ((this.reg(R.TCTL) & E1000_TCTL.EN) === 0) return;
    const n = this.reg(R.TDLEN) / 16;
    if (n === 0) return;
    const base = this.reg(R.TDBAL);
    const high = this.reg(R.TDBAH);
    const tail = this.reg(R.TDT);
    let head = this.reg(R.TDH);
    let causes = 0;
    // Head or tail outside the ring: the hardware's behaviour is undefined; do nothing.
    if (head >= n || tail >= n) return;
    while (head !== tail) {
      const at = base + head * 16;
      if (high !== 0 || !this.dma.read(at, this.desc)) { this.counters.dmaErrors++; break; }
      this.counters.dmaBytes += 16;
      const d = this.desc;
      const addrLo = (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0;
      const addrHi = (d[4]! | (d[5]! << 8) | (d[6]! << 16) | (d[7]! << 24)) >>> 0;
      const len = d[8]! | (d[9]! << 8);
      const cmd = d[11]!;
      if ((cmd & E1000_TXD_CMD.DEXT) !== 0) {
        // Context/data descriptors of the offload engine: not modelled; the frame is dropped.
        this.counters.unsupportedDescriptors++;
        this.txOverflow = true;
      } else if (len > 0) {
        if (this.txLen + len > MAX_TX_FRAME) {
          this.txOverflow = true;
        } else {
          const ok = addrHi === 0 && this.dma.read(addrLo, this.txFrame.subarray(this.txLen, this.txLen + len));
          if (!ok) { this.counters.dmaErrors++; this.txOverflow = true; }
          this.txLen += len;
          this.counters.dmaBytes += len;
        }
      }
      if ((cmd & E1000_TXD_CMD.EOP) !== 0) {
        if (!this.txOverflow) this.emit();
        this.txLen = 0;
        this.txOverflow = false;
      }
      if ((cmd & (E1000_TXD_CMD.RS | E1000_TXD_CMD.RPS)) !== 0) {
        // Write back Descriptor Done in the STA byte.
        this.dd[0] = d[12]! | E1000_STA.DD;
        this.dma.write(at + 12, this.dd);
        this.counters.dmaBytes += 1;
        causes |= E1000_ICR.TXDW;
      }
      head = head + 1 === n ? 0 : head + 1;
    }
    this.setReg(R.TDH, head);
    if (head === tail) causes |= E1000_ICR.TXQE;
    if (causes !== 0) this.raise(causes);
  }

  private emit(): void {
    const R = E1000_REG;
    let len = this.txLen;
    if (len < 60 && (this.reg(R.TCTL) & E1000_TCTL.PSP) !== 0) {
      this.txFrame.fill(0, len, 60); // pad short packets
      len = 60;
    }
    const frame = this.txFrame.subarray(0, len);
    this.counters.txFrames++;
    this.counters.txBytes += len;
    this.stat(R.GPTC);
    this.stat(R.TPT);
    this.stat64(R.GOTCL, len + 4);
    this.stat64(R.TOTL, len + 4);
    if ((this.reg(R.RCTL) & (3 << 6)) === E1000_RCTL.LBM_MAC) this.receive(frame.slice()); // MAC loopback
    else this.link.transmit(frame);
  }

  /** A frame arrives from the wire (no FCS): filter, DMA into receive buffers, interrupt. */
  receive(frame: Uint8Array): void {
    const R = E1000_REG;
    const rctl = this.reg(R.RCTL);
    if ((rctl & E1000_RCTL.EN) === 0 || frame.length < 14) { this.counters.rxDropped++; return; }
    if (!this.accepts(frame, rctl)) { this.counters.rxDropped++; return; }
    const withFcs = (rctl & E1000_RCTL.SECRC) === 0;
    const total = frame.length + (withFcs ? 4 : 0);
    if (total > ((rctl & E1000_RCTL.LPE) !== 0 ? MAX_TX_FRAME : 1522)) { this.counters.rxDropped++; return; }
    let data = frame;
    if (withFcs) {
      data = new Uint8Array(total);
      data.set(frame);
      new DataView(data.buffer).setUint32(frame.length, crc32(frame), true);
    }
    const bufSize = bufferSize(rctl);
    const n = this.reg(R.RDLEN) / 16;
    let head = this.reg(R.RDH);
    const tail = this.reg(R.RDT);
    const free = n === 0 || head >= n || tail >= n ? 0 : (tail - head + n) % n;
    const needed = Math.ceil(total / bufSize);
    if (needed > free) {
      this.counters.rxDropped++;
      this.counters.rxNoBuffer++;
      this.stat(R.MPC);
      this.raise(E1000_ICR.RXO);
      return;
    }
    const base = this.reg(R.RDBAL);
    if (this.reg(R.RDBAH) !== 0) { this.counters.dmaErrors++; this.counters.rxDropped++; return; }
    for (let pos = 0; pos < total; pos += bufSize) {
      const at = base + head * 16;
      if (!this.dma.read(at, this.desc)) this.counters.dmaErrors++;
      const d = this.desc;
      const addrLo = (d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24)) >>> 0;
      const addrHi = (d[4]! | (d[5]! << 8) | (d[6]! << 16) | (d[7]! << 24)) >>> 0;
      const piece = Math.min(bufSize, total - pos);
      if (addrHi !== 0 || !this.dma.write(addrLo, data.subarray(pos, pos + piece))) this.counters.dmaErrors++;
      const wb = this.wb;
      wb[0] = piece & 0xff; wb[1] = piece >> 8; // length
      wb[2] = 0; wb[3] = 0; // packet checksum (not computed: RXCSUM offload off)
      wb[4] = E1000_STA.DD | (pos + piece === total ? E1000_STA.EOP : 0);
      wb[5] = 0; wb[6] = 0; wb[7] = 0; // errors, special
      if (!this.dma.write(at + 8, wb)) this.counters.dmaErrors++;
      this.counters.dmaBytes += 16 + piece;
      head = head + 1 === n ? 0 : head + 1;
    }
    this.setReg(R.RDH, head);
    this.counters.rxFrames++;
    this.counters.rxBytes += total;
    this.stat(R.GPRC);
    this.stat(R.TPR);
    if ((frame[0]! & 1) !== 0) this.stat(isBroadcast(frame) ? R.BPRC : R.MPRC);
    this.stat64(R.GORCL, total);
    this.stat64(R.TORL, total);
    let causes: number = E1000_ICR.RXT0; // no receive delay timer: RDTR/RADV are treated as 0
    const left = (tail - head + n) % n;
    const threshold = n >> (((rctl >>> 8) & 3) + 1); // RDMTS: 1/2, 1/4, 1/8 of the ring
    if (left <= threshold) causes |= E1000_ICR.RXDMT0;
    this.raise(causes);
  }

  private accepts(frame: Uint8Array, rctl: number): boolean {
    if (isBroadcast(frame)) return (rctl & E1000_RCTL.BAM) !== 0 || (rctl & E1000_RCTL.MPE) !== 0;
    if ((frame[0]! & 1) !== 0) return (rctl & E1000_RCTL.MPE) !== 0; // no MTA hash filtering
    if ((rctl & E1000_RCTL.UPE) !== 0) return true;
    const lo = this.reg(E1000_REG.RAL0), hi = this.reg(E1000_REG.RAH0);
    if ((hi & 0x80000000) === 0) return false;
    const dLo = (frame[0]! | (frame[1]! << 8) | (frame[2]! << 16) | (frame[3]! << 24)) >>> 0;
    const dHi = frame[4]! | (frame[5]! << 8);
    return dLo === lo && dHi === (hi & 0xffff);
  }
}

function isBroadcast(f: Uint8Array): boolean {
  return f[0] === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff;
}

/** Receive buffer size from RCTL.BSIZE and BSEX (8254x SDM 13.4.22). */
export function bufferSize(rctl: number): number {
  const bsize = (rctl >>> 16) & 3;
  // With BSEX, BSIZE 00 is reserved: treated as 2048 (as without BSEX).
  const sizes = (rctl & E1000_RCTL.BSEX) !== 0 ? [2048, 16384, 8192, 4096] : [2048, 1024, 512, 256];
  return sizes[bsize]!;
}

export interface NicOptions extends NetLinkOptions {
  /** I/O base of IOADDR/IODATA (default 0xC000). */
  readonly ioBase?: number;
  /** Override the DMA path (a VMM's checking/translating one); default: straight to RAM. */
  readonly dma?: DmaMemory;
}

/**
 * Builds the link and the e1000 and wires them into a machine: IOADDR/IODATA at `ioBase`
 * (default 0xC000/0xC004), IRQ 11 through the PIC, arrivals timed by the clock.
 */
export function attachNic(host: DeviceHost, options: NicOptions): E1000 {
  const link = new NetLink(host.clock, options);
  // The bus master reaches the guest's RAM only (never monitor memory above it).
  const nic: E1000 = new E1000(link, options.dma ?? guestRamDma(host.mem, () => { nic.counters.dmaOutsideRam++; }),
    (level) => host.pic.setIrq(E1000_IRQ, level));
  nic.attach(host.io, options.ioBase ?? E1000_IO_BASE);
  link.attach(nic);
  return nic;
}
