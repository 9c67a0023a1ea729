/**
 * The kernel's paravirtual (Xen 32-bit PV) flavour: the boot path a Xen domain builder
 * enters (`xen_start`, paging on, ring 1, ESI = start_info), the stubs the `pv` mode patches
 * pv-op sites to call (page-table writes through mmu_update with pfn→mfn conversion and
 * lazy-MMU batching, base-pointer switches, TLB flushes, page-table pinning, the kernel stack,
 * the trap table), the event upcall handler, and the PV console and shutdown. None of it runs
 * natively: the native kernel only tests `xen_si` (zero) where the paths differ, as Linux
 * tests xen_domain(). See docs/pv.md.
 *
 * Every stub keeps the register contract of the site it stands for (a `set-pte` store
 * preserves every register; the lifetime hooks may clobber EAX, ECX, EDX).
 */
import { al, eax, ebp, ebx, ecx, edi, edx, esi, esp, byte, dword, word } from '../../x86/operands.js';
import type { Kx } from './kernel.js';
import { DIRECT_MAP_BYTES, KERNEL_VIRT, PTE_G, PTE_P, PTE_W, TF } from './layout.js';
import {
  CALLBACKF_mask_events, CALLBACKTYPE, CONSOLEIO_write, DOMID_SELF, EVTCHNOP_bind_virq, HYPERCALL, HYPERCALL_VECTOR,
  MACH2PHYS_VIRT_START, MMUEXT, MMU_UPDATE_SIZE, MULTICALL_ENTRY_SIZE, PV_KERNEL_CS, PV_KERNEL_SS, SCHEDOP, SHINFO,
  SHUTDOWN, START_INFO, TI_IF, UVMF_INVLPG, VCPU, VCPUOP, VIRQ_TIMER,
} from '../../vmm/pv/abi.js';

const PAGE = 4096;
const NPT = DIRECT_MAP_BYTES / (4 * 1024 * 1024);
const MAX_FRAMES = DIRECT_MAP_BYTES / PAGE;
/** Entries of the lazy-MMU queue (flushed when full, as Linux's multicall buffer). */
export const XEN_MMU_QUEUE = 128;
/** Pseudo-vector of an event upcall in the kernel's trap frame. */
export const VEC_XEN_UPCALL = 0xf0;
/** Event-channel ports the kernel maps to its interrupt handlers (byte table, irq + 1). */
const NR_PORTS = 1024;

/** Symbols the `pv` hypervisor reads from the kernel's PV note (what each patched site calls). */
export const XEN_NOTE_SYMBOLS = [
  'xen_start', 'xen_set_pte', 'xen_write_cr3', 'xen_flush_tlb', 'xen_invlpg', 'xen_m2p_eax', 'xen_m2p_ebx',
  'xen_load_idt', 'xen_set_kstack', 'xen_lazy_begin', 'xen_lazy_end', 'xen_alloc_pt', 'xen_alloc_pd',
  'xen_release_pt', 'xen_release_pd', 'xen_pushf', 'xen_popf', 'xen_shared_page', 'lazy_mmu_begin', 'lazy_mmu_end',
  'pv_alloc_pt', 'pv_alloc_pd', 'pv_release_pt', 'pv_release_pd', 'kernel_end', 'xen_iret', 'xen_text_start', 'xen_text_end',
] as const;

