// The fast sample of the 80286 real-mode conformance vectors (the full run is
// `npm run conformance`), plus checks that the harness itself reports differences.
import { describe, expect, it } from 'vitest';
import type { Cpu } from '../../src/machine/cpu/cpu.js';
import { HANDLERS } from '../../src/machine/cpu/op-table.js';
import { decode, effectiveAddress, rulesFor } from './exclusions.js';
import { formatFailure, Harness, listSuites, loadSuite, type Vector, type VectorResult } from './runner.js';

/** Vectors run per file in `npm test` (the files hold 300 each). */
const SAMPLE = 60;
/** Vectors run per file with the JIT on (compiling is slower than interpreting one instruction). */
const SAMPLE_JIT = 15;

const harness = new Harness();
const suites = listSuites();

function clone(v: Vector): Vector {
  return JSON.parse(JSON.stringify(v)) as Vector;
}

describe('80286 real-mode conformance vectors (first %i of each file)', () => {
  it('finds the suite', () => {
    expect(suites.length).toBeGreaterThan(300);
  });

  it.each(suites)('%s', (suite) => {
    const vectors = loadSuite(suite).slice(0, SAMPLE);
    const failures: string[] = [];
    for (let i = 0; i < vectors.length; i++) {
      const r = harness.run(suite, vectors[i]!, i);
      if (r.status === 'fail') failures.push(formatFailure(suite, r));
    }
    expect(harness.leakCheck(), 'RAM left dirty after the file').toBe(0);
    expect(failures.slice(0, 5).join('\n') + (failures.length > 5 ? `\n... ${failures.length - 5} more` : '')).toBe('');
  });
});

describe('the same vectors with the JIT compiling every block (first %i of each file)', () => {
  const jitHarness = new Harness({ jit: true });
  it.each(suites)('%s', (suite) => {
    const vectors = loadSuite(suite).slice(0, SAMPLE_JIT);
    const failures: string[] = [];
    for (let i = 0; i < vectors.length; i++) {
      const r = jitHarness.run(suite, vectors[i]!, i);
      if (r.status === 'fail') failures.push(formatFailure(suite, r));
    }
    expect(failures.slice(0, 5).join('\n')).toBe('');
  });
  it('ran compiled code', () => {
    expect(jitHarness.cpu.jit!.stats.instructions).toBeGreaterThan(0);
  });
});

describe('the harness', () => {
  /** A vector of an implemented instruction that passes as recorded. */
  function passingVector(preferred: string[]): { suite: string; v: Vector } {
    for (const suite of preferred) {
      for (const v of loadSuite(suite).slice(0, 50)) {
        if (!v.exception && rulesFor(suite, v).exclude === null && harness.run(suite, v, 0).status === 'pass') return { suite, v };
      }
    }
    throw new Error('no passing vector among ' + preferred.join(' ') + ' (are MOV/ADD/NOP implemented?)');
  }

  function diffsOf(r: VectorResult): string[] {
    return r.status === 'fail' ? r.diffs : [];
  }

  it('reports a corrupted register expectation as a failure naming the register', () => {
    const { suite, v } = passingVector(['8B', '89', '01', '90']);
    const bad = clone(v);
    bad.final.regs.bx = ((bad.final.regs.bx ?? bad.initial.regs.bx) ^ 0x0100) & 0xffff;
    const r = harness.run(suite, bad, 0);
    expect(r.status).toBe('fail');
    expect(diffsOf(r).some((d) => d.startsWith('bx: expected'))).toBe(true);
  });

  it('reports a corrupted RAM expectation and a corrupted IP', () => {
    const { suite, v } = passingVector(['89', '01', '88']);
    const bad = clone(v);
    const [addr, byte] = bad.final.ram[0] ?? bad.initial.ram[bad.initial.ram.length - 1]!;
    bad.final.ram = [[addr, byte ^ 0x5a]];
    bad.final.regs.ip = ((bad.final.regs.ip ?? 0) + 1) & 0xffff;
    const r = harness.run(suite, bad, 0);
    expect(r.status).toBe('fail');
    expect(diffsOf(r).some((d) => d.startsWith('ram['))).toBe(true);
    expect(diffsOf(r).some((d) => d.startsWith('ip: expected'))).toBe(true);
  });

  it('reports a write the vector does not expect (stray RAM write)', () => {
    const { suite, v } = passingVector(['89', '01', '88']);
    const bad = clone(v);
    expect(bad.final.ram.length).toBeGreaterThan(0);
    // Pretend the destination byte was not expected to change.
    const [addr] = bad.final.ram[0]!;
    bad.final.ram = bad.final.ram.slice(1);
    const r = harness.run(suite, bad, 0);
    expect(r.status).toBe('fail');
    expect(diffsOf(r).some((d) => d.includes(addr.toString(16).toUpperCase().padStart(6, '0')))).toBe(true);
  });

  it('compares defined flags but not the undefined ones', () => {
    const suite = 'F6.4'; // MUL r/m8: SF ZF AF PF undefined, CF OF defined
    const v = loadSuite(suite).find((x) => harness.run(suite, x, 0).status === 'pass');
    expect(v, 'a passing MUL vector').toBeDefined();
    const flags = v!.final.regs.flags ?? ((v!.initial.regs.flags & 0xfff) | 2);
    const undefinedOnly = clone(v!);
    undefinedOnly.final.regs.flags = flags ^ 0x00d4; // SF ZF AF PF
    expect(harness.run(suite, undefinedOnly, 0).status).toBe('pass');
    const defined = clone(v!);
    defined.final.regs.flags = flags ^ 0x0001; // CF
    const r = harness.run(suite, defined, 0);
    expect(r.status).toBe('fail');
    expect(diffsOf(r).join('\n')).toMatch(/flags: .*differ: CF/);
  });

  it('reports an instruction that stops the machine as unsupported, with that detail', () => {
    const v = loadSuite('90')[0]!; // NOP
    const saved = [HANDLERS[0x90]!, HANDLERS[0x290]!];
    const stub = (cpu: Cpu): void => cpu.unsupported('stubbed by the harness test');
    HANDLERS[0x90] = stub; HANDLERS[0x290] = stub;
    try {
      const r = harness.run('90', v, 0);
      expect(r.status).toBe('fail');
      expect(r.status === 'fail' && r.unsupported).toBe(true);
      expect(diffsOf(r)[0]).toContain('stubbed by the harness test');
    } finally {
      HANDLERS[0x90] = saved[0]!; HANDLERS[0x290] = saved[1]!;
    }
    expect(harness.run('90', v, 0).status).toBe('pass');
  });

  it('decodes ModR/M operands and effective addresses for the rules', () => {
    const v = loadSuite('01')[0]!; // add [bx-5409h],dx: 01 97 F7 AB
    const d = decode(v);
    expect(d.opcode).toBe(0x01);
    expect([d.mod, d.reg, d.rm]).toEqual([2, 2, 7]);
    expect(effectiveAddress(d, v)).toBe((v.initial.regs.bx - 0x5409) & 0xffff);
  });
});
