/**
 * VMX basic exit reasons and the exit-qualification formats the `hw` monitor uses.
 *
 * Numbers and names: Intel SDM Vol. 3C, Appendix C "VMX Basic Exit Reasons" (Table C-1),
 * checked against Linux `arch/x86/include/uapi/asm/vmx.h` (EXIT_REASON_*: 0 EXCEPTION_NMI,
 * 1 EXTERNAL_INTERRUPT, 2 TRIPLE_FAULT, 7 PENDING_INTERRUPT, 8 NMI_WINDOW, 9 TASK_SWITCH,
 * 10 CPUID, 12 HLT, 13 INVD, 14 INVLPG, 15 RDPMC, 16 RDTSC, 18 VMCALL, 19-27 VMX
 * instructions, 28 CR_ACCESS, 29 DR_ACCESS, 30 IO_INSTRUCTION, 31 MSR_READ, 32 MSR_WRITE,
 * 33 INVALID_STATE, 36 MWAIT, 39 MONITOR, 40 PAUSE, 41 MCE_DURING_VMENTRY, 43
 * TPR_BELOW_THRESHOLD, 44 APIC_ACCESS, 45 EOI_INDUCED, 48 EPT_VIOLATION, 49 EPT_MISCONFIG,
 * 50 INVEPT, 52 PREEMPTION_TIMER, 54 WBINVD, 55 XSETBV, 56 APIC_WRITE, 58 INVPCID) and the
 * SDM-worded table in Kernkonzept uvmm `server/src/ARCH-amd64/vmx_exit_to_str.h` (0-69).
 *
 * Qualification layouts: SDM Vol. 3C §28.2.1 (§27.2.1 in older editions), Tables 28-3
 * (control-register accesses), 28-5 (I/O instructions), 28-7 (EPT violations); the
 * interruption-information layout is §25.9.2 (VM-exit interruption information), Table 25-19.
 */

/** Basic exit reasons (bits 15:0 of the exit-reason field), SDM Table C-1. */
export const ExitReason = {
  ExceptionOrNmi: 0,
  ExternalInterrupt: 1,
  TripleFault: 2,
  InitSignal: 3,
  StartupIpi: 4,
  IoSmi: 5,
  OtherSmi: 6,
  InterruptWindow: 7,
  NmiWindow: 8,
  TaskSwitch: 9,
  Cpuid: 10,
  Getsec: 11,
  Hlt: 12,
  Invd: 13,
  Invlpg: 14,
  Rdpmc: 15,
  Rdtsc: 16,
  Rsm: 17,
  Vmcall: 18,
  Vmclear: 19,
  Vmlaunch: 20,
  Vmptrld: 21,
  Vmptrst: 22,
  Vmread: 23,
  Vmresume: 24,
  Vmwrite: 25,
  Vmxoff: 26,
  Vmxon: 27,
  CrAccess: 28,
  MovDr: 29,
  IoInstruction: 30,
  Rdmsr: 31,
  Wrmsr: 32,
  EntryFailInvalidGuestState: 33,
  EntryFailMsrLoading: 34,
  Mwait: 36,
  MonitorTrapFlag: 37,
  Monitor: 39,
  Pause: 40,
  EntryFailMachineCheck: 41,
  TprBelowThreshold: 43,
  ApicAccess: 44,
  VirtualizedEoi: 45,
  GdtrIdtrAccess: 46,
  LdtrTrAccess: 47,
  EptViolation: 48,
  EptMisconfiguration: 49,
  Invept: 50,
  Rdtscp: 51,
  PreemptionTimer: 52,
  Invvpid: 53,
  Wbinvd: 54,
  Xsetbv: 55,
  ApicWrite: 56,
  Rdrand: 57,
  Invpcid: 58,
  Vmfunc: 59,
  Encls: 60,
  Rdseed: 61,
  PmlFull: 62,
  Xsaves: 63,
  Xrstors: 64,
} as const;

export type ExitReasonNumber = (typeof ExitReason)[keyof typeof ExitReason];

