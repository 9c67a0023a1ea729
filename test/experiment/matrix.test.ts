import { describe, expect, it } from 'vitest';
import { expandMatrix, loadProfileWith, unitId } from '../../src/experiment/matrix.js';
import { validateScenario } from '../../src/experiment/scenario.js';
import { loadProfile } from '../../src/profiles/index.js';

const scenario = validateScenario({
  name: 'm',
  workloads: [{ name: 'syscall', params: { n: 10 } }, { name: 'web', params: { requests: 2 } }],
  modes: ['native', 'trap', { mode: 'hw', paging: 'shadow', vpid: false, profiles: ['p4-2005'] }],
  profiles: ['p4-2005', 'skylake-2015'],
  seeds: [1, 2],
  sweeps: [{ name: 'exit', figure: 'virtualization.vmExit', values: [100, 200], workloads: ['syscall'], modes: ['hw (shadow, no VPID)'] }],
}, 'm.json');

describe('matrix expansion', () => {
  const units = expandMatrix(scenario);
  const label = (i: number): string => { const m = units[i]!.memberships[0]!; return `${m.profile} ${m.workload} ${m.seed} ${m.mode} ${m.sweep ?? ''}${m.sweepValue ?? ''}`.trim(); };

  it('runs in a defined order: profile, workload, seed, mode; then the sweeps', () => {
    // p4: syscall (unseeded) × 3 modes, web × 2 seeds × 3 modes; skylake: hw restricted to p4 → 2 modes.
    expect(units.slice(0, 9).map((_, i) => label(i))).toEqual([
      'p4-2005 syscall null native', 'p4-2005 syscall null trap', 'p4-2005 syscall null hw (shadow, no VPID)',
      'p4-2005 web 1 native', 'p4-2005 web 1 trap', 'p4-2005 web 1 hw (shadow, no VPID)',
      'p4-2005 web 2 native', 'p4-2005 web 2 trap', 'p4-2005 web 2 hw (shadow, no VPID)',
    ]);
    const base = 9 + 2 + 2 * 2;
    // Sweep: per point, native (the baseline) and the swept hw mode, only where hw runs (p4).
    expect(units.slice(base).map((_, i) => label(base + i))).toEqual([
      'p4-2005 syscall null native exit100', 'p4-2005 syscall null hw (shadow, no VPID) exit100',
      'p4-2005 syscall null native exit200', 'p4-2005 syscall null hw (shadow, no VPID) exit200',
    ]);
    expect(units).toHaveLength(base + 4);
  });

  it('puts the seed into the parameters of seeded workloads only', () => {
    expect(units[0]!.spec.workload.params).toEqual({ n: 10 });
    expect(units[3]!.spec.workload.params).toEqual({ requests: 2, seed: 1 });
  });

  it('gives each unit the hash of its full spec as id: distinct, stable', () => {
    expect(new Set(units.map((u) => u.id)).size).toBe(units.length);
    for (const u of units) expect(unitId(u.spec)).toBe(u.id);
    expect(expandMatrix(scenario).map((u) => u.id)).toEqual(units.map((u) => u.id));
  });

  it('a swept profile is a validated, modified copy with its own hash', () => {
    const sweptUnit = units.find((u) => u.memberships[0]!.sweepValue === 100)!;
    expect(sweptUnit.spec.profile.set).toEqual({ 'virtualization.vmExit.value': 100 });
    const p = loadProfileWith('p4-2005', { 'virtualization.vmExit.value': 100 });
    const base = loadProfile('p4-2005');
    expect(p.sha256).not.toBe(base.sha256);
    expect(p.sha256).toBe(sweptUnit.spec.profile.sha256);
    expect((p.profile as { virtualization: { vmExit: { value: number } } }).virtualization.vmExit.value).toBe(100);
    expect(() => loadProfileWith('p4-2005', { 'virtualization.vmExit.value': -5 })).toThrow(/vmExit/);
    expect(() => loadProfileWith('p4-2005', { 'virtualization.nothing.value': 5 })).toThrow(/no figure/);
  });

  it('a sweep point equal to a base point is run once, with two memberships', () => {
    const s = validateScenario({ name: 'd', workloads: [{ name: 'syscall', params: { n: 10 } }], modes: ['native', 'trap'], profiles: ['p4-2005'], sweeps: [{ name: 'n', param: 'n', values: [10, 20] }] }, 'd.json');
    const u = expandMatrix(s);
    expect(u).toHaveLength(4);
    expect(u[1]!.memberships.map((m) => `${m.mode} ${m.sweep}`)).toEqual(['trap null', 'trap n']);
    expect(u[2]!.spec.workload.params).toEqual({ n: 20 });
    expect(u[0]!.memberships.map((m) => m.sweep)).toEqual([null, 'n']);
  });
});
