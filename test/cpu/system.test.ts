import { describe, expect, it } from 'vitest';
import { CS, DS, EAX, EBX, ECX, EDX, ES, ESP, SS, Vec } from '../../src/machine/cpu/cpu.js';
import { IF, IOPL, NT, TF, ZF } from '../../src/machine/cpu/flags.js';
import { loadSegment } from '../../src/machine/cpu/segmentation.js';
import { deliverEvent, EventKind } from '../../src/machine/cpu/interrupts.js';
import {
  bytes, enterUser, faultOf, gateDesc, GDT, haltedIn, handlerAddr, IDT, KCODE, KCS, KDS, KSTACK_TOP,
  newCpu, protectedMachine, putDesc, putIdt, segDesc, stackDword, TSS, UCODE, UCS, UDS, USTACK_TOP,
} from './system-harness.js';

describe('segment loads (protected mode)', () => {
  it('loads a data segment, sets the accessed bit and the cache', () => {
    const cpu = protectedMachine();
    putDesc(cpu, GDT, 6, segDesc(0x123000, 0xfff, 0x92, 0)); // byte-granular, not accessed
    loadSegment(cpu, ES, 0x30);
    expect(cpu.segSel[ES]).toBe(0x30);
    expect(cpu.segBase[ES]).toBe(0x123000);
    expect(cpu.segLimit[ES]).toBe(0xfff);
    expect(cpu.mem.read8(GDT + 6 * 8 + 5) & 1).toBe(1);
    // The limit is enforced on accesses.
    expect(faultOf(cpu, () => cpu.readMem32(ES, 0xffd))).toEqual([Vec.GP, 0]);
  });

  it('raises the architectural faults for bad selectors', () => {
    const cpu = protectedMachine();
    putDesc(cpu, GDT, 6, segDesc(0, 0xfffff, 0x12)); // not present data
    putDesc(cpu, GDT, 7, segDesc(0, 0xfffff, 0x98)); // execute-only code
    putDesc(cpu, GDT, 8, segDesc(0, 0xfffff, 0x90)); // read-only data
    expect(faultOf(cpu, () => loadSegment(cpu, DS, 0x80 + 3))).toEqual([Vec.GP, 0x80]); // beyond GDT limit
    expect(faultOf(cpu, () => loadSegment(cpu, DS, 0x34))).toEqual([Vec.GP, 0x34]); // LDT with null LDTR
    expect(faultOf(cpu, () => loadSegment(cpu, DS, 0x30))).toEqual([Vec.NP, 0x30]);
    expect(faultOf(cpu, () => loadSegment(cpu, SS, 0x30))).toEqual([Vec.SS, 0x30]); // not present stack: #SS
    expect(faultOf(cpu, () => loadSegment(cpu, DS, 0x38))).toEqual([Vec.GP, 0x38]);
    expect(faultOf(cpu, () => loadSegment(cpu, SS, 0x40))).toEqual([Vec.GP, 0x40]);
    expect(faultOf(cpu, () => loadSegment(cpu, SS, 0))).toEqual([Vec.GP, 0]);
    expect(faultOf(cpu, () => loadSegment(cpu, SS, KDS | 1))).toEqual([Vec.GP, KDS]); // RPL != CPL
    expect(faultOf(cpu, () => loadSegment(cpu, DS, TSS_SEL_FOR_TEST))).toEqual([Vec.GP, TSS_SEL_FOR_TEST]); // system
    // A null selector is fine for DS and makes accesses #GP(0).
    loadSegment(cpu, DS, 0);
    expect(faultOf(cpu, () => cpu.readMem8(DS, 0))).toEqual([Vec.GP, 0]);
  });

  it('applies DPL/RPL/CPL rules at CPL 3', () => {
    const cpu = protectedMachine();
    enterUser(cpu);
    expect(faultOf(cpu, () => loadSegment(cpu, DS, KDS | 3))).toEqual([Vec.GP, KDS]);
    putDesc(cpu, GDT, 6, segDesc(0, 0xfffff, 0x9e)); // conforming readable code, DPL 0
    loadSegment(cpu, DS, 0x33); // conforming code: no privilege check
    expect(cpu.segSel[DS]).toBe(0x33);
    putDesc(cpu, GDT, 7, segDesc(0, 0xfffff, 0xfa)); // non-conforming readable code DPL 3, RPL 3 ok
    loadSegment(cpu, ES, 0x3b);
    expect(cpu.segSel[ES]).toBe(0x3b);
  });
});
const TSS_SEL_FOR_TEST = 0x28;

