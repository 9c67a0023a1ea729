/**
 * The verifier's properties (issue 8; docs/verification.md). Each searches with fast-check
 * (bounded runs, a fixed seed) and returns a report: whether the property held (or, for
 * `trap-not-equivalent`, whether the expected counterexamples were found), the runs and
 * seconds to the first counterexample, and the shrunk counterexample as disassembly.
 */
import fc from 'fast-check';
import { performance } from 'node:perf_hooks';
import { runGuest } from '../trace/run-guest.js';
import { checkMutant, withMutant } from '../vmm/mutants.js';
import { guestProgram, kernelProgram } from './arbitraries.js';
import { buildGuest, LAYOUT, listing, type GuestProgram } from './guest-program.js';
import { checkNothingAboveRam, mappingCheck } from './invariants.js';
import { noninterference, noninterferenceKernel } from './noninterference.js';
import { ioControl } from './io-control.js';
import { kernelEquivalence, kernelResourceControl, pvResourceControl } from './kernel-program.js';
import { actionText, pvActions, runPvActions, type PvAction } from './pv-isolation.js';
import { USER_CONFIGS, userEquivalenceCheck, userListing, userProgram, type UserGuestProgram } from './user-program.js';
import { CONFIGS, runProgram, verifyProfile, type Config } from './run.js';
import {
  difference, minimizeProgram, report, search, searchProgram, searchState, supported, systemOps, unsupportedNotes,
  type PropertyInfo, type PropertyReport, type PropertyOptions, type Search,
} from './search.js';

export {
  difference, minimizeProgram, systemOps,
  type Counterexample, type PropertyInfo, type PropertyOptions, type PropertyReport, type PvProgram, type SavedCase, type UserProgramCx,
} from './search.js';

/** Any program: user-level and system instructions, or kernel-level actions with paging. */
const anyProgram = (exclude: readonly string[] = []): fc.Arbitrary<GuestProgram> => fc.oneof(guestProgram({ maxLength: 16, systemWeight: 3, exclude: new Set(exclude) }), kernelProgram({ maxLength: 16 }));

/** Runs `p` natively and under each config; the first difference, or null. */
export function equivalenceCheck(p: GuestProgram, configs: readonly Config[]): string | null {
  const bytes = buildGuest(p);
  const ref = runProgram(p, 'native', { bytes });
  for (const c of configs) {
    if (c === 'native') continue;
    const r = runProgram(p, c, { bytes });
    const d = difference(ref, r, p.paging);
    if (d !== null) return `native vs ${c}: ${d}`;
  }
  return null;
}

const EQUIVALENCE_DEFAULT = CONFIGS.filter((c) => c !== 'trap');

const equivalence: PropertyInfo = {
  name: 'equivalence',
  description: "a generated guest's outcome (registers, flags, memory, console, exit) is the same natively and under each monitor (Popek and Goldberg's equivalence)",
  configs: EQUIVALENCE_DEFAULT,
  defaultRuns: 40,
  run(o) {
    const configs = supported(o.configs ?? EQUIVALENCE_DEFAULT);
    // A quarter of the programs run with timer interrupts (CLI … STI regions, long loops).
    const programs = fc.oneof({ weight: 3, arbitrary: anyProgram(o.exclude) }, { weight: 1, arbitrary: guestProgram({ maxLength: 10, systemWeight: 3, exclude: new Set(o.exclude ?? []), timer: true }) });
    const s = searchProgram(programs, (p) => equivalenceCheck(p, configs), o.runs ?? 40, o.seed ?? 1);
    return report('equivalence', o, configs, s, false, [], unsupportedNotes(o.configs ?? EQUIVALENCE_DEFAULT));
  },
};

/** Robin and Irvine (USENIX Security 2000): the 17 sensitive, unprivileged IA-32 instructions. */
export const ROBIN_IRVINE = ['SGDT', 'SIDT', 'SLDT', 'SMSW', 'PUSHF', 'POPF', 'LAR', 'LSL', 'VERR', 'VERW', 'POP (segment)', 'PUSH (segment)', 'CALL far', 'JMP far', 'INT n', 'RET far', 'STR', 'MOV (segment)'];

