import { ImageError } from '../guest/elf.js';
import { loadFlat, type FlatLoad } from '../guest/flat.js';
import { loadMultiboot, type MultibootLoad } from '../guest/multiboot.js';
import type { Profile } from '../profiles/schema.js';
import { toCostTable } from '../profiles/index.js';
import { accountCycles, type CategoryTotal, type CycleAccounting } from './accounting.js';
import { Clock } from './clock.js';
import { Cpu, CS, EAX, EBX } from './cpu/cpu.js';
import { attachBlockDevice, type AtaController, type AtaCounters, type BlockDeviceOptions } from './devices/block-device.js';
import { ConsoleSink } from './devices/console.js';
import { DebugCon } from './devices/debugcon.js';
import { ExitDevice, stopMachine } from './devices/exit-device.js';
import { attachNic, type E1000, type E1000Counters, type NicOptions } from './devices/nic.js';
import { DualPic } from './devices/pic.js';
import { Pit } from './devices/pit.js';
import { SystemPorts } from './devices/system-ports.js';
import { COM1_IRQ, Uart16550 } from './devices/uart.js';
import { disassemble } from './disassemble.js';
import { PhysicalMemory } from './memory.js';
import { PortBus } from './port-bus.js';
import { Tlb, type TlbCounters } from './tlb.js';

/** How to build a machine. */
export interface MachineOptions {
  /** RAM size in MiB (default 64). */
  readonly memoryMiB?: number;
  /** The cost profile (CPU frequency, instruction costs, TLB geometry). */
  readonly profile: Profile;
  /** ATA disk on the primary IDE channel (0x1F0–0x1F7, 0x3F6, BMIDE 0xC040–0xC047, IRQ 14). */
  readonly disk?: BlockDeviceOptions;
  /** e1000 NIC (IOADDR/IODATA at 0xC000/0xC004, IRQ 11). */
  readonly nic?: NicOptions;
  /**
   * Physical memory for a virtual machine monitor, in MiB, above the guest's RAM (default
   * 0): the guest is told only `memoryMiB` (see `PhysicalMemory.guestSize`).
   */
  readonly monitorMiB?: number;
  /**
   * The block compiler (default true). Off, every instruction is interpreted: the run is
   * exactly the same (registers, memory, cycles, counters), only slower — for equivalence
   * tests and for measuring the JIT.
   */
  readonly jit?: boolean;
}

/** Key order of the ATA counters in `RunOutcome.devices.ata` (fixed: records are compared as bytes). */
const ATA_KEYS: readonly (keyof AtaCounters)[] = ['registerAccesses', 'commands', 'errors', 'interrupts', 'dmaBytes', 'pioBytes', 'dmaErrors', 'dmaOutsideRam'];
/** Key order of the e1000 counters in `RunOutcome.devices.e1000`. */
const E1000_KEYS: readonly (keyof E1000Counters)[] = [
  'portAccesses', 'registerAccesses', 'interrupts', 'txFrames', 'txBytes', 'rxFrames', 'rxBytes', 'dmaBytes',
  'rxDropped', 'rxNoBuffer', 'unsupportedDescriptors', 'dmaErrors', 'dmaOutsideRam', 'unmodelledRegisterAccesses',
];

function pick<T extends object>(counters: T, keys: readonly (keyof T)[]): Readonly<T> {
  const out = {} as T;
  for (const k of keys) out[k] = counters[k];
  return out;
}

/** Why a run ended. */
export type ExitInfo =
  | { readonly reason: 'exit-device'; readonly code: number }
  | { readonly reason: 'triple-fault'; readonly detail: string }
  | { readonly reason: 'halt'; readonly detail: string }
  | { readonly reason: 'shutdown'; readonly detail: string }
  | { readonly reason: 'unsupported'; readonly address: number; readonly bytes: string; readonly disassembly: string; readonly detail: string }
  | { readonly reason: 'instruction-limit'; readonly detail: string };

