/**
 * Provisional monitor cost figures, until the CPU profiles (src/profiles/) carry VMM
 * figures with their sources; each says where it comes from, and "estimate" means no
 * published figure was used. Cycles per event, charged through `Cpu.charge`.
 */
export interface ProvisionalCost {
  readonly value: number;
  readonly source: string;
}

export const PROVISIONAL_VMM_COSTS = {
  /**
   * A trap into the monitor and back: the hardware exception delivery (the profile's own
   * `interrupt` figure is charged on top of this) plus saving/restoring guest state and the
   * IRET back to ring 1.
   */
  trapRoundTrip: { value: 400, source: 'estimate (ring-1 → monitor exception entry and IRET, state save/restore; cf. Adams & Agesen, ASPLOS 2006, §2: traps cost thousands of cycles on P4-era CPUs)' },
  /** Decoding and emulating one privileged instruction against the virtual CPU. */
  emulateInstruction: { value: 150, source: 'estimate' },
  /** Building a virtual exception/interrupt frame on the guest kernel stack (reflection). */
  reflectEvent: { value: 300, source: 'estimate' },
  /** A hidden page fault: software walk of the guest tables and a shadow PTE fill. */
  hiddenFault: { value: 600, source: 'estimate' },
  /** A trace fault: emulating the guest's page-table write and dropping shadow entries. */
  traceFault: { value: 1200, source: 'estimate' },
  /** Per shadow PTE dropped because the guest word it came from changed. */
  syncDrop: { value: 20, source: 'estimate' },
  /** Building a new shadow address space on a CR3 load that misses the cache. */
  newSpace: { value: 2000, source: 'estimate' },
  /** Re-deriving the monitor's GDT copy (per descriptor). */
  gdtDescriptor: { value: 10, source: 'estimate' },
} as const satisfies Record<string, ProvisionalCost>;
