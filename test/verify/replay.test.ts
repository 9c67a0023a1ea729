// Counterexample files (issue 8, "Bad input"): every kind saved by a property, or by the
// mutation analysis, replays with `virtlab verify --replay FILE` under the same conditions
// and gives the same verdict; a bad file is a one-line error naming the file.
import fc from 'fast-check';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifyCommand } from '../../src/cli/verify.js';
import { UsageError } from '../../src/cli/errors.js';
import { runProperty, type PropertyReport } from '../../src/verify/properties.js';
import {
  CASE_KINDS, CASE_SCHEMA, caseFile, CaseFileError, caseKind, jsonSyntaxError, readCaseFile, replayFile, reportCaseFile, writeCaseFile,
} from '../../src/verify/replay.js';
import { userEquivalenceCheck, type UserGuestProgram } from '../../src/verify/user-program.js';
import { MUTANT_NAMES } from '../../src/vmm/mutants.js';

const dir = mkdtempSync(join(tmpdir(), 'virtlab-replay-'));
let n = 0;
const tmp = (name = 'case.json'): string => join(dir, `${n++}-${name}`);

/** Runs property `name` with a mutant, saves its counterexample, replays the file with and without it. */
function roundTrip(name: string, o: { configs?: string[]; mutant: string; runs: number }): { r: PropertyReport; withMutant: ReturnType<typeof replayFile>; without: ReturnType<typeof replayFile>; file: string } {
  const r = runProperty(name, { runs: o.runs, seed: 1, configs: o.configs, mutant: o.mutant });
  const f = reportCaseFile(r, o.mutant);
  expect(f, `${name} with ${o.mutant} found no counterexample`).not.toBeNull();
  const file = tmp(`${name}.json`);
  writeCaseFile(file, f!);
  return { r, withMutant: replayFile(file), without: replayFile(file, { mutant: null }), file };
}

