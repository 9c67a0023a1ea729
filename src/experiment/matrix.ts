/**
 * The run matrix: a scenario expanded into run units, in a defined order, each with an id
 * that is the SHA-256 of the unit's full specification, including where its inputs come from
 * (a replay of a trace recorded under a given profile by a given recorder version, or a
 * direct run): a change of any of these gives new ids, so stale stored runs are not reused.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Scenario, ScenarioMode, ScenarioProfile, ScenarioWorkload } from './scenario.js';
import { loadProfile, validateProfile, type LoadedProfile } from '../profiles/index.js';
import { recorderVersion } from '../trace/recorder.js';
import { TRACE_VERSION } from '../trace/format.js';

/**
 * Modes that replay the workload's native recording. `trap` is left out because it diverges
 * as soon as the guest reads a sensitive instruction's (wrong) answer — that is its lesson —
 * and `pv` because its kernel takes other paths than the native one, so a native trace's
 * positions do not apply (docs/trace-format.md, "Divergences"). Those run directly.
 */
export const REPLAYED_MODES: ReadonlySet<string> = new Set(['native', 'full', 'hw']);

/** Ids of recording tasks (pool tasks that record a trace) start with this; the rest is the trace key. */
export const RECORD_TASK_PREFIX = 'record:';

/** Why a mode runs directly (stored with the unit, shown in the report). */
export function directReason(mode: string): string {
  if (mode === 'trap') return 'trap diverges from a native trace at the first sensitive instruction whose answer it gets wrong';
  if (mode === 'pv') return 'pv: the paravirtualized kernel takes other paths than the native trace';
  return `${mode}: not known to replay native traces`;
}

/**
 * What decides a recorded trace (the recording is made once per distinct value): the
 * workload and its parameters (seed included), the recording profile, the recorder's version
 * and format version, the recording options. Its SHA-256 names DIR/traces/<key>.vlt.
 */
export interface TraceRecipe {
  readonly recorder: string;
  readonly traceVersion: number;
  readonly workload: UnitSpec['workload'];
  readonly profile: { readonly id: string; readonly set: Readonly<Record<string, number>>; readonly sha256: string };
  /** The control-flow log is off: recording then runs at full JIT speed (docs/trace-format.md, Figures). */
  readonly branches: false;
}

/** Where a unit's guest inputs come from. */
export type UnitInput =
  | { readonly kind: 'direct'; readonly reason: string }
  | {
    readonly kind: 'replay';
    /** A recording the runner makes (`recipe`), or a trace file given by the scenario (`file`, with its SHA-256). */
    readonly trace: { readonly key: string; readonly recipe: TraceRecipe } | { readonly key: string; readonly file: string; readonly sha256: string };
    /**
     * Compare guest-RAM digests at checkpoints. Off under `full`: it never sets the accessed
     * bit of GDT descriptors, so the final RAM digest differs from native while control flow,
     * registers and console agree (docs/trace-format.md).
     */
    readonly checkRam: boolean;
  };

/** Everything one run depends on (serializable: it is posted to a worker). */
export interface UnitSpec {
  readonly workload: { readonly kind: 'workload' | 'trace'; readonly name: string; readonly params: Readonly<Record<string, number | string>> };
  readonly mode: string;
  readonly modeOptions: { readonly paging?: 'nested' | 'shadow'; readonly vpid?: boolean };
  /** Built-in id or absolute path, with the figures changed (dotted paths). */
  readonly profile: { readonly id: string; readonly set: Readonly<Record<string, number>>; readonly sha256: string };
  /** Guest instructions between timeline samples. */
  readonly timelineSlice: number;
  readonly input: UnitInput;
  /**
   * The directory of recorded traces (DIR/traces), set by the runner; not part of the unit's
   * identity (the experiment directory may move).
   */
  readonly traceDir?: string;
}

/** Where a unit sits in the scenario (labels for tables and charts). */
export interface Membership {
  readonly workload: string; readonly mode: string; readonly profile: string;
  readonly seed: number | null;
  /** The sweep, and its point; null for the base matrix. */
  readonly sweep: string | null; readonly sweepValue: number | null;
}

/** A unit: one run, and every place in the scenario it stands for (a sweep point may equal a base point). */
export interface RunUnit {
  readonly id: string;
  readonly spec: UnitSpec;
  readonly memberships: Membership[];
}

/** JSON with object keys sorted: the canonical form hashed for ids. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v as object).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

const sha256 = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('hex');

/** A spec without the fields that are not part of its identity (the trace directory). */
export function specIdentity(spec: UnitSpec): Omit<UnitSpec, 'traceDir'> {
  const { traceDir: _, ...rest } = spec;
  return rest;
}

/** The id of a unit: SHA-256 of its canonical spec (version-tagged; the trace directory left out). */
export function unitId(spec: UnitSpec): string {
  return sha256(canonicalJson({ v: 'virtlab.unit/2', ...specIdentity(spec) })).slice(0, 32);
}

/** The name of a recording: SHA-256 (first 32 hex digits) of its recipe. */
export function traceKey(r: TraceRecipe): string {
  return sha256(canonicalJson({ v: 'virtlab.trace-recipe/1', ...r })).slice(0, 32);
}

const fileShaCache = new Map<string, string>();
function fileSha(path: string): string {
  let s = fileShaCache.get(path);
  if (s === undefined) { s = sha256(readFileSync(path)); fileShaCache.set(path, s); }
  return s;
}

/**
 * Loads a profile with figures changed: a modified copy of the file's JSON, validated again,
 * whose SHA-256 (of its canonical JSON) stands for it in provenance. Unmodified: the file as is.
 */
