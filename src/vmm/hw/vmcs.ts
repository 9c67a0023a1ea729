/**
 * A VMCS-like control structure as plain data, and pure decision functions: given the
 * controls and an event, does it cause a VM exit, with which basic reason and qualification.
 *
 * Control bit positions: Intel SDM Vol. 3C §25.6 (§24.6 in older editions): Table 25-5
 * (pin-based), 25-6 (primary processor-based), 25-7 (secondary processor-based). Exit rules:
 * SDM §26.1-26.2 ("Instructions that cause VM exits conditionally/unconditionally"), §26.1.3
 * for MOV to CR0/CR4, CLTS and LMSW against the guest/host masks and read shadows, §25.6.4 for
 * I/O bitmaps, §25.6.9 for MSR bitmaps, §25.6.3 for the exception bitmap and #PF error-code
 * mask/match.
 */
import { CrAccessType, encodeCrAccess, encodeInterruptionInfo, encodeIo, ExitReason, InterruptionType } from './exit-reasons.js';
import { mutant } from '../mutants.js';

/** A VM exit: basic reason, exit qualification and (for reason 0/1) interruption information. */
export interface VmExit {
  readonly reason: number;
  readonly qualification: number;
  /** VM-exit interruption information (valid bit 31 set) for exceptions and external interrupts; 0 otherwise. */
  readonly interruptionInfo: number;
  /** Error code delivered with the exception, when `interruptionInfo` says one is valid. */
  readonly errorCode: number;
}

function exit(reason: number, qualification = 0, interruptionInfo = 0, errorCode = 0): VmExit {
  return { reason, qualification: qualification >>> 0, interruptionInfo, errorCode };
}

/** Pin-based VM-execution controls (Table 25-5). */
export interface PinBasedControls {
  /** Bit 0. */
  externalInterruptExiting: boolean;
  /** Bit 3. */
  nmiExiting: boolean;
  /** Bit 5. */
  virtualNmis: boolean;
  /** Bit 6. */
  preemptionTimer: boolean;
}

/** Primary processor-based VM-execution controls (Table 25-6). */
export interface PrimaryControls {
  /** Bit 2. */
  interruptWindowExiting: boolean;
  /** Bit 3. */
  useTscOffsetting: boolean;
  /** Bit 7. */
  hltExiting: boolean;
  /** Bit 9. */
  invlpgExiting: boolean;
  /** Bit 10. */
  mwaitExiting: boolean;
  /** Bit 11. */
  rdpmcExiting: boolean;
  /** Bit 12. */
  rdtscExiting: boolean;
  /** Bit 15. */
  cr3LoadExiting: boolean;
  /** Bit 16. */
  cr3StoreExiting: boolean;
  /** Bit 22. */
  nmiWindowExiting: boolean;
  /** Bit 23. */
  movDrExiting: boolean;
  /** Bit 24: every I/O instruction exits (ignored when `useIoBitmaps`). */
  unconditionalIoExiting: boolean;
  /** Bit 25: the I/O bitmaps decide. */
  useIoBitmaps: boolean;
  /** Bit 27. */
  monitorTrapFlag: boolean;
  /** Bit 28: the MSR bitmap decides RDMSR/WRMSR (otherwise every one exits). */
  useMsrBitmaps: boolean;
  /** Bit 29. */
  monitorExiting: boolean;
  /** Bit 30. */
  pauseExiting: boolean;
  /** Bit 31. */
  activateSecondaryControls: boolean;
}

/** Secondary processor-based VM-execution controls (Table 25-7), the ones that matter here. */
export interface SecondaryControls {
  /** Bit 1. */
  enableEpt: boolean;
  /** Bit 2: LGDT/LIDT/SGDT/SIDT exit (reason 46), LLDT/LTR/SLDT/STR (reason 47). */
  descriptorTableExiting: boolean;
  /** Bit 5. */
  enableVpid: boolean;
  /** Bit 6. */
  wbinvdExiting: boolean;
  /** Bit 7. */
  unrestrictedGuest: boolean;
}

