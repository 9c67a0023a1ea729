/**
 * The Xen 32-bit PV ABI as virtlab's `pv` mode implements it: hypercall numbers, sub-op
 * numbers, structure layouts and the addresses of the hypervisor's part of the address
 * space. Plain constants, shared by the hypervisor model (`pv.ts`, `mm.ts`) and the
 * paravirtualized kernel (`src/guest/kernel/pv-xen.ts`). Sources (docs/pv.md, "ABI"):
 * xen/include/public/xen.h, arch-x86_32.h (arch-x86/xen-x86_32.h), callback.h, sched.h,
 * vcpu.h, event_channel.h of Xen 3.x/4.x, as also carried by Linux in include/xen/interface/.
 */
import { SHARED_INFO, VCPU_INFO, VCPU_INFO_SIZE, XEN_LEGACY_MAX_VCPUS } from './shared-info.js';

/** Hypercall numbers (xen.h, `__HYPERVISOR_*`). */
export const HYPERCALL = {
  set_trap_table: 0, mmu_update: 1, set_gdt: 2, stack_switch: 3, set_callbacks: 4, fpu_taskswitch: 5,
  sched_op_compat: 6, platform_op: 7, set_debugreg: 8, get_debugreg: 9, update_descriptor: 10,
  memory_op: 12, multicall: 13, update_va_mapping: 14, set_timer_op: 15, event_channel_op_compat: 16,
  xen_version: 17, console_io: 18, physdev_op_compat: 19, grant_table_op: 20, vm_assist: 21,
  update_va_mapping_otherdomain: 22, iret: 23, vcpu_op: 24, set_segment_base: 25, mmuext_op: 26,
  xsm_op: 27, nmi_op: 28, sched_op: 29, callback_op: 30, xenoprof_op: 31, event_channel_op: 32,
  physdev_op: 33, hvm_op: 34,
} as const;
export type HypercallName = keyof typeof HYPERCALL;
/** Number → name, for `hypercall:<name>` accounting. */
export const HYPERCALL_NAME: readonly (string | undefined)[] = (() => {
  const a: (string | undefined)[] = [];
  for (const [k, v] of Object.entries(HYPERCALL)) a[v] = k;
  return a;
})();

/** The hypercall trap vector (arch-x86_32.h, TRAP_INSTR "int $0x82"). */
export const HYPERCALL_VECTOR = 0x82;

/** mmu_update: the low 2 bits of `ptr` (xen.h). */
export const MMU_NORMAL_PT_UPDATE = 0, MMU_MACHPHYS_UPDATE = 1;
/** mmu_update_t: { uint64_t ptr; uint64_t val; } — 16 bytes. */
export const MMU_UPDATE_SIZE = 16;

/** mmuext_op commands (xen.h). */
export const MMUEXT = {
  PIN_L1_TABLE: 0, PIN_L2_TABLE: 1, PIN_L3_TABLE: 2, PIN_L4_TABLE: 3, UNPIN_TABLE: 4, NEW_BASEPTR: 5,
  TLB_FLUSH_LOCAL: 6, INVLPG_LOCAL: 7, TLB_FLUSH_MULTI: 8, INVLPG_MULTI: 9, TLB_FLUSH_ALL: 10, INVLPG_ALL: 11,
} as const;
/** struct mmuext_op on x86_32: { uint32 cmd; union { mfn; linear_addr } arg1; union { nr_ents; vcpumask; src_mfn } arg2; } */
export const MMUEXT_OP_SIZE = 12;

/** update_va_mapping flags (xen.h: UVMF_*). */
export const UVMF_NONE = 0, UVMF_TLB_FLUSH = 1, UVMF_INVLPG = 2;

/** multicall_entry_t on x86_32: { ulong op; long result; ulong args[6]; } — 32 bytes. */
export const MULTICALL_ENTRY_SIZE = 32;

/** DOMID_SELF (xen.h). */
export const DOMID_SELF = 0x7ff0;

/** sched_op commands (sched.h) and shutdown reasons. */
export const SCHEDOP = { yield: 0, block: 1, shutdown: 2, poll: 3 } as const;
export const SHUTDOWN = { poweroff: 0, reboot: 1, suspend: 2, crash: 3 } as const;