/**
 * SDM names of the basic exit reasons (Table C-1, "Name" column). Reasons 35, 38 and 42 are
 * not assigned. Reasons that a 32-bit (non-IA-32e) guest on this machine cannot produce are
 * still listed so that numbers are never reused; `APPLIES_TO_32BIT_GUEST` says which apply.
 */
export const EXIT_REASON_NAMES: Readonly<Record<number, string>> = {
  0: 'Exception or non-maskable interrupt (NMI)',
  1: 'External interrupt',
  2: 'Triple fault',
  3: 'INIT signal',
  4: 'Start-up IPI (SIPI)',
  5: 'I/O system-management interrupt (SMI)',
  6: 'Other SMI',
  7: 'Interrupt window',
  8: 'NMI window',
  9: 'Task switch',
  10: 'CPUID',
  11: 'GETSEC',
  12: 'HLT',
  13: 'INVD',
  14: 'INVLPG',
  15: 'RDPMC',
  16: 'RDTSC',
  17: 'RSM',
  18: 'VMCALL',
  19: 'VMCLEAR',
  20: 'VMLAUNCH',
  21: 'VMPTRLD',
  22: 'VMPTRST',
  23: 'VMREAD',
  24: 'VMRESUME',
  25: 'VMWRITE',
  26: 'VMXOFF',
  27: 'VMXON',
  28: 'Control-register accesses',
  29: 'MOV DR',
  30: 'I/O instruction',
  31: 'RDMSR',
  32: 'WRMSR',
  33: 'VM-entry failure due to invalid guest state',
  34: 'VM-entry failure due to MSR loading',
  36: 'MWAIT',
  37: 'Monitor trap flag',
  39: 'MONITOR',
  40: 'PAUSE',
  41: 'VM-entry failure due to machine-check event',
  43: 'TPR below threshold',
  44: 'APIC access',
  45: 'Virtualized EOI',
  46: 'Access to GDTR or IDTR',
  47: 'Access to LDTR or TR',
  48: 'EPT violation',
  49: 'EPT misconfiguration',
  50: 'INVEPT',
  51: 'RDTSCP',
  52: 'VMX-preemption timer expired',
  53: 'INVVPID',
  54: 'WBINVD',
  55: 'XSETBV',
  56: 'APIC write',
  57: 'RDRAND',
  58: 'INVPCID',
  59: 'VMFUNC',
  60: 'ENCLS',
  61: 'RDSEED',
  62: 'Page-modification log full',
  63: 'XSAVES',
  64: 'XRSTORS',
};

/**
 * Reasons a 32-bit guest of this P6-class machine (single CPU, no APIC virtualization, no
 * SMM, no SGX, no XSAVE) can produce under the `hw` monitor. VMX instructions (19-27), INVEPT,
 * INVVPID and VMFUNC exit unconditionally in VMX non-root operation, so a guest executing one
 * would exit; they are included.
 */
export const APPLIES_TO_32BIT_GUEST: ReadonlySet<number> = new Set([
  0, 1, 2, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
  31, 32, 33, 34, 36, 37, 39, 40, 46, 47, 48, 49, 50, 53, 54, 59,
]);

/** Short lower-case slugs for accounting categories: `exit:<slug>`. */
const SLUGS: Readonly<Record<number, string>> = {
  0: 'exception-nmi', 1: 'external-interrupt', 2: 'triple-fault', 3: 'init', 4: 'sipi',
  5: 'io-smi', 6: 'other-smi', 7: 'interrupt-window', 8: 'nmi-window', 9: 'task-switch',
  10: 'cpuid', 11: 'getsec', 12: 'hlt', 13: 'invd', 14: 'invlpg', 15: 'rdpmc', 16: 'rdtsc',
  17: 'rsm', 18: 'vmcall', 19: 'vmclear', 20: 'vmlaunch', 21: 'vmptrld', 22: 'vmptrst',
  23: 'vmread', 24: 'vmresume', 25: 'vmwrite', 26: 'vmxoff', 27: 'vmxon', 28: 'cr-access',
  29: 'mov-dr', 30: 'io-instruction', 31: 'rdmsr', 32: 'wrmsr', 33: 'entry-fail-guest-state',
  34: 'entry-fail-msr-load', 36: 'mwait', 37: 'monitor-trap-flag', 39: 'monitor', 40: 'pause',
  41: 'entry-fail-machine-check', 43: 'tpr-below-threshold', 44: 'apic-access',
  45: 'virtualized-eoi', 46: 'gdtr-idtr-access', 47: 'ldtr-tr-access', 48: 'ept-violation',
  49: 'ept-misconfig', 50: 'invept', 51: 'rdtscp', 52: 'preemption-timer', 53: 'invvpid',
  54: 'wbinvd', 55: 'xsetbv', 56: 'apic-write', 57: 'rdrand', 58: 'invpcid', 59: 'vmfunc',
  60: 'encls', 61: 'rdseed', 62: 'pml-full', 63: 'xsaves', 64: 'xrstors',
};