/** The VMCS fields the `hw` monitor consults. */
export interface Vmcs {
  pin: PinBasedControls;
  proc: PrimaryControls;
  proc2: SecondaryControls;
  /** Bit v set: exception vector v exits (subject to the #PF mask/match for vector 14). */
  exceptionBitmap: number;
  /** Page-fault error-code mask and match (§25.6.3). */
  pfecMask: number;
  pfecMatch: number;
  /** CR0/CR4 guest/host masks: bit set = owned by the host. */
  cr0Mask: number;
  cr4Mask: number;
  /** CR0/CR4 read shadows: what the guest reads for host-owned bits. */
  cr0Shadow: number;
  cr4Shadow: number;
  /** CR3-target values (count 0-4): MOV to CR3 of one of them does not exit. */
  cr3Targets: number[];
  /** I/O bitmap A (ports 0x0000-0x7FFF) and B (0x8000-0xFFFF), 4 KiB each. */
  ioBitmapA: Uint8Array;
  ioBitmapB: Uint8Array;
  /**
   * MSR bitmap, 4 KiB (§25.6.9): read-low (MSRs 0-0x1FFF) at 0, read-high (0xC0000000-
   * 0xC0001FFF) at 1024, write-low at 2048, write-high at 3072.
   */
  msrBitmap: Uint8Array;
  /** Virtual-processor identifier (16 bits; 0 is not allowed with VPID enabled). */
  vpid: number;
  /** EPT pointer (memory type bits 2:0, walk length − 1 bits 5:3, A/D bit 6, PML4 address). */
  eptp: number;
}

// ---- control words: the SDM bit encodings of the named controls ----

const PIN_BITS: ReadonlyArray<[keyof PinBasedControls, number]> = [
  ['externalInterruptExiting', 0], ['nmiExiting', 3], ['virtualNmis', 5], ['preemptionTimer', 6],
];
const PROC_BITS: ReadonlyArray<[keyof PrimaryControls, number]> = [
  ['interruptWindowExiting', 2], ['useTscOffsetting', 3], ['hltExiting', 7], ['invlpgExiting', 9],
  ['mwaitExiting', 10], ['rdpmcExiting', 11], ['rdtscExiting', 12], ['cr3LoadExiting', 15],
  ['cr3StoreExiting', 16], ['nmiWindowExiting', 22], ['movDrExiting', 23],
  ['unconditionalIoExiting', 24], ['useIoBitmaps', 25], ['monitorTrapFlag', 27],
  ['useMsrBitmaps', 28], ['monitorExiting', 29], ['pauseExiting', 30],
  ['activateSecondaryControls', 31],
];
const PROC2_BITS: ReadonlyArray<[keyof SecondaryControls, number]> = [
  ['enableEpt', 1], ['descriptorTableExiting', 2], ['enableVpid', 5], ['wbinvdExiting', 6],
  ['unrestrictedGuest', 7],
];

function toWord<T>(c: T, bits: ReadonlyArray<[keyof T, number]>): number {
  let w = 0;
  for (const [k, b] of bits) if (c[k]) w |= 1 << b;
  return w >>> 0;
}

function fromWord<T>(w: number, bits: ReadonlyArray<[keyof T, number]>): T {
  const o = {} as Record<keyof T, boolean>;
  for (const [k, b] of bits) o[k] = ((w >>> b) & 1) === 1;
  return o as T;
}

/** The pin-based control word (SDM bit positions). */
export const pinWord = (c: PinBasedControls): number => toWord(c, PIN_BITS);
/** The primary processor-based control word. */
export const procWord = (c: PrimaryControls): number => toWord(c, PROC_BITS);
/** The secondary processor-based control word. */
export const proc2Word = (c: SecondaryControls): number => toWord(c, PROC2_BITS);
/** Named pin-based controls from a control word (unmodelled bits ignored). */
export const pinFromWord = (w: number): PinBasedControls => fromWord(w, PIN_BITS);
/** Named primary controls from a control word. */
export const procFromWord = (w: number): PrimaryControls => fromWord(w, PROC_BITS);
/** Named secondary controls from a control word. */
export const proc2FromWord = (w: number): SecondaryControls => fromWord(w, PROC2_BITS);

