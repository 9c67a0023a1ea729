import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadScenario, scenarioJsonSchema, ScenarioError, validateScenario } from '../../src/experiment/scenario.js';
import { MONITOR_MODES } from '../../src/vmm/index.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function errorsOf(data: unknown, file = 'bad.json'): ScenarioError {
  try {
    validateScenario(data, file);
  } catch (e) {
    if (e instanceof ScenarioError) return e;
    throw e;
  }
  throw new Error('expected a ScenarioError');
}

describe('scenario validation', () => {
  it('reports every problem at once, each with the path of the field, and the file name', () => {
    const e = errorsOf({
      name: '',
      workloads: ['syscall', 'nosuch', { name: 'forkwait', params: { n: 0 } }, { name: 'ctxsw', parms: {} }],
      modes: ['native', 'warp', { mode: 'trap', paging: 'nested' }],
      profiles: ['p4-2005', 'p9-2099'],
      seeds: [1, -2],
      sweeps: [{ name: 's', figure: 'virtualization.noSuchFigure', values: [1] }],
      extra: 1,
    }, 'scenarios/broken.json');
    const text = e.message;
    expect(text.startsWith('scenarios/broken.json: ')).toBe(true);
    const expected = [
      /^name: /m, /^workloads\[1\]: unknown workload "nosuch"/m, /^workloads\[2\]\.params: workload forkwait: n="0"/m,
      /^workloads\[3\]/m, /^modes\[1\]: unknown mode "warp"/m, /^modes\[2\]: paging and vpid are options of mode hw/m,
      /^profiles\[1\]: .*p9-2099/m, /^seeds\[1\]: /m, /^sweeps\[0\]\.figure: profile p4-2005 has no numeric figure/m, /^\(top level\): .*extra/m,
    ];
    const lines = e.issues.join('\n');
    for (const re of expected) expect(lines).toMatch(re);
    expect(e.issues.length).toBeGreaterThanOrEqual(expected.length);
  });

  it('needs native among the modes, and distinct labels', () => {
    const e = errorsOf({ name: 'x', workloads: ['syscall', 'syscall'], modes: ['trap'], profiles: ['p4-2005'] });
    expect(e.issues.join('\n')).toMatch(/"native" must be among the modes/);
    expect(e.issues.join('\n')).toMatch(/label "syscall" is used twice/);
  });

  it('"*" stands for every mode of MONITOR_MODES not listed', () => {
    const s = validateScenario({ name: 'x', workloads: ['syscall'], modes: ['native', { mode: 'hw', paging: 'shadow', vpid: false }, '*'], profiles: ['p4-2005'] }, 'x.json');
    expect(s.modes.map((m) => m.mode).sort()).toEqual([...MONITOR_MODES].sort());
    expect(s.modes.find((m) => m.mode === 'hw')!.label).toBe('hw (shadow, no VPID)');
  });

  it('names the file for unreadable or non-JSON input', () => {
    const d = mkdtempSync(join(tmpdir(), 'virtlab-sc-'));
    dirs.push(d);
    writeFileSync(join(d, 'a.json'), '{ nope');
    expect(() => loadScenario(join(d, 'a.json'))).toThrow(/a\.json: not valid JSON/);
    expect(() => loadScenario(join(d, 'missing.json'))).toThrow(/missing\.json: no such file/);
  });

  it('accepts the default scenario, and the committed JSON Schema is current', () => {
    const s = loadScenario('scenarios/default.json');
    expect(s.workloads.length).toBeGreaterThanOrEqual(19);
    expect(s.profiles.map((p) => p.label)).toEqual(['p4-2005', 'skylake-2015']);
    const committed = JSON.parse(readFileSync('scenarios/scenario.schema.json', 'utf8')) as unknown;
    expect(committed).toEqual(scenarioJsonSchema());
  });
});
