/**
 * Scenario files (docs/experiments.md): what an experiment runs. A scenario names workloads
 * (with parameters), execution modes (with their options), cost profiles, seeds, and
 * one-dimensional sweeps over a numeric workload parameter or profile figure. This module
 * validates a file, reporting every problem at once with the field's path, and exports the
 * schema as JSON Schema for editors (scenarios/scenario.schema.json).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { WORKLOADS, resolveParams } from '../guest/workloads/index.js';
import { builtinProfileIds, loadProfile, ProfileError } from '../profiles/index.js';
import { MONITOR_MODES } from '../vmm/index.js';

/** A scenario that cannot be used: every problem, one per line, each with the field's path. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
  constructor(readonly file: string, readonly issues: readonly string[]) {
    super(issues.length === 1 ? `${file}: ${issues[0]}` : `${file}: ${issues.length} problems:\n  ${issues.join('\n  ')}`);
  }
}

const ParamValue = z.union([z.number(), z.string()]);

/** A workload of the suite with parameters; `label` tells apart two entries of one workload. */
const WorkloadObject = z.object({
  name: z.string().min(1).describe('a workload of `virtlab workloads`'),
  params: z.record(z.string(), ParamValue).optional().describe('workload parameters (see `virtlab workloads`); `seed` comes from `seeds` when not given here'),
  label: z.string().min(1).optional().describe('name in tables and charts (default: the workload name)'),
}).strict();

/** A recorded trace (replayed under each mode once the trace API exists). */
const TraceObject = z.object({
  trace: z.string().min(1).describe('path of a recorded trace, relative to the scenario file'),
  label: z.string().min(1).optional(),
}).strict();

const WorkloadEntry = z.union([z.string().min(1), WorkloadObject, TraceObject]);

const ModeName = z.string().min(1);
const ModeObject = z.object({
  mode: ModeName.describe('an execution mode: native, trap, full, hw, pv, ... (MONITOR_MODES; checked when the scenario is loaded)'),
  paging: z.enum(['nested', 'shadow']).optional().describe('hw: EPT/NPT or shadow page tables'),
  vpid: z.boolean().optional().describe('hw: VPID-tagged TLB'),
  label: z.string().min(1).optional().describe('name in tables and charts (default e.g. "hw (shadow, no VPID)")'),
  profiles: z.array(z.string().min(1)).min(1).optional().describe('run this mode only on these profiles (ids as in `profiles`)'),
}).strict();
/** `"*"`: every mode of MONITOR_MODES not listed elsewhere in the list, with default options. */
const ModeEntry = z.union([ModeName.describe('a mode name, or "*" for every mode not listed'), ModeObject]);

const ProfileObject = z.object({
  id: z.string().min(1).describe('a built-in profile id or a path to a profile file (relative to the scenario)'),
  set: z.record(z.string(), z.number()).optional().describe('figures to change: {"virtualization.vmExit.value": 300}'),
  label: z.string().min(1).optional(),
}).strict();
const ProfileEntry = z.union([z.string().min(1), ProfileObject]);

const Sweep = z.object({
  name: z.string().min(1).describe('the series name (charts, tables)'),
  param: z.string().min(1).optional().describe('a workload parameter to sweep'),
  figure: z.string().min(1).optional().describe('a profile figure to sweep, by JSON path, e.g. virtualization.vmExit.value'),
  values: z.array(z.number()).min(1),
  workloads: z.array(z.string().min(1)).min(1).optional().describe('labels of the workloads to sweep (default: all)'),
  modes: z.array(z.string().min(1)).min(1).optional().describe('labels of the modes to sweep (default: all; native always runs as the baseline)'),
  profiles: z.array(z.string().min(1)).min(1).optional().describe('profile labels to sweep (default: all)'),
}).strict();

/**
 * Settings of the Slurm back end (`--backend slurm`, docs/cluster.md) kept with the scenario;
 * a command-line flag overrides the same setting here. They do not enter any unit's id: where a
 * run is executed does not change its result.
 */
const SlurmSettings = z.object({
  partition: z.string().min(1).optional(),
  account: z.string().min(1).optional(),
  time: z.string().regex(/^(\d+-)?\d+(:\d+){0,2}$/, 'a Slurm time limit such as 1:00:00 or 2-00:00:00').optional().describe('per-task time limit, Slurm format'),
  cpusPerTask: z.number().int().min(1).max(1024).optional(),
  maxTasks: z.number().int().min(1).optional().describe('array throttle %N'),
  sbatch: z.array(z.string().min(1)).optional().describe('extra #SBATCH options, e.g. "--mem=2G"'),
  chunkSize: z.number().int().min(1).optional().describe('units per chunk (default: from a calibration run)'),
  chunkSeconds: z.number().positive().optional().describe('target wall time of a task (default 600)'),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  pollSeconds: z.number().positive().max(3600).optional(),
}).strict();