// ---- defaults ----

/** CR0 bits (constants.ts has them too; repeated here to keep this module pure data). */
const CR0_PE = 1, CR0_MP = 2, CR0_EM = 4, CR0_TS = 8, CR0_WP = 0x10000;
/** CR4 bits KVM lets a guest own (KVM_POSSIBLE_CR4_GUEST_BITS ∩ what a P6 has). */
const CR4_PVI = 2, CR4_TSD = 4, CR4_DE = 8, CR4_PGE = 0x80, CR4_PCE = 0x100;

/** Options for `kvmDefaultVmcs`. */
export interface VmcsOptions {
  /** Nested paging (EPT) instead of shadow paging. */
  ept: boolean;
  /** VPID for the guest, or 0 for VPID off. */
  vpid: number;
  /** EPT pointer when `ept`. */
  eptp?: number;
}

/**
 * Controls as KVM sets them for a guest (arch/x86/kvm/vmx/vmx.c: `vmx_pin_based_exec_ctrl`,
 * `vmx_exec_control`, `vmx_secondary_exec_control`, `vmx_update_exception_bitmap`,
 * `set_cr0_guest_host_mask` / `set_cr4_guest_host_mask`; required/optional sets in
 * arch/x86/kvm/vmx/vmx.h `KVM_REQUIRED_VMX_*`):
 * - pin: external-interrupt exiting and NMI exiting (required), virtual NMIs (optional, on).
 * - primary: HLT exiting, unconditional I/O exiting (KVM has not used I/O bitmaps since the
 *   port-0x80 pass-through was removed in 2017), MOV-DR exiting, TSC offsetting (so no RDTSC
 *   exiting), MWAIT/MONITOR exiting, RDPMC exiting, MSR bitmaps, secondary controls; CR3
 *   load/store and INVLPG exiting only without EPT; interrupt-window exiting only while an
 *   interrupt is pending (set by the monitor, off here).
 * - secondary: EPT, VPID (when given), WBINVD exiting; unrestricted guest with EPT.
 * - exception bitmap: #DB, #UD, #AC, #MC, plus #PF without EPT (shadow paging must see every
 *   guest page fault); PFEC mask = match = 0, so bit 14 alone decides.
 * - CR0: the guest owns TS (and WP with EPT): KVM_POSSIBLE_CR0_GUEST_BITS; every other bit is
 *   host-owned. CR4: the guest owns PVI, DE, PCE, TSD (PGE too with EPT), the P6 subset of
 *   KVM_POSSIBLE_CR4_GUEST_BITS.
 * - MSR bitmap: all ones (every RDMSR/WRMSR exits) but the SYSENTER MSRs 0x174-0x176, which
 *   KVM passes through for reads and writes (`vmx_disable_intercept_for_msr`).
 */
export function kvmDefaultVmcs(opts: VmcsOptions): Vmcs {
  const ept = opts.ept;
  const msrBitmap = new Uint8Array(4096).fill(0xff);
  for (const msr of [0x174, 0x175, 0x176]) {
    setMsrIntercept(msrBitmap, msr, false, false);
    setMsrIntercept(msrBitmap, msr, true, false);
  }
  const cr0Guest = CR0_TS | (ept ? CR0_WP : 0);
  const cr4Guest = CR4_PVI | CR4_DE | CR4_PCE | CR4_TSD | (ept ? CR4_PGE : 0);
  return {
    pin: { externalInterruptExiting: true, nmiExiting: true, virtualNmis: true, preemptionTimer: false },
    proc: {
      interruptWindowExiting: false, useTscOffsetting: true, hltExiting: true, invlpgExiting: !ept,
      mwaitExiting: true, rdpmcExiting: true, rdtscExiting: false, cr3LoadExiting: !ept,
      cr3StoreExiting: !ept, nmiWindowExiting: false, movDrExiting: true,
      unconditionalIoExiting: true, useIoBitmaps: false, monitorTrapFlag: false,
      useMsrBitmaps: true, monitorExiting: true, pauseExiting: false, activateSecondaryControls: true,
    },
    proc2: {
      enableEpt: ept, descriptorTableExiting: false, enableVpid: opts.vpid !== 0,
      wbinvdExiting: true, unrestrictedGuest: ept,
    },
    exceptionBitmap: (1 << 1) | (1 << 6) | (1 << 17) | (1 << 18) | (ept ? 0 : 1 << 14),
    pfecMask: 0,
    pfecMatch: 0,
    cr0Mask: ~cr0Guest >>> 0,
    cr4Mask: ~cr4Guest >>> 0,
    cr0Shadow: 0,
    cr4Shadow: 0,
    cr3Targets: [],
    ioBitmapA: new Uint8Array(4096),
    ioBitmapB: new Uint8Array(4096),
    msrBitmap,
    vpid: opts.vpid & 0xffff,
    eptp: ept ? (opts.eptp ?? 0) >>> 0 : 0,
  };
}