describe('interrupts and exceptions (protected mode)', () => {
  it('ring 3 -> ring 0 through an interrupt gate with a stack switch, and back with IRET', () => {
    const cpu = protectedMachine();
    putIdt(cpu, 0x80, gateDesc(KCS, KCODE + 0x100, 0xe, 3));
    bytes(cpu, KCODE + 0x100, [0x8e, 0xdb, 0xcf]); // MOV DS,BX (kernel data); IRET
    bytes(cpu, UCODE, [0xcd, 0x80, 0x90, 0xf4]); // INT 0x80; NOP; HLT
    enterUser(cpu);
    cpu.flags = (cpu.flags | IF | 0x1) >>> 0; // IF and CF set
    cpu.r32[EBX] = KDS;
    cpu.run(1);
    expect(cpu.cpl).toBe(0);
    expect(cpu.segSel[CS]).toBe(KCS);
    expect(cpu.eip).toBe(KCODE + 0x100);
    expect(cpu.segSel[SS]).toBe(KDS);
    expect(cpu.r32[ESP]).toBe(KSTACK_TOP - 20);
    expect(cpu.flags & IF).toBe(0);
    // Frame: EIP, CS, EFLAGS, ESP, SS.
    expect(stackDword(cpu, 0)).toBe(UCODE + 2);
    expect(stackDword(cpu, 1)).toBe(UCS);
    expect(stackDword(cpu, 2) & (IF | 1)).toBe(IF | 1);
    expect(stackDword(cpu, 3)).toBe(USTACK_TOP);
    expect(stackDword(cpu, 4)).toBe(UDS);
    cpu.run(2); // MOV DS; IRET
    expect(cpu.cpl).toBe(3);
    expect(cpu.segSel[CS]).toBe(UCS);
    expect(cpu.segSel[SS]).toBe(UDS);
    expect(cpu.r32[ESP]).toBe(USTACK_TOP);
    expect(cpu.eip).toBe(UCODE + 2);
    expect(cpu.flags & (IF | 1)).toBe(IF | 1);
    // DS held a DPL 0 data segment: the return to ring 3 nulled it.
    expect(cpu.segSel[DS]).toBe(0);
    expect(cpu.segSel[ES]).toBe(UDS);
    // HLT at CPL 3 is #GP(0), delivered on the ring-0 stack.
    cpu.run(2);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 0)).toBe(0); // error code
    expect(stackDword(cpu, 1)).toBe(UCODE + 3); // the faulting HLT
  });

  it('INT n through a gate with DPL < CPL is #GP(vector*8+2); a trap gate keeps IF', () => {
    const cpu = protectedMachine();
    putIdt(cpu, 0x40, gateDesc(KCS, KCODE + 0x100, 0xe, 0));
    bytes(cpu, UCODE, [0xcd, 0x40]);
    enterUser(cpu);
    cpu.run(10);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 0)).toBe(0x40 * 8 + 2);
    expect(stackDword(cpu, 1)).toBe(UCODE); // saved EIP is the INT instruction

    const c2 = protectedMachine();
    putIdt(c2, 0x41, gateDesc(KCS, KCODE + 0x100, 0xf, 0));
    bytes(c2, KCODE, [0xfb, 0xcd, 0x41]); // STI; INT 0x41
    bytes(c2, KCODE + 0x100, [0xeb, 0xfe]);
    c2.run(2);
    expect(c2.eip).toBe(KCODE + 0x100);
    expect(c2.flags & IF).toBe(IF);
    expect(c2.r32[ESP]).toBe(KSTACK_TOP - 12); // same privilege: no SS:ESP pushed
  });

  it('external interrupts push the EXT bit in error codes and never an error code of their own', () => {
    const cpu = protectedMachine();
    putIdt(cpu, 0x30, gateDesc(KCS, KCODE + 0x100, 0xe, 0, 0, false)); // not present
    bytes(cpu, KCODE, [0x90, 0x90]);
    cpu.flags |= IF;
    cpu.intrAck = () => 0x30;
    cpu.setIntrLine(true);
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.NP);
    expect(stackDword(cpu, 0)).toBe(0x30 * 8 + 2 + 1);
  });

  it('a fault while delivering #GP becomes #DF (error code 0)', () => {
    const cpu = protectedMachine();
    putIdt(cpu, Vec.GP, gateDesc(KCS, handlerAddr(Vec.GP), 0xe, 0, 0, false));
    bytes(cpu, KCODE, [0x8e, 0xd8]); // MOV DS,AX with a bad selector
    cpu.r32[EAX] = 0x1234;
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.DF);
    expect(stackDword(cpu, 0)).toBe(0);
    expect(stackDword(cpu, 1)).toBe(KCODE);
    expect(cpu.firstFault).toEqual({ vector: Vec.GP, code: 0x1234, eip: KCODE, cs: KCS });
  });

  it('a benign exception followed by a contributory one is handled serially', () => {
    const cpu = protectedMachine();
    putIdt(cpu, Vec.UD, gateDesc(KCS, handlerAddr(Vec.UD), 0xe, 0, 0, false));
    bytes(cpu, KCODE, [0x0f, 0x0b]); // UD2
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.NP);
    expect(stackDword(cpu, 0)).toBe(Vec.UD * 8 + 2 + 1);
  });

  it('a fault while delivering #DF is a triple fault that stops the machine with a clear detail', () => {
    const cpu = protectedMachine();
    putIdt(cpu, Vec.GP, gateDesc(KCS, 0, 0xe, 0, 0, false));
    putIdt(cpu, Vec.DF, gateDesc(KCS, 0, 0xe, 0, 0, false));
    bytes(cpu, KCODE, [0x90, 0x8e, 0xd8]);
    cpu.r32[EAX] = 0x1234;
    const n = cpu.run(100);
    expect(n).toBe(1);
    expect(cpu.stopReason?.kind).toBe('triple-fault');
    const detail = (cpu.stopReason as { detail: string }).detail;
    expect(detail).toContain('#GP(0x1234)');
    expect(detail).toContain('0008:00100001');
    expect(detail).not.toContain('\n');
    expect(cpu.firstFault?.vector).toBe(Vec.GP);
  });

  it('a page fault while pushing the frame is delivered per the rules and the CPU state is intact', () => {
    const cpu = protectedMachine({ paging: true });
    // Ring-3 INT 0x80 whose inner stack page is not present: #PF(error: supervisor write, not present).
    putIdt(cpu, 0x80, gateDesc(KCS, KCODE + 0x100, 0xe, 3));
    bytes(cpu, UCODE, [0xcd, 0x80]);
    const stackPage = KSTACK_TOP - 0x1000;
    cpu.mem.write32(pteFor(stackPage), 0);
    // The #PF handler runs on... the same missing stack: that is a #PF during #PF delivery -> #DF,
    // whose delivery faults again -> triple fault. Use a separate TSS stack? Keep it: check the chain.
    enterUser(cpu);
    cpu.run(10);
    expect(cpu.stopReason?.kind).toBe('triple-fault');
    expect((cpu.stopReason as { detail: string }).detail).toContain('#PF(0x0002)');
    // Nothing was committed: still ring 3 at the INT instruction.
    expect(cpu.cpl).toBe(3);
    expect(cpu.eip).toBe(UCODE);
    expect(cpu.r32[ESP]).toBe(USTACK_TOP);
    expect(cpu.cr2).toBe(stackPage + 0xffc);
  });

  it('a 16-bit TSS supplies SS0:SP0 from its 16-bit layout', () => {
    const cpu = protectedMachine();
    cpu.trAttr = 0x83; // busy 16-bit TSS
    cpu.mem.write16(TSS + 2, 0x8000); // SP0
    cpu.mem.write16(TSS + 4, KDS); // SS0
    putIdt(cpu, 0x80, gateDesc(KCS, KCODE + 0x100, 0xe, 3));
    bytes(cpu, UCODE, [0xcd, 0x80]);
    enterUser(cpu);
    cpu.run(1);
    expect(cpu.cpl).toBe(0);
    expect(cpu.r32[ESP]).toBe(0x8000 - 20);
    expect(cpu.mem.read32(0x8000 - 20)).toBe(UCODE + 2);
  });

  it('an invalid SS0 in the TSS is #TS(SS0) during a privilege change', () => {
    const cpu = protectedMachine();
    cpu.mem.write32(TSS + 8, UDS); // SS0 with RPL 3
    putIdt(cpu, 0x80, gateDesc(KCS, KCODE + 0x100, 0xe, 3));
    putIdt(cpu, Vec.TS, gateDesc(KCS, handlerAddr(Vec.TS), 0xe, 3));
    bytes(cpu, UCODE, [0xcd, 0x80]);
    enterUser(cpu);
    cpu.run(5);
    // #TS itself needs the same stack switch and faults again: #TS + #TS -> #DF, which also
    // switches stacks -> triple fault; the chain names the selector error code.
    expect(cpu.stopReason?.kind).toBe('triple-fault');
    expect((cpu.stopReason as { detail: string }).detail).toContain('#TS(0x0020) while delivering INT 0x80');
  });

  it('IRET with NT set stops as unsupported (task return)', () => {
    const cpu = protectedMachine();
    bytes(cpu, KCODE, [0xcf]);
    cpu.flags |= NT;
    cpu.run(1);
    expect(cpu.stopReason?.kind).toBe('unsupported');
    expect((cpu.stopReason as { detail: string }).detail).toMatch(/task/);
  });

  it('task gates stop as unsupported', () => {
    const cpu = protectedMachine();
    putIdt(cpu, 0x50, gateDesc(TSS_SEL_FOR_TEST, 0, 0x5, 0));
    bytes(cpu, KCODE, [0xcd, 0x50]);
    cpu.run(1);
    expect(cpu.stopReason?.kind).toBe('unsupported');
  });

  it('16-bit interrupt gates push a 16-bit frame', () => {
    const cpu = protectedMachine();
    putIdt(cpu, 0x60, gateDesc(KCS, 0x1234, 0x6, 0));
    bytes(cpu, KCODE, [0xcd, 0x60]);
    cpu.run(1);
    expect(cpu.eip).toBe(0x1234);
    expect(cpu.r32[ESP]).toBe(KSTACK_TOP - 6);
    expect(cpu.mem.read16(KSTACK_TOP - 6)).toBe((KCODE + 2) & 0xffff);
    expect(cpu.mem.read16(KSTACK_TOP - 4)).toBe(KCS);
  });

  it('real-mode INT and IRET round trip through the IVT', () => {
    const cpu = newCpu();
    cpu.mem.write16(0x21 * 4, 0x0010);
    cpu.mem.write16(0x21 * 4 + 2, 0x0200); // handler at 0200:0010
    bytes(cpu, 0x2010, [0xcf]); // IRET
    bytes(cpu, 0x1000, [0xcd, 0x21, 0x90]);
    cpu.loadRealSegment(CS, 0x100);
    cpu.eip = 0;
    cpu.r16[ESP << 1] = 0x8000;
    cpu.flags |= IF;
    cpu.run(1);
    expect(cpu.segSel[CS]).toBe(0x200);
    expect(cpu.eip).toBe(0x10);
    expect(cpu.flags & IF).toBe(0);
    expect(cpu.mem.read16(0x7ffa)).toBe(2);
    expect(cpu.mem.read16(0x7ffc)).toBe(0x100);
    cpu.run(1);
    expect(cpu.segSel[CS]).toBe(0x100);
    expect(cpu.eip).toBe(2);
    expect(cpu.flags & IF).toBe(IF);
    expect(cpu.r16[ESP << 1]).toBe(0x8000);
  });
});

