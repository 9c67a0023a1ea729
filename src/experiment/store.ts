/**
 * The result store of an experiment directory:
 *   DIR/experiment.json   the manifest: scenario (as given) and its hash, the units in order
 *                         with their memberships, provenance
 *   DIR/runs/<id>.json    one finished unit each (UnitResult), written atomically
 *   DIR/traces/<key>.vlt  one recording per distinct workload, parameters and seed (replayed
 *                         by the units whose input is `replay`), written atomically
 * A run file counts as done only if it parses and matches its unit (id and spec) and, for a
 * replay, the trace it replayed is the one stored now (same SHA-256).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../trace/run-record.js';
import type { UnitResult } from './execute.js';
import { canonicalJson, RECORD_TASK_PREFIX, specIdentity, type RunUnit, type UnitSpec } from './matrix.js';
import type { Scenario } from './scenario.js';

/** Bad experiment directory (e.g. it holds another scenario's results). */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}

/** Where the numbers came from. */
export interface Provenance {
  readonly virtlabVersion: string;
  readonly gitCommit: string | null;
  readonly gitDirty: boolean | null;
  readonly node: string;
  readonly platform: string;
}

/** DIR/experiment.json. */
export interface Manifest {
  readonly schema: 'virtlab.experiment/1';
  readonly scenario: { readonly name: string; readonly file: string; readonly sha256: string; readonly content: unknown; readonly description: string };
  readonly seeds: readonly number[] | null;
  readonly profiles: readonly { readonly label: string; readonly id: string; readonly set: Readonly<Record<string, number>> }[];
  readonly sweeps: Scenario['sweeps'];
  readonly units: readonly RunUnit[];
  readonly provenance: Provenance;
}

/** The package root: the directory with package.json above this module (source tree or dist/). */
export function packageRoot(): string {
  for (const up of ['../../', '../../../']) {
    const p = new URL(up, import.meta.url).pathname;
    if (existsSync(join(p, 'package.json'))) return p;
  }
  return process.cwd();
}

let codeId: string | null = null;

/**
 * The identity of the code that computes a run: SHA-256 over the package's `src/` tree
 * (every file, by relative path and bytes; the compiled module directory when there is no
 * `src/`). A stored result made by other code is not reused by `--resume` (`readResult`), so a
 * changed monitor or cost model never mixes stale numbers into a report. Computed once per
 * process (about 160 files).
 */
export function codeIdentity(): string {
  if (codeId !== null) return codeId;
  const root = join(packageRoot(), 'src');
  const base = existsSync(root) ? root : new URL('..', import.meta.url).pathname;
  const files: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else if (e.isFile()) files.push(`${rel}${e.name}`);
    }
  };
  walk(base, '');
  const h = createHash('sha256');
  for (const f of files) h.update(f).update('\0').update(readFileSync(join(base, f))).update('\0');
  codeId = h.digest('hex');
  return codeId;
}

/** virtlab's version, git commit (if in a git checkout), Node version. */
export function currentProvenance(): Provenance {
  const root = packageRoot();
  let version = 'unknown';
  try { version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version; } catch { /* not found */ }
  let gitCommit: string | null = null, gitDirty: boolean | null = null;
  try {
    gitCommit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    gitDirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
  } catch { /* not a git checkout */ }
  return { virtlabVersion: version, gitCommit, gitDirty, node: process.version, platform: `${process.platform}-${process.arch}` };
}

export function manifestFor(s: Scenario, units: readonly RunUnit[]): Manifest {
  return {
    schema: 'virtlab.experiment/1',
    scenario: { name: s.name, file: s.file, sha256: s.sha256, content: s.source, description: s.description },
    seeds: s.seeds,
    profiles: s.profiles.map((p) => ({ label: p.label, id: p.id, set: p.set })),
    sweeps: s.sweeps,
    units,
    provenance: currentProvenance(),
  };
}

export const runsDir = (dir: string): string => join(dir, 'runs');
export const runFile = (dir: string, id: string): string => join(runsDir(dir), `${id}.json`);
export const manifestFile = (dir: string): string => join(dir, 'experiment.json');
export const tracesDir = (dir: string): string => join(dir, 'traces');

/** The trace file a unit replays (DIR/traces/<key>.vlt or the scenario's file); null for a direct unit. */
export function traceFileFor(dir: string, spec: UnitSpec): string | null {
  if (spec.input.kind !== 'replay') return null;
  const t = spec.input.trace;
  return 'file' in t ? t.file : join(tracesDir(dir), `${t.key}.vlt`);
}

// SHA-256 of trace files, by path, size and modification time (resume checks many runs per trace).
const shaCache = new Map<string, { size: number; mtimeMs: number; sha: string }>();
/** SHA-256 of a stored trace file, or null if there is none. */
export function traceFileSha(file: string): string | null {
  let st;
  try { st = statSync(file); } catch { return null; }
  const c = shaCache.get(file);
  if (c && c.size === st.size && c.mtimeMs === st.mtimeMs) return c.sha;
  const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
  shaCache.set(file, { size: st.size, mtimeMs: st.mtimeMs, sha });
  return sha;
}

