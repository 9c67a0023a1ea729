/**
 * `full`: software full virtualization as VMware's binary translator did it (Adams &
 * Agesen, ASPLOS 2006; Agesen et al., "The evolution of an x86 virtual machine monitor",
 * OSR 2010). Built on `trap`: the guest kernel runs deprivileged in ring 1 on the monitor's
 * descriptor-table copies, memory is virtualized by the same shadow paging (hidden faults,
 * traces, a shadow cache per CR3), and events are reflected through the guest's IDT. What
 * `full` adds is the translator for guest kernel code:
 *
 * - **Translated form = a handler overlay.** While the guest runs kernel code (real ring 1,
 *   virtual CPL 0) every instruction is dispatched through an overlay of the CPU's handler
 *   table in which sensitive and privileged opcodes are replaced by their translations:
 *   in-cache emulation against the virtual CPU (CLI/STI, PUSHF/POPF, MOV from CS/SS,
 *   PUSH CS/SS, SGDT/SIDT/SMSW/STR, LAR/LSL/VERR/VERW) charged `in-tc`, or a callout to the
 *   monitor (privileged instructions: the monitor's emulation, as `trap` has it, but entered
 *   by a call from the translation cache instead of a #GP, charged `callout`). Guest user
 *   code runs directly: the overlay's wrappers pass straight to the native handler at CPL 3.
 *   (*Departure from the brief:* one overlay stays installed and each wrapper tests the CPL,
 *   rather than switching tables at each kernel/user transition, because `runBlock` holds the
 *   table for a whole block and a switch made inside a handler — IRET to user mode, an
 *   interrupt reflected between instructions — would not take effect until the block ended.
 *   The test is in the wrappers of wrapped opcodes only: innocuous opcodes pay nothing.)
 * - **The translation cache** (`TranslationCache`): a block is entered at every control
 *   transfer in kernel code (the wrappers of the control-transfer opcodes, and the entry of
 *   a reflected event's handler); a block not yet in the cache is translated, charged
 *   `translate` per guest instruction; a block already there is entered by chaining, free.
 *   The frames holding translated code are write-protected through shadow paging
 *   (`ShadowPaging.watch`); a guest write that changes one drops its blocks.
 * - **Adaptive translation**: an instruction in kernel code that has taken
 *   `ADAPT_THRESHOLD` trace faults is retranslated (its block charged again) to call out
 *   directly: from then on its page-table writes cost a callout plus a shadow update instead
 *   of a trace fault.
 */
import { CS, ESP, FAULT, SS, Vec, type Cpu } from '../../machine/cpu/cpu.js';
import { loadSegment } from '../../machine/cpu/segmentation.js';
import type { EventKind } from '../../machine/cpu/interrupts.js';
import { IF, IOPL } from '../../machine/cpu/flags.js';
import { HANDLERS, type Handler } from '../../machine/cpu/op-table.js';
import type { Machine } from '../../machine/machine.js';
import { hasVmmFigures, toVmmCosts } from '../../profiles/index.js';
import type { Profile } from '../../profiles/schema.js';
import type { Monitor, MonitorStats } from '../monitor.js';
import { TrapMonitor, TRAP_MONITOR_MIB, type TrapCosts } from '../trap.js';
import { TranslationCache } from './translation-cache.js';
import { mutant } from '../mutants.js';

/** Monitor memory `full` needs (MiB): the same as `trap` (window, descriptor copies, shadows). */
export const FULL_MONITOR_MIB = TRAP_MONITOR_MIB;
/** Trace faults by one kernel instruction before it is retranslated to call out directly. */
export const ADAPT_THRESHOLD = 4;

/** What the translator's work costs, in cycles. */
export interface FullCosts {
  /** Translating one guest instruction into the cache. */
  readonly translatePerInstruction: number;
  /** A call from the translation cache into the monitor and back. */
  readonly callout: number;
  /** An emulation sequence inside the cache (no monitor entry), e.g. CLI as a store to the virtual IF. */
  readonly inTc: number;
  /** A page-table write by an adapted instruction: its callout does the shadow update. */
  readonly shadowPteUpdate: number;
}

/**
 * The translator's costs from the profile's `binaryTranslation` figures; a profile without
 * VMM figures gets estimates (the Skylake-class profile's order of magnitude).
 */
export function fullCosts(profile: Profile): FullCosts {
  if (hasVmmFigures(profile)) {
    const b = toVmmCosts(profile).bt;
    return {
      translatePerInstruction: Math.round(b.translatePerInstruction), callout: Math.round(b.callout),
      inTc: Math.round(b.inTcEmulation), shadowPteUpdate: Math.round(b.shadowPteUpdate),
    };
  }
  return { translatePerInstruction: 400, callout: 500, inTc: 4, shadowPteUpdate: 60 };
}

/**
 * What `full` uses of `trap`'s internals (private there): the monitor's accounting hook,
 * its reflection, its held interrupts, and the guest LDT it copied. Reached through this
 * one narrow view so the coupling is in one place.
 */
