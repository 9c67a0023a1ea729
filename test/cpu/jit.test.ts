/**
 * The JIT (src/machine/cpu/jit) must be exactly equivalent to the interpreter: random guest
 * programs (loops of the instructions the compiler transcribes, plus ones it hands back to
 * the interpreter's handlers, memory operands that cross pages or hit unmapped and read-only
 * pages, self-modifying stores, stack traffic, calls, timer events and run budgets of random
 * size) run on two identical machines, JIT off and on, and everything observable must match:
 * registers, flags, EIP, memory, cycles, instructions, TLB counters, page-walk counts, event
 * delivery, the event-hook log and the stop reason.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu, CS, DS, ES, FS, GS, SS } from '../../src/machine/cpu/cpu.js';
import type { CostTable } from '../../src/machine/cpu/cost-table.js';
import { PhysicalMemory } from '../../src/machine/memory.js';
import { PortBus } from '../../src/machine/port-bus.js';
import { Tlb } from '../../src/machine/tlb.js';
import { compileBlock } from '../../src/machine/cpu/jit/compiler.js';
import {
  gateDesc, GDT, handlerAddr, IDT, identityMap, KCODE, KCS, KDS, KSTACK_TOP, PD, pteAddr, putDesc, putIdt, segDesc,
} from './system-harness.js';

const DATA = 0x400000; // 32-bit data area (ESI, EDI point into it)
const RDATA_SEG = 0x4000; // real mode: DS = SS = ES = this (linear 0x40000)
const RCODE_SEG = 0x1000; // real mode: CS (linear 0x10000)

/** A cost table with nonzero, distinct costs so that any charge the JIT misses shows. */
function costTable(seed: number): CostTable {
  let s = seed | 1;
  const rnd = (n: number): number => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) % n; };
  const base = new Uint16Array(1024);
  for (let i = 0; i < 1024; i++) base[i] = 1 + rnd(7);
  const groupExtra = new Uint16Array(8192);
  for (let i = 0; i < 8192; i++) groupExtra[i] = rnd(5);
  return {
    base, groupExtra, memOperand: 1 + rnd(3), walkRef: 3 + rnd(20), repIteration: 1 + rnd(3), branchTaken: 1 + rnd(4),
    interrupt: 20 + rnd(50), privilegeChange: 10, io: 7, segmentLoad: 5,
  };
}

interface Setup {
  real: boolean;
  paging: boolean;
  /** Data pages made not-present / read-only (indices 0..15 of the 16 data pages). */
  absent: number[];
  readonly: number[];
  costSeed: number;
  regs: number[];
  eventPeriods: number[];
  budgets: number[];
  threshold: number;
  /** CS limit (32-bit mode; default 4 GiB). */
  csLimit?: number;
}

