/**
 * Deliberately injected monitor bugs ("mutants"), to measure the verifier (issue 8,
 * docs/verification.md): each is a switch that changes one line of a monitor's behaviour.
 *
 * A mutant is active while its name is in `ACTIVE_MUTANTS`. The monitors read the set only
 * at attach time or on paths that are already slow (a hidden page fault, a CR3 load, a
 * translated sensitive instruction, a pv hypercall): never a per-instruction test on the
 * native hot path.
 * Nothing enables a mutant except the verifier (`withMutant`), so a normal run pays one
 * `Set.has` on those slow paths and behaves exactly as before.
 */

/** A mutant: its name, the mode(s) it lives in, and the one-line bug it injects. */
export interface MutantInfo {
  readonly name: string;
  /** Modes whose code holds the hook (the verifier runs the properties of these). */
  readonly modes: readonly string[];
  readonly description: string;
  /** Where the hook is (file: function). */
  readonly where: string;
}

/** The catalogue (names are stable: they are CLI arguments and report keys). */
export const MUTANTS: readonly MutantInfo[] = [
  { name: 'shadow-pt-writable', modes: ['trap', 'full', 'hw-shadow'], where: 'shadow-paging.ts: handleFault',
    description: 'a shadow PTE for a guest page-table page is left writable (the trace is not installed): guest PTE writes bypass the monitor' },
  { name: 'shadow-ignores-us', modes: ['trap', 'full', 'hw-shadow'], where: 'shadow-paging.ts: handleFault',
    description: "a shadow PTE ignores the guest's U/S bit (every page user-accessible)" },
  { name: 'shadow-skips-ad', modes: ['trap', 'full', 'hw-shadow'], where: 'shadow-paging.ts: guestWalk',
    description: "the hidden/trace fault handler does not set the guest's accessed/dirty bits" },
  { name: 'shadow-wrong-frame', modes: ['trap', 'full', 'hw-shadow'], where: 'shadow-paging.ts: backing',
    description: 'a hidden fault maps the neighbouring frame (frame ^ 0x1000) instead of the guest\'s' },
  { name: 'cr3-stale-shadow', modes: ['trap', 'full', 'hw-shadow'], where: 'shadow-paging.ts: activate',
    description: 'a guest CR3 switch keeps the previous shadow directory (stale translations)' },
  { name: 'shadow-no-frame-check', modes: ['trap', 'full', 'hw-shadow'], where: 'shadow-paging.ts: backing',
    description: 'a guest mapping of a frame beyond its RAM is shadowed to that frame (monitor memory) instead of open bus' },
  { name: 'bt-smsw', modes: ['full'], where: 'full/full.ts: 0F 01 wrapper',
    description: 'binary translation forgets to virtualize SMSW (the real CR0 shows)' },
  { name: 'bt-pushf', modes: ['full'], where: 'full/full.ts: PUSHF wrapper',
    description: 'binary translation forgets to virtualize PUSHF (the real IF/IOPL show)' },
  { name: 'bt-sgdt', modes: ['full'], where: 'full/full.ts: 0F 01 wrapper',
    description: "binary translation forgets to virtualize SGDT/SIDT (the monitor's tables show)" },
  { name: 'bt-mov-cs', modes: ['full'], where: 'full/full.ts: MOV r/m, Sreg wrapper',
    description: 'binary translation forgets to virtualize MOV from CS/SS (RPL 1 shows)' },
  { name: 'ept-off-by-one', modes: ['hw-nested'], where: 'hw/nested-paging.ts: constructor',
    description: "the EPT entry of the guest's last RAM page is one frame off (it maps the first page of monitor memory)" },
  { name: 'ept-extra-page', modes: ['hw-nested'], where: 'hw/nested-paging.ts: constructor',
    description: 'the EPT maps one page past the guest\'s RAM (monitor memory) instead of leaving it an MMIO violation' },
  { name: 'reflect-cs-rpl', modes: ['trap', 'full'], where: 'trap.ts: reflect',
    description: "an exception reflected to the guest kernel pushes the real CS (RPL 1) instead of the virtual RPL 0" },
  { name: 'reflect-real-flags', modes: ['trap', 'full'], where: 'trap.ts: reflect',
    description: "an exception reflected to the guest kernel pushes the real EFLAGS (IF 1, IOPL 0) instead of the virtual IF/IOPL" },
  { name: 'world-switch-no-flush', modes: ['multi-vm'], where: 'multi-vm.ts: switchTo',
    description: "an untagged TLB is not flushed at a world switch (VM A keeps VM B's translations)" },
  { name: 'pv-foreign-frame', modes: ['pv'], where: 'pv/mm.ts: getEntry',
    description: "mmu_update skips the ownership check of an L1 entry: a read-only mapping of a frame the domain does not own (hypervisor memory) is accepted" },
  { name: 'pv-writable-pagetable', modes: ['pv'], where: 'pv/mm.ts: getType',
    description: 'a writable reference to a frame typed as a page table is granted (the type conflict is ignored): a page table can be mapped writable' },
  { name: 'pv-unpin-keeps-type', modes: ['pv'], where: 'pv/mm.ts: unpin',
    description: "MMUEXT_UNPIN_TABLE clears the pin but does not drop the pin's type reference (the table stays typed forever; counts disagree with the references)" },
  { name: 'pv-grant-any-domid', modes: ['pv'], where: 'pv/grant-table.ts: mapGrant',
    description: "map_grant_ref skips the entry's domid check: a back end maps a grant the guest gave to another domain" },
  { name: 'pv-grant-typed-frame', modes: ['pv'], where: 'pv/grant-table.ts: mapGrant',
    description: 'a writable grant mapping skips the frame-type check: a back end maps a page-table frame writable' },
  { name: 'pv-evtchn-send-unbound', modes: ['pv'], where: 'pv/event-channel.ts: send',
    description: 'EVTCHNOP_send on an unbound port sets that port pending (an event delivered on a channel nobody bound)' },
  { name: 'io-bitmap-off-by-one', modes: ['hw-nested', 'hw-shadow'], where: 'hw/vmcs.ts: passThroughPorts',
    description: "the I/O bitmap's pass-through range is taken as inclusive: port 0x81 (a DMA page register, beyond KVM's pass-through port 0x80) reaches the bus without a VM exit" },
  { name: 'vpid-reuse-no-flush', modes: ['multi-vm'], where: 'multi-vm.ts: runMultiVm (first entry of a VM with a recycled tag)',
    description: "a VM created with a recycled VPID/ASID is entered without flushing that tag (no INVVPID single-context): it starts with the previous owner's TLB entries" },
  { name: 'virtual-if-ignored', modes: ['trap', 'full'], where: 'trap.ts: event (external interrupt)',
    description: 'an external interrupt is reflected to the guest kernel at once although its virtual IF is clear (it executed CLI), instead of being held until STI/POPF/IRET' },
  { name: 'hw-inject-ignores-if', modes: ['hw-nested', 'hw-shadow'], where: 'hw/hw.ts: intrChanged',
    description: "an external interrupt is injected at once although the guest's RFLAGS.IF is clear (or STI/MOV SS blocking), instead of arming interrupt-window exiting" },
  { name: 'pv-evtchn-wrong-domain', modes: ['pv', 'multi-vm'], where: 'pv/event-channel.ts: send',
    description: 'EVTCHNOP_send on an interdomain channel between pv domains sets the pending bit in another domain than the peer (the lowest-numbered other one): an event delivered to the wrong domain' },
  { name: 'dma-no-bound', modes: ['native', 'trap', 'full', 'hw-nested', 'hw-shadow'], where: 'devices/block-device.ts: guestRamDma (read at attach)',
    description: "bus-master DMA is bounded by the whole of physical memory instead of the guest's RAM (no IOMMU-style bound): a DMA descriptor pointing past the guest's RAM reads or writes the monitor's memory" },
];

