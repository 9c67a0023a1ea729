import { z } from 'zod';
import { INSTRUCTION_CLASSES, type InstructionClass } from './op-classes.js';

/** A number with where it comes from: every figure of a profile carries its source. */
export const Figure = z.object({
  value: z.number().int().nonnegative(),
  source: z.string().trim().min(1, 'a figure needs a source'),
}).strict();
export type Figure = z.infer<typeof Figure>;

/** A figure that may be fractional (rates such as cycles per byte). */
export const RateFigure = z.object({
  value: z.number().nonnegative().finite(),
  source: z.string().trim().min(1, 'a figure needs a source'),
}).strict();
export type RateFigure = z.infer<typeof RateFigure>;

/** A yes/no property of the CPU, with its source (e.g. "EPT present: Intel SDM ..."). */
export const Feature = z.object({
  present: z.boolean(),
  source: z.string().trim().min(1, 'a feature needs a source'),
}).strict();
export type Feature = z.infer<typeof Feature>;

const TlbShape = z.object({ sets: Figure, ways: Figure }).strict();

const classCosts = Object.fromEntries(INSTRUCTION_CLASSES.map((c) => [c, Figure])) as Record<InstructionClass, typeof Figure>;

/** The per-event costs the CPU adds to an instruction's base (same in v1 and v2). */
const Events = z.object({
  /** An ALU instruction with a memory source (the memory-operand extra is this − aluReg). */
  aluMem: Figure,
  branchTaken: Figure,
  repIteration: Figure,
  /** Delivery of an exception or interrupt through an IDT gate (same privilege). */
  interrupt: Figure,
  /** Extra for a delivery, far transfer or IRET that changes privilege (stack switch). */
  privilegeChange: Figure,
  portIo: Figure,
  segmentLoadProtected: Figure,
  /** Cycles per paging-structure reference of a walk (native, and each reference of a 2-D walk). */
  pageWalkReference: Figure,
  div8: Figure,
  div16: Figure,
  div32: Figure,
  invlpg: Figure,
}).strict();

/**
 * Schema v1: a CPU cost profile for native execution only. Cycle figures are integers; the
 * model charges each instruction its class's figure, plus the per-event figures where the CPU
 * applies them. Still accepted (p6-provisional is v1).
 */
export const ProfileV1 = z.object({
  schema: z.literal('virtlab.profile/1'),
  name: z.string().min(1),
  description: z.string(),
  cpu: z.object({
    model: z.string().min(1),
    frequencyHz: Figure,
  }).strict(),
  /** Base cycles per instruction class (see op-classes.ts for which opcodes are which). */
  classes: z.object(classCosts).strict(),
  events: Events,
  tlb: z.object({
    itlb: TlbShape,
    dtlb: TlbShape,
  }).strict(),
  notes: z.array(z.string()).optional(),
}).strict();
export type ProfileV1 = z.infer<typeof ProfileV1>;

/**
 * VM-exit reasons a profile gives a handler cost for: the VMM's software work between the
 * exit and the next entry (the exit and entry themselves are `vmExit` / `vmEntry`). Names
 * follow the Intel SDM Vol. 3 Appendix C basic exit reasons; an AMD profile maps each to its
 * SVM exit code (AMD APM Vol. 2, Appendix C) in its source.
 */
export const EXIT_HANDLERS = [
  'exceptionOrNmi', 'externalInterrupt', 'interruptWindow', 'cpuid', 'hlt', 'invlpg', 'rdtsc',
  'crAccess', 'ioInstruction', 'rdmsr', 'wrmsr', 'eptViolation', 'eptMisconfig', 'tripleFault', 'vmcall',
] as const;
export type ExitHandler = (typeof EXIT_HANDLERS)[number];

const exitHandlerCosts = Object.fromEntries(EXIT_HANDLERS.map((r) => [r, Figure])) as Record<ExitHandler, typeof Figure>;

