import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DS, EAX, EBP, EBX, ECX, EDI, EDX, ES, ESI, ESP, FS, GS, SS } from '../../src/machine/cpu/cpu.js';
import { AC, CF, IF, IOPL, OF, RF, TF, VM, ZF } from '../../src/machine/cpu/flags.js';
import { CODE, flat, real, vectorTaken } from './fixture.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });

describe('PUSH / POP', () => {
  it('PUSH r32; POP r32 copies the value and leaves ESP unchanged (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }), u32,
      fc.integer({ min: 0x100, max: 0x7ff0 }), (src, dst, x, sp) => {
        const cpu = flat([0x50 + src, 0x58 + dst]);
        cpu.r32[ESP] = sp;
        if (src === ESP) x = sp; else cpu.r32[src] = x;
        cpu.run(2);
        expect(cpu.r32[dst]! >>> 0).toBe(x >>> 0);
        if (dst !== ESP) expect(cpu.r32[ESP]).toBe(sp);
        expect(cpu.mem.read32(sp - 4) >>> 0).toBe(x >>> 0);
      }));
  });

  it('PUSH r16; POP r16 in real mode copies the value and restores SP (property)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 7 }), u16, u16,
      (src, dst, x, sp) => {
        // SP = 1 would put the word at offset FFFFh, across the limit (#SS): not this property.
        fc.pre(src !== ESP && dst !== ESP && sp !== 1);
        const cpu = real([0x50 + src, 0x58 + dst]);
        cpu.r16[src << 1] = x;
        cpu.r16[ESP << 1] = sp;
        cpu.loadRealSegment(SS, 0x2000);
        cpu.run(2);
        expect(cpu.r16[dst << 1]).toBe(x);
        expect(cpu.r16[ESP << 1]).toBe(sp);
        // The slot lies at SS:(SP-2), wrapping within the 64 KiB segment.
        expect(cpu.mem.read16(0x20000 + ((sp - 2) & 0xffff))).toBe(x);
      }));
  });

  it('PUSH ESP pushes the value before the decrement; POP ESP loads the popped value', () => {
    const cpu = flat([0x54, 0x5c]);
    cpu.run(1);
    expect(cpu.r32[ESP]).toBe(0x7ffc);
    expect(cpu.mem.read32(0x7ffc)).toBe(0x8000);
    cpu.mem.write32(0x7ffc, 0x1234);
    cpu.run(1);
    expect(cpu.r32[ESP]).toBe(0x1234);
  });

  it('PUSH imm8 sign-extends to the operand size', () => {
    const cpu = flat([0x6a, 0x80, 0x66, 0x6a, 0xff, 0x68, 0x78, 0x56, 0x34, 0x12]);
    cpu.run(3);
    expect(cpu.r32[ESP]).toBe(0x8000 - 10);
    expect(cpu.mem.read32(0x7ffc) >>> 0).toBe(0xffffff80);
    expect(cpu.mem.read16(0x7ffa)).toBe(0xffff);
    expect(cpu.mem.read32(0x7ff6)).toBe(0x12345678);
  });

  it('PUSH/POP segment registers; a 32-bit PUSH sreg moves ESP by 4 and writes 16 bits', () => {
    const cpu = flat([0x0f, 0xa0, 0x1e]);
    cpu.segSel[FS] = 0x1234;
    cpu.mem.write32(0x7ffc, 0xaaaaaaaa | 0);
    cpu.run(1);
    expect(cpu.r32[ESP]).toBe(0x7ffc);
    expect(cpu.mem.read32(0x7ffc) >>> 0).toBe(0xaaaa1234);
    cpu.run(1);
    expect(cpu.r32[ESP]).toBe(0x7ff8);
    expect(cpu.mem.read16(0x7ff8)).toBe(0x10);

    const r = real([0x06, 0x1f, 0x0e, 0x07, 0x16, 0x0f, 0xa9]);
    r.loadRealSegment(ES, 0x2345);
    r.run(2); // PUSH ES; POP DS
    expect(r.segSel[DS]).toBe(0x2345);
    expect(r.segBase[DS]).toBe(0x23450);
    expect(r.r16[ESP << 1]).toBe(0x8000);
    r.run(2); // PUSH CS; POP ES
    expect(r.segSel[ES]).toBe(CODE >> 4);
    r.run(2); // PUSH SS; POP GS
    expect(r.segSel[GS]).toBe(0);
    expect(r.r16[ESP << 1]).toBe(0x8000);
  });

  it('POP SS and MOV SS hold off an interrupt for one instruction; MOV DS does not', () => {
    for (const [bytes, shadow] of [[[0x17, 0x90, 0x90], true], [[0x8e, 0xd0, 0x90, 0x90], true], [[0x8e, 0xd8, 0x90], false]] as const) {
      const cpu = real([...bytes]);
      cpu.r16[ESP << 1] = 0x7ffe; // POP SS reads 0 from here
      cpu.flags |= IF;
      cpu.intrAck = () => 0x10;
      cpu.setIntrLine(true);
      cpu.run(1);
      if (shadow) {
        expect(vectorTaken(cpu)).toBe(-1);
        cpu.run(1);
      }
      expect(vectorTaken(cpu)).toBe(0x10);
    }
  });

  it('PUSHA/POPA: layout, original SP pushed, SP slot ignored on POPA (property)', () => {
    fc.assert(fc.property(fc.array(u32, { minLength: 8, maxLength: 8 }), fc.boolean(), (vals, os32) => {
      const cpu = flat(os32 ? [0x60, 0x61] : [0x66, 0x60, 0x66, 0x61]);
      for (let r = 0; r < 8; r++) if (r !== ESP) cpu.r32[r] = vals[r]!;
      const size = os32 ? 4 : 2;
      cpu.run(1);
      expect(cpu.r32[ESP]).toBe(0x8000 - 8 * size);
      for (let r = 0; r < 8; r++) {
        const slot = 0x8000 - (r + 1) * size;
        const want = r === ESP ? 0x8000 : vals[r]!;
        if (os32) expect(cpu.mem.read32(slot)).toBe(want | 0);
        else expect(cpu.mem.read16(slot)).toBe(want & 0xffff);
      }
      // Scramble, then POPA must restore everything but take SP from the pops.
      for (let r = 0; r < 8; r++) if (r !== ESP) cpu.r32[r] = 0;
      cpu.mem.write16(0x8000 - 5 * size, 0x5555);
      cpu.run(1);
      expect(cpu.r32[ESP]).toBe(0x8000);
      for (let r = 0; r < 8; r++) {
        if (r === ESP) continue;
        if (os32) expect(cpu.r32[r]).toBe(vals[r]! | 0);
        else expect(cpu.r16[r << 1]).toBe(vals[r]! & 0xffff);
      }
    }));
  });

  it('POP r/m32 with an ESP base addresses relative to the incremented ESP', () => {
    // POP DWORD [ESP+4]
    const cpu = flat([0x8f, 0x44, 0x24, 0x04]);
    cpu.mem.write32(0x8000, 0xcafe);
    cpu.run(1);
    expect(cpu.r32[ESP]).toBe(0x8004);
    expect(cpu.mem.read32(0x8008)).toBe(0xcafe);
  });

  it('POP r/m with reg != 0 is #UD and leaves SP alone', () => {
    const cpu = real([0x8f, 0xc8]);
    cpu.run(1);
    expect(vectorTaken(cpu)).toBe(6);
    // The #UD pushed FLAGS, CS, IP below the untouched SP.
    expect(cpu.r16[ESP << 1]).toBe(0x8000 - 6);
    expect(cpu.mem.read16(0x8000 - 6)).toBe(0);
  });
});

