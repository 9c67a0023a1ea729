import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { experimentCommand } from '../../src/cli/experiment.js';
import { ensureTrace, executeUnit, parseConsole, type UnitResult } from '../../src/experiment/execute.js';
import { expandMatrix, type RunUnit } from '../../src/experiment/matrix.js';
import { runPool, type PoolResult } from '../../src/experiment/pool.js';
import { runExperiment } from '../../src/experiment/runner.js';
import { validateScenario } from '../../src/experiment/scenario.js';
import { runFile, StoreError, withTraceDir } from '../../src/experiment/store.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'virtlab-exp-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

// Small: 3 units of a few hundred thousand guest instructions; one (EPT on a CPU without it) fails.
const scenarioData = {
  name: 'tiny',
  workloads: [{ name: 'syscall', params: { n: 20 } }],
  modes: ['native', 'trap', { mode: 'hw', paging: 'nested', vpid: false }],
  profiles: ['p4-2005'],
};
const scenario = validateScenario(scenarioData, 'tiny.json', 'a'.repeat(64));
const quiet = { progress: null } as const;

describe('executing a unit', () => {
  it('parses the workload console', () => {
    expect(parseConsole('x\nbench: name=getpid ops=5 cycles=100 cycles_per_op=20\nchecksum: 0x0000abcd\n')).toEqual({
      bench: [{ name: 'getpid', ops: 5, cycles: 100, cyclesPerOp: 20 }], checksum: '0x0000abcd',
    });
  });
});

describe('executing a unit twice in one process', () => {
  it('gives the same result: devices are fresh for each run (the database workload writes its disk)', () => {
    const s = validateScenario({ name: 'db', workloads: [{ name: 'database', params: { txns: 20, dbsize: 16, writes: 100 } }], modes: ['native', 'trap'], profiles: ['p4-2005'] }, 'db.json');
    const units = withTraceDir(tmp(), expandMatrix(s));
    // The replayed unit (native) needs its recording first; the direct one (trap) builds the workload.
    expect(ensureTrace(units[0]!.spec).status).toBe('recorded');
    for (const u of units) {
      const a = executeUnit(u.id, u.spec), b = executeUnit(u.id, u.spec);
      expect(a.status).toBe('ok');
      expect(a.input).toBe(u.spec.mode === 'native' ? 'replay' : 'direct');
      expect(a.checksum).toMatch(/^0x[0-9a-f]{8}$/);
      expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    }
  });
});