/** The scenario file's shape (structure only; names and paths are checked by `loadScenario`). */
export const ScenarioSchema = z.object({
  $schema: z.string().optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  workloads: z.array(WorkloadEntry).min(1),
  modes: z.array(ModeEntry).min(1),
  profiles: z.array(ProfileEntry).min(1),
  seeds: z.array(z.number().int().nonnegative()).min(1).optional().describe('values of the `seed` parameter for workloads that have one (default: their default)'),
  sweeps: z.array(Sweep).optional(),
  timelineSlice: z.number().int().min(1000).optional().describe('guest instructions between timeline samples (default 20000)'),
  slurm: SlurmSettings.optional().describe('settings of the Slurm back end (flags override them)'),
}).strict();
export type ScenarioInput = z.infer<typeof ScenarioSchema>;

/** A workload as the runner needs it. */
export interface ScenarioWorkload {
  readonly label: string;
  readonly kind: 'workload' | 'trace';
  /** Workload name (kind workload) or trace path (kind trace, absolute). */
  readonly name: string;
  /** Raw parameters as given (numbers and words). */
  readonly params: Readonly<Record<string, number | string>>;
  /** True when the workload has a `seed` parameter not fixed in `params`. */
  readonly seeded: boolean;
}
export interface ScenarioMode {
  readonly label: string;
  readonly mode: string;
  readonly options: { readonly paging?: 'nested' | 'shadow'; readonly vpid?: boolean };
  readonly profiles: readonly string[] | null;
}
export interface ScenarioProfile {
  readonly label: string;
  /** A built-in id or an absolute path. */
  readonly id: string;
  readonly set: Readonly<Record<string, number>>;
}
export interface ScenarioSweep {
  readonly name: string;
  readonly target: 'param' | 'figure';
  readonly path: string;
  readonly values: readonly number[];
  readonly workloads: readonly string[] | null;
  readonly modes: readonly string[] | null;
  readonly profiles: readonly string[] | null;
}

/** A validated scenario, names resolved. */
export interface Scenario {
  readonly file: string;
  /** SHA-256 of the file's bytes. */
  readonly sha256: string;
  /** The file's parsed JSON, as given (for provenance). */
  readonly source: unknown;
  readonly name: string;
  readonly description: string;
  readonly workloads: readonly ScenarioWorkload[];
  readonly modes: readonly ScenarioMode[];
  readonly profiles: readonly ScenarioProfile[];
  readonly seeds: readonly number[] | null;
  readonly sweeps: readonly ScenarioSweep[];
  readonly timelineSlice: number;
  /** Slurm back-end settings from the file (empty when it has none). */
  readonly slurm: Readonly<z.infer<typeof SlurmSettings>>;
}

/** The JSON Schema of scenario files (draft 2020-12), for editors. */
export function scenarioJsonSchema(): unknown {
  return z.toJSONSchema(ScenarioSchema, { target: 'draft-2020-12' });
}

const pathText = (p: readonly PropertyKey[]): string =>
  p.length === 0 ? '(top level)' : p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');

