/**
 * The noninterference properties (issue 8; docs/verification.md): VM A beside VM B on one
 * machine (src/vmm/multi-vm.ts), under a generated schedule; two runs differing only in B's
 * secret must give A the same outcome and memory, and the same cycles where the TLB policy
 * claims timing isolation.
 *
 * - `noninterference`: the flat harness (guest-program.ts) under `native`, `trap`, `full`,
 *   `hw-nested`, `hw-shadow`, with two lifetimes: A and B *concurrent*, or A the
 *   *successor* of B — B runs and exits, then A (restored from a snapshot taken after its
 *   boot) is created with B's recycled VPID/ASID; and, for `pv`, which the flat harness cannot
 *   run, two pv domains (pv-pair.ts).
 * - `noninterference-kernel`: two virtlab kernels (pv-pair.ts: A a generated ring-3 program,
 *   B a secret program that keeps its kernel busy with page-table work) in any mode.
 */
import fc from 'fast-check';
import { runMultiVm, CLAIMS_TIMING_ISOLATION, TLB_POLICIES, type Slice, type TlbPolicy, type Vm } from '../vmm/multi-vm.js';
import { withMutant } from '../vmm/mutants.js';
import { kernelProgram, secretProgram } from './arbitraries.js';
import { buildGuest, LAYOUT, listing, outcomeOf, type GuestProgram, type Item } from './guest-program.js';
import { checkKernelPair, scheduleArb, secretKernelProgram, type KernelPairCase, type PairVerdict, type SecretProgram } from './pv-pair.js';
import { CONFIGS, prepare, verifyProfile, type Config, type VerifyRun } from './run.js';
import { difference, search, supported, type PropertyInfo, type PropertyOptions, type PropertyReport } from './search.js';
import { buildUserGuest, userListing, userProgram } from './user-program.js';

/** How A's and B's lifetimes relate: side by side, or A created after B ended (B's tag recycled). */
export type Lifetime = 'concurrent' | 'successor';

/**
 * A flat-harness noninterference case: A's program, B's two secrets, policy, schedule,
 * lifetime; optionally a third VM C (public: the same program in both runs; it never exits),
 * scheduled with A and B (VM index 2).
 */
export interface FlatPairCase {
  readonly a: GuestProgram; readonly b0: GuestProgram; readonly b1: GuestProgram;
  readonly policy: TlbPolicy; readonly schedule: readonly Slice[]; readonly lifetime: Lifetime;
  readonly c?: GuestProgram | null;
}

/** A saved noninterference counterexample (`SavedCase` kind `{ pair }`; `replayPairCase`). */
export type PairCaseFile = {
  readonly pair:
    | ({ readonly harness: 'flat'; readonly configs?: readonly Config[] } & FlatPairCase)
    | ({ readonly harness: 'kernel'; readonly configs?: readonly Config[] } & KernelPairCase);
};

/** Assembled guests of the last cases (a case runs the same programs under every configuration). */
const built = new Map<string, Uint8Array>();
function build(p: GuestProgram): Uint8Array {
  const key = JSON.stringify(p);
  let b = built.get(key);
  if (b === undefined) {
    if (built.size >= 64) built.clear();
    b = buildGuest(p);
    built.set(key, b);
  }
  return b;
}

/** Where A's program starts in its image (the end of the harness's boot), for the snapshot. */
function programStart(a: GuestProgram): number {
  // Two one-byte programs (INC EAX, DEC EAX): every address in the harness is the same, only the program's byte differs.
  const base = { regs: a.regs, paging: a.paging };
  const x = build({ ...base, items: [{ op: 'unary', f: 'inc', d: 'eax' }] }), y = build({ ...base, items: [{ op: 'unary', f: 'dec', d: 'eax' }] });
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  return LAYOUT.code + i;
}

/**
 * VM A as a VM restored from a snapshot taken after its boot: its harness has run up to the
 * program (paging on, CR3 loaded), and its TLB is empty (a restored vCPU brings no
 * translations). No CR3 load follows before the program, so A's first accesses go through
 * whatever entries its tag holds — which is what a recycled VPID must not bring.
 */
