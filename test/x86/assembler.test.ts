import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { imageFromAssembly, type GuestImage } from '../../src/guest/image.js';
import { toMultibootElf } from '../../src/guest/image-elf.js';
import { EAX, EBP, EBX, EDX } from '../../src/machine/cpu/constants.js';
import { Machine, type RunOutcome } from '../../src/machine/machine.js';
import { loadProfile } from '../../src/profiles/index.js';
import { AsmError, Assembler } from '../../src/x86/assembler.js';
import {
  al, ax, bx, cr0, cr3, dword, eax, ebp, ebx, ecx, edi, edx, esi, esp, mem, ptr, word, type Reg,
} from '../../src/x86/operands.js';
import { disassembleAll } from '../../src/x86/pvop.js';

const profile = loadProfile().profile;

function asmError(f: () => unknown): AsmError {
  try { f(); } catch (e) { if (e instanceof AsmError) return e; throw e; }
  throw new Error('expected an AsmError');
}

/** Boots an image through the Multiboot ELF export on a virtlab Machine. */
function boot(image: GuestImage, maxInstructions = 1_000_000): { m: Machine; out: RunOutcome; console: string } {
  const m = new Machine({ profile, memoryMiB: 16 });
  m.loadMultiboot(toMultibootElf(image), image.name + '.elf');
  const out = m.run({ maxInstructions });
  return { m, out, console: m.console.text() };
}

/** Ends a program: exit code `code` through port 0xF4. */
function exit(a: Assembler, code = 0): void {
  a.mov(al, code);
  a.out(0xf4, al);
}

