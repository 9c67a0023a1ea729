import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CS, EAX, EBX, ECX, ESP, SS } from '../../src/machine/cpu/cpu.js';
import { unitCostTable, type CostTable } from '../../src/machine/cpu/cost-table.js';
import { CF, OF, PF, SF, ZF } from '../../src/machine/cpu/flags.js';
import { CODE, flat, real, vectorTaken } from './fixture.js';

/** The SDM's condition table, written out independently of conditions.ts. */
function reference(cc: number, f: number): boolean {
  const cf = !!(f & CF), zf = !!(f & ZF), sf = !!(f & SF), of = !!(f & OF), pf = !!(f & PF);
  const base = [of, cf, zf, cf || zf, sf, pf, sf !== of, zf || sf !== of][cc >> 1]!;
  return cc & 1 ? !base : base;
}

const flagBits = fc.integer({ min: 0, max: 0xfff }).map((f) => (f & (CF | OF | PF | SF | ZF)) | 2);

describe('Jcc', () => {
  it('Jcc rel8 is taken exactly when the condition holds (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 15 }), flagBits, fc.integer({ min: -128, max: 127 }), (cc, f, rel) => {
      const cpu = real([0x70 + cc, rel & 0xff]);
      cpu.eip = 0x200;
      cpu.mem.u8.set([0x70 + cc, rel & 0xff], CODE + 0x200);
      cpu.flags = f;
      cpu.run(1);
      expect(cpu.eip).toBe(reference(cc, f) ? 0x202 + rel : 0x202);
    }));
  });

  it('Jcc rel32 and rel16 (0F 8x), and 16-bit targets wrap at 64 KiB', () => {
    const cpu = flat([0x0f, 0x84, 0x00, 0x10, 0x00, 0x00]); // je +0x1000
    cpu.flags |= ZF;
    cpu.run(1);
    expect(cpu.eip).toBe(CODE + 6 + 0x1000);

    const r = real([]);
    r.eip = 0xfff0;
    r.mem.u8.set([0x0f, 0x85, 0x20, 0x00], CODE + 0xfff0); // jne +0x20 → wraps to 0x0014
    r.run(1);
    expect(r.eip).toBe(0x0014);
  });

  it('a taken branch beyond the CS limit raises #GP(0) at the branch; the not-taken one does not', () => {
    const cpu = real([0xe9, 0x00, 0x10, 0x74, 0x7f]); // jmp +0x1000 ; je +0x7f
    // Unreal-mode style: a real-mode CS whose cached limit is 0xFFF.
    cpu.setSegmentCache(CS, CODE >> 4, CODE, 0xfff, 0x9b);
    cpu.run(1);
    expect(vectorTaken(cpu)).toBe(13);
    expect(cpu.mem.read16(0x8000 - 6)).toBe(0); // the pushed IP is the JMP's own
    cpu.loadRealSegment(CS, CODE >> 4);
    cpu.setSegmentCache(CS, CODE >> 4, CODE, 0xfff, 0x9b);
    cpu.eip = 3;
    cpu.flags &= ~ZF;
    cpu.run(1);
    expect(cpu.eip).toBe(5);
  });

  it('charges branchTaken only for taken branches', () => {
    const cost: CostTable = { ...unitCostTable(), branchTaken: 7 };
    const taken = real([0x74, 0x00], cost);
    taken.flags |= ZF;
    taken.run(1);
    const not = real([0x74, 0x00], cost);
    not.run(1);
    expect(taken.cycles - not.cycles).toBe(7);
  });
});

