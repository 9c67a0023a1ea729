/**
 * The `pv` mode's load-time patching: finding the kernel's PV note (its pv-op site table and
 * the addresses of its PV entry and stubs, src/guest/kernel/kernel.ts `withPvNote`) in the
 * loaded image, and the replacement bytes of every site kind (docs/pv.md, "Site patching").
 */
import { ImageError } from '../../guest/elf.js';
import { disassembleAll, isPvopKind, type PvopKind } from '../../x86/pvop.js';
import { HYPERCALL, HYPERCALL_VECTOR, NOTE_MAGIC, SCHEDOP, VCPU } from './abi.js';

/** A site as the note lists it. */
export interface NoteSite { readonly addr: number; readonly len: number; readonly kind: PvopKind }

/** The kernel's PV note. */
export interface PvNote {
  readonly sites: readonly NoteSite[];
  readonly symbols: Readonly<Record<string, number>>;
  /** Physical address just past the note. */
  readonly endPhys: number;
}

const MAGIC = new TextEncoder().encode(NOTE_MAGIC);

/**
 * Scans guest RAM page by page (from 1 MiB, up to 64 MiB) for the note's magic string.
 * Returns null when the image has none (not a paravirtualized kernel). Throws ImageError
 * for a note that is there but malformed.
 */
export function findPvNote(ram: Uint8Array, guestSize: number): PvNote | null {
  const limit = Math.min(guestSize, 64 << 20);
  for (let at = 0x100000; at + 4096 <= limit; at += 4096) {
    let ok = true;
    for (let i = 0; i < MAGIC.length; i++) if (ram[at + i] !== MAGIC[i]) { ok = false; break; }
    if (!ok) continue;
    const len = ram[at + 16]! | (ram[at + 17]! << 8) | (ram[at + 18]! << 16) | (ram[at + 19]! << 24);
    const where = `PV note at physical 0x${at.toString(16)}`;
    if (len <= 0 || at + 20 + len > guestSize) throw new ImageError('image', `${where}: length ${len} runs past RAM`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(ram.subarray(at + 20, at + 20 + len)));
    } catch (e) {
      throw new ImageError('image', `${where}: not valid JSON (${(e as Error).message})`);
    }
    const o = parsed as { version?: unknown; sites?: unknown; symbols?: unknown };
    if (o.version !== 1 || !Array.isArray(o.sites) || typeof o.symbols !== 'object' || o.symbols === null) {
      throw new ImageError('image', `${where}: expected {version: 1, sites: [...], symbols: {...}}`);
    }
    const sites: NoteSite[] = [];
    o.sites.forEach((s: unknown, i: number) => {
      if (!Array.isArray(s) || s.length !== 3 || typeof s[0] !== 'number' || typeof s[1] !== 'number' || typeof s[2] !== 'string' || !isPvopKind(s[2])) {
        throw new ImageError('image', `${where}: sites[${i}] is not [addr, len, kind]`);
      }
      sites.push({ addr: s[0] >>> 0, len: s[1], kind: s[2] });
    });
    return { sites, symbols: o.symbols as Record<string, number>, endPhys: at + 20 + len };
  }
  return null;
}

/** What the patcher needs to know about the kernel. */
export interface PatchContext {
  /** Address of a note symbol (throws for a missing one). */
  sym(name: string): number;
  /** Address of the iret site that follows `addr` (where a patched sysexit jumps). */
  iretAfter(addr: number): number;
}

const rel32 = (from: number, to: number): number[] => {
  const d = (to - from) | 0;
  return [d & 0xff, (d >>> 8) & 0xff, (d >>> 16) & 0xff, (d >>> 24) & 0xff];
};
const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const call = (at: number, to: number): number[] => [0xe8, ...rel32(at + 5, to)];
const jmp = (at: number, to: number): number[] => [0xe9, ...rel32(at + 5, to)];
const UD2 = [0x0f, 0x0b];
/** push 29; pop eax; push SCHEDOP_block; pop ebx; int 0x82 — exactly 8 bytes. */
const BLOCK = [0x6a, HYPERCALL.sched_op, 0x58, 0x6a, SCHEDOP.block, 0x5b, 0xcd, HYPERCALL_VECTOR];

/**
 * The replacement of one site (at most `site.len` bytes; the caller pads with NOPs), given
 * its native bytes. Throws ImageError for a site whose native form the patcher does not know.
 */
