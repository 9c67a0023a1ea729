/**
 * The verifier's search machinery, shared by the properties (docs/verification.md): the
 * report and option types, the fast-check search with the mutant filter, the greedy
 * minimizer, and the guest-visible difference of two flat-harness runs.
 */
import fc from 'fast-check';
import { performance } from 'node:perf_hooks';
import { withMutant } from '../vmm/mutants.js';
import { firstMemoryDifference, listing, PRIVILEGED_OPS, SENSITIVE_OPS, type GuestProgram, type Item } from './guest-program.js';
import type { PvAction } from './pv-isolation.js';
import type { UserGuestProgram } from './user-program.js';
import type { KernelGuestProgram } from './kernel-program.js';
import type { PairCaseFile } from './noninterference.js';
import { UNSUPPORTED_CONFIGS, type Config, type VerifyRun } from './run.js';

/** How a property is run. */
export interface PropertyOptions {
  readonly runs?: number;
  readonly seed?: number;
  /** Configurations to compare/check (default: the property's own). */
  readonly configs?: readonly Config[];
  /** A mutant active during the search (null: none). */
  readonly mutant?: string | null;
  /** System instructions the generator leaves out (e.g. a known, reported difference). */
  readonly exclude?: readonly string[];
  /** Shrink counterexamples (default true; false for a quick caught/not-caught answer). */
  readonly shrink?: boolean;
}

/** A pv-isolation counterexample: the sequence of kernel-level actions (src/verify/pv-isolation.ts). */
export interface PvProgram { readonly pv: readonly PvAction[] }

/** A user-equivalence counterexample: the ring-3 program (src/verify/user-program.ts). */
export interface UserProgramCx { readonly user: UserGuestProgram }

/** A kernel-level counterexample (kernel-equivalence, pv-resource-control): src/verify/kernel-program.ts. */
export interface KernelProgramCx { readonly kernel: KernelGuestProgram }

/**
 * What a counterexample file holds; the keys tell the kinds apart (`--replay`). A
 * noninterference case is `{ pair: ... }` (noninterference.ts `PairCaseFile`, `replayPairCase`).
 */
export type SavedCase = GuestProgram | PvProgram | UserProgramCx | KernelProgramCx | PairCaseFile;

/** A counterexample: the shrunk program, its disassembly, what went wrong. */
export interface Counterexample {
  /** The saved case (`--save`, `--replay`): a guest program, a pv action sequence, a user program. */
  readonly program: SavedCase;
  readonly listing: readonly string[];
  readonly message: string;
  /** Multi-VM properties: the other VM's two programs and the policy. */
  readonly extra?: unknown;
}

export interface PropertyReport {
  readonly property: string;
  /** The property held (for `trap-not-equivalent`: the counterexamples were found). */
  readonly ok: boolean;
  readonly runs: number;
  readonly seed: number;
  readonly seconds: number;
  readonly configs: readonly Config[];
  /** Runs (1-based) and seconds until the first failing run, when one failed. */
  readonly firstFailure: { readonly run: number; readonly seconds: number } | null;
  readonly counterexample: Counterexample | null;
  /** Property-specific findings (trap: the instructions found; noninterference: timing channels). */
  readonly findings: readonly string[];
  readonly notes: readonly string[];
}

/** A property of the catalogue. */
export interface PropertyInfo {
  readonly name: string;
  readonly description: string;
  /** Default configurations. */
  readonly configs: readonly Config[];
  readonly defaultRuns: number;
  run(options: PropertyOptions): PropertyReport;
}

const REG_NAMES = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'flags', 'exception', 'error-code', 'cr2'];
const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/** The first guest-visible difference between two runs of one program, or null. */
export function difference(a: VerifyRun, b: VerifyRun, paging: boolean): string | null {
  if (a.outcome.exit !== b.outcome.exit) return `exit: ${a.outcome.exit} vs ${b.outcome.exit}`;
  if (a.outcome.console !== b.outcome.console) return `console: ${a.outcome.console} vs ${b.outcome.console}`;
  for (let i = 0; i < a.outcome.dump.length; i++) {
    if (a.outcome.dump[i] !== b.outcome.dump[i]) return `${REG_NAMES[i]}: ${hex(a.outcome.dump[i]!)} vs ${hex(b.outcome.dump[i]!)}`;
  }
  const m = firstMemoryDifference(a.machine, b.machine, paging);
  if (m !== null) return `memory at ${hex(m[0])}: ${hex(m[1])} vs ${hex(m[2])}`;
  return null;
}