function machine(setup: Setup, code: number[], jit: boolean): { cpu: Cpu; log: number[] } {
  const mem = new PhysicalMemory(16 << 20);
  const cpu = new Cpu(mem, new PortBus(), costTable(setup.costSeed), {
    itlb: new Tlb({ sets: 4, ways: 2 }), dtlb: new Tlb({ sets: 4, ways: 2 }),
  });
  cpu.jitEnabled = jit;
  if (jit) cpu.jit!.threshold = setup.threshold;
  if (setup.real) {
    cpu.resetRealMode();
    cpu.loadRealSegment(CS, RCODE_SEG);
    for (const s of [DS, ES, SS, FS, GS]) cpu.loadRealSegment(s, RDATA_SEG);
    mem.u8.set(code, RCODE_SEG * 16);
    cpu.eip = 0;
    // IVT: every vector to a HLT at 0:0x500.
    for (let v = 0; v < 256; v++) mem.write32(v * 4, 0x500);
    mem.write8(0x500, 0xf4);
  } else {
    putDesc(cpu, GDT, 0, [0, 0]);
    putDesc(cpu, GDT, 1, segDesc(0, 0xffffffff, 0x9a));
    putDesc(cpu, GDT, 2, segDesc(0, 0xffffffff, 0x92));
    cpu.gdtrBase = GDT; cpu.gdtrLimit = 3 * 8 - 1;
    cpu.idtrBase = IDT; cpu.idtrLimit = 256 * 8 - 1;
    for (let v = 0; v < 48; v++) {
      putIdt(cpu, v, gateDesc(KCS, handlerAddr(v), 0xe, 0));
      mem.write8(handlerAddr(v), 0xf4);
    }
    cpu.resetFlat32(KCODE);
    cpu.setSegmentCache(CS, KCS, 0, setup.csLimit ?? 0xffffffff, setup.csLimit === undefined ? 0xc09b : 0x409b);
    for (const s of [ES, SS, DS, FS, GS]) cpu.setSegmentCache(s, KDS, 0, 0xffffffff, 0xc093);
    mem.u8.set(code, KCODE);
    if (setup.paging) {
      identityMap(cpu, 16 << 20);
      for (const p of setup.absent) mem.write32(pteAddr(DATA + p * 4096), 0);
      for (const p of setup.readonly) mem.write32(pteAddr(DATA + p * 4096), (DATA + p * 4096) | 5);
      cpu.cr3 = PD;
      cpu.cr0 |= 0x80010000; // PG | WP
      cpu.updatePaging();
    }
  }
  for (let i = 0; i < 8; i++) if (i !== 4) cpu.r32[i] = setup.regs[i]!;
  cpu.r32[1] = 0; // ECX: set by the program
  if (setup.real) {
    cpu.r32[4] = 0xfff0; cpu.r32[6] = setup.regs[6]! & 0x3fff; cpu.r32[7] = 0x4000 + (setup.regs[7]! & 0x3fff);
  } else {
    cpu.r32[4] = KSTACK_TOP;
    cpu.r32[6] = DATA + 0x100 + (setup.regs[6]! & 0x7fff);
    cpu.r32[7] = DATA + 0x8000 + (setup.regs[7]! & 0x7fff);
  }
  for (let i = 0; i < 0x10000; i += 4) mem.write32((setup.real ? RDATA_SEG * 16 : DATA) + i, Math.imul(i + 1, 0x9e3779b1));
  const log: number[] = [];
  let ev = 0;
  cpu.nextEventCycle = setup.eventPeriods[0]!;
  cpu.eventHook = () => {
    log.push(cpu.cycles, cpu.instructions, cpu.eip);
    ev++;
    cpu.nextEventCycle = cpu.cycles + setup.eventPeriods[ev % setup.eventPeriods.length]!;
    // Now and then a pending (masked) interrupt: attention stays set, compiled code must not run.
    cpu.setIntrLine(ev % 5 === 3);
  };
  return { cpu, log };
}

function snapshot(cpu: Cpu, log: number[]): unknown {
  let h = 0;
  const m = cpu.mem.i32;
  for (let i = 0; i < (2 << 20) >>> 2; i++) h = (Math.imul(h, 31) + m[i]!) | 0;
  for (let i = DATA >>> 2; i < (DATA + 0x20000) >>> 2; i++) h = (Math.imul(h, 31) + m[i]!) | 0;
  return {
    regs: Array.from(cpu.r32), eip: cpu.eip, flags: cpu.flags, cycles: cpu.cycles, instructions: cpu.instructions,
    itlb: { ...cpu.itlb.counters }, dtlb: { ...cpu.dtlb.counters }, walkRefs: cpu.walkRefs, adUpdates: cpu.adUpdates,
    cr2: cpu.cr2, events: Array.from(cpu.eventCounts), stop: cpu.stopReason, halted: cpu.halted, mem: h, log,
    instrStart: cpu.instrStart,
  };
}

function runBoth(setup: Setup, code: number[]): { a: unknown; b: unknown; jitInstructions: number } {
  const out: unknown[] = [];
  let jitInstructions = 0;
  for (const jit of [false, true]) {
    const { cpu, log } = machine(setup, code, jit);
    let total = 0;
    for (let i = 0; total < 6000 && cpu.stopReason === null && !cpu.halted; i++) {
      const n = cpu.run(setup.budgets[i % setup.budgets.length]!);
      total += n;
      if (n === 0) break;
    }
    out.push(snapshot(cpu, log));
    if (jit) jitInstructions = cpu.jit!.stats.instructions;
  }
  return { a: out[0], b: out[1], jitInstructions };
}

// ---- the program generator ----

