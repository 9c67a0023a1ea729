import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/machine/cpu/cpu.js'; // fills the opcode table
import { OP_KIND } from '../../src/machine/cpu/op-table.js';
import { INSTRUCTION_CLASSES, loadProfile, opClassTable, ProfileError, toCostTable, validateProfile } from '../../src/profiles/index.js';

const builtin = loadProfile('p6-provisional');

function errorOf(f: () => unknown): ProfileError {
  try { f(); } catch (e) { if (e instanceof ProfileError) return e; throw e; }
  throw new Error('expected a ProfileError');
}

describe('profiles', () => {
  it('the provisional P6 profile is valid and every figure has a source', () => {
    expect(builtin.name).toBe('p6-provisional');
    expect(builtin.sha256).toMatch(/^[0-9a-f]{64}$/);
    const figures: { value: number; source: string }[] = [];
    const walk = (o: unknown): void => {
      if (o && typeof o === 'object') {
        if ('value' in o && 'source' in o) figures.push(o as { value: number; source: string });
        else Object.values(o).forEach(walk);
      }
    };
    walk(builtin.profile);
    expect(figures.length).toBeGreaterThan(INSTRUCTION_CLASSES.length);
    for (const f of figures) expect(f.source.length).toBeGreaterThan(10);
  });

  it('gives every implemented opcode a real cost class', () => {
    const classes = opClassTable();
    const missing: string[] = [];
    for (let op = 0; op < 512; op++) {
      const kind = OP_KIND[op];
      // Opcodes the CPU defines as raising #UD are rightly classed 'undefined'.
      if (kind && !kind.startsWith('invalid') && (classes[op] === 'undefined' || classes[op] === 'prefix')) missing.push(`${op.toString(16)} ${kind}`);
    }
    expect(missing).toEqual([]);
  });

  it('flattens the profile into the CPU cost table', () => {
    const p = builtin.profile;
    const t = toCostTable(p);
    expect(t.base.length).toBe(1024);
    expect(t.base[0x1a2]).toBe(p.classes.cpuid.value);
    expect(t.base[0x200 | 0xb8]).toBe(p.classes.mov.value);
    expect(t.base[0x0f7]).toBe(p.classes.aluReg.value);
    expect(t.memOperand).toBe(p.events.aluMem.value - p.classes.aluReg.value);
    expect(t.io).toBe(p.events.portIo.value);
    expect(t.walkRef).toBe(p.events.pageWalkReference.value);
    expect(t.classCycles.div32).toBe(p.events.div32.value);
    // A user's change to one figure reaches the table.
    const changed = structuredClone(p);
    changed.classes.cpuid.value = 1234;
    expect(toCostTable(changed).base[0x1a2]).toBe(1234);
  });

  it('lists every bad field of an invalid profile', () => {
    const bad = structuredClone(builtin.profile) as Record<string, unknown> & typeof builtin.profile;
    (bad.classes as Record<string, unknown>).mul = { value: -1, source: 'x' };
    delete (bad.events as Record<string, unknown>).portIo;
    (bad.cpu.frequencyHz as Record<string, unknown>).source = '';
    (bad as Record<string, unknown>).extra = 1;
    const e = errorOf(() => validateProfile(bad, 'mine.json'));
    expect(e.message.startsWith('mine.json: invalid profile: ')).toBe(true);
    expect(e.message).not.toContain('\n');
    const paths = e.issues.map((i) => i.split(':')[0]);
    expect(paths).toEqual(expect.arrayContaining(['classes.mul.value', 'events.portIo', 'cpu.frequencyHz.source', '(top level)']));
  });

  it('reports unknown names, missing files and broken JSON', () => {
    expect(errorOf(() => loadProfile('no-such-profile')).message).toMatch(/^no-such-profile: no such built-in profile/);
    expect(errorOf(() => loadProfile('/nonexistent/p.json')).message).toBe('/nonexistent/p.json: profile file not found');
    const dir = mkdtempSync(join(tmpdir(), 'vl-prof-'));
    const f = join(dir, 'broken.json');
    writeFileSync(f, '{"schema": ');
    expect(errorOf(() => loadProfile(f)).message).toMatch(/broken\.json: not valid JSON/);
  });

  it('loads a copied profile from a path, with its own hash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vl-prof-'));
    const f = join(dir, 'copy.json');
    const p = structuredClone(builtin.profile);
    p.name = 'my-copy';
    writeFileSync(f, JSON.stringify(p));
    const l = loadProfile(f);
    expect(l.name).toBe('my-copy');
    expect(l.sha256).not.toBe(builtin.sha256);
  });
});
