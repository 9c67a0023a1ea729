/**
 * `trap`: naive trap-and-emulate (Popek & Goldberg 1974), on x86 where it does not work
 * (Robin & Irvine 2000). The guest kernel runs in ring 1 on the monitor's copy of its GDT
 * (DPL 0 compressed to 1, segments truncated below the monitor's linear window); every
 * privileged instruction faults (#GP in ring 1) and is emulated against the virtual CPU;
 * exceptions and interrupts are reflected through the guest's own IDT with a frame showing
 * the virtual privilege and IF; memory is virtualized by shadow paging.
 *
 * Sensitive instructions that do not fault in ring 1 run as they are and give the guest
 * the real answers: PUSHF shows IF = 1 (the monitor keeps interrupts on), POPF/IRET silently
 * keep IF and IOPL, SGDT/SIDT/SLDT/STR show the monitor's tables, SMSW the real CR0, MOV
 * from CS/SS and LAR/LSL/VERR/VERW see RPL/DPL 1. This mode does not fix them: that is its
 * lesson.
 */
import {
  CR0_PE, CR0_PG, CR0_WP, CR0_ET, CR4_PGE, CR4_PSE, CS, DS, EAX, ECX, EDX, ES, ESP, FAULT, FS, GS, SS, Vec,
  type Cpu,
} from '../machine/cpu/cpu.js';
import { deliverArchitectural, EventKind, eventName } from '../machine/cpu/interrupts.js';
import { IF, IOPL } from '../machine/cpu/flags.js';
import { loadSegment } from '../machine/cpu/segmentation.js';
import type { Machine } from '../machine/machine.js';
import type { PortBus } from '../machine/port-bus.js';
import { hasVmmFigures, toVmmCosts } from '../profiles/index.js';
import type { Profile } from '../profiles/schema.js';
import { PROVISIONAL_VMM_COSTS } from './costs.js';
import type { Monitor, MonitorStats } from './monitor.js';
import { mutant } from './mutants.js';
import {
  FaultOutcome, MonitorFrames, SHADOW_CATEGORY, shadowBuildCharge, shadowFaultCharge, ShadowPaging, shadowSoftwareCosts,
  type ShadowSoftwareCosts,
} from './shadow-paging.js';

/** The monitor's linear window: the top 4 MiB (shadow directory entry 1023). */
export const MONITOR_WINDOW = 0xffc00000;
const WINDOW_PDE = 1023;
/** Window pages: 0–15 the GDT copy (64 KiB), 16 the monitor's TSS, 17–32 the LDT copy. */
const GDT_PAGES = 16, TSS_PAGE = 16, LDT_PAGE = 17, LDT_PAGES = 16, WINDOW_PAGES = LDT_PAGE + LDT_PAGES;
/** Monitor memory a machine needs for `trap` (MiB): window, GDT copy, TSS, shadow tables. */
export const TRAP_MONITOR_MIB = 8;

/** What `trap` charges, in cycles per event. */
export interface TrapCosts {
  /** Hardware exception delivery into the monitor, state save/restore, IRET back to ring 1. */
  readonly trapRoundTrip: number;
  readonly emulateInstruction: number;
  readonly reflectEvent: number;
  /**
   * The shadow page-table software (hidden and trace faults, all in: the figures include
   * the trap; drops; new spaces): shared with `full` and `hw --paging shadow`.
   */
  readonly shadow: ShadowSoftwareCosts;
  readonly gdtDescriptor: number;
  /** The monitor's device model handling one trapped port access. */
  readonly portIo: number;
}

/**
 * Costs from the profile's VMM figures (schema v2: `monitor`, `binaryTranslation` shadow
 * figures, `devices`), plus its own exception-delivery cost for the hardware part of a
 * trap; a profile without them gets the provisional table (src/vmm/costs.ts).
 */
export function trapCosts(profile: Profile, interruptCycles: number): TrapCosts {
  if (hasVmmFigures(profile)) {
    const c = toVmmCosts(profile);
    return {
      trapRoundTrip: interruptCycles + c.monitor.trapSaveRestore,
      emulateInstruction: c.monitor.emulateInstruction,
      reflectEvent: c.monitor.reflectEvent,
      shadow: shadowSoftwareCosts(c),
      gdtDescriptor: c.monitor.descriptorShadow,
      portIo: Math.round(c.devices.portIoEmulation),
    };
  }
  const p = PROVISIONAL_VMM_COSTS;
  return {
    trapRoundTrip: interruptCycles + p.trapRoundTrip.value, emulateInstruction: p.emulateInstruction.value,
    reflectEvent: p.reflectEvent.value, shadow: shadowSoftwareCosts(null), gdtDescriptor: p.gdtDescriptor.value, portIo: 700,
  };
}

/** The port bus's handler tables (private in `PortBus`), read to tell an unassigned port. */
interface PortTables {
  readonly r8: readonly (unknown | undefined)[]; readonly w8: readonly (unknown | undefined)[];
  readonly r16: ReadonlyMap<number, unknown>; readonly w16: ReadonlyMap<number, unknown>;
  readonly r32: ReadonlyMap<number, unknown>; readonly w32: ReadonlyMap<number, unknown>;
}

/**
 * True when no device answers a `size`-byte access at `port` (no wide handler, and no byte
 * handler for any of its bytes): the bus reads all ones and drops the write, as an ISA bus
 * with nothing behind the address does, and a monitor counts it (`attack.unassigned-port`).
 */
