/**
 * The JIT under handler-table overlays (src/machine/cpu/jit, docs/vmm-design.md "Handler
 * table"): a monitor's or the branch log's wrappers must run exactly as when interpreted.
 * Every guest and workload runs twice under each monitor, JIT off and on (with a low
 * compile threshold, so that most code runs compiled), and the run records (cycles,
 * accounting categories, TLB counters, events, devices, monitor stats), the registers and
 * the whole physical memory (guest and monitor) must be identical.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Cpu } from '../../src/machine/cpu/cpu.js';
import { wrappedIndices } from '../../src/machine/cpu/jit/compiler.js';
import { HANDLERS, type Handler } from '../../src/machine/cpu/op-table.js';
import { Machine } from '../../src/machine/machine.js';
import { DEFAULT_PROFILE, DEFAULT_VMM_PROFILE, loadProfile } from '../../src/profiles/index.js';
import { workloadForExec } from '../../src/cli/workloads.js';
import { installBranchLog } from '../../src/trace/branch-log.js';
import { finishGuestRun, prepareGuest, type GuestRunSpec } from '../../src/trace/run-guest.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import type { MonitorMode } from '../../src/vmm/index.js';
import { readGuest } from '../e2e/guest-harness.js';

interface Variant { mode: MonitorMode; paging: 'nested' | 'shadow'; label: string }
const VARIANTS: Variant[] = [
  { mode: 'full', paging: 'nested', label: 'full' },
  { mode: 'trap', paging: 'nested', label: 'trap' },
  { mode: 'hw', paging: 'nested', label: 'hw nested' },
  { mode: 'hw', paging: 'shadow', label: 'hw shadow' },
];

/** What must not depend on the JIT: the record, the CPU state and all of memory. */
interface Observed {
  record: string;
  state: string;
  branches: string;
  instructions: number;
  jitInstructions: number;
}

function runImage(image: string, params: string[], v: Variant, jit: boolean, branchLog = false): Observed {
  let bytes: Uint8Array, devices, maxInstructions = 200_000_000;
  if (image.startsWith('workload:')) {
    const w = workloadForExec(image, params);
    bytes = w.bytes; devices = w.machine; maxInstructions = w.maxInstructions;
  } else {
    bytes = readGuest(image);
  }
  const spec: GuestRunSpec = {
    image: { bytes, path: image }, devices, mode: v.mode, modeOptions: { paging: v.paging, vpid: true },
    profile: loadProfile(v.mode === 'native' ? DEFAULT_PROFILE : DEFAULT_VMM_PROFILE), maxInstructions,
  };
  const p = prepareGuest(spec);
  const cpu = p.machine.cpu;
  cpu.jitEnabled = jit;
  if (jit) cpu.jit!.threshold = 300; // compile nearly everything that loops
  const log: string[] = [];
  if (branchLog) {
    installBranchLog(cpu, {
      tnt: (c, taken) => { log.push(`${c.instructions}${taken ? 'T' : 'N'}`); },
      tip: (c, target) => { log.push(`${c.instructions}>${target.toString(16)}`); },
    });
  }
  const outcome = p.machine.run({ maxInstructions });
  const r = finishGuestRun(spec, p, outcome);
  const state = {
    r32: [...cpu.r32], eip: cpu.eip, flags: cpu.flags, cpl: cpu.cpl, cr0: cpu.cr0, cr3: cpu.cr3, cr4: cpu.cr4,
    segSel: [...cpu.segSel], segBase: [...cpu.segBase], instrStart: cpu.instrStart,
    mem: createHash('sha256').update(p.machine.mem.u8).digest('hex'),
  };
  return {
    record: serializeRunRecord(r.record), state: JSON.stringify(state), branches: log.join(' '),
    instructions: outcome.instructions, jitInstructions: cpu.jit?.stats.instructions ?? 0,
  };
}

function compare(image: string, params: string[], v: Variant, branchLog = false): { instructions: number; jit: number } {
  const off = runImage(image, params, v, false, branchLog);
  const on = runImage(image, params, v, true, branchLog);
  expect(on.record).toBe(off.record);
  expect(on.state).toBe(off.state);
  expect(on.branches).toBe(off.branches);
  expect(off.jitInstructions).toBe(0);
  return { instructions: on.instructions, jit: on.jitInstructions };
}