describe('far transfers (protected mode)', () => {
  it('CALL FAR through a call gate to ring 0 copies parameters; RETF imm returns to ring 3', () => {
    const cpu = protectedMachine();
    putDesc(cpu, GDT, 6, gateDesc(KCS, KCODE + 0x200, 0xc, 3, 2)); // 32-bit call gate, 2 params
    bytes(cpu, KCODE + 0x200, [0x8e, 0xdb, 0xca, 0x08, 0x00]); // MOV DS,BX; RETF 8
    // PUSH 0x11; PUSH 0x22; CALL FAR 0033:0; NOP
    bytes(cpu, UCODE, [0x6a, 0x11, 0x6a, 0x22, 0x9a, 0, 0, 0, 0, 0x33, 0x00, 0x90]);
    enterUser(cpu);
    cpu.r32[EBX] = KDS;
    cpu.run(3);
    expect(cpu.cpl).toBe(0);
    expect(cpu.eip).toBe(KCODE + 0x200);
    expect(cpu.segSel[SS]).toBe(KDS);
    // Inner stack: EIP, CS, param2 (0x22), param1 (0x11), ESP, SS.
    expect(stackDword(cpu, 0)).toBe(UCODE + 11);
    expect(stackDword(cpu, 1)).toBe(UCS);
    expect(stackDword(cpu, 2)).toBe(0x22);
    expect(stackDword(cpu, 3)).toBe(0x11);
    expect(stackDword(cpu, 4)).toBe(USTACK_TOP - 8);
    expect(stackDword(cpu, 5)).toBe(UDS);
    cpu.run(2);
    expect(cpu.cpl).toBe(3);
    expect(cpu.eip).toBe(UCODE + 11);
    expect(cpu.segSel[DS]).toBe(0); // DPL 0 data is not usable at CPL 3: nulled
    expect(cpu.segSel[ES]).toBe(UDS);
    expect(cpu.r32[ESP]).toBe(USTACK_TOP); // parameters released on the outer stack too
    expect(cpu.segSel[CS]).toBe(UCS);
  });

  it('direct far jumps check code-segment privilege', () => {
    const cpu = protectedMachine();
    enterUser(cpu);
    bytes(cpu, UCODE, [0xea, 0, 0, 0x10, 0, KCS, 0]); // JMP FAR 0008:00100000 from ring 3
    cpu.run(10);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 0)).toBe(KCS);
  });
});

