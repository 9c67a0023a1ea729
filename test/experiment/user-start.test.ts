import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadExperiment, overheadTable, resultRows, resultsTable, breakdownTable } from '../../src/analysis/tables.js';
import type { UnitResult } from '../../src/experiment/execute.js';
import { expandMatrix, type RunUnit } from '../../src/experiment/matrix.js';
import { runExperiment } from '../../src/experiment/runner.js';
import { validateScenario } from '../../src/experiment/scenario.js';
import { readResult, runFile } from '../../src/experiment/store.js';

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

// One short workload under every mode (hw both ways): the guest boots, then its init starts
// the workload in ring 3.
const scenario = validateScenario({
  name: 'user-start',
  workloads: [{ name: 'syscall', params: { n: 20 } }],
  modes: ['native', 'full', { mode: 'hw', paging: 'nested', vpid: true }, { mode: 'hw', paging: 'shadow', vpid: true }, 'trap', 'pv'],
  profiles: ['skylake-2015'],
}, 'user-start.json', 'f'.repeat(64));
const label = (u: RunUnit): string => (u.spec.mode === 'hw' ? `hw-${u.spec.modeOptions.paging ?? 'nested'}` : u.spec.mode);

describe('userStart: the snapshot at the guest first entry to ring 3', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtlab-userstart-'));
  dirs.push(dir);
  const units = expandMatrix(scenario);
  const results = new Map<string, UnitResult>();

  it('is in every run record, inside the run, with categories summing to its cycles', async () => {
    const r = await runExperiment(scenario, { dir, executor: 'inline', progress: null });
    expect(r.failed).toBe(0);
    expect(units.map(label).sort()).toEqual(['full', 'hw-nested', 'hw-shadow', 'native', 'pv', 'trap']);
    for (const u of units) {
      const x = JSON.parse(readFileSync(runFile(dir, u.id), 'utf8')) as UnitResult;
      results.set(label(u), x);
      const rec = x.record!;
      const us = rec.userStart;
      expect(us, label(u)).not.toBeNull();
      expect(Object.keys(us!)).toEqual(['instructions', 'cycles', 'categories']);
      // Boot is a real part of the run, and the workload runs after it.
      expect(us!.instructions).toBeGreaterThan(0);
      expect(us!.instructions).toBeLessThan(rec.instructions);
      expect(us!.cycles).toBeGreaterThan(0);
      expect(us!.cycles).toBeLessThan(rec.cycles);
      const sum = Object.values(us!.categories).reduce((a, c) => a + c.cycles, 0);
      expect(sum).toBe(us!.cycles);
      // After boot, category by category: never negative, and summing to cycles after boot.
      let after = 0;
      for (const [k, c] of Object.entries(rec.accounting.categories)) {
        const d = c.cycles - (us!.categories[k]?.cycles ?? 0);
        expect(d, `${label(u)} ${k}`).toBeGreaterThanOrEqual(0);
        after += d;
      }
      for (const k of Object.keys(us!.categories)) expect(rec.accounting.categories[k], `${label(u)} ${k} vanished`).toBeDefined();
      expect(after).toBe(rec.cycles - us!.cycles);
    }
  });

  it('is at the same logical instruction for native, full and hw replays of one trace', () => {
    const replays = ['native', 'full', 'hw-nested', 'hw-shadow'].map((m) => results.get(m)!);
    const n = replays[0]!.record!.userStart!.instructions;
    expect(replays.map((x) => x.record!.userStart!.instructions)).toEqual(replays.map(() => n));
    // Same instructions, other costs: full pays for its translation during boot too.
    expect(replays[1]!.record!.userStart!.cycles).toBeGreaterThan(replays[0]!.record!.userStart!.cycles);
  });

  it('the analysis measures cycles after boot, whole-run cycles kept', () => {
    const e = loadExperiment(dir);
    const rows = resultRows(e);
    for (const row of rows) {
      const x = results.get(row.modeName === 'hw' ? `hw-${row.paging}` : row.modeName)!;
      expect(row.totalCycles).toBe(x.record!.cycles);
      expect(row.cycles).toBe(x.record!.cycles - x.record!.userStart!.cycles);
      expect(row.bootCycles).toBe(x.record!.userStart!.cycles);
    }
    const o = overheadTable(resultsTable(e)).objects() as { modeName: string; slowdown: number; totalSlowdown: number; cycles: number; nativeCycles: number }[];
    for (const r of o) expect(r.slowdown).toBeCloseTo(r.cycles / r.nativeCycles, 12);
    const b = breakdownTable(e, overheadTable(resultsTable(e))).objects() as { id: string; cycles: number }[];
    const byId = new Map<string, number>();
    for (const r of b) byId.set(r.id, (byId.get(r.id) ?? 0) + r.cycles);
    for (const u of units) {
      const rec = results.get(label(u))!.record!;
      expect(byId.get(u.id)).toBe(rec.cycles - rec.userStart!.cycles);
    }
  });

  it('a stored run without userStart (an older virtlab) is not counted: resume re-runs it', async () => {
    const u = units.find((x) => x.spec.mode === 'trap')!;
    const f = runFile(dir, u.id);
    const old = JSON.parse(readFileSync(f, 'utf8')) as { record: Record<string, unknown> };
    delete old.record.userStart;
    writeFileSync(f, JSON.stringify(old) + '\n');
    expect(readResult(dir, u)).toBeNull();
    expect(() => loadExperiment(dir)).not.toThrow();
    const r = await runExperiment(scenario, { dir, resume: true, executor: 'inline', progress: null });
    expect(r).toMatchObject({ ran: 1, skipped: units.length - 1, failed: 0 });
    expect(readResult(dir, u)!.record!.userStart).not.toBeNull();
  });
});