describe('JMP / CALL / RET', () => {
  it('CALL rel16 pushes the return IP; RET imm releases parameters', () => {
    // call +3 ; hlt-ish filler ; (target) ret 4
    const cpu = real([0xe8, 0x03, 0x00, 0x90, 0x90, 0x90, 0xc2, 0x04, 0x00]);
    cpu.run(1);
    expect(cpu.eip).toBe(6);
    expect(cpu.r16[ESP << 1]).toBe(0x7ffe);
    expect(cpu.mem.read16(0x7ffe)).toBe(3);
    cpu.run(1);
    expect(cpu.eip).toBe(3);
    expect(cpu.r16[ESP << 1]).toBe(0x8004);
  });

  it('CALL rel32 / RET in flat mode; JMP rel8 backwards', () => {
    const cpu = flat([0xe8, 0x10, 0x00, 0x00, 0x00, 0xeb, 0xfe]);
    cpu.mem.u8[CODE + 0x15] = 0xc3;
    cpu.run(1);
    expect(cpu.eip).toBe(CODE + 0x15);
    expect(cpu.mem.read32(0x7ffc)).toBe(CODE + 5);
    cpu.run(2);
    expect(cpu.eip).toBe(CODE + 5);
    expect(cpu.r32[ESP]).toBe(0x8000);
  });

  it('a RET to beyond the CS limit faults before popping', () => {
    const cpu = real([0xc3]);
    cpu.setSegmentCache(CS, CODE >> 4, CODE, 0xfff, 0x9b);
    cpu.mem.write16(0x8000, 0x2000);
    cpu.run(1);
    expect(vectorTaken(cpu)).toBe(13);
    expect(cpu.r16[ESP << 1]).toBe(0x8000 - 6);
  });

  it('far CALL / RETF / JMP FAR in real mode', () => {
    // call 2000:0010 ; at 2000:0010 retf 2
    const cpu = real([0x9a, 0x10, 0x00, 0x00, 0x20]);
    cpu.mem.u8.set([0xca, 0x02, 0x00], 0x20010);
    cpu.run(1);
    expect([cpu.segSel[CS], cpu.segBase[CS], cpu.eip]).toEqual([0x2000, 0x20000, 0x10]);
    expect(cpu.mem.read16(0x7ffc)).toBe(5);
    expect(cpu.mem.read16(0x7ffe)).toBe(CODE >> 4);
    cpu.run(1);
    expect([cpu.segSel[CS], cpu.eip, cpu.r16[ESP << 1]]).toEqual([CODE >> 4, 5, 0x8002]);

    const j = real([0xea, 0x34, 0x12, 0x00, 0x30]);
    j.run(1);
    expect([j.segSel[CS], j.eip]).toEqual([0x3000, 0x1234]);
  });
});

describe('LOOP / JCXZ', () => {
  it('LOOP runs CX times', () => {
    // l: inc bx (43) ; loop l
    const cpu = real([0x43, 0xe2, 0xfd, 0x90]);
    cpu.r16[ECX << 1] = 5;
    cpu.run(10);
    expect(cpu.r16[EBX << 1]).toBe(5);
    expect(cpu.r16[ECX << 1]).toBe(0);
    expect(cpu.eip).toBe(3);
  });

  it('the counter follows the ADDRESS size: 67 E2 uses ECX in 16-bit code', () => {
    const cpu = real([0x67, 0xe2, 0x10]);
    cpu.r32[ECX] = 0x10000;
    cpu.run(1);
    expect(cpu.r32[ECX]).toBe(0xffff);
    expect(cpu.eip).toBe(0x13);
    const c16 = real([0xe2, 0x10]);
    c16.r32[ECX] = 0x10001;
    c16.run(1);
    expect(c16.r32[ECX]).toBe(0x10000); // CX reached 0: not taken, upper half untouched
    expect(c16.eip).toBe(2);
  });

  it('LOOPE / LOOPNE test ZF (property)', () => {
    fc.assert(fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 3 }), (loope, zf, cx) => {
      const cpu = real([loope ? 0xe1 : 0xe0, 0x10]);
      cpu.r16[ECX << 1] = cx;
      if (zf) cpu.flags |= ZF;
      cpu.run(1);
      const newCx = (cx - 1) & 0xffff;
      const taken = newCx !== 0 && zf === loope;
      expect(cpu.r16[ECX << 1]).toBe(newCx);
      expect(cpu.eip).toBe(taken ? 0x12 : 2);
    }));
  });

  it('JCXZ / JECXZ', () => {
    const a = real([0xe3, 0x10]);
    a.r32[ECX] = 0x10000;
    a.run(1);
    expect(a.eip).toBe(0x12);
    const b = real([0x67, 0xe3, 0x10]);
    b.r32[ECX] = 0x10000;
    b.run(1);
    expect(b.eip).toBe(3);
  });
});

