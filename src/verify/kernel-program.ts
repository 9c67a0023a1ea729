/**
 * The verifier's third harness (docs/verification.md, "kernel-equivalence, pv-resource-control,
 * kernel-resource-control"): a generated list of KERNEL-level actions emitted as the body of an
 * extra system call of the virtlab kernel, written only with pv-op sites for its privileged
 * operations (set-pte, read-pte, write-cr3, flush-tlb, flush-tlb-entry, irq-disable/enable,
 * save/restore-flags, port-in/out), so that one image runs natively (raw instructions), under
 * `full`, `hw` and `trap` (raw, virtualized by the monitor) and under `pv` (the sites patched
 * into hypercalls and PV stubs by the pv flavour). The kernel builds the playground itself
 * (frames from its allocator, two page tables and two page directories through its own
 * page-table lifetime hooks), runs the actions, prints what they observed (registers, the
 * values read, every playground entry read back through a read-pte site with its frame named
 * by its index among the harness's frames, a checksum of the frames) and returns; init then
 * prints `vk done` and exits.
 *
 * Two kinds of program:
 * - well-formed (`hostile: false`): only the harness's own frames, as a correct kernel issues
 *   them — the `kernel-equivalence` property compares their outcome natively and under each
 *   monitor, `pv` included;
 * - hostile (`hostile: true`): any frame — the kernel's own tables, the playground tables
 *   writable, any pseudo-physical frame, any machine frame (named through a poked entry of
 *   the kernel's P2M copy: a kernel may hand any value to mmu_update), any entry of any
 *   table, a directory switch to any frame — the `pv-resource-control` property checks the
 *   pv hypervisor's invariants after them (pv-isolation.ts's `checkDomain`), and
 *   `kernel-resource-control` the shadow/EPT invariants of `trap`, `full` and `hw`
 *   (invariants.ts's `mappingCheck`).
 *
 * `kernelSensitiveProbe` lists what the sensitive unprivileged instructions, raw in the
 * kernel, reveal in each mode (findings of kernel-equivalence).
 */
import fc from 'fast-check';
import { toMultibootElf } from '../guest/image-elf.js';
import { KernelAssembler } from '../guest/kernel/asm.js';
import { buildKernel, type ExtraSyscall, type Kx } from '../guest/kernel/kernel.js';
import { DIRECT_MAP_BYTES, KERNEL_VIRT, PTE_P, PTE_W } from '../guest/kernel/layout.js';
import { disassemble } from '../machine/disassemble.js';
import type { Cpu } from '../machine/cpu/cpu.js';
import { EAX, EBX, ECX } from '../machine/cpu/constants.js';
import type { EventKind } from '../machine/cpu/interrupts.js';
import { runGuest, prepareGuest, finishGuestRun, type GuestRunSpec } from '../trace/run-guest.js';
import { HYPERCALL, HYPERCALL_VECTOR } from '../vmm/pv/abi.js';
import { XEN_ERRNO } from '../vmm/pv/domain-context.js';
import { OWN_NONE } from '../vmm/pv/mm.js';
import type { PvMonitor } from '../vmm/pv/pv.js';
import { ah, al, ax, bp, bx, cr3, cs, cx, di, ds, dx, dword, fword, si, ss, eax, ebp, ebx, ecx, edi, edx, esi, esp, ptr, type AddrExpr, type Label, type Reg } from '../x86/operands.js';
import type { PvopKind } from '../x86/pvop.js';
import { plainInstruction, registers } from './arbitraries.js';
import { emitRegisterOp, REGS, type Ins, type RegName } from './guest-program.js';
import { mappingCheck } from './invariants.js';
import { attacks, checkDomain, type PvDomain, type PvRunResult } from './pv-isolation.js';
import { userDifference } from './user-program.js';
import { verifyProfile, type Config } from './run.js';
import { minimizeProgram, search, searchState, type KernelProgramCx, type PropertyInfo, type PropertyOptions, type PropertyReport, type Search } from './search.js';
import { withMutant } from '../vmm/mutants.js';

// ------------------------------------------------------------------ the program

/** The window: kernel virtual pages mapped by the playground tables (PDE 896, outside the direct map). */
export const KWIN = 0xe000_0000;
/** Pages of the window (entries of each playground table the actions use). */
export const KPAGES = 16;
/** Frames the harness allocates for the playground. */
export const KFRAMES = 8;
/** The extra system call's number (the kernel's range is 200..239). */
export const SYS_VK = 239;
/** Results the harness records (reads, port inputs, read-pte values); later ones are not recorded. */
export const KMAX_RESULTS = 48;
const PAGE = 4096;
const MAX_FRAMES = DIRECT_MAP_BYTES / PAGE;
/** Pfns whose entries of the kernel's P2M copy a hostile program pokes to name a machine frame (beyond any RAM the verifier uses). */
const POKE_FRAME = MAX_FRAMES - 1, POKE_TABLE = MAX_FRAMES - 2;
/** Port-0x80 byte that marks the start of the actions (after the harness's setup). */
export const BEGIN_MARK = 0xb5;

/**
 * A frame an action names: the harness's own (playground frame, page table, directory), the
 * kernel's own tables, any pseudo-physical frame, or (hostile) any machine frame.
 */
export type KFrame =
  | { readonly k: 'pg'; readonly i: number } // playground frame i (0..KFRAMES-1)
  | { readonly k: 'pt'; readonly t: 0 | 1 } // playground page table A/B
  | { readonly k: 'pd'; readonly t: 0 | 1 } // directory A/B
  | { readonly k: 'kpd' } // the kernel's own directory (kernel_pd)
  | { readonly k: 'kpt'; readonly i: number } // the kernel's i-th page table (kernel_pts)
  | { readonly k: 'pfn'; readonly n: number } // any pseudo-physical frame
  | { readonly k: 'mfn'; readonly n: number }; // a machine frame: the kernel's P2M copy poked to name it

/** One kernel-level action (JSON). */
export type KAct =
  /** Window entry `page` of table A/B := frame | flags, then INVLPG of the window page. */
  | { readonly op: 'kpte'; readonly t: 0 | 1; readonly page: number; readonly frame: KFrame; readonly flags: number }
  /** (hostile) Entry `index` of any frame, as a page-table write, then a full TLB flush. */
  | { readonly op: 'kwpte'; readonly table: KFrame; readonly index: number; readonly frame: KFrame; readonly flags: number }
  /** Directory switch to A/B (write-cr3). */
  | { readonly op: 'kcr3'; readonly t: 0 | 1 }
  /** (hostile) Directory switch to any frame. */
  | { readonly op: 'kxcr3'; readonly frame: KFrame }
  | { readonly op: 'kinvlpg'; readonly page: number }
  | { readonly op: 'kflush' }
  | { readonly op: 'krd'; readonly d: RegName; readonly page: number; readonly off: number }
  | { readonly op: 'kwr'; readonly s: RegName; readonly page: number; readonly off: number }
  | { readonly op: 'kcli' }
  | { readonly op: 'ksti' }
  /** save-flags: `pushf; pop r; and r, IF` (the pv-op contract: only IF is meaningful). */
  | { readonly op: 'kpushf'; readonly d: RegName }
  /** restore-flags with IF = `ifl`, then the arithmetic flags re-established (`cmp esp, esp`). */
  | { readonly op: 'kpopf'; readonly ifl: boolean }
  | { readonly op: 'kout'; readonly port: number; readonly v: number }
  | { readonly op: 'kin'; readonly d: RegName; readonly port: number }
  /** read-pte of window entry `page` of table A/B into EAX/EBX, the frame named by its harness index. */
  | { readonly op: 'krdpte'; readonly t: 0 | 1; readonly page: number; readonly d: 'eax' | 'ebx' }
  /** Unlinks table A/B from its directory and releases it (pv_release_pt); skipped if not linked. */
  | { readonly op: 'kunlink'; readonly t: 0 | 1 }
  /** Allocates (pv_alloc_pt) and links table A/B again; skipped if linked. */
  | { readonly op: 'klink'; readonly t: 0 | 1 };

