import { describe, expect, it } from 'vitest';
import { Cpu, CS, DS, EAX, EBP, EBX, ECX, EDI, EDX, ES, ESI, ESP, SS, Vec } from '../../src/machine/cpu/cpu.js';
import { unitCostTable } from '../../src/machine/cpu/cost-table.js';
import { AF, CF, DF, OF, PF, SF, ZF } from '../../src/machine/cpu/flags.js';
import { dec, inc } from '../../src/machine/cpu/alu.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';

// ---- a small real-mode machine: code at 0:1000, stack at 0:8000, fault handlers at F000+v ----

const CODE = 0x1000;
const HANDLER = 0xf000;

function machine(): Cpu {
  const cpu = new Cpu(new PhysicalMemory(1 << 20), new PortBus(), unitCostTable(),
    { itlb: new Tlb({ sets: 16, ways: 4 }), dtlb: new Tlb({ sets: 16, ways: 4 }) });
  // IVT: vector v → 0:(F000 + 16v), where a CLC (one of ours) is the first instruction.
  for (let v = 0; v < 32; v++) {
    cpu.mem.write16(v * 4, HANDLER + 16 * v);
    cpu.mem.write16(v * 4 + 2, 0);
    cpu.mem.write8(HANDLER + 16 * v, 0xf8);
  }
  return cpu;
}

interface Setup {
  regs?: Partial<Record<number, number>>;
  flags?: number;
  mem?: [number, number[]][];
  /** Real-mode segment loads: [segment register, selector]. */
  segs?: [number, number][];
}

/** Runs one instruction in real mode; returns the CPU. */
function run(cpu: Cpu, bytes: number[], setup: Setup = {}): Cpu {
  cpu.resetRealMode();
  cpu.r32[ESP] = 0x8000;
  for (const [r, v] of Object.entries(setup.regs ?? {})) cpu.r32[Number(r)] = v!;
  cpu.flags = (setup.flags ?? 0) | 2;
  for (const [seg, sel] of setup.segs ?? []) cpu.loadRealSegment(seg, sel);
  for (const [addr, b] of setup.mem ?? []) b.forEach((x, i) => cpu.mem.write8(addr + i, x));
  bytes.forEach((b, i) => cpu.mem.write8(CODE + i, b));
  cpu.loadRealSegment(CS, 0);
  cpu.eip = CODE;
  cpu.run(1);
  expect(cpu.stopReason).toBeNull();
  return cpu;
}

/** Runs one instruction and expects it to fault with `vector`: the handler's CLC ran. */
function expectFault(cpu: Cpu, bytes: number[], vector: number, setup: Setup = {}): void {
  run(cpu, bytes, { ...setup, flags: (setup.flags ?? 0) | CF });
  // The handler ran (its CLC cleared CF), and the pushed IP is the faulting instruction's.
  expect(cpu.eip).toBe(HANDLER + 16 * vector + 1);
  expect(cpu.flags & CF).toBe(0);
  expect(cpu.mem.read16(0x8000 - 6)).toBe(CODE);
}

const flagsOf = (cpu: Cpu, mask = CF | PF | AF | ZF | SF | OF): number => cpu.flags & mask;

