import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadExperiment, resultRows } from '../../src/analysis/tables.js';
import type { UnitResult } from '../../src/experiment/execute.js';
import { expandMatrix, type RunUnit } from '../../src/experiment/matrix.js';
import { runExperiment } from '../../src/experiment/runner.js';
import { validateScenario } from '../../src/experiment/scenario.js';
import { codeIdentity, recordingTasks, runFile, tracesDir, withTraceDir } from '../../src/experiment/store.js';
import { loadProfile } from '../../src/profiles/index.js';
import { readTrace, recordTrace } from '../../src/trace/index.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'virtlab-replay-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

// One short workload under every mode on a CPU with EPT: one recording, five units.
const data = {
  name: 'paired',
  workloads: [{ name: 'syscall', params: { n: 20 } }],
  modes: ['native', 'full', { mode: 'hw', paging: 'nested', vpid: true }, 'trap', 'pv'],
  profiles: ['skylake-2015'],
};
const scenario = validateScenario(data, 'paired.json', 'd'.repeat(64));
const quiet = { executor: 'inline', progress: null } as const;
const read = (dir: string, u: RunUnit): UnitResult => JSON.parse(readFileSync(runFile(dir, u.id), 'utf8')) as UnitResult;

describe('the run matrix with record/replay', () => {
  it('replays native, full and hw from one recording; trap and pv run directly', () => {
    const units = expandMatrix(scenario);
    const kinds = Object.fromEntries(units.map((u) => [u.spec.mode, u.spec.input.kind]));
    expect(kinds).toEqual({ native: 'replay', full: 'replay', hw: 'replay', trap: 'direct', pv: 'direct' });
    const tasks = recordingTasks(withTraceDir('/x', units));
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.spec.traceDir).toBe(join('/x', 'traces'));
  });

  it('unit ids depend on the recording profile for replays only', () => {
    const two = (profiles: string[]): RunUnit[] => expandMatrix(validateScenario({ ...data, profiles }, 'p.json', 'e'.repeat(64)));
    const a = two(['p4-2005', 'skylake-2015']), b = two(['skylake-2015', 'p4-2005']);
    const pick = (us: RunUnit[], mode: string): RunUnit => us.find((u) => u.spec.mode === mode && u.spec.profile.id === 'skylake-2015')!;
    expect(pick(a, 'native').id).not.toBe(pick(b, 'native').id);
    expect(pick(a, 'trap').id).toBe(pick(b, 'trap').id);
    // Every unit of a workload replays the same recording, whatever its own profile.
    expect(new Set(a.filter((u) => u.spec.input.kind === 'replay').map((u) => u.spec.input.kind === 'replay' && u.spec.input.trace.key)).size).toBe(1);
  });
});