export function patchSite(site: NoteSite, native: Uint8Array, ctx: PatchContext): number[] {
  const at = site.addr;
  const ins = disassembleAll(native, at, 32).filter((l) => l.text !== 'nop');
  const first = ins[0]?.text ?? '';
  const bad = (): never => {
    throw new ImageError('image', `pv: cannot patch the ${site.kind} site at 0x${at.toString(16)} (${ins.map((l) => l.text).join('; ')}): not a form the pv patcher knows`);
  };
  const shared = ctx.sym('xen_shared_page');
  switch (site.kind) {
    case 'set-pte':
      if (first !== 'mov [edi],eax') bad();
      return call(at, ctx.sym('xen_set_pte'));
    case 'read-pte': {
      const m = /^mov (eax|ebx),/.exec(first);
      if (!m || ins.length !== 1) bad();
      const len = ins[0]!.length;
      return [...native.subarray(0, len), ...call(at + len, ctx.sym(`xen_m2p_${m![1]}`))];
    }
    case 'write-cr3':
      if (first !== 'mov cr3,eax') bad();
      return call(at, ctx.sym('xen_write_cr3'));
    case 'flush-tlb':
      return call(at, ctx.sym('xen_flush_tlb'));
    case 'flush-tlb-entry':
      // invlpg [eax] → MMUEXT_INVLPG_LOCAL; another operand → a full flush (a superset).
      return call(at, ctx.sym(first === 'invlpg [eax]' ? 'xen_invlpg' : 'xen_flush_tlb'));
    case 'read-cr2':
      if (first !== 'mov eax,cr2') bad();
      return [0x8b, 0x05, ...le32(shared + VCPU.CR2)]; // mov eax, [vcpu_info.arch.cr2]
    case 'irq-disable':
      return [0xc6, 0x05, ...le32(shared + VCPU.UPCALL_MASK), 1];
    case 'irq-enable':
      return [0xc6, 0x05, ...le32(shared + VCPU.UPCALL_MASK), 0];
    case 'save-flags':
      if (!/^pushfd?$/.test(first)) bad();
      return call(at, ctx.sym('xen_pushf'));
    case 'restore-flags':
      if (!/^popfd?$/.test(first)) bad();
      return call(at, ctx.sym('xen_popf'));
    case 'halt': case 'safe-halt':
      return BLOCK;
    case 'iret':
      // Xen-Linux's restore_all: a native IRET when no event is pending, else the hypercall.
      return jmp(at, ctx.sym('xen_iret'));
    case 'sysexit':
      // The SYSENTER frame is a normal trap frame: drop es, ds, vector, error and iret.
      return [0x83, 0xc4, 0x10, ...jmp(at + 3, ctx.iretAfter(at))];
    case 'load-idt':
      return call(at, ctx.sym('xen_load_idt'));
    case 'set-kernel-stack':
      if (!/^mov \[[0-9a-fx]+h?\],ecx$/i.test(first)) bad();
      return call(at, ctx.sym('xen_set_kstack'));
    case 'load-segment': {
      // The kernel's selectors with RPL 1 (Xen's kernel runs in ring 1): or al, 1; then the load.
      if (!/^mov [defgs]s,e?ax$/.test(first)) bad();
      return [0x0c, 0x01, ...native.subarray(0, ins[0]!.length)];
    }
    // Port I/O stays native: in ring 1 it traps, and the hypervisor performs it for the ports
    // the domain is permitted (Xen's emulate_privileged_op with the domain's I/O-port caps).
    case 'port-in': case 'port-out':
      return [...native.subarray(0, site.len)];
    // Boot-only operations of the native path (the PV boot path does not run them).
    case 'write-cr0': case 'write-cr4': case 'read-cr0': case 'read-cr4': case 'rdmsr': case 'wbinvd': case 'clts':
      return UD2;
    // The hypervisor owns the GDT, TSS and SYSENTER MSRs (the kernel registers a SYSENTER callback).
    case 'load-gdt': case 'load-tr': case 'load-ldt': case 'wrmsr':
      return [];
    // Unprivileged in ring 1 (CR4.TSD = 0; CPUID does not fault): native.
    case 'read-tsc': case 'cpuid':
      return [...native.subarray(0, site.len)];
  }
  return bad();
}