/**
 * The machine's counters at the guest's first entry to user mode (the first time CS is
 * loaded with CPL 3): where boot ends and the workloads (user programs) begin. Taken when the
 * entering instruction (IRET, far RET, SYSEXIT, a monitor's IRET hypercall) loads CS, before it
 * retires: `instructions` counts the instructions retired before it.
 */
export interface UserStart {
  readonly instructions: number;
  readonly cycles: number;
  /** `accountCycles` at that moment (a copy): the categories sum to `cycles`. */
  readonly categories: Readonly<Record<string, CategoryTotal>>;
}

/** What a run did: everything here is a deterministic function of image, profile and options. */
export interface RunOutcome {
  readonly exit: ExitInfo;
  readonly instructions: number;
  readonly cycles: number;
  /** Cycles spent halted, waiting for an interrupt (included in `cycles`). */
  readonly idleCycles: number;
  /** `cycles` split into categories that sum to it. */
  readonly accounting: CycleAccounting;
  /** The counters at the guest's first entry to ring 3; null if it never got there. */
  readonly userStart: UserStart | null;
  readonly tlb: {
    readonly itlb: TlbCounters;
    readonly dtlb: TlbCounters;
    /** Memory references made by page walks. */
    readonly walkReferences: number;
    /** Accessed/dirty bit updates written by page walks. */
    readonly accessedDirtyUpdates: number;
  };
  /** Exceptions and interrupts delivered, by vector (hex key "0x0e"), ascending. */
  readonly events: Readonly<Record<string, number>>;
  readonly devices: {
    readonly portAccesses: number;
    /** Rising edges of PIT channel 0 (timer interrupt requests). */
    readonly timerTicks: number;
    readonly spuriousInterrupts: number;
    /** The ATA controller's counters, when the machine has a disk (`AtaCounters`, that key order). */
    readonly ata?: Readonly<AtaCounters>;
    /** The e1000's counters, when the machine has a NIC (`E1000Counters`, that key order). */
    readonly e1000?: Readonly<E1000Counters>;
  };
  readonly console: { readonly bytes: number; readonly sha256: string };
}

/** Progress after each run slice. */
export interface RunProgress {
  readonly instructions: number;
  readonly cycles: number;
}

export interface RunOptions {
  /** Stop with `instruction-limit` after this many retired instructions. */
  readonly maxInstructions: number;
  /** Instructions per slice between progress reports and console flushes (default 1,000,000). */
  readonly sliceInstructions?: number;
  readonly onProgress?: (p: RunProgress) => void;
}

/** How a flat binary is started. */
export interface FlatStart {
  readonly loadAddress: number;
  /** Default: the load address. */
  readonly entry?: number;
  /** 'protected32' (default): flat 4 GiB segments, as Multiboot; 'real': real mode. */
  readonly mode?: 'protected32' | 'real';
}

const hex = (v: number): string => '0x' + (v >>> 0).toString(16).padStart(8, '0');

/**
 * The emulated PC: RAM, port bus, TLBs, the CPU and the devices (8259A pair, 8254 PIT,
 * COM1 16550, debug console 0xE9, exit device 0xF4, ports 0x61/0x80/0x92), all timed by
 * the CPU cycle counter. One object per machine; several can live in one process.
 */
export class Machine {
  readonly mem: PhysicalMemory;
  readonly io: PortBus;
  readonly cpu: Cpu;
  readonly clock: Clock;
  readonly pic: DualPic;
  readonly pit: Pit;
  readonly uart: Uart16550;
  readonly console: ConsoleSink;
  readonly profile: Profile;
  /** The emulated disk, when the options ask for one. */
  readonly disk: AtaController | null;
  /** The emulated NIC, when the options ask for one. */
  readonly nic: E1000 | null;
  /** The snapshot at the guest's first entry to user mode, once it has happened. */
  userStart: UserStart | null = null;

