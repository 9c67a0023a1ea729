// Regression for a `full` bug the verifier found (docs/verification.md, "Findings"): RET far
// to the guest kernel (CS RPL 0, refused from the real ring 1 and emulated) left the popped
// CS slot with RPL 1 in the guest's stack memory; natively the frame stays as the guest wrote
// it. IRET to the guest kernel had the same emulation (CS slot RPL 1, EFLAGS slot with the
// real IF/IOPL) and is checked too.
import { describe, expect, it } from 'vitest';
import { equivalenceCheck } from '../../src/verify/properties.js';
import { exitLine, prepare, runProgram } from '../../src/verify/run.js';
import { LAYOUT, type GuestProgram } from '../../src/verify/guest-program.js';
import { Assembler, al, ax, dword, ds, es, esp, fword, ss } from '../../src/x86/index.js';

describe('full: RET far / IRET to the guest kernel leave the frame as the guest wrote it', () => {
  for (const paging of [false, true]) {
    it(`the verifier's farret guest equals native (paging ${paging ? 'on' : 'off'})`, () => {
      const p: GuestProgram = { regs: [1, 2, 3, 4, 5, 6, 7], paging, items: [{ op: 'farret' }] };
      expect(equivalenceCheck(p, ['full'])).toBeNull();
      // The popped selector slot, just below the stack top: 0x08 as pushed.
      const r = runProgram(p, 'full');
      expect(r.machine.mem.read32(LAYOUT.stackTop - 4)).toBe(0x08);
    });
  }

  it('RET far, RET far imm16 and IRETD frames equal native', () => {
    const CODE = 0x100000, GDT = 0x10000, DESCR = 0x13800, TOP = 0x201800;
    const a = new Assembler({ bits: 32, origin: CODE });
    a.cli();
    a.mov(dword(GDT), 0); a.mov(dword(GDT + 4), 0);
    a.mov(dword(GDT + 8), 0x0000ffff); a.mov(dword(GDT + 12), 0x00cf9b00); // 0x08 code DPL 0
    a.mov(dword(GDT + 16), 0x0000ffff); a.mov(dword(GDT + 20), 0x00cf9300); // 0x10 data DPL 0
    a.mov(dword(DESCR), 23); a.mov(dword(DESCR + 2), GDT);
    a.lgdt(fword(DESCR));
    a.mov(ax, 0x10); a.mov(ds, ax); a.mov(es, ax); a.mov(ss, ax);
    a.mov(esp, TOP);
    // RET far to 0x08.
    const n1 = a.label(); a.push(0x08); a.push(n1); a.retf(); a.bind(n1);
    // RET far imm16 (releases a parameter) from a lower frame.
    a.mov(esp, TOP - 0x40);
    const n2 = a.label(); a.push(0x5a5a); a.push(0x08); a.push(n2); a.retf(4); a.bind(n2);
    // IRETD to 0x08 with the EFLAGS image IF = 0 (after CLI), IOPL 0.
    a.mov(esp, TOP - 0x80);
    const n3 = a.label(); a.pushf(); a.push(0x08); a.push(n3); a.iret(); a.bind(n3);
    a.mov(al, 0); a.out(0xf4, al); a.hlt();
    const bytes = a.build().sections.find((s) => s.name === 'text')!.bytes;
    const out = ['native', 'full'].map((c) => {
      const { machine } = prepare(c, bytes);
      machine.run({ maxInstructions: 10_000 });
      const words: string[] = [];
      for (let x = TOP - 0x100; x < TOP; x += 4) words.push(`${(x).toString(16)}:${(machine.mem.read32(x) >>> 0).toString(16)}`);
      return { exit: exitLine(machine), words };
    });
    expect(out[0]!.exit).toBe('exit 1');
    expect(out[1]!.exit).toBe(out[0]!.exit);
    expect(out[1]!.words).toEqual(out[0]!.words);
    // The frames natively: CS slots 0x08, IRET's EFLAGS image without IF.
    const at = (x: number) => out[0]!.words.find((w) => w.startsWith(`${x.toString(16)}:`))!;
    expect(at(TOP - 4)).toBe(`${(TOP - 4).toString(16)}:8`);
    expect(at(TOP - 0x40 - 8)).toBe(`${(TOP - 0x48).toString(16)}:8`);
    expect(parseInt(at(TOP - 0x80 - 4).split(':')[1]!, 16) & 0x200).toBe(0);
  });
});
