/**
 * Runs generated programs (gen.ts) on virtlab and turns the port-0xE9 stream of virtlab or
 * QEMU into comparable lines, with the flags the SDM leaves undefined masked.
 */
import { createHash } from 'node:crypto';
import { Machine } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import type { Program } from './gen.js';

const PROFILE = loadProfile().profile;
const REGS = ['edi', 'esi', 'ebp', 'esp', 'ebx', 'edx', 'ecx', 'eax'];
const h8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

export function elfOf(p: Program): Uint8Array { return toMultibootElf(p.image); }

/** The 0xE9 bytes and exit status of `p` on virtlab (the JIT compiling every block at once when `jit`). */
export function runVirtlab(p: Program, jit: boolean, maxInstructions = 5_000_000): { bytes: Uint8Array; exit: string } {
  // 8 MiB hold everything a program touches (QEMU ran with 128: the programs do not read the memory map).
  const machine = new Machine({ memoryMiB: 8, profile: PROFILE });
  const out: number[] = [];
  machine.io.registerWrite8(0xe9, (_p, v) => { out.push(v & 0xff); });
  const cpu = machine.cpu;
  cpu.jitEnabled = jit;
  if (jit) cpu.jit!.threshold = 0;
  machine.loadMultiboot(elfOf(p), p.image.name + '.elf');
  const r = machine.run({ maxInstructions });
  const e = r.exit;
  const exit = e.reason === 'exit-device' ? `exit ${e.code}` : e.reason === 'unsupported' ? `unsupported ${e.disassembly} ${e.detail}` : `${e.reason} ${'detail' in e ? String(e.detail) : ''}`;
  return { bytes: Uint8Array.from(out), exit };
}

/**
 * The comparable lines of a run: one per checkpoint (registers, masked EFLAGS), a fault
 * line (vector, error code, CR2, EIP, registers, masked EFLAGS) and the window hash.
 */
export function lines(p: Program, bytes: Uint8Array, fromQemu = false): string[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const d = (at: number): number => dv.getUint32(at, true);
  const res: string[] = [];
  let i = 0;
  let ck = 0;
  while (i < bytes.length) {
    const m = bytes[i]!;
    if (m === 0xcc && i + 37 <= bytes.length) {
      const mask = p.checkpointMasks[ck] ?? 0xffffffff;
      const regs = REGS.map((r, k) => `${r}=${h8(d(i + 1 + 4 * k))}`).join(' ');
      res.push(`ck${ck} after#${p.checkpointAfter[ck] ?? '?'} ${regs} efl=${h8(d(i + 33) & mask)}`);
      ck++;
      i += 37;
    } else if (m === 0xff && i + 57 <= bytes.length) {
      const at = i + 1;
      const cr2 = d(at);
      const regs = REGS.map((r, k) => (r === 'esp' ? '' : `${r}=${h8(d(at + 4 + 4 * k))}`)).filter(Boolean).join(' ');
      const vec = d(at + 36), eip = d(at + 44), efl = d(at + 52);
      let err = d(at + 40);
      // A fault inside a multi-instruction case (the POP of a PUSH/POP pair, ENTER's body)
      // takes the entry of the case it belongs to: the nearest start at or below EIP.
      let where = p.instrAt.get(eip);
      if (where === undefined) {
        let best = -1;
        for (const k of p.instrAt.keys()) if (k <= eip && k > best && eip - k < 16) best = k;
        if (best >= 0) where = p.instrAt.get(best);
      }
      // QEMU reports a read-modify-write of a not-present page as a read (W/R=0); the CPU
      // checks such an access as a write from its first (read) access, as it does for a
      // read-only page, where QEMU too reports W/R=1 (docs/fuzzing.md).
      if (fromQemu && vec === 14 && where?.[2] === true && (err & 1) === 0) err |= 2;
      // RF (bit 16) is masked: the SDM (17.3.1.1) pushes RF=1 for faults, QEMU pushes 0.
      const mask = (where ? where[1] | ~0x8d5 : 0xffffffff) & ~0x10000;
      // CR2 matters only for #PF.
      res.push(`fault vec=${vec} err=${h8(err)} cr2=${vec === 14 ? h8(cr2) : '-'} eip=${h8(eip)} (#${where ? where[0] : '?'}) ${regs} efl=${h8(efl & mask)}`);
      i += 57;
    } else if (m === 0xfe && i + 5 <= bytes.length) {
      res.push(`hash=${h8(d(i + 1))}`);
      i += 5;
    } else {
      res.push(`junk byte ${m.toString(16)} at ${i}`);
      i++;
    }
  }
  return res;
}

/** Short digest of one line (the corpus stores these, not the lines). */
export function digest(line: string): string { return createHash('sha1').update(line).digest('hex').slice(0, 8); }
