import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { breakdownTable, ci95HalfWidth, eventsTable, loadExperiment, overheadTable, resultsTable, summaryTable } from '../../src/analysis/tables.js';
import { findings, slope } from '../../src/analysis/findings.js';
import { writeFakeExperiment } from './fixture.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'virtlab-an-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

type Row = Record<string, unknown>;

describe('overheads on a hand-made table', () => {
  const dir = tmp();
  writeFakeExperiment(dir, [
    { workload: 'a', mode: 'native', seed: null, cycles: 1000 },
    { workload: 'a', mode: 'hw', seed: null, cycles: 1500, categories: { guest: 1000, 'exit:io': 400, device: 100 }, monitor: { 'exit:io': 8, 'ept.walks': 3 } },
    { workload: 'a', mode: 'trap', seed: null, cycles: 3000, checksum: '0xdeadbeef' },
    { workload: 'b', mode: 'native', seed: 1, cycles: 200 },
    { workload: 'b', mode: 'hw', seed: 1, cycles: 220 },
    { workload: 'b', mode: 'native', seed: 2, cycles: 400 },
    { workload: 'b', mode: 'hw', seed: 2, cycles: 480 },
    { workload: 'b', mode: 'native', seed: 3, cycles: 100 },
    { workload: 'b', mode: 'hw', seed: 3, cycles: 130 },
  ]);
  const e = loadExperiment(dir);
  const over = overheadTable(resultsTable(e));
  const rows = over.objects() as Row[];
  const find = (w: string, m: string, seed: number | null): Row => rows.find((r) => r.workload === w && r.mode === m && r.seed === seed)!;

  it('divides by native with the same workload, profile and seed', () => {
    expect(find('a', 'hw', null).slowdown).toBe(1.5);
    expect(find('a', 'trap', null).slowdown).toBe(3);
    expect(find('a', 'native', null).slowdown).toBe(1);
    expect(find('b', 'hw', 2).slowdown).toBeCloseTo(1.2, 12);
    expect(find('b', 'hw', 3).slowdown).toBeCloseTo(1.3, 12);
    expect(find('a', 'hw', null).overheadPct).toBeCloseTo(50, 12);
  });

  it('flags a guest-visible result that differs from native', () => {
    expect(find('a', 'trap', null).checksumMatches).toBe(false);
    expect(find('a', 'hw', null).checksumMatches).toBe(true);
  });

  it('gives means and 95% confidence intervals over seeds (t distribution)', () => {
    const s = summaryTable(over).objects() as Row[];
    const b = s.find((r) => r.workload === 'b' && r.mode === 'hw')!;
    const xs = [1.1, 1.2, 1.3];
    const mean = 1.2, sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / 2);
    expect(b.n).toBe(3);
    expect(b.slowdown).toBeCloseTo(mean, 12);
    expect(b.sd).toBeCloseTo(sd, 12);
    expect(b.ci).toBeCloseTo((4.303 * sd) / Math.sqrt(3), 12);
    expect(b.lo).toBeCloseTo(mean - Number(b.ci), 12);
    const a = s.find((r) => r.workload === 'a' && r.mode === 'hw')!;
    expect(a.n).toBe(1);
    expect(a.ci).toBe(0);
    expect(ci95HalfWidth(2, 100)).toBeCloseTo((1.96 * 2) / 10, 12);
  });

  it('breaks cycles down by category, normalized to native total', () => {
    const b = (breakdownTable(e, over).objects() as Row[]).filter((r) => r.workload === 'a' && r.mode === 'hw');
    const by = Object.fromEntries(b.map((r) => [r.category, r.normalized]));
    expect(by).toEqual({ guest: 1, 'exit:io': 0.4, device: 0.1 });
    expect(b.reduce((x, r) => x + Number(r.normalized), 0)).toBeCloseTo(1.5, 12);
  });

  it('counts exits from the monitor counters (and nothing else)', () => {
    const ev = eventsTable(e).objects() as Row[];
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ workload: 'a', mode: 'hw', kind: 'exit', reason: 'io', count: 8, per1kInstructions: 8 });
  });

  it('computes findings from the numbers', () => {
    const s = summaryTable(over).objects() as Row[];
    const f = findings(s, breakdownTable(e, over).objects() as Row[], eventsTable(e).objects() as Row[], resultsTable(e).objects() as Row[], []);
    const text = f.join('\n');
    expect(text).toMatch(/worst on \*\*a\*\* \(3\.00× native\)/);
    expect(text).toMatch(/a under trap on p4-2005/);
    expect(slope([1, 2, 3], [2, 4, 6])).toBe(2);
  });
});