const trapNotEquivalent: PropertyInfo = {
  name: 'trap-not-equivalent',
  description: 'the checker finds on its own guests whose outcome under trap differs from native, and names the sensitive instructions responsible (repeating the search with each found instruction excluded)',
  configs: ['trap'],
  defaultRuns: 60,
  run(o) {
    const config = (o.configs ?? ['trap'])[0] ?? 'trap';
    const seed = o.seed ?? 1;
    const excluded = new Set<string>();
    const findings: string[] = [];
    let firstSearch: Search<GuestProgram> | null = null;
    const t0 = performance.now();
    let runs = 0;
    // Each round: search, shrink, attribute, exclude what was found, search again.
    for (let round = 0; round < 24; round++) {
      const s = searchProgram(guestProgram({ maxLength: 8, systemWeight: 4, exclude: excluded }), (p) => equivalenceCheck(p, [config]), o.runs ?? 60, seed + round);
      runs += s.runs;
      firstSearch ??= s;
      if (!s.failed || s.counterexample === null) break;
      // Attribution: the system instructions whose removal makes the difference disappear
      // (shrinking may leave a harmless one beside the culprit).
      const cx = s.counterexample;
      let ops = cx.items.flatMap((it, i) => {
        const op = systemOps([it]);
        if (op.length === 0) return [];
        const without = { ...cx, items: cx.items.filter((_, j) => j !== i) };
        return equivalenceCheck(without, [config]) === null ? op : [];
      });
      if (ops.length === 0) ops = systemOps(cx.items);
      findings.push(`${ops.join(' + ') || '(no system instruction)'}: ${s.message} — ${listing(s.counterexample.items).join('; ')}`);
      if (ops.length === 0) break;
      // Several needed together (POPF's IF shown by the frame of a faulting POP DS): only the
      // first is excluded, so the others can still be found on their own.
      const blamed = s.counterexample.items.flatMap((it) => systemOps([it])).filter((op) => ops.includes(op));
      for (const op of blamed.length > 1 ? blamed.slice(0, 1) : ops) excluded.add(op.startsWith('mov r/m, ') ? `movsreg:${op.slice(9)}` : op.startsWith('push ') ? `pushseg:${op.slice(5)}` : op);
    }
    const s = firstSearch!;
    return { ...report('trap-not-equivalent', o, [config], s, true, findings,
      [`searched ${runs} programs in ${((performance.now() - t0) / 1000).toFixed(1)} s; compare with Robin & Irvine's list: ${ROBIN_IRVINE.join(', ')}`]), seconds: (performance.now() - t0) / 1000 };
  },
};

const RESOURCE_DEFAULT = CONFIGS.filter((c) => c !== 'native');

/**
 * resource-control under one configuration: the shadow/EPT checks every 300 instructions
 * and at the end, and every DMA access watched (`DmaWatch`: one reaching beyond the guest's
 * RAM is refused and counted, and a write changes nothing there); for `native`, the same DMA
 * watch and, for programs whose CPU maps nothing beyond RAM, nothing written above RAM at all
 * (a native machine with spare memory above its RAM). Also what `--replay` runs (replay.ts).
 */
export function resourceCheckOne(p: GuestProgram, c: Config, bytes: Uint8Array): string | null {
  if (c === 'native') {
    const n = runProgram(p, 'native', { bytes, disk: true, dmaWatch: true, nativeMonitorMiB: 1 });
    if (n.exit.startsWith('violation')) return n.exit;
    // The whole-memory check only where the CPU cannot reach beyond RAM itself: a PTE action,
    // or a store through a playground page aliasing a page table, may map a frame there, and
    // a native CPU's stores through it are the bare machine's behaviour, not DMA.
    const cpuMaps = p.items.some((it) => it.op === 'pte' || it.op === 'wr');
    return cpuMaps ? null : checkNothingAboveRam(n.machine);
  }
  const r = runProgram(p, c, { bytes, disk: true, dmaWatch: true, check: mappingCheck, checkEvery: 300 });
  return r.exit.startsWith('violation') ? r.exit : null;
}