export type KItem = Ins | KAct;

/** A generated kernel-level program (JSON, replayable). */
export interface KernelGuestProgram {
  readonly regs: readonly number[];
  readonly items: readonly KItem[];
  /** Hostile: any frame (checked under pv for resource control, not compared). */
  readonly hostile: boolean;
}

const REG: Record<RegName, Reg> = { eax, ecx, edx, ebx, ebp, esi, edi };
const REG16: Record<RegName, Reg> = { eax: ax, ecx: cx, edx: dx, ebx: bx, ebp: bp, esi: si, edi: di };
const SEG = { cs, ss, ds } as const;
const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/** A frame as text. */
export function kframeText(f: KFrame): string {
  switch (f.k) {
    case 'pg': return `pg#${f.i}`;
    case 'pt': case 'pd': return `${f.k}${'AB'[f.t]}`;
    case 'kpd': return 'kernel_pd';
    case 'kpt': return `kernel_pt#${f.i}`;
    case 'pfn': return `pfn ${hex(f.n)}`;
    case 'mfn': return `mfn ${hex(f.n)}`;
  }
}
const flagText = (fl: number): string => {
  const n = ['P', 'W', 'U', 'PWT', 'PCD', 'A', 'D', 'PAT', 'G'].filter((_, i) => (fl & (1 << i)) !== 0);
  return n.length === 0 ? '0' : n.join('|') + ((fl & 0xe00) !== 0 ? `|avl${(fl >> 9) & 7}` : '');
};

/** One item as a line (for the listing's comments). */
export function kitemText(it: KItem): string {
  switch (it.op) {
    case 'kpte': return `set-pte ${'AB'[it.t]}[${it.page}] := ${kframeText(it.frame)} ${flagText(it.flags)}; invlpg`;
    case 'kwpte': return `set-pte ${kframeText(it.table)}[${it.index}] := ${kframeText(it.frame)} ${flagText(it.flags)}; flush`;
    case 'kcr3': return `write-cr3 pd${'AB'[it.t]}`;
    case 'kxcr3': return `write-cr3 ${kframeText(it.frame)}`;
    case 'kinvlpg': return `invlpg window page ${it.page}`;
    case 'kflush': return 'flush-tlb';
    case 'krd': return `${it.d} := window[${it.page}] + ${hex(it.off & 0xffc)}`;
    case 'kwr': return `window[${it.page}] + ${hex(it.off & 0xffc)} := ${it.s}`;
    case 'kcli': return 'irq-disable';
    case 'ksti': return 'irq-enable';
    case 'kpushf': return `${it.d} := save-flags & IF`;
    case 'kpopf': return `restore-flags IF=${it.ifl ? 1 : 0}`;
    case 'kout': return `port-out ${hex(it.port)} := ${hex(it.v)}`;
    case 'kin': return `${it.d} := port-in ${hex(it.port)}`;
    case 'krdpte': return `${it.d} := read-pte ${'AB'[it.t]}[${it.page}]`;
    case 'kunlink': return `unlink and release pt${'AB'[it.t]}`;
    case 'klink': return `allocate and link pt${'AB'[it.t]}`;
    default: return `${it.op} (raw) ${Object.entries(it).filter(([k]) => k !== 'op').map(([k, v]) => `${k}=${typeof v === 'number' ? hex(v) : String(v)}`).join(' ')}`.trim();
  }
}

// ------------------------------------------------------------------ emission

/** What the emitter knows statically (the program is straight-line). */
interface EmitState {
  results: number;
  linked: [boolean, boolean];
}

/** The harness's data labels. */
const V = {
  frames: 'vk_frames', pt: 'vk_pt', pd: 'vk_pd', cur: 'vk_cur', res: 'vk_res', regs: 'vk_regs', tmp: 'vk_tmp', norm: 'vk_norm',
} as const;

/** EAX := the physical address of frame `f` (a poked P2M entry for a machine frame; `poke` says which). */
function frameAddr(k: Kx, f: KFrame, poke: number): void {
  const { a, L } = k;
  switch (f.k) {
    case 'pg': a.mov(eax, dword(L(V.frames).plus(4 * (f.i & (KFRAMES - 1))))); break;
    case 'pt': a.mov(eax, dword(L(V.pt).plus(4 * f.t))); break;
    case 'pd': a.mov(eax, dword(L(V.pd).plus(4 * f.t))); break;
    case 'kpd': a.mov(eax, L('kernel_pd')); a.add(eax, -KERNEL_VIRT | 0); break;
    case 'kpt': a.mov(eax, L('kernel_pts')); a.add(eax, ((f.i & 7) * PAGE - KERNEL_VIRT) | 0); break;
    case 'pfn': a.mov(eax, ((f.n & 0xfffff) << 12) | 0); break;
    case 'mfn':
      // A hostile kernel names any machine frame: its P2M copy (xen_p2m; unused natively) says so.
      a.mov(dword(L('xen_p2m').plus(4 * poke)), f.n & 0xfffff);
      a.mov(eax, (poke << 12) | 0);
      break;
  }
}

const setPte = (k: Kx): void => k.pv('set-pte', () => k.a.mov(dword(edi), eax));
/** read-pte into EAX or EBX (12 bytes: room for the pv flavour's conversion call). */
const readPte = (k: Kx, d: Reg): void => k.a.pvop('read-pte', () => k.a.mov(d, dword(edi)), 12);