describe('counterexample files: round trips', () => {
  it('a flat-harness program (equivalence, bt-smsw): same verdict; the mutant is re-activated from the file', { timeout: 30_000 }, () => {
    const t = roundTrip('equivalence', { configs: ['full'], mutant: 'bt-smsw', runs: 60 });
    expect(t.r.ok).toBe(false);
    const saved = JSON.parse(readFileSync(t.file, 'utf8'));
    expect(saved).toMatchObject({ schema: CASE_SCHEMA, property: 'equivalence', configs: ['full'], seed: 1, mutant: 'bt-smsw' });
    expect(caseKind(saved.case)?.key).toBe('items');
    expect(t.withMutant.failed).toBe(true);
    expect(t.withMutant.mutant).toBe('bt-smsw');
    expect(t.withMutant.result.results).toEqual([{ config: 'full', failed: true, detail: t.r.counterexample!.message.replace(/^native vs full: /, '') }]);
    expect(t.withMutant.result.listing).toEqual(t.r.counterexample!.listing);
    expect(t.without.failed).toBe(false);
  });

  it('a flat-harness program (resource-control, ept-off-by-one): the structural check and the DMA bound per configuration', { timeout: 30_000 }, () => {
    const t = roundTrip('resource-control', { configs: ['hw-nested'], mutant: 'ept-off-by-one', runs: 10 });
    expect(t.withMutant.result.results.map((x) => [x.config, x.failed])).toEqual([['hw-nested', true], ['native + DMA', false]]);
    expect(t.withMutant.result.results[0]!.detail).toMatch(/^violation: EPT maps/);
    expect(t.without.failed).toBe(false);
  });

  it('a flat-harness program (io-control, io-bitmap-off-by-one)', { timeout: 30_000 }, () => {
    const t = roundTrip('io-control', { mutant: 'io-bitmap-off-by-one', runs: 30 });
    expect(t.withMutant.result.results.map((x) => x.config)).toEqual(['hw-nested', 'hw-shadow']);
    expect(t.withMutant.result.results.every((x) => x.failed && /port 0x81 .* without a VM exit/.test(x.detail))).toBe(true);
    expect(t.without.failed).toBe(false);
  });

  it('a pv-isolation action sequence (pv-unpin-keeps-type): replayed hypercall by hypercall', { timeout: 30_000 }, () => {
    const t = roundTrip('pv-isolation', { mutant: 'pv-unpin-keeps-type', runs: 30 });
    expect(caseKind(t.withMutant.file.case)?.key).toBe('pv');
    expect(t.withMutant.failed).toBe(true);
    expect(t.withMutant.result.results[0]!.detail).toBe(t.r.counterexample!.message);
    expect(t.withMutant.result.log!.length).toBe(t.r.counterexample!.listing.length);
    expect(t.without.failed).toBe(false);
  });

  it('a user-equivalence program: the same verdict as the property\'s check, per configuration', { timeout: 30_000 }, () => {
    const sgdt: UserGuestProgram = { regs: [0, 0, 0, 0, 0, 0, 0], items: [{ op: 'sgdt', off: 0 }] };
    const plain: UserGuestProgram = { regs: [1, 2, 3, 4, 5, 6, 7], items: [{ op: 'alu', f: 'add', d: 'eax', s: 'ecx' }, { op: 'store', s: 'eax', off: 8 }] };
    for (const [p, failed] of [[sgdt, true], [plain, false]] as const) {
      const file = tmp('user.json');
      writeCaseFile(file, caseFile({ program: { user: p }, listing: [], message: '' }, { property: 'user-equivalence', configs: ['pv', 'hw-nested'], seed: 1, runs: 1, mutant: null }));
      const r = replayFile(file);
      expect(r.kind.key).toBe('user');
      expect(r.failed).toBe(failed);
      expect(userEquivalenceCheck(p, ['pv', 'hw-nested'], true) !== null).toBe(failed);
      expect(r.result.results.map((x) => x.config)).toEqual(['native', 'pv', 'hw-nested']);
      if (failed) expect(r.result.results.find((x) => x.config === 'pv')!.detail).toMatch(/^console line \d+: sum=/);
    }
  });

  it('a flat-harness program saved by accounting or determinism replays their checks (which hold)', { timeout: 30_000 }, () => {
    const prog = { regs: [1, 2, 3, 4, 5, 6, 7], paging: true, items: [{ op: 'pte', t: 0, page: 1, frame: 0x300, flags: 7 }, { op: 'rd', d: 'eax', page: 1, off: 8 }, { op: 'port', port: 0x80, v: 1 }] };
    for (const [property, configs] of [['accounting', ['native', 'trap', 'hw-shadow']], ['determinism', ['full']]] as const) {
      const file = tmp(`${property}.json`);
      writeCaseFile(file, caseFile({ program: prog as never, listing: [], message: '' }, { property, configs, seed: 1, runs: 1, mutant: null }));
      const r = replayFile(file);
      expect(r.result.results.map((x) => [x.config, x.failed, x.detail])).toEqual(configs.map((c) => [c, false, 'holds']));
    }
  });

  it('a bare case from before the schema still replays (compared with native)', { timeout: 30_000 }, () => {
    const file = tmp('legacy.json');
    writeFileSync(file, JSON.stringify({ regs: [0, 0, 0, 0, 0, 0, 0], items: [{ op: 'smsw', d: 'eax' }], paging: false }));
    const r = replayFile(file, { configs: ['full', 'trap'] });
    expect(r.file.property).toBeNull();
    expect(r.result.results.map((x) => [x.config, x.failed])).toEqual([['full', false], ['trap', true]]);
    expect(replayFile(file, { configs: ['full'], mutant: 'bt-smsw' }).failed).toBe(true);
  });

  it('every registered kind is told by its own top-level key', () => {
    const keys = CASE_KINDS.map((k) => k.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual(expect.arrayContaining(['pv', 'user', 'kernel', 'pair', 'items']));
    expect(keys[keys.length - 1]).toBe('items'); // the generic one last
    expect(caseKind({ pv: [] })?.key).toBe('pv');
    expect(caseKind({ user: {} })?.key).toBe('user');
    expect(caseKind({ pair: {} })?.key).toBe('pair');
    expect(caseKind({ kernel: {} })?.key).toBe('kernel');
    expect(caseKind({ regs: [], items: [], paging: true })?.key).toBe('items');
    expect(caseKind({ nothing: 1 })).toBeNull();
  });
});

describe('counterexample files: bad files', () => {
  const bad = (text: string): string => {
    const file = tmp('bad.json');
    writeFileSync(file, text);
    try {
      replayFile(file);
    } catch (e) {
      expect(e).toBeInstanceOf(CaseFileError);
      const m = (e as Error).message;
      expect(m.startsWith(`${file}: `), m).toBe(true);
      expect(m).not.toContain('\n');
      return m.slice(file.length + 2);
    }
    throw new Error(`no error for ${text}`);
  };

  it('JSON errors name the line, the column and what was expected', () => {
    expect(bad('{\n  "schema": "virtlab.counterexample/1",\n  "case": { "items": [1, }\n}\n')).toBe('not valid JSON at line 3, column 26: expected a JSON value (object, array, string, number, true, false or null)');
    expect(bad('{"case": {"pv": []}')).toBe("not valid JSON at line 1, column 20 (the end of the file): expected ',' or '}'");
    expect(bad('{"a" 1}')).toBe("not valid JSON at line 1, column 6: expected ':'");
    expect(bad('')).toMatch(/^not valid JSON at line 1, column 1 \(the end of the file\): expected a JSON value/);
  });

  it('a file of no known kind lists the kinds', () => {
    const m = bad(JSON.stringify({ schema: CASE_SCHEMA, case: { foo: 1 } }));
    expect(m).toMatch(/^expected a counterexample case with one of the keys "pv", "user", .*"items"/);
    for (const k of CASE_KINDS) expect(m).toContain(k.what);
    expect(bad('[1, 2]')).toMatch(/^expected a JSON object: a virtlab\.counterexample\/1 file, or a bare case/);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA }))).toMatch(/^expected a "case"/);
  });

  it('wrong schema, unknown mutant or configuration, malformed cases', () => {
    expect(bad(JSON.stringify({ schema: 'virtlab.counterexample/9', case: { pv: [] } }))).toBe('unknown schema "virtlab.counterexample/9" (expected "virtlab.counterexample/1")');
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, mutant: 'nope', case: { pv: [] } }))).toBe(`"mutant": expected a mutant name (known: ${MUTANT_NAMES.join(', ')})`);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, configs: ['hw'], case: { pv: [] } }))).toMatch(/^"configs": expected an array of configurations \(native, /);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { regs: [], items: [{ op: 'zzz' }], paging: false } }))).toBe('expected guest-program items: items[0] has the unknown op "zzz"');
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { regs: [], paging: false, items: [{ op: 'loop', n: 2, body: [{ op: 'movi', d: 'eax', imm: 1 }, { op: 'qq' }] }] } }))).toBe('expected guest-program items: items[0].body[1] has the unknown op "qq"');
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { regs: [], items: 3, paging: false } }))).toMatch(/^expected a guest program: \{ "regs"/);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { pv: [{ op: 'zzz' }] } }))).toMatch(/^expected pv actions of known kinds with all their fields: pv\[0\] \(op "zzz"\)/);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { user: { regs: [] } } }))).toMatch(/^expected a user-equivalence case/);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, property: 'noninterference', case: { regs: [], items: [], paging: true } }))).toMatch(/holds only VM A's program/);
  });

  it('the kinds other modules replay (kernel, pair) get their malformed cases refused in one line too', () => {
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { kernel: { items: [] } } }))).toMatch(/^expected \{ "kernel": \{ regs, items, hostile \} \}/);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { pair: 1 } }))).toMatch(/^expected \{ "pair": /);
    expect(bad(JSON.stringify({ schema: CASE_SCHEMA, case: { pair: { harness: 'flat', policy: 'nope', schedule: [] } } }))).toMatch(/^pair\.policy must be one of /);
  });

  it('an unreadable file', () => {
    expect(() => readCaseFile(join(dir, 'missing.json'))).toThrow(`${join(dir, 'missing.json')}: cannot read it (ENOENT)`);
  });

  it('jsonSyntaxError agrees with JSON.parse on valid JSON and on arbitrary text', () => {
    const parses = (s: string): boolean => { try { JSON.parse(s); return true; } catch { return false; } };
    fc.assert(fc.property(fc.json(), (s) => jsonSyntaxError(s) === null), { seed: 1, numRuns: 300 });
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json().chain((s) => fc.nat(s.length).map((k) => s.slice(0, k) + s.slice(k + 1)))), (s) => (jsonSyntaxError(s) === null) === parses(s)), { seed: 1, numRuns: 500 });
  });
});