/** accounting under one configuration: categories sum to the total, nothing negative or fractional. */
export function accountingCheckOne(p: GuestProgram, c: Config, bytes: Uint8Array): string | null {
  const r = runProgram(p, c, { bytes });
  const acc = r.machine.outcome().accounting;
  let sum = 0;
  for (const [k, v] of Object.entries(acc.categories)) {
    if (!(v.cycles >= 0) || !(v.count >= 0)) return `category ${k} is negative (${v.cycles} cycles, ${v.count} events)`;
    sum += v.cycles;
  }
  if (sum !== acc.total) return `categories sum to ${sum}, total ${acc.total}`;
  for (const [k, v] of Object.entries(r.monitor?.stats() ?? {})) {
    if (!Number.isInteger(v) || v < 0) return `monitor counter ${k} = ${v}`;
  }
  return null;
}

/** determinism under one configuration: two runs through runGuest give the same run record bytes. */
export function determinismCheckOne(_p: GuestProgram, c: Config, bytes: Uint8Array): string | null {
  const spec = {
    image: { bytes, path: 'verify-guest.bin' }, flat: { loadAddress: LAYOUT.code }, memoryMiB: LAYOUT.guestMiB,
    mode: (c.startsWith('hw') ? 'hw' : c) as 'hw', modeOptions: { paging: c === 'hw-shadow' ? 'shadow' as const : 'nested' as const, vpid: true },
    profile: verifyProfile(), maxInstructions: 200_000,
  };
  const a = JSON.stringify(runGuest(spec).record), b = JSON.stringify(runGuest(spec).record);
  if (a === b) return null;
  let i = 0; while (a[i] === b[i]) i++;
  return `run records differ at byte ${i}: …${a.slice(Math.max(0, i - 40), i + 40)}… vs …${b.slice(Math.max(0, i - 40), i + 40)}…`;
}

/** The first configuration of `configs` whose check fails, as "config: message". */
function firstFailing(configs: readonly Config[], f: (c: Config) => string | null): string | null {
  for (const c of configs) {
    const m = f(c);
    if (m !== null) return `${c}: ${m}`;
  }
  return null;
}

const resourceControl: PropertyInfo = {
  name: 'resource-control',
  description: "after random kernel-level actions (page-table writes with any frame number, CR3 switches, accesses, port I/O, DMA descriptors anywhere), no shadow or EPT mapping reaches a frame outside the guest's RAM, no shadow entry grants more than the guest's own tables, and DMA writes nothing beyond guest RAM",
  configs: RESOURCE_DEFAULT,
  defaultRuns: 25,
  run(o) {
    const configs = supported(o.configs ?? RESOURCE_DEFAULT);
    const s = searchProgram(kernelProgram({ maxLength: 16, dma: true }), (p) => {
      const bytes = buildGuest(p);
      const m = firstFailing(configs.filter((c) => c !== 'native'), (c) => resourceCheckOne(p, c, bytes));
      if (m !== null) return m;
      const v = resourceCheckOne(p, 'native', bytes);
      return v === null ? null : `native + DMA: ${v}`;
    }, o.runs ?? 25, o.seed ?? 1);
    return report('resource-control', o, configs, s, false, [], unsupportedNotes(o.configs ?? RESOURCE_DEFAULT));
  },
};

const accounting: PropertyInfo = {
  name: 'accounting',
  description: 'the cycle-accounting categories sum to the total; no category and no monitor counter is negative or fractional',
  configs: supported(CONFIGS),
  defaultRuns: 20,
  run(o) {
    const configs = supported(o.configs ?? CONFIGS);
    const s = searchProgram(anyProgram(), (p) => {
      const bytes = buildGuest(p);
      return firstFailing(configs, (c) => accountingCheckOne(p, c, bytes));
    }, o.runs ?? 20, o.seed ?? 1);
    return report('accounting', o, configs, s, false, [], unsupportedNotes(o.configs ?? CONFIGS));
  },
};

const determinism: PropertyInfo = {
  name: 'determinism',
  description: 'the same guest under the same mode and profile gives the same run record, byte for byte (runGuest)',
  configs: supported(CONFIGS),
  defaultRuns: 10,
  run(o) {
    const configs = supported(o.configs ?? CONFIGS);
    const s = searchProgram(anyProgram(), (p) => {
      const bytes = buildGuest(p);
      return firstFailing(configs, (c) => determinismCheckOne(p, c, bytes));
    }, o.runs ?? 10, o.seed ?? 1);
    return report('determinism', o, configs, s, false, [], unsupportedNotes(o.configs ?? CONFIGS));
  },
};