export function unassignedPort(bus: PortBus, port: number, size: 1 | 2 | 4, isIn: boolean): boolean {
  const t = bus as unknown as PortTables;
  const p = port & 0xffff;
  if (size === 4 && (isIn ? t.r32 : t.w32).has(p)) return false;
  if (size >= 2 && (isIn ? t.r16 : t.w16).has(p)) return false;
  if (size === 4 && (isIn ? t.r16 : t.w16).has((p + 2) & 0xffff)) return false;
  const b = isIn ? t.r8 : t.w8;
  for (let i = 0; i < size; i++) if (b[(p + i) & 0xffff] !== undefined) return false;
  return true;
}

/**
 * The guest's DMA attempts outside its RAM that the machine's devices refused (ATA bus
 * master and e1000 counters `dmaOutsideRam`), for the monitors' `attack.dma-outside-ram`.
 */
export function dmaOutsideRam(machine: Machine): number {
  return (machine.disk?.counters.dmaOutsideRam ?? 0) + (machine.nic?.counters.dmaOutsideRam ?? 0);
}

/** The virtual CPU: what the guest believes its privileged state is. */
export interface VirtualCpu {
  cr0: number; cr2: number; cr3: number; cr4: number;
  gdtrBase: number; gdtrLimit: number;
  idtrBase: number; idtrLimit: number;
  ldtrSel: number; trSel: number; trBase: number; trLimit: number;
  /** Virtual EFLAGS.IF and IOPL (bits as in EFLAGS). */
  vif: boolean; iopl: number;
  sysenterCs: number;
}

export class TrapMonitor implements Monitor {
  readonly mode = 'trap' as const;
  readonly v: VirtualCpu = {
    cr0: 0, cr2: 0, cr3: 0, cr4: 0, gdtrBase: 0, gdtrLimit: 0xffff, idtrBase: 0, idtrLimit: 0x3ff,
    ldtrSel: 0, trSel: 0, trBase: 0, trLimit: 0xffff, vif: false, iopl: 0, sysenterCs: 0,
  };
  shadow!: ShadowPaging;
  /** Cycle costs (from the machine's profile at `attach`). */
  costs!: TrapCosts;
  private cpu!: Cpu;
  private machine!: Machine;
  private gdtPhys = 0;
  private tssPhys = 0;
  private ldtPhys = 0;
  /** The guest's LDT (linear base and limit from its descriptor). */
  private ldtBase = 0;
  private ldtLimit = 0;
  /**
   * Per descriptor slot of the GDT and LDT copies: its accessed bit is in the guest's table
   * too (`syncAccessed`); cleared when the copy is rebuilt.
   */
  private readonly gdtSynced = new Uint8Array(GDT_PAGES * 512);
  private readonly ldtSynced = new Uint8Array(LDT_PAGES * 512);
  /** Interrupts acknowledged while the virtual IF was clear, delivered when it is set. */
  private readonly pending: number[] = [];
  private readonly counts = new Map<string, number>();

  attach(machine: Machine): void {
    const cpu = machine.cpu;
    if (cpu.monitor !== null) throw new Error('trap: the machine already has a monitor');
    const mem = machine.mem;
    if (mem.size - mem.guestSize < 1024 * 1024) throw new Error(`trap: needs at least 1 MiB of monitor memory above guest RAM (Machine option monitorMiB, e.g. ${TRAP_MONITOR_MIB})`);
    if (!cpu.protectedMode || (cpu.cr0 & CR0_PG) !== 0 || cpu.v86 || cpu.cpl !== 0) {
      throw new Error('trap: attach at the Multiboot entry state (flat protected mode, ring 0, paging off)');
    }
    this.cpu = cpu;
    this.machine = machine;
    this.costs = trapCosts(machine.profile, cpu.cost.interrupt);
    const frames = new MonitorFrames(mem);
    const windowPt = frames.alloc();
    this.gdtPhys = windowPt + 4096; // the next frames, in order
    for (let i = 0; i < WINDOW_PAGES; i++) frames.alloc();
    this.tssPhys = this.gdtPhys + TSS_PAGE * 4096;
    this.ldtPhys = this.gdtPhys + LDT_PAGE * 4096;
    // Window PTEs: present, supervisor, writable (the CPU sets accessed bits in the
    // descriptor copies). Ring 1 cannot reach them: its segments end below the window.
    for (let i = 0; i < WINDOW_PAGES; i++) mem.write32(windowPt + i * 4, (this.gdtPhys + i * 4096) | 1 | 2);
    // No I/O permission bitmap in the monitor's TSS (base beyond its limit): all I/O from
    // rings above IOPL faults, and the monitor checks the guest's own bitmap.
    mem.write32(this.tssPhys + 0x64, 0x68 << 16);
    const v = this.v;
    v.cr0 = cpu.cr0; v.cr3 = cpu.cr3; v.cr4 = cpu.cr4;
    v.gdtrBase = cpu.gdtrBase; v.gdtrLimit = cpu.gdtrLimit; v.idtrBase = cpu.idtrBase; v.idtrLimit = cpu.idtrLimit;
    v.vif = (cpu.flags & IF) !== 0; v.iopl = (cpu.flags & IOPL) >>> 12; v.sysenterCs = cpu.sysenterCs;
    this.shadow = new ShadowPaging(cpu, frames, v);
    this.shadow.monitorPde = { index: WINDOW_PDE, value: windowPt | 1 | 2 };
    // The real machine: paging always on (the shadow), WP so ring 1 honours read-only
    // shadow entries (traces), no PSE/PGE in the shadow; SYSENTER_CS 0 so SYSENTER faults.
    cpu.cr0 = CR0_PE | CR0_PG | CR0_WP | CR0_ET | (v.cr0 & 0x0e);
    cpu.cr4 = 0;
    cpu.sysenterCs = 0;
    cpu.updatePaging();
    this.shadow.activate();
    this.rebuildGdt();
    // The monitor's TSS: only SS1:ESP1 matter (events from ring 3 enter ring 1 on them).
    cpu.trSel = 0; cpu.trBase = (MONITOR_WINDOW + TSS_PAGE * 4096) | 0; cpu.trLimit = 0x67; cpu.trAttr = 0x8b;
    // Deprivilege the running kernel: its current segments, as ring 1 sees them.
    cpu.cpl = 1;
    for (const s of [CS, SS, DS, ES, FS, GS]) {
      const attr = cpu.segAttr[s]!;
      if (attr === 0) continue;
      const sel = s === CS || s === SS ? (cpu.segSel[s]! & 0xfffc) | 1 : cpu.segSel[s]!;
      cpu.setSegmentCache(s, sel, cpu.segBase[s]!, truncate(cpu.segBase[s]!, cpu.segLimit[s]!), dpl1(attr));
    }
    cpu.flags = (cpu.flags | IF) & ~IOPL;
    cpu.resetFetch();
    cpu.monitor = this;
  }