/** Accounting category strings, built once so charging an exit allocates nothing. */
const CATEGORIES: string[] = [];
for (const [k, v] of Object.entries(SLUGS)) CATEGORIES[Number(k)] = `exit:${v}`;

/** The accounting category of an exit reason, e.g. `exit:hlt`. Throws on an unassigned number. */
export function exitCategory(reason: number): string {
  const c = CATEGORIES[reason];
  if (c === undefined) throw new RangeError(`unassigned VMX basic exit reason ${reason}`);
  return c;
}

/** The SDM name of an exit reason. Throws on an unassigned number. */
export function exitReasonName(reason: number): string {
  const n = EXIT_REASON_NAMES[reason];
  if (n === undefined) throw new RangeError(`unassigned VMX basic exit reason ${reason}`);
  return n;
}

// ==========================================================================================
// Exit qualification: control-register accesses (SDM Table 28-3)
// ==========================================================================================

/** Bits 5:4 of the CR-access qualification. */
export const CrAccessType = { MovToCr: 0, MovFromCr: 1, Clts: 2, Lmsw: 3 } as const;

/** Decoded control-register-access qualification. */
export interface CrAccessQualification {
  /** Bits 3:0: control register number (0 for CLTS and LMSW). */
  readonly cr: number;
  /** Bits 5:4: access type (`CrAccessType`). */
  readonly type: number;
  /** Bit 6: LMSW operand type, 0 register, 1 memory (0 for other types). */
  readonly lmswMemory: boolean;
  /** Bits 11:8: general register of MOV CR (0 EAX, 1 ECX, 2 EDX, 3 EBX, 4 ESP, 5 EBP, 6 ESI, 7 EDI). */
  readonly gpr: number;
  /** Bits 31:16: LMSW source data (0 for other types). */
  readonly lmswSource: number;
}

/** Encodes a CR-access qualification. */
export function encodeCrAccess(q: CrAccessQualification): number {
  return ((q.cr & 0xf) | ((q.type & 3) << 4) | (q.lmswMemory ? 0x40 : 0) | ((q.gpr & 0xf) << 8)
    | ((q.lmswSource & 0xffff) << 16)) >>> 0;
}

/** Decodes a CR-access qualification. */
export function decodeCrAccess(v: number): CrAccessQualification {
  return {
    cr: v & 0xf,
    type: (v >>> 4) & 3,
    lmswMemory: (v & 0x40) !== 0,
    gpr: (v >>> 8) & 0xf,
    lmswSource: (v >>> 16) & 0xffff,
  };
}

// ==========================================================================================
// Exit qualification: I/O instructions (SDM Table 28-5)
// ==========================================================================================

/** Decoded I/O-instruction qualification. */
export interface IoQualification {
  /** Access size in bytes: 1, 2 or 4 (encoded in bits 2:0 as size − 1). */
  readonly size: 1 | 2 | 4;
  /** Bit 3: direction, true = IN (0 = OUT). */
  readonly in: boolean;
  /** Bit 4: string instruction (INS/OUTS). */
  readonly string: boolean;
  /** Bit 5: REP prefixed. */
  readonly rep: boolean;
  /** Bit 6: operand encoding, true = immediate port (0 = DX). */
  readonly immediate: boolean;
  /** Bits 31:16: port number. */
  readonly port: number;
}