// ---- bitmap helpers ----

/** Sets or clears the I/O-bitmap bit of one port. */
export function setIoIntercept(v: Vmcs, port: number, intercept: boolean): void {
  const p = port & 0xffff;
  const map = p < 0x8000 ? v.ioBitmapA : v.ioBitmapB;
  const bit = p & 0x7fff;
  if (intercept) map[bit >>> 3] = map[bit >>> 3]! | (1 << (bit & 7));
  else map[bit >>> 3] = map[bit >>> 3]! & ~(1 << (bit & 7));
}

/** The I/O-bitmap bit of one port. */
export function ioBit(v: Vmcs, port: number): boolean {
  const p = port & 0xffff;
  const map = p < 0x8000 ? v.ioBitmapA : v.ioBitmapB;
  const bit = p & 0x7fff;
  return ((map[bit >>> 3]! >>> (bit & 7)) & 1) === 1;
}

/** A half-open range of I/O ports, `from` ≤ port < `to`. */
export interface IoPortRange {
  readonly from: number;
  readonly to: number;
}

/**
 * KVM's I/O-bitmap setup until 2017 (arch/x86/kvm/vmx.c, `vmx_init`: both bitmaps
 * all ones, then `clear_bit(0x80, vmx_io_bitmap_a)`, "Allow direct access to the PC debug
 * port"): every port exits but the POST/delay port 0x80. (Linux commit d59d51f08801 removed
 * the pass-through and went back to exiting on every port.)
 */
export const KVM_IO_PASS_THROUGH: readonly IoPortRange[] = [{ from: 0x80, to: 0x81 }];

/**
 * Switches `v` to I/O bitmaps (SDM §25.6.4): every port intercepted (both bitmaps all ones)
 * except the `passThrough` ranges, which the guest then reaches without a VM exit.
 * Called at attach time (the mutant hook below is read here only).
 */
export function passThroughPorts(v: Vmcs, passThrough: readonly IoPortRange[]): void {
  v.proc.useIoBitmaps = true;
  v.proc.unconditionalIoExiting = false;
  v.ioBitmapA.fill(0xff);
  v.ioBitmapB.fill(0xff);
  // Verifier mutant 'io-bitmap-off-by-one': the range's end taken as inclusive.
  const end = mutant('io-bitmap-off-by-one') ? 1 : 0;
  for (const r of passThrough) for (let p = r.from; p < r.to + end; p++) setIoIntercept(v, p, false);
}

/** Byte offset of an MSR's bit in the MSR bitmap, or -1 when the MSR is outside both ranges. */
function msrBitIndex(msr: number, write: boolean): number {
  const m = msr >>> 0;
  let base: number;
  if (m <= 0x1fff) base = 0;
  else if (m >= 0xc0000000 && m <= 0xc0001fff) base = 1024;
  else return -1;
  return ((write ? 2048 : 0) + base) * 8 + (m & 0x1fff);
}

