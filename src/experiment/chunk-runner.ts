/**
 * Executes one chunk of a chunk manifest: each unit without a valid stored result is run
 * with `executeUnit` and written atomically to DIR/runs/<id>.json, exactly as the local pool
 * writes it (same function, same serialization), so a chunk on a cluster node and a worker
 * thread on a laptop leave the same bytes. Units already stored are skipped: a chunk that is
 * resubmitted after its task died redoes only what is missing.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { ensureTrace, executeUnit, type TraceOutcome, type UnitResult } from './execute.js';
import { chunkCount, chunkUnits, ChunkManifestError, readChunkManifest } from './chunk-manifest.js';
import type { RunUnit } from './matrix.js';
import { readManifest, readResult, writeResult } from './store.js';

/**
 * Test-only fault injection: `VIRTLAB_TEST_FAIL_CHUNK_ONCE=K:MARKER` makes chunk K stop with
 * an error after writing its first result, the first time only (MARKER is a file created
 * when the fault fires; while it exists the chunk runs normally). The end-to-end test uses it
 * to prove that a task dying half-way is resubmitted and loses nothing.
 */
export const FAULT_ENV = 'VIRTLAB_TEST_FAIL_CHUNK_ONCE';

/** Raised by the fault injection hook (never in normal use). */
export class InjectedFault extends Error {
  override readonly name = 'InjectedFault';
}

/**
 * Executes a unit as the local runner does: a unit that replays a recording first makes sure
 * the recording exists (`ensureTrace`: an intact stored one is reused, else it is recorded
 * and written atomically; recordings are deterministic, so two chunks recording the same
 * one write the same bytes). A failed recording fails the unit with the runner's message.
 * `ensured` remembers the outcome per trace key within one process.
 */
export function executeWithRecording(id: string, spec: RunUnit['spec'], ensured: Map<string, TraceOutcome>): UnitResult {
  if (spec.input.kind === 'replay' && 'recipe' in spec.input.trace) {
    const key = spec.input.trace.key;
    let o = ensured.get(key);
    if (!o) { o = ensureTrace(spec); ensured.set(key, o); }
    if (o.status === 'failed') {
      // The same record as runner.ts stores for a unit whose recording failed.
      return { schema: 'virtlab.experiment-run/1', id, spec, status: 'failed', error: o.error ?? 'recording failed', record: null, bench: [], checksum: null, timeline: [], input: 'replay', trace: null, divergence: null };
    }
  }
  return executeUnit(id, spec);
}

export interface ChunkSummary {
  readonly chunk: number;
  readonly units: number;
  /** Found stored (a resubmitted chunk). */
  readonly skipped: number;
  readonly ran: number;
  /** Ran and stored with status failed. */
  readonly failed: number;
}

/** Runs chunk `k` of the manifest at `manifestFile`; `log` receives one line per unit. */
export function runChunk(manifestFile: string, k: number, log: (line: string) => void = () => {}, env: NodeJS.ProcessEnv = process.env): ChunkSummary {
  const m = readChunkManifest(manifestFile);
  const n = chunkCount(m);
  if (!Number.isInteger(k) || k < 0 || k >= n) throw new ChunkManifestError(`${manifestFile}: no chunk ${k} (chunks 0..${n - 1})`);
  const exp = readManifest(m.dir);
  if (exp.scenario.sha256 !== m.scenarioSha256) {
    throw new ChunkManifestError(`${manifestFile}: written for scenario sha256 ${m.scenarioSha256.slice(0, 12)}…, but ${m.dir} now holds ${exp.scenario.sha256.slice(0, 12)}…: rerun virtlab experiment`);
  }
  const fault = parseFault(env[FAULT_ENV]);
  let skipped = 0, ran = 0, failed = 0;
  const units = chunkUnits(m, k);
  const ensured = new Map<string, TraceOutcome>();
  for (const u of units) {
    const unit: RunUnit = { id: u.id, spec: u.spec, memberships: [] };
    if (readResult(m.dir, unit) !== null) { skipped++; log(`${u.id} ${u.label}: already stored`); continue; }
    const t0 = performance.now();
    const r = executeWithRecording(u.id, u.spec, ensured);
    writeResult(m.dir, r);
    ran++;
    if (r.status === 'failed') failed++;
    log(`${u.id} ${u.label}: ${r.status === 'ok' ? `ok, ${r.record!.cycles} cycles` : `failed: ${r.error}`} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    if (fault && fault.chunk === k && !existsSync(fault.marker)) {
      writeFileSync(fault.marker, `chunk ${k} failed once on purpose (${FAULT_ENV})\n`);
      throw new InjectedFault(`test fault injection (${FAULT_ENV}): chunk ${k} stops after ${ran} run(s), once`);
    }
  }
  return { chunk: k, units: units.length, skipped, ran, failed };
}

function parseFault(v: string | undefined): { chunk: number; marker: string } | null {
  if (!v) return null;
  const m = /^(\d+):(.+)$/.exec(v);
  if (!m) throw new ChunkManifestError(`${FAULT_ENV}=${v}: expected CHUNK:MARKER-FILE`);
  return { chunk: Number(m[1]), marker: m[2]! };
}