describe('labels, branches and layout', () => {
  it('resolves forward and backward references and picks short or near branches', () => {
    const a = new Assembler({ origin: 0x1000 });
    const fwd = a.label('fwd');
    const top = a.here('top');
    a.jmp(fwd); // forward, near: 200 bytes of NOPs in between
    for (let i = 0; i < 200; i++) a.nop();
    a.bind(fwd);
    a.jnz(top); // backward, beyond -128: near
    const near = a.here('near');
    a.jz(near); // backward to itself: short
    const r = a.build();
    const code = r.sections[0]!.bytes;
    expect(r.address(top)).toBe(0x1000);
    // E9 rel32: target 0x1000+5+200 = 0x10cd; rel = 0x10cd - 0x1005 = 200
    expect([...code.subarray(0, 5)]).toEqual([0xe9, 200, 0, 0, 0]);
    expect(r.address(fwd)).toBe(0x1000 + 5 + 200);
    // 0F 85 rel32 back to 0x1000 from the end of the 6-byte jnz
    const jnzAt = 5 + 200;
    expect([...code.subarray(jnzAt, jnzAt + 2)]).toEqual([0x0f, 0x85]);
    expect(new DataView(code.buffer).getInt32(jnzAt + 2, true)).toBe(0x1000 - (0x1000 + jnzAt + 6));
    expect([...code.subarray(jnzAt + 6)]).toEqual([0x74, 0xfe]);
  });

  it('keeps a branch short exactly up to +127 and grows it at +128', () => {
    for (const [gap, long] of [[127, false], [128, true]] as const) {
      const a = new Assembler({ origin: 0 });
      const t = a.label();
      a.jmp(t);
      a.zero(0); // no-op
      for (let i = 0; i < gap; i++) a.nop();
      a.bind(t);
      a.ret();
      expect(a.build().sections[0]!.bytes[0]).toBe(long ? 0xe9 : 0xeb);
    }
  });

  it('relaxes chains where growing one branch pushes another out of range', () => {
    const a = new Assembler({ origin: 0 });
    const end = a.label();
    const labels = Array.from({ length: 40 }, () => a.label());
    for (const l of labels) a.jmp(l);
    for (let i = 0; i < 40; i++) { a.bind(labels[i]!); for (let k = 0; k < 3; k++) a.nop(); a.jmp(end); }
    a.bind(end);
    a.ret();
    const r = a.build();
    // Every branch reaches its label: decode and compare targets.
    const text = disassembleAll(r.sections[0]!.bytes, 0, 32).filter((l) => l.text.startsWith('jmp'));
    const targets = text.slice(0, 40).map((l) => parseInt(l.text.replace(/^jmp (short )?/, '').replace(/h$/, ''), 16));
    expect(targets).toEqual(labels.map((l) => r.address(l)));
  });

  it('aligns with NOPs in code and zeros in data, and lays out sections at their origins', () => {
    const a = new Assembler({ origin: 0xc0100000, loadAddress: 0x100000 });
    a.nop();
    a.align(16);
    const f = a.here('f');
    a.ret();
    a.section('data');
    a.db(1);
    a.align(8);
    const d = a.here('d');
    a.dd(f, f.plus(4), f.phys(), d.minus(f));
    a.dw(0x1234);
    a.section('bss');
    const buf = a.here('buf');
    a.reserve(0x3000);
    a.section('low', { kind: 'text', origin: 0x8000 });
    a.jmp(f);
    const r = a.build();
    const [text, data, bss, low] = r.sections;
    expect(text!.bytes.length).toBe(17);
    expect([...text!.bytes.subarray(1, 16)]).toEqual(new Array(15).fill(0x90));
    expect(r.address(f)).toBe(0xc0100010);
    expect(r.physical(f)).toBe(0x100010);
    expect([data!.vaddr, data!.paddr]).toEqual([0xc0101000, 0x101000]);
    const dv = new DataView(data!.bytes.buffer);
    expect([...data!.bytes.subarray(0, 8)]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    expect([dv.getUint32(8, true), dv.getUint32(12, true), dv.getUint32(16, true), dv.getUint32(20, true)]).toEqual([0xc0100010, 0xc0100014, 0x100010, 0xc0101008 - 0xc0100010]);
    expect(dv.getUint16(24, true)).toBe(0x1234);
    expect([bss!.vaddr, bss!.memsz, bss!.bytes.length]).toEqual([0xc0102000, 0x3000, 0]);
    expect(r.address(buf)).toBe(0xc0102000);
    expect([low!.vaddr, low!.paddr]).toEqual([0x8000, 0x8000]);
    expect(low!.bytes[0]).toBe(0xe9); // far away: near jump
  });

  it('encodes label addresses as immediates and displacements', () => {
    const a = new Assembler({ origin: 0x100000 });
    const v = a.label('v');
    a.mov(eax, v);
    a.mov(ebx, dword(v));
    a.mov(dword({ base: ecx, disp: v.plus(8) }), 7);
    a.push(v);
    a.section('data');
    a.bind(v);
    a.dd(0);
    const r = a.build();
    const at = r.address(v).toString(16).toUpperCase();
    expect(disassembleAll(r.sections[0]!.bytes, 0x100000, 32).map((l) => l.text)).toEqual([
      `mov eax,${at}h`, `mov ebx,[${at}h]`, `mov dword [ecx+${(r.address(v) + 8).toString(16).toUpperCase()}h],7`, `push ${at}h`,
    ]);
  });

  it('exports named labels, functions and objects as symbols', () => {
    const a = new Assembler({ origin: 0x100000 });
    const f = a.func('f', () => { a.xor(eax, eax); a.ret(); });
    a.here('after');
    a.label(); // anonymous: no symbol
    a.section('data');
    a.object('table', () => a.dd(1, 2, 3));
    const r = a.build();
    expect(r.symbols).toEqual([
      { name: 'f', addr: 0x100000, size: 3, kind: 'function' },
      { name: 'after', addr: 0x100003, size: 0, kind: 'label' },
      { name: 'table', addr: 0x101000, size: 12, kind: 'object' },
    ]);
    expect(r.address('f')).toBe(r.address(f));
  });

  it('assembles 16-bit sections', () => {
    const a = new Assembler({ bits: 16, origin: 0x7c00 });
    const l = a.label();
    a.mov(ax, 0x1234);
    a.add(ax, bx);
    a.mov(word(0x500), ax);
    a.jmp(l);
    a.bind(l);
    a.iret();
    expect(Buffer.from(a.build().sections[0]!.bytes).toString('hex')).toBe('b8341201d8a30005eb00cf');
  });
});

describe('errors', () => {
  it('names an undefined label, the instruction and the caller', () => {
    const a = new Assembler();
    a.here('start');
    a.nop();
    a.jmp(a.label('nowhere'));
    const e = asmError(() => a.build());
    expect(e.message).toMatch(/^jmp nowhere: undefined label "nowhere" \(section "text", 2nd item after label "start"; at .*assembler\.test\.ts:\d+:\d+/);
  });

  it('lists every undefined label', () => {
    const a = new Assembler();
    a.mov(eax, a.label('x'));
    a.section('data');
    a.dd(a.label('y'));
    expect(asmError(() => a.build()).message).toMatch(/^2 undefined labels: mov eax, x: undefined label "x".*; dd y: undefined label "y"/);
  });

  it('rejects duplicate labels and double binding', () => {
    const a = new Assembler();
    const l = a.here('dup');
    expect(asmError(() => a.label('dup')).message).toBe('duplicate label "dup"');
    expect(asmError(() => a.bind(l)).message).toMatch(/label "dup" is bound twice/);
  });

  it('rejects operand combinations no encoding takes, naming the instruction', () => {
    const a = new Assembler();
    a.here('here');
    expect(asmError(() => a.mov(dword(ebx), dword(ecx))).message).toMatch(/^mov dword \[ebx\], dword \[ecx\]: no encoding takes these operands \(section "text", 1st item after label "here"\)/);
    expect(asmError(() => a.add(al, eax)).message).toMatch(/^add al, eax: no encoding/);
    expect(asmError(() => a.mov(ptr(ebx), 1)).message).toMatch(/operand size needed/);
    expect(asmError(() => a.emit('frobnicate', eax)).message).toMatch(/unknown mnemonic "frobnicate"/);
    expect(asmError(() => a.in(al, 0x100)).message).toMatch(/^in al, 0x100: no encoding/);
  });

  it('rejects a loop target beyond rel8', () => {
    const a = new Assembler();
    const top = a.here('top');
    for (let i = 0; i < 200; i++) a.nop();
    a.loop(top);
    expect(asmError(() => a.build()).message).toMatch(/^loop top: target 0x100000 is -\d+ bytes away, out of the rel8 range/);
  });

  it('rejects data in bss, instructions in data, and changes after build', () => {
    const a = new Assembler();
    a.section('bss');
    expect(asmError(() => a.dd(1)).message).toMatch(/bss/);
    a.section('data');
    expect(asmError(() => a.nop()).message).toMatch(/nop: instruction in data section "data"/);
    a.build();
    expect(asmError(() => a.section('text')).message).toMatch(/already built/);
  });

  it('rejects labels of another assembler', () => {
    const a = new Assembler(), b = new Assembler();
    const l = b.label('x');
    expect(asmError(() => a.jmp(l)).message).toMatch(/belongs to another assembler/);
  });
});

describe('pv-op sites', () => {
  it('records address, length, kind and native bytes, padded with NOPs', () => {
    const a = new Assembler({ origin: 0x100000 });
    a.xor(eax, eax); // 2 bytes
    a.pvop('write-cr3', () => a.mov(cr3, eax)); // 3 bytes + 5 NOPs
    a.pvop('irq-disable', () => a.cli(), 1); // 1 byte, no padding
    a.pvop('save-flags', () => { a.pushf(); a.pop(eax); }, 4);
    a.pvop('flush-tlb-entry', () => a.invlpg(ptr({ base: eax, disp: 0x12345678 })), 2); // longer than the minimum
    const r = a.build();
    expect(r.pvopSites.map((s) => [s.addr, s.len, s.kind, [...s.native]])).toEqual([
      [0x100002, 8, 'write-cr3', [0x0f, 0x22, 0xd8, 0x90, 0x90, 0x90, 0x90, 0x90]],
      [0x10000a, 1, 'irq-disable', [0xfa]],
      [0x10000b, 4, 'save-flags', [0x9c, 0x58, 0x90, 0x90]],
      [0x10000f, 7, 'flush-tlb-entry', [0x0f, 0x01, 0xb8, 0x78, 0x56, 0x34, 0x12]],
    ]);
    const bytes = r.sections[0]!.bytes;
    for (const s of r.pvopSites) expect([...bytes.subarray(s.addr - 0x100000, s.addr - 0x100000 + s.len)]).toEqual([...s.native]);
  });

  it('checks that the body holds the kind\'s instruction', () => {
    const a = new Assembler();
    a.pvop('write-cr3', () => a.mov(cr0, eax));
    expect(asmError(() => a.build()).message).toMatch(/pvop write-cr3: pv-op site write-cr3 at 0x100000: no write-cr3 instruction in the site \(it holds: mov cr0,eax; nop/);
  });

  it('rejects labels, branches, data and nesting inside a site', () => {
    const a = new Assembler();
    expect(asmError(() => a.pvop('halt', () => a.here('in'))).message).toMatch(/bound inside a halt pv-op site/);
    const b = new Assembler();
    const l = b.here();
    expect(asmError(() => b.pvop('halt', () => { b.hlt(); b.jmp(l); })).message).toMatch(/only fixed-length instructions/);
    const c = new Assembler();
    expect(asmError(() => c.pvop('halt', () => c.pvop('irq-enable', () => c.sti()))).message).toMatch(/sites do not nest/);
    const d = new Assembler();
    expect(asmError(() => d.pvop('halt', () => d.db(1))).message).toMatch(/data inside a halt pv-op site/);
    const e = new Assembler();
    expect(asmError(() => e.pvop('halt', () => undefined)).message).toMatch(/emitted no instruction/);
  });
});

describe('programs run on virtlab\'s CPU', () => {
  it('loops, calls, recursion, memory and string instructions', () => {
    const a = new Assembler({ origin: 0x100000 });
    const fact = a.label('fact');
    const result = a.label('result');
    const src = a.label('src');
    const dst = a.label('dst');
    const start = a.func('_start', () => {
      a.mov(esp, 0x90000);
      // ECX = sum of 1..100 (backward loop)
      a.xor(ecx, ecx);
      a.mov(eax, 100);
      const loop = a.here();
      a.add(ecx, eax);
      a.dec(eax);
      a.jnz(loop);
      a.mov(ebp, ecx); // fact clobbers ECX
      // EBX = fact(10), stored through a label
      a.push(10);
      a.call(fact);
      a.add(esp, 4);
      a.mov(dword(result), eax);
      a.mov(ebx, dword(result));
      // copy the string with rep movsd, then print it with lodsb/out
      a.cld();
      a.mov(esi, src);
      a.mov(edi, dst);
      a.push(ecx);
      a.mov(ecx, 2);
      a.movsd('rep');
      a.pop(ecx);
      a.mov(esi, dst);
      const print = a.here();
      const done = a.label();
      a.lodsb();
      a.test(al, al);
      a.jz(done);
      a.pvop('port-out', () => a.out(0xe9, al));
      a.jmp(print);
      a.bind(done);
      a.mov(edx, dword(dst.plus(4)));
      exit(a, 5);
    });
    a.func(fact, () => {
      a.mov(eax, dword(esp, 4));
      const base = a.label();
      a.cmp(eax, 1);
      a.jbe(base);
      a.push(eax);
      a.dec(eax);
      a.push(eax);
      a.call(fact);
      a.add(esp, 4);
      a.pop(ecx);
      a.imul(eax, ecx);
      a.bind(base);
      a.ret();
    });
    a.section('rodata');
    a.bind(src);
    a.asciz('virtlab');
    a.section('bss');
    a.bind(result);
    a.reserve(4);
    a.bind(dst);
    a.reserve(16);
    const { m, out, console } = boot(imageFromAssembly(a.build(), { name: 'prog', entry: start }));
    expect(out.exit).toEqual({ reason: 'exit-device', code: (5 << 1) | 1 });
    expect(console).toBe('virtlab');
    expect(m.cpu.r32[EBP]).toBe(5050);
    expect(m.cpu.r32[EBX]).toBe(3628800);
    expect(m.cpu.r32[EDX]).toBe(Buffer.from('lab\0').readInt32LE(0));
  });

  it('a higher-half kernel: boot code at 1 MiB turns paging on and jumps to 0xC0100000', () => {
    const a = new Assembler({ origin: 0xc0101000, loadAddress: 0x101000 });
    a.section('boot', { kind: 'text', origin: 0x100000 });
    const pd = a.label('page_directory');
    const pt = a.label('page_table');
    const high = a.label('high');
    const entry = a.func('_start', () => {
      // page_table[i] = i*4096 | present | writable, for 0..4 MiB
      a.mov(edi, pt.phys());
      a.mov(eax, 3);
      a.mov(ecx, 1024);
      const fill = a.here();
      a.stosd();
      a.add(eax, 0x1000);
      a.loop(fill);
      // the same table at 0 (identity, for this code) and at 0xC0000000 (PD index 768)
      a.mov(eax, pt.phys().plus(3));
      a.mov(dword(pd.phys()), eax);
      a.mov(dword(pd.phys().plus(768 * 4)), eax);
      a.mov(eax, pd.phys());
      a.pvop('write-cr3', () => a.mov(cr3, eax));
      a.pvop('read-cr0', () => a.mov(eax, cr0));
      a.or(eax, 0x80000000);
      a.pvop('write-cr0', () => a.mov(cr0, eax));
      a.mov(eax, high);
      a.jmp(eax);
    });
    a.section('text');
    a.bind(high);
    a.mov(esp, a.label('stack_top'));
    a.mov(esi, a.label('msg'));
    const loop = a.here();
    const done = a.label();
    a.lodsb();
    a.test(al, al);
    a.jz(done);
    a.pvop('port-out', () => a.out(0xe9, al));
    a.jmp(loop);
    a.bind(done);
    a.mov(ebx, dword(0xc0100000)); // a read through the high mapping of physical 1 MiB
    exit(a, 0);
    a.section('rodata');
    a.bind(a.findLabel('msg')!);
    a.asciz('up high\n');
    a.section('bss');
    a.align(4096);
    a.bind(pd);
    a.reserve(4096);
    a.bind(pt);
    a.reserve(4096);
    a.reserve(4096);
    a.bind(a.findLabel('stack_top')!);
    const image = imageFromAssembly(a.build(), { name: 'higher-half', entry });
    expect(image.segments.map((s) => [s.name, s.vaddr, s.paddr])).toEqual([
      ['text', 0xc0101000, 0x101000], ['boot', 0x100000, 0x100000], ['rodata', 0xc0102000, 0x102000], ['bss', 0xc0103000, 0x103000],
    ]);
    const { m, out, console } = boot(image);
    expect(out.exit).toEqual({ reason: 'exit-device', code: 1 });
    expect(console).toBe('up high\n');
    expect(m.cpu.r32[EBX]).toBe(new DataView(image.segments[1]!.bytes.buffer).getInt32(0, true)); // first bytes of the boot code, read at 0xC0100000
    expect(m.cpu.r32[EAX]! & 0xff).toBe(0);
  });

  it('property: random ALU sequences compute what a TypeScript model computes', () => {
    const regs: Reg[] = [eax, ebx, ecx, edx, esi, edi, ebp];
    const op = fc.record({
      op: fc.constantFrom('add', 'sub', 'xor', 'and', 'or', 'mov', 'imul', 'shl', 'shr', 'sar', 'not', 'neg'),
      dst: fc.integer({ min: 0, max: regs.length - 1 }),
      src: fc.oneof(fc.integer({ min: 0, max: regs.length - 1 }).map((r) => ({ reg: r })), fc.integer({ min: -0x8000_0000, max: 0xffff_ffff }).map((v) => ({ imm: v }))),
      shift: fc.integer({ min: 0, max: 31 }),
    });
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { minLength: 7, maxLength: 7 }), (ops, init) => {
      const a = new Assembler({ origin: 0x100000 });
      const model = init.map((v) => v | 0);
      regs.forEach((r, i) => a.mov(r, init[i]!));
      for (const o of ops) {
        const d = regs[o.dst]!;
        const sv = 'reg' in o.src ? model[o.src.reg]! : o.src.imm | 0;
        const s = 'reg' in o.src ? regs[o.src.reg]! : o.src.imm;
        const x = model[o.dst]!;
        switch (o.op) {
          case 'add': a.add(d, s); model[o.dst] = (x + sv) | 0; break;
          case 'sub': a.sub(d, s); model[o.dst] = (x - sv) | 0; break;
          case 'xor': a.xor(d, s); model[o.dst] = x ^ sv; break;
          case 'and': a.and(d, s); model[o.dst] = x & sv; break;
          case 'or': a.or(d, s); model[o.dst] = x | sv; break;
          case 'mov': a.mov(d, s); model[o.dst] = sv; break;
          case 'imul': if ('reg' in o.src) a.imul(d, s as Reg); else a.imul(d, d, o.src.imm | 0); model[o.dst] = Math.imul(x, sv); break;
          case 'shl': a.shl(d, o.shift); model[o.dst] = x << o.shift; break;
          case 'shr': a.shr(d, o.shift); model[o.dst] = (x >>> o.shift) | 0; break;
          case 'sar': a.sar(d, o.shift); model[o.dst] = x >> o.shift; break;
          case 'not': a.not(d); model[o.dst] = ~x; break;
          case 'neg': a.neg(d); model[o.dst] = -x | 0; break;
        }
      }
      // Store the registers to memory so the check does not depend on register layout.
      const out = a.label('out');
      regs.forEach((r, i) => a.mov(dword(out.plus(4 * i)), r));
      exit(a, 0);
      a.section('bss');
      a.bind(out);
      a.reserve(4 * regs.length);
      const r = a.build();
      const image = imageFromAssembly(r, { name: 'alu', entry: 0x100000 });
      const { m, out: o } = boot(image, 10_000);
      expect(o.exit.reason).toBe('exit-device');
      const at = r.physical(out);
      const got = regs.map((_r, i) => m.mem.u8[at + 4 * i]! | (m.mem.u8[at + 4 * i + 1]! << 8) | (m.mem.u8[at + 4 * i + 2]! << 16) | (m.mem.u8[at + 4 * i + 3]! << 24));
      expect(got).toEqual(model);
    }), { numRuns: 60 });
  });
});

