// The verifier's guest harness and CLI: a generated program runs in every configuration and
// its dumped outcome is what the program computes (checked against TypeScript arithmetic),
// faults are recorded, listings disassemble, and bad names give one-line errors.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { main } from '../../src/cli/main.js';
import { guestProgram, kernelProgram } from '../../src/verify/arbitraries.js';
import { LAYOUT, REC, listing, type GuestProgram } from '../../src/verify/guest-program.js';
import { equivalenceCheck } from '../../src/verify/properties.js';
import { CONFIGS, runProgram, UNSUPPORTED_CONFIGS } from '../../src/verify/run.js';
import { MUTANT_NAMES, withMutant } from '../../src/vmm/mutants.js';
import { MONITOR_MODES } from '../../src/vmm/index.js';

const RUNNABLE = CONFIGS.filter((c) => UNSUPPORTED_CONFIGS[c] === undefined);

describe('verifier harness', () => {
  it('the configurations come from MONITOR_MODES (hw split by paging)', () => {
    for (const m of MONITOR_MODES) expect(CONFIGS.some((c) => c === m || c.startsWith(`${m}-`))).toBe(true);
  });

  it('dumps the registers and flags a program computes, in every configuration', () => {
    const p: GuestProgram = {
      regs: [0x7fffffff, 5, 0, 1, 0, 0, 0], paging: false,
      items: [{ op: 'alu', f: 'add', d: 'eax', s: 'ebx' }, { op: 'store', s: 'eax', off: 8 }, { op: 'out', v: 0x41 }, { op: 'loop', n: 3, body: [{ op: 'unary', f: 'inc', d: 'ecx' }] }],
    };
    for (const c of RUNNABLE) {
      const r = runProgram(p, c);
      expect(r.exit, c).toBe('exit 1');
      expect(r.outcome.dump[0], c).toBe(0x80000041); // 0x7fffffff + 1, then `mov al, 0x41` of the OUT
      expect(r.outcome.dump[1], c).toBe(8); // 5 + 3 iterations
      expect(r.outcome.console, c).toBe('41');
      expect(r.machine.mem.read32(0x200008) >>> 0, c).toBe(0x80000000);
      // The last flag writer is the loop's DEC of its counter reaching 0: ZF=1, SF=0, OF=0.
      expect(r.outcome.dump[8]! & 0x1c0, c).toBe(0x40);
    }
  });

  it('records a page fault (vector, error code, CR2) through the harness IDT', () => {
    const p: GuestProgram = { regs: [1, 2, 3, 4, 5, 6, 7], paging: true, items: [{ op: 'pte', t: 0, page: 3, frame: 0x200, flags: 5 }, { op: 'wr', s: 'ecx', page: 3, off: 8 }] };
    for (const c of RUNNABLE) {
      const r = runProgram(p, c);
      expect(r.outcome.dump.slice(9), c).toEqual([15, 3, 0x403008]);
    }
  });

  it('far CALL/JMP, INT n, POP of segment registers and ring transitions: what the CPU pushed, or the fault', () => {
    const rec = (r: ReturnType<typeof runProgram>, off: number): number => r.machine.mem.read32(LAYOUT.rec + off) >>> 0;
    const grid = (items: GuestProgram['items']): GuestProgram => ({ regs: [1, 2, 3, 4, 5, 6, 7], paging: false, items });
    // Expected from the SDM's rules at CPL 0 (and 3 in the ring3 body); trap is the exception (below).
    const cases: [GuestProgram['items'], (r: ReturnType<typeof runProgram>) => void][] = [
      [[{ op: 'farcall', sel: 0x08 }], (r) => { expect(rec(r, REC.callCs)).toBe(0x08); expect(r.outcome.dump[9]).toBe(0); }],
      [[{ op: 'farcall', sel: 0x4b, ind: true }], (r) => { expect(rec(r, REC.callCs)).toBe(0x08); expect(r.outcome.dump[9]).toBe(0); }],
      // Conforming DPL 2 from CPL 0: DPL > CPL, #GP(selector).
      [[{ op: 'farcall', sel: 0x40 }], (r) => expect(r.outcome.dump.slice(9, 11)).toEqual([14, 0x40])],
      [[{ op: 'farjmp', sel: 0x68 }, { op: 'movi', d: 'ebx', imm: 9 }], (r) => { expect(r.outcome.dump[3]).toBe(9); expect(r.outcome.dump[9]).toBe(0); }],
      // INT 0x30: the handler saw CS 0x08 and EFLAGS with IF clear (the harness runs with CLI).
      [[{ op: 'int', n: 0x30 }], (r) => { expect(rec(r, REC.intCs)).toBe(0x08); expect(rec(r, REC.intFlags) & 0x202).toBe(0x2); }],
      // Not-present gate: #NP(vector * 8 + 2); beyond the IDT limit: #GP(vector * 8 + 2).
      [[{ op: 'int', n: 0x33 }], (r) => expect(r.outcome.dump.slice(9, 11)).toEqual([12, 0x33 * 8 + 2])],
      [[{ op: 'int', n: 0x80 }], (r) => expect(r.outcome.dump.slice(9, 11)).toEqual([14, 0x80 * 8 + 2])],
      // DPL-0 data with RPL 1 at CPL 0: #GP(selector without RPL).
      [[{ op: 'popseg', seg: 'ds', sel: 0x11 }], (r) => expect(r.outcome.dump.slice(9, 11)).toEqual([14, 0x10])],
      // Ring 3: a far call to the conforming segment (CPL stays 3), INT 0x31 (DPL 3), back through the gate.
      [[{ op: 'ring3', body: [{ op: 'farcall', sel: 0x43 }, { op: 'int', n: 0x31 }] }], (r) => {
        expect(r.outcome.dump[9]).toBe(0);
        expect([rec(r, REC.callCs), rec(r, REC.intCs), rec(r, REC.homeCs), rec(r, REC.homeEsp), rec(r, REC.homeSs)]).toEqual([0x23, 0x23, 0x23, LAYOUT.stack3Top, 0x1b]);
        expect(r.outcome.dump[4]).toBe(LAYOUT.stackTop);
      }],
      // INT 0x30 (DPL 0) from ring 3: #GP(vector * 8 + 2).
      [[{ op: 'ring3', fl: 0x202, body: [{ op: 'int', n: 0x30 }] }], (r) => expect(r.outcome.dump.slice(9, 11)).toEqual([14, 0x30 * 8 + 2])],
    ];
    for (const c of RUNNABLE.filter((x) => x !== 'trap')) {
      for (const [items, check] of cases) {
        const r = runProgram(grid(items), c);
        expect(r.exit, `${c} ${JSON.stringify(items)}`).toBe('exit 1');
        check(r);
      }
    }
    // trap: the pushed CS shows RPL 1 (Robin & Irvine's CALL far), a DPL-1 segment is reachable.
    expect(rec(runProgram(grid([{ op: 'farcall', sel: 0x08 }]), 'trap'), REC.callCs)).toBe(0x09);
    expect(runProgram(grid([{ op: 'farjmp', sel: 0x58 }]), 'trap').outcome.dump[9]).toBe(0);
  });

  it('timer programs: ticks arrive, none inside a CLI region; the mutants deliver one there', () => {
    const p: GuestProgram = {
      regs: [1, 2, 3, 4, 5, 6, 7], paging: false, timer: true,
      items: [
        { op: 'loop', n: 3000, body: [{ op: 'alu', f: 'add', d: 'eax', s: 'ebx' }] },
        { op: 'clisti', body: [{ op: 'loop', n: 3000, body: [{ op: 'alu', f: 'xor', d: 'ecx', s: 'eax' }] }] },
      ],
    };
    for (const c of RUNNABLE) {
      const r = runProgram(p, c);
      expect(r.exit, c).toBe('exit 1');
      expect(r.machine.mem.read32(LAYOUT.ticks), c).toBeGreaterThan(0);
      expect(r.machine.mem.read32(LAYOUT.rec + REC.violations), c).toBe(0);
      // Nothing of the interrupt frames is left below the final ESP.
      expect(r.machine.mem.read32(LAYOUT.stackTop - 4), c).toBe(0);
    }
    expect(equivalenceCheck(p, RUNNABLE.filter((c) => c !== 'trap'))).toBeNull();
    for (const c of ['trap', 'full']) {
      const r = withMutant('virtual-if-ignored', () => runProgram(p, c));
      expect(r.machine.mem.read32(LAYOUT.rec + REC.violations), c).toBeGreaterThan(0);
    }
    for (const c of ['hw-nested', 'hw-shadow']) {
      const r = withMutant('hw-inject-ignores-if', () => runProgram(p, c));
      expect(r.machine.mem.read32(LAYOUT.rec + REC.violations), c).toBeGreaterThan(0);
    }
  });

  it('generated programs assemble, run and list', () => {
    for (const p of fc.sample(fc.oneof(guestProgram(), guestProgram({ timer: true, systemWeight: 3 }), kernelProgram({ dma: true })), { numRuns: 12, seed: 9 })) {
      expect(listing(p.items).length).toBeGreaterThan(0);
      expect(runProgram(p, 'native').exit).toMatch(/^exit 1$/);
    }
  });
});

describe('virtlab verify', () => {
  const cli = (args: string[]) => {
    let out = '', err = '';
    const status = main(['verify', ...args], { stdout: (b) => { out += typeof b === 'string' ? b : Buffer.from(b).toString(); }, stderr: (s) => { err += s; } });
    return { status, out, err };
  };
  it('an unknown property or mutant: one line naming the known ones, status 2', () => {
    const a = cli(['--property', 'nope']);
    expect(a.status).toBe(2);
    expect(a.err.trim().split('\n')).toHaveLength(1);
    expect(a.err).toContain('known: equivalence, trap-not-equivalent');
    const b = cli(['--mutants', '--only', 'nope']);
    expect(b.status).toBe(2);
    expect(b.err).toContain(MUTANT_NAMES.join(', '));
  });
  it('runs a property and reports it', () => {
    const r = cli(['--property', 'accounting', '--runs', '3', '--config', 'full']);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/^accounting: OK \(3 runs, seed 1/);
  });
});