describe('group-1 ALU operations', () => {
  const cpu = machine();

  it('ADD r/m8,r8 sets carry, overflow and auxiliary carry', () => {
    run(cpu, [0x00, 0xc8], { regs: { [EAX]: 0x7f, [ECX]: 0x01 } }); // add al,cl
    expect(cpu.r8[0]).toBe(0x80);
    expect(flagsOf(cpu)).toBe(OF | SF | AF);
    run(cpu, [0x00, 0xc8], { regs: { [EAX]: 0xff, [ECX]: 0x01 } });
    expect(cpu.r8[0]).toBe(0);
    expect(flagsOf(cpu)).toBe(CF | ZF | AF | PF);
  });

  it('ADC and SBB use the incoming carry; 32-bit forms via the 66 prefix', () => {
    run(cpu, [0x66, 0x11, 0xc8], { regs: { [EAX]: -1, [ECX]: 0 }, flags: CF }); // adc eax,ecx
    expect(cpu.r32[EAX]).toBe(0);
    expect(flagsOf(cpu, CF | ZF)).toBe(CF | ZF);
    run(cpu, [0x66, 0x19, 0xc8], { regs: { [EAX]: 0, [ECX]: 0 }, flags: CF }); // sbb eax,ecx
    expect(cpu.r32[EAX]).toBe(-1);
    expect(flagsOf(cpu, CF | SF | ZF | OF)).toBe(CF | SF);
    run(cpu, [0x66, 0x29, 0xc8], { regs: { [EAX]: -0x80000000, [ECX]: 1 } }); // sub eax,ecx
    expect(cpu.r32[EAX]).toBe(0x7fffffff);
    expect(flagsOf(cpu, CF | OF | SF)).toBe(OF);
  });

  it('memory destination and memory source forms', () => {
    run(cpu, [0x01, 0x07], { regs: { [EBX]: 0x2000, [EAX]: 0x1234 }, mem: [[0x2000, [0xff, 0xff]]] }); // add [bx],ax
    expect(cpu.mem.read16(0x2000)).toBe(0x1233);
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0x2b, 0x07], { regs: { [EBX]: 0x2000, [EAX]: 5 }, mem: [[0x2000, [7, 0]]] }); // sub ax,[bx]
    expect(cpu.r16[0]).toBe(0xfffe);
    expect(cpu.flags & CF).toBe(CF);
  });

  it('CMP and TEST change flags only', () => {
    run(cpu, [0x39, 0x07], { regs: { [EBX]: 0x2000, [EAX]: 1 }, mem: [[0x2000, [2, 0]]] }); // cmp [bx],ax
    expect(cpu.mem.read16(0x2000)).toBe(2);
    expect(cpu.r16[0]).toBe(1);
    expect(flagsOf(cpu, CF | ZF)).toBe(0);
    run(cpu, [0x3c, 0x80], { regs: { [EAX]: 0x80 } }); // cmp al,80
    expect(flagsOf(cpu, CF | ZF)).toBe(ZF);
    run(cpu, [0x85, 0xc8], { regs: { [EAX]: 0xf0f0, [ECX]: 0x0f0f }, flags: CF | OF }); // test ax,cx
    expect(cpu.r16[0]).toBe(0xf0f0);
    expect(flagsOf(cpu)).toBe(ZF | PF);
    run(cpu, [0xa9, 0x00, 0x80], { regs: { [EAX]: 0x8000 } }); // test ax,8000
    expect(flagsOf(cpu, SF | ZF)).toBe(SF);
  });

  it('AND/OR/XOR clear CF and OF', () => {
    run(cpu, [0x66, 0x25, 0x00, 0x00, 0x00, 0x80], { regs: { [EAX]: -1 }, flags: CF | OF }); // and eax,80000000
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(flagsOf(cpu, CF | OF | SF | ZF)).toBe(SF);
    run(cpu, [0x0c, 0x01], { regs: { [EAX]: 0x10 }, flags: CF }); // or al,1
    expect(cpu.r8[0]).toBe(0x11);
    expect(flagsOf(cpu, CF | PF)).toBe(PF);
    run(cpu, [0x32, 0xe4], { regs: { [EAX]: 0x5500 } }); // xor ah,ah
    expect(cpu.r8[1]).toBe(0);
    expect(flagsOf(cpu, ZF)).toBe(ZF);
  });

  it('group 1 immediates: 80, 81, 82 (alias), 83 sign-extends', () => {
    run(cpu, [0x80, 0xc4, 0x01], { regs: { [EAX]: 0xff00 } }); // add ah,1
    expect(cpu.r16[0]).toBe(0x0000);
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0x82, 0xe8, 0x01], { regs: { [EAX]: 0 } }); // sub al,1 (82 alias)
    expect(cpu.r8[0]).toBe(0xff);
    run(cpu, [0x83, 0xc0, 0xff], { regs: { [EAX]: 5 } }); // add ax,-1
    expect(cpu.r16[0]).toBe(4);
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0x66, 0x83, 0xf8, 0xff], { regs: { [EAX]: -1 } }); // cmp eax,-1
    expect(flagsOf(cpu, ZF | CF)).toBe(ZF);
    run(cpu, [0x66, 0x81, 0x37, 0x78, 0x56, 0x34, 0x12], // xor dword [bx],12345678
      { regs: { [EBX]: 0x3000 }, mem: [[0x3000, [0x78, 0x56, 0x34, 0x12]]] });
    expect(cpu.mem.read32(0x3000)).toBe(0);
    expect(flagsOf(cpu, ZF)).toBe(ZF);
  });

  it('runs in 32-bit protected mode too (no prefix needed)', () => {
    const cpu = machine();
    cpu.resetFlat32(0x4000);
    [0x01, 0xd8].forEach((b, i) => cpu.mem.write8(0x4000 + i, b)); // add eax,ebx
    cpu.r32[EAX] = 0x7fffffff;
    cpu.r32[EBX] = 1;
    cpu.run(1);
    expect(cpu.stopReason).toBeNull();
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(flagsOf(cpu, OF | SF | CF)).toBe(OF | SF);
    expect(cpu.eip).toBe(0x4002);
  });
});

