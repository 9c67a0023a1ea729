/**
 * The noninterference property (issue 8; docs/verification.md): VM A beside VM B on one
 * machine (src/vmm/multi-vm.ts); two runs differing only in B's secret program must give A
 * the same outcome and memory, and the same cycles where the TLB policy claims timing isolation.
 */
import fc from 'fast-check';
import { runMultiVm, CLAIMS_TIMING_ISOLATION, TLB_POLICIES, type TlbPolicy } from '../vmm/multi-vm.js';
import { kernelProgram, secretProgram } from './arbitraries.js';
import { buildGuest, LAYOUT, listing, outcomeOf, type GuestProgram, type Item } from './guest-program.js';
import { prepare, verifyProfile, type Config, type VerifyRun } from './run.js';
import { difference, search, supported, unsupportedNotes, type PropertyInfo } from './search.js';

/** Noninterference input: VM A's program, VM B's two secrets, the TLB policy, the quantum. */
interface NiCase { a: GuestProgram; b0: GuestProgram; b1: GuestProgram; policy: TlbPolicy; quantum: number }

/** Runs A beside B; A's outcome and cycles. */
function runPair(a: GuestProgram, b: GuestProgram, config: Config, policy: TlbPolicy, quantum: number): { run: VerifyRun; cycles: number } {
  // A ends with a probe of its 16 playground pages, repeated (what a prime-and-probe attacker
  // would time): it makes the shared TLB's state visible in A's cycle count.
  const probe: Item = { op: 'loop', n: 20, body: Array.from({ length: LAYOUT.playgroundPages }, (_, page) => ({ op: 'rd' as const, d: 'eax' as const, page, off: 0 })) as never };
  const va = prepare(config, buildGuest({ ...a, items: [...a.items, probe] })), vb = prepare(config, buildGuest({ ...b, spin: true }));
  runMultiVm([va, vb], { quantum, tlb: policy, profile: verifyProfile().profile, maxInstructions: 400_000, stopWhen: 0 });
  const m = va.machine;
  const e = m.outcome().exit;
  const exit = e.reason === 'exit-device' ? `exit ${e.code}` : `${e.reason}: ${'detail' in e ? e.detail : ''}`;
  return { run: { outcome: outcomeOf(m, exit, Uint8Array.from(va.console), a.paging), machine: m, monitor: va.monitor, exit }, cycles: m.cpu.cycles };
}

const NI_DEFAULT: Config[] = ['native', 'full', 'hw-nested'];

export const noninterference: PropertyInfo = {
  name: 'noninterference',
  description: "two runs that differ only in VM B's program and data give VM A (same machine, round-robin, one monitor kind) the same outcome and memory; and the same cycle count where the TLB policy claims timing isolation (flush, tagged-partitioned); where it does not (tagged-shared), timing differences are reported as findings",
  configs: NI_DEFAULT,
  defaultRuns: 12,
  run(o) {
    const configs = supported(o.configs ?? NI_DEFAULT);
    const channel = new Map<string, number>();
    const prog = secretProgram();
    const arb = fc.record({ a: kernelProgram({ maxLength: 10 }), b0: prog, b1: prog, policy: fc.constantFrom(...TLB_POLICIES), quantum: fc.constantFrom(50, 200, 1000) });
    let cxCase: NiCase | null = null;
    const s = search<NiCase>(arb, (k) => {
      for (const c of configs) {
        const r0 = runPair(k.a, k.b0, c, k.policy, k.quantum), r1 = runPair(k.a, k.b1, c, k.policy, k.quantum);
        const d = difference(r0.run, r1.run, k.a.paging);
        if (d !== null) { cxCase = k; return `${c}, ${k.policy}: VM A's outcome depends on VM B: ${d}`; }
        if (r0.cycles !== r1.cycles) {
          if (CLAIMS_TIMING_ISOLATION[k.policy]) { cxCase = k; return `${c}, ${k.policy} (claims timing isolation): VM A's cycles depend on VM B: ${r0.cycles} vs ${r1.cycles}`; }
          channel.set(`${c} ${k.policy}`, (channel.get(`${c} ${k.policy}`) ?? 0) + 1);
        }
      }
      return null;
    }, o.runs ?? 12, o.seed ?? 1);
    const findings = [...channel].map(([k, n]) => `${k}: VM A's cycle count changed with VM B's secret in ${n} case(s) (timing channel; the policy does not claim timing isolation)`);
    const cx = s.counterexample;
    return {
      property: 'noninterference', ok: !s.failed, runs: s.runs, seed: o.seed ?? 1, seconds: s.seconds, configs,
      firstFailure: s.firstFailure,
      counterexample: cx === null ? null : { program: cx.a, listing: listing(cx.a.items), message: s.message ?? '', extra: { b0: listing(cx.b0.items), b1: listing(cx.b1.items), policy: cx.policy, quantum: cx.quantum, case: cxCase !== null } },
      findings, notes: unsupportedNotes(o.configs ?? NI_DEFAULT),
    };
  },
};