describe('cycles after boot (the snapshot at the first entry to user mode)', () => {
  const dir = tmp();
  // Native boots in 600 cycles and runs the workload in 400; pv's boot is cheaper (its domain
  // builder did the page tables) but its workload is slower: whole runs would say pv < native.
  writeFakeExperiment(dir, [
    { workload: 'w', mode: 'native', seed: null, cycles: 1000, categories: { guest: 900, 'page-walk': 100 }, boot: { cycles: 600, categories: { guest: 540, 'page-walk': 60 } } },
    { workload: 'w', mode: 'pv', seed: null, cycles: 800, categories: { guest: 600, 'page-walk': 80, 'hypercall:mmu': 120 }, boot: { cycles: 200, categories: { guest: 150, 'page-walk': 30, 'hypercall:mmu': 20 } } },
    { workload: 'v', mode: 'native', seed: null, cycles: 50 },
    { workload: 'v', mode: 'pv', seed: null, cycles: 100 },
  ]);
  const e = loadExperiment(dir);
  const over = overheadTable(resultsTable(e));
  const rows = over.objects() as Row[];
  const find = (w: string, m: string): Row => rows.find((r) => r.workload === w && r.mode === m)!;

  it('divides cycles after boot, and keeps the whole-run ratio as totalSlowdown', () => {
    expect(find('w', 'pv')).toMatchObject({ cycles: 600, totalCycles: 800, bootCycles: 200, nativeCycles: 400, nativeTotalCycles: 1000 });
    expect(find('w', 'pv').slowdown).toBe(1.5);
    expect(find('w', 'pv').totalSlowdown).toBe(0.8);
    // No snapshot (the guest never entered ring 3): nothing is subtracted.
    expect(find('v', 'pv')).toMatchObject({ cycles: 100, totalCycles: 100, bootCycles: null, slowdown: 2, totalSlowdown: 2 });
    const s = summaryTable(over).objects() as Row[];
    expect(s.find((r) => r.workload === 'w' && r.mode === 'pv')).toMatchObject({ slowdown: 1.5, totalSlowdown: 0.8 });
  });

  it('subtracts the snapshot category by category: the breakdown stacks to the after-boot slowdown', () => {
    const b = (breakdownTable(e, over).objects() as Row[]).filter((r) => r.workload === 'w' && r.mode === 'pv');
    expect(Object.fromEntries(b.map((r) => [r.category, r.cycles]))).toEqual({ guest: 450, 'page-walk': 50, 'hypercall:mmu': 100 });
    expect(Object.fromEntries(b.map((r) => [r.category, r.totalCycles]))).toEqual({ guest: 600, 'page-walk': 80, 'hypercall:mmu': 120 });
    expect(b.reduce((x, r) => x + Number(r.normalized), 0)).toBeCloseTo(1.5, 12);
    expect(b.reduce((x, r) => x + Number(r.share), 0)).toBeCloseTo(1, 12);
  });

  it('findings quote the after-boot geometric mean first, the whole run second', () => {
    const s = summaryTable(over).objects() as Row[];
    const text = findings(s, breakdownTable(e, over).objects() as Row[], [], resultsTable(e).objects() as Row[], []).join('\n');
    const gm = Math.sqrt(1.5 * 2), whole = Math.sqrt(0.8 * 2);
    expect(text).toContain(`slowdown in cycles after boot over 2 workloads — pv ${gm.toFixed(2)}×`);
    expect(text).toContain(`(whole runs, boot included: pv ${whole.toFixed(2)}×)`);
  });

  it('a stored run without userStart is not read (an older virtlab): it is missing, not a crash', () => {
    const d = tmp();
    const m = writeFakeExperiment(d, [{ workload: 'w', mode: 'native', seed: null, cycles: 10 }]);
    const f = join(d, 'runs', `${m.units[0]!.id}.json`);
    const r = JSON.parse(readFileSync(f, 'utf8')) as { record: Record<string, unknown> };
    delete r.record.userStart;
    writeFileSync(f, JSON.stringify(r));
    const e2 = loadExperiment(d);
    expect(e2.results.size).toBe(0);
    expect((resultsTable(e2).objects() as Row[])[0]!.status).toBe('missing');
  });
});