/** One generated instruction: a kind and raw random material. */
interface Ins { k: number; a: number; b: number; c: number; d: number }

const KINDS = 41;
const ins = fc.record({
  k: fc.integer({ min: 0, max: KINDS - 1 }), a: fc.nat(255), b: fc.nat(255), c: fc.integer(), d: fc.nat(7),
});

/** Destination registers (never ECX, the loop counter, nor ESP). */
const DST = [0, 2, 3, 5];

/**
 * Encodes a program: `mov ecx, n; L: body; dec ecx; jnz L; hlt; sub: xor eax, ebx; ret`
 * (16-bit registers and addressing in real mode). Self-modifying stores are patched to
 * target the immediate of an `add eAX, imm8` in the body.
 */
function assemble(body: Ins[], iterations: number, real: boolean): number[] {
  const out: number[] = [];
  const imm32 = (v: number): number[] => (real ? [v & 255, (v >> 8) & 255] : [v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255]);
  const le32 = (v: number): number[] => [v & 255, (v >> 8) & 255, (v >> 16) & 255, (v >>> 24) & 255];
  const codeBase = real ? 0 : KCODE;
  out.push(0xb9, ...imm32(iterations));
  const loop = out.length;
  const smcSites: number[] = []; // offsets of disp32/disp16 fields to patch
  const smcTargets: number[] = []; // offsets of imm8 bytes that may be rewritten
  const calls: number[] = []; // offsets of call rel fields
  const mem = (x: Ins, reg: number): number[] => {
    // A memory operand: mostly [esi/edi + disp8] (disp up to ±128: crosses pages at times).
    const r3 = (reg & 7) << 3;
    const disp = ((x.c >> 8) << 24) >> 24;
    if (real) {
      switch (x.d & 3) {
        case 0: return [0x40 | r3 | 4, disp & 255]; // [si+d8]
        case 1: return [0x40 | r3 | 5, disp & 255]; // [di+d8]
        case 2: return [0x00 | r3 | 0]; // [bx+si]
        default: return [0x80 | r3 | 4, ...imm32(x.c & 0xfff)]; // [si+d16]
      }
    }
    switch (x.d & 3) {
      case 0: return [0x40 | r3 | 6, disp & 255]; // [esi+d8]
      case 1: return [0x40 | r3 | 7, disp & 255]; // [edi+d8]
      case 2: return [0x44 | r3, 0x3e, disp & 255]; // [esi+edi*1+d8] (wild: faults or open bus)
      default: return [0x80 | r3 | 6, ...le32(x.c & 0xfff)]; // [esi+d32]
    }
  };
  const modrm = (x: Ins, reg: number): number[] => ((x.a & 3) === 0 ? [0xc0 | ((reg & 7) << 3) | DST[x.b & 3]!] : mem(x, reg));
  const dst = (x: Ins): number => DST[x.a & 3]!;
  let skipArmed = -1;
  for (const x of body) {
    const start = out.length;
    const op66 = (x.b & 0x40) !== 0 ? [0x66] : [];
    switch (x.k) {
      case 0: case 1: case 2: // ALU r/m, r  and  r, r/m (8/16/32)
        out.push(...op66, ((x.a >> 2) & 7) << 3 | (x.k === 0 ? 1 : x.k === 1 ? 3 : (x.a & 0x20 ? 0 : 2)), ...modrm(x, x.k === 1 ? dst(x) : x.b >> 2));
        break;
      case 3: out.push(...op66, ((x.a >> 2) & 7) << 3 | 5, ...(real === (op66.length > 0) ? le32(x.c) : [x.c & 255, (x.c >> 8) & 255])); break;
      case 4: out.push(((x.a >> 2) & 7) << 3 | 4, x.c & 255); break; // AL, imm8
      case 5: out.push(...op66, 0x83, ...modrm(x, x.a >> 2), x.c & 255); break;
      case 6: out.push(0x80, ...modrm(x, x.a >> 2), x.c & 255); break;
      case 7: out.push(0x81, ...modrm(x, x.a >> 2), ...imm32(x.c)); break;
      case 8: out.push(...op66, 0x85, ...modrm(x, x.b)); break;
      case 9: out.push(0xf7, ...modrm(x, (x.b & 3)), ...((x.b & 3) <= 1 ? imm32(x.c) : [])); break; // TEST/NOT/NEG
      case 10: out.push(0x40 + dst(x)); break;
      case 11: out.push(0x48 + dst(x)); break;
      case 12: out.push(...op66, 0xff, ...modrm(x, x.b & 1)); break; // INC/DEC r/m
      case 13: out.push(0xfe, ...modrm(x, x.b & 1)); break;
      case 14: out.push(...op66, 0x89, ...modrm(x, x.b)); break;
      case 15: out.push(...op66, 0x8b, ...(x.a & 3 ? mem(x, dst(x)) : [0xc0 | (dst(x) << 3) | (x.b & 7)])); break;
      case 16: out.push(0x88 | (x.b & 2), ...modrm(x, x.b & 7)); break;
      case 17: out.push(0xc7, ...modrm(x, 0), ...imm32(x.c)); break;
      case 18: out.push(0xb8 + dst(x), ...imm32(x.c)); break;
      case 19: out.push(0x8d, ...mem(x, dst(x))); break; // LEA
      case 20: out.push(0x0f, [0xb6, 0xb7, 0xbe, 0xbf][x.b & 3]!, ...(x.a & 3 ? mem(x, dst(x)) : [0xc0 | (dst(x) << 3) | (x.b >> 4 & 7)])); break;
      case 21: out.push(0x0f, 0x90 + (x.b & 15), ...modrm(x, 0)); break; // SETcc
      case 22: out.push(0x0f, 0x40 + (x.b & 15), ...(x.a & 3 ? mem(x, dst(x)) : [0xc0 | (dst(x) << 3) | (x.b >> 4 & 7)])); break;
      case 23: out.push(...op66, [0xc1, 0xd1, 0xd3, 0xc0][x.d & 3]!, ...modrm(x, x.b & 7), ...((x.d & 3) === 0 || (x.d & 3) === 3 ? [x.c & 63] : [])); break;
      case 24: out.push(0x0f, 0xaf, ...(x.a & 3 ? mem(x, dst(x)) : [0xc0 | (dst(x) << 3) | (x.b & 7)])); break;
      case 25: out.push(0x6b, 0xc0 | (dst(x) << 3) | (x.b & 7), x.c & 255); break;
      case 26: out.push(0x87, ...modrm(x, dst(x))); break; // XCHG r/m, r
      case 27: out.push(0x90 + [0, 2, 3, 5][x.b & 3]!); break;
      case 28: out.push([0x98, 0x99, 0xf8, 0xf9, 0xf5, 0x90][x.b % 6]!); break;
      case 29: out.push(0x50 + (x.b & 7), 0x58 + dst(x)); break; // PUSH r; POP r
      case 30: out.push(0x6a, x.c & 255, 0x58 + dst(x)); break;
      case 31: // Jcc over the next instruction
        out.push(0x70 + (x.b & 15), 0);
        skipArmed = out.length - 1;
        continue;
      case 32: out.push(0xe8, ...imm32(0)); calls.push(out.length - (real ? 2 : 4)); break;
      case 33: // interpreter-only: MUL/DIV, BT, BSF, LAHF/SAHF, XADD, MOVSD, PUSHF/POPF, CMPXCHG, SHLD
        switch (x.b % 10) {
          case 0: out.push(0xf7, 0xe0 | (x.a & 7)); break; // MUL
          case 1: out.push(0xf7, 0xf0 | [3, 5][x.a & 1]!); break; // DIV ebx/ebp (#DE at times)
          case 2: out.push(0x0f, 0xa3, ...modrm(x, x.a & 7)); break;
          case 3: out.push(0x0f, 0xbc, 0xc0 | (dst(x) << 3) | (x.a & 7)); break;
          case 4: out.push(0x9f, 0x80, 0xf4, x.c & 0xd5, 0x9e); break; // LAHF; XOR AH, imm; SAHF
          case 5: out.push(0x0f, 0xc1, ...mem(x, dst(x))); break;
          case 6: out.push(0xa5); break; // MOVSD
          case 7: out.push(0x9c, 0x58, 0x35, ...imm32((x.c & 0x8d5) | (x.a === 7 ? 0x100 : 0)), 0x50, 0x9d); break; // PUSHF; POP; XOR; PUSH; POPF (TF at times)
          case 8: out.push(0x0f, 0xb1, ...modrm(x, dst(x))); break;
          default: out.push(0x0f, 0xa4, 0xc0 | ((x.a & 7) << 3) | dst(x), x.c & 31); break;
        }
        break;
      case 34: out.push(0x83, 0xc0, x.c & 255); smcTargets.push(out.length - 1); break; // add eAX, imm8
      case 35: // self-modifying store: mov byte [abs], imm8 (patched below)
        out.push(...(real ? [0x2e, 0xc6, 0x06] : [0xc6, 0x05]), ...imm32(0), x.c & 255);
        smcSites.push(out.length - 1 - (real ? 2 : 4));
        break;
      case 36: out.push(0x67, 0x8b, (real ? 0x46 : 0x44) | (dst(x) << 3), x.a & 0x3f); break; // 16/32-bit address-size override: [si+d8] / [esi+d8] in the other size (reads low memory)
      case 37: out.push(...op66, 0xa1 + (x.b & 2), ...(real ? imm32(x.c & 0xfffe) : le32(DATA + (x.c & 0x3ffc)))); break; // MOV eAX, moffs / moffs, eAX
      case 38: out.push(0x0f, 0xba, 0xe0 | dst(x), x.c & 31); break; // BT r, imm (handler)
      case 39: // handler calls the block continues after (they write memory or load segments)
        switch (x.b % 9) {
          case 0: out.push(0x60, 0x61); break; // PUSHA; POPA
          case 1: out.push(0x1e, 0x07); break; // PUSH DS; POP ES
          case 2: out.push(0x8c, 0xd8 | (x.a & 1 ? 0 : 0), 0x8e, 0xc0); break; // MOV eAX, DS; MOV ES, eAX
          case 3: out.push(0xab); break; // STOSD
          case 4: out.push(0xc8, x.c & 0x1c, 0, 0, 0xc9); break; // ENTER n, 0; LEAVE
          case 5: out.push(0x6a, x.c & 255, 0x8f, ...mem(x, 0)); break; // PUSH imm; POP r/m
          case 6: out.push(0xe4, 0x80 | (x.a & 15)); break; // IN AL, imm8 (ends the block)
          case 7: out.push(0x51, 0xb9, ...imm32(x.c & 0x3f), 0xf3, 0xaa, 0x59); break; // REP STOSB (batches end at events)
          default: out.push(0x0f, 0xab, ...mem(x, dst(x))); break; // BTS m, r
        }
        break;
      default: out.push(0x26 + 8 * (x.b & 3), 0x8b, ...mem(x, dst(x))); break; // segment override prefix
    }
    if (skipArmed >= 0) { out[skipArmed] = (out.length - start) & 255; skipArmed = -1; }
  }
  out.push(0x49, 0x0f, 0x85, ...imm32(loop - (out.length + 3 + (real ? 2 : 4))));
  out.push(0xf4);
  const sub = out.length;
  out.push(0x31, 0xd8, 0xc3);
  for (const c of calls) {
    const rel = sub - (c + (real ? 2 : 4));
    const b = imm32(rel);
    for (let i = 0; i < b.length; i++) out[c + i] = b[i]!;
  }
  smcSites.forEach((site, i) => {
    const t = smcTargets.length > 0 ? smcTargets[i % smcTargets.length]! : loop;
    const b = imm32(codeBase + t);
    for (let k = 0; k < b.length; k++) out[site + k] = b[k]!;
  });
  return out;
}

