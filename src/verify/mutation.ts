/**
 * Mutation analysis of the verifier: each mutant of `src/vmm/mutants.ts` is switched on and
 * the properties that concern its mode search for a counterexample, over several seeds.
 * Per mutant: caught or not, the runs and seconds to the first counterexample (mean over the
 * seeds that caught it), the property that caught it and the shrunk counterexample.
 */
import { checkMutant, MUTANTS, type MutantInfo } from '../vmm/mutants.js';
import { runProperty, type PropertyReport } from './properties.js';
import type { Config } from './run.js';

/**
 * Runs per property per seed in a mutation analysis (`--mutants`, default): at 60, three
 * mutants (bt-smsw, shadow-no-frame-check, pv-evtchn-send-unbound) escaped one seed in three;
 * at 200 every seed catches every mutant. A caught mutant costs only the runs up to its
 * first counterexample, so the budget matters only for the ones that escape.
 */
export const MUTANT_RUNS = 200;

/** Which properties (and configurations) are run against a mutant living in `modes`, in order. */
export function planFor(m: MutantInfo): { property: string; configs: Config[]; exclude?: string[] }[] {
  const plan: { property: string; configs: Config[]; exclude?: string[] }[] = [];
  const modes = m.modes;
  // VPID is VT-x's tag: the recycled-tag mutant is run where the guest has one (its successor cases).
  if (m.name === 'vpid-reuse-no-flush') return [{ property: 'noninterference', configs: ['hw-nested'] }];
  // Needs two pv domains with an interdomain channel: only the kernel pairs have them.
  if (m.name === 'pv-evtchn-wrong-domain') return [{ property: 'noninterference-kernel', configs: ['pv'] }];
  // The device model's DMA bound (every mode): resource-control's DMA watch under the monitors.
  if (m.name === 'dma-no-bound') return [{ property: 'resource-control', configs: ['hw-nested', 'full'] }];
  if (modes.includes('multi-vm')) return [{ property: 'noninterference', configs: ['native'] }];
  if (modes.includes('pv')) return [{ property: 'pv-isolation', configs: ['pv'] }];
  // The I/O bitmap (hw with KVM's pass-through set): its own structural property.
  if (m.name === 'io-bitmap-off-by-one') return [{ property: 'io-control', configs: ['hw-nested'] }];
  // Interrupts delivered with the guest's IF clear: equivalence, whose timer programs have CLI … STI regions.
  if (m.name === 'virtual-if-ignored') return [{ property: 'equivalence', configs: ['full'] }];
  if (m.name === 'hw-inject-ignores-if') return [{ property: 'equivalence', configs: ['hw-nested'] }];
  // A structural check first (fast), then the guest-visible comparison.
  const mapped = modes.filter((c) => c === 'trap' || c === 'full' || c === 'hw-nested' || c === 'hw-shadow');
  // (Only for mutants of the memory virtualization: shadow paging, which hw-shadow shares, or the EPT.)
  const structural = mapped.includes('hw-nested') ? 'hw-nested' : mapped.includes('hw-shadow') ? 'trap' : null;
  if (structural !== null) plan.push({ property: 'resource-control', configs: [structural] });
  // Equivalence under full (trap is not equivalent by design), else under hw.
  const eq = mapped.includes('full') ? 'full' : mapped.includes('hw-nested') ? 'hw-nested' : mapped[0];
  if (eq !== undefined) plan.push({ property: 'equivalence', configs: [eq] });
  return plan;
}

/** One mutant's result. */
export interface MutantResult {
  readonly mutant: string;
  readonly description: string;
  readonly caught: boolean;
  /** Seeds run, and how many caught it. */
  readonly seeds: number;
  readonly caughtSeeds: number;
  /** Mean over the catching seeds: programs generated until the first counterexample, and seconds. */
  readonly meanRuns: number | null;
  readonly meanSeconds: number | null;
  readonly property: string | null;
  readonly counterexample: PropertyReport['counterexample'];
  /** What found `counterexample`: the property, its configurations, the seed and the runs it made (for its file). */
  readonly caughtBy?: { readonly property: string; readonly configs: readonly Config[]; readonly seed: number; readonly runs: number } | null;
  /** The counterexample's file (`--mutants -o DIR`: counterexamples/<mutant>.json, relative to DIR), for `--replay`. */
  readonly counterexampleFile?: string | null;
}

export interface MutationOptions {
  readonly mutants?: readonly string[];
  readonly seeds?: number;
  /** Runs per property per seed (the search gives up after these). */
  readonly runs?: number;
  readonly onResult?: (r: MutantResult) => void;
  /** Shrink the counterexamples (default true). */
  readonly shrink?: boolean;
}

/** Runs the mutation analysis. */
export function runMutants(o: MutationOptions = {}): MutantResult[] {
  const list = (o.mutants ?? MUTANTS.map((m) => m.name)).map(checkMutant);
  const seeds = o.seeds ?? 3, runs = o.runs ?? MUTANT_RUNS;
  const out: MutantResult[] = [];
  for (const m of list) {
    let caughtSeeds = 0, sumRuns = 0, sumSec = 0, property: string | null = null;
    let cx: PropertyReport['counterexample'] = null;
    let caughtBy: MutantResult['caughtBy'] = null;
    for (let seed = 1; seed <= seeds; seed++) {
      let spentRuns = 0, spentSec = 0;
      for (const step of planFor(m)) {
        const r = runProperty(step.property, { runs, seed, configs: step.configs, mutant: m.name, shrink: o.shrink, exclude: step.exclude });
        if (r.firstFailure !== null) {
          caughtSeeds++;
          sumRuns += spentRuns + r.firstFailure.run;
          sumSec += spentSec + r.firstFailure.seconds;
          property ??= `${step.property} (${step.configs.join(', ')})`;
          if (cx === null && r.counterexample !== null) { cx = r.counterexample; caughtBy = { property: step.property, configs: step.configs, seed, runs: r.runs }; }
          break;
        }
        spentRuns += r.runs; spentSec += r.seconds;
      }
    }
    const res: MutantResult = {
      mutant: m.name, description: m.description, caught: caughtSeeds > 0, seeds, caughtSeeds,
      meanRuns: caughtSeeds > 0 ? sumRuns / caughtSeeds : null, meanSeconds: caughtSeeds > 0 ? sumSec / caughtSeeds : null,
      property, counterexample: cx, caughtBy,
    };
    o.onResult?.(res);
    out.push(res);
  }
  return out;
}
