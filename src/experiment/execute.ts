/**
 * Executes one run unit: the single place where a unit becomes a run. A unit whose input is
 * `replay` replays its workload's recording (DIR/traces/<key>.vlt, made beforehand by
 * `ensureTrace`) under its mode and profile; a `direct` unit (trap, pv) builds the workload
 * and runs it with `runGuest`, with the same parameters and seed.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toMultibootElf } from '../guest/image-elf.js';
import { buildWorkload, findWorkload, resolveParams, type WorkloadMachine } from '../guest/workloads/index.js';
import { formatDivergence, readTrace, recordTrace, replayTrace, type Trace } from '../trace/index.js';
import { writeFileAtomic, type RunRecord } from '../trace/run-record.js';
import { runGuest } from '../trace/run-guest.js';
import type { MonitorMode } from '../vmm/index.js';
import { canonicalJson, loadProfileWith, RECORD_TASK_PREFIX, type TraceRecipe, type UnitSpec } from './matrix.js';

/** What the workload printed about itself (`bench:` and `checksum:` lines; docs/workloads.md). */
export interface BenchLine {
  readonly name: string;
  readonly ops: number;
  readonly cycles: number;
  readonly cyclesPerOp: number;
}

/** A sample of the timeline: guest instructions retired and cycles so far (at slice ends). */
export type TimelineSample = readonly [instructions: number, cycles: number];

/** The outcome of one unit (stored as DIR/runs/<id>.json). */
export interface UnitResult {
  readonly schema: 'virtlab.experiment-run/1';
  readonly id: string;
  readonly spec: UnitSpec;
  readonly status: 'ok' | 'failed';
  /** One line, for a failed run. */
  readonly error: string | null;
  readonly record: RunRecord | null;
  readonly bench: readonly BenchLine[];
  readonly checksum: string | null;
  /** Cumulative (instructions, cycles) every `spec.timelineSlice` guest instructions. */
  readonly timeline: readonly TimelineSample[];
  /** Where the guest's inputs came from (absent only in results made without running, e.g. a dead worker). */
  readonly input?: 'replay' | 'direct';
  /** The trace replayed: its key and the SHA-256 of the file's bytes. */
  readonly trace?: { readonly key: string; readonly sha256: string } | null;
  /** The replay's divergence (one line), if it left the recorded path. */
  readonly divergence?: string | null;
  /** For a recording task (id `record:<key>`): what `ensureTrace` did. */
  readonly recording?: TraceOutcome;
  /** The identity of the code that made the result (SHA-256 of virtlab's sources), set when stored. */
  readonly code?: string;
}

/** The outcome of making sure a unit's recording exists (`ensureTrace`). */
export interface TraceOutcome {
  readonly key: string;
  readonly status: 'recorded' | 'reused' | 'failed';
  readonly sha256: string | null;
  readonly error: string | null;
}

interface BuiltImage { bytes: Uint8Array; machine: WorkloadMachine; maxInstructions: number }
const images = new Map<string, Omit<BuiltImage, 'machine'>>();

/**
 * The workload's Multiboot image (built once per process: assembling the kernel is the slow
 * part) and fresh devices for this run: a run writes to its disk image, so devices are never
 * shared between runs.
 */
function imageFor(w: UnitSpec['workload']): BuiltImage {
  const key = canonicalJson(w);
  const raw = Object.fromEntries(Object.entries(w.params).map(([k, v]) => [k, String(v)]));
  const b = images.get(key);
  if (b) {
    const def = findWorkload(w.name);
    return { ...b, machine: def.build(resolveParams(def, raw)).machine };
  }
  const built = buildWorkload(w.name, raw);
  const image = { bytes: toMultibootElf(built.image), maxInstructions: built.maxInstructions };
  if (images.size > 64) images.clear();
  images.set(key, image);
  return { ...image, machine: built.machine };
}

/** Parses the workload's console for its `bench:` lines and checksum. */
export function parseConsole(text: string): { bench: BenchLine[]; checksum: string | null } {
  const bench: BenchLine[] = [];
  for (const m of text.matchAll(/^bench: name=(\S+) ops=(\d+) cycles=(\d+) cycles_per_op=(\d+)$/gm)) {
    bench.push({ name: m[1]!, ops: Number(m[2]), cycles: Number(m[3]), cyclesPerOp: Number(m[4]) });
  }
  const ck = /^checksum: (0x[0-9a-f]{8})$/m.exec(text);
  return { bench, checksum: ck ? ck[1]! : null };
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const oneLine = (e: unknown): string => (e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e)).split('\n')[0]!;