describe('virtlab verify --save / --replay / --mutants files', () => {
  const run = (argv: string[]): { status: number; out: string; err: string } => {
    let out = '', err = '';
    const status = verifyCommand(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; } });
    return { status, out, err };
  };

  it('--save writes a replayable file; --replay prints the listing and a result per configuration; --mutant none replays without', { timeout: 30_000 }, () => {
    const file = tmp('cli.json');
    const s = run(['--property', 'io-control', '--config', 'hw-shadow', '--mutant', 'io-bitmap-off-by-one', '--runs', '30', '--save', file]);
    expect(s.status).toBe(1);
    expect(s.out).toContain(`counterexample saved to ${file}`);
    const r = run(['--replay', file]);
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/; property io-control \(hw-shadow\), seed 1; mutant io-bitmap-off-by-one\n/);
    expect(r.out).toContain('  100002: out 81h,al\n');
    expect(r.out).toMatch(/\nhw-shadow: FAIL: out port 0x81 \(1 byte\) reached the bus without a VM exit/);
    expect(r.out).toMatch(/replay: FAIL \(1 of 1 show the failure\)\n$/);
    const p = run(['--replay', file, '--mutant', 'none', '--config', 'hw-nested,hw-shadow']);
    expect(p.status).toBe(0);
    expect(p.out).toContain("mutant none (the file's: io-bitmap-off-by-one)");
    expect(p.out).toMatch(/hw-nested: ok: holds\nhw-shadow: ok: holds\nreplay: PASS/);
  });

  it('a bad --replay file or --mutant is a usage error (one line)', () => {
    const file = tmp('bad.json');
    writeFileSync(file, '{');
    expect(() => run(['--replay', file])).toThrow(UsageError);
    expect(() => run(['--replay', file])).toThrow(`verify --replay ${file}: not valid JSON at line 1, column 2 (the end of the file): expected a property name in double quotes`);
    expect(() => run(['--replay', file, '--mutant', 'nope'])).toThrow(/^verify --mutant: unknown mutant "nope" \(known: .*\) \(or none\)$/);
  });

  it('--mutants -o DIR writes each caught mutant\'s counterexample, names it in mutants.json, links it from index.html; it fails with the mutant and passes without', { timeout: 60_000 }, () => {
    const out = join(dir, 'report');
    const m = run(['--mutants', '--only', 'io-bitmap-off-by-one,bt-smsw', '--seeds', '1', '--runs', '60', '-o', out]);
    expect(m.status).toBe(0);
    for (const name of ['io-bitmap-off-by-one', 'bt-smsw']) {
      const rel = `counterexamples/${name}.json`;
      expect(existsSync(join(out, rel))).toBe(true);
      expect(m.out).toContain(`counterexample: ${join(out, rel)}`);
      const json = JSON.parse(readFileSync(join(out, 'mutants.json'), 'utf8'));
      expect(json.results.find((r: { mutant: string }) => r.mutant === name).counterexampleFile).toBe(rel);
      expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain(`<a href="${rel}">`);
      const f = readCaseFile(join(out, rel)).file;
      expect(f.mutant).toBe(name);
      expect(f.seed).toBe(1);
      expect(run(['--replay', join(out, rel)]).status).toBe(1);
      expect(run(['--replay', join(out, rel), '--mutant', 'none']).status).toBe(0);
    }
  });
});
