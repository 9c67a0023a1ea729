import fc from 'fast-check';
import { Decoder, DecoderOptions, OpKind, Register as IcedRegister } from 'iced-x86';
import { describe, expect, it } from 'vitest';
import { Assembler } from '../../src/x86/assembler.js';
import {
  ah, al, ax, bl, bx, byte, cl, cr0, cr2, cr3, cr4, ds, dword, dx, eax, ebp, ebx, ecx, edi, edx, es, esi, esp, fs,
  ptr, qword, ss, word, type Reg,
} from '../../src/x86/operands.js';
import { disassembleAll } from '../../src/x86/pvop.js';

const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Assembles one snippet at `origin` and returns the text section's bytes. */
function bytesOf(f: (a: Assembler) => void, origin = 0): Uint8Array {
  const a = new Assembler({ origin });
  f(a);
  return a.build().sections[0]!.bytes;
}

/**
 * Expected bytes produced by GNU as 2.40 (`as --32`, `.intel_syntax noprefix`) from the
 * text in the first column: an encoder independent of iced-x86.
 */
const GAS_CASES: [string, string, (a: Assembler) => void][] = [
  ["mov eax, ebx", '89d8', (a) => a.mov(eax, ebx)],
  ["mov eax, [ebx+8]", '8b4308', (a) => a.mov(eax, dword(ebx, 8))],
  ["mov eax, [ebp]", '8b4500', (a) => a.mov(eax, dword(ebp))],
  ["mov eax, [esp]", '8b0424', (a) => a.mov(eax, dword(esp))],
  ["mov eax, [esp+4]", '8b442404', (a) => a.mov(eax, dword(esp, 4))],
  ["mov dword ptr [ebx+ecx*4+0x100], 0x12345678", 'c7848b0001000078563412', (a) => a.mov(dword({ base: ebx, index: ecx, scale: 4, disp: 0x100 }), 0x12345678)],
  ["mov byte ptr [esi], 0xff", 'c606ff', (a) => a.mov(byte(esi), 0xff)],
  ["mov word ptr [edi-2], 0x1234", '66c747fe3412', (a) => a.mov(word(edi, -2), 0x1234)],
  ["mov eax, 0", 'b800000000', (a) => a.mov(eax, 0)],
  ["mov eax, 0xffffffff", 'b8ffffffff', (a) => a.mov(eax, -1)],
  ["mov al, 0x41", 'b041', (a) => a.mov(al, 0x41)],
  ["mov ah, bl", '88dc', (a) => a.mov(ah, bl)],
  ["mov eax, ds:[0x1234]", 'a134120000', (a) => a.mov(eax, dword(0x1234))],
  ["mov ebx, ds:[0x1234]", '8b1d34120000', (a) => a.mov(ebx, dword(0x1234))],
  ["mov eax, fs:[0x10]", '64a110000000', (a) => a.mov(eax, dword({ seg: fs, disp: 0x10 }))],
  ["add eax, 1", '83c001', (a) => a.add(eax, 1)],
  ["add eax, 0x1000", '0500100000', (a) => a.add(eax, 0x1000)],
  ["add ebx, 0x1000", '81c300100000', (a) => a.add(ebx, 0x1000)],
  ["sub esp, 16", '83ec10', (a) => a.sub(esp, 16)],
  ["and eax, 0xfffff000", '2500f0ffff', (a) => a.and(eax, 0xfffff000)],
  ["or dword ptr [ebx], 3", '830b03', (a) => a.or(dword(ebx), 3)],
  ["xor eax, eax", '31c0', (a) => a.xor(eax, eax)],
  ["cmp ecx, 10", '83f90a', (a) => a.cmp(ecx, 10)],
  ["cmp al, 0x0a", '3c0a', (a) => a.cmp(al, 10)],
  ["test eax, eax", '85c0', (a) => a.test(eax, eax)],
  ["test al, 1", 'a801', (a) => a.test(al, 1)],
  ["test eax, 0x200", 'a900020000', (a) => a.test(eax, 0x200)],
  ["inc ecx", '41', (a) => a.inc(ecx)],
  ["dec dword ptr [eax]", 'ff08', (a) => a.dec(dword(eax))],
  ["neg edx", 'f7da', (a) => a.neg(edx)],
  ["not eax", 'f7d0', (a) => a.not(eax)],
  ["mul ecx", 'f7e1', (a) => a.mul(ecx)],
  ["imul eax, ebx", '0fafc3', (a) => a.imul(eax, ebx)],
  ["imul eax, ebx, 10", '6bc30a', (a) => a.imul(eax, ebx, 10)],
  ["imul eax, ebx, 1000", '69c3e8030000', (a) => a.imul(eax, ebx, 1000)],
  ["div ebx", 'f7f3', (a) => a.div(ebx)],
  ["shl eax, 1", 'd1e0', (a) => a.shl(eax, 1)],
  ["shl eax, 12", 'c1e00c', (a) => a.shl(eax, 12)],
  ["shr edx, cl", 'd3ea', (a) => a.shr(edx, cl)],
  ["sar eax, 31", 'c1f81f', (a) => a.sar(eax, 31)],
  ["rol eax, 8", 'c1c008', (a) => a.rol(eax, 8)],
  ["shld eax, ebx, 4", '0fa4d804', (a) => a.shld(eax, ebx, 4)],
  ["movzx eax, byte ptr [esi]", '0fb606', (a) => a.movzx(eax, byte(esi))],
  ["movzx eax, bx", '0fb7c3', (a) => a.movzx(eax, bx)],
  ["movsx eax, al", '0fbec0', (a) => a.movsx(eax, al)],
  ["lea eax, [ebx+ecx*2+3]", '8d444b03', (a) => a.lea(eax, ptr({ base: ebx, index: ecx, scale: 2, disp: 3 }))],
  ["lea esi, [esi+1]", '8d7601', (a) => a.lea(esi, ptr(esi, 1))],
  ["xchg eax, ebx", '93', (a) => a.xchg(eax, ebx)],
  ["xchg ebx, eax", '93', (a) => a.xchg(ebx, eax)],
  ["lock xadd dword ptr [ebx], eax", 'f00fc103', (a) => a.lock().xadd(dword(ebx), eax)],
  ["lock cmpxchg dword ptr [edi], ecx", 'f00fb10f', (a) => a.lock().cmpxchg(dword(edi), ecx)],
  ["cmpxchg8b qword ptr [esi]", '0fc70e', (a) => a.cmpxchg8b(qword(esi))],
  ["bts dword ptr [ebx], 5", '0fba2b05', (a) => a.bts(dword(ebx), 5)],
  ["bsf eax, ecx", '0fbcc1', (a) => a.bsf(eax, ecx)],
  ["bswap eax", '0fc8', (a) => a.bswap(eax)],
  ["sete al", '0f94c0', (a) => a.set('e', al)],
  ["cmovne eax, ebx", '0f45c3', (a) => a.cmov('ne', eax, ebx)],
  ["push eax", '50', (a) => a.push(eax)],
  ["push 5", '6a05', (a) => a.push(5)],
  ["push 0x12345", '6845230100', (a) => a.push(0x12345)],
  ["push dword ptr [ebp+8]", 'ff7508', (a) => a.push(dword(ebp, 8))],
  ["pop ebx", '5b', (a) => a.pop(ebx)],
  ["push ds", '1e', (a) => a.push(ds)],
  ["pop es", '07', (a) => a.pop(es)],
  ["push fs", '0fa0', (a) => a.push(fs)],
  ["pushfd", '9c', (a) => a.pushf()],
  ["popfd", '9d', (a) => a.popf()],
  ["pushad", '60', (a) => a.pusha()],
  ["popad", '61', (a) => a.popa()],
  ["ret", 'c3', (a) => a.ret()],
  ["ret 8", 'c20800', (a) => a.ret(8)],
  ["retf", 'cb', (a) => a.retf()],
  ["iretd", 'cf', (a) => a.iret()],
  ["int 0x80", 'cd80', (a) => a.int(0x80)],
  ["int3", 'cc', (a) => a.int3()],
  ["call eax", 'ffd0', (a) => a.call(eax)],
  ["call dword ptr [ebx+4]", 'ff5304', (a) => a.call(dword(ebx, 4))],
  ["jmp eax", 'ffe0', (a) => a.jmp(eax)],
  ["in al, dx", 'ec', (a) => a.in(al, dx)],
  ["in eax, dx", 'ed', (a) => a.in(eax, dx)],
  ["in al, 0x60", 'e460', (a) => a.in(al, 0x60)],
  ["out dx, al", 'ee', (a) => a.out(dx, al)],
  ["out 0xe9, al", 'e6e9', (a) => a.out(0xe9, al)],
  ["out dx, eax", 'ef', (a) => a.out(dx, eax)],
  ["out dx, ax", '66ef', (a) => a.out(dx, ax)],
  ["mov cr3, eax", '0f22d8', (a) => a.mov(cr3, eax)],
  ["mov eax, cr0", '0f20c0', (a) => a.mov(eax, cr0)],
  ["mov eax, cr2", '0f20d0', (a) => a.mov(eax, cr2)],
  ["mov cr4, eax", '0f22e0', (a) => a.mov(cr4, eax)],
  ["mov ds, ax", '8ed8', (a) => a.mov(ds, ax)],
  ["mov ax, ss", '668cd0', (a) => a.mov(ax, ss)],
  ["mov ss, word ptr [ebx]", '8e13', (a) => a.mov(ss, word(ebx))],
  ["lgdt [eax]", '0f0110', (a) => a.lgdt(ptr(eax))],
  ["lidt [0x1000]", '0f011d00100000', (a) => a.lidt(ptr(0x1000))],
  ["ltr ax", '0f00d8', (a) => a.ltr(ax)],
  ["lldt ax", '0f00d0', (a) => a.lldt(ax)],
  ["invlpg [eax]", '0f0138', (a) => a.invlpg(ptr(eax))],
  ["cli", 'fa', (a) => a.cli()],
  ["sti", 'fb', (a) => a.sti()],
  ["hlt", 'f4', (a) => a.hlt()],
  ["nop", '90', (a) => a.nop()],
  ["cld", 'fc', (a) => a.cld()],
  ["std", 'fd', (a) => a.std()],
  ["clc", 'f8', (a) => a.clc()],
  ["stc", 'f9', (a) => a.stc()],
  ["cdq", '99', (a) => a.cdq()],
  ["cwde", '98', (a) => a.cwde()],
  ["leave", 'c9', (a) => a.leave()],
  ["ud2", '0f0b', (a) => a.ud2()],
  ["cpuid", '0fa2', (a) => a.cpuid()],
  ["rdtsc", '0f31', (a) => a.rdtsc()],
  ["rdmsr", '0f32', (a) => a.rdmsr()],
  ["wrmsr", '0f30', (a) => a.wrmsr()],
  ["sysenter", '0f34', (a) => a.sysenter()],
  ["sysexit", '0f35', (a) => a.sysexit()],
  ["clts", '0f06', (a) => a.clts()],
  ["wbinvd", '0f09', (a) => a.wbinvd()],
  ["rep movsd", 'f3a5', (a) => a.movsd('rep')],
  ["rep stosb", 'f3aa', (a) => a.stosb('rep')],
  ["lodsb", 'ac', (a) => a.lodsb()],
  ["repne scasb", 'f2ae', (a) => a.scasb('repne')],
  ["repe cmpsd", 'f3a7', (a) => a.cmpsd('repe')],
  ["rep insw", '66f36d', (a) => a.insw('rep')],
  ["outsb", '6e', (a) => a.outsb()],
  ["enter 16, 0", 'c8100000', (a) => a.enter(16, 0)],
  ["jmp 0x08:0x100000", 'ea000010000800', (a) => a.jmpFar(8, 0x100000)],
  ["mov eax, [ebx+0x7f]", '8b437f', (a) => a.mov(eax, dword(ebx, 0x7f))],
  ["mov eax, [ebx+0x80]", '8b8380000000', (a) => a.mov(eax, dword(ebx, 0x80))],
  ["mov eax, [ebx-0x80]", '8b4380', (a) => a.mov(eax, dword(ebx, -0x80))],
  ["mov eax, [ecx*8]", '8b04cd00000000', (a) => a.mov(eax, dword({ index: ecx, scale: 8 }))],
  ["add byte ptr [eax], al", '0000', (a) => a.add(byte(eax), al)],
  ["adc edx, 0", '83d200', (a) => a.adc(edx, 0)],
  ["sbb eax, ebx", '19d8', (a) => a.sbb(eax, ebx)],
];

