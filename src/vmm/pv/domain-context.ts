/**
 * What the parts of the `pv` hypervisor model (hypercall dispatch, direct paging, event
 * channels, grant tables, split-driver back ends) share about one domain. The hypervisor
 * (`pv.ts`) implements it; the other parts take it as their only view of the machine, so
 * that they can be unit-tested against a small fake.
 *
 * Frame numbers are branded: a pseudo-physical frame (what the guest thinks is physical,
 * `Pfn`) and a machine frame (a real frame of `PhysicalMemory`, `Mfn`) must never be mixed
 * up — that mistake is exactly the class of bug direct paging is about.
 */
import type { PhysicalMemory } from '../../machine/memory.js';

/** A guest pseudo-physical frame number. */
export type Pfn = number & { readonly __brand: 'Pfn' };
/** A machine frame number (index of a 4 KiB frame of `PhysicalMemory`). */
export type Mfn = number & { readonly __brand: 'Mfn' };
/** A domain id (Xen's domid_t; the hypervisor model's own back ends act as domain 0). */
export type DomId = number & { readonly __brand: 'DomId' };

/** Xen's error numbers as hypercalls return them (negated), from xen/include/public/errno.h. */
export const XEN_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, E2BIG: 7, EBADF: 9, EAGAIN: 11,
  ENOMEM: 12, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EINVAL: 22, ENOSPC: 28,
  ENOSYS: 38, EALREADY: 114,
} as const;

/** The hypervisor's view of one paravirtualized domain, as its components use it. */
export interface PvDomainContext {
  readonly domid: DomId;
  /** Machine memory (the domain's frames and the hypervisor's own). */
  readonly mem: PhysicalMemory;
  /** Pseudo-physical → machine (the domain's P2M). Throws RangeError for a pfn out of range. */
  p2m(pfn: Pfn): Mfn;
  /** Machine → pseudo-physical (the hypervisor's M2P); -1 when the frame is not the domain's. */
  m2p(mfn: Mfn): Pfn | -1;
  /** True when the machine frame belongs to this domain (and may be mapped / granted / DMA'd). */
  ownsMfn(mfn: Mfn): boolean;
  /**
   * Copies between the hypervisor and guest *virtual* memory through the guest's current page
   * tables, as Xen's copy_from_guest/copy_to_guest. Returns false (the caller answers
   * -EFAULT) when a page is not mapped or not user/kernel-accessible.
   */
  copyFromGuest(va: number, dst: Uint8Array): boolean;
  copyToGuest(va: number, src: Uint8Array): boolean;
  /** Charges the hypervisor's work (category e.g. `hypercall:event_channel_op`, `event`). */
  charge(category: string, cycles: number): void;
  /**
   * Marks an event upcall pending (vcpu_info.evtchn_upcall_pending = 1); the hypervisor
   * delivers it to the guest's registered callback when the guest's mask allows.
   */
  raiseUpcall(): void;
  /** Machine frame of this domain's shared_info page (Xen's 32-bit layout). */
  readonly sharedInfoMfn: Mfn;
  /** Counts a rejected, hostile or invalid request in the run record (`attack.<what>`). */
  countRejected(what: string): void;
}