/** Emits one item. */
function emitKItem(k: Kx, it: KItem, st: EmitState): void {
  const { a, L, pv } = k;
  const record = (r: Reg): void => {
    if (st.results < KMAX_RESULTS) a.mov(dword(L(V.res).plus(4 * st.results++)), r);
  };
  switch (it.op) {
    case 'alu': case 'alui': case 'movi': case 'shift': case 'unary': case 'imul': emitRegisterOp(a, it); break;
    case 'pushpop': a.push(REG[it.s]); a.pop(REG[it.d]); break;
    // Sensitive unprivileged instructions, raw (no pv-op site: a paravirtual kernel is
    // expected not to use them; `kernelSensitiveProbe` shows what they reveal in each mode).
    case 'sgdt': case 'sidt':
      if (it.op === 'sgdt') a.sgdt(fword(L(V.tmp))); else a.sidt(fword(L(V.tmp)));
      a.push(eax);
      a.mov(eax, dword(L(V.tmp))); record(eax);
      a.mov(eax, dword(L(V.tmp).plus(2))); record(eax);
      a.pop(eax);
      break;
    case 'sldt': case 'str': case 'smsw': a.emit(it.op, REG[it.d]); record(REG[it.d]); break;
    case 'lar': case 'lsl': a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG[it.d], REG[it.d]); record(REG[it.d]); break;
    case 'verr': case 'verw':
      // The result is ZF: LAHF (AH) into the record, EAX kept.
      a.mov(REG[it.d], it.sel & 0xffff); a.emit(it.op, REG16[it.d]);
      a.push(eax); a.lahf(); a.movzx(eax, ah); a.and(eax, 0x40); a.mov(dword(L(V.tmp)), eax); a.pop(eax);
      a.mov(REG[it.d], dword(L(V.tmp))); record(REG[it.d]);
      break;
    case 'movsreg': a.emit('mov', REG[it.d], SEG[it.seg]); record(REG[it.d]); break;
    case 'pushseg': a.push(SEG[it.seg]); a.pop(REG[it.d]); record(REG[it.d]); break;
    case 'kpte':
      a.push(eax); a.push(edi);
      frameAddr(k, it.frame, POKE_FRAME);
      a.or(eax, it.flags & 0xfff);
      a.mov(edi, dword(L(V.pt).plus(4 * it.t)));
      a.add(edi, (KERNEL_VIRT + 4 * (it.page & (KPAGES - 1))) | 0);
      setPte(k);
      a.mov(eax, (KWIN + (it.page & (KPAGES - 1)) * PAGE) | 0);
      pv('flush-tlb-entry', () => a.invlpg(ptr(eax)));
      a.pop(edi); a.pop(eax);
      break;
    case 'kwpte':
      a.push(eax); a.push(edi);
      frameAddr(k, it.table, POKE_TABLE);
      a.lea(edi, dword(eax, (KERNEL_VIRT + 4 * (it.index & 1023)) | 0));
      frameAddr(k, it.frame, POKE_FRAME);
      a.or(eax, it.flags & 0xfff);
      setPte(k);
      a.mov(eax, dword(L(V.cur)));
      pv('flush-tlb', () => a.mov(cr3, eax));
      a.pop(edi); a.pop(eax);
      break;
    case 'kcr3': case 'kxcr3':
      a.push(eax);
      if (it.op === 'kcr3') a.mov(eax, dword(L(V.pd).plus(4 * it.t))); else frameAddr(k, it.frame, POKE_TABLE);
      a.mov(dword(L(V.cur)), eax);
      pv('write-cr3', () => a.mov(cr3, eax));
      a.pop(eax);
      break;
    case 'kinvlpg':
      a.push(eax);
      a.mov(eax, (KWIN + (it.page & (KPAGES - 1)) * PAGE) | 0);
      pv('flush-tlb-entry', () => a.invlpg(ptr(eax)));
      a.pop(eax);
      break;
    case 'kflush':
      a.push(eax);
      a.mov(eax, dword(L(V.cur)));
      pv('flush-tlb', () => a.mov(cr3, eax));
      a.pop(eax);
      break;
    case 'krd':
      a.mov(REG[it.d], dword((KWIN + (it.page & (KPAGES - 1)) * PAGE + (it.off & 0xffc)) | 0));
      record(REG[it.d]);
      break;
    case 'kwr':
      a.mov(dword((KWIN + (it.page & (KPAGES - 1)) * PAGE + (it.off & 0xffc)) | 0), REG[it.s]);
      break;
    case 'kcli': pv('irq-disable', () => a.cli()); break;
    case 'ksti': pv('irq-enable', () => a.sti()); break;
    case 'kpushf':
      pv('save-flags', () => a.pushf());
      a.pop(REG[it.d]);
      a.and(REG[it.d], 0x200);
      record(REG[it.d]);
      break;
    case 'kpopf':
      a.push(it.ifl ? 0x202 : 0x2);
      pv('restore-flags', () => a.popf());
      a.cmp(esp, esp);
      break;
    case 'kout':
      a.push(eax); a.push(edx);
      a.mov(al, it.v & 0xff);
      if (it.port < 0x100) pv('port-out', () => a.out(it.port, al));
      else { a.mov(edx, it.port & 0xffff); pv('port-out', () => a.out(dx, al)); }
      a.pop(edx); a.pop(eax);
      break;
    case 'kin':
      a.push(eax); a.push(edx);
      if (it.port < 0x100) pv('port-in', () => a.in(al, it.port));
      else { a.mov(edx, it.port & 0xffff); pv('port-in', () => a.in(al, dx)); }
      a.pop(edx);
      a.movzx(eax, al);
      a.mov(dword(L(V.tmp)), eax);
      a.pop(eax);
      a.mov(REG[it.d], dword(L(V.tmp)));
      record(REG[it.d]);
      break;
    case 'krdpte': {
      const d = it.d === 'ebx' ? ebx : eax;
      a.push(edi);
      a.mov(edi, dword(L(V.pt).plus(4 * it.t)));
      a.add(edi, (KERNEL_VIRT + 4 * (it.page & (KPAGES - 1))) | 0);
      readPte(k, d);
      a.pop(edi);
      if (d === ebx) a.xchg(eax, ebx);
      a.call(L(V.norm));
      if (d === ebx) a.xchg(eax, ebx);
      record(d);
      break;
    }
    case 'kunlink':
      if (!st.linked[it.t]) break;
      st.linked[it.t] = false;
      a.pusha();
      a.mov(edi, dword(L(V.pd).plus(4 * it.t)));
      a.add(edi, (KERNEL_VIRT + 4 * (KWIN >>> 22)) | 0);
      a.xor(eax, eax);
      setPte(k);
      a.mov(eax, dword(L(V.cur)));
      pv('flush-tlb', () => a.mov(cr3, eax));
      a.mov(eax, dword(L(V.pt).plus(4 * it.t)));
      a.call(L('pv_release_pt'));
      a.popa();
      break;
    case 'klink':
      if (st.linked[it.t]) break;
      st.linked[it.t] = true;
      a.pusha();
      linkTable(k, it.t);
      a.popa();
      break;
    default:
      throw new RangeError(`kernel program: "${it.op}" is not a kernel-program item`);
  }
}

/** pv_alloc_pt(pt_t), then directory t's window slot := pt_t (EAX, ECX, EDX, EDI clobbered). */
function linkTable(k: Kx, t: 0 | 1): void {
  const { a, L } = k;
  a.mov(eax, dword(L(V.pt).plus(4 * t)));
  a.call(L('pv_alloc_pt'));
  a.mov(edi, dword(L(V.pd).plus(4 * t)));
  a.add(edi, (KERNEL_VIRT + 4 * (KWIN >>> 22)) | 0);
  a.mov(eax, dword(L(V.pt).plus(4 * t)));
  a.or(eax, PTE_P | PTE_W);
  setPte(k);
}

/** Prints `text` then `n` dwords from `base` in hex (kputhex), space-separated, then a newline. */
function printWords(k: Kx, text: string, base: Label | AddrExpr, n: number): void {
  const { a, L } = k;
  k.print(text);
  for (let i = 0; i < n; i++) {
    a.mov(eax, dword(base.plus(4 * i)));
    a.call(L('kputhex'));
    if (i + 1 < n) { a.mov(al, 0x20); a.call(L('kputc')); }
  }
  a.mov(al, 10); a.call(L('kputc'));
}