export function loadProfileWith(id: string, set: Readonly<Record<string, number>>): LoadedProfile {
  const base = loadProfile(id);
  const keys = Object.keys(set);
  if (keys.length === 0) return base;
  const json = JSON.parse(readFileSync(base.path, 'utf8')) as Record<string, unknown>;
  for (const path of keys.sort()) {
    const parts = path.split('.');
    let o = json as Record<string, unknown>;
    for (const k of parts.slice(0, -1)) {
      if (o[k] === null || typeof o[k] !== 'object') throw new RangeError(`profile ${base.name}: no figure at "${path}"`);
      o = o[k] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1]!;
    if (typeof o[last] !== 'number') throw new RangeError(`profile ${base.name}: no numeric figure at "${path}"`);
    o[last] = set[path];
  }
  const profile = validateProfile(json, `${base.path} with ${keys.map((k) => `${k}=${set[k]}`).join(', ')}`);
  return { name: base.name, path: base.path, sha256: sha256(canonicalJson(json)), profile };
}

const profileCache = new Map<string, string>();
function profileSha(id: string, set: Readonly<Record<string, number>>): string {
  const key = canonicalJson({ id, set });
  let s = profileCache.get(key);
  if (s === undefined) { s = loadProfileWith(id, set).sha256; profileCache.set(key, s); }
  return s;
}

function modeRunsOn(m: ScenarioMode, p: ScenarioProfile): boolean {
  return m.profiles === null || m.profiles.includes(p.label);
}

/**
 * Expands a scenario into run units. Order: the base matrix (profile, then workload, then
 * seed, then mode, each in scenario order), then each sweep (point, profile, workload, seed,
 * mode; `native` always included as the baseline). A unit whose id already appeared is run
 * once and gets one more membership.
 */
export function expandMatrix(s: Scenario): RunUnit[] {
  const out: RunUnit[] = [];
  const seen = new Map<string, RunUnit>();
  // One recording per workload (parameters and seed included), under the scenario's first
  // profile as given (its `set` included, a sweep's figure not): every mode, profile and
  // sweep point replays that same recording, so their comparison is paired.
  const rp = s.profiles[0]!;
  const recordProfile = { id: rp.id, set: { ...rp.set }, sha256: profileSha(rp.id, rp.set) };
  const inputFor = (workload: UnitSpec['workload'], mode: string): UnitInput => {
    if (workload.kind === 'trace') {
      const sha = fileSha(workload.name);
      return { kind: 'replay', trace: { key: sha.slice(0, 32), file: workload.name, sha256: sha }, checkRam: mode !== 'full' };
    }
    if (!REPLAYED_MODES.has(mode)) return { kind: 'direct', reason: directReason(mode) };
    const recipe: TraceRecipe = { recorder: recorderVersion(), traceVersion: TRACE_VERSION, workload, profile: recordProfile, branches: false };
    return { kind: 'replay', trace: { key: traceKey(recipe), recipe }, checkRam: mode !== 'full' };
  };
  const add = (w: ScenarioWorkload, m: ScenarioMode, p: ScenarioProfile, seed: number | null, sweep: { name: string; target: 'param' | 'figure'; path: string; value: number } | null): void => {
    const params: Record<string, number | string> = { ...w.params };
    if (seed !== null) params.seed = seed;
    const set: Record<string, number> = { ...p.set };
    if (sweep?.target === 'param') params[sweep.path] = sweep.value;
    if (sweep?.target === 'figure') set[sweep.path] = sweep.value;
    const workload = { kind: w.kind, name: w.name, params };
    const spec: UnitSpec = {
      workload,
      mode: m.mode,
      modeOptions: m.options,
      profile: { id: p.id, set, sha256: profileSha(p.id, set) },
      timelineSlice: s.timelineSlice,
      input: inputFor(workload, m.mode),
    };
    const id = unitId(spec);
    const membership: Membership = { workload: w.label, mode: m.label, profile: p.label, seed, sweep: sweep?.name ?? null, sweepValue: sweep?.value ?? null };
    const existing = seen.get(id);
    if (existing) { existing.memberships.push(membership); return; }
    const unit: RunUnit = { id, spec, memberships: [membership] };
    seen.set(id, unit);
    out.push(unit);
  };
  const seedsOf = (w: ScenarioWorkload): (number | null)[] => (w.seeded && s.seeds ? [...s.seeds] : [null]);
  for (const p of s.profiles) {
    for (const w of s.workloads) {
      for (const seed of seedsOf(w)) for (const m of s.modes) if (modeRunsOn(m, p)) add(w, m, p, seed, null);
    }
  }
  for (const sw of s.sweeps) {
    for (const value of sw.values) {
      for (const p of s.profiles) {
        if (sw.profiles && !sw.profiles.includes(p.label)) continue;
        for (const w of s.workloads) {
          if (sw.workloads && !sw.workloads.includes(w.label)) continue;
          if (sw.target === 'param' && w.kind !== 'workload') continue;
          const swept = s.modes.filter((m) => modeRunsOn(m, p) && m.mode !== 'native' && (!sw.modes || sw.modes.includes(m.label)));
          // No swept mode on this profile: no baseline needed either.
          if (swept.length === 0) continue;
          for (const seed of seedsOf(w)) {
            for (const m of s.modes) {
              if (!modeRunsOn(m, p)) continue;
              if (m.mode !== 'native' && !swept.includes(m)) continue;
              add(w, m, p, seed, { name: sw.name, target: sw.target, path: sw.path, value });
            }
          }
        }
      }
    }
  }
  return out;
}