describe('SYSENTER / SYSEXIT', () => {
  it('round trip between ring 3 and ring 0 with flat segments', () => {
    const cpu = protectedMachine();
    cpu.sysenterCs = KCS; cpu.sysenterEsp = 0x180000; cpu.sysenterEip = KCODE + 0x300;
    // Kernel: SYSEXIT (user EIP in EDX, ESP in ECX).
    bytes(cpu, KCODE + 0x300, [0x0f, 0x35]);
    bytes(cpu, UCODE, [0x0f, 0x34]);
    enterUser(cpu);
    cpu.flags |= IF;
    cpu.r32[ECX] = USTACK_TOP - 0x40; cpu.r32[EDX] = UCODE + 0x50;
    cpu.run(1);
    expect(cpu.cpl).toBe(0);
    expect(cpu.segSel[CS]).toBe(KCS);
    expect(cpu.segSel[SS]).toBe(KCS + 8);
    expect(cpu.r32[ESP]).toBe(0x180000);
    expect(cpu.eip).toBe(KCODE + 0x300);
    expect(cpu.flags & IF).toBe(0);
    cpu.run(1);
    expect(cpu.cpl).toBe(3);
    expect(cpu.segSel[CS]).toBe(KCS + 16 + 3);
    expect(cpu.segSel[SS]).toBe(KCS + 24 + 3);
    expect(cpu.r32[ESP]).toBe(USTACK_TOP - 0x40);
    expect(cpu.eip).toBe(UCODE + 0x50);
    // User code runs from there with CPL 3 rights.
    expect(cpu.segAttr[CS]! & 0x60).toBe(0x60);
  });

  it('SYSENTER with SYSENTER_CS = 0 is #GP(0); SYSEXIT at CPL 3 is #GP(0)', () => {
    const cpu = protectedMachine();
    bytes(cpu, KCODE, [0x0f, 0x34]);
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    const c2 = protectedMachine();
    c2.sysenterCs = KCS;
    bytes(c2, UCODE, [0x0f, 0x35]);
    enterUser(c2);
    c2.run(5);
    expect(haltedIn(c2)).toBe(Vec.GP);
  });
});