describe('PUSHF / POPF', () => {
  it('PUSHFD clears VM and RF in the image', () => {
    const cpu = flat([0x9c]);
    cpu.flags |= RF | CF | AC;
    cpu.run(1);
    const img = cpu.mem.read32(0x7ffc);
    expect(img & RF).toBe(0);
    expect(img & (CF | AC)).toBe(CF | AC);
  });

  it('16-bit POPF keeps the upper half; real-mode POPFD changes IOPL/IF but not VM, clears RF', () => {
    const cpu = flat([0x66, 0x9d, 0x9d]);
    cpu.flags |= AC;
    cpu.mem.write16(0x8000, 0xfeff); // all but TF
    cpu.run(1);
    expect(cpu.flags & AC).toBe(AC);
    expect(cpu.flags & 0xffff).toBe(0x7ed7);
    cpu.mem.write32(0x8002, 0xfffffeff | 0);
    cpu.flags |= RF;
    cpu.run(1);
    expect(cpu.flags & (VM | RF)).toBe(0);
    expect(cpu.flags & (IOPL | IF | AC)).toBe(IOPL | IF | AC);
  });

  it('at CPL 3, POPF leaves IOPL alone and changes IF only when CPL <= IOPL', () => {
    for (const iopl of [0, 3]) {
      const cpu = flat([0x9d]);
      cpu.cpl = 3;
      cpu.flags = 2 | (iopl << 12);
      cpu.mem.write32(0x8000, IF | ZF | (1 << 12));
      cpu.run(1);
      expect(cpu.flags & IOPL).toBe(iopl << 12);
      expect(cpu.flags & ZF).toBe(ZF);
      expect(cpu.flags & IF).toBe(iopl === 3 ? IF : 0);
    }
  });

  it('POPF can set TF (single-step starts after the next instruction)', () => {
    const cpu = real([0x9d, 0x90, 0x90]);
    cpu.mem.write16(0x8000, TF | 2);
    cpu.run(1);
    expect(cpu.flags & TF).toBe(TF);
  });
});