/** The trace file of a recorded input: DIR/traces/<key>.vlt, or the scenario's own file. */
export function traceFileOf(spec: UnitSpec): string {
  if (spec.input.kind !== 'replay') throw new RangeError('a direct unit has no trace');
  const t = spec.input.trace;
  if ('file' in t) return t.file;
  if (spec.traceDir === undefined) throw new RangeError('the unit has no trace directory (the runner sets spec.traceDir)');
  return join(spec.traceDir, `${t.key}.vlt`);
}

/**
 * Checks a stored recording against its recipe: it parses with every checksum right, and its
 * header names the same workload, parameters, recording profile, recorder version and image.
 * Returns null if it fits, else why not.
 */
function traceMismatch(trace: Trace, recipe: TraceRecipe, imageSha: string): string | null {
  const h = trace.header;
  if (h.recorder.version !== recipe.recorder) return `recorder ${h.recorder.version}, expected ${recipe.recorder}`;
  if (h.profile.sha256 !== recipe.profile.sha256) return 'another recording profile';
  if (h.image.sha256 !== imageSha) return 'another guest image (the workload changed)';
  if (canonicalJson(h.workload) !== canonicalJson({ name: recipe.workload.name, params: recipe.workload.params })) return 'another workload or parameters';
  return null;
}

/**
 * Makes sure the recording that `spec` replays exists at `traceFileOf(spec)`: a stored one
 * that reads back intact and fits its recipe is reused; otherwise the workload is recorded
 * natively under the recipe's profile and written atomically. Never throws.
 */
export function ensureTrace(spec: UnitSpec): TraceOutcome {
  const key = spec.input.kind === 'replay' ? spec.input.trace.key : '';
  try {
    if (spec.input.kind !== 'replay') throw new RangeError('a direct unit needs no recording');
    const t = spec.input.trace;
    const file = traceFileOf(spec);
    if ('file' in t) {
      const sha = sha256(readFileSync(file));
      if (sha !== t.sha256) throw new RangeError(`${file} changed since the matrix was expanded (sha256 ${sha.slice(0, 12)}, expected ${t.sha256.slice(0, 12)})`);
      return { key, status: 'reused', sha256: sha, error: null };
    }
    const recipe = t.recipe;
    const image = imageFor(recipe.workload);
    const imageSha = sha256(image.bytes);
    if (existsSync(file)) {
      const bytes = readFileSync(file);
      let fits: string | null;
      try { fits = traceMismatch(readTrace(bytes, file), recipe, imageSha); } catch (e) { fits = oneLine(e); }
      if (fits === null) return { key, status: 'reused', sha256: sha256(bytes), error: null };
    }
    const profile = loadProfileWith(recipe.profile.id, recipe.profile.set);
    if (profile.sha256 !== recipe.profile.sha256) throw new RangeError(`profile ${recipe.profile.id} changed since the matrix was expanded`);
    const rec = recordTrace({
      image: { bytes: image.bytes, path: `workload:${recipe.workload.name}` },
      devices: image.machine, memoryMiB: image.machine.memoryMiB,
      workload: { name: recipe.workload.name, params: recipe.workload.params },
      // null: the devices keep the seeds the workload gave them (its `seed` parameter), as a direct run does.
      seed: null,
      profile, maxInstructions: image.maxInstructions, branches: recipe.branches,
    });
    if (rec.run.status !== 1) throw new Error(`the recording run did not end well: ${rec.run.message ?? `status ${rec.run.status}`}`);
    mkdirSync(spec.traceDir!, { recursive: true });
    writeFileAtomic(file, rec.bytes as unknown as string);
    return { key, status: 'recorded', sha256: sha256(rec.bytes), error: null };
  } catch (e) {
    return { key, status: 'failed', sha256: null, error: `recording failed: ${oneLine(e)}` };
  }
}

// Parsed traces, by file and content hash (a worker replays the same recording many times).
const traces = new Map<string, { sha: string; trace: Trace }>();
function loadTrace(file: string): { sha: string; trace: Trace } {
  const bytes = readFileSync(file);
  const sha = sha256(bytes);
  const c = traces.get(file);
  if (c && c.sha === sha) return c;
  const entry = { sha, trace: readTrace(bytes, file) };
  if (traces.size >= 8) traces.clear();
  traces.set(file, entry);
  return entry;
}