/** Names of the catalogue. */
export const MUTANT_NAMES: readonly string[] = MUTANTS.map((m) => m.name);

/** The mutants active now (empty except under the verifier). */
export const ACTIVE_MUTANTS = new Set<string>();

/** True when mutant `name` is active (for the hooks). */
export function mutant(name: string): boolean {
  return ACTIVE_MUTANTS.size !== 0 && ACTIVE_MUTANTS.has(name);
}

/** Throws a one-line error naming the known mutants for a name that is not one. */
export function checkMutant(name: string): MutantInfo {
  const m = MUTANTS.find((x) => x.name === name);
  if (m === undefined) throw new RangeError(`unknown mutant "${name}" (known: ${MUTANT_NAMES.join(', ')})`);
  return m;
}

/** Runs `f` with mutant `name` (or none, for null) active, and deactivates it afterwards. */
export function withMutant<T>(name: string | null, f: () => T): T {
  if (name !== null) checkMutant(name);
  const saved = [...ACTIVE_MUTANTS];
  ACTIVE_MUTANTS.clear();
  if (name !== null) ACTIVE_MUTANTS.add(name);
  try {
    return f();
  } finally {
    ACTIVE_MUTANTS.clear();
    for (const s of saved) ACTIVE_MUTANTS.add(s);
  }
}