/** Emits the system call's body: setup, the items, the report, the return. */
export function emitKernelProgram(k: Kx, p: KernelGuestProgram): void {
  const { a, L, pv } = k;
  const back = a.currentSection;
  a.section('bss');
  a.align(4);
  for (const [name, words] of [[V.frames, KFRAMES], [V.pt, 2], [V.pd, 2], [V.cur, 1], [V.res, KMAX_RESULTS], [V.regs, 8], [V.tmp, 2], ['vk_ptdump', 2 * KPAGES], ['vk_sum', 1]] as const) {
    a.bind(L(name)); a.reserve(4 * words);
  }
  a.section(back);
  a.pusha();
  // Playground frames, each filled with its own pattern through the direct map.
  for (let i = 0; i < KFRAMES; i++) {
    a.call(L('alloc_zeroed'));
    a.mov(dword(L(V.frames).plus(4 * i)), eax);
    a.lea(edi, dword(eax, KERNEL_VIRT | 0));
    a.mov(eax, (Math.imul(i + 1, 0x2545f491) >>> 0) | 0);
    a.mov(ecx, PAGE / 4);
    const fill = a.here();
    a.stosd();
    a.add(eax, 0x9e3779b9 | 0);
    a.rol(eax, 7);
    a.dec(ecx); a.jnz(fill);
  }
  // Two page tables (allocated, then announced with pv_alloc_pt before they are filled, as
  // Linux's alloc_pte), window page j → frame (j + 3t) mod KFRAMES, present and writable.
  for (const t of [0, 1] as const) {
    a.call(L('alloc_zeroed'));
    a.mov(dword(L(V.pt).plus(4 * t)), eax);
    a.call(L('pv_alloc_pt'));
    for (let j = 0; j < KPAGES; j++) {
      a.mov(eax, dword(L(V.frames).plus(4 * ((j + 3 * t) % KFRAMES))));
      a.or(eax, PTE_P | PTE_W);
      a.mov(edi, dword(L(V.pt).plus(4 * t)));
      a.add(edi, (KERNEL_VIRT + 4 * j) | 0);
      setPte(k);
    }
  }
  // Two directories sharing the kernel's tables (new_pd), each with its table in the window slot.
  for (const t of [0, 1] as const) {
    a.call(L('new_pd'));
    a.add(eax, -KERNEL_VIRT | 0);
    a.mov(dword(L(V.pd).plus(4 * t)), eax);
    a.mov(edi, eax);
    a.add(edi, (KERNEL_VIRT + 4 * (KWIN >>> 22)) | 0);
    a.mov(eax, dword(L(V.pt).plus(4 * t)));
    a.or(eax, PTE_P | PTE_W);
    setPte(k);
  }
  a.mov(eax, dword(L(V.pd)));
  a.mov(dword(L(V.cur)), eax);
  pv('write-cr3', () => a.mov(cr3, eax));
  // The actions start here (the pv-resource-control snapshot is taken at this port write).
  a.mov(al, BEGIN_MARK);
  pv('port-out', () => a.out(0x80, al));
  REGS.forEach((r, i) => a.mov(REG[r], (p.regs[i] ?? 0) | 0));
  const st: EmitState = { results: 0, linked: [true, true] };
  for (const it of p.items) emitKItem(k, it, st);
  a.mov(al, BEGIN_MARK);
  pv('port-out', () => a.out(0x80, al));
  // Registers, then back to the process's directory, events/interrupts off again.
  REGS.forEach((r, i) => a.mov(dword(L(V.regs).plus(4 * i)), REG[r]));
  a.mov(eax, dword(L('cur_cr3')));
  pv('write-cr3', () => a.mov(cr3, eax));
  pv('irq-disable', () => a.cli());
  // Every playground entry through a read-pte site, its frame named by its harness index.
  for (const t of [0, 1] as const) {
    for (let j = 0; j < KPAGES; j++) {
      a.mov(edi, dword(L(V.pt).plus(4 * t)));
      a.add(edi, (KERNEL_VIRT + 4 * j) | 0);
      readPte(k, eax);
      a.call(L(V.norm));
      a.mov(dword(L('vk_ptdump').plus(4 * (t * KPAGES + j))), eax);
    }
  }
  // Checksum of the frames (through the direct map): sum = rol(sum, 5) ^ word.
  a.xor(edx, edx);
  for (let i = 0; i < KFRAMES; i++) {
    a.mov(esi, dword(L(V.frames).plus(4 * i)));
    a.add(esi, KERNEL_VIRT | 0);
    a.mov(ecx, PAGE / 4);
    const top = a.here();
    a.rol(edx, 5); a.xor(edx, dword(esi)); a.add(esi, 4);
    a.dec(ecx); a.jnz(top);
  }
  a.mov(dword(L('vk_sum')), edx);
  printWords(k, 'vk regs ', L(V.regs), REGS.length);
  if (st.results > 0) printWords(k, 'vk res ', L(V.res), st.results);
  printWords(k, 'vk ptA ', L('vk_ptdump'), KPAGES);
  printWords(k, 'vk ptB ', L('vk_ptdump').plus(4 * KPAGES), KPAGES);
  printWords(k, 'vk sum ', L('vk_sum'), 1);
  a.popa();
  a.xor(eax, eax);
  a.ret();
  // vk_norm(eax = entry) → eax: the frame replaced by 1 + its index among the harness's
  // frames, tables and directories (0xfffff if none): pfns need not be the same in every
  // mode (the pv kernel allocates a grant-table frame first), their roles are.
  a.bind(L(V.norm));
  {
    a.push(ecx); a.push(edx);
    a.mov(edx, eax); a.and(edx, ~0xfff);
    const found = a.label(), out = a.label();
    a.xor(ecx, ecx);
    const loop = a.here();
    a.cmp(edx, dword({ index: ecx, scale: 4, disp: L(V.frames) }));
    a.je(found);
    a.inc(ecx); a.cmp(ecx, KFRAMES + 4); a.jb(loop); // vk_frames, vk_pt, vk_pd are contiguous
    a.or(eax, 0xfffff000 | 0);
    a.jmp(out);
    a.bind(found);
    a.and(eax, 0xfff); a.inc(ecx); a.shl(ecx, 12); a.or(eax, ecx);
    a.bind(out);
    a.pop(edx); a.pop(ecx);
    a.ret();
  }
}

/** The kernel image (Multiboot ELF) whose init calls the program's system call, then prints `vk done` and exits 0. */
export function buildKernelGuest(p: KernelGuestProgram): Uint8Array {
  const sys: ExtraSyscall = { nr: SYS_VK, name: 'vkprog', emit: (k) => emitKernelProgram(k, p) };
  return toMultibootElf(buildKernel({
    init: 'vkinit', hz: 100, banner: 'virtlab verify (kernel level)', extraSyscalls: [sys],
    programs: [{ name: 'vkinit', build: (u) => { u.sys(SYS_VK); u.print('vk done\n'); u.exit(0); } }],
  }));
}

// ------------------------------------------------------------------ running

/** Memory of the kernel's machine (MiB), as user-equivalence's. */
export const KERNEL_GUEST_MIB = 16;

/** A kernel-level program's outcome: the console bytes and the exit. */
export interface KernelOutcome {
  readonly console: string;
  readonly status: number;
  /** The run's exit in one line. */
  readonly exit: string;
  /** init's exit code (the kernel writes code * 2 + 1 to port 0xF4), null if it did not exit. */
  readonly initExit: number | null;
}

function runSpec(image: Uint8Array, config: Config, maxInstructions: number): GuestRunSpec {
  return {
    image: { bytes: image, path: 'verify-kernel-guest.elf' },
    mode: (config.startsWith('hw') ? 'hw' : config) as never,
    modeOptions: config === 'hw-shadow' ? { paging: 'shadow' } : config === 'hw-nested' ? { paging: 'nested' } : undefined,
    profile: verifyProfile(), memoryMiB: KERNEL_GUEST_MIB, maxInstructions,
  };
}