/** The system instructions (sensitive or privileged) of a program, loops flattened. */
export function systemOps(items: readonly Item[]): string[] {
  const out = new Set<string>();
  const sys = new Set<string>([...SENSITIVE_OPS, ...PRIVILEGED_OPS]);
  const walk = (xs: readonly Item[]): void => {
    for (const it of xs) {
      if (it.op === 'loop') walk(it.body);
      else if (sys.has(it.op)) {
        out.add(it.op === 'movsreg' ? `mov r/m, ${(it as { seg: string }).seg}` : it.op === 'pushseg' ? `push ${(it as { seg: string }).seg}` : it.op);
        // A ring transition or a CLI region: the instructions inside too.
        if (it.op === 'ring3' || it.op === 'clisti') walk(it.body);
      }
    }
  };
  walk(items);
  return [...out];
}

export interface Search<T> {
  readonly failed: boolean;
  readonly runs: number;
  readonly firstFailure: { run: number; seconds: number } | null;
  readonly counterexample: T | null;
  readonly message: string | null;
  readonly seconds: number;
}

/**
 * The search settings `runProperty` sets: `mutant`, the mutant under analysis (a failing case
 * counts only if it passes without the mutant, so a difference the monitor already has — a
 * finding — is not credited to the mutant); `shrink`, whether counterexamples are shrunk.
 */
export const searchState: { mutant: string | null; shrink: boolean } = { mutant: null, shrink: true };

/** fast-check search: `check` returns a failure message or null. */
export function search<T>(arb: fc.Arbitrary<T>, check0: (x: T) => string | null, runs: number, seed: number): Search<T> {
  const mut = searchState.mutant;
  const check = mut === null ? check0 : (x: T): string | null => {
    const m = check0(x);
    return m !== null && withMutant(null, () => check0(x)) === null ? m : null;
  };
  const t0 = performance.now();
  let n = 0, first: { run: number; seconds: number } | null = null;
  const d = fc.check(fc.property(arb, (x) => {
    if (first === null) n++;
    const m = check(x);
    if (m !== null) {
      if (first === null) first = { run: n, seconds: (performance.now() - t0) / 1000 };
      throw new Error(m);
    }
  }), { numRuns: runs, seed, endOnFailure: !searchState.shrink });
  const cx = d.failed && d.counterexample ? d.counterexample[0] as T : null;
  const message = cx !== null ? (check(cx) ?? String((d.errorInstance as Error | undefined)?.message ?? 'failed')) : null;
  return { failed: d.failed, runs: d.failed ? n : d.numRuns, firstFailure: first, counterexample: cx, message, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Greedy one-item removal after fast-check's shrinking (which may leave an item whose removal
 * needs two steps): the result still fails `check` and no single item can be dropped.
 */
export function minimizeProgram<P extends { readonly items: readonly unknown[] }>(p: P, check: (x: P) => string | null): P {
  let cur = p;
  for (let changed = true; changed;) {
    changed = false;
    for (let i = cur.items.length - 1; i >= 0 && cur.items.length > 0; i--) {
      const cand = { ...cur, items: cur.items.filter((_, j) => j !== i) };
      if (check(cand) !== null) { cur = cand; changed = true; }
    }
  }
  return cur;
}

/** `search` over programs, with the counterexample minimized further. */
export function searchProgram(arb: fc.Arbitrary<GuestProgram>, check0: (x: GuestProgram) => string | null, runs: number, seed: number): Search<GuestProgram> {
  const s = search(arb, check0, runs, seed);
  if (s.counterexample === null || !searchState.shrink) return s;
  const mut = searchState.mutant;
  const check = mut === null ? check0 : (x: GuestProgram): string | null => {
    const m = check0(x);
    return m !== null && withMutant(null, () => check0(x)) === null ? m : null;
  };
  const cx = minimizeProgram(s.counterexample, check);
  return { ...s, counterexample: cx, message: check(cx) };
}

export function report(name: string, o: PropertyOptions, configs: readonly Config[], s: Search<GuestProgram>, expectFailure = false, findings: string[] = [], notes: string[] = []): PropertyReport {
  const cx = s.counterexample;
  return {
    property: name, ok: expectFailure ? s.failed : !s.failed, runs: s.runs, seed: o.seed ?? 1, seconds: s.seconds, configs,
    firstFailure: s.firstFailure,
    counterexample: cx === null ? null : { program: cx, listing: listing(cx.items), message: s.message ?? '' },
    findings, notes,
  };
}

export const supported = (cs: readonly Config[]): Config[] => cs.filter((c) => UNSUPPORTED_CONFIGS[c] === undefined);
export const unsupportedNotes = (cs: readonly Config[]): string[] => cs.filter((c) => UNSUPPORTED_CONFIGS[c] !== undefined).map((c) => `${c} not run: ${UNSUPPORTED_CONFIGS[c]}`);