  stats(): MonitorStats {
    const out: Record<string, number> = {};
    out['attack.unassigned-port'] = 0;
    for (const k of [...this.counts.keys()].sort()) out[k] = this.counts.get(k)!;
    Object.assign(out, this.shadow.statsRecord());
    out['attack.dma-outside-ram'] = dmaOutsideRam(this.machine);
    return out;
  }

  /** Counts an event that costs nothing by itself (its trap is charged on its own). */
  private note(kind: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  /** A trapped port I/O instruction (`op`, after its prefixes, EIP past the opcode): true if no device answers its port. */
  private portUnassigned(op: number, os: boolean): boolean {
    const cpu = this.cpu;
    const size = (op & 1) === 0 ? 1 : os ? 4 : 2;
    const port = op >= 0xe4 && op <= 0xe7 ? cpu.fetch8() : cpu.r16[EDX << 1]!;
    const isIn = op === 0xe4 || op === 0xe5 || op === 0xec || op === 0xed || op === 0x6c || op === 0x6d;
    return unassignedPort(this.machine.io, port, size, isIn);
  }

  private count(kind: string, cycles: number): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    this.cpu.charge(kind, cycles);
  }

  /** The guest's virtual CPL: ring 1 is the guest kernel's ring 0. */
  private get vcpl(): number { return this.cpu.cpl === 1 ? 0 : this.cpu.cpl; }
  /** Virtual IF: guest user code runs with interrupts enabled (IRET to ring 3 cannot tell us). */
  private get vifNow(): boolean { return this.cpu.cpl === 3 || this.v.vif; }

  // ======================================================================================
  // Events
  // ======================================================================================

  private depth = 0;

  onEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): boolean {
    if (this.depth > 6) {
      cpu.stop({ kind: 'shutdown', detail: `trap: monitor could not make progress (${eventName(vector, code)} while handling a chain of faults at 0x${((cpu.segBase[CS]! + cpu.eip) >>> 0).toString(16)})` });
      return true;
    }
    if (this.depth === 0) this.syncAccessed();
    this.depth++;
    try {
      this.event(vector, code, kind);
    } catch (e) {
      if (e !== FAULT) throw e;
      if (cpu.stopReason === null) {
        // A fault while emulating: the instruction restarts. A page fault may be hidden (the
        // monitor's business); any other is what the instruction does to the guest.
        cpu.eip = cpu.instrStart;
        cpu.resetFetch();
        if (cpu.excVector === Vec.PF) return this.onEvent(cpu, cpu.excVector, cpu.excCode, EventKind.Fault);
        this.count(`exit:reflect-${eventName(cpu.excVector, -1)}`, this.costs.trapRoundTrip + this.costs.reflectEvent);
        try { this.reflect(cpu.excVector, cpu.excCode, EventKind.Fault); } catch (e2) { if (e2 !== FAULT) throw e2; }
      }
    } finally {
      this.depth--;
    }
    return true;
  }

  private event(vector: number, code: number, kind: EventKind): void {
    const cpu = this.cpu;
    if (cpu.cpl === 2 || cpu.cpl === 0) cpu.unsupported(`trap: the guest runs in real ring ${cpu.cpl} (only virtual rings 0 and 3 are supported)`);
    if (this.pending.length > 0 && this.vifNow && (kind === EventKind.Software || kind === EventKind.Fault || kind === EventKind.External)) {
      // An interrupt held while the guest kernel had IF clear, and the guest has enabled
      // interrupts in a way that does not trap (IRET to user code): the monitor only learns
      // it at this next trap. The interrupt comes first; a faulting or INT instruction runs
      // again after the handler returns.
      if (kind === EventKind.External) this.pending.push(vector);
      else cpu.eip = cpu.instrStart;
      cpu.resetFetch();
      this.deliverPending();
      return;
    }
    if (kind === EventKind.External) {
      if (!this.vifNow && !mutant('virtual-if-ignored')) { this.pending.push(vector); this.count('exit:interrupt-held', this.costs.trapRoundTrip); return; } // verifier mutant
      this.count('exit:interrupt', this.costs.trapRoundTrip + this.costs.reflectEvent);
      this.reflect(vector, -1, EventKind.External);
      return;
    }
    if (kind === EventKind.Software) {
      // INT n: the gate checks the CPU makes (limit, type, DPL against the *virtual* CPL,
      // present), done here so that the real ring-1 DPL check does not refuse the guest
      // kernel and the frame that results is known.
      const hi = this.readGuestLin32(this.v.idtrBase + vector * 8 + 4);
      const t = (hi >>> 8) & 0x1f;
      const err = vector * 8 + 2;
      let fault = -1;
      if (vector * 8 + 7 > this.v.idtrLimit || (t !== 6 && t !== 7 && t !== 14 && t !== 15 && t !== 5)) fault = Vec.GP;
      else if (((hi >>> 13) & 3) < this.vcpl) fault = Vec.GP;
      else if ((hi & 0x8000) === 0) fault = Vec.NP;
      if (fault >= 0) {
        cpu.eip = cpu.instrStart;
        cpu.resetFetch();
        this.reflectFault(fault, err);
        return;
      }
    }
    if (kind === EventKind.Software) {
      // INT n from the guest kernel: the gate's DPL is checked against the virtual CPL (0),
      // which the real ring-1 check would refuse; delivered without it.
      this.count('exit:int', this.costs.trapRoundTrip + this.costs.reflectEvent);
      this.reflect(vector, -1, this.vcpl === 0 ? EventKind.External : EventKind.Software);
      return;
    }
    if (vector === Vec.PF) {
      const drops = this.shadow.stats.syncDrops;
      const r = this.shadow.handleFault(code, cpu.cpl === 3);
      const ch = shadowFaultCharge(this.costs.shadow, r, this.shadow.stats.syncDrops - drops);
      if (ch !== null) { this.count(ch[0], ch[1]); return; }
      switch (r) {
        case FaultOutcome.Stopped: return;
        case FaultOutcome.Guest:
          this.v.cr2 = cpu.cr2;
          this.count('exit:reflect-#PF', this.costs.trapRoundTrip + this.costs.reflectEvent);
          this.reflect(Vec.PF, this.shadow.guestCode, kind);
          return;
      }
    }
    if (vector === Vec.GP && this.emulate(code)) return;
    this.count(`exit:reflect-${eventName(vector, -1).replace(/^#/, '#')}`, this.costs.trapRoundTrip + this.costs.reflectEvent);
    this.reflect(vector, code, kind);
  }

  /** Reflects a fault the guest's instruction takes (EIP at the instruction). */
  private reflectFault(vector: number, code: number): void {
    this.count(`exit:reflect-${eventName(vector, -1)}`, this.costs.trapRoundTrip + this.costs.reflectEvent);
    this.reflect(vector, code, EventKind.Fault);
  }

  /**
   * Delivers an event to the guest through its own IDT (the CPU's delivery, with the
   * virtual IDTR and the monitor TSS's SS1:ESP1 taken from the guest TSS's SS0:ESP0), then
   * makes the pushed frame show the virtual CS RPL, IF and IOPL.
   */
  private reflect(vector: number, code: number, kind: EventKind): void {
    const cpu = this.cpu;
    const v = this.v;
    const fromKernel = cpu.cpl === 1;
    const vif = this.vifNow;
    this.syncRingStack();
    // Fill the shadow for what delivery touches (the gate, the frame), so that the CPU's
    // delivery does not take hidden faults (which it would chain into #DF).
    this.shadow.prefault(v.idtrBase + vector * 8, false);
    this.shadow.prefault(v.idtrBase + vector * 8 + 7, false);
    const sp = cpu.cpl === 3 ? this.readGuestLin32(v.trBase + 4) : (cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!)) | 0;
    this.shadow.prefault(sp - 1, true);
    this.shadow.prefault(sp - 24, true);
    const realIdtBase = cpu.idtrBase, realIdtLimit = cpu.idtrLimit;
    cpu.idtrBase = v.idtrBase; cpu.idtrLimit = v.idtrLimit;
    try {
      deliverArchitectural(cpu, vector, code, kind);
    } finally {
      cpu.idtrBase = realIdtBase; cpu.idtrLimit = realIdtLimit;
    }
    if (cpu.stopReason !== null) return;
    // The gate's type decides IF in the handler (interrupt gates clear it); read it back.
    const gateHi = this.readGuestLin32(v.idtrBase + vector * 8 + 4);
    const size32 = (gateHi & 0x800) !== 0;
    const interruptGate = ((gateHi >>> 8) & 1) === 0;
    const pushedCode = code >= 0 && kind !== EventKind.Software && kind !== EventKind.External &&
      (vector === Vec.DF || (vector >= Vec.TS && vector <= Vec.PF) || vector === Vec.AC);
    const sz = size32 ? 4 : 2;
    const base = (cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!)) >>> 0;
    const at = base + (pushedCode ? sz : 0);
    // Frame: EIP, CS, EFLAGS: CS shows RPL 0 for the guest kernel; EFLAGS its virtual IF/IOPL.
    if (fromKernel && !mutant('reflect-cs-rpl')) { // verifier mutant
      const cs = this.readStack(at + sz, size32);
      this.writeStack(at + sz, cs & ~3, size32);
    }
    const fl = this.readStack(at + 2 * sz, size32);
    if (!mutant('reflect-real-flags')) this.writeStack(at + 2 * sz, (fl & ~(IF | IOPL)) | (vif ? IF : 0) | (v.iopl << 12), size32); // verifier mutant
    if (interruptGate) v.vif = false; else v.vif = vif;
    cpu.flags = (cpu.flags | IF) >>> 0;
  }

  /**
   * The monitor TSS's SS1:ESP1 (where events and call gates from ring 3 enter ring 1) from
   * the guest TSS's SS0:ESP0: at each reflection and at LTR, so that a call gate from guest
   * user code before any reflected event does not find SS1 null (#TS).
   */
  private syncRingStack(): void {
    const v = this.v;
    if (v.trBase === 0 && v.trSel === 0) return;
    const esp0 = this.readGuestLin32(v.trBase + 4);
    const ss0 = this.readGuestLin32(v.trBase + 8) & 0xffff;
    this.cpu.mem.write32(this.tssPhys + 12, esp0);
    this.cpu.mem.write32(this.tssPhys + 16, (ss0 & 0xfffc) | 1);
  }

  private readStack(lin: number, size32: boolean): number {
    return size32 ? this.cpu.readLin32(lin, false) : this.cpu.readLin16(lin, false);
  }
  private writeStack(lin: number, v: number, size32: boolean): void {
    if (size32) this.cpu.writeLin32(lin, v, false); else this.cpu.writeLin16(lin, v, false);
  }

  /** Reads guest memory at a guest-linear address through the guest's own tables (supervisor). */
  private readGuestLin32(lin: number): number {
    const p = this.shadow.guestTranslate(lin >>> 0, false, false);
    if (p < 0 || p + 4 > this.cpu.mem.guestSize) return 0;
    return this.cpu.mem.read32(p);
  }

  // ======================================================================================
  // Privileged instructions (#GP in ring 1)
  // ======================================================================================

  /** Emulates the instruction that raised #GP, if it is privileged and the guest may run it. */
  private emulate(code: number): boolean {
    const cpu = this.cpu;
    const start = cpu.instrStart;
    // Decode prefixes and opcode with the CPU's own fetch (as runBlock does).
    cpu.eip = start;
    cpu.resetFetch();
    let os = cpu.cs32, as = cpu.cs32;
    cpu.segOverride = -1; cpu.rep = 0; cpu.lock = false;
    let op = cpu.fetch8();
    for (let n = 0; n < 14; n++) {
      if (op === 0x66) os = !cpu.cs32;
      else if (op === 0x67) as = !cpu.cs32;
      else if (op === 0x26) cpu.segOverride = ES;
      else if (op === 0x2e) cpu.segOverride = CS;
      else if (op === 0x36) cpu.segOverride = SS;
      else if (op === 0x3e) cpu.segOverride = DS;
      else if (op === 0x64) cpu.segOverride = FS;
      else if (op === 0x65) cpu.segOverride = GS;
      else if (op === 0xf0) cpu.lock = true;
      else if (op === 0xf2 || op === 0xf3) cpu.rep = op;
      else break;
      op = cpu.fetch8();
    }
    if (op === 0x0f) op = 0x100 | cpu.fetch8();
    cpu.opsize32 = os; cpu.addrsize32 = as;
    const kernel = this.vcpl === 0;
    const done = (name: string): boolean => {
      this.count(`exit:${name}`, this.costs.trapRoundTrip + this.costs.emulateInstruction);
      cpu.instructions++;
      return true;
    };
    const restart = (): void => { cpu.eip = start; cpu.resetFetch(); };
    if (!kernel) {
      if (isIo(op)) {
        const unassigned = this.portUnassigned(op, os);
        // I/O from guest user code: the CPU's own check against the guest's IOPL and its
        // TSS's permission bitmap (TR and IOPL swapped in for the one instruction).
        restart();
        const trBase = cpu.trBase, trLimit = cpu.trLimit, flags = cpu.flags;
        cpu.trBase = this.v.trBase; cpu.trLimit = this.v.trLimit;
        cpu.flags = (cpu.flags & ~IOPL) | (this.v.iopl << 12);
        try {
          cpu.stepInstruction();
        } catch (e) {
          if (e !== FAULT || cpu.excVector !== Vec.GP) throw e;
          cpu.trBase = trBase; cpu.trLimit = trLimit; cpu.flags = flags;
          restart();
          return false;
        } finally {
          cpu.trBase = trBase; cpu.trLimit = trLimit; cpu.flags = (cpu.flags & ~IOPL) | (flags & IOPL);
        }
        if (unassigned) this.note('attack.unassigned-port');
        return this.charged('io');
      }
      if (op === 0x134 && this.v.sysenterCs !== 0 && code === 0) { restart(); this.sysenter(); return done('sysenter'); }
      restart();
      return false;
    }
    const v = this.v;
    switch (op) {
      case 0xfa: v.vif = false; return done('cli');
      case 0xfb: {
        v.vif = true;
        cpu.inhibitInterrupts();
        done('sti');
        this.deliverPending();
        return true;
      }
      case 0xf4:
        if (v.vif && this.pending.length > 0) { done('hlt'); this.deliverPending(); return true; }
        if (!v.vif) {
          // As the bare machine reports it (at the instruction boundary after HLT).
          cpu.stop({ kind: 'halt', detail: `HLT with interrupts disabled at 0x${((cpu.segBase[CS]! + cpu.eip) >>> 0).toString(16).padStart(8, '0')}` });
          return true;
        }
        cpu.halt();
        return done('hlt');
      case 0xe4: case 0xe5: case 0xe6: case 0xe7: case 0xec: case 0xed: case 0xee: case 0xef:
      case 0x6c: case 0x6d: case 0x6e: case 0x6f:
        if (this.portUnassigned(op, os)) this.note('attack.unassigned-port');
        restart(); this.runAtRing0(); return this.charged('io');
      case 0x108: case 0x109: return done('wbinvd');
      case 0x106: v.cr0 &= ~8; cpu.cr0 &= ~8; return done('clts');
      case 0x120: {
        cpu.decodeModrm();
        const n = cpu.modrmReg;
        const val = n === 0 ? v.cr0 : n === 2 ? v.cr2 : n === 3 ? v.cr3 : n === 4 ? v.cr4 : -1;
        if (val === -1) { restart(); this.reflectFault(Vec.UD, -1); return true; }
        cpu.r32[cpu.modrmRm] = val;
        return done(`mov-from-cr${n}`);
      }
      case 0x122: {
        cpu.decodeModrm();
        const n = cpu.modrmReg;
        const val = cpu.r32[cpu.modrmRm]!;
        if (!this.writeCr(n, val)) { restart(); this.reflectFault(Vec.UD, -1); return true; }
        return done(`mov-to-cr${n}`);
      }
      case 0x121: case 0x123: restart(); this.runAtRing0(); return this.charged('mov-dr');
      case 0x101: {
        cpu.decodeModrm();
        const r = cpu.modrmReg;
        if (r === 2 || r === 3) {
          if (cpu.modrmMod === 3) { restart(); return false; }
          const limit = cpu.readMem16(cpu.eaSeg, cpu.eaOffset);
          let base = cpu.readMem32(cpu.eaSeg, (cpu.eaOffset + 2) >>> 0);
          if (!os) base &= 0xffffff;
          if (r === 2) { v.gdtrBase = base; v.gdtrLimit = limit; this.rebuildGdt(); return done('lgdt'); }
          v.idtrBase = base; v.idtrLimit = limit;
          return done('lidt');
        }
        if (r === 6) {
          const w = cpu.readRM16();
          const nv = (v.cr0 & ~0xe) | (w & 0xf) | (v.cr0 & 1);
          this.writeCr(0, nv);
          return done('lmsw');
        }
        if (r === 7) {
          if (cpu.modrmMod === 3) { restart(); return false; }
          this.shadow.invalidate((cpu.segBase[cpu.eaSeg]! + cpu.eaOffset) >>> 0);
          return done('invlpg');
        }
        restart();
        return false;
      }
      case 0x100: {
        cpu.decodeModrm();
        const r = cpu.modrmReg;
        if (r === 2) { // LLDT: through the (copied) GDT, as ring 0
          restart(); this.runAtRing0(); v.ldtrSel = cpu.ldtrSel; this.rebuildLdt(); return this.charged('lldt');
        }
        if (r === 3) { // LTR: virtual TR; the guest's descriptor is marked busy in its GDT
          const sel = cpu.readRM16();
          const addr = v.gdtrBase + (sel & 0xfff8);
          const p = this.shadow.guestTranslate(addr, true, false);
          if ((sel & 0xfffc) === 0 || (sel & 4) !== 0 || p < 0 || (sel & 0xfff8) + 7 > v.gdtrLimit) { restart(); return false; }
          const lo = cpu.mem.read32(p), hi = cpu.mem.read32(p + 4);
          const type = (hi >>> 8) & 0x1f;
          if (type !== 9 && type !== 1) { restart(); return false; }
          cpu.mem.write32(p + 4, hi | 0x200);
          v.trSel = sel;
          v.trBase = ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) | 0;
          v.trLimit = (lo & 0xffff) | (hi & 0xf0000);
          this.rebuildGdt();
          this.syncRingStack();
          return done('ltr');
        }
        restart();
        return false;
      }
      case 0x130: case 0x132: {
        if ((cpu.r32[ECX]! >>> 0) === 0x174) {
          if (op === 0x130) v.sysenterCs = cpu.r32[EAX]!;
          else { cpu.r32[EAX] = v.sysenterCs; cpu.r32[EDX] = 0; }
          return done(op === 0x130 ? 'wrmsr' : 'rdmsr');
        }
        restart(); this.runAtRing0(); return this.charged(op === 0x130 ? 'wrmsr' : 'rdmsr');
      }
      case 0x135: { // SYSEXIT: the CPU's own, with the guest's SYSENTER_CS
        restart();
        cpu.sysenterCs = v.sysenterCs;
        try { this.runAtRing0(); } finally { cpu.sysenterCs = 0; }
        return this.charged('sysexit');
      }
      case 0xcf: case 0xcb: case 0xca: {
        // IRET/RET far to the guest kernel (CS RPL 0, refused from ring 1): the frame's
        // selectors get RPL 1 and the popped IF becomes the virtual IF.
        const sz = os ? 4 : 2;
        const sp = (cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!)) >>> 0;
        const cs = this.readStack(sp + sz, os) & 0xffff;
        if ((cs & 3) !== 0) { restart(); return false; }
        if (op === 0xcf) {
          const fl = this.readStack(sp + 2 * sz, os);
          v.vif = (fl & IF) !== 0;
          v.iopl = (fl & IOPL) >>> 12;
          this.writeStack(sp + 2 * sz, (fl | IF) & ~IOPL, os);
        }
        this.writeStack(sp + sz, cs | 1, os);
        restart();
        cpu.stepInstruction();
        done(op === 0xcf ? 'iret' : 'lret');
        cpu.instructions--; // stepInstruction counted it
        if (op === 0xcf) this.deliverPending();
        return true;
      }
      case 0x8e: case 0x17: {
        // MOV SS / POP SS with an RPL-0 selector: load it with RPL 1.
        let sel: number;
        if (op === 0x8e) {
          cpu.decodeModrm();
          if (cpu.modrmReg !== SS) { restart(); return false; }
          sel = cpu.readRM16();
        } else {
          sel = cpu.peekStack16(0);
        }
        if ((sel & 3) !== 0) { restart(); return false; }
        loadSegment(cpu, SS, sel | 1);
        if (op === 0x17) cpu.sp = cpu.ss32 ? (cpu.sp + (os ? 4 : 2)) >>> 0 : (cpu.sp + (os ? 4 : 2)) & 0xffff;
        cpu.inhibitInterrupts();
        return done(op === 0x8e ? 'mov-ss' : 'pop-ss');
      }
      default:
        restart();
        return false;
    }
  }

  /** After `runAtRing0`/`stepInstruction` (which counted the instruction): charge only. */
  private charged(name: string): boolean {
    this.count(`exit:${name}`, this.costs.trapRoundTrip + this.costs.emulateInstruction);
    // A trapped port access is handled by the monitor's device model.
    if (name === 'io') this.cpu.charge('device', this.costs.portIo);
    return true;
  }

  /** Runs the instruction at EIP with the CPU's handler as if in ring 0 (I/O, MSRs, DRs, LLDT). */
  private runAtRing0(): void {
    const cpu = this.cpu;
    const cpl = cpu.cpl;
    cpu.cpl = 0;
    try { cpu.stepInstruction(); } finally { if (cpu.cpl === 0) cpu.cpl = cpl; }
  }

  /** SYSENTER from guest user code: the CPU's own, then moved to ring 1. */
  private sysenter(): void {
    const cpu = this.cpu;
    cpu.sysenterCs = this.v.sysenterCs;
    try { cpu.stepInstruction(); } finally { cpu.sysenterCs = 0; }
    cpu.instructions--; // counted by done()
    cpu.cpl = 1;
    for (const s of [CS, SS]) {
      cpu.setSegmentCache(s, cpu.segSel[s]! | 1, 0, truncate(0, 0xffffffff), dpl1(cpu.segAttr[s]!));
    }
    this.v.vif = false;
    cpu.flags = (cpu.flags | IF) >>> 0;
  }

  /** MOV to CRn (n = 0, 2, 3, 4) against the virtual CPU; false for other registers. */
  private writeCr(n: number, val: number): boolean {
    const cpu = this.cpu, v = this.v;
    switch (n) {
      case 0: {
        if ((val & CR0_PE) === 0) cpu.unsupported('trap: the guest leaves protected mode (CR0.PE = 0)');
        if ((val & 0x80000000) !== 0 && (v.cr0 & CR0_PE) === 0) cpu.raise(Vec.GP, 0);
        const changed = (v.cr0 ^ val) & (CR0_PG | CR0_WP);
        v.cr0 = (val | CR0_ET) | 0;
        cpu.cr0 = (cpu.cr0 & ~0x0e) | (val & 0x0e);
        if (changed !== 0) { this.shadow.flushAll(); this.watchTables(); }
        return true;
      }
      case 2: v.cr2 = val; return true;
      case 3:
        v.cr3 = val & 0xfffff018;
        if ((v.cr0 & CR0_PG) !== 0) {
          const built = this.shadow.stats.spacesBuilt;
          this.shadow.activate();
          if (this.shadow.stats.spacesBuilt !== built) this.count(SHADOW_CATEGORY.build, shadowBuildCharge(this.costs.shadow, this.shadow.stats.spacesBuilt - built));
          this.watchTables();
        }
        return true;
      case 4: {
        const changed = (v.cr4 ^ val) & (CR4_PSE | CR4_PGE);
        if ((val & ~(CR4_PSE | CR4_PGE | 0x4 /* TSD */ | 0x8 /* DE */)) !== 0) cpu.raise(Vec.GP, 0);
        v.cr4 = val;
        cpu.cr4 = val & 0xc; // TSD, DE act on the real CPU
        if (changed !== 0) { this.shadow.flushAll(); this.watchTables(); }
        return true;
      }
      default: return false;
    }
  }

  /** Delivers interrupts held while the virtual IF was clear (one; the next after its IRET/STI). */
  private deliverPending(): void {
    if (this.pending.length === 0 || !this.vifNow) return;
    const vector = this.pending.shift()!;
    this.count('exit:interrupt', this.costs.reflectEvent);
    this.reflect(vector, -1, EventKind.External);
  }

  /**
   * Rebuilds the monitor's GDT copy from the guest's GDT: DPL 0 becomes 1 and segments
   * reaching the monitor window are cut below it.
   */
  private rebuildGdt(): void {
    const cpu = this.cpu, v = this.v;
    const limit = Math.min(v.gdtrLimit, GDT_PAGES * 4096 - 1);
    const n = this.copyTable(v.gdtrBase, limit, this.gdtPhys, GDT_PAGES);
    cpu.gdtrBase = MONITOR_WINDOW | 0;
    cpu.gdtrLimit = limit;
    cpu.charge('gdt-sync', n * this.costs.gdtDescriptor);
    this.watchTables();
  }

  /**
   * Write-protects the guest's GDT and LDT pages (as page tables are), so that a guest
   * write to a descriptor is emulated and the copies rebuilt: the real CPU must never use a
   * descriptor the guest has since changed.
   */
  private watchTables(): void {
    const v = this.v;
    this.shadow.unwatchAll();
    const onGdt = (): void => { this.rebuildGdtOnly(); this.rebuildLdtFromGuest(); };
    for (const [base, limit] of [[v.gdtrBase, Math.min(v.gdtrLimit, GDT_PAGES * 4096 - 1)], [this.ldtBase, this.ldtLimit]] as const) {
      if (limit <= 0 || (base === this.ldtBase && (this.cpu.ldtrSel & 0xfffc) === 0)) continue;
      for (let lin = base & ~0xfff; lin <= base + limit; lin += 4096) {
        const p = this.shadow.guestTranslate(lin, false, false);
        if (p >= 0) this.shadow.watch((p & ~0xfff) >>> 0, onGdt);
      }
    }
  }

  private rebuildGdtOnly(): void {
    const v = this.v;
    const n = this.copyTable(v.gdtrBase, Math.min(v.gdtrLimit, GDT_PAGES * 4096 - 1), this.gdtPhys, GDT_PAGES);
    this.cpu.charge('gdt-sync', n * this.costs.gdtDescriptor);
  }

  private rebuildLdtFromGuest(): void {
    if ((this.cpu.ldtrSel & 0xfffc) === 0) return;
    const n = this.copyTable(this.ldtBase, this.ldtLimit, this.ldtPhys, LDT_PAGES);
    this.cpu.charge('gdt-sync', n * this.costs.gdtDescriptor);
  }

  /** Rebuilds the LDT copy (after LLDT) and points the real LDTR at it. */
  private rebuildLdt(): void {
    const cpu = this.cpu;
    if ((cpu.ldtrSel & 0xfffc) === 0) return;
    this.ldtBase = cpu.ldtrBase; this.ldtLimit = Math.min(cpu.ldtrLimit >>> 0, LDT_PAGES * 4096 - 1);
    const n = this.copyTable(this.ldtBase, this.ldtLimit, this.ldtPhys, LDT_PAGES);
    cpu.ldtrBase = (MONITOR_WINDOW + LDT_PAGE * 4096) | 0;
    cpu.ldtrLimit = this.ldtLimit;
    cpu.charge('gdt-sync', n * this.costs.gdtDescriptor);
    this.watchTables();
  }

  /**
   * Carries the accessed bits the CPU set in the monitor's descriptor copies (it loads
   * segments from them) to the guest's own GDT and LDT, where the bare machine sets them:
   * at every entry to the monitor, before anything there could rebuild a copy, so the guest's
   * tables match native from its next trap on (a run ends in one: the exit port faults).
   * As VMware's monitor did; only code/data descriptors have the bit. No cycles are charged:
   * it is part of the trap's modelled cost.
   */
  private syncAccessed(): void {
    const v = this.v;
    this.syncTableAccessed(v.gdtrBase, Math.min(v.gdtrLimit, GDT_PAGES * 4096 - 1), this.gdtPhys, this.gdtSynced);
    if ((this.cpu.ldtrSel & 0xfffc) !== 0) this.syncTableAccessed(this.ldtBase, this.ldtLimit, this.ldtPhys, this.ldtSynced);
  }

  private syncTableAccessed(guestBase: number, limit: number, phys: number, synced: Uint8Array): void {
    const mem = this.cpu.mem;
    for (let off = 0, i = 0; off + 7 <= limit; off += 8, i++) {
      if (synced[i] !== 0 || (mem.read32(phys + off + 4) & 0x1100) !== 0x1100) continue;
      const g = this.shadow.guestTranslate((guestBase + off + 5) >>> 0, false, false);
      if (g < 0 || g >= mem.guestSize) continue;
      mem.write8(g, mem.read8(g) | 1);
      synced[i] = 1;
    }
  }

  /** Copies a guest descriptor table into monitor memory with DPL 0 → 1 and truncated limits. */
  private copyTable(guestBase: number, limit: number, phys: number, pages: number): number {
    const mem = this.cpu.mem;
    mem.u8.fill(0, phys, phys + pages * 4096);
    (phys === this.gdtPhys ? this.gdtSynced : this.ldtSynced).fill(0);
    let n = 0;
    for (let off = 0; off + 7 <= limit; off += 8) {
      const p = this.shadow.guestTranslate(guestBase + off, false, false);
      if (p < 0 || p + 8 > mem.guestSize) continue;
      let lo = mem.read32(p), hi = mem.read32(p + 4);
      const s = (hi & 0x1000) !== 0;
      if ((hi & 0x6000) === 0) hi |= 0x2000; // DPL 0 → 1
      if (s) {
        const isCode = (hi & 0x800) !== 0, expandDown = !isCode && (hi & 0x400) !== 0;
        if (!expandDown) {
          const base = ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
          const raw = (lo & 0xffff) | (hi & 0xf0000);
          const g = (hi & 0x800000) !== 0;
          const lim = g ? ((raw << 12) | 0xfff) >>> 0 : raw;
          const t = truncate(base, lim);
          if (t !== lim) {
            const nraw = g ? (t >>> 12) : t;
            lo = (lo & ~0xffff) | (nraw & 0xffff);
            hi = (hi & ~0xf0000) | (nraw & 0xf0000);
          }
        }
      }
      mem.write32(phys + off, lo);
      mem.write32(phys + off + 4, hi);
      n++;
    }
    return n;
  }
}

function isIo(op: number): boolean {
  return (op >= 0xe4 && op <= 0xe7) || (op >= 0xec && op <= 0xef) || (op >= 0x6c && op <= 0x6f);
}

/** A segment limit cut so that base + limit stays below the monitor window. */
function truncate(base: number, limit: number): number {
  const end = (base >>> 0) + (limit >>> 0);
  if (end < MONITOR_WINDOW) return limit >>> 0;
  const cut = MONITOR_WINDOW - 1 - (base >>> 0);
  return cut < 0 ? 0 : cut;
}

/** Segment-cache attributes with DPL 0 made 1. */
function dpl1(attr: number): number {
  return (attr & 0x60) === 0 ? attr | 0x20 : attr;
}