function restoredAfterBoot(vm: ReturnType<typeof prepare>, a: GuestProgram): void {
  const cpu = vm.machine.cpu, start = programStart(a);
  for (let n = 0; n < 100_000 && cpu.eip !== start && cpu.stopReason === null; n++) cpu.run(1);
  if (cpu.eip !== start) throw new Error(`noninterference: VM A's harness did not reach its program at 0x${start.toString(16)} (eip 0x${(cpu.eip >>> 0).toString(16)})`);
  cpu.flushTlb(false);
}

/** Runs A beside B (or after B); A's outcome and cycles. */
function runFlatPair(k: Omit<FlatPairCase, 'b0' | 'b1'>, b: GuestProgram, config: Config): { run: VerifyRun; cycles: number } {
  // A ends with a probe of its 16 playground pages, repeated (what a prime-and-probe attacker
  // would time): it makes the shared TLB's state visible in A's cycle count.
  const probe: Item = { op: 'loop', n: 20, body: Array.from({ length: LAYOUT.playgroundPages }, (_, page) => ({ op: 'rd' as const, d: 'eax' as const, page, off: 0 })) as never };
  const aProg = { ...k.a, items: [...k.a.items, probe] };
  const va = prepare(config, build(aProg));
  // Concurrent: B never exits (it spins after its program). Successor: B exits; A follows with B's tag.
  const vb = prepare(config, build({ ...b, spin: k.lifetime === 'concurrent' }));
  const vms: Vm[] = k.lifetime === 'concurrent'
    ? [{ machine: va.machine, monitor: va.monitor, tag: 1 }, { machine: vb.machine, monitor: vb.monitor, tag: 2 }]
    : [{ machine: va.machine, monitor: va.monitor, tag: 1, after: 1 }, { machine: vb.machine, monitor: vb.monitor, tag: 1 }];
  if (k.c !== undefined && k.c !== null) {
    const vc = prepare(config, build({ ...k.c, spin: true }));
    vms.push({ machine: vc.machine, monitor: vc.monitor, tag: 3 });
  }
  if (k.lifetime === 'successor') restoredAfterBoot(va, aProg);
  runMultiVm(vms, { schedule: k.schedule, stopped: 'idle', tlb: k.policy, profile: verifyProfile().profile, maxInstructions: 1_000_000, stopWhen: 0 });
  const m = va.machine;
  const e = m.outcome().exit;
  const exit = e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${'detail' in e ? e.detail : ''}`;
  return { run: { outcome: outcomeOf(m, exit, Uint8Array.from(va.console), k.a.paging), machine: m, monitor: va.monitor, exit }, cycles: m.cpu.cycles };
}

/** One flat case under one configuration: a failure, a timing-channel finding, or neither. */
export function checkFlatPair(k: FlatPairCase, config: Config): { failure: string | null; channel: string | null } {
  const r0 = runFlatPair(k, k.b0, config), r1 = runFlatPair(k, k.b1, config);
  const where = `${config}, ${k.policy}, ${k.lifetime}`;
  const d = difference(r0.run, r1.run, k.a.paging);
  if (d !== null) return { failure: `${where}: VM A's outcome depends on VM B: ${d}`, channel: null };
  if (r0.cycles === r1.cycles) return { failure: null, channel: null };
  const what = `VM A's cycles depend on VM B: ${r0.cycles} vs ${r1.cycles}`;
  return CLAIMS_TIMING_ISOLATION[k.policy] ? { failure: `${where} (claims timing isolation): ${what}`, channel: null } : { failure: null, channel: `${where}: ${what}` };
}

/** Configurations the flat harness runs; `pv` runs as two pv domains instead. */
const FLAT_CONFIGS: readonly Config[] = ['native', 'trap', 'full', 'hw-nested', 'hw-shadow'];
const NI_DEFAULT: Config[] = [...FLAT_CONFIGS, 'pv'];

