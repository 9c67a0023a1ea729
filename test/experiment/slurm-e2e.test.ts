/**
 * End to end against a real Slurm: ../shared/tools/with-slurm.sh brings up a throwaway
 * single-node cluster (root, Debian's slurmctld/slurmd/slurm-client/munge), and
 * `virtlab experiment --backend slurm` runs a small sweep through it in 2 chunks, chunk 0
 * failing once half-way (VIRTLAB_TEST_FAIL_CHUNK_ONCE) and being resubmitted. Its run files
 * must be byte-identical to a local run of the same scenario, and
 * its results table equal. Without Slurm the test says so and is skipped; with
 * VIRTLAB_REQUIRE_SLURM=1 (.ci/run sets it) a missing Slurm is a failure instead.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadExperiment, resultRows } from '../../src/analysis/tables.js';

const root = resolve(import.meta.dirname, '../..');
const withSlurm = process.env.VIRTLAB_WITH_SLURM ?? resolve(root, '../shared/tools/with-slurm.sh');
const onPath = (c: string): boolean => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0;
const missing = [
  ...(process.getuid?.() === 0 ? [] : ['root']),
  ...['sbatch', 'squeue', 'scancel', 'slurmctld', 'slurmd', 'munged'].filter((c) => !onPath(c)),
  ...(existsSync(withSlurm) ? [] : [withSlurm]),
];
const required = process.env.VIRTLAB_REQUIRE_SLURM === '1';
const available = missing.length === 0;
const why = `Slurm end-to-end test NOT RUN: missing ${missing.join(', ')} (apt-get install slurmctld slurmd slurm-client munge, as root; .ci/run does)`;
if (!available && !required) console.warn(`\n*** ${why} ***\n`);

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const p = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const t = setTimeout(() => p.kill('SIGTERM'), timeoutMs);
    p.on('close', (code) => { clearTimeout(t); res({ code, out, err }); });
  });
}

const virtlab = ['--import', './scripts/ts-register.mjs', 'src/cli/main.ts'];

describe(available ? 'Slurm back end on a real single-node Slurm' : `Slurm back end on a real Slurm — SKIPPED: ${why}`, () => {
  it('missing Slurm is a failure when VIRTLAB_REQUIRE_SLURM=1', () => {
    if (required) expect(missing, why).toEqual([]);
  });

  it.skipIf(!available && !required)('runs a sweep in 2 chunks, resubmits the chunk that failed, and stores the bytes of a local run', async () => {
    const base = mkdtempSync(join(tmpdir(), 'virtlab-slurm-e2e-'));
    dirs.push(base);
    const scen = join(base, 'sweep.json'), dir = join(base, 'exp'), marker = join(base, 'fault-marker');
    // 4 runs: a sweep of the syscall count under native (replayed, with its recording), trap (direct).
    writeFileSync(scen, JSON.stringify({
      name: 'slurm-e2e', workloads: [{ name: 'syscall', params: { n: 10 } }], modes: ['native', 'trap'], profiles: ['p4-2005'],
      sweeps: [{ name: 'n', param: 'n', values: [20] }],
    }));
    const local = await run(process.execPath, [...virtlab, 'experiment', scen, '-o', dir, '--jobs', '0', '--no-report'], process.env, 120_000);
    expect(local.code, local.err).toBe(0);
    renameSync(dir, join(base, 'local'));

    const t0 = performance.now();
    const r = await run(withSlurm, ['--', process.execPath, ...virtlab, 'experiment', scen, '-o', dir, '--backend', 'slurm',
      '--chunk-size', '2', '--max-tasks', '2', '--poll-seconds', '0.5', '--max-attempts', '3'],
    { ...process.env, VIRTLAB_TEST_FAIL_CHUNK_ONCE: `0:${marker}` }, 240_000);
    const secs = (performance.now() - t0) / 1000;
    console.log(`slurm end-to-end: ${secs.toFixed(1)} s (cluster up, 2 chunks, 1 resubmission, report)`);
    expect(r.code, `${r.err}\n${r.out}`).toBe(0);
    // Chunk 0 failed once (after storing its first run), and only it was resubmitted.
    expect(existsSync(marker)).toBe(true);
    expect(r.err).toMatch(/submitted Slurm job \d+ \(attempt 1\/3\): 2 chunk\(s\) \[0-1%2\]/);
    expect(r.err).toMatch(/chunk 0 \(job \d+_0\) ended FAILED.* with 1 run\(s\) missing; log: .*chunk-0\.job-\d+\.err\n\s+virtlab: run-chunk: test fault injection/);
    expect(r.err).toMatch(/submitted Slurm job \d+ \(attempt 2\/3\): 1 chunk\(s\) \[0%2\]/);
    expect(r.err).toMatch(/virtlab: 4 runs: 4 ran, 0 already stored, 0 failed/);
    const logs = readdirSync(join(dir, 'slurm/submit-1/logs'));
    expect(logs.filter((f) => f.startsWith('chunk-0.') && f.endsWith('.out'))).toHaveLength(2);
    expect(logs.filter((f) => f.startsWith('chunk-1.') && f.endsWith('.out'))).toHaveLength(1);
    // The same numbers: every run file byte for byte, and the results table.
    const names = readdirSync(join(base, 'local/runs')).sort();
    expect(names).toHaveLength(4);
    expect(readdirSync(join(dir, 'runs')).sort()).toEqual(names);
    for (const n of names) expect(readFileSync(join(dir, 'runs', n), 'utf8'), n).toBe(readFileSync(join(base, 'local/runs', n), 'utf8'));
    expect(resultRows(loadExperiment(dir))).toEqual(resultRows(loadExperiment(join(base, 'local'))));
    // Aggregated: the report was written from the stored runs.
    expect(readFileSync(join(dir, 'results.csv'), 'utf8').trim().split('\n').length).toBeGreaterThan(4);
  }, 300_000);
});