/** pv-isolation's check of one sequence: the violation, or null (a hypervisor exception is one). */
export function pvIsolationCheck(actions: readonly PvAction[]): string | null {
  try {
    return runPvActions(actions).violation;
  } catch (e) {
    return `the hypervisor threw: ${(e as Error).message.split('\n')[0]}`;
  }
}

const pvIsolation: PropertyInfo = {
  name: 'pv-isolation',
  description: "on a booted pv domain, random and hostile hypercall sequences (mmu_update with any frame and flags, mmuext_op, update_va_mapping, multicall, grant_table_op, event_channel_op, back-end grant mappings) leave the frame accounting consistent (audit), no page-table entry mapping a frame the domain does not own, no writable mapping of a page table, the hypervisor's memory unchanged, and every refusal a Xen errno counted as attack.*",
  configs: ['pv'],
  defaultRuns: 25,
  run(o) {
    const s0 = search(pvActions(12), (x) => pvIsolationCheck(x), o.runs ?? 25, o.seed ?? 1);
    let s = s0;
    if (s0.counterexample !== null && searchState.shrink) {
      // Greedy one-action removal after fast-check's shrinking, as for guest programs.
      const mut = searchState.mutant;
      const check = (x: PvAction[]): string | null => {
        const m = pvIsolationCheck(x);
        return m !== null && (mut === null || withMutant(null, () => pvIsolationCheck(x)) === null) ? m : null;
      };
      let cur = s0.counterexample;
      for (let changed = true; changed;) {
        changed = false;
        for (let i = cur.length - 1; i >= 0 && cur.length > 1; i--) {
          const cand = cur.filter((_, j) => j !== i);
          if (check(cand) !== null) { cur = cand; changed = true; }
        }
        // A multicall of one entry: the entry as a plain hypercall, if that still fails.
        for (let i = 0; i < cur.length; i++) {
          const a = cur[i]!;
          if (a.op !== 'multicall') continue;
          for (let j = 0; j < a.calls.length; j++) {
            // Entry j alone as a plain hypercall; else the multicall without entry j.
            const alone = cur.map((x, k) => (k !== i ? x : a.calls[j]!));
            if (check(alone) !== null) { cur = alone; changed = true; break; }
            const calls = a.calls.filter((_, k) => k !== j);
            const cand = cur.map((x, k) => (k !== i ? x : { ...a, calls }));
            if (calls.length > 0 && check(cand) !== null) { cur = cand; changed = true; break; }
          }
        }
      }
      s = { ...s0, counterexample: cur, message: check(cur) ?? s0.message };
    }
    const cx = s.counterexample;
    return {
      property: 'pv-isolation', ok: !s.failed, runs: s.runs, seed: o.seed ?? 1, seconds: s.seconds, configs: ['pv'], firstFailure: s.firstFailure,
      counterexample: cx === null ? null : { program: { pv: cx }, listing: cx.map(actionText), message: s.message ?? '' },
      findings: [], notes: [],
    };
  },
};

/** `search` over user programs, the counterexample minimized further. */
function searchUser(arb: fc.Arbitrary<UserGuestProgram>, check: (x: UserGuestProgram) => string | null, runs: number, seed: number): Search<UserGuestProgram> {
  const s = search(arb, check, runs, seed);
  if (s.counterexample === null || !searchState.shrink) return s;
  const cx = minimizeProgram(s.counterexample, check);
  return { ...s, counterexample: cx, message: check(cx) };
}

/** Part 1's configurations (compared with native) and part 2's (searched for sensitive-instruction differences). */
const USER_EQ_DEFAULT = USER_CONFIGS.filter((c) => c !== 'native');
const USER_FINDING_CONFIGS: readonly Config[] = ['pv', 'trap'];

/**
 * Part 2 of user-equivalence for one configuration: rounds of search with the sensitive
 * instructions, each counterexample shrunk and attributed (the sensitive instructions whose
 * removal makes the difference disappear), then excluded, as trap-not-equivalent does.
 */