describe('JIT under overlays: a table with wrappers', () => {
  // mov ecx, 300; L: add eax, ecx; nop; dec ecx; nop; jnz L; mov al, 1; out 0xf4, al
  // (the block at L goes on after each wrapped instruction and loops after the JNZ)
  const CODE = [0xb9, 0x2c, 0x01, 0x00, 0x00, 0x01, 0xc8, 0x90, 0x49, 0x90, 0x75, 0xf9, 0xb0, 0x01, 0xe6, 0xf4];
  const profile = loadProfile().profile;

  function run(jit: boolean, installAfter: number): { out: unknown; counts: number[]; jitInstructions: number } {
    const m = new Machine({ memoryMiB: 1, profile, jit });
    m.loadFlat(Uint8Array.from(CODE), 't.bin', { loadAddress: 0x1000 });
    if (jit) m.cpu.jit!.threshold = 0;
    const counts = [0, 0, 0];
    const overlay: Handler[] = HANDLERS.slice();
    // Opcodes the compiler transcribes inline: NOP, DEC ECX and JNZ rel8.
    const wrap = (idx: number, k: number, extra: number): void => {
      const h = HANDLERS[idx]!;
      overlay[idx] = (c: Cpu) => { counts[k]!++; h(c); c.charge('test', extra); };
    };
    wrap(0x290, 0, 3);
    // Self-modifying wrapper: NOPs 300..500 rewrite the block's own ADD back and forth
    // (add eax, ecx ↔ add eax, eax), before and after the point where the block continues.
    const nop = overlay[0x290]!;
    overlay[0x290] = (c: Cpu) => {
      nop(c);
      if (counts[0]! >= 300 && counts[0]! <= 500) c.mem.write8(0x1006, counts[0]! % 3 === 0 ? 0xc0 : 0xc8);
    };
    wrap(0x249, 1, 5);
    wrap(0x275, 2, 7);
    // Timer events at odd cycle counts (the clock's hook replaced: the program uses no
    // device but the exit port): compiled code must leave exactly where the interpreter
    // would look at them, also right after a wrapper.
    const cpu = m.cpu, events: number[] = [];
    let k = 0;
    cpu.nextEventCycle = 41;
    cpu.eventHook = () => {
      events.push(cpu.cycles, cpu.instructions, cpu.eip);
      cpu.nextEventCycle = cpu.cycles + [37, 101, 13, 64][k++ % 4]!;
    };
    // Some instructions natively first (blocks compiled for HANDLERS), then the overlay.
    if (installAfter > 0) m.run({ maxInstructions: installAfter });
    m.cpu.setTable(overlay);
    // Small run slices: the budget must stop compiled code at the same instruction too.
    const o = m.run({ maxInstructions: 10_000, sliceInstructions: 29 });
    return {
      out: { o, regs: [...m.cpu.r32], eip: m.cpu.eip, tlb: { ...m.cpu.itlb.counters }, events },
      counts, jitInstructions: m.cpu.jit?.stats.instructions ?? 0,
    };
  }

  it('finds the wrapped entries by comparing with HANDLERS once', () => {
    const t = HANDLERS.slice();
    expect([...wrappedIndices(t)].every((x) => x === 0)).toBe(true);
    t[0x75] = (c: Cpu) => HANDLERS[0x75]!(c);
    t[0x301] = (c: Cpu) => HANDLERS[0x301]!(c);
    const w = wrappedIndices(t);
    expect([...w.keys()].filter((i) => w[i] !== 0)).toEqual([0x75, 0x301]);
  });

  for (const after of [0, 200]) {
    it(`wrappers of inlined opcodes run as interpreted (overlay installed after ${after} instructions)`, () => {
      const a = run(false, after), b = run(true, after);
      expect(b.counts).toEqual(a.counts);
      if (after === 0) expect(a.counts).toEqual([600, 300, 300]); // every one went through its wrapper
      expect(a.counts[0]).toBeGreaterThan(0);
      expect(b.out).toEqual(a.out);
      expect(b.jitInstructions).toBeGreaterThan(0);
    });
  }

  it('the JIT stays on when an overlay is installed, and can be turned off by a Machine option', () => {
    const m = new Machine({ memoryMiB: 1, profile });
    m.cpu.setTable(HANDLERS.slice());
    expect(m.cpu.jitEnabled).toBe(true);
    expect(new Machine({ memoryMiB: 1, profile, jit: false }).cpu.jitEnabled).toBe(false);
  });
});

describe('JIT on = JIT off under the monitors: the gcc test guests', () => {
  for (const v of VARIANTS) {
    it(v.label, () => {
      let total = 0, jit = 0;
      for (const g of ['hello', 'sys', 'prot', 'compute', 'sys-heavy-small']) {
        const r = compare(g, [], v);
        total += r.instructions; jit += r.jit;
      }
      // Most instructions ran compiled: the overlay did not leave the JIT idle.
      expect(jit / total).toBeGreaterThan(0.3);
    }, 240_000);
  }
});

describe('JIT on = JIT off under the monitors: the workloads', () => {
  const WORKLOADS: [string, string[]][] = [
    ['workload:syscall', ['n=300']], ['workload:forkwait', ['n=10']], ['workload:pgfault', ['n=200']],
    ['workload:ctxsw', ['n=100']], ['workload:compute', ['pages=256', 'accesses=20000']],
  ];
  for (const v of [...VARIANTS, { mode: 'pv' as const, paging: 'nested' as const, label: 'pv' }]) {
    it(v.label, () => {
      let total = 0, jit = 0;
      for (const [w, params] of WORKLOADS) {
        const r = compare(w, params, v);
        total += r.instructions; jit += r.jit;
      }
      expect(jit / total).toBeGreaterThan(0.3);
    }, 300_000);
  }
});

describe('JIT on = JIT off with the branch log on top of an overlay', () => {
  for (const v of [VARIANTS[0]!, VARIANTS[2]!]) {
    it(v.label, () => {
      const r = compare('sys-heavy-small', [], v, true);
      expect(r.jit).toBeGreaterThan(0);
    }, 120_000);
  }
});