/** Emits the PV flavour into the kernel being built (text, data and bss). */
export function emitXen(k: Kx, hz: number): void {
  const { a, L } = k;
  const fn = (name: string, body: () => void): void => { a.bind(L(name)); body(); };
  const hc = (nr: number): void => { a.mov(eax, nr); a.int(HYPERCALL_VECTOR); };
  const vcpu = (field: number) => dword(L('xen_shared_page').plus(field));
  const vcpuB = (field: number) => byte(L('xen_shared_page').plus(field));
  const p2m = (reg: typeof eax) => dword({ index: reg, scale: 4, disp: L('xen_p2m') });
  const fail = (what: string): void => {
    const ok = a.label();
    a.test(eax, eax); a.jz(ok);
    a.mov(dword(L('xen_last_error')), eax);
    a.mov(eax, L(`xen_msg_${what}`)); a.jmp(L('panic'));
    a.bind(ok);
  };
  /** pfn→mfn of the physical address in `reg` (flags kept), through the copied P2M. */
  const toMachine = (reg: typeof eax, tmp: typeof eax): void => {
    a.mov(tmp, reg); a.shr(tmp, 12); a.mov(tmp, p2m(tmp)); a.shl(tmp, 12);
    a.and(reg, 0xfff); a.or(reg, tmp);
  };

  a.section('text');
  a.bind(L('xen_text_start'));
  // ---------------------------------------------------------------- boot (the domain builder's entry)
  fn('xen_start', () => {
    a.cld();
    a.mov(esp, L('boot_stack_top'));
    a.mov(dword(L('xen_si')), esi);
    a.mov(eax, dword(esi, START_INFO.NR_PAGES));
    a.mov(dword(L('xen_nr_pages')), eax);
    a.mov(ecx, eax);
    const small = a.label();
    a.cmp(ecx, MAX_FRAMES); a.jbe(small); a.mov(ecx, MAX_FRAMES); a.bind(small);
    a.mov(dword(L('xen_p2m_n')), ecx);
    // The P2M is copied into the kernel: start_info and mfn_list become free memory later.
    a.push(esi);
    a.mov(esi, dword(esi, START_INFO.MFN_LIST)); a.mov(edi, L('xen_p2m')); a.movsd('rep');
    a.pop(esi);
    // The kernel's page tables map pfn p at KERNEL_VIRT + p with machine frames; its own
    // page-table frames (kernel_pd, kernel_pts) read-only, as Xen requires of pinned tables.
    a.mov(ebx, L('kernel_pd').phys()); a.shr(ebx, 12); // first page-table pfn
    a.xor(ecx, ecx);
    const fill = a.here(), store = a.label();
    a.xor(eax, eax);
    a.cmp(ecx, dword(L('xen_p2m_n'))); a.jae(store);
    a.mov(eax, p2m(ecx)); a.shl(eax, 12); a.or(eax, PTE_P | PTE_W | PTE_G);
    a.mov(edx, ecx); a.sub(edx, ebx); a.cmp(edx, NPT + 1); a.jae(store);
    a.and(eax, ~PTE_W);
    a.bind(store);
    a.mov(dword({ index: ecx, scale: 4, disp: L('kernel_pts') }), eax);
    a.inc(ecx); a.cmp(ecx, MAX_FRAMES); a.jb(fill);
    // shared_info (a hypervisor frame) behind xen_shared_page.
    a.mov(eax, dword(esi, START_INFO.SHARED_INFO)); a.and(eax, ~0xfff); a.or(eax, PTE_P | PTE_W | PTE_G);
    a.mov(edx, L('xen_shared_page').phys()); a.shr(edx, 12);
    a.mov(dword({ index: edx, scale: 4, disp: L('kernel_pts') }), eax);
    // The directory: PDEs 768.. → the kernel page tables.
    a.xor(ecx, ecx);
    const pdl = a.here();
    a.mov(eax, L('kernel_pts').phys()); a.shr(eax, 12); a.add(eax, ecx);
    a.mov(eax, p2m(eax)); a.shl(eax, 12); a.or(eax, PTE_P | PTE_W);
    a.mov(dword({ index: ecx, scale: 4, disp: L('kernel_pd').plus((KERNEL_VIRT >>> 22) * 4) }), eax);
    a.inc(ecx); a.cmp(ecx, NPT); a.jb(pdl);
    // Read-only in the builder's mapping too, before pinning (update_va_mapping).
    a.mov(edi, L('kernel_pd'));
    const ro = a.here();
    a.mov(ebx, edi);
    a.lea(ecx, dword(edi, 0x4000_0000) /* - KERNEL_VIRT (mod 2^32) */); a.shr(ecx, 12); a.mov(ecx, p2m(ecx)); a.shl(ecx, 12); a.or(ecx, PTE_P | PTE_G);
    a.mov(edx, UVMF_INVLPG);
    hc(HYPERCALL.update_va_mapping); fail('uvm');
    a.add(edi, PAGE);
    a.cmp(edi, L('kernel_pts').plus(NPT * PAGE)); a.jb(ro);
    // One mmuext_op batch: pin the L1s and the L2, switch to it.
    a.mov(edi, L('xen_ext_ops'));
    a.xor(ecx, ecx);
    const pins = a.here();
    a.mov(dword(edi), MMUEXT.PIN_L1_TABLE);
    a.mov(eax, L('kernel_pts').phys()); a.shr(eax, 12); a.add(eax, ecx); a.mov(eax, p2m(eax));
    a.mov(dword(edi, 4), eax);
    a.add(edi, 12); a.inc(ecx); a.cmp(ecx, NPT); a.jb(pins);
    a.mov(eax, L('kernel_pd').phys()); a.shr(eax, 12); a.mov(eax, p2m(eax));
    a.mov(dword(edi), MMUEXT.PIN_L2_TABLE); a.mov(dword(edi, 4), eax);
    a.mov(dword(edi, 12), MMUEXT.NEW_BASEPTR); a.mov(dword(edi, 16), eax);
    a.mov(ebx, L('xen_ext_ops')); a.mov(ecx, NPT + 2); a.xor(edx, edx); a.mov(esi, DOMID_SELF);
    hc(HYPERCALL.mmuext_op); fail('pin');
    // Event and failsafe callbacks; the SYSENTER callback.
    a.mov(ebx, PV_KERNEL_CS); a.mov(ecx, L('xen_hypervisor_callback'));
    a.mov(edx, PV_KERNEL_CS); a.mov(esi, L('xen_failsafe_callback'));
    hc(HYPERCALL.set_callbacks); fail('cb');
    a.mov(ebx, 0); a.mov(ecx, L('xen_cb_sysenter'));
    hc(HYPERCALL.callback_op); fail('cb');
    a.jmp(L('start_kernel'));
  });

  // ---------------------------------------------------------------- page-table writes
  // xen_set_pte: the set-pte site `mov [edi], eax`; EDI a direct-map address, EAX a
  // pseudo-physical entry. Every register and the result preserved.
  fn('xen_set_pte', () => {
    a.push(eax); a.push(ebx); a.push(ecx); a.push(edx); a.push(esi);
    a.lea(ebx, dword(edi, 0x4000_0000) /* - KERNEL_VIRT (mod 2^32) */);
    toMachine(ebx, ecx);
    const notPresent = a.label(), queue = a.label(), out = a.label();
    a.test(eax, PTE_P); a.jz(notPresent);
    toMachine(eax, ecx);
    a.bind(notPresent);
    a.cmp(dword(L('xen_lazy')), 0); a.jne(queue);
    a.mov(dword(L('xen_req')), ebx); a.mov(dword(L('xen_req').plus(8)), eax);
    a.mov(ebx, L('xen_req')); a.mov(ecx, 1); a.xor(edx, edx); a.mov(esi, DOMID_SELF);
    hc(HYPERCALL.mmu_update); fail('mmu');
    a.jmp(out);
    a.bind(queue);
    a.mov(ecx, dword(L('xen_mmu_n')));
    a.shl(ecx, 4);
    a.mov(dword({ base: ecx, disp: L('xen_mmu_q') }), ebx);
    a.mov(dword({ base: ecx, disp: L('xen_mmu_q').plus(8) }), eax);
    a.shr(ecx, 4); a.inc(ecx);
    a.mov(dword(L('xen_mmu_n')), ecx);
    a.cmp(ecx, XEN_MMU_QUEUE); a.jb(out);
    a.call(L('xen_mmu_flush'));
    a.bind(out);
    a.pop(esi); a.pop(edx); a.pop(ecx); a.pop(ebx); a.pop(eax);
    a.ret();
  });
  // xen_mmu_flush: issues the queued updates as one mmu_update, or, when a TLB flush was
  // asked for inside the lazy section, as one multicall [mmu_update, mmuext_op(flush)].
  // Clobbers EAX, EBX, ECX, EDX, ESI.
  fn('xen_mmu_flush', () => {
    const none = a.label(), multi = a.label(), done = a.label(), out = a.label();
    a.mov(ecx, dword(L('xen_mmu_n')));
    a.test(ecx, ecx); a.jz(none);
    a.cmp(dword(L('xen_tlb_pending')), 0); a.jne(multi);
    a.mov(ebx, L('xen_mmu_q')); a.xor(edx, edx); a.mov(esi, DOMID_SELF);
    hc(HYPERCALL.mmu_update); fail('mmu');
    a.jmp(done);
    a.bind(multi);
    a.mov(dword(L('xen_mc').plus(12)), ecx);
    a.mov(ebx, L('xen_mc')); a.mov(ecx, 2);
    hc(HYPERCALL.multicall); fail('mc');
    a.mov(eax, dword(L('xen_mc').plus(4))); fail('mmu');
    a.mov(eax, dword(L('xen_mc').plus(MULTICALL_ENTRY_SIZE + 4))); fail('mc');
    a.bind(done);
    a.mov(dword(L('xen_mmu_n')), 0);
    a.mov(dword(L('xen_tlb_pending')), 0);
    a.jmp(out);
    a.bind(none);
    a.cmp(dword(L('xen_tlb_pending')), 0); a.je(out);
    a.mov(dword(L('xen_tlb_pending')), 0);
    a.mov(eax, MMUEXT.TLB_FLUSH_LOCAL); a.call(L('xen_mmuext1'));
    a.bind(out);
    a.ret();
  });
  // xen_mmuext1(eax = cmd, edx = arg1): one mmuext_op. Clobbers EAX, EBX, ECX, EDX, ESI.
  fn('xen_mmuext1', () => {
    a.mov(dword(L('xen_op')), eax); a.mov(dword(L('xen_op').plus(4)), edx);
    a.mov(ebx, L('xen_op')); a.mov(ecx, 1); a.xor(edx, edx); a.mov(esi, DOMID_SELF);
    hc(HYPERCALL.mmuext_op); fail('ext');
    a.ret();
  });
  const saving = (body: () => void): void => {
    a.push(eax); a.push(ebx); a.push(ecx); a.push(edx); a.push(esi);
    body();
    a.pop(esi); a.pop(edx); a.pop(ecx); a.pop(ebx); a.pop(eax);
    a.ret();
  };
  // write-cr3 (EAX = directory, pseudo-physical): MMUEXT_NEW_BASEPTR.
  fn('xen_write_cr3', () => saving(() => {
    a.mov(edx, eax); a.shr(edx, 12); a.mov(edx, p2m(edx));
    a.mov(eax, MMUEXT.NEW_BASEPTR); a.call(L('xen_mmuext1'));
  }));
  // flush-tlb: MMUEXT_TLB_FLUSH_LOCAL (deferred to the batch inside a lazy section).
  fn('xen_flush_tlb', () => saving(() => {
    const now = a.label(), out = a.label();
    a.cmp(dword(L('xen_lazy')), 0); a.je(now);
    a.mov(dword(L('xen_tlb_pending')), 1); a.jmp(out);
    a.bind(now);
    a.mov(eax, MMUEXT.TLB_FLUSH_LOCAL); a.call(L('xen_mmuext1'));
    a.bind(out);
  }));
  // flush-tlb-entry (EAX = linear address): MMUEXT_INVLPG_LOCAL (a flush after the batch when lazy).
  fn('xen_invlpg', () => saving(() => {
    const now = a.label(), out = a.label();
    a.cmp(dword(L('xen_lazy')), 0); a.je(now);
    a.mov(dword(L('xen_tlb_pending')), 1); a.jmp(out);
    a.bind(now);
    a.mov(edx, eax); a.mov(eax, MMUEXT.INVLPG_LOCAL); a.call(L('xen_mmuext1'));
    a.bind(out);
  }));
  // read-pte: after the native load, the entry's machine frame back to pseudo-physical
  // through the hypervisor's read-only M2P (machine_to_phys_mapping at MACH2PHYS_VIRT_START).
  for (const [name, reg] of [['xen_m2p_eax', eax], ['xen_m2p_ebx', ebx]] as const) {
    fn(name, () => {
      const out = a.label();
      a.test(reg, PTE_P); a.jz(out);
      a.push(ecx);
      a.mov(ecx, reg); a.shr(ecx, 12);
      a.mov(ecx, dword({ index: ecx, scale: 4, disp: MACH2PHYS_VIRT_START | 0 }));
      a.shl(ecx, 12);
      a.and(reg, 0xfff); a.or(reg, ecx);
      a.pop(ecx);
      a.bind(out);
      a.ret();
    });
  }
  // Lazy MMU mode (arch_enter/leave_lazy_mmu_mode).
  fn('xen_lazy_begin', () => { a.mov(dword(L('xen_lazy')), 1); a.ret(); });
  fn('xen_lazy_end', () => saving(() => {
    a.mov(dword(L('xen_lazy')), 0);
    a.call(L('xen_mmu_flush'));
  }));
  // Page-table lifetime (EAX = physical frame; may clobber EAX, ECX, EDX): read-only in the
  // direct map, then pinned; on release unpinned, then writable again (Linux's
  // xen_alloc_pte / xen_release_pte).
  // One multicall of two entries (Linux batches these the same way, xen_mc_batch): the
  // direct-map protection change (update_va_mapping) and the pin or unpin (mmuext_op), in the
  // order `protectFirst` says. EAX = the frame; clobbers EAX, EBX, ECX, EDX, ESI.
  const ptMulticall = (cmd: number, writable: boolean, protectFirst: boolean): void => {
    const uvm = protectFirst ? L('xen_mc2') : L('xen_mc2').plus(MULTICALL_ENTRY_SIZE);
    const ext = protectFirst ? L('xen_mc2').plus(MULTICALL_ENTRY_SIZE) : L('xen_mc2');
    a.lea(ebx, dword(eax, KERNEL_VIRT));
    a.mov(ecx, eax); a.shr(ecx, 12); a.mov(ecx, p2m(ecx));
    a.mov(dword(L('xen_op')), cmd); a.mov(dword(L('xen_op').plus(4)), ecx);
    a.shl(ecx, 12); a.or(ecx, PTE_P | PTE_G | (writable ? PTE_W : 0));
    a.mov(dword(uvm), HYPERCALL.update_va_mapping);
    a.mov(dword(uvm.plus(8)), ebx); a.mov(dword(uvm.plus(12)), ecx); a.mov(dword(uvm.plus(16)), UVMF_INVLPG);
    a.mov(dword(ext), HYPERCALL.mmuext_op);
    a.mov(dword(ext.plus(8)), L('xen_op')); a.mov(dword(ext.plus(12)), 1);
    a.mov(dword(ext.plus(16)), 0); a.mov(dword(ext.plus(20)), DOMID_SELF);
    a.mov(ebx, L('xen_mc2')); a.mov(ecx, 2);
    hc(HYPERCALL.multicall); fail('mc');
    a.mov(eax, dword(uvm.plus(4))); fail('uvm');
    a.mov(eax, dword(ext.plus(4))); fail('ext');
  };
  for (const [name, cmd] of [['xen_alloc_pt', MMUEXT.PIN_L1_TABLE], ['xen_alloc_pd', MMUEXT.PIN_L2_TABLE]] as const) {
    fn(name, () => {
      a.push(ebx); a.push(esi);
      ptMulticall(cmd, false, true); // read-only first: a pinned table has no writable mapping
      a.pop(esi); a.pop(ebx);
      a.ret();
    });
  }
  for (const name of ['xen_release_pt', 'xen_release_pd']) {
    fn(name, () => {
      a.push(ebx); a.push(esi); a.push(eax);
      // Queued updates of the table (its entries cleared in free_user) go first.
      const flushed = a.label();
      a.cmp(dword(L('xen_mmu_n')), 0); a.je(flushed);
      a.call(L('xen_mmu_flush'));
      a.bind(flushed);
      a.pop(eax);
      ptMulticall(MMUEXT.UNPIN_TABLE, true, false); // unpinned first, then writable again
      a.pop(esi); a.pop(ebx);
      a.ret();
    });
  }
  // set-kernel-stack (ECX = ESP0): the store the kernel reads back, and stack_switch.
  fn('xen_set_kstack', () => saving(() => {
    a.mov(dword(L('tss').plus(4)), ecx);
    a.mov(ebx, PV_KERNEL_SS); // ECX already holds the stack pointer
    hc(HYPERCALL.stack_switch); fail('stack');
  }));
  // load-idt: the kernel's IDT as a trap table (Linux's xen_convert_trap_info): vectors 0-31
  // with the gates' DPL and interrupt-gate flag, and int 0x80 as a DPL-3 trap gate to
  // xen_int80 (Xen installs a direct hardware gate only for a trap without TI_IF).
  fn('xen_load_idt', () => {
    a.pusha();
    a.mov(edi, L('xen_trap_table'));
    a.xor(ecx, ecx);
    const loop = a.here();
    a.call(L('xen_conv_gate'));
    a.inc(ecx); a.cmp(ecx, 32); a.jb(loop);
    a.mov(byte(edi), 0x80); a.mov(byte(edi, 1), 3);
    a.mov(word(edi, 2), PV_KERNEL_CS); a.mov(dword(edi, 4), L('xen_int80'));
    a.mov(dword(edi, 8), 0); a.mov(dword(edi, 12), 0);
    a.mov(ebx, L('xen_trap_table'));
    hc(HYPERCALL.set_trap_table); fail('traps');
    a.popa();
    a.ret();
  });
  fn('xen_conv_gate', () => {
    a.mov(edx, dword({ index: ecx, scale: 8, disp: L('idt').plus(4) }));
    a.mov(eax, edx); a.and(eax, 0xffff_0000);
    a.mov(esi, dword({ index: ecx, scale: 8, disp: L('idt') })); a.and(esi, 0xffff); a.or(eax, esi);
    a.mov(dword(edi, 4), eax);
    a.mov(eax, ecx); a.mov(byte(edi), al);
    a.mov(eax, edx); a.shr(eax, 13); a.and(eax, 3);
    const trapGate = a.label();
    a.test(edx, 0x100); a.jnz(trapGate);
    a.or(eax, TI_IF);
    a.bind(trapGate);
    a.mov(byte(edi, 1), al);
    a.mov(word(edi, 2), PV_KERNEL_CS);
    a.add(edi, 8);
    a.ret();
  });
  // System calls arrive through the hypervisor's direct trap gate with events unmasked: mask
  // them first, as the kernel's interrupt gate would (the iret hypercall unmasks).
  fn('xen_int80', () => {
    a.mov(vcpuB(VCPU.UPCALL_MASK), 1);
    a.push(0); a.push(0x80);
    a.jmp(L('trap_common'));
  });
  // save-flags / restore-flags as Xen's pv_irq_ops: EFLAGS with IF = !evtchn_upcall_mask.
  fn('xen_pushf', () => {
    // The site's `pushf` became `call xen_pushf`: leave the flags where the return address is.
    a.push(dword(esp));
    a.push(eax);
    a.mov(eax, 0x202); // IF, and the always-one bit 1: the arithmetic flags are not kept
    const masked = a.label(), st = a.label();
    a.cmp(vcpuB(VCPU.UPCALL_MASK), 0); a.jne(masked); a.jmp(st);
    a.bind(masked); a.and(eax, ~0x200);
    a.bind(st);
    a.mov(dword(esp, 8), eax);
    a.pop(eax);
    a.ret();
  });
  fn('xen_popf', () => {
    // `popf` became `call xen_popf`: the flags word is above the return address.
    a.push(eax);
    a.mov(eax, dword(esp, 8));
    a.test(eax, 0x200);
    a.set('z', vcpuB(VCPU.UPCALL_MASK));
    a.pop(eax);
    a.ret(4);
  });

  // iret (the site jumps here, every register the interrupted context's, the frame at ESP):
  // Xen-Linux's restore_all. Returning to a context with events enabled unmasks them; if an
  // event is already pending the iret hypercall returns and delivers it at once, else a plain
  // IRET does (from ring 1 to ring 1 or 3 it needs no hypervisor). The IRETs here are the PV
  // flavour's own sites, which the pv patcher leaves native.
  fn('xen_iret', () => {
    const masked = a.label(), slow = a.label();
    a.test(dword(esp, 8), 0x200); a.jz(masked);
    a.mov(vcpuB(VCPU.UPCALL_MASK), 0);
    a.cmp(vcpuB(VCPU.UPCALL_PENDING), 0); a.jne(slow);
    k.pv('iret', () => a.iret());
    a.bind(masked);
    a.mov(vcpuB(VCPU.UPCALL_MASK), 1);
    k.pv('iret', () => a.iret());
    a.bind(slow);
    a.push(eax); hc(HYPERCALL.iret);
  });

  // ---------------------------------------------------------------- events
  fn('xen_hypervisor_callback', () => { a.push(0); a.push(VEC_XEN_UPCALL); a.jmp(L('trap_common')); });
  fn('xen_failsafe_callback', () => { a.mov(eax, L('xen_msg_failsafe')); a.jmp(L('panic')); });
  // xen_do_upcall(eax = frame): the 2-level scan (Linux's xen_evtchn_do_upcall): for every
  // pending, unmasked port, clear it and run the interrupt handler its IRQ has on the PIC path.
  fn('xen_do_upcall', () => {
    a.push(ebx); a.push(esi); a.push(edi); a.push(ebp);
    a.mov(ebp, eax);
    const again = a.here(), done = a.label(), words = a.label(), bits = a.label(), nextWord = a.label();
    a.mov(vcpuB(VCPU.UPCALL_PENDING), 0);
    a.xor(esi, esi);
    a.xchg(vcpu(VCPU.PENDING_SEL), esi);
    a.test(esi, esi); a.jz(done);
    a.bind(words);
    a.bsf(edi, esi); a.btr(esi, edi);
    a.bind(bits);
    a.mov(eax, dword({ index: edi, scale: 4, disp: L('xen_shared_page').plus(SHINFO.EVTCHN_PENDING) }));
    a.mov(edx, dword({ index: edi, scale: 4, disp: L('xen_shared_page').plus(SHINFO.EVTCHN_MASK) }));
    a.not(edx); a.and(eax, edx); a.jz(nextWord);
    a.bsf(ecx, eax);
    a.btr(dword({ index: edi, scale: 4, disp: L('xen_shared_page').plus(SHINFO.EVTCHN_PENDING) }), ecx);
    a.mov(eax, edi); a.shl(eax, 5); a.add(eax, ecx);
    a.movzx(eax, byte({ base: eax, disp: L('xen_evtchn_irq') }));
    a.test(eax, eax); a.jz(bits);
    a.add(eax, 0x20 - 1);
    a.mov(dword(ebp, TF.VECTOR), eax);
    a.call(L('xen_irq'));
    a.jmp(bits);
    a.bind(nextWord);
    a.test(esi, esi); a.jnz(words);
    a.jmp(again);
    a.bind(done);
    a.pop(ebp); a.pop(edi); a.pop(esi); a.pop(ebx);
    a.ret();
  });
  // xen_irq(ebp = frame, its vector set): the kernel's `irq` without the PIC EOI.
  fn('xen_irq', () => {
    a.push(ebx);
    a.mov(ebx, ebp);
    a.mov(eax, dword(ebx, TF.VECTOR)); a.sub(eax, 0x20);
    a.jmp(L('irq_noeoi'));
  });
  // xen_timer_init: VIRQ_TIMER bound to IRQ 0's handler, a periodic timer at the PIT's rate.
  // Without event channels (bind fails) the kernel runs without a tick.
  fn('xen_timer_init', () => {
    a.push(ebx); a.push(esi);
    const out = a.label();
    a.mov(dword(L('xen_bind_virq')), VIRQ_TIMER);
    a.mov(dword(L('xen_bind_virq').plus(4)), 0);
    a.mov(ebx, EVTCHNOP_bind_virq); a.mov(ecx, L('xen_bind_virq'));
    hc(HYPERCALL.event_channel_op);
    a.test(eax, eax); a.jnz(out);
    a.mov(eax, dword(L('xen_bind_virq').plus(8)));
    a.cmp(eax, NR_PORTS); a.jae(out);
    a.mov(byte({ base: eax, disp: L('xen_evtchn_irq') }), 1); // IRQ 0 + 1
    a.mov(ebx, VCPUOP.set_periodic_timer); a.xor(ecx, ecx); a.mov(edx, L('xen_period'));
    hc(HYPERCALL.vcpu_op); fail('timer');
    a.bind(out);
    a.pop(esi); a.pop(ebx);
    a.ret();
  });

  // ---------------------------------------------------------------- console, shutdown
  fn('xen_kputc', () => {
    a.push(eax); a.push(ebx); a.push(ecx); a.push(edx);
    a.mov(byte(L('xen_con_byte')), al);
    a.mov(ebx, CONSOLEIO_write); a.mov(ecx, 1); a.mov(edx, L('xen_con_byte'));
    hc(HYPERCALL.console_io);
    a.pop(edx); a.pop(ecx); a.pop(ebx); a.pop(eax);
    a.ret();
  });
  // xen_machine_stop(al = status): SCHEDOP_shutdown(poweroff), the status in virtlab's extension word.
  fn('xen_machine_stop', () => {
    a.movzx(eax, al);
    a.mov(dword(L('xen_shutdown').plus(4)), eax);
    a.mov(dword(L('xen_shutdown')), SHUTDOWN.poweroff);
    a.mov(ebx, SCHEDOP.shutdown); a.mov(ecx, L('xen_shutdown'));
    const hang = a.here();
    hc(HYPERCALL.sched_op);
    a.jmp(hang);
  });
  a.bind(L('xen_text_end'));

  // ---------------------------------------------------------------- data
  const periodNs = Math.round((Math.round(1_193_182 / hz) * 1e9) / 1_193_182);
  a.section('rodata');
  for (const [name, text] of [['uvm', 'pv: update_va_mapping failed'], ['pin', 'pv: pinning the kernel page tables failed'],
    ['cb', 'pv: callback registration failed'], ['mmu', 'pv: mmu_update failed'], ['mc', 'pv: multicall failed'],
    ['ext', 'pv: mmuext_op failed'], ['stack', 'pv: stack_switch failed'], ['traps', 'pv: set_trap_table failed'],
    ['timer', 'pv: timer setup failed'], ['failsafe', 'pv: failsafe callback']] as const) {
    a.bind(L(`xen_msg_${name}`)); a.asciz(text);
  }
  a.section('data');
  a.align(8);
  a.bind(L('xen_period')); a.dq(BigInt(periodNs));
  for (const v of ['xen_si', 'xen_nr_pages', 'xen_p2m_n', 'xen_lazy', 'xen_mmu_n', 'xen_tlb_pending', 'xen_last_error', 'xen_con_byte']) {
    a.bind(L(v)); a.dd(0);
  }
  a.bind(L('xen_cb_sysenter')); a.dw(CALLBACKTYPE.sysenter, CALLBACKF_mask_events); a.dd(PV_KERNEL_CS, L('sysenter_entry'));
  a.bind(L('xen_bind_virq')); a.dd(0, 0, 0);
  a.bind(L('xen_shutdown')); a.dd(0, 0);
  a.bind(L('xen_op')); a.dd(0, 0, 0);
  a.bind(L('xen_flush_op')); a.dd(MMUEXT.TLB_FLUSH_LOCAL, 0, 0);
  a.align(8);
  a.bind(L('xen_req')); a.dd(0, 0, 0, 0);
  // Two multicall entries: mmu_update(queue, n, NULL, DOMID_SELF), mmuext_op(flush, 1, NULL, DOMID_SELF).
  a.bind(L('xen_mc2')); a.dd(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  a.bind(L('xen_mc'));
  a.dd(HYPERCALL.mmu_update, 0, L('xen_mmu_q'), 0, 0, DOMID_SELF, 0, 0);
  a.dd(HYPERCALL.mmuext_op, 0, L('xen_flush_op'), 1, 0, DOMID_SELF, 0, 0);
  a.section('bss');
  a.align(PAGE);
  a.bind(L('xen_shared_page')); a.reserve(PAGE);
  a.bind(L('xen_p2m')); a.reserve(4 * MAX_FRAMES);
  a.bind(L('xen_mmu_q')); a.reserve(MMU_UPDATE_SIZE * XEN_MMU_QUEUE);
  a.bind(L('xen_trap_table')); a.reserve(8 * 34);
  a.bind(L('xen_ext_ops')); a.reserve(12 * (NPT + 2));
  a.bind(L('xen_evtchn_irq')); a.reserve(NR_PORTS);
  a.section('text');
}

/** The register a read-pte site loads (its stub name), from the site's disassembly. */
export function readPteStub(text: string): string | null {
  const m = /^mov (eax|ebx),/.exec(text);
  return m ? `xen_m2p_${m[1]}` : null;
}

