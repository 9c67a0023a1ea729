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

// Regressions for what the verifier's far-transfer, INT n, segment-load and ring-transition
// items found (docs/verification.md, "Findings"): `full` let kernel code load selectors the
// bare CPU refuses at CPL 0 (DPL compression: the monitor's copies say DPL 1); `full` kept a
// stale virtual IF after IRET to user code and a call gate back; `trap`/`full` left the
// monitor TSS's ring-1 stack unset until the first reflected event, so a call gate from
// guest user code took #TS.
describe('full/trap: far transfers, segment loads and ring transitions equal native', () => {
  const grid = (items: GuestProgram['items']): GuestProgram => ({ regs: [1, 2, 3, 4, 5, 6, 7], paging: false, items });

  it('far CALL/JMP to an RPL-1 selector or a DPL-1 code segment, POP DS of RPL 1: #GP as natively', () => {
    for (const items of [
      [{ op: 'farcall' as const, sel: 0x09 }], [{ op: 'farcall' as const, sel: 0x58 }], [{ op: 'farcall' as const, sel: 0x58, ind: true }],
      [{ op: 'farjmp' as const, sel: 0x58 }], [{ op: 'farjmp' as const, sel: 0x09, ind: true }],
      [{ op: 'popseg' as const, seg: 'ds' as const, sel: 0x11 }], [{ op: 'popseg' as const, seg: 'gs' as const, sel: 0x09 }],
    ]) {
      const p = grid(items);
      const n = runProgram(p, 'native');
      expect(n.outcome.dump[9], JSON.stringify(items)).toBe(14); // #GP (vector 13, + 1)
      expect(equivalenceCheck(p, ['full']), JSON.stringify(items)).toBeNull();
    }
    // What the bare CPU accepts still works: the pushed CS is the virtual 0x08.
    const ok = grid([{ op: 'farcall', sel: 0x08 }, { op: 'farcall', sel: 0x48 }, { op: 'farjmp', sel: 0x68 }, { op: 'popseg', seg: 'ds', sel: 0x18 }]);
    expect(equivalenceCheck(ok, ['full'])).toBeNull();
    expect(runProgram(ok, 'full').outcome.dump[9]).toBe(0);
  });

  it('IRET to ring 3 (IF set) and a call gate back: the kernel sees IF set, as natively', () => {
    // The harness starts with IF clear; the IRET image sets it; PUSHF after the return shows it.
    const p = grid([{ op: 'ring3', fl: 0x202, body: [] }, { op: 'pushf', d: 'eax' }]);
    expect(runProgram(p, 'native').outcome.dump[0]! & 0x200).toBe(0x200);
    expect(equivalenceCheck(p, ['full'])).toBeNull();
  });

  it('a call gate from guest user code before any reflected event: no #TS (trap and full)', () => {
    const p = grid([{ op: 'ring3', body: [{ op: 'alui', f: 'add', d: 'eax', imm: 5 }] }]);
    for (const c of ['trap', 'full']) {
      const r = runProgram(p, c);
      expect(r.outcome.dump[9], c).toBe(0);
      expect(r.machine.mem.read32(LAYOUT.rec + 16), c).toBe(0x23); // the CS the gate pushed
      expect(equivalenceCheck(p, [c])).toBeNull();
    }
  });
});

// `full`'s LAR showed the accessed bit of the wrong descriptor when its source and destination
// are one register (it read the selector back after LAR had overwritten it). Found by the
// verifier's equivalence once ring-3 code set the accessed bit of the ring-3 data descriptor
// (0x18, not pre-accessed by the harness).
describe('full: LAR reg, reg shows the accessed bit the CPU set', () => {
  it('ring 3 loads DS = 0x1b, then lar eax, eax (eax = 0x18) in the kernel: equals native', () => {
    const p: GuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], paging: false, items: [{ op: 'ring3', body: [] }, { op: 'lar', d: 'eax', sel: 0x18 }] };
    const n = runProgram(p, 'native');
    expect(n.outcome.dump[0]! & 0x100).toBe(0x100); // accessed
    expect(equivalenceCheck(p, ['full'])).toBeNull();
  });
});
