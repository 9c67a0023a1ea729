/**
 * The chunk manifest: the units one submission must run, in matrix order, cut into chunks of
 * `chunkSize` consecutive units. Chunk K is units[K*chunkSize, (K+1)*chunkSize). It is what
 * `virtlab run-chunk --manifest M --chunk K` executes, on any back end; the result store
 * (DIR/runs/<id>.json) stays the truth of what is done.
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../trace/run-record.js';
import { canonicalJson, unitId, type RunUnit, type UnitSpec } from './matrix.js';

/** A bad or unreadable chunk manifest. */
export class ChunkManifestError extends Error {
  override readonly name = 'ChunkManifestError';
}

/** One unit of a chunk manifest (the label is for logs only). */
export interface ChunkUnit {
  readonly id: string;
  readonly spec: UnitSpec;
  readonly label: string;
}

/** The file `virtlab run-chunk` reads (DIR/slurm/submit-N/chunks.json). */
export interface ChunkManifest {
  readonly schema: 'virtlab.chunks/1';
  /** The experiment directory (absolute): where DIR/experiment.json and DIR/runs/ live. */
  readonly dir: string;
  /** The scenario's sha256, checked against DIR/experiment.json before running. */
  readonly scenarioSha256: string;
  readonly chunkSize: number;
  readonly units: readonly ChunkUnit[];
}

/** Number of chunks of a manifest. */
export function chunkCount(m: Pick<ChunkManifest, 'chunkSize' | 'units'>): number {
  return Math.ceil(m.units.length / m.chunkSize);
}

/** The units of chunk `k`, in manifest order. */
export function chunkUnits(m: Pick<ChunkManifest, 'chunkSize' | 'units'>, k: number): readonly ChunkUnit[] {
  return m.units.slice(k * m.chunkSize, (k + 1) * m.chunkSize);
}

/** Builds a manifest for `units` (already in matrix order). */
export function planChunks(dir: string, scenarioSha256: string, units: readonly RunUnit[], chunkSize: number, label: (u: RunUnit) => string): ChunkManifest {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`chunk size must be a positive integer, got ${chunkSize}`);
  return { schema: 'virtlab.chunks/1', dir, scenarioSha256, chunkSize, units: units.map((u) => ({ id: u.id, spec: u.spec, label: label(u) })) };
}

/** Writes a manifest atomically (a task never sees half a file). */
export function writeChunkManifest(file: string, m: ChunkManifest): void {
  writeFileAtomic(file, JSON.stringify(m, null, 1) + '\n');
}

/** Reads and checks a manifest: schema, chunk size, and every unit's id against its spec. */
export function readChunkManifest(file: string): ChunkManifest {
  if (!existsSync(file)) throw new ChunkManifestError(`${file}: no such chunk manifest (the experiment driver writes it; is the experiment directory on a file system this node sees?)`);
  let m: ChunkManifest;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as ChunkManifest;
  } catch (e) {
    throw new ChunkManifestError(`${file}: not JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (m?.schema !== 'virtlab.chunks/1') throw new ChunkManifestError(`${file}: schema is ${String(m?.schema)}, expected virtlab.chunks/1`);
  if (typeof m.dir !== 'string' || !Number.isInteger(m.chunkSize) || m.chunkSize < 1 || !Array.isArray(m.units)) {
    throw new ChunkManifestError(`${file}: expected dir (string), chunkSize (positive integer) and units (array)`);
  }
  m.units.forEach((u, i) => {
    // The id is the hash of the spec: a mismatch means an edited or corrupt manifest, and
    // running it would store a result under the wrong key.
    if (typeof u?.id !== 'string' || unitId(u.spec) !== u.id) {
      throw new ChunkManifestError(`${file}: units[${i}]: id ${String(u?.id)} does not match its spec (${canonicalJson(u?.spec).slice(0, 60)}…)`);
    }
  });
  return m;
}