describe('INC and DEC', () => {
  const cpu = machine();

  it('keep CF and set OF at the signed boundary', () => {
    run(cpu, [0x40], { regs: { [EAX]: 0x7fff }, flags: CF }); // inc ax
    expect(cpu.r16[0]).toBe(0x8000);
    expect(flagsOf(cpu)).toBe(CF | OF | SF | AF | PF);
    run(cpu, [0x66, 0x4b], { regs: { [EBX]: -0x80000000 } }); // dec ebx
    expect(cpu.r32[EBX]).toBe(0x7fffffff);
    expect(flagsOf(cpu)).toBe(OF | AF | PF);
    run(cpu, [0xfe, 0x07], { regs: { [EBX]: 0x2000 }, mem: [[0x2000, [0xff]]] }); // inc byte [bx]
    expect(cpu.mem.read8(0x2000)).toBe(0);
    expect(flagsOf(cpu, ZF | CF)).toBe(ZF);
    run(cpu, [0xfe, 0xcc], { regs: { [EAX]: 0 } }); // dec ah
    expect(cpu.r8[1]).toBe(0xff);
  });

  it('exported inc/dec helpers truncate and leave CF', () => {
    const c = machine();
    c.flags = 2 | CF;
    expect(inc(c, 0xff, 8)).toBe(0);
    expect(c.flags & (CF | ZF)).toBe(CF | ZF);
    expect(dec(c, 0, 16)).toBe(0xffff);
    expect(inc(c, -1, 32)).toBe(0);
    expect(dec(c, 0, 32)).toBe(-1);
    expect(c.flags & CF).toBe(CF);
  });

  it('FE with /reg other than 0 or 1 is #UD', () => {
    expectFault(cpu, [0xfe, 0xd0], Vec.UD);
  });
});

describe('multiplication and division', () => {
  const cpu = machine();

  it('MUL and IMUL set CF=OF when the high half is significant', () => {
    run(cpu, [0xf6, 0xe1], { regs: { [EAX]: 0x10, [ECX]: 0x10 } }); // mul cl
    expect(cpu.r16[0]).toBe(0x100);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF);
    run(cpu, [0xf6, 0xe9], { regs: { [EAX]: 0xff, [ECX]: 0x02 } }); // imul cl: -1*2
    expect(cpu.r16[0]).toBe(0xfffe);
    expect(flagsOf(cpu, CF | OF)).toBe(0);
    run(cpu, [0xf7, 0xe3], { regs: { [EAX]: 0xffff, [EBX]: 0xffff, [EDX]: 0x1234 } }); // mul bx
    expect(cpu.r16[0]).toBe(0x0001);
    expect(cpu.r16[EDX << 1]).toBe(0xfffe);
    run(cpu, [0x66, 0xf7, 0xeb], { regs: { [EAX]: -2, [EBX]: 3 } }); // imul ebx
    expect(cpu.r32[EAX]).toBe(-6);
    expect(cpu.r32[EDX]).toBe(-1);
    expect(flagsOf(cpu, CF | OF)).toBe(0);
  });

  it('MUL/IMUL undefined flags: SF ZF PF from the low half, AF = 0 (documented rule)', () => {
    run(cpu, [0xf6, 0xe1], { regs: { [EAX]: 0x10, [ECX]: 0x10 }, flags: AF }); // 0x0100: AL = 0
    expect(flagsOf(cpu, SF | ZF | PF | AF)).toBe(ZF | PF);
  });

  it('IMUL two- and three-operand forms truncate and flag overflow', () => {
    run(cpu, [0x0f, 0xaf, 0xc3], { regs: { [EAX]: 0x100, [EBX]: 0x100 } }); // imul ax,bx
    expect(cpu.r16[0]).toBe(0);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF);
    run(cpu, [0x6b, 0xc3, 0xfd], { regs: { [EBX]: 7 } }); // imul ax,bx,-3
    expect(cpu.r16[0]).toBe(0x10000 - 21);
    expect(flagsOf(cpu, CF | OF)).toBe(0);
    run(cpu, [0x66, 0x69, 0xc3, 0x00, 0x00, 0x01, 0x00], { regs: { [EBX]: 0x10000 } }); // imul eax,ebx,10000h
    expect(cpu.r32[EAX]).toBe(0);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF);
    run(cpu, [0x66, 0x0f, 0xaf, 0xc3], { regs: { [EAX]: -0x8000, [EBX]: 0x10000 } }); // -2^31 fits
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(flagsOf(cpu, CF | OF)).toBe(0);
  });

  it('DIV and IDIV compute quotient and remainder', () => {
    run(cpu, [0xf6, 0xf3], { regs: { [EAX]: 1000, [EBX]: 7 } }); // div bl
    expect(cpu.r8[0]).toBe(142);
    expect(cpu.r8[1]).toBe(6);
    run(cpu, [0xf6, 0xfb], { regs: { [EAX]: 0xff80, [EBX]: 1 } }); // idiv bl: -128/1 fits
    expect(cpu.r8[0]).toBe(0x80);
    expect(cpu.r8[1]).toBe(0);
    run(cpu, [0xf7, 0xfb], { regs: { [EAX]: 0xfff9, [EDX]: 0xffff, [EBX]: 2 } }); // idiv bx: -7/2
    expect(cpu.r16[0]).toBe(0xfffd); // -3
    expect(cpu.r16[EDX << 1]).toBe(0xffff); // -1: the remainder has the dividend's sign
    run(cpu, [0x66, 0xf7, 0xf3], { regs: { [EAX]: 0, [EDX]: 1, [EBX]: 2 } }); // div ebx: 2^32/2
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(cpu.r32[EDX]).toBe(0);
  });

  it('#DE on divide by zero and on quotient overflow, with no state change', () => {
    expectFault(cpu, [0xf6, 0xf3], Vec.DE, { regs: { [EAX]: 5, [EBX]: 0 } });
    expect(cpu.r16[0]).toBe(5);
    expectFault(cpu, [0xf6, 0xf3], Vec.DE, { regs: { [EAX]: 0x100, [EBX]: 1 } }); // 256/1 > 255
    expect(cpu.r16[0]).toBe(0x100);
    expectFault(cpu, [0xf6, 0xfb], Vec.DE, { regs: { [EAX]: 0x80, [EBX]: 1 } }); // +128/1 > 127
    expectFault(cpu, [0x66, 0xf7, 0xfb], Vec.DE, { regs: { [EAX]: 0, [EDX]: -0x80000000, [EBX]: -1 } });
    expectFault(cpu, [0x66, 0xf7, 0xfb], Vec.DE, { regs: { [EAX]: -0x80000000, [EDX]: -1, [EBX]: -1 } }); // -2^31 / -1
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expectFault(cpu, [0x66, 0xf7, 0xf3], Vec.DE, { regs: { [EAX]: 0, [EDX]: 3, [EBX]: 3 } });
  });

  it('IDIV accepts the most negative quotient', () => {
    run(cpu, [0x66, 0xf7, 0xfb], { regs: { [EAX]: -0x80000000, [EDX]: -1, [EBX]: 1 } });
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(cpu.r32[EDX]).toBe(0);
  });

  it('NEG and NOT', () => {
    run(cpu, [0xf7, 0xd8], { regs: { [EAX]: 1 } }); // neg ax
    expect(cpu.r16[0]).toBe(0xffff);
    expect(flagsOf(cpu, CF | SF)).toBe(CF | SF);
    run(cpu, [0xf6, 0xd8], { regs: { [EAX]: 0 }, flags: CF }); // neg al, 0
    expect(flagsOf(cpu, CF | ZF)).toBe(ZF);
    run(cpu, [0xf6, 0xd8], { regs: { [EAX]: 0x80 } });
    expect(cpu.r8[0]).toBe(0x80);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF);
    run(cpu, [0x66, 0xf7, 0xd0], { regs: { [EAX]: 0x0f0f0f0f }, flags: CF | ZF }); // not eax
    expect(cpu.r32[EAX]).toBe(~0x0f0f0f0f);
    expect(flagsOf(cpu)).toBe(CF | ZF); // NOT changes no flags
  });
});

