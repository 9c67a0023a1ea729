/**
 * `hw`: hardware-assisted virtualization modelled on VT-x (issue 4, item 3) — the exit side.
 *
 * The guest runs on the real CPU in its own ring 0 ("VMX non-root operation") with its own
 * control registers; the VMCS controls (`vmcs.ts`, KVM's settings) decide which
 * instructions and events exit to the monitor. Each exit is charged `vmExit + vmEntry +
 * exitHandlers[reason]` from the profile to the category `exit:<reason>` (`exit-reasons.ts`),
 * and counted per reason. What the monitor does in the exit — emulate the instruction, talk to
 * the device model, re-inject the exception — has the effect the native handler has (the
 * device models are the machine's own), so the guest-visible outcome equals `native` by
 * construction, and the cost comes only from exits that really happen in the run.
 *
 * Mechanism:
 * - A handler-table overlay wraps the instructions that can exit (HLT, CPUID, IN/OUT/INS/
 *   OUTS, RDMSR/WRMSR, RDTSC, MOV to/from CR, CLTS, LMSW, INVLPG, INVD, WBINVD, MOV DR). The
 *   wrapper runs the native handler first: faults that have priority over VM exits (CPL and
 *   IOPL checks, #UD) are then taken as in native, and an instruction that completes is
 *   tested against the VMCS with its operands (which the handler leaves in the decode state).
 * - `onEvent` tests exceptions against the exception bitmap and external interrupts against
 *   external-interrupt exiting; an exiting event is charged and then delivered through the
 *   guest's IDT (KVM re-injects it on the next entry). INT n never exits. An interrupt that
 *   arrives while the guest cannot take it exits at once and arms interrupt-window exiting
 *   (`intrChanged`): the guest's opening of the window is a reason-7 exit.
 * - VPID off: every exit and every entry flush the TLBs (the SDM's VPID-0 flush), so the
 *   guest pays the refills; VPID on: nothing is flushed.
 * - CR0/CR4 read shadows follow the guest's writes: an exiting write updates the shadow, so
 *   later writes exit only when they change a host-owned bit again.
 *
 * Nested paging: with monitor memory above the guest's RAM, `attach` builds the EPT
 * (`nested-paging.ts`) and installs it as the CPU's TLB-miss walker (`Cpu.pageWalker`,
 * consulted only on a TLB miss). On a CPU object without the hook the
 * CPU walks only the guest's tables and the second-level references are not charged:
 * `stats()` says so with `ept.2d-walk-modelled` 0.
 *
 * Shadow paging (`paging: 'shadow'`, KVM without EPT): the real CR3 holds a shadow directory
 * (`ShadowPaging`, the same as `trap`'s) in monitor memory; the real CR0.PG and WP are forced
 * on and the guest's are virtual (host-owned bits of the CR0 mask, read back through the
 * shadow), as are its CR3 (CR3-load and -store exiting) and CR2. #PF is in the exception
 * bitmap, so every hidden fault, trace fault and guest page fault is an exit (reason 0);
 * a guest fault is then injected with the guest's error code. CR3 loads and INVLPG exit
 * (reasons 28, 14). Before the CPU delivers an event through the guest's IDT, the shadow is
 * filled for the gate, its code descriptor (and SS0's from ring 3; for writing when the CPU
 * will set the accessed bit), the TSS and the frame (a real VMM re-injects an event whose
 * delivery faulted; the CPU here would chain such a fault into #DF: docs/vmm-design.md).
 */
import { CR0_PE, CR0_PG, CR0_TS, CR0_WP, CR4_PAE, CR4_PGE, CR4_PSE, EDX, ESP, SS, Vec, type Cpu } from '../../machine/cpu/cpu.js';
import { deliverArchitectural, EventKind } from '../../machine/cpu/interrupts.js';
import { IF as IF_FLAG } from '../../machine/cpu/flags.js';
import {
  FaultOutcome, MonitorFrames, SHADOW_CATEGORY, shadowBuildCharge, shadowFaultCharge, ShadowPaging, shadowSoftwareCosts,
  type GuestPagingState, type ShadowSoftwareCosts,
} from '../shadow-paging.js';
import { HANDLERS, type Handler } from '../../machine/cpu/op-table.js';
import type { Machine } from '../../machine/machine.js';
import { exitCategory, ExitReason } from './exit-reasons.js';
import { NestedPaging } from './nested-paging.js';
import { dmaOutsideRam, unassignedPort } from '../trap.js';
import { mutant } from '../mutants.js';
import {
  cltsExit, exceptionExit, externalInterruptExit, guestCrRead, instructionExit, interruptWindowExit, ioExit, kvmDefaultVmcs, lmswExit,
  movFromCrExit, movToCrExit, msrExit, passThroughPorts, type IoPortRange, type SimpleInstruction, type Vmcs, type VmExit,
} from './vmcs.js';