/** Sets or clears the read or write intercept bit of an MSR (throws outside the two ranges). */
export function setMsrIntercept(bitmap: Uint8Array, msr: number, write: boolean, intercept: boolean): void {
  const i = msrBitIndex(msr, write);
  if (i < 0) throw new RangeError(`MSR 0x${(msr >>> 0).toString(16)} has no bit in the MSR bitmap`);
  if (intercept) bitmap[i >>> 3] = bitmap[i >>> 3]! | (1 << (i & 7));
  else bitmap[i >>> 3] = bitmap[i >>> 3]! & ~(1 << (i & 7));
}

// ==========================================================================================
// Decisions
// ==========================================================================================

/** How an I/O instruction names its port and moves its data (for the qualification). */
export interface IoAccess {
  port: number;
  size: 1 | 2 | 4;
  in: boolean;
  string: boolean;
  rep: boolean;
  immediate: boolean;
}

/**
 * I/O instruction (§26.1.3): with I/O bitmaps, exits iff the bit of any byte port accessed is
 * set, or the access wraps past 0xFFFF; otherwise exits iff unconditional I/O exiting.
 */
export function ioExit(v: Vmcs, a: IoAccess): VmExit | null {
  if (!ioExits(v, a.port, a.size)) return null;
  return exit(ExitReason.IoInstruction, encodeIo(a));
}

/** The bare I/O decision for a port range (see `ioExit`). */
export function ioExits(v: Vmcs, port: number, size: number): boolean {
  if (!v.proc.useIoBitmaps) return v.proc.unconditionalIoExiting;
  const p = port & 0xffff;
  if (p + size - 1 > 0xffff) return true;
  for (let i = 0; i < size; i++) if (ioBit(v, p + i)) return true;
  return false;
}

/**
 * RDMSR/WRMSR (§26.1.3): without MSR bitmaps every one exits; with them, an MSR outside
 * 0-0x1FFF and 0xC0000000-0xC0001FFF always exits, others per their bit.
 */
export function msrExit(v: Vmcs, msr: number, write: boolean): VmExit | null {
  const reason = write ? ExitReason.Wrmsr : ExitReason.Rdmsr;
  if (!v.proc.useMsrBitmaps) return exit(reason);
  const i = msrBitIndex(msr, write);
  if (i < 0 || ((v.msrBitmap[i >>> 3]! >>> (i & 7)) & 1) === 1) return exit(reason);
  return null;
}

/**
 * MOV to CR0/CR3/CR4 from general register `gpr` (§26.1.3): CR0/CR4 exit iff some host-owned
 * bit (mask) of the value differs from the read shadow; CR3 exits iff CR3-load exiting and the
 * value is not one of the CR3-target values.
 */
export function movToCrExit(v: Vmcs, cr: 0 | 3 | 4, value: number, gpr: number): VmExit | null {
  let exits: boolean;
  if (cr === 0) exits = ((value ^ v.cr0Shadow) & v.cr0Mask) !== 0;
  else if (cr === 4) exits = ((value ^ v.cr4Shadow) & v.cr4Mask) !== 0;
  else exits = v.proc.cr3LoadExiting && !v.cr3Targets.slice(0, 4).some((t) => (t >>> 0) === (value >>> 0));
  if (!exits) return null;
  return exit(ExitReason.CrAccess, encodeCrAccess({ cr, type: CrAccessType.MovToCr, lmswMemory: false, gpr, lmswSource: 0 }));
}

/** MOV from CR (§26.1.3): only CR3 with CR3-store exiting; CR0/CR4 reads never exit (see `guestCrRead`). */
export function movFromCrExit(v: Vmcs, cr: 0 | 2 | 3 | 4, gpr: number): VmExit | null {
  if (cr !== 3 || !v.proc.cr3StoreExiting) return null;
  return exit(ExitReason.CrAccess, encodeCrAccess({ cr: 3, type: CrAccessType.MovFromCr, lmswMemory: false, gpr, lmswSource: 0 }));
}

