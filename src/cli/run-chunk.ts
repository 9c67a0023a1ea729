/**
 * `virtlab run-chunk --manifest M --chunk K`: executes chunk K of a chunk manifest (written by
 * `virtlab experiment`), storing each run atomically in the experiment directory. What a Slurm
 * array task runs; usable by hand to redo one chunk.
 */
import { parseArgs } from 'node:util';
import { ChunkManifestError, readChunkManifest } from '../experiment/chunk-manifest.js';
import { InjectedFault, runChunk } from '../experiment/chunk-runner.js';
import { StoreError } from '../experiment/store.js';

export const RUN_CHUNK_USAGE = `usage: virtlab run-chunk --manifest FILE --chunk K

Runs the units of chunk K (0-based) of a chunk manifest (DIR/slurm/submit-N/chunks.json) that
have no stored result yet, writing each to DIR/runs/<id>.json. One line per unit on stdout.
See docs/cluster.md.

exit status: 0 every unit of the chunk has a stored result (some may be failed runs);
2 bad input (manifest, chunk number, experiment directory); 75 test fault injection.
`;

/** `virtlab run-chunk`: returns the exit status. */
export function runChunkCommand(argv: string[], io: { stdout(s: string): void; stderr(s: string): void }): number {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, options: { manifest: { type: 'string' }, chunk: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (e) {
    io.stderr(`virtlab: run-chunk: ${(e as Error).message}\n(see virtlab run-chunk --help)\n`);
    return 2;
  }
  if (values.help) { io.stdout(RUN_CHUNK_USAGE); return 0; }
  if (values.manifest === undefined || values.chunk === undefined) { io.stderr('virtlab: run-chunk: --manifest FILE and --chunk K are required (see virtlab run-chunk --help)\n'); return 2; }
  if (!/^\d+$/.test(values.chunk)) { io.stderr(`virtlab: run-chunk: --chunk: expected a chunk number (0, 1, ...), got "${values.chunk}"\n`); return 2; }
  try {
    readChunkManifest(values.manifest);
    const t0 = performance.now();
    const r = runChunk(values.manifest, Number(values.chunk), (l) => io.stdout(l + '\n'));
    io.stdout(`chunk ${r.chunk}: ${r.units} run(s): ${r.ran} ran (${r.failed} failed), ${r.skipped} already stored (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    return 0;
  } catch (e) {
    if (e instanceof InjectedFault) { io.stderr(`virtlab: run-chunk: ${e.message}\n`); return 75; }
    if (e instanceof ChunkManifestError || e instanceof StoreError) { io.stderr(`virtlab: run-chunk: ${e.message}\n`); return 2; }
    throw e;
  }
}