describe('privileged and IOPL-sensitive instructions', () => {
  it('CLI at CPL 3 with IOPL 0 faults; with IOPL 3 it works', () => {
    const cpu = protectedMachine();
    bytes(cpu, UCODE, [0xfa]);
    enterUser(cpu);
    cpu.flags |= IF;
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    const c2 = protectedMachine();
    bytes(c2, UCODE, [0xfa, 0x90]);
    enterUser(c2);
    c2.flags |= IF | IOPL;
    c2.run(1);
    expect(c2.flags & IF).toBe(0);
  });

  it('STI delays interrupts by one instruction', () => {
    const cpu = protectedMachine();
    putIdt(cpu, 0x30, gateDesc(KCS, KCODE + 0x100, 0xe, 0));
    bytes(cpu, KCODE, [0xfb, 0x90, 0x90]);
    bytes(cpu, KCODE + 0x100, [0xeb, 0xfe]);
    cpu.intrAck = () => 0x30;
    cpu.setIntrLine(true);
    cpu.run(2); // STI, NOP: the interrupt is taken after the NOP
    expect(cpu.eip).toBe(KCODE + 0x100);
    expect(stackDword(cpu, 0)).toBe(KCODE + 2);
  });

  it('MOV CR checks: CPL, PG without PE, reserved CR4 bits', () => {
    const cpu = protectedMachine();
    bytes(cpu, UCODE, [0x0f, 0x20, 0xc0]); // MOV EAX,CR0 at CPL 3
    enterUser(cpu);
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.GP);

    const c2 = newCpu(); // real mode: MOV CR0 with PG but not PE
    bytes(c2, 0, [0x66, 0xb8, 0, 0, 0, 0x80, 0x0f, 0x22, 0xc0]);
    c2.mem.write16(13 * 4, 0x100);
    bytes(c2, 0x100, [0xf4]);
    c2.r16[ESP << 1] = 0x8000;
    c2.run(5);
    expect(c2.eip).toBe(0x101); // halted in the #GP handler
    expect(c2.mem.read16(0x8000 - 6)).toBe(6); // saved IP: the MOV CR0
    expect(c2.cr0 & 0x80000000).toBe(0);

    const c3 = protectedMachine();
    bytes(c3, KCODE, [0x0f, 0x22, 0xe0]); // MOV CR4,EAX
    c3.r32[EAX] = 0x1000; // reserved
    c3.run(5);
    expect(haltedIn(c3)).toBe(Vec.GP);
  });

  it('LGDT with a 16-bit operand size loads 24 bits of base; SGDT stores them', () => {
    const cpu = protectedMachine();
    cpu.mem.write16(0x5000, 0x1ff);
    cpu.mem.write32(0x5002, 0xaabbccdd | 0);
    bytes(cpu, KCODE, [0x66, 0x0f, 0x01, 0x15, 0x00, 0x50, 0, 0, 0x0f, 0x01, 0x05, 0x10, 0x50, 0, 0]);
    cpu.run(1);
    expect(cpu.gdtrLimit).toBe(0x1ff);
    expect(cpu.gdtrBase).toBe(0xbbccdd);
    cpu.run(1);
    expect(cpu.mem.read16(0x5010)).toBe(0x1ff);
    expect(cpu.mem.read32(0x5012)).toBe(0xbbccdd);
  });

  it('LAR, LSL, VERR, VERW', () => {
    const cpu = protectedMachine();
    putDesc(cpu, GDT, 6, segDesc(0, 0x2345, 0x90, 0)); // read-only data DPL 0
    // LAR EAX,BX ; LSL ECX,BX ; VERR BX ; VERW BX
    bytes(cpu, KCODE, [0x0f, 0x02, 0xc3, 0x0f, 0x03, 0xcb, 0x0f, 0x00, 0xe3, 0x0f, 0x00, 0xeb]);
    cpu.r32[EBX] = 0x30;
    cpu.run(1);
    expect(cpu.flags & ZF).toBe(ZF);
    expect(cpu.r32[EAX]! >>> 0).toBe(0x00009000);
    cpu.run(1);
    expect(cpu.r32[ECX]).toBe(0x2345);
    cpu.run(1);
    expect(cpu.flags & ZF).toBe(ZF);
    cpu.run(1);
    expect(cpu.flags & ZF).toBe(0);
    // From ring 3 the DPL 0 segment is invisible to LAR.
    const c2 = protectedMachine();
    putDesc(c2, GDT, 6, segDesc(0, 0x2345, 0x90, 0));
    bytes(c2, UCODE, [0x0f, 0x02, 0xc3]);
    enterUser(c2);
    c2.r32[EBX] = 0x33;
    c2.flags |= ZF;
    c2.run(1);
    expect(c2.flags & ZF).toBe(0);
  });

  it('LTR marks the TSS busy; LLDT loads the LDT, whose descriptors are then reachable', () => {
    const cpu = protectedMachine();
    putDesc(cpu, GDT, 7, segDesc(TSS, 0x67, 0x89, 0));
    putDesc(cpu, GDT, 8, segDesc(0x6000, 0x17, 0x82, 0));
    cpu.mem.write32(0x6008, segDesc(0x77000, 0xffff, 0x92, 0)[0]);
    cpu.mem.write32(0x600c, segDesc(0x77000, 0xffff, 0x92, 0)[1]);
    // MOV AX,0x38; LTR AX; MOV AX,0x40; LLDT AX; MOV AX,0x0c; MOV ES,AX
    bytes(cpu, KCODE, [0x66, 0xb8, 0x38, 0, 0x0f, 0x00, 0xd8, 0x66, 0xb8, 0x40, 0, 0x0f, 0x00, 0xd0, 0x66, 0xb8, 0x0c, 0, 0x8e, 0xc0]);
    cpu.run(6);
    expect(cpu.trSel).toBe(0x38);
    expect((cpu.mem.read8(GDT + 7 * 8 + 5) & 0xf)).toBe(0xb);
    expect(cpu.ldtrBase).toBe(0x6000);
    expect(cpu.segBase[ES]).toBe(0x77000);
    // LTR of a busy TSS is #GP(sel).
    bytes(cpu, cpu.eip, [0x0f, 0x00, 0xd8]);
    cpu.r32[EAX] = 0x38;
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 0)).toBe(0x38);
  });

  it('x87 escapes raise #NM; WAIT only with TS and MP', () => {
    const cpu = protectedMachine();
    bytes(cpu, KCODE, [0x9b, 0xd9, 0xc0]);
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.NM);
    expect(stackDword(cpu, 0)).toBe(KCODE + 1);
  });

  it('MMX/SSE opcodes are #UD', () => {
    const cpu = protectedMachine();
    bytes(cpu, KCODE, [0x0f, 0x6f, 0xc1]);
    cpu.run(5);
    expect(haltedIn(cpu)).toBe(Vec.UD);
  });
});

