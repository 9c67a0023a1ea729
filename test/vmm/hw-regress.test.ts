// Regressions for `hw` bugs the verifier found (docs/verification.md, "Findings"):
// - `--paging shadow`: SMSW showed the real CR0 (PG/WP forced on by the monitor) instead of
//   reading host-owned bits from the CR0 read shadow; MOV from CR0/CR4 are checked under the
//   masks too, after writes that exit (NE, PG/WP) and writes that do not (TS).
// - `--paging shadow`: the CPU's write of a descriptor's accessed bit during exception
//   delivery hit a read-only shadow entry (the guest's GDT page not yet dirty) and the guest
//   triple-faulted, where the bare CPU takes its #PF.
// Each guest runs natively and under the monitor; the outcomes must be equal.
import { describe, expect, it } from 'vitest';
import { equivalenceCheck } from '../../src/verify/properties.js';
import { exitLine, prepare } from '../../src/verify/run.js';
import {
  Assembler, al, ax, cr0, cr2, cr3, cr4, dword, eax, ebx, ecx, edx, esi, edi, ebp, esp, ds, es, ss, word, fword, type Reg,
} from '../../src/x86/index.js';

const CODE = 0x100000, GDT = 0x10000, TSS = 0x11000, IDT = 0x13000, DESCR = 0x13800;
const DUMP = 0x202000, STACK_TOP = 0x201800, USER_STACK_TOP = 0x204800;
const PD = 0x300000, PT = 0x302000;

/** Runs `bytes` natively and under `config`; returns exit lines and the words of `regions`. */
function both(bytes: Uint8Array, config: string, regions: readonly (readonly [number, number])[]) {
  const out = ['native', config].map((c) => {
    const { machine } = prepare(c, bytes);
    machine.run({ maxInstructions: 100_000 });
    const words: number[] = [];
    for (const [lo, hi] of regions) for (let a = lo; a < hi; a += 4) words.push(machine.mem.read32(a) >>> 0);
    return { exit: exitLine(machine), words };
  });
  return { native: out[0]!, vm: out[1]! };
}

/** Writes `regs` into the dump page, then `out 0xF4`. */
function dumpAndExit(a: Assembler, regs: readonly Reg[]): void {
  regs.forEach((r, i) => a.mov(dword(DUMP + 4 * i), r));
  a.mov(al, 0);
  a.out(0xf4, al);
  a.hlt();
}

describe('hw --paging shadow: CR0/CR4 reads through the read shadows', () => {
  it('SMSW of the generated harness (paging off) equals native', () => {
    // The verifier's counterexample: natively 0x11 (PE | ET); the monitor forced PG/WP on.
    const p = { regs: [0, 0, 0, 0, 0, 0, 0], paging: false, items: [{ op: 'smsw' as const, d: 'eax' as const }] };
    expect(equivalenceCheck(p, ['hw-shadow', 'hw-nested'])).toBeNull();
  });

  it('SMSW r32/m16 and MOV from CR0/CR4 after exiting and non-exiting writes equal native', () => {
    const a = new Assembler({ bits: 32, origin: CODE });
    a.smsw(eax); // the boot CR0
    a.mov(ecx, cr0);
    a.or(ecx, 0x20); a.mov(cr0, ecx); // NE: host-owned, exits
    a.smsw(edx);
    a.or(ecx, 8); a.mov(cr0, ecx); // TS: guest-owned, no exit
    a.smsw(ebx);
    a.emit('smsw', word(DUMP + 0x40)); // memory form: 16 bits
    a.mov(esi, cr0);
    a.mov(edi, cr4);
    a.or(edi, 0x10); a.mov(cr4, edi); // PSE: host-owned without EPT
    a.mov(ebp, cr4);
    dumpAndExit(a, [eax, ecx, edx, ebx, esi, edi, ebp]);
    const bytes = a.build().sections.find((s) => s.name === 'text')!.bytes;
    for (const config of ['hw-shadow', 'hw-nested']) {
      const r = both(bytes, config, [[DUMP, DUMP + 0x44]]);
      expect(r.vm.exit, config).toBe(r.native.exit);
      expect(r.vm.words.map((w) => w.toString(16)), config).toEqual(r.native.words.map((w) => w.toString(16)));
    }
    // The guest never set PG: natively no dump word shows it.
    const n = both(bytes, 'hw-shadow', [[DUMP, DUMP + 0x14]]).native.words;
    for (const w of n.slice(0, 5)) expect(w & 0x80000000).toBe(0);
  });
});

/**
 * A guest whose GDT's ring-0 code descriptor (for `user`: the TSS's SS0 descriptor instead) is
 * not yet accessed: CS is never reloaded, so the first exception delivery writes the accessed
 * bit. Paging is turned on with identity tables whose PTEs have A/D clear, the GDT page is
 * not written afterwards, and the guest (in ring 0, or in ring 3 after an IRET) reads an
 * unmapped address. The #PF handler records error code and CR2 and exits.
 */
