/**
 * The shared_info page as Xen lays it out for a 32-bit x86 PV guest (xen/include/public/xen.h:
 * `struct shared_info`, `struct vcpu_info`, `struct vcpu_time_info`; the x86_32 part from
 * xen/include/public/arch-x86/xen-x86_32.h: `struct arch_vcpu_info` is `unsigned long cr2;
 * unsigned long pad[5]`, so `sizeof(vcpu_info_t) == 64`; XEN_LEGACY_MAX_VCPUS is 32 on x86).
 * `unsigned long` / `xen_ulong_t` is 32 bits here, so the 2-level event-channel bitmaps have
 * 32 words of 32 bits: 1024 ports (NR_EVENT_CHANNELS, xen.h).
 *
 * Byte offsets within the page:
 *
 * | offset | field |
 * |---|---|
 * | 0 + 64·v | vcpu_info[v]: evtchn_upcall_pending (u8) at +0, evtchn_upcall_mask (u8) at +1, evtchn_pending_sel (u32) at +4, arch.cr2 at +8, time (32 bytes) at +32 |
 * | 2048 | evtchn_pending[32] (u32 each) |
 * | 2176 | evtchn_mask[32] |
 * | 2304 | wc_version, 2308 wc_sec, 2312 wc_nsec |
 * | 2316 | arch_shared_info (max_pfn, pfn_to_mfn_frame_list_list, nmi_reason, ...) |
 */

/** Bytes of one vcpu_info (x86). */
export const VCPU_INFO_SIZE = 64;
/** vcpu_info slots in shared_info on x86 (XEN_LEGACY_MAX_VCPUS). */
export const XEN_LEGACY_MAX_VCPUS = 32;

/** Offsets inside one vcpu_info. */
export const VCPU_INFO = {
  EVTCHN_UPCALL_PENDING: 0,
  EVTCHN_UPCALL_MASK: 1,
  EVTCHN_PENDING_SEL: 4,
  ARCH_CR2: 8,
  TIME: 32,
} as const;

/** Offsets inside shared_info (32-bit x86). */
export const SHARED_INFO = {
  VCPU_INFO: 0,
  EVTCHN_PENDING: VCPU_INFO_SIZE * XEN_LEGACY_MAX_VCPUS, // 2048
  EVTCHN_MASK: VCPU_INFO_SIZE * XEN_LEGACY_MAX_VCPUS + 32 * 4, // 2176
  WC_VERSION: 2304,
  WC_SEC: 2308,
  WC_NSEC: 2312,
  ARCH: 2316,
} as const;

/** Bits in one bitmap word (sizeof(xen_ulong_t) * 8 on 32-bit x86). */
export const BITS_PER_EVTCHN_WORD = 32;
/** Ports of the 2-level ABI on 32-bit x86: 32 words × 32 bits (NR_EVENT_CHANNELS, xen.h). */
export const NR_EVENT_CHANNELS = 1024;

/** Machine byte address of vcpu `v`'s vcpu_info field `field` in the shared_info frame `mfn`. */
export function vcpuInfoAddr(sharedInfoMfn: number, vcpu: number, field: number): number {
  return sharedInfoMfn * 4096 + vcpu * VCPU_INFO_SIZE + field;
}