describe('scale', () => {
  it('assembles 30,000 instructions with 3,000 forward and backward labels (speed: npm run bench)', () => {
    const a = new Assembler();
    const labels = Array.from({ length: 3000 }, (_, i) => a.label(`f${i}`));
    for (let i = 0; i < 3000; i++) {
      a.bind(labels[i]!);
      a.mov(eax, dword(ebx, i));
      a.add(eax, dword(esi, 1));
      a.mov(dword({ base: edi, index: ecx, scale: 4, disp: 8 }), eax);
      a.cmp(eax, i);
      a.jz(labels[(i * 7 + 1) % 3000]!);
      a.call(labels[(i * 13) % 3000]!);
      a.lea(ecx, mem({ base: eax, disp: 4 }));
      a.push(ecx);
      a.pop(edx);
      a.ret();
    }
    const r = a.build();
    expect(r.symbols.length).toBe(3000);
  });
});

describe('absolute addresses at or above 2 GiB', () => {
  it('encodes mov eax/al to and from a high absolute address (moffs form, unsigned)', () => {
    const a = new Assembler({ bits: 32, origin: 0x1000 });
    a.mov(eax, dword(0xc0001234));
    a.mov(dword(0xfffffff0), eax);
    const bytes = [...a.build().sections[0]!.bytes];
    expect(bytes).toEqual([0xa1, 0x34, 0x12, 0x00, 0xc0, 0xa3, 0xf0, 0xff, 0xff, 0xff]);
  });
});