describe('group 5 (FF)', () => {
  it('INC/DEC r/m16 update the value and flags but keep CF', () => {
    // inc word [bx] ; dec word [bx]
    const cpu = real([0xff, 0x07, 0xff, 0x0f, 0xff, 0x0f]);
    cpu.r16[EBX << 1] = 0x300;
    cpu.mem.write16(0x300, 0xffff);
    cpu.flags |= CF;
    cpu.run(1);
    expect(cpu.mem.read16(0x300)).toBe(0);
    expect(cpu.flags & (ZF | CF)).toBe(ZF | CF);
    cpu.run(2);
    expect(cpu.mem.read16(0x300)).toBe(0xfffe);
    expect(cpu.flags & (ZF | SF | CF)).toBe(SF | CF);
  });

  it('INC r/m32 on 0x7fffffff sets OF', () => {
    const cpu = flat([0xff, 0xc0]);
    cpu.r32[EAX] = 0x7fffffff;
    cpu.run(1);
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(cpu.flags & OF).toBe(OF);
  });

  it('CALL/JMP near indirect, PUSH r/m', () => {
    // call [bx] ; ... ; at 0x40: jmp ax ; at 0x50: push word [bx]
    const cpu = real([0xff, 0x17]);
    cpu.r16[EBX << 1] = 0x300;
    cpu.mem.write16(0x300, 0x40);
    cpu.mem.u8.set([0xff, 0xe0], CODE + 0x40);
    cpu.mem.u8.set([0xff, 0x37], CODE + 0x50);
    cpu.r16[EAX << 1] = 0x50;
    cpu.run(1);
    expect(cpu.eip).toBe(0x40);
    expect(cpu.mem.read16(0x7ffe)).toBe(2);
    cpu.run(1);
    expect(cpu.eip).toBe(0x50);
    cpu.run(1);
    expect(cpu.mem.read16(0x7ffc)).toBe(0x40);
    expect(cpu.r16[ESP << 1]).toBe(0x7ffc);
  });

  it('CALL FAR / JMP FAR through memory; register forms and /7 are #UD', () => {
    const cpu = real([0xff, 0x1f]); // call far [bx]
    cpu.r16[EBX << 1] = 0x300;
    cpu.mem.write16(0x300, 0x0004);
    cpu.mem.write16(0x302, 0x4000);
    cpu.mem.u8.set([0xff, 0x2f], 0x40004); // jmp far [bx]
    cpu.run(1);
    expect([cpu.segSel[CS], cpu.eip]).toEqual([0x4000, 4]);
    expect(cpu.mem.read16(0x7ffc)).toBe(2);
    expect(cpu.mem.read16(0x7ffe)).toBe(CODE >> 4);
    cpu.mem.write16(0x302, 0x5000);
    cpu.run(1);
    expect([cpu.segSel[CS], cpu.eip]).toEqual([0x5000, 4]);
    for (const bytes of [[0xff, 0xd8], [0xff, 0xe8], [0xff, 0x38]]) {
      const bad = real(bytes);
      bad.run(1);
      expect(vectorTaken(bad)).toBe(6);
    }
  });

  it('LOCK is allowed on INC/DEC of memory only', () => {
    const cases: [number[], boolean][] = [
      [[0xf0, 0xff, 0x07], true], // lock inc word [bx]
      [[0xf0, 0xff, 0x0f], true], // lock dec word [bx]
      [[0xf0, 0xff, 0xc0], false], // lock inc ax
      [[0xf0, 0xff, 0x17], false], // lock call [bx]
      [[0xf0, 0xeb, 0x00], false], // lock jmp $+2
    ];
    for (const [bytes, ok] of cases) {
      const cpu = real(bytes);
      cpu.r16[EBX << 1] = 0x300;
      cpu.run(1);
      expect(vectorTaken(cpu), bytes.map((b) => b.toString(16)).join(' ')).toBe(ok ? -1 : 6);
    }
  });

  it('CALL r/m32 in flat mode pushes a 4-byte return address', () => {
    const cpu = flat([0xff, 0xd3]); // call ebx
    cpu.r32[EBX] = 0x3000;
    cpu.run(1);
    expect(cpu.eip).toBe(0x3000);
    expect(cpu.mem.read32(0x7ffc)).toBe(CODE + 2);
    expect(cpu.segSel[SS]).toBe(0x10);
  });
});