  constructor(options: MachineOptions) {
    const mib = options.memoryMiB ?? 64;
    if (!Number.isInteger(mib) || mib < 1 || mib > 2048) throw new RangeError(`memory size must be an integer number of MiB in 1..2048, got ${mib}`);
    this.profile = options.profile;
    const p = options.profile;
    const monMiB = options.monitorMiB ?? 0;
    if (!Number.isInteger(monMiB) || monMiB < 0 || mib + monMiB > 2048) throw new RangeError(`monitor memory must be an integer number of MiB with guest + monitor ≤ 2048, got ${monMiB}`);
    this.mem = new PhysicalMemory(mib * 1024 * 1024, monMiB * 1024 * 1024);
    this.io = new PortBus();
    const itlb = new Tlb({ sets: p.tlb.itlb.sets.value, ways: p.tlb.itlb.ways.value });
    const dtlb = new Tlb({ sets: p.tlb.dtlb.sets.value, ways: p.tlb.dtlb.ways.value });
    this.cpu = new Cpu(this.mem, this.io, toCostTable(p), { itlb, dtlb });
    this.clock = new Clock(this.cpu, p.cpu.frequencyHz.value);
    this.console = new ConsoleSink();
    const cpu = this.cpu;
    this.pic = new DualPic(this.io, (level) => cpu.setIntrLine(level));
    cpu.intrAck = () => this.pic.acknowledge();
    this.pit = new Pit(this.io, this.clock, (level) => this.pic.setIrq(0, level));
    this.uart = new Uart16550(this.io, this.console, (level) => this.pic.setIrq(COM1_IRQ, level));
    new DebugCon(this.io, this.console);
    new ExitDevice(cpu, this.io);
    new SystemPorts(cpu, this.io);
    this.disk = options.disk ? attachBlockDevice(this, options.disk) : null;
    this.nic = options.nic ? attachNic(this, options.nic) : null;
    this.installHaltWatchdog();
    cpu.onFirstUserEntry = () => {
      const a = accountCycles(cpu);
      const categories: Record<string, CategoryTotal> = {};
      for (const [k, c] of Object.entries(a.categories)) categories[k] = { cycles: c.cycles, count: c.count };
      this.userStart = { instructions: cpu.instructions, cycles: cpu.cycles, categories };
    };
    if (options.jit === false) cpu.jitEnabled = false;
  }

  /**
   * A halted CPU (interrupts enabled) wakes only through INTR. Device timer events keep
   * coming, but if several in a row leave INTR low, the requests they make are masked or
   * blocked by an interrupt in service, and only the halted CPU could change that: the
   * machine can never continue, so it stops (a real PC would hang; a host must not).
   */
  private installHaltWatchdog(): void {
    const cpu = this.cpu;
    let quietEvents = 0;
    this.clock.onDispatched = () => {
      if (!cpu.halted || cpu.intrLine) { quietEvents = 0; return; }
      if (++quietEvents < 4) return;
      stopMachine(cpu, {
        kind: 'halt',
        detail: `HLT with interrupts enabled (resuming at ${hex(cpu.segBase[CS]! + cpu.eip)}), but no interrupt can reach the CPU (every request masked or blocked by one in service)`,
      });
    };
  }

  /**
   * Loads a Multiboot v1 kernel (ELF32, or any file with the a.out-kludge fields) and puts
   * the CPU in the Multiboot entry state: flat 32-bit protected mode, paging off, IF=0,
   * EAX=0x2BADB002, EBX=the information structure. `name` is the file name given in
   * errors and in the command line ("<name> <cmdline>").
   */
  loadMultiboot(bytes: Uint8Array, name: string, cmdline = ''): MultibootLoad {
    const r = loadMultiboot(this.mem.guestView(), bytes, name, cmdline);
    this.cpu.resetFlat32(r.entry);
    this.cpu.r32[EAX] = r.eax;
    this.cpu.r32[EBX] = r.ebx;
    return r;
  }

