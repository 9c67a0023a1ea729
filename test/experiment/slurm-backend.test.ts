/**
 * The Slurm back end without a cluster: the batch script, squeue parsing, the chunk manifest,
 * run-chunk against the local runner (same bytes), the fault injection hook, and the
 * bad-input paths with stand-in sbatch/squeue/scancel scripts on PATH. The real cluster is
 * exercised by slurm-e2e.test.ts.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadExperiment, resultRows } from '../../src/analysis/tables.js';
import { chunkCount, chunkUnits, planChunks, readChunkManifest, writeChunkManifest } from '../../src/experiment/chunk-manifest.js';
import { FAULT_ENV, InjectedFault, runChunk } from '../../src/experiment/chunk-runner.js';
import { expandMatrix } from '../../src/experiment/matrix.js';
import { runExperiment, unitLabel } from '../../src/experiment/runner.js';
import { validateScenario } from '../../src/experiment/scenario.js';
import { SlurmInterrupted } from '../../src/experiment/slurm-backend.js';
import { expandIndices, isTerminal, parseSqueue, SlurmError } from '../../src/experiment/slurm-cli.js';
import { arraySpec, batchScript } from '../../src/experiment/slurm-script.js';
import { manifestFor, openStore, runFile, withTraceDir } from '../../src/experiment/store.js';
import { runChunkCommand } from '../../src/cli/run-chunk.js';
import { experimentCommand } from '../../src/cli/experiment.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'virtlab-slurm-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

// 4 units: native and full replay one recording, trap runs directly, hw nested fails on p4.
const scenario = validateScenario({
  name: 'tiny-slurm',
  workloads: [{ name: 'syscall', params: { n: 20 } }],
  modes: ['native', 'trap', 'full', { mode: 'hw', paging: 'nested', vpid: false }],
  profiles: ['p4-2005'],
}, 'tiny-slurm.json', 'c'.repeat(64));
const units = expandMatrix(scenario);

describe('batch script and squeue text', () => {
  const o = { jobName: 'virtlab-x', partition: 'short', account: 'lab', time: '1:00:00', cpusPerTask: 2, extra: ['--mem=2G'] };
  it('has the array task command and the #SBATCH lines asked for', () => {
    const s = batchScript(o, '/exp/slurm/submit-1/chunks.json', '/exp/slurm/submit-1/logs');
    expect(s.startsWith('#!/bin/bash\n')).toBe(true);
    for (const l of ['--job-name=virtlab-x', '--cpus-per-task=2', '--partition=short', '--account=lab', '--time=1:00:00', '--mem=2G',
      '--output=/exp/slurm/submit-1/logs/chunk-%a.job-%A.out', '--error=/exp/slurm/submit-1/logs/chunk-%a.job-%A.err']) {
      expect(s).toContain(`#SBATCH ${l}\n`);
    }
    expect(s).toMatch(/run-chunk --manifest '\/exp\/slurm\/submit-1\/chunks.json' --chunk "\$SLURM_ARRAY_TASK_ID"\n$/);
    // #SBATCH lines are read only before the first command.
    expect(s.indexOf('#SBATCH --mem')).toBeLessThan(s.indexOf('\nset -eu'));
  });
  it('refuses what #SBATCH lines cannot carry', () => {
    expect(() => batchScript({ ...o, partition: 'a b' }, '/m', '/l')).toThrow(/partition "a b"/);
    expect(() => batchScript(o, '/m', '/my exp/logs')).toThrow(/space/);
    expect(() => batchScript({ ...o, extra: ['mem=2G'] }, '/m', '/l')).toThrow(/--sbatch "mem=2G"/);
  });
  it('array specs and squeue lines', () => {
    expect(arraySpec([0, 1, 2, 5, 7, 8], 4)).toBe('0-2,5,7-8%4');
    expect(arraySpec([3])).toBe('3');
    expect(expandIndices('[1-3,7]%2')).toEqual([1, 2, 3, 7]);
    expect(parseSqueue('12_0|12|0|COMPLETED|None\n12_[1-2%1]|12|1-2%1|PENDING|JobArrayTaskLimit\n12_3|12|3|FAILED|NonZeroExitCode\n')).toEqual([
      { task: 0, state: 'COMPLETED', reason: 'None' }, { task: 1, state: 'PENDING', reason: 'JobArrayTaskLimit' },
      { task: 2, state: 'PENDING', reason: 'JobArrayTaskLimit' }, { task: 3, state: 'FAILED', reason: 'NonZeroExitCode' },
    ]);
    expect(isTerminal('FAILED')).toBe(true);
    expect(isTerminal('RUNNING')).toBe(false);
    expect(isTerminal('CANCELLED+')).toBe(true);
  });
});

describe('chunk manifest', () => {
  it('cuts the units in order; a manifest whose id does not match its spec is refused', () => {
    const d = tmp();
    const m = planChunks(d, scenario.sha256, units, 3, unitLabel);
    expect(chunkCount(m)).toBe(2);
    expect([...chunkUnits(m, 0), ...chunkUnits(m, 1)].map((u) => u.id)).toEqual(units.map((u) => u.id));
    const f = join(d, 'chunks.json');
    writeChunkManifest(f, { ...m, units: [{ ...m.units[0]!, id: m.units[1]!.id }, ...m.units.slice(1)] });
    expect(() => readChunkManifest(f)).toThrow(/units\[0\]: id .* does not match its spec/);
    const err: string[] = [];
    expect(runChunkCommand(['--manifest', f, '--chunk', '0'], { stdout: () => {}, stderr: (s) => err.push(s) })).toBe(2);
    expect(err.join('')).toMatch(/^virtlab: run-chunk: .*chunks.json: units\[0\]/);
    expect(runChunkCommand(['--manifest', join(d, 'nope.json'), '--chunk', 'x'], { stdout: () => {}, stderr: (s) => err.push(s) })).toBe(2);
  });
});

describe('run-chunk gives the bytes of the local runner', () => {
  it('every run file and the results table are identical; a chunk failing half-way is redone without its stored run', async () => {
    const base = tmp(), dir = join(base, 'exp');
    const local = await runExperiment(scenario, { dir, executor: 'inline', progress: null });
    expect(local.failed).toBe(1); // hw nested on p4-2005: a failed run is a result too
    renameSync(dir, join(base, 'local'));
    // The same directory path, now filled chunk by chunk (3 chunks of up to 2 runs).
    openStore(dir, manifestFor(scenario, units), false);
    const mf = join(base, 'chunks.json');
    writeChunkManifest(mf, planChunks(dir, scenario.sha256, withTraceDir(dir, units), 2, unitLabel));
    const marker = join(base, 'fault-marker');
    const env = { [FAULT_ENV]: `1:${marker}` };
    expect(runChunk(mf, 0, undefined, env)).toMatchObject({ units: 2, ran: 2, skipped: 0 });
    expect(() => runChunk(mf, 1, undefined, env)).toThrow(InjectedFault);
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(runFile(dir, units[2]!.id))).toBe(true);
    expect(existsSync(runFile(dir, units[3]!.id))).toBe(false);
    const out: string[] = [];
    expect(runChunkCommand(['--manifest', mf, '--chunk', '1'], { stdout: (s) => out.push(s), stderr: () => {} })).toBe(0);
    expect(out.join('')).toMatch(/already stored[\s\S]*chunk 1: 2 run\(s\): 1 ran \(1 failed\), 1 already stored/);
    const names = readdirSync(join(base, 'local', 'runs')).sort();
    expect(readdirSync(join(dir, 'runs')).sort()).toEqual(names);
    for (const n of names) expect(readFileSync(join(dir, 'runs', n), 'utf8')).toBe(readFileSync(join(base, 'local', 'runs', n), 'utf8'));
    expect(resultRows(loadExperiment(dir))).toEqual(resultRows(loadExperiment(join(base, 'local'))));
  }, 120_000);
});

/** Stand-in Slurm tools: bash scripts on a PATH of their own. */
function fakeTools(scripts: Record<string, string>): string {
  const bin = join(tmp(), 'bin');
  mkdirSync(bin);
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  return bin;
}