describe('shifts and rotates', () => {
  const cpu = machine();

  it('a count of 0 (after masking to 5 bits) changes nothing, not even flags', () => {
    run(cpu, [0xd2, 0xe0], { regs: { [EAX]: 0x81, [ECX]: 0x20 }, flags: CF | OF | ZF }); // shl al,cl; cl=32
    expect(cpu.r8[0]).toBe(0x81);
    expect(flagsOf(cpu)).toBe(CF | OF | ZF);
    run(cpu, [0xc0, 0xc8, 0x00], { regs: { [EAX]: 0x81 }, flags: SF }); // ror al,0
    expect(flagsOf(cpu)).toBe(SF);
  });

  it('SHL/SHR/SAR by one set CF and OF', () => {
    run(cpu, [0xd0, 0xe0], { regs: { [EAX]: 0xc0 } }); // shl al,1
    expect(cpu.r8[0]).toBe(0x80);
    expect(flagsOf(cpu, CF | OF | SF)).toBe(CF | SF); // OF = MSB ^ CF = 0
    run(cpu, [0xd0, 0xe0], { regs: { [EAX]: 0x40 } });
    expect(flagsOf(cpu, CF | OF)).toBe(OF);
    run(cpu, [0xd1, 0xe8], { regs: { [EAX]: 0x8001 } }); // shr ax,1
    expect(cpu.r16[0]).toBe(0x4000);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF); // OF = original MSB
    run(cpu, [0x66, 0xd1, 0xf8], { regs: { [EAX]: -3 } }); // sar eax,1
    expect(cpu.r32[EAX]).toBe(-2);
    expect(flagsOf(cpu, CF | OF)).toBe(CF);
  });

  it('SAR by 31 or more fills with the sign; SHR by more than the width gives 0', () => {
    run(cpu, [0xc0, 0xf8, 0x1f], { regs: { [EAX]: 0x80 } }); // sar al,31
    expect(cpu.r8[0]).toBe(0xff);
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0xc1, 0xe8, 0x11], { regs: { [EAX]: 0xffff } }); // shr ax,17
    expect(cpu.r16[0]).toBe(0);
    expect(cpu.flags & ZF).toBe(ZF);
  });

  it('ROL/ROR change only CF and OF; rotating by the width still sets CF', () => {
    run(cpu, [0xd0, 0xc0], { regs: { [EAX]: 0x81 }, flags: ZF | SF }); // rol al,1
    expect(cpu.r8[0]).toBe(0x03);
    expect(flagsOf(cpu)).toBe(CF | OF | ZF | SF);
    run(cpu, [0xc0, 0xc0, 0x08], { regs: { [EAX]: 0x01 } }); // rol al,8
    expect(cpu.r8[0]).toBe(0x01);
    expect(flagsOf(cpu, CF)).toBe(CF);
    run(cpu, [0x66, 0xc1, 0xc8, 0x04], { regs: { [EAX]: 0x12345678 } }); // ror eax,4
    expect(cpu.r32[EAX]).toBe(0x81234567 | 0);
    expect(flagsOf(cpu, CF)).toBe(CF);
  });

  it('RCL/RCR rotate through CF, with count mod 9 for bytes and mod 17 for words', () => {
    run(cpu, [0xd0, 0xd0], { regs: { [EAX]: 0x80 }, flags: CF }); // rcl al,1
    expect(cpu.r8[0]).toBe(0x01);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF);
    run(cpu, [0xc0, 0xd0, 0x09], { regs: { [EAX]: 0x5a }, flags: CF }); // rcl al,9: identity
    expect(cpu.r8[0]).toBe(0x5a);
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0xc1, 0xd8, 0x11], { regs: { [EAX]: 0x1234 } }); // rcr ax,17: identity
    expect(cpu.r16[0]).toBe(0x1234);
    run(cpu, [0x66, 0xd1, 0xd8], { regs: { [EAX]: 1 }, flags: CF }); // rcr eax,1
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expect(flagsOf(cpu, CF | OF)).toBe(CF | OF);
  });

  it('SHLD/SHRD shift in bits from the second operand', () => {
    run(cpu, [0x66, 0x0f, 0xa4, 0xd8, 0x08], { regs: { [EAX]: 0x11223344, [EBX]: 0xaabbccdd | 0 } }); // shld eax,ebx,8
    expect(cpu.r32[EAX]).toBe(0x223344aa);
    expect(cpu.flags & CF).toBe(CF); // last bit out: bit 24 of 0x11223344 = 1
    run(cpu, [0x0f, 0xad, 0xd8], { regs: { [EAX]: 0x1234, [EBX]: 0xabcd, [ECX]: 4 } }); // shrd ax,bx,cl
    expect(cpu.r16[0]).toBe(0xd123);
    expect(cpu.flags & CF).toBe(0);
    run(cpu, [0x0f, 0xa5, 0xd8], { regs: { [EAX]: 0x1234, [EBX]: 0xabcd, [ECX]: 0x20 }, flags: ZF }); // count 0
    expect(cpu.r16[0]).toBe(0x1234);
    expect(flagsOf(cpu)).toBe(ZF);
  });
});