/** The cost figures the monitor charges (a subset of `VmmCosts` from src/profiles). */
export interface HwCosts {
  readonly vmExit: number;
  readonly vmEntry: number;
  /** VMM handler cycles indexed by basic exit reason (0 where the profile has no figure). */
  readonly handlerByReason: ArrayLike<number>;
  /** Entries of the 2-D walk's nested TLB (profile `nestedPaging.nestedWalkCacheEntries`); 0 or absent: none. */
  readonly nestedWalkCacheEntries?: number;
  /**
   * The monitor's device model per exiting port-I/O instruction (profile
   * `devices.portIoEmulation`, charged to `device` as `trap` does; the `ioInstruction` handler
   * figure excludes it). Absent: not charged.
   */
  readonly devices?: { readonly portIoEmulation: number };
  /**
   * The shadow page-table software (`paging: 'shadow'`): the profile's `binaryTranslation`
   * hidden/trace-fault and `monitor` shadow figures, the same that `trap` and `full` charge
   * (`shadowSoftwareCosts`). Both absent: the provisional estimates (src/vmm/costs.ts).
   */
  readonly bt?: { readonly hiddenPageFault: number; readonly traceFault: number };
  readonly monitor?: { readonly shadowSpaceCreate: number; readonly shadowPteDrop: number };
}

/** Options of the `hw` mode (CLI: `--paging`, `--vpid`). */
export interface HwOptions {
  readonly paging: 'nested' | 'shadow';
  readonly vpid: boolean;
  /**
   * Port I/O interception: absent, every I/O instruction exits (unconditional I/O exiting,
   * today's KVM); given, I/O bitmaps intercept every port but these ranges, which the guest
   * reaches directly (`KVM_IO_PASS_THROUGH`: KVM's port 0x80 until 2017).
   */
  readonly ioPassThrough?: readonly IoPortRange[];
}

/** The VPID the monitor gives its (single) guest. */
const GUEST_VPID = 1;

/** One-byte and 0F opcodes the overlay wraps (without the 0x200 32-bit bit). */
const IO_OPS = [0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f];
const SIMPLE_OPS: ReadonlyArray<[number, SimpleInstruction]> = [
  [0xf4, 'hlt'], [0x1a2, 'cpuid'], [0x131, 'rdtsc'], [0x108, 'invd'], [0x109, 'wbinvd'],
];

export class HwMonitor {
  readonly mode = 'hw' as const;
  readonly options: HwOptions;
  readonly costs: HwCosts;
  /** What the shadow software costs in the root-mode handler (`paging: 'shadow'`). */
  readonly shadowCosts: ShadowSoftwareCosts;
  /** The controls; tests and experiments may change them after `attach`. */
  vmcs!: Vmcs;
  /** The overlay table installed on the CPU. */
  readonly table: Handler[];
  /** Exits per basic reason. */
  readonly exitsByReason = new Map<number, number>();
  /** TLB flushes caused by VM entries/exits without VPID. */
  transitionFlushes = 0;
  /** The EPT and the 2-D walk (`paging: 'nested'` on a machine with monitor memory). */
  nested: NestedPaging | null = null;
  /** True when the CPU took `nested` as its TLB-miss walker (the hook exists). */
  walkModelled = false;
  /** The shadow page tables (`paging: 'shadow'`). */
  shadow: ShadowPaging | null = null;
  /** The guest's CR0.PG and CR0.WP (shadow paging forces the real ones on). */
  private vPgWp = 0;
  /** The guest's CR3 and CR2 (shadow paging: the real ones are the monitor's). */
  private vCr3 = 0;
  private vCr2 = 0;
  /** CR4 at the last guest write (a PSE/PGE change drops every shadow). */
  private lastCr4 = 0;
  private cpu!: Cpu;
  private machine!: Machine;
  /** Port I/O exits to ports no device answers (`attack.unassigned-port`). */
  unassignedPortAccesses = 0;
  /** Interrupt-window requests withdrawn before the window opened (the line fell first). */
  windowsCancelled = 0;