describe('encoding, against GNU as', () => {
  it.each(GAS_CASES)('%s → %s', (_text, gas, f) => {
    expect(hexOf(bytesOf(f))).toBe(gas);
  });
});

describe('encoding, against the SDM (hand-assembled)', () => {
  // Opcode tables of the Intel SDM vol. 2: each byte worked out by hand.
  it.each([
    // MOV r/m32, r32 = 89 /r; ModRM mod=11 reg=EBX(3) rm=EAX(0) → 0xD8
    ['mov eax, ebx', (a: Assembler) => a.mov(eax, ebx), [0x89, 0xd8]],
    // MOV r32, imm32 = B8+rd id
    ['mov ecx, 0x12345678', (a: Assembler) => a.mov(ecx, 0x12345678), [0xb9, 0x78, 0x56, 0x34, 0x12]],
    // ADD r/m32, imm8 = 83 /0 ib; mod=11 reg=0 rm=EDX(2) → 0xC2
    ['add edx, -1', (a: Assembler) => a.add(edx, -1), [0x83, 0xc2, 0xff]],
    // MOV r32, r/m32 = 8B /r; [esp+8] needs a SIB: mod=01 reg=EAX rm=100 → 0x44, SIB 0x24, disp8 8
    ['mov eax, [esp+8]', (a: Assembler) => a.mov(eax, dword(esp, 8)), [0x8b, 0x44, 0x24, 0x08]],
    // MOV CR3, r32 = 0F 22 /r; mod=11 reg=3 rm=EAX → 0xD8
    ['mov cr3, eax', (a: Assembler) => a.mov(cr3, eax), [0x0f, 0x22, 0xd8]],
    // INVLPG m = 0F 01 /7; [ebx]: mod=00 reg=7 rm=3 → 0x3B
    ['invlpg [ebx]', (a: Assembler) => a.invlpg(ptr(ebx)), [0x0f, 0x01, 0x3b]],
    // INT imm8 = CD ib
    ['int 0x80', (a: Assembler) => a.int(0x80), [0xcd, 0x80]],
    // OUT DX, AL = EE; IN AL, imm8 = E4 ib
    ['out dx, al', (a: Assembler) => a.out(dx, al), [0xee]],
    ['in al, 0x64', (a: Assembler) => a.in(al, 0x64), [0xe4, 0x64]],
    // LGDT m16&32 = 0F 01 /2; [disp32]: mod=00 reg=2 rm=101 → 0x15
    ['lgdt [0x2000]', (a: Assembler) => a.lgdt(ptr(0x2000)), [0x0f, 0x01, 0x15, 0x00, 0x20, 0x00, 0x00]],
    // SYSENTER = 0F 34; RDTSC = 0F 31; IRETD = CF; PUSHFD = 9C; CLI = FA
    ['sysenter', (a: Assembler) => a.sysenter(), [0x0f, 0x34]],
    ['rdtsc', (a: Assembler) => a.rdtsc(), [0x0f, 0x31]],
    ['iretd', (a: Assembler) => a.iret(), [0xcf]],
    ['pushfd; cli', (a: Assembler) => { a.pushf(); a.cli(); }, [0x9c, 0xfa]],
    // MOV moffs32, EAX = A3 id
    ['mov [0xb8000], eax', (a: Assembler) => a.mov(dword(0xb8000), eax), [0xa3, 0x00, 0x80, 0x0b, 0x00]],
    // JMP ptr16:32 = EA cd cw
    ['jmp 0x10:0x00100020', (a: Assembler) => a.jmpFar(0x10, 0x100020), [0xea, 0x20, 0x00, 0x10, 0x00, 0x10, 0x00]],
  ] as [string, (a: Assembler) => void, number[]][])('%s', (_t, f, want) => {
    expect([...bytesOf(f)]).toEqual(want);
  });
});