describe('runner (in process)', () => {
  const dir = tmp();
  let first: Awaited<ReturnType<typeof runExperiment>>;
  const units = expandMatrix(scenario);

  it('runs every unit, records a failing one without stopping the others', async () => {
    first = await runExperiment(scenario, { dir, executor: 'inline', ...quiet });
    expect(first.units).toBe(3);
    expect(first.ran).toBe(3);
    expect(first.failed).toBe(1);
    expect(first.failures[0]!.unit.spec.mode).toBe('hw');
    expect(first.failures[0]!.error).toMatch(/no nested paging/);
    const ok = JSON.parse(readFileSync(runFile(dir, units[0]!.id), 'utf8')) as UnitResult;
    expect(ok.status).toBe('ok');
    expect(ok.record!.cycles).toBeGreaterThan(0);
    expect(ok.bench[0]!.ops).toBe(20);
    expect(ok.timeline.at(-1)).toEqual([ok.record!.instructions, ok.record!.cycles]);
    // Atomic writes leave no temporary files behind.
    expect(readdirSync(join(dir, 'runs')).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('refuses to reuse the directory without --resume, or for another scenario', async () => {
    await expect(runExperiment(scenario, { dir, executor: 'inline', ...quiet })).rejects.toThrow(/--resume/);
    const other = validateScenario({ ...scenarioData, name: 'other' }, 'other.json', 'b'.repeat(64));
    await expect(runExperiment(other, { dir, executor: 'inline', resume: true, ...quiet })).rejects.toThrow(StoreError);
    await expect(runExperiment(other, { dir, executor: 'inline', resume: true, ...quiet })).rejects.toThrow(/another scenario/);
  });

  it('resume: a stored run is not redone, a corrupt one is', async () => {
    const keep = runFile(dir, units[0]!.id), corrupt = runFile(dir, units[1]!.id);
    const marked = { ...(JSON.parse(readFileSync(keep, 'utf8')) as object), marker: 'kept' };
    writeFileSync(keep, JSON.stringify(marked));
    writeFileSync(corrupt, readFileSync(corrupt, 'utf8').slice(0, 100));
    const r = await runExperiment(scenario, { dir, executor: 'inline', resume: true, ...quiet });
    expect(r.skipped).toBe(1);
    // The corrupt run and the failed one run again.
    expect(r.ran).toBe(2);
    expect((JSON.parse(readFileSync(keep, 'utf8')) as { marker?: string }).marker).toBe('kept');
    expect((JSON.parse(readFileSync(corrupt, 'utf8')) as UnitResult).status).toBe('ok');
  });

  it('the CLI exits nonzero when a run failed, and writes the report', async () => {
    const d = tmp();
    const file = join(d, 'tiny.json');
    writeFileSync(file, JSON.stringify(scenarioData));
    const out: string[] = [], err: string[] = [];
    const status = await experimentCommand([file, '-o', join(d, 'out'), '--jobs', '0'], { stdout: (s) => out.push(s), stderr: (s) => err.push(s), progress: { write: (s: string) => err.push(s) } });
    expect(status).toBe(1);
    expect(err.join('')).toMatch(/3 runs: 3 ran, 0 already stored, 1 failed/);
    // The progress counts the recording (one task) with the three units.
    expect(err.join('')).toMatch(/virtlab: 4\/4 runs \(100%\), 1 failed, .* elapsed, ETA/);
    expect(existsSync(join(d, 'out', 'index.html'))).toBe(true);
    const bad = await experimentCommand([join(d, 'nope.json')], { stdout: () => {}, stderr: (s) => err.push(s) });
    expect(bad).toBe(2);
    expect(err.join('')).toMatch(/nope\.json: no such file/);
  }, 120_000);
});

describe('worker pool', () => {
  const fake = { url: new URL('./fake-worker.mjs', import.meta.url), execArgv: [] };
  const unitsOf = (n: number, crashAt: number[] = []): RunUnit[] => expandMatrix(scenario).slice(0, 1).flatMap((u) =>
    Array.from({ length: n }, (_, i) => ({ ...u, id: `u${i}`, spec: { ...u.spec, workload: { ...u.spec.workload, params: (crashAt.includes(i) ? { crash: 1 } : { i }) as Record<string, number> } } })));

  it('hands every unit to a worker and reports each once', async () => {
    const got: string[] = [];
    await runPool(unitsOf(7), 3, (r) => got.push(r.result.id), fake);
    expect(got.sort()).toEqual(['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6']);
  });

  it('a worker crash loses only its unit: retried once on a new worker, then reported failed', async () => {
    const got: PoolResult[] = [];
    await runPool(unitsOf(5, [1, 3]), 2, (r) => got.push(r), fake);
    expect(got).toHaveLength(5);
    const failed = got.filter((r) => r.result.status === 'failed').map((r) => r.unit.id).sort();
    expect(failed).toEqual(['u1', 'u3']);
    for (const r of got.filter((x) => x.result.status === 'failed')) expect(r.result.error).toMatch(/died twice \(exit code 3\)/);
  });

  it('real workers (TypeScript under vitest): the recording, then the units; the same bytes as in process', async () => {
    const dw = tmp(), di = tmp();
    const w = await runExperiment(scenario, { dir: dw, jobs: 1, progress: null });
    await runExperiment(scenario, { dir: di, executor: 'inline', progress: null });
    expect(w).toMatchObject({ recorded: 1, ran: 3, failed: 1 });
    const traceOf = (d: string): Buffer => readFileSync(join(d, 'traces', readdirSync(join(d, 'traces')).find((f) => f.endsWith('.vlt'))!));
    expect(traceOf(dw).equals(traceOf(di))).toBe(true);
    // Only the trace directory (not part of a unit's identity) differs between the two.
    const strip = (d: string, u: RunUnit): string => readFileSync(runFile(d, u.id), 'utf8').split(JSON.stringify(join(d, 'traces'))).join('"DIR"');
    for (const u of expandMatrix(scenario)) expect(strip(dw, u)).toBe(strip(di, u));
    expect((JSON.parse(readFileSync(runFile(dw, expandMatrix(scenario)[0]!.id), 'utf8')) as UnitResult).input).toBe('replay');
  }, 120_000);
});