/** CLTS: exits iff CR0.TS is host-owned and its read-shadow bit is 1. */
export function cltsExit(v: Vmcs): VmExit | null {
  if ((v.cr0Mask & CR0_TS) === 0 || (v.cr0Shadow & CR0_TS) === 0) return null;
  return exit(ExitReason.CrAccess, encodeCrAccess({ cr: 0, type: CrAccessType.Clts, lmswMemory: false, gpr: 0, lmswSource: 0 }));
}

/**
 * LMSW (§26.1.3): exits iff (mask.PE and shadow.PE = 0 and source.PE = 1) or, for any of
 * MP/EM/TS, the bit is host-owned and the source differs from the shadow. (LMSW cannot clear PE.)
 */
export function lmswExit(v: Vmcs, source: number, memoryOperand: boolean): VmExit | null {
  const m = v.cr0Mask, s = v.cr0Shadow;
  const pe = (m & CR0_PE) !== 0 && (s & CR0_PE) === 0 && (source & CR0_PE) !== 0;
  const low = ((source ^ s) & m & (CR0_MP | CR0_EM | CR0_TS)) !== 0;
  if (!pe && !low) return null;
  return exit(ExitReason.CrAccess, encodeCrAccess({ cr: 0, type: CrAccessType.Lmsw, lmswMemory: memoryOperand, gpr: 0, lmswSource: source & 0xffff }));
}

/** What the guest reads from CR0/CR4 (MOV from CR, SMSW): host-owned bits come from the shadow. */
export function guestCrRead(v: Vmcs, cr: 0 | 4, real: number): number {
  const mask = cr === 0 ? v.cr0Mask : v.cr4Mask;
  const shadow = cr === 0 ? v.cr0Shadow : v.cr4Shadow;
  return ((real & ~mask) | (shadow & mask)) >>> 0;
}

/** Vectors that deliver an error code (IA-32: #DF, #TS, #NP, #SS, #GP, #PF, #AC). */
const ERROR_CODE_VECTORS = (1 << 8) | (1 << 10) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 17);

/** How an exception arose, for the interruption type. */
export type ExceptionSource = 'hardware' | 'int3' | 'into' | 'int1';

/**
 * Exception (§25.6.3): exits iff its bit in the exception bitmap is set; for #PF (14), iff
 * bit 14 equals ((errorCode & PFEC_MASK) == PFEC_MATCH). Qualification: the faulting linear
 * address for #PF (CR2 is not written on such an exit), 0 otherwise (the #DB DR6 bits are not
 * modelled). INT n is a software interrupt, not an exception: it never consults the bitmap.
 */
export function exceptionExit(v: Vmcs, vector: number, errorCode: number, pfLinear = 0,
  source: ExceptionSource = 'hardware'): VmExit | null {
  const bit = ((v.exceptionBitmap >>> vector) & 1) === 1;
  let exits = bit;
  if (vector === 14) exits = bit === ((errorCode & v.pfecMask) === v.pfecMatch);
  if (!exits) return null;
  const hasCode = source === 'hardware' && ((ERROR_CODE_VECTORS >>> vector) & 1) === 1;
  const type = source === 'int3' || source === 'into' ? InterruptionType.SoftwareException
    : source === 'int1' ? InterruptionType.PrivilegedSoftwareException
      : vector === 2 ? InterruptionType.Nmi : InterruptionType.HardwareException;
  return exit(ExitReason.ExceptionOrNmi, vector === 14 ? pfLinear : 0,
    encodeInterruptionInfo(vector, type, hasCode), hasCode ? errorCode : 0);
}

/** A triple fault always exits (reason 2). */
export function tripleFaultExit(): VmExit {
  return exit(ExitReason.TripleFault);
}

/**
 * External interrupt: exits iff external-interrupt exiting — then regardless of EFLAGS.IF
 * (§26.3: IF does not block external interrupts in that case). Interruption information is
 * given as if "acknowledge interrupt on exit" is set (KVM sets it).
 */
export function externalInterruptExit(v: Vmcs, vector: number): VmExit | null {
  if (!v.pin.externalInterruptExiting) return null;
  return exit(ExitReason.ExternalInterrupt, 0, encodeInterruptionInfo(vector, InterruptionType.ExternalInterrupt, false));
}