describe('MOV / XCHG / LEA', () => {
  it('MOV r/m, r and r, r/m at all widths', () => {
    // mov [bx+2],ax ; mov cl,[bx+2] ; mov ch,[bx+3] ; mov dx,cx ; mov [bx+4],dh
    const cpu = real([0x89, 0x47, 0x02, 0x8a, 0x4f, 0x02, 0x8a, 0x6f, 0x03, 0x8b, 0xd1, 0x88, 0x77, 0x04]);
    cpu.loadRealSegment(DS, 0x3000);
    cpu.r16[EAX << 1] = 0xbeef;
    cpu.r16[EBX << 1] = 0x10;
    cpu.run(5);
    expect(cpu.mem.read16(0x30012)).toBe(0xbeef);
    expect(cpu.r16[ECX << 1]).toBe(0xbeef);
    expect(cpu.r16[EDX << 1]).toBe(0xbeef);
    expect(cpu.mem.read8(0x30014)).toBe(0xbe);
  });

  it('MOV moffs honours the segment override and address size', () => {
    // mov ax,[es:1234h] ; mov [5678h],al
    const cpu = real([0x26, 0xa1, 0x34, 0x12, 0xa2, 0x78, 0x56]);
    cpu.loadRealSegment(ES, 0x4000);
    cpu.loadRealSegment(DS, 0x5000);
    cpu.mem.write16(0x41234, 0xa55a);
    cpu.run(2);
    expect(cpu.r16[EAX << 1]).toBe(0xa55a);
    expect(cpu.mem.read8(0x55678)).toBe(0x5a);
  });

  it('MOV r/m, imm (/0) places the immediate after the displacement; other /r are #UD', () => {
    // mov word [bx+1],0102h ; mov byte [bx],7 ; C6 /1 -> #UD
    const cpu = real([0xc7, 0x47, 0x01, 0x02, 0x01, 0xc6, 0x07, 0x07, 0xc6, 0x08, 0x00]);
    cpu.r16[EBX << 1] = 0x100;
    cpu.run(2);
    expect(cpu.mem.read16(0x101)).toBe(0x0102);
    expect(cpu.mem.read8(0x100)).toBe(7);
    cpu.run(1);
    expect(vectorTaken(cpu)).toBe(6);
  });

  it('MOV r32, Sreg zero-extends; MOV m, Sreg writes 16 bits even with a 32-bit operand', () => {
    const cpu = flat([0x8c, 0xd8, 0x8c, 0x1d, 0x00, 0x20, 0x00, 0x00]);
    cpu.r32[EAX] = -1;
    cpu.mem.write32(0x2000, -1);
    cpu.run(2);
    expect(cpu.r32[EAX]).toBe(0x10);
    expect(cpu.mem.read32(0x2000) >>> 0).toBe(0xffff0010);
  });

  it('MOV CS, r/m and MOV to Sreg 6 are #UD; LEA with a register operand is #UD', () => {
    for (const bytes of [[0x8e, 0xc8], [0x8e, 0xf0], [0x8c, 0xf8], [0x8d, 0xc0]]) {
      const cpu = real(bytes);
      cpu.run(1);
      expect(vectorTaken(cpu)).toBe(6);
    }
  });

  it('LEA truncates to the operand size and computes with the address size', () => {
    // lea ax,[bx+si+10h] (16-bit wrap) ; 66 lea eax,[bx+si+10h] (zero-extended 16-bit offset) ; 67 lea cx,[eax+edx*4]
    const cpu = real([0x8d, 0x40, 0x10, 0x66, 0x8d, 0x40, 0x10, 0x67, 0x8d, 0x0c, 0x90]);
    cpu.r16[EBX << 1] = 0xfff8;
    cpu.r16[ESI << 1] = 0x0004;
    cpu.run(1);
    expect(cpu.r16[EAX << 1]).toBe(0x000c);
    cpu.r32[EAX] = -1;
    cpu.run(1);
    expect(cpu.r32[EAX]).toBe(0x000c);
    cpu.r32[EAX] = 0x12340000;
    cpu.r32[EDX] = 0x4001;
    cpu.run(1);
    expect(cpu.r16[ECX << 1]).toBe(0x0004);
  });

  it('XCHG with memory and with eAX swaps; 90 is a NOP', () => {
    // xchg [bx],cx ; xchg ax,dx ; nop ; xchg al,ah (86 e0)
    const cpu = real([0x87, 0x0f, 0x92, 0x90, 0x86, 0xe0]);
    cpu.r16[EBX << 1] = 0x200;
    cpu.mem.write16(0x200, 0x1111);
    cpu.r16[ECX << 1] = 0x2222;
    cpu.r16[EAX << 1] = 0x3344;
    cpu.r16[EDX << 1] = 0x5566;
    cpu.run(4);
    expect(cpu.mem.read16(0x200)).toBe(0x2222);
    expect(cpu.r16[ECX << 1]).toBe(0x1111);
    expect(cpu.r16[EDX << 1]).toBe(0x3344);
    expect(cpu.r16[EAX << 1]).toBe(0x6655);
  });

  it('MOVZX / MOVSX', () => {
    // movzx eax,bl ; movsx ecx,bl ; movsx edx,word [0x2000] ; 66 movzx si,bh
    const cpu = flat([0x0f, 0xb6, 0xc3, 0x0f, 0xbe, 0xcb, 0x0f, 0xbf, 0x15, 0x00, 0x20, 0, 0, 0x66, 0x0f, 0xb6, 0xf7]);
    cpu.r32[EBX] = 0x1280;
    cpu.r32[ESI] = -1;
    cpu.mem.write16(0x2000, 0x8001);
    cpu.run(4);
    expect(cpu.r32[EAX]).toBe(0x80);
    expect(cpu.r32[ECX]).toBe(-128);
    expect(cpu.r32[EDX]).toBe(-0x7fff);
    expect(cpu.r32[ESI] >>> 0).toBe(0xffff0012);
  });

  it('XLAT reads [DS:BX+AL] with the 16-bit sum wrapped', () => {
    const cpu = real([0xd7]);
    cpu.loadRealSegment(DS, 0x3000);
    cpu.r16[EBX << 1] = 0xfff0;
    cpu.r8[0] = 0x20;
    cpu.mem.write8(0x30010, 0x99);
    cpu.run(1);
    expect(cpu.r8[0]).toBe(0x99);
  });

  it('LDS/LES/LSS/LFS load offset and selector; register form is #UD', () => {
    // lds si,[bx] ; les di,[bx+4] ; lss sp,[bx+8] ; lfs ax,[bx]
    const cpu = real([0xc5, 0x37, 0xc4, 0x7f, 0x04, 0x0f, 0xb2, 0x67, 0x08, 0x0f, 0xb4, 0x07]);
    cpu.r16[EBX << 1] = 0x300;
    cpu.mem.write16(0x300, 0x1111); cpu.mem.write16(0x302, 0x2222);
    cpu.mem.write16(0x304, 0x3333); cpu.mem.write16(0x306, 0x4444);
    cpu.mem.write16(0x308, 0x5555); cpu.mem.write16(0x30a, 0x6666);
    cpu.run(1);
    expect([cpu.r16[ESI << 1], cpu.segSel[DS], cpu.segBase[DS]]).toEqual([0x1111, 0x2222, 0x22220]);
    cpu.loadRealSegment(DS, 0);
    cpu.run(1);
    expect([cpu.r16[EDI << 1], cpu.segSel[ES]]).toEqual([0x3333, 0x4444]);
    cpu.run(1);
    expect([cpu.r16[ESP << 1], cpu.segSel[SS], cpu.segBase[SS]]).toEqual([0x5555, 0x6666, 0x66660]);
    cpu.loadRealSegment(DS, 0);
    cpu.run(1);
    expect([cpu.r16[EAX << 1], cpu.segSel[FS]]).toEqual([0x1111, 0x2222]);
    const bad = real([0xc4, 0xc0]);
    bad.run(1);
    expect(vectorTaken(bad)).toBe(6);
  });

  it('BOUND raises #BR outside [lower, upper] (signed) and not inside', () => {
    fc.assert(fc.property(fc.integer({ min: -0x8000, max: 0x7fff }), fc.integer({ min: -0x8000, max: 0x7fff }),
      fc.integer({ min: -0x8000, max: 0x7fff }), (idx, lo, hi) => {
        const cpu = real([0x62, 0x07]); // bound ax,[bx]
        cpu.r16[EBX << 1] = 0x400;
        cpu.r16[EAX << 1] = idx;
        cpu.mem.write16(0x400, lo);
        cpu.mem.write16(0x402, hi);
        cpu.run(1);
        expect(vectorTaken(cpu)).toBe(idx < lo || idx > hi ? 5 : -1);
      }));
  });
});