/** Schema v2: v1 plus the figures of virtualization (hardware, binary translation, PV, devices). */
export const ProfileV2 = z.object({
  schema: z.literal('virtlab.profile/2'),
  name: z.string().min(1),
  description: z.string(),
  cpu: z.object({
    model: z.string().min(1),
    vendor: z.enum(['intel', 'amd']),
    frequencyHz: Figure,
  }).strict(),
  classes: z.object(classCosts).strict(),
  events: Events,
  tlb: z.object({
    /** First-level 4 KiB-page TLBs: the ones the machine models (LRU within a set). */
    itlb: TlbShape,
    dtlb: TlbShape,
    /** First-level large-page data TLB (ways 0: none; large pages then use the 4 KiB TLB). */
    largePageDtlb: TlbShape,
    /** Second-level (shared) TLB (ways 0: none). */
    stlb: TlbShape,
    /**
     * Entries of the paging-structure caches (Intel SDM Vol. 3A §4.10.3; AMD's page walk
     * cache): a hit skips the upper levels of a walk. 0: none.
     */
    pagingStructureCacheEntries: Figure,
  }).strict(),
  /** Control transfers the CPU makes, beyond `events.interrupt` / `privilegeChange` and the INT/IRET classes. */
  transitions: z.object({
    sysenter: Figure,
    sysexit: Figure,
  }).strict(),
  virtualization: z.object({
    /** Which hardware extension: Intel VT-x (VMX) or AMD-V (SVM). */
    kind: z.enum(['vmx', 'svm']),
    /** Hardware cost of a VM exit (guest → VMM), and of a VM entry (VMM → guest). */
    vmExit: Figure,
    vmEntry: Figure,
    /** VMM software cost per exit reason (between exit and entry). */
    exitHandlers: z.object(exitHandlerCosts).strict(),
    /** Tagged TLB (VPID / ASID): without it, every exit and entry flushes the TLBs. */
    vpid: Feature,
    /** Second-level paging (EPT / NPT) and its two-dimensional walk. */
    nestedPaging: z.object({
      available: Feature,
      /** Levels of the second-level tables (4 for EPT and for 64-bit NPT). */
      levels: Figure,
      /** Entries of the caches of the 2-D walk (nested TLB / EPT paging-structure caches); 0: none. */
      nestedWalkCacheEntries: Figure,
    }).strict(),
  }).strict(),
  /**
   * Monitor software shared by the trap, full and hw-shadow modes (beyond the hardware
   * exception delivery, which the CPU charges from `events`).
   */
  monitor: z.object({
    /** Saving and restoring guest state around a trap into the monitor, and the IRET back to the guest. */
    trapSaveRestore: Figure,
    /** Decoding and emulating one privileged or sensitive instruction against the virtual CPU. */
    emulateInstruction: Figure,
    /** Building a virtual exception/interrupt frame on the guest's kernel stack (reflection). */
    reflectEvent: Figure,
    /** Building a new shadow address space on a CR3 load that misses the shadow cache. */
    shadowSpaceCreate: Figure,
    /** Dropping one shadow PTE whose guest PTE changed. */
    shadowPteDrop: Figure,
    /** Re-deriving one descriptor of the monitor's shadow GDT/LDT. */
    descriptorShadow: Figure,
  }).strict(),
  /** Software full virtualization (VMware-style binary translation and shadow paging). */
  binaryTranslation: z.object({
    translatePerInstruction: Figure,
    callout: Figure,
    inTcEmulation: Figure,
    traceFault: Figure,
    hiddenPageFault: Figure,
    shadowPteUpdate: Figure,
  }).strict(),
  /** Xen-style paravirtualization (32-bit PV ABI, hypercalls through INT 0x82). */
  paravirtualization: z.object({
    hypercall: Figure,
    mmuUpdateBase: Figure,
    mmuUpdatePerEntry: Figure,
    multicallBase: Figure,
    multicallPerEntry: Figure,
    eventChannelSend: Figure,
    eventUpcall: Figure,
    exceptionBounce: Figure,
    grantMap: Figure,
    grantUnmap: Figure,
    vcpuInfoIfToggle: Figure,
  }).strict(),
  devices: z.object({
    /** VMM work to emulate one port I/O access to a device model (beyond the exit / callout). */
    portIoEmulation: Figure,
    /** Cycles per byte of DMA copied by a device model (fractional). */
    dmaPerByte: RateFigure,
  }).strict(),
  notes: z.array(z.string()).optional(),
}).strict();
export type ProfileV2 = z.infer<typeof ProfileV2>;

/** A CPU cost profile: data, not code, so a user can copy one and change a number. */
export const Profile = z.discriminatedUnion('schema', [ProfileV1, ProfileV2]);
export type Profile = ProfileV1 | ProfileV2;