describe('more privilege rules', () => {
  it('IRET at CPL 3 cannot change IOPL, nor IF when CPL > IOPL', () => {
    const cpu = protectedMachine();
    bytes(cpu, UCODE, [0xcf]);
    enterUser(cpu, UCODE, USTACK_TOP - 12);
    cpu.mem.write32(USTACK_TOP - 12, UCODE + 0x10);
    cpu.mem.write32(USTACK_TOP - 8, UCS);
    cpu.mem.write32(USTACK_TOP - 4, (IOPL | IF | 0x2 | 0x1) >>> 0);
    cpu.run(1);
    expect(cpu.eip).toBe(UCODE + 0x10);
    expect(cpu.flags & (IOPL | IF | 1)).toBe(1);
  });

  it('a 16-bit call gate has a 16-bit offset and pushes 16-bit CS:IP; a 16-bit RETF returns', () => {
    const cpu = protectedMachine();
    putDesc(cpu, GDT, 6, gateDesc(KCS, KCODE + 0x400, 0x4, 0)); // the offset's high half is dropped
    bytes(cpu, 0x400, [0x66, 0xcb]); // RETF (16-bit operand size)
    bytes(cpu, KCODE + 0x20, [0x9a, 0, 0, 0, 0, 0x30, 0x00]);
    cpu.eip = KCODE + 0x20;
    cpu.run(1);
    expect(cpu.eip).toBe(0x400);
    expect(cpu.r32[ESP]).toBe(KSTACK_TOP - 4);
    expect(cpu.mem.read16(KSTACK_TOP - 4)).toBe((KCODE + 0x27) & 0xffff);
    expect(cpu.mem.read16(KSTACK_TOP - 2)).toBe(KCS);
    cpu.run(1);
    expect(cpu.eip).toBe(0x27); // a 16-bit RETF pops a 16-bit IP
    expect(cpu.r32[ESP]).toBe(KSTACK_TOP);
  });

  it('SMSW, SGDT and STR are not privileged (sensitive but silent at CPL 3); INVLPG and LGDT are', () => {
    const cpu = protectedMachine();
    bytes(cpu, UCODE, [0x0f, 0x01, 0xe0, 0x0f, 0x00, 0xc9, 0x0f, 0x01, 0x3b]); // SMSW EAX; STR ECX; INVLPG [EBX]
    enterUser(cpu);
    cpu.run(10);
    expect(cpu.r32[EAX]).toBe(cpu.cr0);
    expect(cpu.r32[ECX]).toBe(0x28);
    expect(haltedIn(cpu)).toBe(Vec.GP);
    expect(stackDword(cpu, 1)).toBe(UCODE + 6);
  });

  it('DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD', () => {
    const cpu = protectedMachine();
    bytes(cpu, KCODE, [0x0f, 0x21, 0xe0, 0x0f, 0x22, 0xe0, 0x0f, 0x21, 0xe0]); // MOV EAX,DR4; MOV CR4,EAX; MOV EAX,DR4
    cpu.run(1);
    expect(cpu.r32[EAX]! >>> 0).toBe(0xffff0ff0);
    cpu.r32[EAX] = 8;
    cpu.run(10);
    expect(haltedIn(cpu)).toBe(Vec.UD);
  });
});