/** Flat-harness schedules: slices of tens to thousands of instructions; three VMs when there is a C. */
const flatSchedule = (): fc.Arbitrary<Slice[]> => scheduleArb(3, [20, 100, 400, 1500]);
/** Kernel-pair schedules (A needs about 180 000 instructions of its own). */
const kernelSchedule = (): fc.Arbitrary<Slice[]> => scheduleArb(2, [2000, 10_000, 40_000]);

const counts = (m: Map<string, number>, key: string): void => { m.set(key, (m.get(key) ?? 0) + 1); };
const channelFindings = (m: Map<string, number>): string[] =>
  [...m].map(([k, n]) => `${k}: VM A's cycle count${k.includes('kernel pair') ? ' (and its RAM, where its kernel counts timer ticks)' : ''} changed with VM B's secret in ${n} case(s) (timing channel; the policy does not claim timing isolation)`);
const scheduleText = (s: readonly Slice[]): string => s.map((x) => `${'ABC'[x.vm] ?? x.vm}:${x.instructions}`).join(' ');

interface Partial0 { failed: boolean; runs: number; seconds: number; firstFailure: { run: number; seconds: number } | null; cx: PropertyReport['counterexample'] }

/**
 * A pair search over `configs`: `checkerFor(k)` prepares a case (e.g. builds A's image once)
 * and checks it under one configuration; timing differences where the policy does not claim
 * isolation are counted in `channel` under `channelKey`.
 */
function pairSearch<K extends { readonly policy: TlbPolicy }>(
  arb: fc.Arbitrary<K>, configs: readonly Config[], runs: number, seed: number, channel: Map<string, number>,
  channelKey: (c: Config, k: K) => string, checkerFor: (k: K) => (c: Config) => Pick<PairVerdict, 'failure' | 'channel'>,
  counterexample: (k: K, message: string) => NonNullable<PropertyReport['counterexample']>,
): Partial0 {
  const s = search<K>(arb, (k) => {
    const check = checkerFor(k);
    for (const c of configs) {
      const v = check(c);
      if (v.failure !== null) return v.failure;
      if (v.channel !== null) counts(channel, channelKey(c, k));
    }
    return null;
  }, runs, seed);
  const k = s.counterexample;
  return { failed: s.failed, runs: s.runs, seconds: s.seconds, firstFailure: s.firstFailure, cx: k === null ? null : counterexample(k, s.message ?? '') };
}

/** The flat-harness search over `configs`. */
function flatSearch(o: PropertyOptions, configs: readonly Config[], runs: number, channel: Map<string, number>): Partial0 {
  const prog = secretProgram();
  const arb = fc.record({
    a: kernelProgram({ maxLength: 10 }), b0: prog, b1: prog, policy: fc.constantFrom(...TLB_POLICIES),
    schedule: flatSchedule(), lifetime: fc.constantFrom('concurrent' as const, 'successor' as const),
    c: fc.option(secretProgram(), { freq: 3 }),
  }).map((k) => ({ ...k, schedule: k.c === null ? k.schedule.filter((x) => x.vm < 2) : k.schedule }));
  return pairSearch<FlatPairCase>(arb, configs, runs, o.seed ?? 1, channel, (c, k) => `${c} ${k.policy}`,
    (k) => (c) => checkFlatPair(k, c),
    (k, message) => ({
      program: { pair: { harness: 'flat', ...k, configs } }, listing: listing(k.a.items), message,
      extra: { b0: listing(k.b0.items), b1: listing(k.b1.items), policy: k.policy, schedule: scheduleText(k.schedule), lifetime: k.lifetime, ...(k.c ? { c: listing(k.c.items) } : {}) },
    }));
}

