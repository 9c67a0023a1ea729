/** Shared by the trace tests: small recordings of workloads, and the profiles. */
import { workloadForExec } from '../../src/cli/workloads.js';
import { loadProfile, DEFAULT_PROFILE, DEFAULT_VMM_PROFILE, type LoadedProfile } from '../../src/profiles/index.js';
import { recordTrace, type RecordSpec, type Recording } from '../../src/trace/recorder.js';

export const P6: LoadedProfile = loadProfile(DEFAULT_PROFILE);
export const VMM: LoadedProfile = loadProfile(DEFAULT_VMM_PROFILE);

/** The spec of `workload:NAME` with `params` (fresh devices each time). */
export function workloadSpec(name: string, params: Record<string, string | number> = {}, seed: number | null = null): RecordSpec {
  const list = Object.entries(params).map(([k, v]) => `${k}=${v}`);
  const w = workloadForExec(`workload:${name}`, list);
  return {
    image: { bytes: w.bytes, path: `workload:${name}` }, devices: w.machine, profile: P6,
    maxInstructions: w.maxInstructions, workload: { name, params }, seed,
  };
}

/** Records `workload:NAME`. */
export function recordWorkload(name: string, params: Record<string, string | number> = {}, seed: number | null = null, extra: Partial<RecordSpec> = {}): Recording {
  return recordTrace({ ...workloadSpec(name, params, seed), ...extra });
}