describe('bit operations', () => {
  const cpu = machine();

  it('BT/BTS/BTR/BTC with a register operand use the offset modulo the width', () => {
    run(cpu, [0x0f, 0xa3, 0xc8], { regs: { [EAX]: 0x0008, [ECX]: 0x13 } }); // bt ax,cx (bit 3)
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0x66, 0x0f, 0xab, 0xc8], { regs: { [EAX]: 0, [ECX]: 33 } }); // bts eax,ecx
    expect(cpu.r32[EAX]).toBe(2);
    expect(cpu.flags & CF).toBe(0);
    run(cpu, [0x66, 0x0f, 0xb3, 0xc8], { regs: { [EAX]: -1, [ECX]: 31 } }); // btr eax,ecx
    expect(cpu.r32[EAX]).toBe(0x7fffffff);
    expect(cpu.flags & CF).toBe(CF);
    run(cpu, [0x0f, 0xbb, 0xc8], { regs: { [EAX]: 0x8000, [ECX]: 15 } }); // btc ax,cx
    expect(cpu.r16[0]).toBe(0);
  });

  it('a register bit offset with memory addresses the bit string, negative offsets too', () => {
    // bts word [bx],cx with cx = 35: word at bx+4, bit 3
    run(cpu, [0x0f, 0xab, 0x0f], { regs: { [EBX]: 0x2000, [ECX]: 35 }, mem: [[0x2000, [0, 0, 0, 0, 0, 0]]] });
    expect(cpu.mem.read16(0x2004)).toBe(8);
    expect(cpu.mem.read16(0x2000)).toBe(0);
    // bt dword [bx],ecx with ecx = -1: bit 31 of the dword at bx-4
    run(cpu, [0x66, 0x0f, 0xa3, 0x0f], { regs: { [EBX]: 0x2010, [ECX]: -1 }, mem: [[0x200c, [0, 0, 0, 0x80]]] });
    expect(cpu.flags & CF).toBe(CF);
    // btr word [bx],cx with cx = -16: word at bx-2, bit 0
    run(cpu, [0x0f, 0xb3, 0x0f], { regs: { [EBX]: 0x2010, [ECX]: 0xfff0 }, mem: [[0x200e, [0xff, 0xff]]] });
    expect(cpu.mem.read16(0x200e)).toBe(0xfffe);
    expect(cpu.flags & CF).toBe(CF);
  });

  it('group 8 (0F BA) takes an immediate offset masked to the width; /0–/3 are #UD', () => {
    run(cpu, [0x0f, 0xba, 0x2f, 0x11], { regs: { [EBX]: 0x2000 }, mem: [[0x2000, [0, 0, 0, 0]]] }); // bts word [bx],17
    expect(cpu.mem.read16(0x2000)).toBe(2);
    expect(cpu.mem.read16(0x2002)).toBe(0);
    run(cpu, [0x66, 0x0f, 0xba, 0xf8, 0x3f], { regs: { [EAX]: 0 } }); // btc eax,63 → bit 31
    expect(cpu.r32[EAX]).toBe(-0x80000000);
    expectFault(cpu, [0x0f, 0xba, 0xc0, 0x01], Vec.UD);
  });

  it('BSF/BSR find the lowest/highest set bit; source 0 sets ZF and keeps the destination', () => {
    run(cpu, [0x66, 0x0f, 0xbc, 0xc3], { regs: { [EBX]: 0x00f0_0000 } }); // bsf eax,ebx
    expect(cpu.r32[EAX]).toBe(20);
    expect(cpu.flags & ZF).toBe(0);
    run(cpu, [0x66, 0x0f, 0xbd, 0xc3], { regs: { [EBX]: 0x00f0_0000 } }); // bsr eax,ebx
    expect(cpu.r32[EAX]).toBe(23);
    run(cpu, [0x66, 0x0f, 0xbd, 0xc3], { regs: { [EAX]: 0x1234, [EBX]: 0 } });
    expect(cpu.r32[EAX]).toBe(0x1234);
    expect(cpu.flags & ZF).toBe(ZF);
    run(cpu, [0x0f, 0xbc, 0xc3], { regs: { [EBX]: 0x8000 } }); // bsf ax,bx
    expect(cpu.r16[0]).toBe(15);
  });

  it('BSWAP reverses the bytes of a 32-bit register', () => {
    run(cpu, [0x66, 0x0f, 0xcb], { regs: { [EBX]: 0x11223344 } });
    expect(cpu.r32[EBX]).toBe(0x44332211);
    run(cpu, [0x66, 0x0f, 0xc8], { regs: { [EAX]: 0x80000001 | 0 } });
    expect(cpu.r32[EAX]).toBe(0x01000080);
  });
});