/** Runs a built kernel guest under `config` (runGuest, the `virtlab exec` path). */
export function runKernelGuest(image: Uint8Array, config: Config, maxInstructions = 20_000_000): KernelOutcome {
  const r = runGuest(runSpec(image, config, maxInstructions));
  const e = r.outcome.exit;
  const exit = e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${r.message ?? ''}`;
  return { console: r.machine.console.text(), status: r.status, exit, initExit: e.reason === 'exit-device' ? (e.code - 1) / 2 : null };
}

/** The first difference between two outcomes (the differing console line, word by word), or null. */
export function kernelDifference(a: KernelOutcome, b: KernelOutcome): string | null {
  return userDifference(a, b);
}

/**
 * The native run printed its report and init exited 0, or the program's own access faulted
 * in the window (the kernel's panic names the address): so a harness that crashes the same
 * way everywhere cannot pass.
 */
function cleanRun(o: KernelOutcome): boolean {
  if (o.initExit === 0 && /\nvk sum 0x[0-9a-f]{8}\nvk done\n$/.test(o.console)) return true;
  const m = /kernel page fault at 0x([0-9a-f]{8}) /.exec(o.console);
  return m !== null && (parseInt(m[1]!, 16) >>> 22) === KWIN >>> 22;
}

/**
 * Runs well-formed program `p` natively and under each config; the first difference
 * (`native vs C: ...`), or null. With `requireClean`, a native run that does not print its
 * report and exit 0 is a failure too.
 */
export function kernelEquivalenceCheck(p: KernelGuestProgram, configs: readonly Config[], requireClean = true): string | null {
  const image = buildKernelGuest(p);
  const ref = runKernelGuest(image, 'native');
  if (requireClean && !cleanRun(ref)) return `native run did not finish cleanly: ${ref.exit} (status ${ref.status}), console ${JSON.stringify(ref.console.slice(-200))}`;
  for (const c of configs) {
    if (c === 'native') continue;
    const d = kernelDifference(ref, runKernelGuest(image, c));
    if (d !== null) return `native vs ${c}: ${d}`;
  }
  return null;
}

// ------------------------------------------------------------------ pv resource control

const ERRNOS = new Set<number>(Object.values(XEN_ERRNO).map((e) => -e));
/** The memory-management hypercalls the pv-op sites issue (their refusals must be counted). */
const MM_CALLS = new Set<number>([HYPERCALL.mmu_update, HYPERCALL.mmuext_op, HYPERCALL.update_va_mapping, HYPERCALL.multicall]);
const HC_NAME: Record<number, string> = Object.fromEntries(Object.entries(HYPERCALL).map(([k, v]) => [v, k]));

/** How a hostile program's run went: the first violated invariant (or null), and a log of how it ended and the refused hypercalls. */
export type PvKernelRun = PvRunResult;

/**
 * Runs `p` (hostile or not) under `pv` and checks the hypervisor's invariants: every refused
 * memory-management hypercall returned a Xen errno and was counted as `attack.*`; when the
 * actions end and again when the run has ended, pv-isolation's `checkDomain` (DirectPaging.audit
 * empty, no typed-table entry mapping a frame the domain does not own, no writable mapping of a
 * page table, the hypervisor slots intact, every byte the domain does not own unchanged since
 * the actions began); a hypervisor exception is a violation too.
 */
export function runKernelPv(p: KernelGuestProgram, image?: Uint8Array, maxInstructions = 5_000_000): PvKernelRun {
  const bytes = image ?? buildKernelGuest(p);
  const spec = runSpec(bytes, 'pv', maxInstructions);
  const prepared = prepareGuest(spec);
  const machine = prepared.machine, monitor = prepared.monitor as PvMonitor, mm = monitor.mm;
  const log: string[] = [];
  let violation: string | null = null;
  let domain: PvDomain | null = null;
  const check = (when: string): void => {
    if (domain === null || violation !== null) return;
    const v = checkDomain(domain);
    if (v !== null) violation = `${when}: ${v}`;
  };
  // The actions begin at the port-0x80 mark (the harness's setup done): snapshot the memory
  // the domain does not own; they end at the next mark: check.
  machine.io.registerWrite8(0x80, (_port, v) => {
    if ((v & 0xff) !== BEGIN_MARK) return;
    if (domain === null) {
      const prot: number[] = [];
      for (let m = 0; m < mm.frames; m++) if (mm.owner[m] === OWN_NONE) prot.push(m);
      const copy = new Uint8Array(prot.length * PAGE);
      prot.forEach((m, i) => copy.set(machine.mem.u8.subarray(m * PAGE, m * PAGE + PAGE), i * PAGE));
      domain = { machine, monitor, scratch: 0, nrPages: 0, protectedFrames: prot, protectedCopy: copy };
    } else check('after the actions');
  });
  // Every memory-management hypercall: a refusal is a Xen errno and counted.
  const onEvent = monitor.onEvent.bind(monitor);
  monitor.onEvent = (cpu: Cpu, vector: number, code: number, kind: EventKind): boolean => {
    if (vector !== HYPERCALL_VECTOR || !MM_CALLS.has(cpu.r32[EAX]!)) return onEvent(cpu, vector, code, kind);
    const nr = cpu.r32[EAX]!, list = cpu.r32[EBX]! >>> 0, count = cpu.r32[ECX]! >>> 0;
    const before = attacks(monitor);
    const handled = onEvent(cpu, vector, code, kind);
    const res = cpu.r32[EAX]! | 0;
    const results = [res];
    if (nr === HYPERCALL.multicall && res === 0) {
      for (let i = 0; i < Math.min(count, 64); i++) {
        const at = monitor.guestPhys((list + 32 * i + 4) >>> 0, false);
        if (at >= 0) results.push(machine.mem.read32(at) | 0);
      }
    }
    const refused = results.filter((r) => r < 0);
    if (refused.length > 0) {
      log.push(`${HC_NAME[nr] ?? nr} refused: ${refused.join(', ')} (${Object.entries(monitor.stats()).filter(([k]) => k.startsWith('attack.')).map(([k, v]) => `${k} ${v}`).join(', ')})`);
      for (const r of refused) if (!ERRNOS.has(r)) violation ??= `${HC_NAME[nr]} returned ${r}, not a Xen errno`;
      if (attacks(monitor) - before < refused.length) violation ??= `${HC_NAME[nr]}: ${refused.length} refusal(s), ${attacks(monitor) - before} counted as attack.*`;
    }
    return handled;
  };
  try {
    const outcome = machine.run({ maxInstructions });
    const r = finishGuestRun({ ...spec, maxInstructions }, prepared, outcome);
    const e = outcome.exit;
    const text = machine.console.text();
    const panic = /kernel panic: (.*)\n/.exec(text)?.[1];
    log.unshift(`${e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${r.message ?? ''}`}${panic !== undefined ? ` (kernel panic: ${panic})` : ''}${domain === null ? '; the actions never began' : ''}`);
    if (domain === null) violation ??= `the harness's setup did not finish under pv: ${log[0]}`;
  } catch (err) {
    violation ??= `the hypervisor threw: ${(err as Error).message.split('\n')[0]}`;
  }
  // Again when the run has ended (after init's exit, or after the panic or crash that ended
  // the actions early: a refusal panics the kernel).
  check('at the end of the run');
  return { violation, log };
}