/** Decodes one instruction with iced's decoder (not its encoder) into comparable fields. */
function decodeOne(bytes: Uint8Array): { mnemonic: string; regs: IcedRegister[]; imm: number | null; mem: { base: IcedRegister; index: IcedRegister; scale: number; disp: number } | null; length: number } {
  const d = new Decoder(32, bytes, DecoderOptions.None);
  const ins = d.decode();
  try {
    const regs: IcedRegister[] = [];
    let imm: number | null = null;
    let m = null;
    for (let i = 0; i < ins.opCount; i++) {
      const k = ins.opKind(i);
      if (k === OpKind.Register) regs.push(ins.opRegister(i));
      else if (k === OpKind.Memory) m = { base: ins.memoryBase, index: ins.memoryIndex, scale: ins.memoryIndexScale, disp: Number(BigInt.asIntN(32, ins.memoryDisplacement)) };
      else if (k === OpKind.Immediate8 || k === OpKind.Immediate8to32 || k === OpKind.Immediate32) imm = Number(BigInt.asIntN(32, ins.immediate(i)));
    }
    return { mnemonic: ins.isInvalid ? '(bad)' : disassembleAll(bytes.subarray(0, ins.length), 0, 32)[0]!.text.split(' ')[0]!, regs, imm, mem: m, length: ins.length };
  } finally {
    ins.free();
    d.free();
  }
}