describe('conditional and atomic instructions', () => {
  const cpu = machine();

  it('SETcc writes 0 or 1', () => {
    run(cpu, [0x0f, 0x94, 0xc0], { regs: { [EAX]: 0xff }, flags: ZF }); // sete al
    expect(cpu.r8[0]).toBe(1);
    run(cpu, [0x0f, 0x9c, 0x07], { regs: { [EBX]: 0x2000 }, flags: SF, mem: [[0x2000, [7]]] }); // setl [bx]
    expect(cpu.mem.read8(0x2000)).toBe(1);
    run(cpu, [0x0f, 0x97, 0xc4], { regs: { [EAX]: 0xff00 }, flags: CF }); // seta ah
    expect(cpu.r8[1]).toBe(0);
  });

  it('CMOVcc moves only when the condition holds, but always reads the source', () => {
    run(cpu, [0x66, 0x0f, 0x44, 0xc3], { regs: { [EAX]: 1, [EBX]: 2 }, flags: ZF }); // cmove eax,ebx
    expect(cpu.r32[EAX]).toBe(2);
    run(cpu, [0x66, 0x0f, 0x44, 0xc3], { regs: { [EAX]: 1, [EBX]: 2 } });
    expect(cpu.r32[EAX]).toBe(1);
    // cmove ax,[bx] with bx = FFFF: the word crosses the segment limit → #GP even when false.
    expectFault(cpu, [0x0f, 0x44, 0x07], Vec.GP, { regs: { [EBX]: 0xffff } });
  });

  it('CMPXCHG exchanges on equality, else loads the accumulator', () => {
    run(cpu, [0x0f, 0xb1, 0x0f], { regs: { [EAX]: 5, [EBX]: 0x2000, [ECX]: 9 }, mem: [[0x2000, [5, 0]]] });
    expect(cpu.mem.read16(0x2000)).toBe(9);
    expect(cpu.flags & ZF).toBe(ZF);
    run(cpu, [0x0f, 0xb1, 0x0f], { regs: { [EAX]: 4, [EBX]: 0x2000, [ECX]: 9 }, mem: [[0x2000, [5, 0]]] });
    expect(cpu.mem.read16(0x2000)).toBe(5);
    expect(cpu.r16[0]).toBe(5);
    expect(flagsOf(cpu, ZF | CF)).toBe(CF); // CMP 4,5 borrows
    run(cpu, [0x0f, 0xb0, 0xd9], { regs: { [EAX]: 0x77, [ECX]: 0x77, [EBX]: 0x33 } }); // cmpxchg cl,bl
    expect(cpu.r8[ECX << 2]).toBe(0x33);
  });

  it('CMPXCHG8B compares EDX:EAX with m64', () => {
    const m = [0x2000, [1, 0, 0, 0, 2, 0, 0, 0]] as [number, number[]];
    run(cpu, [0x0f, 0xc7, 0x0f], { regs: { [EBX]: 0x2000, [EAX]: 1, [EDX]: 2, [ECX]: 0x22 }, mem: [m] });
    // ECX:EBX is stored: EBX = 0x2000 (the address register itself), ECX = 0x22
    expect(cpu.mem.read32(0x2000)).toBe(0x2000);
    expect(cpu.mem.read32(0x2004)).toBe(0x22);
    expect(cpu.flags & ZF).toBe(ZF);
    run(cpu, [0x0f, 0xc7, 0x0f], { regs: { [EBX]: 0x2000, [EAX]: 1, [EDX]: 3 }, mem: [m], flags: ZF | CF });
    expect(cpu.r32[EAX]).toBe(1);
    expect(cpu.r32[EDX]).toBe(2);
    expect(flagsOf(cpu, ZF | CF)).toBe(CF);
    expectFault(cpu, [0x0f, 0xc7, 0xc8], Vec.UD); // register form
    expectFault(cpu, [0x0f, 0xc7, 0x07], Vec.UD, { regs: { [EBX]: 0x2000 } }); // /0
  });

  it('XADD exchanges and adds', () => {
    run(cpu, [0x66, 0x0f, 0xc1, 0x07], { regs: { [EBX]: 0x2000, [EAX]: 5 }, mem: [[0x2000, [10, 0, 0, 0]]] });
    expect(cpu.mem.read32(0x2000)).toBe(15);
    expect(cpu.r32[EAX]).toBe(10);
    run(cpu, [0x0f, 0xc0, 0xc0], { regs: { [EAX]: 0x21 } }); // xadd al,al
    expect(cpu.r8[0]).toBe(0x42);
  });
});

