/**
 * Executes one run unit: the single place where a unit becomes a run. Today it builds the
 * workload and runs it directly with `runGuest`; record-once/replay-many replaces the body of
 * `executeUnit` (record the workload once per spec.workload, replay it under spec.mode) and
 * nothing else, since results are keyed by the unit's spec.
 */
import { toMultibootElf } from '../guest/image-elf.js';
import { buildWorkload, findWorkload, resolveParams, type WorkloadMachine } from '../guest/workloads/index.js';
import type { RunRecord } from '../trace/run-record.js';
import { runGuest } from '../trace/run-guest.js';
import type { MonitorMode } from '../vmm/index.js';
import { canonicalJson, loadProfileWith, type UnitSpec } from './matrix.js';

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

/** Runs one unit; never throws (a failure is a result with its one-line message). */
export function executeUnit(id: string, spec: UnitSpec): UnitResult {
  const fail = (error: string, record: RunRecord | null = null, extra: Partial<UnitResult> = {}): UnitResult => ({
    schema: 'virtlab.experiment-run/1', id, spec, status: 'failed', error: error.split('\n')[0]!, record, bench: [], checksum: null, timeline: [], ...extra,
  });
  try {
    if (spec.workload.kind === 'trace') return fail('trace replay is not available yet (the trace API is being built): run the workload itself');
    const image = imageFor(spec.workload);
    const profile = loadProfileWith(spec.profile.id, spec.profile.set);
    if (profile.sha256 !== spec.profile.sha256) return fail(`profile ${spec.profile.id} changed since the matrix was expanded (sha256 ${profile.sha256.slice(0, 12)}, expected ${spec.profile.sha256.slice(0, 12)})`);
    const chunks: Buffer[] = [];
    const timeline: TimelineSample[] = [];
    const run = runGuest({
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
    const { bench, checksum } = parseConsole(Buffer.concat(chunks).toString('latin1'));
    const rec = run.record;
    // The last sample is the end of the run (the machine reports the final partial slice too).
    const last = timeline[timeline.length - 1];
    if (!last || last[0] !== rec.instructions) timeline.push([rec.instructions, rec.cycles]);
    if (run.status !== 1) {
      return fail(run.message ?? `the guest exited with status ${run.status} (a workload that ends well gives 1)`, rec, { bench, checksum, timeline });
    }
    return { schema: 'virtlab.experiment-run/1', id, spec, status: 'ok', error: null, record: rec, bench, checksum, timeline };
  } catch (e) {
    return fail(e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e));
  }
}