  constructor(costs: HwCosts, options: HwOptions) {
    this.costs = costs;
    this.options = options;
    this.shadowCosts = shadowSoftwareCosts(costs.bt !== undefined && costs.monitor !== undefined ? { bt: costs.bt, monitor: costs.monitor } : null);
    this.table = this.buildTable();
  }

  attach(machine: Machine): void {
    const cpu = machine.cpu;
    if (cpu.monitor !== null) throw new Error('hw: the machine already has a monitor');
    const shadowPaging = this.options.paging === 'shadow';
    if (shadowPaging && (cpu.cr0 & CR0_PE) === 0) throw new Error('hw: --paging shadow needs a guest that starts in protected mode');
    if (shadowPaging && machine.mem.size - machine.mem.guestSize < 1 << 20) {
      throw new Error('hw: --paging shadow needs monitor memory above guest RAM for the shadow tables (Machine option monitorMiB)');
    }
    this.cpu = cpu;
    this.machine = machine;
    this.vmcs = kvmDefaultVmcs({ ept: !shadowPaging, vpid: this.options.vpid ? GUEST_VPID : 0 });
    if (this.options.ioPassThrough !== undefined) passThroughPorts(this.vmcs, this.options.ioPassThrough);
    // The read shadows start as the guest's values (KVM: vmx_set_cr0/cr4 at vCPU reset).
    this.vmcs.cr0Shadow = cpu.cr0 >>> 0;
    this.vmcs.cr4Shadow = cpu.cr4 >>> 0;
    if (shadowPaging) {
      this.vPgWp = cpu.cr0 & (CR0_PG | CR0_WP);
      this.vCr3 = cpu.cr3 | 0;
      this.vCr2 = cpu.cr2 | 0;
      this.lastCr4 = cpu.cr4 | 0;
      const self = this;
      const guest: GuestPagingState = {
        get cr0() { return ((cpu.cr0 & ~(CR0_PG | CR0_WP)) | self.vPgWp) | 0; },
        get cr3() { return self.vCr3; },
        get cr4() { return cpu.cr4; },
      };
      this.shadow = new ShadowPaging(cpu, new MonitorFrames(machine.mem), guest);
      cpu.cr0 = (cpu.cr0 | CR0_PG | CR0_WP) | 0;
      cpu.updatePaging();
      this.shadowWork(() => this.shadow!.activate());
    } else if (machine.mem.size > machine.mem.guestSize) {
      this.nested = new NestedPaging(machine.mem, { ntlbEntries: this.costs.nestedWalkCacheEntries ?? 0 }, (x) => this.exit(x));
      this.vmcs.eptp = this.nested.builder.eptp;
      // `Cpu.pageWalker` (consulted on a TLB miss); install only where it exists, so that a
      // CPU without it is reported (`ept.2d-walk-modelled` 0) rather than silently wrong.
      const hook = cpu as unknown as { pageWalker?: unknown };
      if ('pageWalker' in hook) { hook.pageWalker = this.nested; this.walkModelled = true; cpu.updatePaging(); }
    }
    cpu.setTable(this.table);
    cpu.monitor = this;
    // The interrupt controller's INTR line, seen by the monitor (interrupt-window exiting).
    const setIntrLine = cpu.setIntrLine.bind(cpu);
    cpu.setIntrLine = (level: boolean): void => {
      const was = cpu.intrLine;
      setIntrLine(level);
      if (level !== was) this.intrChanged(level);
    };
    // VMLAUNCH: the first entry.
    this.transition();
  }