describe('LOCK prefix', () => {
  const cpu = machine();

  it('is allowed on a read-modify-write with a memory destination', () => {
    run(cpu, [0xf0, 0x01, 0x07], { regs: { [EBX]: 0x2000, [EAX]: 1 }, mem: [[0x2000, [1, 0]]] });
    expect(cpu.mem.read16(0x2000)).toBe(2);
    run(cpu, [0xf0, 0x0f, 0xab, 0x0f], { regs: { [EBX]: 0x2000, [ECX]: 1 }, mem: [[0x2000, [0, 0]]] }); // lock bts
    expect(cpu.mem.read16(0x2000)).toBe(2);
  });

  it('raises #UD on a register destination or a non-lockable instruction', () => {
    expectFault(cpu, [0xf0, 0x01, 0xc0], Vec.UD, { regs: { [EAX]: 1 } }); // lock add ax,ax
    expect(cpu.r16[0]).toBe(1);
    expectFault(cpu, [0xf0, 0x03, 0x07], Vec.UD, { regs: { [EBX]: 0x2000 } }); // lock add ax,[bx]
    expectFault(cpu, [0xf0, 0x39, 0x07], Vec.UD, { regs: { [EBX]: 0x2000 } }); // lock cmp [bx],ax
    expectFault(cpu, [0xf0, 0x0f, 0xa3, 0x07], Vec.UD, { regs: { [EBX]: 0x2000 } }); // lock bt [bx],ax
    expectFault(cpu, [0xf0, 0xd1, 0x27], Vec.UD, { regs: { [EBX]: 0x2000 } }); // lock shl word [bx],1
    expectFault(cpu, [0xf0, 0x40], Vec.UD); // lock inc ax
    expectFault(cpu, [0xf0, 0xf6, 0x27], Vec.UD, { regs: { [EBX]: 0x2000 } }); // lock mul byte [bx]
  });
});

