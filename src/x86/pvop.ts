/**
 * Pv-op site kinds: the privileged (or virtualization-sensitive) operations a guest kernel
 * marks so that a mode can patch them at load time, as Linux's paravirt ops do. Each kind
 * says which native instruction(s) a site must contain; the assembler checks a site's body
 * against it by decoding the bytes it produced.
 */
import { Decoder, DecoderOptions, Formatter, FormatterSyntax } from 'iced-x86';

/** Every kind of pv-op site, with the native instruction pattern it must contain. */
export const PVOP_KINDS = {
  'write-cr3': /^mov cr3,/,
  'read-cr3': /^mov \w+,cr3$/,
  'write-cr0': /^mov cr0,/,
  'read-cr0': /^mov \w+,cr0$/,
  'read-cr2': /^mov \w+,cr2$/,
  'write-cr4': /^mov cr4,/,
  'read-cr4': /^mov \w+,cr4$/,
  /** A page-table entry store: a write to memory (mov, xchg, cmpxchg, and/or). */
  'set-pte': /^(lock )?(mov|xchg|cmpxchg|cmpxchg8b|and|or) (\w+ )?\[/,
  /**
   * A load of a page-table entry whose frame the kernel uses (a paravirtual kernel with direct
   * paging converts the machine frame back to pseudo-physical after it).
   */
  'read-pte': /^mov e\w\w,(dword )?\[/,
  'flush-tlb-entry': /^invlpg /,
  /** A full (non-global) TLB flush: reload CR3 (or write CR4). */
  'flush-tlb': /^mov (cr3|cr4),/,
  'irq-disable': /^cli$/,
  'irq-enable': /^sti$/,
  /** EFLAGS to a register or the stack (pushf, typically followed by pop). */
  'save-flags': /^pushfd?$/,
  /** EFLAGS from a register or the stack (push, then popf). */
  'restore-flags': /^popfd?$/,
  'port-in': /^(in|insb|insw|insd|rep ins[bwd]) /,
  'port-out': /^(out|outsb|outsw|outsd|rep outs[bwd]) /,
  'halt': /^hlt$/,
  /** `sti; hlt`: enable interrupts and wait, with no window between them. */
  'safe-halt': /^hlt$/,
  'load-idt': /^lidt /,
  'load-gdt': /^lgdt /,
  'load-ldt': /^lldt /,
  'load-tr': /^ltr /,
  /** Write of the ring-0 stack pointer (TSS.esp0/ss0): a store to memory. */
  'set-kernel-stack': /^mov (\w+ )?\[/,
  /** A segment register load whose selector RPL/privilege a paravirtual kernel adjusts. */
  'load-segment': /^(mov [cdefgs]s,|pop [defgs]s$)/,
  'iret': /^iretd?$/,
  'sysexit': /^sysexit$/,
  'read-tsc': /^rdtsc$/,
  'cpuid': /^cpuid$/,
  'wrmsr': /^wrmsr$/,
  'rdmsr': /^rdmsr$/,
  'clts': /^clts$/,
  'wbinvd': /^wbinvd$/,
} as const satisfies Record<string, RegExp>;

/** The kind of a pv-op site (see `PVOP_KINDS`). */
export type PvopKind = keyof typeof PVOP_KINDS;

/** A pv-op site: a privileged operation, as the kernel's native code performs it. */
export interface PvopSite {
  /** Virtual address of the site's first byte. */
  readonly addr: number;
  /** Length in bytes, NOP padding included: what a patcher may overwrite. */
  readonly len: number;
  readonly kind: PvopKind;
  /** The native bytes of the whole site (instruction(s) then NOPs); `len` bytes. */
  readonly native: Uint8Array;
}

/** True for a known pv-op site kind. */
export function isPvopKind(s: string): s is PvopKind {
  return Object.prototype.hasOwnProperty.call(PVOP_KINDS, s);
}

/** The instructions in `bytes`, as iced's NASM-style text (lower case, no spaces after commas). */
export function disassembleAll(bytes: Uint8Array, address: number, bits: 16 | 32): { text: string; length: number; address: number }[] {
  const decoder = new Decoder(bits, bytes, DecoderOptions.None);
  decoder.ip = BigInt(address >>> 0);
  const formatter = new Formatter(FormatterSyntax.Nasm);
  formatter.spaceAfterOperandSeparator = false;
  const out: { text: string; length: number; address: number }[] = [];
  try {
    while (decoder.canDecode) {
      const ins = decoder.decode();
      try {
        out.push({ address: ins.ip32, length: ins.length, text: ins.isInvalid ? '(bad)' : formatter.format(ins) });
      } finally {
        ins.free();
      }
    }
  } finally {
    formatter.free();
    decoder.free();
  }
  return out;
}

/**
 * Checks that `bytes` (a site's body) contains the native operation of `kind`; returns null
 * when it does, else what is wrong.
 */
export function checkPvopBody(kind: PvopKind, bytes: Uint8Array, address: number, bits: 16 | 32): string | null {
  const lines = disassembleAll(bytes, address, bits);
  const bad = lines.find((l) => l.text === '(bad)');
  if (bad) return `undecodable bytes at 0x${bad.address.toString(16)}`;
  if (lines.some((l) => PVOP_KINDS[kind].test(l.text))) return null;
  return `no ${kind} instruction in the site (it holds: ${lines.map((l) => l.text).join('; ')})`;
}
