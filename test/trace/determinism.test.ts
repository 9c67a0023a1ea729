/**
 * Same trace + mode + profile + options ⇒ bit-identical run record: twice in one process,
 * in a child process (the CLI), in a worker thread (DESIGN.md, "Determinism").
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { replayTrace } from '../../src/trace/replayer.js';
import { serializeRunRecord } from '../../src/trace/run-record.js';
import { DEFAULT_VMM_PROFILE } from '../../src/profiles/index.js';
import { VMM, recordWorkload } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'vl-trace-det-'));

function inWorker(bytes: Uint8Array): Promise<{ record: string; divergence: unknown }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./replay-worker.ts', import.meta.url), {
      workerData: { bytes, mode: 'hw', profile: DEFAULT_VMM_PROFILE },
      execArgv: ['--import', join(ROOT, 'scripts', 'ts-register.mjs')],
    });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

describe('replay determinism', () => {
  it('gives the same run record bytes twice in a process, in a child process and in a worker thread', async () => {
    const rec = recordWorkload('pingpong', { via: 'net', n: 3 }, 11);
    const file = join(dir, 'pp.vlt');
    writeFileSync(file, rec.bytes);
    const a = serializeRunRecord(replayTrace(rec.bytes, { mode: 'hw', profile: VMM }).record);
    const b = serializeRunRecord(replayTrace(rec.bytes, { mode: 'hw', profile: VMM }).record);
    expect(b).toBe(a);
    expect(JSON.parse(a).mode).toBe('hw');

    const json = join(dir, 'pp-child.json');
    const child = spawnSync(process.execPath, ['--import', './scripts/ts-register.mjs', 'src/cli/main.ts', 'replay', file, '--mode', 'hw', '--json', json], { cwd: ROOT, encoding: 'latin1' });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(rec.run.status);
    expect(readFileSync(json, 'utf8')).toBe(a);

    const w = await inWorker(rec.bytes);
    expect(w.divergence).toBeNull();
    expect(w.record).toBe(a);
  }, 120_000);
});