/** The value at a dotted JSON path, or undefined. */
export function getPath(o: unknown, path: string): unknown {
  let cur = o;
  for (const k of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** A figure path as written, made to end at the number (`vmExit` → `vmExit.value`). */
export function figurePath(profileJson: unknown, path: string): string {
  const v = getPath(profileJson, path);
  if (v !== null && typeof v === 'object' && typeof (v as Record<string, unknown>).value === 'number') return `${path}.value`;
  return path;
}

function modeLabel(mode: string, paging?: string, vpid?: boolean): string {
  if (mode !== 'hw') return mode;
  const bits = [paging ?? 'nested'];
  if (vpid === false) bits.push('no VPID');
  return `hw (${bits.join(', ')})`;
}

/** Reads the built-in or file profile's raw JSON (null when it cannot be read). */
function profileJson(id: string): unknown {
  try {
    return JSON.parse(readFileSync(loadProfile(id).path, 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Validates parsed scenario JSON. Structural problems (zod) and semantic ones (unknown
 * workload, parameter, mode, profile, figure path) are all collected; throws ScenarioError
 * with every one of them.
 */
export function validateScenario(data: unknown, file: string, sha256 = ''): Scenario {
  const issues: string[] = [];
  const r = ScenarioSchema.safeParse(data);
  if (!r.success) {
    for (const i of r.error.issues) issues.push(`${pathText(i.path)}: ${i.message}`);
  }
  // Semantic checks run on whatever parts are well-formed, so one pass reports everything.
  const raw = (data !== null && typeof data === 'object' ? data : {}) as Record<string, unknown>;
  const arr = (k: string): unknown[] => (Array.isArray(raw[k]) ? (raw[k] as unknown[]) : []);
  const baseDir = dirname(resolve(file));
  const modes = MONITOR_MODES as readonly string[];

  const workloads: ScenarioWorkload[] = [];
  arr('workloads').forEach((w, i) => {
    const at = `workloads[${i}]`;
    if (typeof w === 'string' || (WorkloadObject.safeParse(w).success)) {
      const o = typeof w === 'string' ? { name: w } : (w as z.infer<typeof WorkloadObject>);
      const def = WORKLOADS.find((x) => x.name === o.name);
      if (!def) { issues.push(`${at}${typeof w === 'string' ? '' : '.name'}: unknown workload "${o.name}" (workloads: ${WORKLOADS.map((x) => x.name).join(', ')})`); return; }
      const params = o.params ?? {};
      try {
        resolveParams(def, Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])));
      } catch (e) {
        issues.push(`${at}.params: ${(e as Error).message}`);
        return;
      }
      workloads.push({ label: o.label ?? o.name, kind: 'workload', name: o.name, params, seeded: 'seed' in def.params && !('seed' in params) });
    } else if (TraceObject.safeParse(w).success) {
      const t = w as z.infer<typeof TraceObject>;
      const p = isAbsolute(t.trace) ? t.trace : resolve(baseDir, t.trace);
      if (!existsSync(p)) { issues.push(`${at}.trace: no such file ${p}`); return; }
      workloads.push({ label: t.label ?? t.trace, kind: 'trace', name: p, params: {}, seeded: false });
    }
  });
  const dupe = (labels: string[], what: string): void => {
    const seen = new Set<string>();
    for (const l of labels) { if (seen.has(l)) issues.push(`${what}: label "${l}" is used twice (give entries a distinct "label")`); seen.add(l); }
  };
  dupe(workloads.map((w) => w.label), 'workloads');

  const profiles: ScenarioProfile[] = [];
  const jsonById = new Map<string, unknown>();
  arr('profiles').forEach((p, i) => {
    const at = `profiles[${i}]`;
    const o = typeof p === 'string' ? { id: p } : ProfileObject.safeParse(p).success ? (p as z.infer<typeof ProfileObject>) : null;
    if (!o) return;
    const isPath = o.id.includes('/') || o.id.endsWith('.json');
    const id = isPath && !isAbsolute(o.id) ? resolve(baseDir, o.id) : o.id;
    let loaded;
    try {
      loaded = loadProfile(id);
    } catch (e) {
      issues.push(`${at}${typeof p === 'string' ? '' : '.id'}: ${e instanceof ProfileError ? e.message : String(e)}${isPath ? '' : ` (built-in: ${builtinProfileIds().join(', ')})`}`);
      return;
    }
    const json = profileJson(id);
    jsonById.set(id, json);
    const set: Record<string, number> = {};
    for (const [k, v] of Object.entries(o.set ?? {})) {
      const fp = figurePath(json, k);
      if (typeof getPath(json, fp) !== 'number') { issues.push(`${at}.set.${k}: profile ${loaded.name} has no numeric figure at "${k}"`); continue; }
      set[fp] = v;
    }
    profiles.push({ label: o.label ?? (Object.keys(set).length ? `${loaded.name}*` : loaded.name), id, set });
  });
  dupe(profiles.map((p) => p.label), 'profiles');
  const profileLabels = profiles.map((p) => p.label);

  const out: ScenarioMode[] = [];
  const entries = arr('modes');
  const listed = new Set(entries.flatMap((m) => (typeof m === 'string' && m !== '*' ? [m] : ModeObject.safeParse(m).success ? [(m as { mode: string }).mode] : [])));
  entries.forEach((m, i) => {
    const at = `modes[${i}]`;
    if (m === '*') {
      for (const name of modes) if (!listed.has(name)) out.push({ label: modeLabel(name), mode: name, options: {}, profiles: null });
      return;
    }
    const o = typeof m === 'string' ? { mode: m } : ModeObject.safeParse(m).success ? (m as z.infer<typeof ModeObject>) : null;
    if (!o) return;
    if (!modes.includes(o.mode)) { issues.push(`${at}${typeof m === 'string' ? '' : '.mode'}: unknown mode "${o.mode}" (modes: ${modes.join(', ')}, or "*" for every mode not listed)`); return; }
    if (o.mode !== 'hw' && (o.paging !== undefined || o.vpid !== undefined)) issues.push(`${at}: paging and vpid are options of mode hw, not ${o.mode}`);
    for (const [j, pl] of (o.profiles ?? []).entries()) {
      if (!profileLabels.includes(pl)) issues.push(`${at}.profiles[${j}]: no profile labelled "${pl}" in this scenario (profiles: ${profileLabels.join(', ')})`);
    }
    const options = o.mode === 'hw' ? { ...(o.paging !== undefined ? { paging: o.paging } : {}), ...(o.vpid !== undefined ? { vpid: o.vpid } : {}) } : {};
    out.push({ label: o.label ?? modeLabel(o.mode, o.paging, o.vpid), mode: o.mode, options, profiles: o.profiles ?? null });
  });
  dupe(out.map((m) => m.label), 'modes');
  if (entries.length && !out.some((m) => m.mode === 'native')) issues.push('modes: "native" must be among the modes (overheads are relative to it)');

  const sweeps: ScenarioSweep[] = [];
  arr('sweeps').forEach((s, i) => {
    const at = `sweeps[${i}]`;
    const pr = Sweep.safeParse(s);
    if (!pr.success) return;
    const o = pr.data;
    if ((o.param === undefined) === (o.figure === undefined)) { issues.push(`${at}: give exactly one of "param" (a workload parameter) or "figure" (a profile figure path)`); return; }
    const wl = o.workloads ?? workloads.map((w) => w.label);
    for (const [j, l] of (o.workloads ?? []).entries()) if (!workloads.some((w) => w.label === l)) issues.push(`${at}.workloads[${j}]: no workload labelled "${l}" in this scenario`);
    for (const [j, l] of (o.modes ?? []).entries()) if (!out.some((m) => m.label === l)) issues.push(`${at}.modes[${j}]: no mode labelled "${l}" in this scenario (modes: ${out.map((m) => m.label).join(', ')})`);
    for (const [j, l] of (o.profiles ?? []).entries()) if (!profileLabels.includes(l)) issues.push(`${at}.profiles[${j}]: no profile labelled "${l}" in this scenario`);
    let path = o.param ?? o.figure!;
    if (o.param !== undefined) {
      for (const l of wl) {
        const w = workloads.find((x) => x.label === l);
        if (!w || w.kind !== 'workload') continue;
        const def = WORKLOADS.find((x) => x.name === w.name)!;
        const spec = def.params[o.param];
        if (!spec) { issues.push(`${at}.param: workload ${w.name} has no parameter "${o.param}"`); continue; }
        if (spec.kind !== 'int') { issues.push(`${at}.param: ${w.name}.${o.param} is not numeric`); continue; }
        o.values.forEach((v, j) => {
          try { resolveParams(def, { ...Object.fromEntries(Object.entries(w.params).map(([k, x]) => [k, String(x)])), [o.param!]: String(v) }); } catch (e) { issues.push(`${at}.values[${j}]: ${(e as Error).message}`); }
        });
      }
    } else {
      const targets = profiles.filter((p) => o.profiles === undefined || o.profiles.includes(p.label));
      for (const p of targets) {
        const json = jsonById.get(p.id);
        const fp = figurePath(json, path);
        if (typeof getPath(json, fp) !== 'number') { issues.push(`${at}.figure: profile ${p.label} has no numeric figure at "${path}"`); continue; }
        path = fp;
      }
    }
    sweeps.push({ name: o.name, target: o.param !== undefined ? 'param' : 'figure', path, values: o.values, workloads: o.workloads ?? null, modes: o.modes ?? null, profiles: o.profiles ?? null });
  });
  dupe(sweeps.map((s) => s.name), 'sweeps');

  if (issues.length) throw new ScenarioError(file, [...new Set(issues)]);
  const d = r.data!;
  return {
    file, sha256, source: data, name: d.name, description: d.description ?? '',
    workloads, modes: out, profiles, seeds: d.seeds ?? null, sweeps, timelineSlice: d.timelineSlice ?? 20_000, slurm: d.slurm ?? {},
  };
}

/** Reads and validates a scenario file (ScenarioError for anything wrong, naming the file). */
export function loadScenario(file: string): Scenario {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ScenarioError(file, [code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? String(e)})`]);
  }
  if (/\.ya?ml$/i.test(file)) throw new ScenarioError(file, ['YAML scenarios are not supported: write the scenario as JSON']);
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ScenarioError(file, [`not valid JSON (${(e as Error).message})`]);
  }
  return validateScenario(data, file, createHash('sha256').update(bytes).digest('hex'));
}