const setupArb = (real: boolean): fc.Arbitrary<Setup> => fc.record({
  real: fc.constant(real),
  paging: real ? fc.constant(false) : fc.boolean(),
  absent: fc.array(fc.nat(15), { maxLength: 2 }),
  readonly: fc.array(fc.nat(15), { maxLength: 2 }),
  costSeed: fc.integer(),
  regs: fc.array(fc.integer(), { minLength: 8, maxLength: 8 }),
  eventPeriods: fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 1, maxLength: 4 }),
  budgets: fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 4 }),
  threshold: fc.constantFrom(0, 1, 10, 50),
});

describe('JIT equivalence with the interpreter', () => {
  it('flat 32-bit protected mode (paging on and off)', () => {
    let jitRan = 0;
    fc.assert(fc.property(setupArb(false), fc.array(ins, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 60 }),
      (setup, body, iters) => {
        const code = assemble(body, iters, false);
        const { a, b, jitInstructions } = runBoth(setup, code);
        jitRan += jitInstructions;
        expect(b).toEqual(a);
      }), { numRuns: 300 });
    expect(jitRan).toBeGreaterThan(10000);
  });

  it('real mode (16-bit code, 16-bit addressing)', () => {
    let jitRan = 0;
    fc.assert(fc.property(setupArb(true), fc.array(ins, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 60 }),
      (setup, body, iters) => {
        const code = assemble(body, iters, true);
        const { a, b, jitInstructions } = runBoth(setup, code);
        jitRan += jitInstructions;
        expect(b).toEqual(a);
      }), { numRuns: 200 });
    expect(jitRan).toBeGreaterThan(10000);
  });
});