interface TrapInternals {
  count(kind: string, cycles: number): void;
  reflect(vector: number, code: number, kind: EventKind): void;
  deliverPending(): void;
  copyTable(guestBase: number, limit: number, phys: number, pages: number): number;
  readonly pending: number[];
  readonly ldtBase: number;
  readonly ldtLimit: number;
}

/** `ShadowPaging`'s watcher map (private), to end one frame's watch when its code is gone. */
interface ShadowWatchers { readonly watchers: Map<number, () => void> }

export class FullMonitor implements Monitor {
  readonly mode = 'full' as const;
  /** The deprivileging, shadow paging and event machinery (`trap`), reused. */
  readonly trap = new TrapMonitor();
  readonly tc = new TranslationCache();
  costs!: FullCosts;
  private trapCosts!: TrapCosts;
  private cpu!: Cpu;
  private internals!: TrapInternals;
  /** The overlay handler table (the translated form of kernel code). */
  private overlay!: Handler[];
  private readonly counts = new Map<string, number>();
  /** Set while the monitor handles an event (no block entries from emulated instructions). */
  private inEvent = 0;
  /** The current event came from kernel code (its emulations are callouts). */
  private eventFromKernel = false;
  /** The current event moved guest kernel control elsewhere (reflection, emulated IRET). */
  private transferred = false;
  /** Trace faults per kernel instruction (guest-physical address). */
  private readonly traceCount = new Map<number, number>();
  /** Blocks translated again for an adapted instruction. */
  private retranslations = 0;
  /** Kernel instructions retranslated to call out directly. */
  private readonly adapted = new Set<number>();
  /** Frames `full` watches for code writes, with the watcher that was there before (if any). */
  private readonly codeWatch = new Map<number, (() => void) | null>();
  /**
   * RET far/IRET in kernel code to an RPL-0 CS: trap's emulation gives the frame's CS slot
   * RPL 1 (and IRET's EFLAGS slot the real IF/IOPL) in the guest's stack. The bare CPU leaves
   * the popped frame as the guest wrote it, so the slots' words are saved here and put back
   * after the emulation (`retLin` −1: nothing saved).
   */
  private retLin = -1;
  private retSize = 4;
  private retSlots = 0;
  private readonly retSaved = new Int32Array(2);

  attach(machine: Machine): void {
    this.trap.attach(machine);
    const cpu = machine.cpu;
    this.cpu = cpu;
    this.costs = fullCosts(machine.profile);
    this.trapCosts = this.trap.costs;
    const t = this.trap as unknown as TrapInternals;
    this.internals = t;
    // Re-categorize trap's charges made for kernel code: emulations become callouts.
    const count = t.count.bind(this.trap);
    t.count = (kind, cycles) => this.onTrapCount(kind, cycles, count);
    const reflect = t.reflect.bind(this.trap);
    t.reflect = (vector, code, kind) => { reflect(vector, code, kind); this.transferred = true; };
    // The CPU sets accessed bits in the monitor's descriptor copies; as on the bare machine
    // they belong in the guest's own tables (LAR shows them): kept across a rebuild for every
    // descriptor the guest did not change, and written back to the guest's table.
    const copyTable = t.copyTable.bind(this.trap);
    t.copyTable = (guestBase, limit, phys, pages) => this.copyKeepingAccessed(guestBase, limit, phys, pages, copyTable);
    // The guest's descriptor-table watches are reset by trap on CR3/GDT changes: keep ours.
    const shadow = this.trap.shadow;
    const unwatchAll = shadow.unwatchAll.bind(shadow);
    shadow.unwatchAll = () => { unwatchAll(); this.rewatchCode(); };
    this.overlay = this.buildOverlay();
    cpu.monitor = this;
    cpu.setTable(this.overlay);
  }

  stats(): MonitorStats {
    const out: Record<string, number> = { ...this.trap.stats() };
    for (const k of [...this.counts.keys()].sort()) out[k] = this.counts.get(k)!;
    const s = this.tc.stats;
    out['bt.blocks'] = s.blocks;
    out['bt.instructions-translated'] = s.instructions;
    out['bt.chained-entries'] = s.chainedEntries;
    out['bt.cached-blocks'] = this.tc.size;
    out['bt.invalidated-blocks'] = s.invalidatedBlocks;
    out['bt.code-writes'] = s.codeWrites;
    out['bt.adapted-instructions'] = this.adapted.size;
    out['bt.retranslations'] = this.retranslations;
    return out;
  }