describe('single step', () => {
  it('POPF that clears TF still traps after itself (TF was set when it began)', () => {
    const cpu = protectedMachine();
    putIdt(cpu, Vec.DB, gateDesc(KCS, KCODE + 0x100, 0xe, 0));
    bytes(cpu, KCODE + 0x100, [0xeb, 0xfe]);
    bytes(cpu, KCODE, [0x9d, 0x90]); // POPF; NOP
    cpu.r32[ESP] = KSTACK_TOP - 4;
    cpu.mem.write32(KSTACK_TOP - 4, 2);
    cpu.flags |= TF;
    cpu.updateAttention();
    cpu.attention |= 2;
    cpu.run(1);
    expect(cpu.eip).toBe(KCODE + 0x100);
    expect(stackDword(cpu, 0)).toBe(KCODE + 1);
  });


  it('TF traps after each instruction, with the next EIP and DR6.BS', () => {
    const cpu = protectedMachine();
    putIdt(cpu, Vec.DB, gateDesc(KCS, KCODE + 0x100, 0xe, 0));
    bytes(cpu, KCODE + 0x100, [0xcf]); // IRET
    bytes(cpu, KCODE, [0x90, 0x90, 0x90]);
    cpu.flags |= TF;
    cpu.updateAttention();
    cpu.attention |= 2; // TF was set when the first NOP began
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      cpu.run(1);
      seen.push(cpu.eip);
    }
    // NOP, #DB handler IRET, NOP, IRET, NOP, IRET
    expect(seen).toEqual([KCODE + 0x100, KCODE + 1, KCODE + 0x100, KCODE + 2, KCODE + 0x100, KCODE + 3]);
    expect(cpu.dr[6]! & 0x4000).toBe(0x4000);
    expect(cpu.eventCounts[Vec.DB]).toBe(3);
  });

  it('deliverEvent of a fault leaves nothing committed when the IDT limit is too small', () => {
    const cpu = protectedMachine();
    cpu.idtrLimit = 8 * 14 - 1; // #PF (14) and beyond missing; #GP present
    const esp = cpu.r32[ESP];
    deliverEvent(cpu, 0x20, -1, EventKind.External);
    // 0x20 is beyond the limit -> #GP(0x20*8+2+1), delivered serially to the #GP handler.
    expect(cpu.eip).toBe(handlerAddr(Vec.GP));
    expect(cpu.r32[ESP]).toBe(esp! - 16);
    expect(stackDword(cpu, 0)).toBe(0x20 * 8 + 3);
  });
});

function pteFor(lin: number): number {
  return 0x10000 + 0x1000 * ((lin >>> 22) + 1) + ((lin >>> 12) & 0x3ff) * 4;
}
void IDT; void UCS;