describe('LOCK prefix', () => {
  it('is #UD except on XCHG with a memory operand', () => {
    const cases: [number[], boolean][] = [
      [[0xf0, 0x87, 0x07], true], // lock xchg [bx],ax
      [[0xf0, 0x86, 0x27], true], // lock xchg [bx],ah
      [[0xf0, 0x87, 0xc3], false], // lock xchg bx,ax
      [[0xf0, 0x89, 0x07], false], // lock mov [bx],ax
      [[0xf0, 0x50], false], // lock push ax
      [[0xf0, 0x90], false], // lock nop
      [[0xf0, 0xa4], false], // lock movsb
    ];
    for (const [bytes, ok] of cases) {
      const cpu = real(bytes);
      cpu.r16[EBX << 1] = 0x300;
      cpu.run(1);
      expect(vectorTaken(cpu), bytes.map((b) => b.toString(16)).join(' ')).toBe(ok ? -1 : 6);
      if (ok) expect(cpu.eip).toBe(bytes.length);
    }
  });
});

describe('ENTER / LEAVE', () => {
  it('ENTER with nesting level 3 copies the display and allocates the frame (32-bit)', () => {
    const cpu = flat([0xc8, 0x10, 0x00, 0x03, 0xc9]);
    cpu.r32[EBP] = 0x9000;
    cpu.mem.write32(0x9000 - 4, 0x1111);
    cpu.mem.write32(0x9000 - 8, 0x2222);
    cpu.run(1);
    const frame = 0x8000 - 4;
    expect(cpu.mem.read32(frame)).toBe(0x9000); // saved EBP
    expect(cpu.mem.read32(frame - 4)).toBe(0x1111);
    expect(cpu.mem.read32(frame - 8)).toBe(0x2222);
    expect(cpu.mem.read32(frame - 12)).toBe(frame);
    expect(cpu.r32[EBP]).toBe(frame);
    expect(cpu.r32[ESP]).toBe(frame - 12 - 0x10);
    cpu.run(1); // LEAVE
    expect(cpu.r32[EBP]).toBe(0x9000);
    expect(cpu.r32[ESP]).toBe(0x8000);
  });

  it('ENTER level 0 and 1 (16-bit)', () => {
    const cpu = real([0xc8, 0x04, 0x00, 0x00, 0xc8, 0x02, 0x00, 0x01]);
    cpu.r16[EBP << 1] = 0x1234;
    cpu.run(1);
    expect(cpu.mem.read16(0x7ffe)).toBe(0x1234);
    expect(cpu.r16[EBP << 1]).toBe(0x7ffe);
    expect(cpu.r16[ESP << 1]).toBe(0x7ffa);
    cpu.run(1);
    expect(cpu.mem.read16(0x7ff8)).toBe(0x7ffe);
    expect(cpu.mem.read16(0x7ff6)).toBe(0x7ff8);
    expect(cpu.r16[EBP << 1]).toBe(0x7ff8);
    expect(cpu.r16[ESP << 1]).toBe(0x7ff4);
  });

  it('LEAVE with a 16-bit stack uses BP and SP', () => {
    const cpu = real([0xc9]);
    cpu.r32[EBP] = 0x00127000;
    cpu.r32[ESP] = 0x00120010;
    cpu.mem.write16(0x7000, 0xabcd);
    cpu.run(1);
    expect(cpu.r32[ESP]).toBe(0x00127002);
    expect(cpu.r32[EBP]).toBe(0x0012abcd);
  });
});

describe('faulting data instructions change nothing', () => {
  it('MOV to memory beyond the DS limit raises #GP and keeps registers (real mode, wrap at 64 KiB)', () => {
    const cpu = real([0xa3, 0xff, 0xff]); // mov [0ffffh],ax: the word crosses the limit
    cpu.r16[EAX << 1] = 0x1234;
    cpu.run(1);
    expect(vectorTaken(cpu)).toBe(13);
    expect(cpu.mem.read8(0xffff)).toBe(0);
  });

  it('a faulting LES leaves ES unchanged and OF etc untouched', () => {
    const cpu = real([0xc4, 0x3e, 0xfe, 0xff]); // les di,[0fffeh]: the selector lies past the limit
    cpu.loadRealSegment(ES, 0x1234);
    cpu.flags |= OF;
    cpu.run(1);
    expect(vectorTaken(cpu)).toBe(13);
    expect(cpu.segSel[ES]).toBe(0x1234);
    expect(cpu.r16[EDI << 1]).toBe(0);
  });
});