  private bump(kind: string): void { this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1); }

  // ======================================================================================
  // Events: trap's handling, with kernel-code emulations charged as callouts
  // ======================================================================================

  onEvent(cpu: Cpu, vector: number, code: number, kind: EventKind): boolean {
    const outer = this.inEvent === 0;
    const fromKernel = this.eventFromKernel;
    if (outer) { this.eventFromKernel = cpu.cpl === 1; this.transferred = false; }
    this.inEvent++;
    let r: boolean;
    try {
      r = this.trap.onEvent(cpu, vector, code, kind);
    } finally {
      this.inEvent--;
      if (!outer) this.eventFromKernel = fromKernel;
      else this.retLin = -1; // not emulated (e.g. a hidden fault first): the instruction restarts
    }
    if (outer && this.transferred && cpu.cpl === 1 && cpu.stopReason === null) this.enter(cpu);
    return r;
  }

  /** Trap's accounting hook: what a trap costs there, `full` re-prices for translated code. */
  private onTrapCount(kind: string, cycles: number, count: (kind: string, cycles: number) => void): void {
    const cpu = this.cpu;
    if (this.retLin >= 0 && (kind === 'exit:lret' || kind === 'exit:iret')) this.restoreReturnFrame(cpu);
    if (this.eventFromKernel && kind.startsWith('exit:') && !kind.startsWith('exit:reflect-') && !kind.startsWith('exit:interrupt')) {
      // A privileged instruction in translated kernel code: a callout replaces the trap
      // (the emulation itself costs the same).
      const name = kind.slice(5);
      this.bump(`callout:${name}`);
      cpu.charge('callout', this.costs.callout + Math.max(0, cycles - this.trapCosts.trapRoundTrip));
      if (name === 'iret' || name === 'lret' || name === 'int') this.transferred = true;
      return;
    }
    if (kind === 'shadow-sync' && this.eventFromKernel) {
      const lin = (cpu.segBase[CS]! + cpu.instrStart) >>> 0;
      const phys = this.trap.shadow.guestTranslate(lin, false, false);
      if (phys >= 0) {
        if (this.adapted.has(phys)) {
          // The adapted instruction calls out: the monitor emulates the write directly.
          const drops = Math.max(0, cycles - this.trapCosts.shadow.traceFault);
          this.bump('adaptive-callout');
          cpu.charge('shadow-sync', this.costs.callout + this.costs.shadowPteUpdate + drops);
          return;
        }
        const n = (this.traceCount.get(phys) ?? 0) + 1;
        this.traceCount.set(phys, n);
        if (n >= ADAPT_THRESHOLD) this.adapt(phys);
      }
    }
    count(kind, cycles);
  }

  /** Retranslates the block holding kernel instruction `phys` so that it calls out directly. */
  private adapt(phys: number): void {
    this.adapted.add(phys);
    this.traceCount.delete(phys);
    const b = this.tc.blockAt(phys);
    if (b !== undefined) {
      this.retranslations++;
      this.cpu.charge('translate', b.instructions * this.costs.translatePerInstruction);
    }
  }

  // ======================================================================================
  // The translation cache
  // ======================================================================================

  /** Guest kernel control arrives at EIP: enter its block, translating it on first entry. */
  private enter(cpu: Cpu): void {
    if (this.inEvent !== 0) return;
    const lin = (cpu.segBase[CS]! + cpu.eip) >>> 0;
    let phys = cpu.fetchPhys();
    if (phys < 0) phys = this.trap.shadow.guestTranslate(lin, false, false);
    // Not mapped: the fetch faults into the guest, whose handler returns here (a new entry).
    if (phys < 0) return;
    if (this.tc.has(phys)) { this.tc.stats.chainedEntries++; return; }
    this.translate(phys, lin, cpu.cs32 ? 32 : 16);
  }

  private translate(phys: number, lin: number, bitness: 16 | 32): void {
    const cpu = this.cpu, mem = cpu.mem, guestSize = mem.guestSize;
    const MAX = 1024;
    const buf = new Uint8Array(MAX);
    const inPage = Math.min(4096 - (phys & 0xfff), MAX);
    if (phys + inPage > guestSize) return;
    buf.set(mem.u8.subarray(phys, phys + inPage), 0);
    let len = inPage, next = -1;
    if (inPage < MAX) {
      const p = this.trap.shadow.guestTranslate(((lin & ~0xfff) + 4096) >>> 0, false, false);
      if (p >= 0 && p + 4096 <= guestSize) {
        next = (p & ~0xfff) >>> 0;
        buf.set(mem.u8.subarray(next, next + (MAX - inPage)), inPage);
        len = MAX;
      }
    }
    const b = this.tc.translate(phys, lin, buf.subarray(0, len), bitness, next);
    cpu.charge('translate', b.instructions * this.costs.translatePerInstruction);
    for (const f of b.frames) this.watchCode(f);
  }

  private watchers(): Map<number, () => void> {
    return (this.trap.shadow as unknown as ShadowWatchers).watchers;
  }

  /** Write-protects code frame `frame` (keeping any watcher trap had on it, e.g. its GDT page). */
  private watchCode(frame: number): void {
    if (this.codeWatch.has(frame)) return;
    const prev = this.watchers().get(frame) ?? null;
    this.codeWatch.set(frame, prev);
    this.trap.shadow.watch(frame, () => { prev?.(); this.onCodeWrite(frame); });
  }

  /** After trap's `unwatchAll` (CR3 load, GDT change): watch the code frames again. */
  private rewatchCode(): void {
    const frames = [...this.codeWatch.keys()];
    this.codeWatch.clear();
    for (const f of frames) this.watchCode(f);
  }

  /** The guest changed a frame holding translated code: drop its blocks and end the watch. */
  private onCodeWrite(frame: number): void {
    this.tc.stats.codeWrites++;
    this.tc.invalidateFrame(frame);
    const prev = this.codeWatch.get(frame);
    this.codeWatch.delete(frame);
    if (prev) this.watchers().set(frame, prev); else this.watchers().delete(frame);
  }

  // ======================================================================================
  // The translated forms: the handler overlay
  // ======================================================================================

  private buildOverlay(): Handler[] {
    const t: Handler[] = HANDLERS.slice();
    const both = (op: number, make: (h: Handler) => Handler): void => {
      t[op] = make(HANDLERS[op]!);
      t[op | 0x200] = make(HANDLERS[op | 0x200]!);
    };
    // Control transfers: the instruction after one starts a block.
    const transfers = [0xe0, 0xe1, 0xe2, 0xe3, 0xe8, 0xe9, 0xea, 0xeb, 0xc2, 0xc3, 0xca, 0xcb, 0xcf, 0x9a];
    for (let op = 0x70; op <= 0x7f; op++) transfers.push(op);
    for (let op = 0x180; op <= 0x18f; op++) transfers.push(op);
    for (const op of transfers) {
      if (op === 0x9a) continue;
      if (op === 0xea) {
        // JMP far ptr16:16/32 in kernel code: the guest's own privilege checks first.
        both(op, (h) => (cpu) => {
          const sel = cpu.cpl === 1 && this.inEvent === 0 ? this.peekPtrSelector(cpu) : -1;
          if (sel >= 0) this.checkFar(cpu, sel, 'jmp');
          h(cpu);
          if (cpu.cpl === 1) this.enter(cpu);
        });
        continue;
      }
      if (op === 0xca || op === 0xcb || op === 0xcf) {
        both(op, (h) => (cpu) => {
          const fromKernel = cpu.cpl === 1 && this.inEvent === 0;
          if (fromKernel) this.noteKernelReturn(cpu, op === 0xcf);
          const fl = fromKernel && op === 0xcf ? this.peekIretFlags(cpu) : -1;
          h(cpu);
          if (cpu.cpl === 1) this.enter(cpu);
          // IRET from the kernel to user code (run by the CPU at ring 1, which keeps IF and
          // IOPL): the popped IF and IOPL are the kernel's virtual ones when it is next
          // entered (through a call gate the monitor does not see, natively they persist).
          else if (fl >= 0 && cpu.cpl === 3) { this.trap.v.vif = (fl & IF) !== 0; this.trap.v.iopl = (fl & IOPL) >>> 12; }
        });
        continue;
      }
      both(op, (h) => (cpu) => { h(cpu); if (cpu.cpl === 1) this.enter(cpu); });
    }
    // CALL far within the kernel: the pushed CS shows the virtual RPL 0.
    both(0x9a, (h) => (cpu) => {
      const cpl = cpu.cpl;
      const sel = cpl === 1 && this.inEvent === 0 ? this.peekPtrSelector(cpu) : -1;
      if (sel >= 0) this.checkFar(cpu, sel, 'call');
      h(cpu);
      if (cpl !== 1 || cpu.cpl !== 1) return;
      this.fixPushedCs(cpu);
      this.enter(cpu);
    });
    both(0xff, (h) => (cpu) => {
      const cpl = cpu.cpl;
      if (cpl === 1 && this.inEvent === 0) {
        // CALL/JMP m16:16/32: the selector after the offset, checked against the guest's descriptor.
        const at = cpu.eip, cycles = cpu.cycles;
        cpu.decodeModrm();
        const r = cpu.modrmReg;
        const sel = (r === 3 || r === 5) && cpu.modrmMod !== 3 ? this.peekGuest16(cpu, cpu.segBase[cpu.eaSeg]! + cpu.eaOffset + (cpu.opsize32 ? 4 : 2)) : -1;
        cpu.eip = at; cpu.cycles = cycles; // the handler decodes (and charges) it again
        if (sel >= 0) this.checkFar(cpu, sel, r === 3 ? 'call' : 'jmp');
      }
      h(cpu);
      if (cpl !== 1 || cpu.cpl !== 1 || cpu.modrmReg < 2 || cpu.modrmReg > 5) return;
      if (cpu.modrmReg === 3) this.fixPushedCs(cpu);
      this.enter(cpu);
    });
    const v = this.trap.v;
    const inTc = (cpu: Cpu, name: string): void => { this.bump(`in-tc:${name}`); cpu.charge('in-tc', this.costs.inTc); };
    // CLI/STI: the virtual IF. STI with interrupts held calls out (they are delivered then).
    both(0xfa, (h) => (cpu) => { if (cpu.cpl !== 1) { h(cpu); return; } v.vif = false; inTc(cpu, 'cli'); });
    both(0xfb, (h) => (cpu) => {
      if (cpu.cpl !== 1 || this.internals.pending.length > 0) { h(cpu); return; }
      v.vif = true;
      cpu.inhibitInterrupts();
      inTc(cpu, 'sti');
    });
    // PUSHF: the pushed image shows the virtual IF and IOPL.
    both(0x9c, (h) => (cpu) => {
      h(cpu);
      if (cpu.cpl !== 1 || mutant('bt-pushf')) return; // verifier mutant
      const sp = cpu.ss32 ? cpu.r32[ESP]! >>> 0 : cpu.r16[ESP << 1]!;
      const virt = (v.vif ? IF : 0) | (v.iopl << 12);
      if (cpu.opsize32) cpu.writeMem32(SS, sp, (cpu.readMem32(SS, sp) & ~(IF | IOPL)) | virt);
      else cpu.writeMem16(SS, sp, (cpu.readMem16(SS, sp) & ~(IF | IOPL)) | virt);
      inTc(cpu, 'pushf');
    });
    // POPF: the popped IF and IOPL become the virtual ones (the real stay IF = 1, IOPL 0).
    both(0x9d, (h) => (cpu) => {
      if (cpu.cpl !== 1) { h(cpu); return; }
      const sp = cpu.ss32 ? cpu.r32[ESP]! >>> 0 : cpu.r16[ESP << 1]!;
      const val = cpu.opsize32 ? cpu.readMem32(SS, sp) : cpu.readMem16(SS, sp);
      h(cpu);
      v.vif = (val & IF) !== 0;
      v.iopl = (val & IOPL) >>> 12;
      inTc(cpu, 'popf');
      if (v.vif && this.internals.pending.length > 0) this.calloutDeliver(cpu, 'popf');
    });
    // MOV r/m, Sreg and PUSH CS/SS: CS and SS show the virtual RPL 0.
    both(0x8c, (h) => (cpu) => {
      h(cpu);
      if (cpu.cpl !== 1 || (cpu.modrmReg !== CS && cpu.modrmReg !== SS) || mutant('bt-mov-cs')) return; // verifier mutant
      const sel = virtualSel(cpu.segSel[cpu.modrmReg]!);
      if (cpu.modrmMod === 3) { if (cpu.opsize32) cpu.r32[cpu.modrmRm] = sel; else cpu.r16[cpu.modrmRm << 1] = sel; }
      else cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, sel);
      inTc(cpu, 'mov-sreg');
    });
    for (const [op, seg] of [[0x0e, CS], [0x16, SS]] as const) {
      both(op, (h) => (cpu) => {
        h(cpu);
        if (cpu.cpl !== 1) return;
        const sp = cpu.ss32 ? cpu.r32[ESP]! >>> 0 : cpu.r16[ESP << 1]!;
        cpu.writeMem16(SS, sp, virtualSel(cpu.segSel[seg]!));
        inTc(cpu, seg === CS ? 'push-cs' : 'push-ss');
      });
    }
    // SGDT/SIDT/SMSW: the virtual GDTR, IDTR, CR0. (LGDT/LIDT/LMSW/INVLPG fault: callouts.)
    both(0x101, (h) => (cpu) => {
      h(cpu);
      if (cpu.cpl !== 1) return;
      const r = cpu.modrmReg;
      if ((r === 0 || r === 1) && !mutant('bt-sgdt')) { // verifier mutant
        cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, r === 0 ? v.gdtrLimit : v.idtrLimit);
        const base = r === 0 ? v.gdtrBase : v.idtrBase;
        cpu.writeMem32(cpu.eaSeg, (cpu.eaOffset + 2) >>> 0, cpu.opsize32 ? base : base & 0xffffff);
        inTc(cpu, r === 0 ? 'sgdt' : 'sidt');
      } else if (r === 4 && !mutant('bt-smsw')) { // verifier mutant
        if (cpu.modrmMod === 3 && cpu.opsize32) cpu.r32[cpu.modrmRm] = v.cr0;
        else cpu.writeRM16(v.cr0 & 0xffff);
        inTc(cpu, 'smsw');
      }
    });
    // SLDT/STR/VERR/VERW: the virtual LDTR/TR; VERR/VERW against the guest's own tables.
    both(0x100, (h) => (cpu) => {
      if (cpu.cpl !== 1) { h(cpu); return; }
      const reg = (cpu.fetch8() >>> 3) & 7;
      cpu.eip--;
      if (reg === 4 || reg === 5) { this.withGuestTables(cpu, h); inTc(cpu, reg === 4 ? 'verr' : 'verw'); return; }
      h(cpu);
      if (reg === 1) {
        if (cpu.modrmMod === 3) { if (cpu.opsize32) cpu.r32[cpu.modrmRm] = v.trSel & 0xffff; else cpu.r16[cpu.modrmRm << 1] = v.trSel; }
        else cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, v.trSel);
        inTc(cpu, 'str');
      } else if (reg === 0) {
        if (cpu.modrmMod === 3) { if (cpu.opsize32) cpu.r32[cpu.modrmRm] = v.ldtrSel & 0xffff; else cpu.r16[cpu.modrmRm << 1] = v.ldtrSel; }
        else cpu.writeMem16(cpu.eaSeg, cpu.eaOffset, v.ldtrSel);
        inTc(cpu, 'sldt');
      }
    });
    // LAR/LSL: the guest's descriptors as its kernel (CPL 0) sees them. The accessed bit
    // is the CPU's, set in the monitor's copy when a segment was loaded: LAR shows it.
    for (const op of [0x102, 0x103]) {
      both(op, (h) => (cpu) => {
        if (cpu.cpl !== 1) { h(cpu); return; }
        // The selector, read before LAR writes its result (`lar eax, eax` overwrites it).
        let sel = -1;
        if (op === 0x102) {
          const at = cpu.eip, cycles = cpu.cycles;
          cpu.decodeModrm();
          sel = cpu.modrmMod === 3 ? cpu.r16[cpu.modrmRm << 1]! : this.peekGuest16(cpu, cpu.segBase[cpu.eaSeg]! + cpu.eaOffset);
          cpu.eip = at; cpu.cycles = cycles; // the handler decodes (and charges) it again
        }
        this.withGuestTables(cpu, h);
        if (op === 0x102 && sel >= 0 && (cpu.flags & 0x40) !== 0) {
          const base = (sel & 4) !== 0 ? cpu.ldtrBase : cpu.gdtrBase;
          const hi = cpu.readLin32((base + (sel & 0xfff8) + 4) >>> 0, false);
          if ((hi & 0x1100) === 0x1100) {
            if (cpu.opsize32) cpu.r32[cpu.modrmReg] = cpu.r32[cpu.modrmReg]! | 0x100;
            else cpu.r16[cpu.modrmReg << 1] = cpu.r16[cpu.modrmReg << 1]! | 0x100;
          }
        }
        inTc(cpu, op === 0x102 ? 'lar' : 'lsl');
      });
    }
    // POP DS/ES/FS/GS and MOV DS/ES/FS/GS, r/m16 in kernel code: the guest's own privilege
    // check first (the monitor's copies, DPL 0 made 1, accept an RPL-1 selector of a DPL-0
    // descriptor, which the guest's kernel at CPL 0 may not load).
    for (const op of [0x07, 0x1f, 0x1a1, 0x1a9]) {
      both(op, (h) => (cpu) => {
        if (cpu.cpl === 1) {
          const sel = this.peekGuest16(cpu, cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!));
          if (sel >= 0) this.checkFar(cpu, sel, 'data');
        }
        h(cpu);
      });
    }
    both(0x8e, (h) => (cpu) => {
      if (cpu.cpl === 1) {
        const at = cpu.eip, cycles = cpu.cycles;
        cpu.decodeModrm();
        const reg = cpu.modrmReg;
        const sel = reg === SS || reg === CS || reg > 5 ? -1
          : cpu.modrmMod === 3 ? cpu.r16[cpu.modrmRm << 1]! : this.peekGuest16(cpu, cpu.segBase[cpu.eaSeg]! + cpu.eaOffset);
        cpu.eip = at; cpu.cycles = cycles; // the handler decodes (and charges) it again
        if (sel >= 0) this.checkFar(cpu, sel, 'data');
      }
      h(cpu);
    });
    // LSS with an RPL-0 stack selector (refused in ring 1): loaded with RPL 1, as MOV SS is.
    both(0x1b2, (h) => (cpu) => {
      if (cpu.cpl !== 1) { h(cpu); return; }
      cpu.decodeModrm();
      if (cpu.modrmMod === 3) cpu.raise(Vec.UD);
      const sz = cpu.opsize32 ? 4 : 2;
      const off = cpu.opsize32 ? cpu.readMem32(cpu.eaSeg, cpu.eaOffset) : cpu.readMem16(cpu.eaSeg, cpu.eaOffset);
      let sel = cpu.readMem16(cpu.eaSeg, (cpu.eaOffset + sz) >>> 0);
      if ((sel & 3) === 0 && (sel & 0xfffc) !== 0) sel |= 1;
      loadSegment(cpu, SS, sel);
      if (cpu.opsize32) cpu.r32[cpu.modrmReg] = off; else cpu.r16[cpu.modrmReg << 1] = off;
      inTc(cpu, 'lss');
    });
    return t;
  }

  private copyKeepingAccessed(guestBase: number, limit: number, phys: number, pages: number,
    copy: (guestBase: number, limit: number, phys: number, pages: number) => number): number {
    const mem = this.cpu.mem;
    const old: number[] = [];
    for (let off = 0; off + 7 <= limit; off += 8) {
      const hi = mem.read32(phys + off + 4);
      if ((hi & 0x1100) === 0x1100) old.push(off, mem.read32(phys + off), hi);
    }
    const n = copy(guestBase, limit, phys, pages);
    for (let i = 0; i < old.length; i += 3) {
      const off = old[i]!;
      const lo = mem.read32(phys + off), hi = mem.read32(phys + off + 4);
      if (lo !== old[i + 1] || (hi | 0x100) !== old[i + 2]) continue;
      mem.write32(phys + off + 4, hi | 0x100);
      const g = this.trap.shadow.guestTranslate(guestBase + off + 4, false, false);
      if (g >= 0 && g + 4 <= mem.guestSize) mem.write32(g, mem.read32(g) | 0x100);
    }
    return n;
  }

  /**
   * Before RET far/IRET in kernel code: if the frame's CS has RPL 0 (trap's emulation will
   * rewrite it), saves the CS slot (and IRET's EFLAGS slot). Read without faulting through
   * the guest's tables: a frame that is not readable faults in the instruction itself.
   */
  private noteKernelReturn(cpu: Cpu, iret: boolean): void {
    this.retLin = -1;
    const sz = cpu.opsize32 ? 4 : 2;
    const sp = (cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!)) >>> 0;
    const n = iret ? 2 : 1;
    for (let i = 0; i < n; i++) {
      const p = this.trap.shadow.guestTranslate((sp + (i + 1) * sz) >>> 0, false, false);
      if (p < 0 || p + sz > cpu.mem.guestSize) return;
      this.retSaved[i] = sz === 4 ? cpu.mem.read32(p) : cpu.mem.read16(p);
    }
    if ((this.retSaved[0]! & 3) !== 0) return;
    this.retLin = (sp + sz) >>> 0;
    this.retSize = sz;
    this.retSlots = n;
  }

  /** The EFLAGS slot of an IRET frame at SS:ESP (through the guest's tables), or -1. */
  private peekIretFlags(cpu: Cpu): number {
    const sz = cpu.opsize32 ? 4 : 2;
    const sp = (cpu.segBase[SS]! + (cpu.ss32 ? cpu.r32[ESP]! : cpu.r16[ESP << 1]!)) >>> 0;
    const p = this.trap.shadow.guestTranslate((sp + 2 * sz) >>> 0, false, false);
    if (p < 0 || p + sz > cpu.mem.guestSize) return -1;
    return sz === 4 ? cpu.mem.read32(p) >>> 0 : cpu.mem.read16(p);
  }

  /** After trap's emulation of that RET far/IRET: the frame's slots as the guest wrote them. */
  private restoreReturnFrame(cpu: Cpu): void {
    const lin = this.retLin, sz = this.retSize;
    this.retLin = -1;
    for (let i = 0; i < this.retSlots; i++) {
      // The emulation just wrote these slots through the same mapping: no fault here.
      if (sz === 4) cpu.writeLin32((lin + i * sz) >>> 0, this.retSaved[i]!, false);
      else cpu.writeLin16((lin + i * sz) >>> 0, this.retSaved[i]!, false);
    }
  }

  /** The selector of a direct far CALL/JMP (ptr16:16/32 after the opcode), or -1 if unmapped. */
  private peekPtrSelector(cpu: Cpu): number {
    return this.peekGuest16(cpu, cpu.segBase[CS]! + cpu.eip + (cpu.opsize32 ? 4 : 2));
  }

  /**
   * A guest word at linear `lin` through the guest's own tables, read without the CPU's
   * memory path (no TLB fill, no cycles: the instruction's own handler reads it next), or -1
   * if unmapped (the handler then takes the fault).
   */
  private peekGuest16(cpu: Cpu, lin: number): number {
    const lo = this.peekGuest8(cpu, lin), hi = this.peekGuest8(cpu, lin + 1);
    return lo < 0 || hi < 0 ? -1 : lo | (hi << 8);
  }

  private peekGuest8(cpu: Cpu, lin: number): number {
    const p = this.trap.shadow.guestTranslate(lin >>> 0, false, false);
    return p < 0 || p >= cpu.mem.guestSize ? -1 : cpu.mem.read8(p);
  }

  /**
   * Kernel code (virtual CPL 0) loads `sel` — as CS by a far CALL/JMP, or into a data segment
   * register. The CPU checks privilege at ring 1 against the monitor's copies, where DPL 0 is
   * 1: it accepts an RPL-1 selector of a DPL-0 descriptor, a DPL-1 code segment, a DPL-0 call
   * gate named with RPL 1, a gate to DPL-1 code, all of which the bare CPU refuses at CPL 0
   * (SDM Vol. 3A 5.6, 5.8). Checked here against the guest's own descriptor: #GP with the
   * bare CPU's error code where it refuses (what the copies also refuse is refused here
   * with the same code). Anything else (null, beyond the limit, unreadable): the CPU's own.
   */
  private checkFar(cpu: Cpu, sel: number, kind: 'call' | 'jmp' | 'data'): void {
    const hi = this.guestDescriptorHigh(cpu, sel);
    if (hi === null) return;
    const dpl = (hi >>> 13) & 3, rpl = sel & 3;
    if ((hi & 0x1000) === 0) {
      // A system descriptor: only a call gate (16- or 32-bit) concerns far CALL/JMP.
      const type = (hi >>> 8) & 0xf;
      if (kind === 'data' || (type !== 0x4 && type !== 0xc)) return;
      if (rpl > dpl) cpu.raise(Vec.GP, sel & 0xfffc);
      const lo = this.guestDescriptorWord(cpu, sel, 0);
      if (lo === null) return;
      const tsel = lo >>> 16;
      const thi = this.guestDescriptorHigh(cpu, tsel);
      if (thi === null || (thi & 0x1800) !== 0x1800) return;
      const tdpl = (thi >>> 13) & 3, conforming = (thi & 0x400) !== 0;
      if (kind === 'call' || conforming ? tdpl > 0 : tdpl !== 0) cpu.raise(Vec.GP, tsel & 0xfffc);
      return;
    }
    const code = (hi & 0x800) !== 0, conforming = code && (hi & 0x400) !== 0;
    if (kind === 'data') {
      if (conforming || (code && (hi & 0x200) === 0)) return;
      if (dpl < rpl) cpu.raise(Vec.GP, sel & 0xfffc);
      return;
    }
    if (!code) return;
    if (conforming ? dpl > 0 : rpl > 0 || dpl !== 0) cpu.raise(Vec.GP, sel & 0xfffc);
  }

  /** The high word of the guest's own descriptor for `sel` (its GDT or LDT), or null (null selector, beyond the limit, unmapped). */
  private guestDescriptorHigh(cpu: Cpu, sel: number): number | null {
    return this.guestDescriptorWord(cpu, sel, 4);
  }

  private guestDescriptorWord(cpu: Cpu, sel: number, at: 0 | 4): number | null {
    if ((sel & 0xfffc) === 0) return null;
    const v = this.trap.v, t = this.internals;
    const ldt = (sel & 4) !== 0;
    if (ldt && (cpu.ldtrSel & 0xfffc) === 0) return null;
    const base = ldt ? t.ldtBase : v.gdtrBase, limit = ldt ? t.ldtLimit : v.gdtrLimit;
    if ((sel & 0xfff8) + 7 > limit) return null;
    const p = this.trap.shadow.guestTranslate((base + (sel & 0xfff8) + at) >>> 0, false, false);
    if (p < 0 || p + 4 > cpu.mem.guestSize) return null;
    return cpu.mem.read32(p) >>> 0;
  }

  /** After a far CALL inside the kernel: the pushed return CS with the virtual RPL. */
  private fixPushedCs(cpu: Cpu): void {
    const sz = cpu.opsize32 ? 4 : 2;
    const sp = cpu.ss32 ? cpu.r32[ESP]! >>> 0 : cpu.r16[ESP << 1]!;
    const at = cpu.ss32 ? (sp + sz) >>> 0 : (sp + sz) & 0xffff;
    cpu.writeMem16(SS, at, virtualSel(cpu.readMem16(SS, at)));
  }

  /** Runs `h` with the guest's own GDT/LDT and CPL 0 in place of the monitor's copies and ring 1. */
  private withGuestTables(cpu: Cpu, h: Handler): void {
    const v = this.trap.v, t = this.internals;
    const gb = cpu.gdtrBase, gl = cpu.gdtrLimit, lb = cpu.ldtrBase, ll = cpu.ldtrLimit;
    cpu.gdtrBase = v.gdtrBase; cpu.gdtrLimit = v.gdtrLimit;
    if ((cpu.ldtrSel & 0xfffc) !== 0) { cpu.ldtrBase = t.ldtBase; cpu.ldtrLimit = t.ldtLimit; }
    cpu.cpl = 0;
    try {
      h(cpu);
    } finally {
      cpu.cpl = 1;
      cpu.gdtrBase = gb; cpu.gdtrLimit = gl; cpu.ldtrBase = lb; cpu.ldtrLimit = ll;
    }
  }

  /** An in-cache sequence found interrupts held: it calls out and the monitor delivers one. */
  private calloutDeliver(cpu: Cpu, name: string): void {
    this.bump(`callout:${name}-pending`);
    cpu.charge('callout', this.costs.callout);
    const fromKernel = this.eventFromKernel;
    this.inEvent++;
    this.eventFromKernel = true;
    try {
      this.internals.deliverPending();
    } catch (e) {
      if (e !== FAULT) throw e;
    } finally {
      this.inEvent--;
      this.eventFromKernel = fromKernel;
    }
    if (cpu.cpl === 1 && cpu.stopReason === null) this.enter(cpu);
  }
}

/** A selector as the guest kernel believes it: the real RPL 1 shown as 0. */
function virtualSel(sel: number): number {
  return (sel & 3) === 1 ? sel & ~3 : sel;
}