  /** Loads a raw binary and starts it at `entry` in flat 32-bit protected mode or real mode. */
  loadFlat(bytes: Uint8Array, name: string, start: FlatStart): FlatLoad {
    const r = loadFlat(this.mem.guestView(), bytes, name, { loadAddress: start.loadAddress, entry: start.entry });
    if (start.mode === 'real') {
      if (r.entry >= 0x100000) throw new ImageError(name, `entry ${hex(r.entry)} is not reachable in real mode (must be below 0x100000)`);
      this.cpu.resetRealMode();
      const cs = r.entry < 0x10000 ? 0 : (r.entry >>> 4) & 0xffff;
      this.cpu.loadRealSegment(CS, cs);
      this.cpu.eip = r.entry - cs * 16;
    } else {
      this.cpu.resetFlat32(r.entry);
    }
    return r;
  }

  /** Runs until the guest stops the machine or `maxInstructions` retire, in slices. */
  run(options: RunOptions): RunOutcome {
    const cpu = this.cpu;
    const slice = options.sliceInstructions ?? 1_000_000;
    let remaining = options.maxInstructions;
    while (cpu.stopReason === null && remaining > 0) {
      const n = cpu.run(Math.min(slice, remaining));
      remaining -= n;
      this.console.flush();
      options.onProgress?.({ instructions: cpu.instructions, cycles: cpu.cycles });
      if (n === 0 && cpu.stopReason === null) break;
    }
    this.console.flush();
    return this.outcome();
  }

  /** The outcome as of now. */
  outcome(): RunOutcome {
    const cpu = this.cpu;
    const events: Record<string, number> = {};
    for (let v = 0; v < 256; v++) {
      const n = cpu.eventCounts[v]!;
      if (n !== 0) events['0x' + v.toString(16).padStart(2, '0')] = n;
    }
    return {
      exit: this.exitInfo(),
      instructions: cpu.instructions,
      cycles: cpu.cycles,
      idleCycles: cpu.idleCycles,
      accounting: accountCycles(cpu),
      userStart: this.userStart,
      tlb: {
        itlb: { ...cpu.itlb.counters },
        dtlb: { ...cpu.dtlb.counters },
        walkReferences: cpu.walkRefs,
        accessedDirtyUpdates: cpu.adUpdates,
      },
      events,
      devices: {
        portAccesses: this.io.accesses, timerTicks: this.pit.irq0Edges, spuriousInterrupts: this.pic.spurious,
        ...(this.disk !== null ? { ata: pick(this.disk.counters, ATA_KEYS) } : {}),
        ...(this.nic !== null ? { e1000: pick(this.nic.counters, E1000_KEYS) } : {}),
      },
      console: { bytes: this.console.length, sha256: this.console.sha256() },
    };
  }

  private exitInfo(): ExitInfo {
    const s = this.cpu.stopReason;
    if (s === null) return { reason: 'instruction-limit', detail: `instruction limit reached after ${this.cpu.instructions} instructions` };
    switch (s.kind) {
      case 'exit-device': return { reason: 'exit-device', code: s.code };
      case 'triple-fault': return { reason: 'triple-fault', detail: s.detail };
      case 'halt': return { reason: 'halt', detail: s.detail };
      case 'shutdown': return { reason: 'shutdown', detail: s.detail };
      case 'unsupported': {
        const d = disassemble(s.bytes, s.address, this.cpu.cs32 ? 32 : 16);
        const len = d.length > 0 ? d.length : Math.min(s.bytes.length, 8);
        const bytes = s.bytes.slice(0, len).map((b) => b.toString(16).padStart(2, '0')).join(' ');
        return { reason: 'unsupported', address: s.address, bytes, disassembly: d.text, detail: s.detail };
      }
    }
  }
}