/** console_io commands (xen.h). */
export const CONSOLEIO_write = 0, CONSOLEIO_read = 1;

/** vcpu_op commands (vcpu.h). */
export const VCPUOP = { set_periodic_timer: 6, stop_periodic_timer: 7, set_singleshot_timer: 8, stop_singleshot_timer: 9 } as const;

/** callback_op (callback.h): CALLBACKOP_register, the types, CALLBACKF_mask_events. */
export const CALLBACKOP_register = 0, CALLBACKOP_unregister = 1;
export const CALLBACKTYPE = { event: 0, failsafe: 1, sysenter_deprecated: 3, nmi: 4, sysenter: 5 } as const;
export const CALLBACKF_mask_events = 1;

/** event_channel_op sub-ops used by the kernel (event_channel.h) and VIRQ numbers (xen.h). */
export const EVTCHNOP_bind_virq = 1, EVTCHNOP_send = 4;
export const VIRQ_TIMER = 0, VIRQ_CONSOLE = 2;

/** trap_info_t on x86_32: { uint8 vector; uint8 flags; uint16 cs; ulong address; }; flags 0-1 DPL, bit 2 "clear event mask" (TI_SET_IF). */
export const TRAP_INFO_SIZE = 8;
export const TI_IF = 4;

/** shared_info and vcpu_info offsets, under the hypervisor's short names; the layout itself (with its citation) is in shared-info.ts. */
export const SHINFO = {
  VCPU_INFO_SIZE,
  MAX_VIRT_CPUS: XEN_LEGACY_MAX_VCPUS,
  EVTCHN_PENDING: SHARED_INFO.EVTCHN_PENDING,
  EVTCHN_MASK: SHARED_INFO.EVTCHN_MASK,
  WC_VERSION: SHARED_INFO.WC_VERSION,
} as const;
export const VCPU = {
  UPCALL_PENDING: VCPU_INFO.EVTCHN_UPCALL_PENDING,
  UPCALL_MASK: VCPU_INFO.EVTCHN_UPCALL_MASK,
  PENDING_SEL: VCPU_INFO.EVTCHN_PENDING_SEL,
  CR2: VCPU_INFO.ARCH_CR2,
  TIME: VCPU_INFO.TIME,
} as const;

/** start_info (xen.h, x86_32). */
export const START_INFO = {
  MAGIC: 0, NR_PAGES: 32, SHARED_INFO: 36, FLAGS: 40, STORE_MFN: 44, STORE_EVTCHN: 48, CONSOLE_MFN: 52,
  CONSOLE_EVTCHN: 56, PT_BASE: 60, NR_PT_FRAMES: 64, MFN_LIST: 68, MOD_START: 72, MOD_LEN: 76, CMD_LINE: 80,
} as const;
/** "xen-<version>-<platform>" (xen.h). */
export const START_INFO_MAGIC = 'xen-3.0-x86_32';

/**
 * The hypervisor's part of the address space (Xen 3.0 x86_32 non-PAE: HYPERVISOR_VIRT_START
 * = MACH2PHYS_VIRT_START = 0xFC000000, the read-only M2P in its first 4 MiB). virtlab's
 * hypervisor keeps its GDT, IDT and TSS in the top 4 MiB (`MONITOR_WINDOW` of trap.ts).
 */
export const HYPERVISOR_VIRT_START = 0xfc00_0000;
export const MACH2PHYS_VIRT_START = 0xfc00_0000;

/** Selectors of the guest kernel (ring 1) and user (ring 3) in the hypervisor's GDT: the guest's own layout, RPL adjusted. */
export const PV_KERNEL_CS = 0x09, PV_KERNEL_SS = 0x11;

/** Xen's 32-bit guests see no I/O ports here (a domU): port reads float high, writes are dropped. */
export const NOTE_MAGIC = 'VIRTLAB-PVNOTE\0\0';

/** virtlab extension of sched_shutdown: { uint reason; uint status } (the exit status the exit device would report). */
export const SCHED_SHUTDOWN_SIZE = 8;
