/**
 * The workload suite: every workload by name, and `buildWorkload`, which checks the
 * parameters and builds the virtlab kernel image with the workload's programs (init = the
 * workload) plus the devices the machine needs. See docs/workloads.md.
 */
import type { GuestImage } from '../image.js';
import { buildKernel } from '../kernel/kernel.js';
import { benchSyscall } from './kernel-bench.js';
import { LMBENCH } from './lmbench.js';
import { MACRO } from './macro.js';
import { NANO } from './nano.js';
import { WorkloadError, domainOf, resolveParams, type ParamValues, type WorkloadDef, type WorkloadMachine } from './registry.js';

export { WorkloadError, domainOf, resolveParams } from './registry.js';
export type { ParamSpec, ParamValues, WorkloadDef, WorkloadMachine } from './registry.js';
export { ckMix, ckOf, CK_BASIS, CK_PRIME } from './runtime.js';

/** Every workload, in listing order: nanobenchmarks, lmbench-style, macro mixes. */
export const WORKLOADS: readonly WorkloadDef[] = [...NANO, ...LMBENCH, ...MACRO];

/** The workload called `name`, or a WorkloadError listing the names there are. */
export function findWorkload(name: string): WorkloadDef {
  const w = WORKLOADS.find((x) => x.name === name);
  if (!w) throw new WorkloadError(`unknown workload "${name}" (workloads: ${WORKLOADS.map((x) => x.name).join(', ')})`);
  return w;
}

/** A workload ready to run. */
export interface BuiltWorkload {
  readonly def: WorkloadDef;
  /** Every parameter, checked, defaults filled in. */
  readonly params: ParamValues;
  /** The kernel image with the workload's programs; its metadata names the workload and parameters. */
  readonly image: GuestImage;
  /** Devices (fresh objects on every build: a disk image is modified by the run). */
  readonly machine: WorkloadMachine;
  /** An instruction budget that covers the run with room to spare. */
  readonly maxInstructions: number;
}

/** Timer frequency of workload kernels. */
export const WORKLOAD_HZ = 1000;

/** Checks `raw` parameters and builds the workload (WorkloadError for bad input). */
export function buildWorkload(name: string, raw: Readonly<Record<string, string>> = {}): BuiltWorkload {
  const def = findWorkload(name);
  const params = resolveParams(def, raw);
  const b = def.build(params);
  const kernel = buildKernel({ programs: b.programs, init: b.init, hz: WORKLOAD_HZ, extraSyscalls: [benchSyscall], banner: `virtlab kernel: workload ${name}` });
  const image: GuestImage = {
    ...kernel,
    name: `workload-${name}`,
    metadata: { ...kernel.metadata, workload: name, params: { ...params } },
  };
  return { def, params, image, machine: b.machine, maxInstructions: b.maxInstructions };
}

/** One line per workload for `virtlab workloads`: name, group, description, then its parameters. */
export function describeWorkloads(): string {
  const lines: string[] = [];
  for (const group of ['nano', 'lmbench', 'macro'] as const) {
    lines.push(`${group === 'nano' ? 'nanobenchmarks (ASPLOS 2006)' : group === 'lmbench' ? 'lmbench-style' : 'macro mixes (Xen 2003)'}:`);
    for (const w of WORKLOADS.filter((x) => x.group === group)) {
      lines.push(`  ${w.name.padEnd(10)} ${w.description}`);
      for (const [k, s] of Object.entries(w.params)) {
        lines.push(`      ${`${k}=${domainOf(s)}`.padEnd(26)} default ${String(s.default).padEnd(8)} ${s.description}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}