const R32: Reg[] = [eax, ecx, edx, ebx, esp, ebp, esi, edi];
const ALU = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp', 'mov'] as const;

describe('encoding, property: every encoding decodes back to its operands', () => {
  it('reg, imm', () => {
    fc.assert(fc.property(fc.constantFrom(...ALU), fc.constantFrom(...R32), fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }), (op, r, v) => {
      const b = bytesOf((a) => a.emit(op, r, v));
      const d = decodeOne(b);
      expect(d.length).toBe(b.length);
      expect(d.mnemonic).toBe(op);
      expect(d.regs).toEqual([r.iced]);
      expect(d.imm).toBe(v);
    }), { numRuns: 300 });
  });

  it('reg, [base + index*scale + disp]', () => {
    const noEsp = R32.filter((r) => r !== esp);
    fc.assert(fc.property(
      fc.constantFrom(...ALU), fc.constantFrom(...R32), fc.option(fc.constantFrom(...R32), { nil: undefined }),
      fc.option(fc.constantFrom(...noEsp), { nil: undefined }), fc.constantFrom(1, 2, 4, 8) as fc.Arbitrary<1 | 2 | 4 | 8>,
      fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff }),
      (op, r, base, index, scale, disp) => {
        const b = bytesOf((a) => a.emit(op, r, dword({ base, index, scale, disp })));
        const d = decodeOne(b);
        expect(d.length).toBe(b.length);
        expect(d.mnemonic).toBe(op);
        expect(d.regs).toEqual([r.iced]);
        expect(d.mem).toEqual({ base: base?.iced ?? IcedRegister.None, index: index?.iced ?? IcedRegister.None, scale: index ? scale : 1, disp });
      },
    ), { numRuns: 300 });
  });
});