/** The units with the experiment's trace directory set (where workers find and write recordings). */
export function withTraceDir(dir: string, units: readonly RunUnit[]): RunUnit[] {
  return units.map((u) => (u.spec.input.kind === 'replay' ? { ...u, spec: { ...u.spec, traceDir: tracesDir(dir) } } : u));
}

/**
 * One recording task (id `record:<key>`) per distinct recording that `units` replay, in
 * matrix order; a trace given as a file needs none.
 */
export function recordingTasks(units: readonly RunUnit[]): RunUnit[] {
  const out = new Map<string, RunUnit>();
  for (const u of units) {
    if (u.spec.input.kind !== 'replay' || !('recipe' in u.spec.input.trace)) continue;
    const key = u.spec.input.trace.key;
    if (!out.has(key)) out.set(key, { id: `${RECORD_TASK_PREFIX}${key}`, spec: u.spec, memberships: [u.memberships[0]!] });
  }
  return [...out.values()];
}

/** Reads DIR/experiment.json (StoreError if missing or unreadable). */
export function readManifest(dir: string): Manifest {
  const f = manifestFile(dir);
  if (!existsSync(f)) throw new StoreError(`${dir}: no experiment here (no experiment.json; run virtlab experiment SCENARIO -o ${dir})`);
  try {
    const m = JSON.parse(readFileSync(f, 'utf8')) as Manifest;
    if (m.schema !== 'virtlab.experiment/1') throw new Error(`schema is ${String(m.schema)}, expected virtlab.experiment/1`);
    return m;
  } catch (e) {
    throw new StoreError(`${f}: not a valid experiment manifest (${(e as Error).message})`);
  }
}

/**
 * Prepares DIR for a scenario: creates it, or checks that it holds the same scenario (by
 * hash). Results of a different scenario are never overwritten; an existing experiment needs
 * `resume`.
 */
export function openStore(dir: string, manifest: Manifest, resume: boolean): void {
  const f = manifestFile(dir);
  if (existsSync(f)) {
    const old = readManifest(dir);
    if (old.scenario.sha256 !== manifest.scenario.sha256) {
      throw new StoreError(`${dir} holds results of another scenario (${old.scenario.name}, ${old.scenario.file}, sha256 ${old.scenario.sha256.slice(0, 12)}…, now ${manifest.scenario.sha256.slice(0, 12)}…): nothing was overwritten; choose another -o directory or remove it`);
    }
    if (!resume) throw new StoreError(`${dir} already holds this experiment: use --resume to finish it (finished runs are kept), or choose another -o directory`);
  } else if (existsSync(runsDir(dir))) {
    throw new StoreError(`${dir} has a runs/ directory but no experiment.json: nothing was overwritten; choose another -o directory`);
  }
  mkdirSync(runsDir(dir), { recursive: true });
  writeFileAtomic(f, JSON.stringify(manifest, null, 2) + '\n');
}

/**
 * A stored result if DIR/runs/<id>.json exists, parses and belongs to this unit; else null.
 * By default (what `--resume` decides with) it must also have been made by this code
 * (`codeIdentity`); `anyCode` accepts a result of other code (a report of stored runs).
 */
export function readResult(dir: string, unit: RunUnit, opts: { readonly anyCode?: boolean } = {}): UnitResult | null {
  const f = runFile(dir, unit.id);
  if (!existsSync(f)) return null;
  try {
    const r = JSON.parse(readFileSync(f, 'utf8')) as UnitResult;
    if (r.schema !== 'virtlab.experiment-run/1' || r.id !== unit.id) return null;
    if (canonicalJson(specIdentity(r.spec)) !== canonicalJson(specIdentity(unit.spec))) return null;
    if (r.status !== 'ok' && r.status !== 'failed') return null;
    // Made by other code (or before results carried the code identity): run it again.
    if (opts.anyCode !== true && r.code !== codeIdentity()) return null;
    if (r.status === 'ok' && (r.record === null || typeof r.record.cycles !== 'number' || !Array.isArray(r.timeline))) return null;
    // Results of a virtlab before the boot snapshot lack `userStart` (the reports measure cycles
    // after boot): such a run is not counted, so --resume runs it again.
    if (r.status === 'ok' && r.record !== null && r.record.userStart === undefined) return null;
    // A replay counts only with the trace it replayed: a re-recorded trace with other bytes voids it.
    const tf = traceFileFor(dir, unit.spec);
    if (r.status === 'ok' && tf !== null && (r.trace == null || traceFileSha(tf) !== r.trace.sha256)) return null;
    return r;
  } catch {
    return null;
  }
}

/**
 * Writes a unit's result atomically (temporary file, then rename), with the identity of the
 * code that made it (`codeIdentity`). The spec is stored without `traceDir`: where the runner
 * kept the traces is not part of the run (the trace is named by its key and SHA-256), so the
 * same scenario under another `-o` gives the same bytes.
 */
export function writeResult(dir: string, r: UnitResult): void {
  writeFileAtomic(runFile(dir, r.id), JSON.stringify({ ...r, spec: specIdentity(r.spec), code: codeIdentity() }) + '\n');
}