describe('bad input and failures (stand-in Slurm tools)', () => {
  const path = process.env.PATH;
  afterEach(() => { process.env.PATH = path; });
  const slurmOpts = (extra: object = {}) => ({ chunkSize: 2, pollSeconds: 0.05, log: (l: string) => lines.push(l), ...extra });
  let lines: string[] = [];

  it('no sbatch on PATH: says so, nothing lost', async () => {
    lines = [];
    process.env.PATH = fakeTools({});
    const dir = join(tmp(), 'exp');
    await expect(runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: slurmOpts() })).rejects.toThrow(/sbatch not found on PATH.*--backend local/);
  });

  it('a rejected submission names Slurm\'s reason and what to check', async () => {
    lines = [];
    process.env.PATH = `${fakeTools({ sbatch: 'echo "sbatch: error: invalid partition specified: nope" >&2; exit 1' })}:${path}`;
    const dir = join(tmp(), 'exp');
    const e = await runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: slurmOpts({ partition: 'nope' }) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SlurmError);
    expect((e as Error).message).toMatch(/^sbatch rejected the job: sbatch: error: invalid partition specified: nope \(check --partition/);
    expect(readFileSync(join(dir, 'slurm/submit-1/job.sh'), 'utf8')).toContain('#SBATCH --partition=nope\n');
  });

  it('a cluster that forgets the job: bounded resubmissions, the missing runs named, --resume does exactly those', async () => {
    lines = [];
    const calls = join(tmp(), 'sbatch-calls');
    process.env.PATH = `${fakeTools({
      sbatch: `echo "$@" >> ${calls}; echo 4242`,
      squeue: 'echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1',
      sacct: 'echo "Slurm accounting storage is disabled" >&2; exit 1',
    })}:${path}`;
    const dir = join(tmp(), 'exp');
    const r = await runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: slurmOpts({ maxAttempts: 2, maxTasks: 5 }) });
    expect(r.failed).toBe(4);
    expect(r.failures[0]!.error).toMatch(/^no result after 2 submission\(s\) \(chunk 0, job 4242_0: not listed by squeue any more; log .*chunk-0.job-4242.err\); rerun with --resume$/);
    expect(readFileSync(calls, 'utf8').trim().split('\n').map((l) => l.split(' ')[1])).toEqual(['--array=0-1%5', '--array=0-1%5']);
    expect(lines.join('\n')).toMatch(/resubmitting 2 chunk\(s\)/);
    // Nothing was stored, so a local --resume runs all of them; none is "already stored".
    const again = await runExperiment(scenario, { dir, resume: true, executor: 'inline', progress: null });
    expect(again).toMatchObject({ skipped: 0, ran: 4 });
  }, 60_000);

  it('calibration: the first run is made here, timed and stored; the rest go to the cluster in chunks sized from it', async () => {
    lines = [];
    const calls = join(tmp(), 'sbatch-calls');
    process.env.PATH = `${fakeTools({ sbatch: `echo "$@" >> ${calls}; echo 5`, squeue: 'echo "Invalid job id specified" >&2; exit 1', sacct: 'exit 1' })}:${path}`;
    const dir = join(tmp(), 'exp');
    const r = await runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: { chunkSeconds: 600, maxAttempts: 1, pollSeconds: 0.05, log: (l) => lines.push(l) } });
    expect(lines[0]).toMatch(/^virtlab: calibration: syscall \/ native \/ p4-2005: ok in /);
    expect(existsSync(runFile(dir, units[0]!.id))).toBe(true);
    const m = readChunkManifest(join(dir, 'slurm/submit-1/chunks.json'));
    expect(m.units.map((u) => u.id)).toEqual(units.slice(1).map((u) => u.id));
    // A run of this size takes well under a second: 600 s holds all three in one chunk.
    expect(chunkCount(m)).toBe(1);
    expect(readFileSync(calls, 'utf8').split(' ')[1]).toBe('--array=0');
    expect(r.failures.map((f) => f.unit.id)).toEqual(units.slice(1).map((u) => u.id));
  }, 60_000);

  it('a controller briefly unreachable: squeue errors are retried, not fatal', async () => {
    lines = [];
    const n = join(tmp(), 'squeue-count');
    process.env.PATH = `${fakeTools({
      sbatch: 'echo 9',
      squeue: `c=$(cat ${n} 2>/dev/null || echo 0); echo $((c+1)) > ${n}; if [ $c -lt 2 ]; then echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2; exit 1; fi; echo "9_0|9|0|COMPLETED|None"; echo "9_1|9|1|COMPLETED|None"`,
      sacct: 'exit 1',
    })}:${path}`;
    const dir = join(tmp(), 'exp');
    const r = await runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: slurmOpts({ maxAttempts: 1 }) });
    expect(lines.join('\n')).toMatch(/squeue failed \(exit 1\): squeue: error: Unable to contact slurm controller \(connect failure\) \(retrying for up to/);
    expect(readFileSync(n, 'utf8').trim()).toBe('3');
    // The tasks "completed" without writing anything: their runs are missing, named per chunk.
    expect(r.failures[3]!.error).toMatch(/chunk 1, job 9_1: COMPLETED; log .*chunk-1\.job-9\.err/);
  });

  it('Ctrl-C cancels the job with scancel and keeps what is stored', async () => {
    lines = [];
    const cancelled = join(tmp(), 'scancel-args');
    process.env.PATH = `${fakeTools({ sbatch: 'echo "77;cluster"', squeue: 'echo "77_0|77|0|RUNNING|None"; echo "77_1|77|1|PENDING|Resources"', scancel: `echo "$@" > ${cancelled}` })}:${path}`;
    const ac = new AbortController();
    const dir = join(tmp(), 'exp');
    const p = runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: slurmOpts({ signal: ac.signal, log: (l: string) => { lines.push(l); if (/running/.test(l)) ac.abort(); } }) });
    await expect(p).rejects.toThrow(SlurmInterrupted);
    await expect(p).rejects.toThrow(/cancelled Slurm job 77 \(scancel\).*--resume/);
    expect(readFileSync(cancelled, 'utf8').trim()).toBe('77');
  });

  it('--dry-run prints the plan and estimate and writes nothing', async () => {
    const out: string[] = [];
    const dir = join(tmp(), 'exp');
    const r = await runExperiment(scenario, { dir, backend: 'slurm', progress: null, slurm: { dryRun: true, chunkSeconds: 600, log: () => {}, print: (l) => out.push(l) } });
    expect(r.ran).toBe(0);
    expect(existsSync(dir)).toBe(false);
    const text = out.join('\n');
    expect(text).toMatch(/^plan: 4 runs, 0 already stored, 4 to run in 1 chunk\(s\) of up to \d+ run\(s\)/);
    expect(text).toMatch(/core-hours in all/);
    expect(text).toContain('#SBATCH --cpus-per-task=1');
  }, 60_000);
  it("takes the scenario's slurm settings; a flag overrides the same setting", async () => {
    const d = tmp();
    const file = join(d, 'with-slurm.json');
    writeFileSync(file, JSON.stringify({
      name: 'with-slurm', workloads: [{ name: 'syscall', params: { n: 20 } }], modes: ['native'], profiles: ['p4-2005'],
      slurm: { partition: 'debug', account: 'lab7', cpusPerTask: 2, sbatch: ['--mem=1G'], chunkSeconds: 300 },
    }));
    const out: string[] = [], err: string[] = [];
    const io = { stdout: (x: string) => { out.push(x); }, stderr: (x: string) => { err.push(x); } };
    const code = await experimentCommand([file, '-o', join(d, 'exp'), '--backend', 'slurm', '--dry-run', '--cpus-per-task', '3', '--account', 'other'], io);
    expect(code, err.join('')).toBe(0);
    const text = out.join('');
    expect(text).toContain('#SBATCH --partition=debug');
    expect(text).toContain('#SBATCH --account=other');
    expect(text).toContain('#SBATCH --cpus-per-task=3');
    expect(text).toContain('#SBATCH --mem=1G');
    // A bad setting in the file is a scenario error naming the file and the path.
    writeFileSync(file, JSON.stringify({ name: 'x', workloads: [{ name: 'syscall' }], modes: ['native'], profiles: ['p4-2005'], slurm: { time: 'soon' } }));
    err.length = 0;
    expect(await experimentCommand([file, '-o', join(d, 'exp2'), '--backend', 'slurm', '--dry-run'], io)).toBe(2);
    expect(err.join('')).toMatch(/with-slurm\.json.*slurm\.time/);
  }, 60_000);
});
