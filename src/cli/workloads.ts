/**
 * `virtlab workloads`: lists the workload suite (name, one-line description, parameters with
 * their ranges and defaults); and the `workload:NAME` image form of `virtlab exec`, which
 * builds the workload's kernel image and the devices its machine needs.
 */
import { parseArgs } from 'node:util';
import { toMultibootElf } from '../guest/image-elf.js';
import { WORKLOADS, WorkloadError, buildWorkload, describeWorkloads, type WorkloadMachine } from '../guest/workloads/index.js';
import { UsageError } from './errors.js';

export const WORKLOADS_USAGE = `usage: virtlab workloads [--json]

Lists the built-in workloads and their parameters. Run one with
  virtlab exec workload:NAME [--param k=v ...]
Each prints "bench: name=… ops=… cycles=… cycles_per_op=…" line(s), then
"checksum: 0x…", and exits 0 (exit status 1 from virtlab exec).

options:
  --json       the same as JSON: [{name, group, description, params: {k: {kind, default, min, max | values, description}}}]
  -h, --help   this help
`;

/** The image prefix that names a workload instead of a file. */
export const WORKLOAD_PREFIX = 'workload:';

/** `virtlab workloads`: returns the exit status. */
export function workloadsCommand(argv: string[], out: { stdout: (s: string) => void }): number {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (e) {
    throw new UsageError(`workloads: ${(e as Error).message}`);
  }
  if (values.help) { out.stdout(WORKLOADS_USAGE); return 0; }
  if (values.json) {
    out.stdout(JSON.stringify(WORKLOADS.map((w) => ({ name: w.name, group: w.group, description: w.description, params: w.params })), null, 2) + '\n');
    return 0;
  }
  out.stdout(describeWorkloads());
  return 0;
}

/** Parses repeated `--param k=v` values (one value per key). */
export function parseParamList(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param: expected k=v, got "${p}"`);
    const k = p.slice(0, eq);
    if (k in out) throw new UsageError(`--param: "${k}" given twice`);
    out[k] = p.slice(eq + 1);
  }
  return out;
}

/** A workload built for `virtlab exec`: the Multiboot ELF and the machine's devices. */
export interface ExecWorkload {
  readonly bytes: Uint8Array;
  readonly machine: WorkloadMachine;
  readonly maxInstructions: number;
}

/** Builds `workload:NAME` with its `--param`s (UsageError for bad input). */
export function workloadForExec(spec: string, params: readonly string[]): ExecWorkload {
  const name = spec.slice(WORKLOAD_PREFIX.length);
  try {
    const b = buildWorkload(name, parseParamList(params));
    return { bytes: toMultibootElf(b.image), machine: b.machine, maxInstructions: b.maxInstructions };
  } catch (e) {
    if (e instanceof WorkloadError) throw new UsageError(e.message);
    throw e;
  }
}