/**
 * Interrupt window (§26.2): at an instruction boundary with interrupt-window exiting on, exits
 * iff EFLAGS.IF = 1 and there is no STI / MOV-SS blocking.
 */
export function interruptWindowExit(v: Vmcs, ifFlag: boolean, blockedByStiOrMovSs: boolean): VmExit | null {
  if (!v.proc.interruptWindowExiting || !ifFlag || blockedByStiOrMovSs) return null;
  return exit(ExitReason.InterruptWindow);
}

/** Instructions whose exit depends only on a control bit (or on nothing). */
export type SimpleInstruction =
  | 'cpuid' | 'getsec' | 'invd' | 'xsetbv' | 'vmcall' | 'vmx' | 'hlt' | 'invlpg' | 'rdpmc'
  | 'rdtsc' | 'rdtscp' | 'mwait' | 'monitor' | 'pause' | 'wbinvd' | 'mov-dr'
  | 'gdtr-idtr' | 'ldtr-tr' | 'task-switch';

/**
 * Exit decision for an instruction without port/MSR/CR operands. `operand` is the INVLPG
 * linear address (its qualification) or, for MOV DR, the qualification already encoded by the
 * caller (SDM Table 28-4: DR number bits 2:0, direction bit 4, GPR bits 11:8). VMX
 * instructions (`vmx`) exit unconditionally; the caller names the exact one by `vmxReason`.
 */
export function instructionExit(v: Vmcs, insn: SimpleInstruction, operand = 0, vmxReason: number = ExitReason.Vmclear): VmExit | null {
  const p = v.proc, s = v.proc2;
  const sec = p.activateSecondaryControls;
  switch (insn) {
    case 'cpuid': return exit(ExitReason.Cpuid);
    case 'getsec': return exit(ExitReason.Getsec);
    case 'invd': return exit(ExitReason.Invd);
    case 'xsetbv': return exit(ExitReason.Xsetbv);
    case 'vmcall': return exit(ExitReason.Vmcall);
    case 'task-switch': return exit(ExitReason.TaskSwitch);
    case 'vmx':
      if (!(vmxReason >= 19 && vmxReason <= 27) && vmxReason !== 50 && vmxReason !== 53) {
        throw new RangeError(`${vmxReason} is not a VMX-instruction exit reason`);
      }
      return exit(vmxReason);
    case 'hlt': return p.hltExiting ? exit(ExitReason.Hlt) : null;
    case 'invlpg': return p.invlpgExiting ? exit(ExitReason.Invlpg, operand) : null;
    case 'rdpmc': return p.rdpmcExiting ? exit(ExitReason.Rdpmc) : null;
    case 'rdtsc': return p.rdtscExiting ? exit(ExitReason.Rdtsc) : null;
    case 'rdtscp': return p.rdtscExiting ? exit(ExitReason.Rdtscp) : null;
    case 'mwait': return p.mwaitExiting ? exit(ExitReason.Mwait) : null;
    case 'monitor': return p.monitorExiting ? exit(ExitReason.Monitor) : null;
    case 'pause': return p.pauseExiting ? exit(ExitReason.Pause) : null;
    case 'mov-dr': return p.movDrExiting ? exit(ExitReason.MovDr, operand) : null;
    case 'wbinvd': return sec && s.wbinvdExiting ? exit(ExitReason.Wbinvd) : null;
    case 'gdtr-idtr': return sec && s.descriptorTableExiting ? exit(ExitReason.GdtrIdtrAccess) : null;
    case 'ldtr-tr': return sec && s.descriptorTableExiting ? exit(ExitReason.LdtrTrAccess) : null;
  }
}

/** EPT is in use (secondary controls active and "enable EPT"). */
export function eptEnabled(v: Vmcs): boolean {
  return v.proc.activateSecondaryControls && v.proc2.enableEpt;
}

/** VPID is in use (secondary controls active, "enable VPID", non-zero VPID). */
export function vpidEnabled(v: Vmcs): boolean {
  return v.proc.activateSecondaryControls && v.proc2.enableVpid && v.vpid !== 0;
}