function deliveryGuest(user: boolean): Uint8Array {
  const a = new Assembler({ bits: 32, origin: CODE });
  const handler = a.label('pf');
  a.cli();
  const gdt: [number, number][] = [
    [0, 0],
    // 0x08 code DPL 0: not accessed; from ring 3, accessed, so that only SS0's descriptor
    // (loaded from the TSS by the delivery) is written.
    [0x0000ffff, user ? 0x00cf9b00 : 0x00cf9a00],
    [0x0000ffff, 0x00cf9200], // 0x10 data DPL 0 (accessed by the loads below)
    // Ring 3's descriptors are pre-accessed: the IRET to ring 3 must not write the GDT page.
    [0x0000ffff, 0x00cff300], // 0x18 data DPL 3 (accessed)
    [0x0000ffff, 0x00cffb00], // 0x20 code DPL 3 (accessed)
    [(TSS << 16) | 0x67, ((TSS >>> 16) & 0xff) | 0x8900], // 0x28 TSS
    [0x0000ffff, 0x00cf9200], // 0x30 data DPL 0: SS0, not accessed until the delivery
  ];
  gdt.forEach(([lo, hi], i) => { a.mov(dword(GDT + 8 * i), lo | 0); a.mov(dword(GDT + 8 * i + 4), hi | 0); });
  a.mov(dword(TSS + 4), STACK_TOP); a.mov(dword(TSS + 8), 0x30);
  // The #PF gate: an interrupt gate to `handler` through selector 0x08.
  a.mov(eax, handler);
  a.mov(word(IDT + 8 * 14), ax); a.mov(word(IDT + 8 * 14 + 2), 0x08); a.mov(word(IDT + 8 * 14 + 4), 0x8e00 | 0);
  a.shr(eax, 16); a.mov(word(IDT + 8 * 14 + 6), ax);
  a.mov(word(DESCR), gdt.length * 8 - 1); a.mov(dword(DESCR + 2), GDT);
  a.mov(word(DESCR + 8), 32 * 8 - 1); a.mov(dword(DESCR + 10), IDT);
  a.lgdt(fword(DESCR)); a.lidt(fword(DESCR + 8));
  a.mov(ax, 0x10); a.mov(ds, ax); a.mov(es, ax); a.mov(ss, ax);
  a.mov(esp, STACK_TOP);
  a.mov(ax, 0x28); a.ltr(ax);
  // Identity for 0–4 MiB, P | RW | US, A and D clear.
  a.mov(edi, PT); a.mov(eax, 7); a.mov(ecx, 1024);
  const fill = a.here(); a.stosd(); a.add(eax, 0x1000); a.emit('loop', fill);
  a.mov(dword(PD), PT | 7);
  a.mov(eax, PD); a.mov(cr3, eax);
  a.mov(eax, cr0); a.or(eax, 0x80010000 | 0); a.mov(cr0, eax);
  const fault = a.label('fault');
  if (user) {
    // IRET to ring 3 (user code and stack selectors with RPL 3).
    a.push(0x1b); a.push(USER_STACK_TOP); a.push(0x002); a.push(0x23); a.push(fault); a.iret();
  }
  a.bind(fault);
  if (user) { a.mov(ax, 0x1b); a.mov(ds, ax); } // IRET to ring 3 nulled DS (DPL 0)
  a.mov(eax, dword(0x800000)); // not mapped: #PF
  a.mov(dword(DUMP), 0xbad);
  dumpAndExit(a, []);
  a.bind(handler);
  a.pop(dword(DUMP + 4));
  a.mov(eax, cr2); a.mov(dword(DUMP + 8), eax);
  a.mov(dword(DUMP), 0xaa);
  dumpAndExit(a, []);
  return a.build().sections.find((s) => s.name === 'text')!.bytes;
}

describe('hw --paging shadow: descriptor accessed-bit writes during exception delivery', () => {
  for (const user of [false, true]) {
    it(`a #PF from ring ${user ? 3 : 0} is delivered as natively (no triple fault)`, () => {
      const r = both(deliveryGuest(user), 'hw-shadow', [[DUMP, DUMP + 12], [GDT, GDT + 56], [PT, PT + 4 * 1024], [PD, PD + 4]]);
      expect(r.native.exit).toBe('exit 1'); // out 0xF4 with 0: exit status 1 (the harness's too)
      // The handler ran: marker, error code (not present, read; user bit from ring 3), CR2.
      expect(r.native.words.slice(0, 3)).toEqual([0xaa, user ? 4 : 0, 0x800000]);
      expect(r.vm.exit).toBe(r.native.exit);
      // Same dump, same accessed bits in the GDT, same A/D bits in the guest's page tables.
      expect(r.vm.words).toEqual(r.native.words);
    });
  }
});

describe('hw --paging nested: the EPT applies while the guest has paging off', () => {
  // Found by resource-control's DMA work: with the guest's paging off the CPU returned the
  // linear address as physical without the EPT, so a plain store beyond guest RAM wrote the
  // monitor's EPT root. Natively that memory does not exist (open bus).
  it('loads and stores beyond guest RAM read all ones and change nothing, as on the bare machine', () => {
    const a = new Assembler({ bits: 32, origin: CODE });
    a.mov(eax, dword(0x800000));
    a.mov(dword(0x800000), 0x12345678);
    a.mov(ebx, dword(0x800000));
    a.mov(ecx, dword(0x7ffffc)); // the last word of guest RAM: plain memory
    a.mov(dword(0x7ffffc), 0x5a5a5a5a);
    a.mov(edx, dword(0x7ffffc));
    dumpAndExit(a, [eax, ebx, ecx, edx]);
    const bytes = a.build().sections.find((s) => s.name === 'text')!.bytes;
    const { machine } = prepare('hw-nested', bytes);
    const monitorWords = Array.from({ length: 1024 }, (_, i) => machine.mem.read32(0x800000 + 4 * i));
    machine.run({ maxInstructions: 100_000 });
    expect(exitLine(machine)).toBe('exit 1') // isa-debug-exit: (0 << 1) | 1;
    expect(Array.from({ length: 4 }, (_, i) => machine.mem.read32(DUMP + 4 * i) >>> 0)).toEqual([0xffffffff, 0xffffffff, 0, 0x5a5a5a5a]);
    expect(Array.from({ length: 1024 }, (_, i) => machine.mem.read32(0x800000 + 4 * i))).toEqual(monitorWords);
    const r = both(bytes, 'hw-nested', [[DUMP, DUMP + 16]]);
    expect(r.vm).toEqual(r.native);
  });
});