/** The kernel-pair search over `configs` (A's image built once per case). */
function kernelSearch(o: PropertyOptions, configs: readonly Config[], runs: number, channel: Map<string, number>): Partial0 {
  const secret = secretKernelProgram();
  const arb = fc.record({ a: userProgram({ maxLength: 10 }), b0: secret, b1: secret, policy: fc.constantFrom(...TLB_POLICIES), schedule: kernelSchedule() });
  return pairSearch<KernelPairCase>(arb, configs, runs, o.seed ?? 1, channel, (c, k) => `${c} (kernel pair) ${k.policy}`,
    (k) => { const img = buildUserGuest(k.a); return (c) => checkKernelPair(k, c, img); },
    (k, message) => ({
      program: { pair: { harness: 'kernel', ...k, configs } }, listing: userListing(k.a.items), message,
      extra: { b0: secretText(k.b0), b1: secretText(k.b1), policy: k.policy, schedule: scheduleText(k.schedule) },
    }));
}

/** A secret in one line per action. */
export function secretText(s: SecretProgram): string[] {
  return [...s.actions.map((x) => `${x.op}(${Object.entries(x).filter(([key]) => key !== 'op').map(([key, v]) => `${key} ${v}`).join(', ')})`), `end: ${s.end}`, ...((s.channel ?? 0) > 0 ? [`event channel to itself, ${s.channel} send(s)`] : [])];
}

/** Both searches one after the other, in one report. */
function combine(name: string, o: PropertyOptions, configs: readonly Config[], parts: Partial0[], channel: Map<string, number>, notes: string[]): PropertyReport {
  let runs = 0, seconds = 0, firstFailure: PropertyReport['firstFailure'] = null, cx: PropertyReport['counterexample'] = null, failed = false;
  for (const p of parts) {
    if (failed) break;
    if (p.firstFailure !== null) firstFailure = { run: runs + p.firstFailure.run, seconds: seconds + p.firstFailure.seconds };
    runs += p.runs; seconds += p.seconds;
    if (p.failed) { failed = true; cx = p.cx; }
  }
  return { property: name, ok: !failed, runs, seed: o.seed ?? 1, seconds, configs, firstFailure, counterexample: cx, findings: channelFindings(channel), notes };
}

/** Kernel-pair cases per flat case in `noninterference` (a kernel pair costs about 50 flat ones). */
const KERNEL_SHARE = 4;

export const noninterference: PropertyInfo = {
  name: 'noninterference',
  description: "two runs that differ only in VM B's program and data give VM A (same machine, generated schedule, one monitor kind) the same outcome and memory — B beside A, or B the previous owner of A's recycled VPID/ASID; and the same cycle count where the TLB policy claims timing isolation (flush, tagged-partitioned); where it does not (tagged-shared), timing differences are reported as findings. pv: two pv domains (virtlab kernels; A a generated ring-3 program, B a secret one busy with page-table work)",
  configs: NI_DEFAULT,
  defaultRuns: 12,
  run(o) {
    const asked = o.configs ?? NI_DEFAULT;
    const flat = asked.filter((c) => c !== 'pv'), pv = asked.includes('pv');
    const channel = new Map<string, number>();
    const runs = o.runs ?? 12;
    const parts: Partial0[] = [];
    if (flat.length > 0) parts.push(flatSearch(o, supported(flat), runs, channel));
    if (pv && !parts.some((p) => p.failed)) parts.push(kernelSearch(o, ['pv'], Math.max(1, Math.ceil(runs / KERNEL_SHARE)), channel));
    const notes = pv ? [`pv runs as two pv domains (virtlab kernels, src/verify/pv-pair.ts): ${Math.max(1, Math.ceil(runs / KERNEL_SHARE))} cases for ${runs} flat ones`] : [];
    return combine('noninterference', o, asked, parts, channel, notes);
  },
};