/** Encodes an I/O-instruction qualification. */
export function encodeIo(q: IoQualification): number {
  return ((q.size - 1) | (q.in ? 8 : 0) | (q.string ? 0x10 : 0) | (q.rep ? 0x20 : 0)
    | (q.immediate ? 0x40 : 0) | ((q.port & 0xffff) << 16)) >>> 0;
}

/** Decodes an I/O-instruction qualification. */
export function decodeIo(v: number): IoQualification {
  const s = (v & 7) + 1;
  if (s !== 1 && s !== 2 && s !== 4) throw new RangeError(`bad I/O qualification size field ${v & 7}`);
  return {
    size: s,
    in: (v & 8) !== 0,
    string: (v & 0x10) !== 0,
    rep: (v & 0x20) !== 0,
    immediate: (v & 0x40) !== 0,
    port: (v >>> 16) & 0xffff,
  };
}

// ==========================================================================================
// Exit qualification: EPT violations (SDM Table 28-7)
// ==========================================================================================

/** Decoded EPT-violation qualification (the bits this model produces). */
export interface EptViolationQualification {
  /** Bit 0: the access was a data read. */
  readonly read: boolean;
  /** Bit 1: the access was a data write (includes guest A/D-bit updates). */
  readonly write: boolean;
  /** Bit 2: the access was an instruction fetch. */
  readonly fetch: boolean;
  /** Bits 3-5: the guest-physical address was readable / writable / executable (AND over levels). */
  readonly readable: boolean;
  readonly writable: boolean;
  readonly executable: boolean;
  /** Bit 7: the guest-linear-address field is valid. */
  readonly linearValid: boolean;
  /**
   * Bit 8 (meaningful when bit 7 is set): true = the access was to the translation of a
   * linear address (the final guest-physical address), false = to a guest paging-structure entry.
   */
  readonly finalTranslation: boolean;
}

/** EPT-violation qualification bits. */
export const EPTV_READ = 1, EPTV_WRITE = 2, EPTV_FETCH = 4, EPTV_READABLE = 8,
  EPTV_WRITABLE = 0x10, EPTV_EXECUTABLE = 0x20, EPTV_LINEAR_VALID = 0x80, EPTV_FINAL = 0x100;

/** Encodes an EPT-violation qualification. */
export function encodeEptViolation(q: EptViolationQualification): number {
  return (q.read ? EPTV_READ : 0) | (q.write ? EPTV_WRITE : 0) | (q.fetch ? EPTV_FETCH : 0)
    | (q.readable ? EPTV_READABLE : 0) | (q.writable ? EPTV_WRITABLE : 0)
    | (q.executable ? EPTV_EXECUTABLE : 0) | (q.linearValid ? EPTV_LINEAR_VALID : 0)
    | (q.linearValid && q.finalTranslation ? EPTV_FINAL : 0);
}

/** Decodes an EPT-violation qualification. */
export function decodeEptViolation(v: number): EptViolationQualification {
  return {
    read: (v & EPTV_READ) !== 0,
    write: (v & EPTV_WRITE) !== 0,
    fetch: (v & EPTV_FETCH) !== 0,
    readable: (v & EPTV_READABLE) !== 0,
    writable: (v & EPTV_WRITABLE) !== 0,
    executable: (v & EPTV_EXECUTABLE) !== 0,
    linearValid: (v & EPTV_LINEAR_VALID) !== 0,
    finalTranslation: (v & EPTV_FINAL) !== 0,
  };
}

// ==========================================================================================
// VM-exit interruption information (SDM §25.9.2, Table 25-19)
// ==========================================================================================

/** Bits 10:8 of the interruption-information field. */
export const InterruptionType = {
  ExternalInterrupt: 0,
  Nmi: 2,
  HardwareException: 3,
  SoftwareInterrupt: 4,
  PrivilegedSoftwareException: 5,
  SoftwareException: 6,
} as const;

/** Encodes interruption information: vector, type, error-code-valid, valid (bit 31). */
export function encodeInterruptionInfo(vector: number, type: number, errorCodeValid: boolean): number {
  return ((vector & 0xff) | ((type & 7) << 8) | (errorCodeValid ? 0x800 : 0) | 0x80000000) >>> 0;
}