describe('BCD adjusts, conversions and flag instructions', () => {
  const cpu = machine();

  it('DAA and DAS adjust packed BCD', () => {
    run(cpu, [0x27], { regs: { [EAX]: 0xae } }); // 79 + 35 = AE → 14, carry
    expect(cpu.r8[0]).toBe(0x14);
    expect(flagsOf(cpu, CF | AF)).toBe(CF | AF);
    run(cpu, [0x27], { regs: { [EAX]: 0x32 }, flags: AF }); // 19 + 19 = 32 with AF → 38
    expect(cpu.r8[0]).toBe(0x38);
    expect(flagsOf(cpu, CF)).toBe(0);
    run(cpu, [0x2f], { regs: { [EAX]: 0xee }, flags: CF }); // 35 − 47 = EE, borrow → 88
    expect(cpu.r8[0]).toBe(0x88);
    expect(flagsOf(cpu, CF | AF)).toBe(CF | AF);
  });

  it('AAA and AAS adjust unpacked BCD (AX ± 106h, as since the 286)', () => {
    run(cpu, [0x37], { regs: { [EAX]: 0x010f } });
    expect(cpu.r16[0]).toBe(0x0205);
    expect(flagsOf(cpu, CF | AF)).toBe(CF | AF);
    run(cpu, [0x37], { regs: { [EAX]: 0x00fa } }); // AL + 6 carries into AH
    expect(cpu.r16[0]).toBe(0x0200);
    run(cpu, [0x37], { regs: { [EAX]: 0x0345 } });
    expect(cpu.r16[0]).toBe(0x0305);
    expect(flagsOf(cpu, CF | AF)).toBe(0);
    run(cpu, [0x3f], { regs: { [EAX]: 0x0205 }, flags: AF });
    expect(cpu.r16[0]).toBe(0x000f); // AX − 106h = 00FF, then AL &= 0F
    expect(flagsOf(cpu, CF | AF)).toBe(CF | AF);
  });

  it('AAM and AAD divide and multiply by the immediate base; AAM 0 is #DE', () => {
    run(cpu, [0xd4, 0x0a], { regs: { [EAX]: 0x4f } }); // 79 → 07 09
    expect(cpu.r16[0]).toBe(0x0709);
    run(cpu, [0xd5, 0x0a], { regs: { [EAX]: 0x0709 } });
    expect(cpu.r16[0]).toBe(79);
    run(cpu, [0xd5, 0x10], { regs: { [EAX]: 0x0f0f } });
    expect(cpu.r16[0]).toBe(0xff);
    expect(flagsOf(cpu, SF | ZF)).toBe(SF);
    expectFault(cpu, [0xd4, 0x00], Vec.DE, { regs: { [EAX]: 0x1234 } });
    expect(cpu.r16[0]).toBe(0x1234);
  });

  it('CBW/CWDE and CWD/CDQ sign-extend', () => {
    run(cpu, [0x98], { regs: { [EAX]: 0x1280 } });
    expect(cpu.r16[0]).toBe(0xff80);
    run(cpu, [0x66, 0x98], { regs: { [EAX]: 0x8000 } });
    expect(cpu.r32[EAX]).toBe(-0x8000);
    run(cpu, [0x99], { regs: { [EAX]: 0x8000, [EDX]: 0x12340000 } });
    expect(cpu.r32[EDX]).toBe(0x1234ffff);
    run(cpu, [0x66, 0x99], { regs: { [EAX]: 0x7fffffff, [EDX]: -1 } });
    expect(cpu.r32[EDX]).toBe(0);
  });

  it('SAHF/LAHF move SF ZF AF PF CF through AH', () => {
    run(cpu, [0x9e], { regs: { [EAX]: 0xff00 }, flags: OF | DF });
    expect(cpu.flags).toBe(SF | ZF | AF | PF | CF | OF | DF | 2);
    run(cpu, [0x9f], { flags: SF | CF | OF });
    expect(cpu.r8[1]).toBe(SF | CF | 2);
  });

  it('CMC CLC STC CLD STD SALC', () => {
    run(cpu, [0xf5], { flags: CF | ZF });
    expect(cpu.flags).toBe(ZF | 2);
    run(cpu, [0xf9]);
    expect(cpu.flags).toBe(CF | 2);
    run(cpu, [0xf8], { flags: CF | SF });
    expect(cpu.flags).toBe(SF | 2);
    run(cpu, [0xfd]);
    expect(cpu.flags & DF).toBe(DF);
    run(cpu, [0xfc], { flags: DF });
    expect(cpu.flags & DF).toBe(0);
    run(cpu, [0xd6], { regs: { [EAX]: 0x1200 }, flags: CF });
    expect(cpu.r16[0]).toBe(0x12ff);
  });

  it('addresses memory through the segment it is given', () => {
    // add byte [es:di],al with ES = 200h: linear 2010h
    run(cpu, [0x26, 0x00, 0x05], { regs: { [EDI]: 0x10, [EAX]: 3 }, segs: [[ES, 0x200]], mem: [[0x2010, [4]]] });
    expect(cpu.mem.read8(0x2010)).toBe(7);
    // sub word [bp+si],ax defaults to SS (base 300h × 16)
    run(cpu, [0x29, 0x02], { regs: { [EBP]: 0x8, [ESI]: 0x2, [EAX]: 1 }, segs: [[SS, 0x300], [DS, 0x100]],
      mem: [[0x300a, [0, 1]], [0x100a, [0, 1]]] });
    expect(cpu.mem.read16(0x300a)).toBe(0xff);
    expect(cpu.mem.read16(0x100a)).toBe(0x100);
  });
});