  /** Counters for the run record. */
  stats(): Readonly<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of [...this.exitsByReason.keys()].sort((a, b) => a - b)) out[exitCategory(r)] = this.exitsByReason.get(r)!;
    out['vpid'] = this.options.vpid ? 1 : 0;
    out['tlb.transition-flushes'] = this.transitionFlushes;
    out['ept.2d-walk-modelled'] = this.walkModelled ? 1 : 0;
    out['interrupt-window.cancelled'] = this.windowsCancelled;
    out['attack.unassigned-port'] = this.unassignedPortAccesses;
    out['attack.dma-outside-ram'] = dmaOutsideRam(this.machine);
    // Nested paging: every access to a guest-physical address beyond its RAM is an EPT violation.
    if (this.nested !== null) out['attack.unbacked-memory'] = this.nested.violations;
    if (this.nested !== null) {
      const e = this.nested.ept.counters, w = this.nested.walker.counters;
      out['ept.walks'] = w.walks;
      out['ept.guest-refs'] = w.guestRefs;
      out['ept.ept-refs'] = e.refs;
      out['ept.ntlb-hits'] = e.ntlbHits;
      out['ept.violations'] = this.nested.violations;
    }
    if (this.shadow !== null) Object.assign(out, this.shadow.statsRecord());
    return out;
  }

  /**
   * INTR rose or fell. With external-interrupt exiting, an interrupt exits at once whatever
   * the guest's IF (SDM §25.2); if the guest cannot take it now (IF = 0, or blocking by STI /
   * MOV SS), the monitor cannot inject it and sets interrupt-window exiting (KVM:
   * `enable_irq_window`), so that the guest's opening of the window exits (reason 7) and the
   * interrupt is injected then (`onEvent`). An interrupt the guest can take now is counted
   * when the CPU delivers it (the exit and the injection at the next entry are one boundary
   * apart, so nothing runs in between). If the line falls before the window opens (the guest
   * masked or the device withdrew the request), the monitor clears the control again: this
   * model re-evaluates at the line change, where KVM would at its next exit.
   */
  private intrChanged(level: boolean): void {
    const cpu = this.cpu, v = this.vmcs;
    if (!v.pin.externalInterruptExiting) return;
    if (level) {
      if ((cpu.flags & IF_FLAG) !== 0 && !cpu.intrShadow) return;
      if (mutant('hw-inject-ignores-if')) { this.exit(externalInterruptExit(v, 0)!); deliverArchitectural(cpu, cpu.intrAck(), -1, EventKind.External); return; } // verifier mutant
      if (v.proc.interruptWindowExiting) return; // already waiting for the window
      // The PIC is acknowledged at injection, not on exit: the vector is not known yet.
      this.exit(externalInterruptExit(v, 0)!);
      v.proc.interruptWindowExiting = true;
    } else if (v.proc.interruptWindowExiting && ((cpu.flags & IF_FLAG) === 0 || cpu.intrShadow)) {
      // (With the window open the line falls because the CPU is acknowledging the interrupt.)
      v.proc.interruptWindowExiting = false;
      this.windowsCancelled++;
    }
  }

  /** See `CpuMonitor.onEvent`: charges exiting events, then lets the CPU deliver them. */
  onEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): boolean {
    let x: VmExit | null = null;
    if (kind === EventKind.External && this.vmcs.proc.interruptWindowExiting) {
      // The CPU takes the interrupt at the first boundary with IF = 1 and no blocking: that
      // is where the window exit happens; the monitor injects the interrupt and clears the control.
      x = interruptWindowExit(this.vmcs, (cpu.flags & IF_FLAG) !== 0, cpu.intrShadow);
      this.vmcs.proc.interruptWindowExiting = false;
    } else if (kind === EventKind.External) x = externalInterruptExit(this.vmcs, vector);
    else if (kind === EventKind.Fault || kind === EventKind.Trap) x = exceptionExit(this.vmcs, vector, code < 0 ? 0 : code, cpu.cr2 >>> 0);
    const sh = this.shadow;
    if (sh !== null && vector === Vec.PF && kind === EventKind.Fault) {
      // A #PF exit (#PF is in the exception bitmap under shadow paging): the root-mode
      // handler is the shadow software, which decides whose fault it is. A hidden or trace
      // fault costs the exit and entry plus what that software costs in every shadowing
      // mode (`shadowFaultCharge`, the figures `full` charges); the guest's own fault costs
      // the exit and the `exceptionOrNmi` handler, which injects it.
      const drops = sh.stats.syncDrops;
      const out = this.shadowWork(() => sh.handleFault(code, (code & 4) !== 0));
      const ch = shadowFaultCharge(this.shadowCosts, out, sh.stats.syncDrops - drops);
      if (x !== null) this.exit(x, ch !== null ? 0 : undefined);
      if (ch !== null) this.cpu.charge(ch[0], ch[1]);
      switch (out) {
        case FaultOutcome.Hidden:
        case FaultOutcome.Trace:
          cpu.cr2 = this.vCr2; // the guest never saw this fault
          return true;
        case FaultOutcome.Guest:
          // Injected with the guest's own error code; CR2 is the guest's now.
          this.vCr2 = cpu.cr2 | 0;
          this.prefaultDelivery(vector);
          deliverArchitectural(cpu, vector, sh.guestCode, kind);
          return true;
        default:
          return true;
      }
    }
    if (x !== null) this.exit(x);
    if (sh === null) return false;
    this.prefaultDelivery(vector);
    return false;
  }

  /**
   * Fills the shadow for what the CPU's delivery of `vector` through the guest's IDT reads
   * and writes: the gate, its code-segment descriptor, the TSS's ring-0 stack pointer (from
   * user mode) and the frame.
   */
  private prefaultDelivery(vector: number): void {
    const cpu = this.cpu, sh = this.shadow!;
    const gate = (cpu.idtrBase + vector * 8) >>> 0;
    sh.prefault(gate, false);
    sh.prefault(gate + 7, false);
    const gp = sh.guestTranslate(gate + 2, false, false);
    if (gp >= 0 && gp + 2 <= cpu.mem.guestSize) this.prefaultDescriptor(cpu.mem.read16(gp));
    let sp: number;
    if (cpu.cpl === 3) {
      sh.prefault(cpu.trBase + 4, false);
      sh.prefault(cpu.trBase + 11, false);
      const tp = sh.guestTranslate(cpu.trBase + 4, false, false);
      if (tp < 0 || tp + 8 > cpu.mem.guestSize) return;
      sp = cpu.mem.read32(tp);
      this.prefaultDescriptor(cpu.mem.read16(tp + 4)); // SS0's descriptor (its accessed bit too)
    } else {
      sp = (cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!)) | 0;
    }
    sh.prefault(sp - 1, true);
    sh.prefault(sp - 24, true);
  }

  /**
   * Fills the shadow for the descriptor of `sel` (GDT or LDT) that delivery loads: for writing
   * when its accessed bit is clear, since the CPU then writes it during delivery (SDM Vol. 3A
   * §3.4.5.1) and a read-only shadow entry there (the guest's PTE not yet dirty) would fault
   * inside delivery and become #DF. An already accessed descriptor is only read: prefaulting
   * it for writing would set the guest's dirty bit where the bare CPU does not.
   */
  private prefaultDescriptor(sel: number): void {
    const cpu = this.cpu, sh = this.shadow!;
    const lin = (((sel & 4) !== 0 ? cpu.ldtrBase : cpu.gdtrBase) + (sel & 0xfff8)) >>> 0;
    sh.prefault(lin, false);
    const hp = sh.guestTranslate(lin + 4, false, false);
    if (hp >= 0 && hp + 4 <= cpu.mem.guestSize && (cpu.mem.read32(hp) & 0x100) === 0) sh.prefault(lin + 5, true);
  }

  /**
   * Runs shadow-paging work and charges the shadow address spaces it built (the drops of a
   * trace are part of the trace fault's charge, `shadowFaultCharge`).
   */
  private shadowWork<T>(f: () => T): T {
    const s = this.shadow!.stats;
    const built = s.spacesBuilt;
    const r = f();
    if (s.spacesBuilt > built) this.cpu.charge(SHADOW_CATEGORY.build, shadowBuildCharge(this.shadowCosts, s.spacesBuilt - built));
    return r;
  }

  /**
   * Charges one VM exit and the entry that follows it, and counts it; `handler` is the
   * root-mode handler's cycles (default: the profile's figure for the reason; 0 when the
   * caller charges the handler's work to its own category, as the shadow software's).
   */
  exit(x: VmExit, handler?: number): void {
    const r = x.reason;
    this.exitsByReason.set(r, (this.exitsByReason.get(r) ?? 0) + 1);
    const c = this.costs;
    this.cpu.charge(exitCategory(r), c.vmExit + c.vmEntry + (handler ?? c.handlerByReason[r] ?? 0));
    this.transition(); // the exit
    this.transition(); // the entry
  }

  /** A VM entry or exit: without VPID it flushes every TLB entry (global ones too). */
  private transition(): void {
    if (this.options.vpid) return;
    this.transitionFlushes++;
    this.cpu.flushTlb(false);
  }

  private buildTable(): Handler[] {
    const t = HANDLERS.slice();
    const wrap = (op: number, after: (cpu: Cpu) => VmExit | null): void => {
      for (const idx of [op, op | 0x200]) {
        const native = HANDLERS[idx]!;
        t[idx] = (cpu: Cpu) => {
          native(cpu);
          const x = after(cpu);
          if (x !== null) this.exit(x);
        };
      }
    };
    for (const [op, insn] of SIMPLE_OPS) wrap(op, () => instructionExit(this.vmcs, insn));
    for (const op of IO_OPS) {
      wrap(op, (cpu) => {
        const size = (op & 1) === 0 ? 1 : cpu.opsize32 ? 4 : 2;
        const immediate = op >= 0xe4 && op <= 0xe7;
        // IN/OUT imm8: the port is the byte before EIP; otherwise DX (IN/INS do not change DX).
        const port = immediate ? this.lastImm8(cpu) : cpu.r16[EDX << 1]!;
        const isIn = op === 0xe4 || op === 0xe5 || op === 0xec || op === 0xed || op === 0x6c || op === 0x6d;
        const x = ioExit(this.vmcs, { port, size: size as 1 | 2 | 4, in: isIn, string: op < 0x70, rep: op < 0x70 && cpu.rep !== 0, immediate });
        // No device behind the port: the bus read all ones / dropped the write; counted.
        if (x !== null && unassignedPort(this.machine.io, port, size as 1 | 2 | 4, isIn)) this.unassignedPortAccesses++;
        // The access is handled by the monitor's device model (once per exit, also for REP).
        if (x !== null && this.costs.devices !== undefined) cpu.charge('device', Math.round(this.costs.devices.portIoEmulation));
        return x;
      });
    }
    // WRMSR / RDMSR: ECX names the MSR and neither changes it.
    wrap(0x130, (cpu) => msrExit(this.vmcs, cpu.r32[1]! >>> 0, true));
    wrap(0x132, (cpu) => msrExit(this.vmcs, cpu.r32[1]! >>> 0, false));
    // MOV CRn, r32: the decode state holds CR (reg) and GPR (rm); the register is unchanged.
    wrap(0x122, (cpu) => {
      const cr = cpu.modrmReg;
      // The read shadow gets the value as the CPU stored it (ET set, undefined bits dropped:
      // KVM's kvm_set_cr0 does the same), taken before shadow paging forces PG/WP on.
      const stored = (cr === 0 ? cpu.cr0 : cpu.cr4) >>> 0;
      if (this.shadow !== null) this.shadowCrWrite(cpu, cr);
      if (cr !== 0 && cr !== 3 && cr !== 4) return null;
      const value = cpu.r32[cpu.modrmRm]! >>> 0;
      const x = movToCrExit(this.vmcs, cr, value, cpu.modrmRm);
      if (x !== null && cr === 0) this.vmcs.cr0Shadow = stored;
      if (x !== null && cr === 4) this.vmcs.cr4Shadow = stored;
      return x;
    });
    wrap(0x120, (cpu) => {
      const cr = cpu.modrmReg;
      // CR0/CR4 never exit on reads: host-owned bits come from the read shadows (SDM Vol. 3C
      // §26.3, "MOV from CR0/CR4"). Shadow paging: the guest's own CR3 (CR3-store exiting).
      if (cr === 0 || cr === 4) cpu.r32[cpu.modrmRm] = guestCrRead(this.vmcs, cr, cr === 0 ? cpu.cr0 : cpu.cr4) | 0;
      else if (cr === 3 && this.shadow !== null) cpu.r32[cpu.modrmRm] = this.vCr3;
      return cr === 3 ? movFromCrExit(this.vmcs, 3, cpu.modrmRm) : null;
    });
    wrap(0x121, (cpu) => instructionExit(this.vmcs, 'mov-dr', (cpu.modrmReg & 7) | 0x10 | ((cpu.modrmRm & 7) << 8)));
    wrap(0x123, (cpu) => instructionExit(this.vmcs, 'mov-dr', (cpu.modrmReg & 7) | ((cpu.modrmRm & 7) << 8)));
    wrap(0x106, () => {
      const x = cltsExit(this.vmcs);
      if (x !== null) this.vmcs.cr0Shadow &= ~CR0_TS;
      return x;
    });
    // GRP7: LMSW (/6) and INVLPG (/7); the others never exit here (no descriptor-table exiting).
    wrap(0x101, (cpu) => {
      const reg = cpu.modrmReg;
      if (reg === 7) {
        const lin = (cpu.segBase[cpu.eaSeg]! + cpu.eaOffset) >>> 0;
        if (this.shadow !== null) this.shadow.invalidate(lin);
        return instructionExit(this.vmcs, 'invlpg', lin);
      }
      if (reg === 6) {
        // The source's PE/MP/EM/TS are what LMSW put in CR0 (PE could not be cleared, and a
        // cleared source PE never causes an exit), so the new CR0 decides exactly.
        // (The qualification's LMSW source field therefore holds only those four bits.)
        const src = cpu.cr0 & 0xf;
        const x = lmswExit(this.vmcs, src, cpu.modrmMod !== 3);
        const sh = this.vmcs.cr0Shadow;
        if (x !== null) this.vmcs.cr0Shadow = ((sh & ~0xe) | (src & 0xe) | ((sh | src) & 1)) >>> 0;
        return x;
      }
      if (reg === 4) {
        // SMSW never exits; host-owned CR0 bits read from the read shadow, as MOV from CR0
        // (SDM Vol. 3C §26.3): under shadow paging the real PG/WP are the monitor's.
        const g = guestCrRead(this.vmcs, 0, cpu.cr0);
        if (cpu.modrmMod === 3 && cpu.opsize32) cpu.r32[cpu.modrmRm] = g | 0;
        else cpu.writeRM16(g & 0xffff);
      }
      return null;
    });
    return t;
  }

  /**
   * Shadow paging, after the CPU's own MOV to CRn has run: CR0.PG/WP, CR3 and CR2 become the
   * guest's virtual values and the real ones are the monitor's again.
   */
  private shadowCrWrite(cpu: Cpu, cr: number): void {
    const sh = this.shadow!;
    switch (cr) {
      case 0: {
        const v = cpu.cr0 | 0;
        if ((v & CR0_PE) === 0) { cpu.unsupported('hw --paging shadow: the guest left protected mode'); return; }
        const pgwp = v & (CR0_PG | CR0_WP);
        const changed = pgwp !== this.vPgWp;
        this.vPgWp = pgwp;
        cpu.cr0 = (v | CR0_PG | CR0_WP) | 0;
        cpu.updatePaging();
        if (changed) this.shadowWork(() => sh.flushAll());
        else cpu.cr3 = sh.shadowCr3; // unchanged; the CPU's write did not touch it
        return;
      }
      case 2: this.vCr2 = cpu.cr2 | 0; return;
      case 3:
        this.vCr3 = cpu.cr3 | 0;
        this.shadowWork(() => sh.activate());
        return;
      case 4: {
        const v = cpu.cr4 | 0;
        if ((v & CR4_PAE) !== 0) { cpu.unsupported('hw --paging shadow: PAE paging is not shadowed'); return; }
        const changed = ((v ^ this.lastCr4) & (CR4_PSE | CR4_PGE)) !== 0;
        this.lastCr4 = v;
        if (changed) this.shadowWork(() => sh.flushAll());
        return;
      }
    }
  }

  /** The imm8 port operand of IN/OUT imm8 that just executed (the byte before EIP). */
  private lastImm8(cpu: Cpu): number {
    const save = cpu.eip;
    cpu.eip = (save - 1) >>> 0;
    const b = cpu.fetch8();
    cpu.eip = save;
    return b;
  }
}

/** Exit reasons the overlay and `onEvent` can produce (for tests and the run record). */
export const HW_EXIT_REASONS: readonly number[] = [
  ExitReason.ExceptionOrNmi, ExitReason.ExternalInterrupt, ExitReason.InterruptWindow, ExitReason.Cpuid, ExitReason.Hlt, ExitReason.Invd,
  ExitReason.Invlpg, ExitReason.Rdtsc, ExitReason.CrAccess, ExitReason.MovDr, ExitReason.IoInstruction,
  ExitReason.Rdmsr, ExitReason.Wrmsr, ExitReason.Wbinvd,
];