/** pv-resource-control's check of one program: the violation, or null. */
export function pvKernelCheck(p: KernelGuestProgram): string | null {
  return runKernelPv(p).violation;
}

/**
 * Runs `p` (hostile or not) under a monitor with shadow or nested paging (`trap`, `full`,
 * `hw-shadow`, `hw-nested`) and checks invariants.ts's `mappingCheck` (every present shadow
 * entry maps guest RAM or open bus and grants no more than the guest's own tables, shadow
 * tables in monitor memory; the EPT maps RAM to itself and nothing beyond) when the actions
 * end and when the run has ended; a monitor exception is a violation too.
 */
export function runKernelMapped(p: KernelGuestProgram, config: Config, image?: Uint8Array, maxInstructions = 5_000_000): PvKernelRun {
  const spec = runSpec(image ?? buildKernelGuest(p), config, maxInstructions);
  const prepared = prepareGuest(spec);
  const { machine, monitor } = prepared;
  let marks = 0, violation: string | null = null;
  machine.io.registerWrite8(0x80, (_port, v) => {
    if ((v & 0xff) !== BEGIN_MARK || marks++ === 0) return;
    const m = mappingCheck(machine, monitor);
    if (m !== null) violation ??= `after the actions: ${m}`;
  });
  const log: string[] = [];
  try {
    const outcome = machine.run({ maxInstructions });
    const r = finishGuestRun({ ...spec, maxInstructions }, prepared, outcome);
    const e = outcome.exit;
    const panic = /kernel panic: (.*)\n/.exec(machine.console.text())?.[1];
    log.push(`${e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${r.message ?? ''}`}${panic !== undefined ? ` (kernel panic: ${panic})` : ''}`);
    const m = mappingCheck(machine, monitor);
    if (m !== null) violation ??= `at the end of the run: ${m}`;
  } catch (err) {
    violation ??= `the monitor threw: ${(err as Error).message.split('\n')[0]}`;
  }
  return { violation, log };
}

/** kernel-resource-control's check of one program under `configs`: the first violation (`C: ...`), or null. */
export function mappedKernelCheck(p: KernelGuestProgram, configs: readonly Config[]): string | null {
  const image = buildKernelGuest(p);
  for (const c of configs) {
    const v = c === 'pv' ? runKernelPv(p, image).violation : runKernelMapped(p, c, image).violation;
    if (v !== null) return `${c}: ${v}`;
  }
  return null;
}

// ------------------------------------------------------------------ generators

const reg = (): fc.Arbitrary<RegName> => fc.constantFrom(...REGS);
const off = (): fc.Arbitrary<number> => fc.integer({ min: 0, max: 0x3ff }).map((w) => w * 4);
/** A window page: mostly one of three, so that a mapping change and an access meet often. */
const page = (): fc.Arbitrary<number> => fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 2 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: KPAGES - 1 }) });
const tab = (): fc.Arbitrary<0 | 1> => fc.constantFrom(0 as const, 1 as const);
/**
 * Entry flags of a well-formed program: P, W, U, PWT, PCD, A, D, PAT and the available bits —
 * mostly present and writable. Not G: whether a global translation survives a directory
 * switch is implementation-specific (MOV to CR3 leaves global entries, SDM Vol. 3A 4.10.4.1,
 * but none need be cached: natively the TLB keeps it, `full`'s shadow flush does not), and a
 * Xen PV domain runs with CR4.PGE clear.
 */
const flags = (): fc.Arbitrary<number> => fc.tuple(
  fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 0xff }).map((f) => (f & 0xfc) | 3) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xff }).map((f) => (f & 0xfe) | 1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff }) }),
  fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
).map(([f, avl]) => f | (avl << 9));
const ownFrame = (): fc.Arbitrary<KFrame> => fc.integer({ min: 0, max: KFRAMES - 1 }).map((i): KFrame => ({ k: 'pg', i }));

/** Plain register instructions (no memory operand of the flat harness's layout, no port output). */
const KPLAIN = new Set(['alu', 'alui', 'movi', 'shift', 'unary', 'imul', 'pushpop']);
const plain = (): fc.Arbitrary<KItem> => plainInstruction().filter((i) => KPLAIN.has(i.op));

/** The actions of a well-formed kernel (its own frames only), with `frame` for the entries it writes. */
function actions(frame: fc.Arbitrary<KFrame>, entryFlags: fc.Arbitrary<number>): { weight: number; arbitrary: fc.Arbitrary<KItem> }[] {
  return [
    { weight: 5, arbitrary: fc.record({ op: fc.constant('kpte' as const), t: tab(), page: page(), frame, flags: entryFlags }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('krd' as const), d: reg(), page: page(), off: off() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('kwr' as const), s: reg(), page: page(), off: off() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('kcr3' as const), t: tab() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('krdpte' as const), t: tab(), page: page(), d: fc.constantFrom('eax' as const, 'ebx' as const) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('kinvlpg' as const), page: page() }) },
    { weight: 1, arbitrary: fc.constant<KItem>({ op: 'kflush' }) },
    { weight: 1, arbitrary: fc.constantFrom<KItem>({ op: 'kcli' }, { op: 'ksti' }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('kpushf' as const), d: reg() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('kpopf' as const), ifl: fc.boolean() }) },
    // Ports a pv domain may use (Xen's I/O capabilities here: the POST port, COM1, the 8259A).
    { weight: 1, arbitrary: fc.oneof(
      fc.record({ op: fc.constant('kout' as const), port: fc.constant(0x80), v: fc.integer({ min: 0, max: 255 }).map((v) => (v === BEGIN_MARK ? v - 1 : v)) }),
      fc.record({ op: fc.constant('kout' as const), port: fc.constant(0x3f8), v: fc.integer({ min: 0x20, max: 0x7e }) }),
    ) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('kin' as const), d: reg(), port: fc.constantFrom(0x21, 0xa1, 0x80) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('kunlink' as const, 'klink' as const), t: tab() }) },
    { weight: 3, arbitrary: plain() },
  ];
}

/** Well-formed kernel-level programs: the harness's own frames, as a correct (pv) kernel issues them. */
export const wellFormedProgram = (maxLength = 16): fc.Arbitrary<KernelGuestProgram> =>
  fc.record({ regs: registers(), items: fc.array(fc.oneof(...actions(ownFrame(), flags())), { minLength: 1, maxLength }), hostile: fc.constant(false) });

/** Frames of guest RAM / beyond: 16 MiB = 4096 frames; the hypervisor's memory follows. */
const RAM_FRAMES = (KERNEL_GUEST_MIB << 20) >>> 12;
/** Any frame a hostile kernel may name. */
const anyFrame = (): fc.Arbitrary<KFrame> => fc.oneof(
  { weight: 3, arbitrary: ownFrame() },
  { weight: 3, arbitrary: fc.record({ k: fc.constantFrom('pt' as const, 'pd' as const), t: tab() }) as fc.Arbitrary<KFrame> },
  { weight: 1, arbitrary: fc.constant<KFrame>({ k: 'kpd' }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 7 }).map((i): KFrame => ({ k: 'kpt', i })) },
  { weight: 2, arbitrary: fc.oneof(fc.integer({ min: 0, max: RAM_FRAMES + 64 }), fc.integer({ min: 0, max: 0xfffff })).map((n): KFrame => ({ k: 'pfn', n })) },
  // Machine frames: the reserved top of guest RAM, the hypervisor's (M2P, window, ...), anywhere.
  { weight: 4, arbitrary: fc.oneof(fc.integer({ min: RAM_FRAMES - 48, max: RAM_FRAMES + 1100 }), fc.integer({ min: 0, max: 0xfffff })).map((n): KFrame => ({ k: 'mfn', n })) },
);
/** Any entry bits (PS, G, PAT included), often writable. */
const anyFlags = (): fc.Arbitrary<number> => fc.oneof(fc.constantFrom(1, 3, 7, 0x83, 0x103, 0x63), fc.integer({ min: 0, max: 0xfff }));

/** Hostile programs: well-formed actions mixed with entries naming any frame, written anywhere, and switches to any directory. */
export const hostileProgram = (maxLength = 12): fc.Arbitrary<KernelGuestProgram> => {
  const hostile: { weight: number; arbitrary: fc.Arbitrary<KItem> }[] = [
    { weight: 6, arbitrary: fc.record({ op: fc.constant('kpte' as const), t: tab(), page: page(), frame: anyFrame(), flags: anyFlags() }) },
    { weight: 4, arbitrary: fc.record({
      op: fc.constant('kwpte' as const), table: anyFrame(),
      index: fc.oneof(fc.integer({ min: 0, max: 1023 }), fc.constantFrom(KWIN >>> 22, KERNEL_VIRT >>> 22, 1008, 1023), fc.integer({ min: 0, max: KPAGES - 1 })),
      frame: anyFrame(), flags: anyFlags(),
    }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('kxcr3' as const), frame: anyFrame() }) },
  ];
  return fc.record({ regs: registers(), items: fc.array(fc.oneof(...actions(ownFrame(), flags()), ...hostile), { minLength: 1, maxLength }), hostile: fc.constant(true) });
};

// ------------------------------------------------------------------ listing

/**
 * The items assembled alone (as the kernel emits them, pv-op sites in their native form, NOP
 * padding left out) and disassembled, each under a `; comment` naming the action. Addresses
 * are offsets from the program's start; `[vk_*]` operands are the harness's data.
 */
export function kernelListing(items: readonly KItem[]): string[] {
  if (items.length === 0) return ['(no program: the harness alone shows it)'];
  const a = new KernelAssembler({ bits: 32, origin: 0, pvopMinLength: 8 });
  a.section('text');
  const used = new Set<string>();
  const L = (name: string): Label => { used.add(name); return a.findLabel(name) ?? a.label(name); };
  const k = { a, L, pv: (kind: PvopKind, body: () => void) => a.pvop(kind, body) } as unknown as Kx;
  const st: EmitState = { results: 0, linked: [true, true] };
  const starts: number[] = [];
  const marks = items.map((_, i) => a.label(`item${i}`));
  items.forEach((it, i) => { a.bind(marks[i]!); emitKItem(k, it, st); });
  const end = a.label('items_end'); a.bind(end);
  a.section('data', { kind: 'data' });
  // The kernel's and the harness's labels the items use, as placeholders.
  const SLOT = 0x10000;
  const names = [...used].filter((n) => !L(n).bound);
  for (const name of names) { a.bind(L(name)); a.zero(SLOT); }
  const built = a.build();
  // Placeholder addresses back to names (`[vk_pt+4]`, `[xen_p2m+7FFCh]`).
  const dataBase = built.address(names[0] ?? 'items_end');
  const sym = (v: number): string | null => {
    const i = Math.floor((v - dataBase) / SLOT);
    if (names.length === 0 || v < dataBase || i >= names.length) return null;
    const o = v - dataBase - i * SLOT;
    return o === 0 ? names[i]! : `${names[i]}+${o.toString(16).toUpperCase()}h`;
  };
  for (const m of marks) starts.push(built.address(m.name));
  const bytes = built.sections.find((s) => s.name === 'text')?.bytes ?? new Uint8Array(0);
  const out: string[] = [];
  let i = 0;
  for (let o = 0; o < bytes.length;) {
    while (i < starts.length && starts[i]! <= o) out.push(`; ${kitemText(items[i++]!)}`);
    const d = disassemble(bytes.subarray(o, o + 15), o, 32);
    if (d.length === 0) { out.push(`${o.toString(16)}: (invalid)`); break; }
    if (d.text !== 'nop') out.push(`${o.toString(16)}: ${d.text.replace(/\[[^\]]*\]|^call \S+$/g, (op) => op.replace(/\b([0-9A-F]+)h?\b/g, (t, h: string) => sym(parseInt(h, 16)) ?? t))}`);
    o += d.length;
  }
  while (i < items.length) out.push(`; ${kitemText(items[i++]!)} (nothing emitted)`);
  return out;
}

// ------------------------------------------------------------------ properties

/** `check` with the mutant filter of `searchState` (a failure counts only if it passes without the mutant). */
function filtered<T>(check: (x: T) => string | null): (x: T) => string | null {
  const mut = searchState.mutant;
  return mut === null ? check : (x: T): string | null => {
    const m = check(x);
    return m !== null && withMutant(null, () => check(x)) === null ? m : null;
  };
}

/** `search`, then greedy one-item removal (minimizeProgram) of the counterexample. */
function searchKernel(arb: fc.Arbitrary<KernelGuestProgram>, check: (x: KernelGuestProgram) => string | null, runs: number, seed: number): Search<KernelGuestProgram> {
  const s = search(arb, check, runs, seed);
  if (s.counterexample === null || !searchState.shrink) return s;
  const c = filtered(check);
  const cx = minimizeProgram(s.counterexample, c);
  return { ...s, counterexample: cx, message: c(cx) ?? s.message };
}

function kernelReport(name: string, o: PropertyOptions, configs: readonly Config[], s: Search<KernelGuestProgram>, notes: string[]): PropertyReport {
  const cx = s.counterexample;
  return {
    property: name, ok: !s.failed, runs: s.runs, seed: o.seed ?? 1, seconds: s.seconds, configs, firstFailure: s.firstFailure,
    counterexample: cx === null ? null : { program: { kernel: cx }, listing: kernelListing(cx.items), message: s.message ?? '' },
    findings: [], notes,
  };
}

/** kernel-equivalence's default configurations (`trap` is not equivalent by design: trap-not-equivalent). */
export const KERNEL_EQ_CONFIGS: readonly Config[] = ['full', 'hw-nested', 'hw-shadow', 'pv'];

export const kernelEquivalence: PropertyInfo = {
  name: 'kernel-equivalence',
  description: "a generated well-formed kernel-level program (page-table writes of the kernel's own frames with random P/W/U/PWT/PCD/A/D bits, INVLPG, full flushes, directory switches, reads and writes through the window, read-pte, cli/sti, pushf/popf, port I/O, page-table release and reuse), emitted with pv-op sites as a system call of the virtlab kernel, prints the same registers, values read, page-table entries (frames by role) and frame checksum, and exits the same, natively and under full, hw-nested, hw-shadow and pv",
  configs: KERNEL_EQ_CONFIGS,
  defaultRuns: 20,
  run(o) {
    const configs = o.configs ?? KERNEL_EQ_CONFIGS;
    const s = searchKernel(wellFormedProgram(16), (p) => kernelEquivalenceCheck(p, configs), o.runs ?? 20, o.seed ?? 1);
    const r = kernelReport('kernel-equivalence', o, configs, s, ['trap is left out by default (its kernel-mode PUSHF shows the real IF: trap-not-equivalent); pushf is compared as IF only, per the save-flags contract']);
    // Findings (not for a mutant analysis): the sensitive unprivileged instructions, raw in the kernel.
    if (searchState.mutant !== null) return r;
    const probeConfigs = [...new Set([...configs, 'trap'])];
    return { ...r, findings: kernelSensitiveProbe(probeConfigs), notes: [...r.notes, `findings: every sensitive unprivileged instruction once, raw in the kernel (no pv-op site), ${probeConfigs.join(', ')} vs native`] };
  },
};

export const pvResourceControl: PropertyInfo = {
  name: 'pv-resource-control',
  description: "a generated hostile kernel-level program (entries naming any frame — the kernel's own tables, the playground tables writable, any pseudo-physical or machine frame — written into any table, directory switches to any frame), run as the virtlab kernel under pv with its pv-op sites patched into hypercalls, leaves DirectPaging.audit empty, no typed-table entry mapping a frame the domain does not own, no writable mapping of a page table, the hypervisor slots and the memory the domain does not own unchanged, and every refused memory-management hypercall a Xen errno counted as attack.*",
  configs: ['pv'],
  defaultRuns: 25,
  run(o) {
    const s = searchKernel(hostileProgram(12), pvKernelCheck, o.runs ?? 25, o.seed ?? 1);
    return kernelReport('pv-resource-control', o, ['pv'], s, ['a refused mmu_update/mmuext_op/multicall panics the virtlab kernel (pv: ... failed), so a program ends at its first refusal; the invariants are checked then']);
  },
};

/** kernel-resource-control's default configurations: the monitors with shadow or nested paging. */
export const KERNEL_RC_CONFIGS: readonly Config[] = ['trap', 'full', 'hw-shadow', 'hw-nested'];

export const kernelResourceControl: PropertyInfo = {
  name: 'kernel-resource-control',
  description: "the hostile kernel-level programs of pv-resource-control, run as the virtlab kernel under the monitors with shadow or nested paging: when the actions end and when the run has ended, every present shadow entry maps guest RAM or open bus and grants no more than the guest's own tables, shadow tables are in monitor memory, and the EPT maps RAM to itself and nothing beyond",
  configs: KERNEL_RC_CONFIGS,
  defaultRuns: 20,
  run(o) {
    const configs = o.configs ?? KERNEL_RC_CONFIGS;
    const s = searchKernel(hostileProgram(12), (p) => mappedKernelCheck(p, configs), o.runs ?? 20, o.seed ?? 1);
    return kernelReport('kernel-resource-control', o, configs, s, ['a hostile program may crash the kernel (a directory switch to a data frame, the kernel\'s own tables rewritten): the invariants are checked whatever the run\'s end']);
  },
};

/**
 * Replays a saved kernel-level case (`{ kernel: ... }`, `--replay`): a hostile one with the
 * resource-control checks under each of `configs` (default pv; `trap`, `full`, `hw-*`:
 * kernel-resource-control's), a well-formed one natively and under `configs` (default
 * KERNEL_EQ_CONFIGS) compared. The lines say what ran and what differed or was violated.
 */
export function replayKernelCase(x: KernelProgramCx, configs?: readonly Config[]): { lines: string[]; ok: boolean } {
  const p = x.kernel;
  const lines = [`kernel-level program (${p.hostile ? 'hostile: pv-resource-control' : 'well-formed: kernel-equivalence'}), ${p.items.length} item(s):`, ...kernelListing(p.items).map((l) => `  ${l}`)];
  if (p.hostile) {
    // Hostile: the resource-control checks under each configuration (default pv).
    const image = buildKernelGuest(p);
    let ok = true;
    for (const c of configs ?? ['pv']) {
      if (c === 'native') continue;
      const r = c === 'pv' ? runKernelPv(p, image) : runKernelMapped(p, c, image);
      lines.push(...r.log.map((l) => `${c}: ${l}`));
      lines.push(r.violation === null ? `${c}: the invariants hold` : `${c}: violation: ${r.violation}`);
      if (r.violation !== null) ok = false;
    }
    return { lines, ok };
  }
  const image = buildKernelGuest(p);
  const ref = runKernelGuest(image, 'native');
  lines.push(`native: ${ref.exit}, ${ref.console.split('\n').filter((l) => l.startsWith('vk ') || l.includes('panic')).length} report line(s)`);
  let ok = true;
  for (const c of configs ?? KERNEL_EQ_CONFIGS) {
    if (c === 'native') continue;
    const d = kernelDifference(ref, runKernelGuest(image, c));
    if (d !== null) ok = false;
    lines.push(`${c}: ${d === null ? 'same outcome as native' : `differs: ${d}`}`);
  }
  return { lines, ok };
}

// ------------------------------------------------------------------ kernel-mode sensitive instructions

/** Selectors of the kernel's GDT (layout.ts): kernel code/data, user code/data, the TSS; RPL variants. */
const KERNEL_SELECTORS = [0x08, 0x09, 0x10, 0x11, 0x1b, 0x23, 0x28];

/** One probe per sensitive unprivileged instruction (and selector), each recording what it read. */
export function sensitiveProbes(): KItem[] {
  const items: KItem[] = [{ op: 'sgdt', off: 0 }, { op: 'sidt', off: 0 }, { op: 'sldt', d: 'eax' }, { op: 'str', d: 'eax' }, { op: 'smsw', d: 'eax' }];
  for (const op of ['lar', 'lsl', 'verr', 'verw'] as const) for (const sel of KERNEL_SELECTORS) items.push({ op, d: 'eax', sel });
  for (const seg of ['cs', 'ss', 'ds'] as const) items.push({ op: 'movsreg', d: 'eax', seg }, { op: 'pushseg', d: 'eax', seg });
  return items;
}

/**
 * Kernel-mode sensitive instructions, raw in the kernel (no pv-op site), natively and under
 * each config: one program of every probe (`sensitiveProbes`), its recorded values compared
 * word by word and each difference named by its instruction. Findings, not a pass/fail: a
 * paravirtual kernel is modified not to depend on them (pv), a monitor virtualizes them or not.
 */
export function kernelSensitiveProbe(configs: readonly Config[]): string[] {
  const items = sensitiveProbes();
  const owner: KItem[] = [];
  for (const it of items) for (let i = 0; i < (it.op === 'sgdt' || it.op === 'sidt' ? 2 : 1); i++) owner.push(it);
  if (owner.length > KMAX_RESULTS) throw new RangeError('kernelSensitiveProbe: more results than the harness records');
  const image = buildKernelGuest({ regs: [0, 0, 0, 0, 0, 0, 0], items, hostile: false });
  const words = (o: KernelOutcome): string[] => /\nvk res (.*)\n/.exec(o.console)?.[1]?.split(' ') ?? [];
  const ref = runKernelGuest(image, 'native');
  const want = words(ref);
  if (want.length !== owner.length) return [`native: the probe did not finish (${ref.exit})`];
  const out: string[] = [];
  for (const c of configs) {
    if (c === 'native') continue;
    const o = runKernelGuest(image, c);
    const got = words(o);
    if (got.length !== owner.length) { out.push(`${c}: the probe did not finish (${o.exit})`); continue; }
    for (let i = 0; i < owner.length; i++) if (got[i] !== want[i]) out.push(`${c}: ${kitemText(owner[i]!)}: ${want[i]} natively, ${got[i]}`);
  }
  return out;
}