function userFindings(config: Config, runs: number, seed: number, maxRounds: number): { findings: string[]; runs: number } {
  const excluded = new Set<string>();
  const findings: string[] = [];
  let total = 0;
  for (let round = 0; round < maxRounds; round++) {
    const s = searchUser(userProgram({ maxLength: 6, sensitiveWeight: 4, exclude: excluded }), (p) => userEquivalenceCheck(p, [config]), runs, seed + round);
    total += s.runs;
    if (!s.failed || s.counterexample === null) break;
    const cx = s.counterexample;
    let ops = cx.items.flatMap((it, i) => {
      const op = systemOps([it]);
      if (op.length === 0) return [];
      return userEquivalenceCheck({ ...cx, items: cx.items.filter((_, j) => j !== i) }, [config]) === null ? op : [];
    });
    if (ops.length === 0) ops = systemOps(cx.items);
    findings.push(`${config}: ${ops.join(' + ') || '(no sensitive instruction)'}: ${s.message} — ${userListing(cx.items).join('; ')}`);
    if (ops.length === 0) break;
    for (const op of ops) excluded.add(op.startsWith('mov r/m, ') ? `movsreg:${op.slice(9)}` : op.startsWith('push ') ? `pushseg:${op.slice(5)}` : op);
  }
  return { findings, runs: total };
}

const userEquivalence: PropertyInfo = {
  name: 'user-equivalence',
  description: "a generated program run as a ring-3 user program under the virtlab kernel prints the same registers, flags and data checksum, and exits the same, natively and under every mode, pv included (part 1: programs without sensitive instructions); part 2 (findings) names the unprivileged sensitive instructions that make pv and trap differ from native in user mode",
  configs: USER_EQ_DEFAULT,
  defaultRuns: 30,
  run(o) {
    const configs = o.configs ?? USER_EQ_DEFAULT;
    const runs = o.runs ?? 30, seed = o.seed ?? 1;
    const t0 = performance.now();
    const s0 = search(userProgram({ maxLength: 16 }), (p) => userEquivalenceCheck(p, configs, true), runs, seed);
    const s = s0.counterexample === null || !searchState.shrink ? s0 : (() => {
      const cx = minimizeProgram(s0.counterexample!, (p) => userEquivalenceCheck(p, configs, true));
      return { ...s0, counterexample: cx, message: userEquivalenceCheck(cx, configs, true) };
    })();
    // Part 2 (not for a mutant analysis: it reports differences, it does not check a property).
    const findings: string[] = [];
    let part2Runs = 0;
    if (searchState.mutant === null) {
      for (const c of USER_FINDING_CONFIGS) {
        const f = userFindings(c, runs, seed, 12);
        findings.push(...f.findings);
        part2Runs += f.runs;
      }
    }
    const cx = s.counterexample;
    return {
      property: 'user-equivalence', ok: !s.failed, runs: s.runs, seed, seconds: (performance.now() - t0) / 1000, configs, firstFailure: s.firstFailure,
      counterexample: cx === null ? null : { program: { user: cx }, listing: userListing(cx.items), message: s.message ?? '' },
      findings,
      notes: [`part 1: ${s.runs} programs without sensitive instructions in ${s.seconds.toFixed(1)} s; part 2: ${part2Runs} programs with them (${USER_FINDING_CONFIGS.join(', ')} vs native) in ${((performance.now() - t0) / 1000 - s.seconds).toFixed(1)} s`],
    };
  },
};

/** The catalogue of properties. */
export const PROPERTIES: readonly PropertyInfo[] = [equivalence, trapNotEquivalent, resourceControl, accounting, determinism, noninterference, noninterferenceKernel, pvIsolation, userEquivalence, ioControl, kernelEquivalence, pvResourceControl, kernelResourceControl];
export const PROPERTY_NAMES: readonly string[] = PROPERTIES.map((p) => p.name);

/** The property called `name`; a one-line error listing the known names otherwise. */
export function checkProperty(name: string): PropertyInfo {
  const p = PROPERTIES.find((x) => x.name === name);
  if (p === undefined) throw new RangeError(`unknown property "${name}" (known: ${PROPERTY_NAMES.join(', ')})`);
  return p;
}

/** Runs property `name` with `options` (mutant active if given). */
export function runProperty(name: string, options: PropertyOptions = {}): PropertyReport {
  const p = checkProperty(name);
  if (options.mutant != null) checkMutant(options.mutant);
  const saved = searchState.mutant, savedShrink = searchState.shrink;
  searchState.mutant = options.mutant ?? null;
  searchState.shrink = options.shrink ?? true;
  try {
    return withMutant(options.mutant ?? null, () => p.run(options));
  } finally {
    searchState.mutant = saved;
    searchState.shrink = savedShrink;
  }
}
