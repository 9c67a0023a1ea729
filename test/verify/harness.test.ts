// The verifier's guest harness and CLI: a generated program runs in every configuration and
// its dumped outcome is what the program computes (checked against TypeScript arithmetic),
// faults are recorded, listings disassemble, and bad names give one-line errors.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { main } from '../../src/cli/main.js';
import { guestProgram, kernelProgram } from '../../src/verify/arbitraries.js';
import { listing, type GuestProgram } from '../../src/verify/guest-program.js';
import { CONFIGS, runProgram, UNSUPPORTED_CONFIGS } from '../../src/verify/run.js';
import { MUTANT_NAMES } from '../../src/vmm/mutants.js';
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

  it('generated programs assemble, run and list', () => {
    for (const p of fc.sample(fc.oneof(guestProgram(), kernelProgram({ dma: true })), { numRuns: 10, seed: 9 })) {
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
