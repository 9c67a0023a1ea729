// A hand-made experiment directory: manifest and run files written directly (no emulation),
// with cycle counts chosen so that the expected overheads are easy to compute by hand.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { UnitResult } from '../../src/experiment/execute.js';
import { unitId, type RunUnit, type UnitSpec } from '../../src/experiment/matrix.js';
import type { Manifest } from '../../src/experiment/store.js';
import type { RunRecord } from '../../src/trace/run-record.js';

export interface FakeRun {
  workload: string; mode: string; seed: number | null; cycles: number;
  categories?: Record<string, number>; monitor?: Record<string, number>; checksum?: string;
  sweep?: { name: string; value: number };
  status?: 'ok' | 'failed';
  /** The snapshot at the first entry to user mode: cycles and categories (default: none, null). */
  boot?: { cycles: number; categories: Record<string, number> };
}

function record(r: FakeRun): RunRecord {
  const cats = r.categories ?? { guest: r.cycles };
  return {
    schema: 'virtlab.run/1', image: { path: `workload:${r.workload}`, sha256: 'ab'.repeat(32), format: 'multiboot' },
    mode: r.mode as RunRecord['mode'], profile: { name: 'p4-2005', sha256: 'cd'.repeat(32) }, machine: { memoryMiB: 64, cpuHz: 1e9 },
    limits: { maxInstructions: 1e9 }, instructions: 1000, cycles: r.cycles, idleCycles: 0,
    accounting: { total: r.cycles, categories: Object.fromEntries(Object.entries(cats).map(([k, v]) => [k, { cycles: v, count: 1 }])) },
    userStart: r.boot ? { instructions: 100, cycles: r.boot.cycles, categories: Object.fromEntries(Object.entries(r.boot.categories).map(([k, v]) => [k, { cycles: v, count: 0 }])) } : null,
    tlb: { itlb: { hits: 0, misses: 0, flushes: 0, invalidations: 0, evictions: 0 }, dtlb: { hits: 0, misses: 0, flushes: 0, invalidations: 0, evictions: 0 }, walkReferences: 0, accessedDirtyUpdates: 0 },
    exit: { reason: 'exit-device', code: 1 }, exitStatus: 1, consoleBytes: 10, consoleSha256: 'ef'.repeat(32),
    events: {}, devices: {}, monitor: r.monitor ?? {},
  } as unknown as RunRecord;
}

/** Writes DIR/experiment.json and DIR/runs/*.json for `runs` (profile p4-2005). */
export function writeFakeExperiment(dir: string, runs: FakeRun[]): Manifest {
  mkdirSync(join(dir, 'runs'), { recursive: true });
  const units: RunUnit[] = [];
  for (const r of runs) {
    const sweepSet: Record<string, number> = r.sweep ? { 'virtualization.vmExit.value': r.sweep.value } : {};
    const spec: UnitSpec = {
      workload: { kind: 'workload', name: r.workload, params: r.seed !== null ? { seed: r.seed } : {} },
      mode: r.mode, modeOptions: {}, profile: { id: 'p4-2005', set: sweepSet, sha256: r.sweep ? `sweep${r.sweep.value}` : 'base' }, timelineSlice: 20000,
      input: { kind: 'direct', reason: 'fixture' },
    };
    const id = unitId(spec);
    units.push({ id, spec, memberships: [{ workload: r.workload, mode: r.mode, profile: 'p4-2005', seed: r.seed, sweep: r.sweep?.name ?? null, sweepValue: r.sweep?.value ?? null }] });
    const status = r.status ?? 'ok';
    const result: UnitResult = {
      schema: 'virtlab.experiment-run/1', id, spec, status, error: status === 'ok' ? null : 'it broke', record: record(r),
      bench: [{ name: r.workload, ops: 10, cycles: Math.floor(r.cycles / 2), cyclesPerOp: Math.floor(r.cycles / 20) }],
      checksum: r.checksum ?? '0x00000001', timeline: [[500, Math.floor(r.cycles / 3)], [1000, r.cycles]],
    };
    writeFileSync(join(dir, 'runs', `${id}.json`), JSON.stringify(result));
  }
  const manifest: Manifest = {
    schema: 'virtlab.experiment/1',
    scenario: { name: 'fake', file: 'fake.json', sha256: '00'.repeat(32), content: { name: 'fake' }, description: 'hand-made' },
    seeds: null, profiles: [{ label: 'p4-2005', id: 'p4-2005', set: {} }],
    sweeps: runs.some((r) => r.sweep) ? [{ name: 'vm-exit', target: 'figure', path: 'virtualization.vmExit.value', values: [100, 200], workloads: null, modes: null, profiles: null }] : [],
    units, provenance: { virtlabVersion: '0.0.0', gitCommit: null, gitDirty: null, node: process.version, platform: 'test' },
  };
  writeFileSync(join(dir, 'experiment.json'), JSON.stringify(manifest));
  return manifest;
}