describe('runner: record once, replay under every mode', () => {
  const dir = tmp();
  const units = expandMatrix(scenario);
  const byMode = (mode: string): RunUnit => units.find((u) => u.spec.mode === mode)!;
  const traceFile = (): string => join(tracesDir(dir), readdirSync(tracesDir(dir)).find((f) => f.endsWith('.vlt'))!);

  it('records once and gives paired results with identical guest checksums', async () => {
    const r = await runExperiment(scenario, { dir, ...quiet });
    expect(r.failed).toBe(0);
    expect(r.recorded).toBe(1);
    expect(readdirSync(tracesDir(dir)).filter((f) => f.endsWith('.vlt'))).toHaveLength(1);
    expect(readTrace(readFileSync(traceFile())).header.workload).toEqual({ name: 'syscall', params: { n: 20 } });
    const replays = ['native', 'full', 'hw'].map((m) => read(dir, byMode(m)));
    for (const x of replays) {
      expect(x.status).toBe('ok');
      expect(x.input).toBe('replay');
      expect(x.divergence).toBeNull();
      expect(x.trace!.sha256).toBe(replays[0]!.trace!.sha256);
    }
    expect(replays[0]!.checksum).toMatch(/^0x[0-9a-f]{8}$/);
    expect(new Set(replays.map((x) => x.checksum)).size).toBe(1);
    // Same inputs, other costs: the modes differ in cycles, not in what the guest computed.
    expect(replays[1]!.record!.cycles).toBeGreaterThan(replays[0]!.record!.cycles);
    expect(replays.map((x) => x.record!.instructions)).toEqual(replays.map(() => replays[0]!.record!.instructions));
    for (const m of ['trap', 'pv']) {
      const x = read(dir, byMode(m));
      expect(x.input).toBe('direct');
      expect(x.trace ?? null).toBeNull();
      expect(x.checksum).toBe(replays[0]!.checksum);
    }
    const rows = resultRows(loadExperiment(dir));
    expect(Object.fromEntries(rows.map((row) => [row.modeName, row.input]))).toEqual({ native: 'replay', full: 'replay', hw: 'replay', trap: 'direct', pv: 'direct' });
    expect(rows.every((row) => row.divergence === null)).toBe(true);
  });

  it('the same scenario under another -o directory gives byte-identical run files', async () => {
    const other = tmp();
    await runExperiment(scenario, { dir: join(other, 'elsewhere'), ...quiet });
    for (const u of units) {
      const a = readFileSync(runFile(dir, u.id), 'utf8'), b = readFileSync(runFile(join(other, 'elsewhere'), u.id), 'utf8');
      expect(b).toBe(a);
      expect(a).not.toContain(dir);
    }
  });

  it('resume does not re-record: the stored trace is reused', async () => {
    const before = statSync(traceFile()).mtimeMs;
    unlinkSync(runFile(dir, byMode('full').id));
    const r = await runExperiment(scenario, { dir, resume: true, ...quiet });
    expect(r).toMatchObject({ recorded: 0, reusedTraces: 1, ran: 1, skipped: 4, failed: 0 });
    expect(statSync(traceFile()).mtimeMs).toBe(before);
    expect(read(dir, byMode('full')).input).toBe('replay');
  });

  it('a corrupted stored trace is re-recorded (same bytes: the stored runs stay valid)', async () => {
    const f = traceFile();
    const good = readFileSync(f);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x40;
    writeFileSync(f, bad);
    expect(() => readTrace(bad, f)).toThrow();
    const r = await runExperiment(scenario, { dir, resume: true, ...quiet });
    expect(r).toMatchObject({ recorded: 1, reusedTraces: 0, ran: 0, skipped: 5, failed: 0 });
    expect(readFileSync(f).equals(good)).toBe(true);
  });

  it('a stored run made by other code is run again by --resume, but still reported', async () => {
    const u = byMode('trap');
    const stored = read(dir, u);
    expect(stored.code).toBe(codeIdentity());
    expect(stored.code).toMatch(/^[0-9a-f]{64}$/);
    writeFileSync(runFile(dir, u.id), JSON.stringify({ ...stored, code: '0'.repeat(64) }));
    // The report takes the stored result as it is (its code is provenance, not validity).
    expect(loadExperiment(dir).results.get(u.id)?.code).toBe('0'.repeat(64));
    const r = await runExperiment(scenario, { dir, resume: true, ...quiet });
    expect(r).toMatchObject({ recorded: 0, ran: 1, skipped: 4, failed: 0 });
    expect(read(dir, u)).toEqual(stored);
  });

  it('a stored replay whose trace bytes changed is run again', async () => {
    const u = byMode('native');
    const stored = read(dir, u);
    writeFileSync(runFile(dir, u.id), JSON.stringify({ ...stored, trace: { ...stored.trace, sha256: '0'.repeat(64) } }));
    const r = await runExperiment(scenario, { dir, resume: true, ...quiet });
    expect(r).toMatchObject({ recorded: 0, reusedTraces: 1, ran: 1, skipped: 4 });
    expect(read(dir, u).trace!.sha256).toBe(stored.trace!.sha256);
  });
});

describe('a replay that diverges', () => {
  it('is a failed unit whose error and divergence column are the one-line divergence', async () => {
    // isa.elf reads state that `trap` virtualizes imperfectly: replayed under trap, its guest
    // RAM differs from the recording's at the first checkpoint (1M instructions; the run is
    // cut there, so every unit also ends at the instruction limit).
    const dir = tmp();
    const P = loadProfile('skylake-2015');
    const bytes = readFileSync(new URL('../guests/bin/isa.elf', import.meta.url));
    const rec = recordTrace({ image: { bytes, path: 'isa.elf' }, memoryMiB: 128, profile: P, maxInstructions: 1_000_000, branches: false });
    const file = join(dir, 'isa.vlt');
    writeFileSync(file, rec.bytes);
    const s = validateScenario({ name: 'div', workloads: [{ trace: file, label: 'isa' }], modes: ['native', 'trap'], profiles: ['skylake-2015'] }, join(dir, 'div.json'), 'f'.repeat(64));
    const r = await runExperiment(s, { dir: join(dir, 'out'), ...quiet });
    expect(r.recorded).toBe(0);
    const rows = resultRows(loadExperiment(join(dir, 'out')));
    const native = rows.find((x) => x.modeName === 'native')!, trap = rows.find((x) => x.modeName === 'trap')!;
    expect(native.input).toBe('replay');
    expect(native.divergence).toBeNull();
    expect(trap.input).toBe('replay');
    expect(trap.status).toBe('failed');
    expect(trap.divergence).toMatch(/^replay diverged at logical instruction \d+: .*; at 0x[0-9a-f]{8}: \S/);
    expect(trap.error).toBe(trap.divergence);
    expect(trap.cycles).toBeNull();
  });
});