/** Runs one unit; never throws (a failure is a result with its one-line message). */
export function executeUnit(id: string, spec: UnitSpec): UnitResult {
  const input = spec.input.kind;
  let trace: { key: string; sha256: string } | null = null;
  const fail = (error: string, record: RunRecord | null = null, extra: Partial<UnitResult> = {}): UnitResult => ({
    schema: 'virtlab.experiment-run/1', id, spec, status: 'failed', error: error.split('\n')[0]!, record, bench: [], checksum: null, timeline: [], input, trace, divergence: null, ...extra,
  });
  try {
    const profile = loadProfileWith(spec.profile.id, spec.profile.set);
    if (profile.sha256 !== spec.profile.sha256) return fail(`profile ${spec.profile.id} changed since the matrix was expanded (sha256 ${profile.sha256.slice(0, 12)}, expected ${spec.profile.sha256.slice(0, 12)})`);
    const chunks: Buffer[] = [];
    const timeline: TimelineSample[] = [];
    let run: { record: RunRecord; status: number; message: string | null };
    let divergence: string | null = null;
    if (spec.input.kind === 'replay') {
      const file = traceFileOf(spec);
      if (!existsSync(file)) return fail(`no recording at ${file} (its recording failed or was not made)`);
      const t = loadTrace(file);
      trace = { key: spec.input.trace.key, sha256: t.sha };
      // The replay reports progress at its input events and every ≤1M instructions, not at
      // slice ends: a sample is kept at the first report at or past each slice boundary.
      let next = spec.timelineSlice;
      const r = replayTrace(t.trace, {
        mode: spec.mode as MonitorMode, modeOptions: spec.modeOptions, profile, file,
        checkRam: spec.input.checkRam, localize: false,
        onProgress: (p) => {
          if (p.instructions < next) return;
          timeline.push([p.instructions, p.cycles]);
          next = (Math.floor(p.instructions / spec.timelineSlice) + 1) * spec.timelineSlice;
        },
        onConsole: (c) => { chunks.push(Buffer.from(c)); },
      });
      run = r;
      if (r.divergence !== null) divergence = formatDivergence(r.divergence);
    } else {
      if (spec.workload.kind === 'trace') return fail('a trace workload can only be replayed');
      const image = imageFor(spec.workload);
      run = runGuest({
        image: { bytes: image.bytes, path: `workload:${spec.workload.name}` },
        devices: image.machine,
        memoryMiB: image.machine.memoryMiB,
        mode: spec.mode as MonitorMode,
        modeOptions: spec.modeOptions,
        profile,
        maxInstructions: image.maxInstructions,
        sliceInstructions: spec.timelineSlice,
        onProgress: (p) => { timeline.push([p.instructions, p.cycles]); },
        onConsole: (c) => { chunks.push(Buffer.from(c)); },
      });
    }
    const { bench, checksum } = parseConsole(Buffer.concat(chunks).toString('latin1'));
    const rec = run.record;
    // The last sample is the end of the run (the machine reports the final partial slice too).
    const last = timeline[timeline.length - 1];
    if (!last || last[0] !== rec.instructions) timeline.push([rec.instructions, rec.cycles]);
    // A divergence is a failure of the unit: its numbers are not those of the recorded inputs.
    if (divergence !== null) return fail(divergence, rec, { bench, checksum, timeline, divergence });
    if (run.status !== 1) {
      return fail(run.message ?? `the guest exited with status ${run.status} (a workload that ends well gives 1)`, rec, { bench, checksum, timeline });
    }
    return { schema: 'virtlab.experiment-run/1', id, spec, status: 'ok', error: null, record: rec, bench, checksum, timeline, input, trace, divergence: null };
  } catch (e) {
    return fail(oneLine(e));
  }
}

export { RECORD_TASK_PREFIX };

/**
 * Runs one task of the pool: a recording task (id `record:<key>`, `spec` any unit that
 * replays that recording) through `ensureTrace`, wrapped as a UnitResult whose `recording`
 * says what happened; any other id through `executeUnit`. Never throws.
 */
export function executeTask(id: string, spec: UnitSpec): UnitResult {
  if (!id.startsWith(RECORD_TASK_PREFIX)) return executeUnit(id, spec);
  const o = ensureTrace(spec);
  return {
    schema: 'virtlab.experiment-run/1', id, spec, status: o.status === 'failed' ? 'failed' : 'ok', error: o.error,
    record: null, bench: [], checksum: null, timeline: [], input: 'replay', trace: o.sha256 ? { key: o.key, sha256: o.sha256 } : null, divergence: null, recording: o,
  };
}