describe('JIT', () => {
  // mov ecx, N; L: add eax, [esi+0x200000]; add esi, 4; and esi, 0xfffc; dec ecx; jnz L; hlt
  const loop = [0xb9, 0x10, 0x27, 0, 0, 0x03, 0x86, 0, 0, 0x20, 0, 0x83, 0xc6, 0x04, 0x81, 0xe6, 0xfc, 0xff, 0, 0, 0x49, 0x75, 0xee, 0xf4];
  const setup: Setup = {
    real: false, paging: true, absent: [], readonly: [], costSeed: 7, regs: [0, 0, 0, 0, 0, 0, 0, 0],
    eventPeriods: [1000], budgets: [100000], threshold: 50,
  };

  it('runs a hot loop in compiled code, with the same result', () => {
    const { a, b } = runBoth(setup, loop);
    expect(b).toEqual(a);
    const { cpu } = machine(setup, loop, true);
    cpu.run(100000);
    expect(cpu.halted).toBe(true);
    const s = cpu.jit!.stats;
    expect(s.compiled).toBeGreaterThan(0);
    // Not all: the event hook raises a (masked) interrupt line at times, which keeps
    // compiled code out until the hook lowers it again.
    expect(s.instructions).toBeGreaterThan(0.6 * cpu.instructions);
  });

  it('recompiles a block whose bytes changed under it', () => {
    const { cpu } = machine({ ...setup, threshold: 1 }, loop, true);
    cpu.run(200);
    // Rewrite the loop's `add esi, 4` into `add esi, 8` behind the CPU's back (as DMA would).
    cpu.mem.write8(KCODE + 13, 8);
    const esi = cpu.r32[6]!;
    cpu.run(5);
    expect(cpu.jit!.stats.invalidations).toBe(1);
    expect((cpu.r32[6]! - esi) & 0xffff).toBe(8);
  });

  it('leaves compiled code when the budget is used up, at the exact instruction', () => {
    const { cpu } = machine({ ...setup, threshold: 1 }, loop, true);
    for (let i = 0; i < 100; i++) expect(cpu.run(3)).toBe(3);
    expect(cpu.instructions).toBe(300);
  });

  it('raises #GP for a jump beyond the CS limit from compiled code, as the interpreter does', () => {
    // L: inc eax; dec ecx; jnz L; jmp +0x200 (beyond the limit); the limit covers the loop only.
    const code = [0xb9, 0x64, 0, 0, 0, 0x40, 0x49, 0x75, 0xfc, 0xeb, 0x7f];
    for (const threshold of [0, 5]) {
      const { a, b, jitInstructions } = runBoth({ ...setup, threshold, csLimit: KCODE + 0x20 }, code);
      expect(b).toEqual(a);
      expect(jitInstructions).toBeGreaterThan(100);
      expect((a as { events: number[] }).events[13]).toBe(1);
    }
  });

  it('compiles the loop body and ends the block after HLT, run by its handler', () => {
    const { cpu } = machine(setup, loop, false);
    const b = compileBlock(cpu, KCODE + 5, KCODE + 5, { maxInstructions: 64 })!;
    expect(b.count).toBe(6);
    expect(b.length).toBe(19);
    expect(b.source).toContain('H[756](c)'); // 0x200 | 0xF4
  });
});