export const noninterferenceKernel: PropertyInfo = {
  name: 'noninterference-kernel',
  description: "noninterference with two virtlab kernels on one machine, in any mode (pv: two pv domains with their own PvMonitor): A a generated ring-3 program, B a secret program busy with page-table work (mmap, first touches, munmap, fork), computing, sleeping, then spinning, sleeping or exiting; A's console and exit must not depend on B's secret, nor its RAM and cycles where the TLB policy claims timing isolation",
  configs: ['pv'],
  defaultRuns: 4,
  run(o) {
    const configs = o.configs ?? ['pv'];
    const channel = new Map<string, number>();
    return combine('noninterference-kernel', o, configs, [kernelSearch(o, configs, o.runs ?? 4, channel)], channel, []);
  },
};

/** The configurations `replayPairCase` accepts. */
export const PAIR_REPLAY_CONFIGS: readonly Config[] = CONFIGS;

/**
 * Replays a saved noninterference case (`{ "pair": ... }`): runs A beside B0 and beside B1
 * under each configuration (default: the saved ones, else the property's) and prints what A
 * saw. `ok` is true when A's observations agree (as the property requires) everywhere.
 * Throws RangeError (one line) for a file that is not a pair case.
 */
export function replayPairCase(x: unknown, configs?: readonly Config[]): { ok: boolean; lines: string[] } {
  const p = (x as { pair?: unknown } | null)?.pair as PairCaseFile['pair'] | undefined;
  if (p === undefined || p === null || typeof p !== 'object') throw new RangeError('replay: expected a noninterference case { "pair": { harness, a, b0, b1, policy, schedule } }');
  if (p.harness !== 'flat' && p.harness !== 'kernel') throw new RangeError(`replay: pair.harness must be "flat" or "kernel", got ${JSON.stringify((p as { harness?: unknown }).harness)}`);
  if (!(TLB_POLICIES as readonly string[]).includes(p.policy)) throw new RangeError(`replay: pair.policy must be one of ${TLB_POLICIES.join(', ')}, got ${JSON.stringify(p.policy)}`);
  if (!Array.isArray(p.schedule) || p.schedule.length === 0) throw new RangeError('replay: pair.schedule must be a non-empty array of { vm, instructions }');
  const cs = configs ?? p.configs ?? (p.harness === 'flat' ? FLAT_CONFIGS : ['pv']);
  for (const c of cs) if (!CONFIGS.includes(c)) throw new RangeError(`replay: unknown configuration "${c}" (known: ${CONFIGS.join(', ')})`);
  if (p.harness === 'flat' && cs.includes('pv')) throw new RangeError('replay: a flat-harness pair cannot run under pv (the flat harness executes privileged instructions raw)');
  const lines: string[] = [`noninterference pair (${p.harness}), policy ${p.policy}, schedule ${scheduleText(p.schedule)}${p.harness === 'flat' ? `, ${p.lifetime}` : ''}`];
  let ok = true;
  for (const c of cs) {
    let failure: string | null, channel: string | null;
    if (p.harness === 'flat') {
      if (!Array.isArray(p.a?.items) || !Array.isArray(p.b0?.items) || !Array.isArray(p.b1?.items)) throw new RangeError('replay: pair.a, b0, b1 must be guest programs (regs, items, paging)');
      ({ failure, channel } = checkFlatPair({ ...p, lifetime: p.lifetime ?? 'concurrent' }, c));
    } else {
      if (!Array.isArray(p.a?.items) || !Array.isArray(p.b0?.actions) || !Array.isArray(p.b1?.actions)) throw new RangeError('replay: pair.a must be a user program (regs, items) and b0, b1 secrets (actions, end)');
      ({ failure, channel } = checkKernelPair(p, c));
    }
    if (failure !== null) ok = false;
    // A failure names its configuration and policy already.
    lines.push(`  ${failure ?? `${c}: ${channel !== null ? `holds; timing channel: ${channel}` : 'holds'}`}`);
  }
  return { ok, lines };
}

/** For tests and the mutant analysis: the flat check with a mutant active (or none). */
export function checkFlatPairWith(mutantName: string | null, k: FlatPairCase, config: Config): string | null {
  return withMutant(mutantName, () => checkFlatPair(k, config).failure);
}
