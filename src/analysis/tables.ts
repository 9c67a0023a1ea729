/**
 * An experiment's results as arquero tables: one row per run membership, overheads relative
 * to `native` with the same inputs, per-category cycle breakdowns, exit-reason and hypercall
 * histograms (from the monitors' counters), and means with 95% confidence intervals over seeds.
 *
 * The primary metric is cycles after boot: the run's cycles minus those at the guest's first
 * entry to user mode (`RunRecord.userStart`), where the workload (a user program started by
 * init) begins. Boot is not what the workloads measure, and it is not comparable across modes:
 * pv's domain builder builds the initial page tables uncharged (as Xen's dom0 builder does)
 * that the native kernel builds itself. Whole-run figures are kept as `totalCycles`,
 * `totalSlowdown` (docs/experiments.md, "Cycles after boot").
 */
import { existsSync, readFileSync } from 'node:fs';
import * as aq from 'arquero';
import type { ColumnTable } from 'arquero';
import type { UnitResult } from '../experiment/execute.js';
import { readManifest, readResult, runFile, type Manifest } from '../experiment/store.js';

const { op } = aq;

/** An experiment directory's manifest and results (by unit id; missing units absent). */
export interface Experiment {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly results: ReadonlyMap<string, UnitResult>;
}

/** Loads DIR/experiment.json and every stored result that matches its unit. */
export function loadExperiment(dir: string): Experiment {
  const manifest = readManifest(dir);
  const results = new Map<string, UnitResult>();
  for (const u of manifest.units) {
    if (!existsSync(runFile(dir, u.id))) continue;
    // Stored results are reported whatever code made them (provenance names it); only
    // --resume insists on the current code.
    const r = readResult(dir, u, { anyCode: true });
    if (r) results.set(u.id, r);
  }
  return { dir, manifest, results };
}

/** One row per (unit, membership). */
export interface ResultRow {
  id: string;
  workload: string; workloadName: string; params: string;
  mode: string; modeName: string; paging: string | null; vpid: boolean | null;
  profile: string; profileSha256: string;
  seed: number | null; sweep: string | null; sweepValue: number | null;
  status: string; error: string | null;
  instructions: number | null;
  /** Cycles after boot (the primary metric): whole-run cycles − `bootCycles`; ok runs only. */
  cycles: number | null;
  /** Whole-run cycles, boot included (ok runs only). */
  totalCycles: number | null;
  /** Cycles and instructions at the guest's first entry to user mode (null: it never entered ring 3, and nothing is subtracted). */
  bootCycles: number | null; bootInstructions: number | null;
  idleCycles: number | null;
  benchOps: number | null; benchCycles: number | null; cyclesPerOp: number | null;
  checksum: string | null; consoleSha256: string | null; imageSha256: string | null;
  /** `replay` (the workload's recording: paired with native) or `direct` (trap, pv: its own run, same seed). */
  input: 'replay' | 'direct' | null;
  /** The replay's divergence (one line), if any: such a unit failed. */
  divergence: string | null;
  traceSha256: string | null;
}

/** Rows of the results table, in matrix order (units without a stored result: status "missing"). */
export function resultRows(e: Experiment): ResultRow[] {
  const rows: ResultRow[] = [];
  for (const u of e.manifest.units) {
    const r = e.results.get(u.id);
    const rec = r?.record ?? null;
    const bench = r?.bench ?? [];
    const benchOps = bench.length ? bench.reduce((a, b) => a + b.ops, 0) : null;
    const benchCycles = bench.length ? bench.reduce((a, b) => a + b.cycles, 0) : null;
    const ok = r?.status === 'ok' && rec !== null;
    const boot = rec?.userStart ?? null;
    for (const m of u.memberships) {
      rows.push({
        id: u.id,
        workload: m.workload, workloadName: u.spec.workload.name,
        params: Object.entries(u.spec.workload.params).map(([k, v]) => `${k}=${v}`).join(' '),
        mode: m.mode, modeName: u.spec.mode,
        paging: u.spec.mode === 'hw' ? u.spec.modeOptions.paging ?? 'nested' : null,
        vpid: u.spec.mode === 'hw' ? u.spec.modeOptions.vpid ?? true : null,
        profile: m.profile, profileSha256: u.spec.profile.sha256,
        seed: m.seed, sweep: m.sweep, sweepValue: m.sweepValue,
        status: r ? r.status : 'missing', error: r?.error ?? null,
        instructions: rec?.instructions ?? null,
        cycles: ok ? rec.cycles - (boot?.cycles ?? 0) : null, totalCycles: ok ? rec.cycles : null,
        bootCycles: boot?.cycles ?? null, bootInstructions: boot?.instructions ?? null,
        idleCycles: rec?.idleCycles ?? null,
        benchOps, benchCycles, cyclesPerOp: benchOps && benchCycles !== null ? benchCycles / benchOps : null,
        checksum: r?.checksum ?? null, consoleSha256: rec?.consoleSha256 ?? null, imageSha256: rec?.image.sha256 ?? null,
        input: r?.input ?? (u.spec.input?.kind ?? null), divergence: r?.divergence ?? null, traceSha256: r?.trace?.sha256 ?? null,
      });
    }
  }
  return rows;
}

/** The results table (arquero). */
export function resultsTable(e: Experiment): ColumnTable {
  return aq.from(resultRows(e));
}

/** The key of "the same inputs": workload label, profile (by effective hash), seed, sweep point. */
const KEY = ['workload', 'profile', 'profileSha256', 'seed', 'sweep', 'sweepValue'] as const;

/**
 * Adds the native baseline to each row: `nativeCycles`, `slowdown` = cycles / nativeCycles
 * (cycles after boot; 1 = as fast as native), `overheadPct`, `totalSlowdown` (whole runs, boot
 * included: secondary), `benchSlowdown` (the workload's own timed region), and
 * `checksumMatches` (the guest-visible result equals native's).
 */
export function overheadTable(results: ColumnTable): ColumnTable {
  // A plain-JS join: arquero's join does not match null keys (seed and sweep are often null).
  const rows = results.objects() as unknown as ResultRow[];
  const key = (r: ResultRow): string => KEY.map((k) => JSON.stringify(r[k])).join('|');
  const native = new Map<string, ResultRow>();
  for (const r of rows) if (r.modeName === 'native' && r.status === 'ok' && !native.has(key(r))) native.set(key(r), r);
  return aq.from(rows.map((r) => {
    const n = native.get(key(r));
    const slowdown = r.cycles !== null && n?.cycles ? r.cycles / n.cycles : null;
    return {
      ...r,
      nativeCycles: n?.cycles ?? null,
      nativeTotalCycles: n?.totalCycles ?? null,
      nativeBenchCycles: n?.benchCycles ?? null,
      nativeChecksum: n?.checksum ?? null,
      slowdown,
      overheadPct: slowdown !== null ? (slowdown - 1) * 100 : null,
      totalSlowdown: r.totalCycles !== null && n?.totalCycles ? r.totalCycles / n.totalCycles : null,
      benchSlowdown: r.benchCycles !== null && n?.benchCycles ? r.benchCycles / n.benchCycles : null,
      checksumMatches: r.checksum !== null && n?.checksum != null ? r.checksum === n.checksum : null,
    };
  }));
}

/** Two-sided 95% Student t quantiles by degrees of freedom (1..30; larger uses the normal 1.96). */
const T95 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Half-width of the 95% confidence interval of a mean (t distribution); 0 for n < 2. */
export function ci95HalfWidth(sd: number, n: number): number {
  if (n < 2 || !Number.isFinite(sd)) return 0;
  const t = n - 1 <= 30 ? T95[n - 1]! : 1.96;
  return (t * sd) / Math.sqrt(n);
}

/**
 * Mean slowdown (cycles after boot) over seeds per (workload, mode, profile, sweep point), with
 * the sample standard deviation, n and the 95% confidence interval (`lo`, `hi`); the whole-run
 * slowdown's mean as `totalSlowdown`.
 */
export function summaryTable(overheads: ColumnTable): ColumnTable {
  return overheads
    .filter((d: { slowdown: number | null }) => d.slowdown !== null)
    .groupby('workload', 'mode', 'modeName', 'profile', 'sweep', 'sweepValue')
    .rollup({
      n: op.count(),
      slowdown: op.mean('slowdown'),
      sd: op.stdev('slowdown'),
      cycles: op.mean('cycles'),
      nativeCycles: op.mean('nativeCycles'),
      totalSlowdown: op.mean('totalSlowdown'),
      totalCycles: op.mean('totalCycles'),
      bootCycles: op.mean('bootCycles'),
      benchSlowdown: op.mean('benchSlowdown'),
      cyclesPerOp: op.mean('cyclesPerOp'),
      checksumMismatches: (d: { checksumMatches: boolean | null }) => op.sum(d.checksumMatches === false ? 1 : 0),
    })
    .derive({ sd: (d: { sd: number | null }) => d.sd ?? 0 })
    .derive({ ci: aq.escape((d: { sd: number; n: number }) => ci95HalfWidth(d.sd, d.n)) })
    .derive({ lo: (d: { slowdown: number; ci: number }) => d.slowdown - d.ci, hi: (d: { slowdown: number; ci: number }) => d.slowdown + d.ci })
    .ungroup();
}

/**
 * Where the cycles after boot go: one row per (row of `results`, accounting category), with the
 * category's cycles and count since the guest's first entry to user mode (the run's minus
 * `userStart`'s), its `share` of the cycles after boot, `normalized` = cycles / native cycles
 * after boot (so a mode's categories stack to its slowdown), and `totalCycles` (whole run).
 */
export function breakdownTable(e: Experiment, overheads: ColumnTable): ColumnTable {
  const native = new Map<string, number>();
  for (const o of overheads.objects() as unknown as (ResultRow & { nativeCycles: number | null })[]) {
    if (o.nativeCycles) native.set(`${o.id}|${o.workload}|${o.mode}|${o.profile}|${o.sweep}|${o.sweepValue}`, o.nativeCycles);
  }
  const rows: Record<string, unknown>[] = [];
  for (const u of e.manifest.units) {
    const r = e.results.get(u.id);
    if (!r || r.status !== 'ok' || !r.record) continue;
    for (const m of u.memberships) {
      const nat = native.get(`${u.id}|${m.workload}|${m.mode}|${m.profile}|${m.sweep}|${m.sweepValue}`) ?? null;
      const boot = r.record.userStart?.categories ?? {};
      const after = r.record.accounting.total - (r.record.userStart?.cycles ?? 0);
      for (const [category, c] of Object.entries(r.record.accounting.categories)) {
        const cycles = c.cycles - (boot[category]?.cycles ?? 0), count = c.count - (boot[category]?.count ?? 0);
        if (cycles === 0 && count === 0) continue;
        rows.push({
          id: u.id, workload: m.workload, mode: m.mode, modeName: u.spec.mode, profile: m.profile, seed: m.seed, sweep: m.sweep, sweepValue: m.sweepValue,
          category, cycles, count, share: after > 0 ? cycles / after : null, normalized: nat ? cycles / nat : null, totalCycles: c.cycles,
        });
      }
    }
  }
  return aq.from(rows);
}

/**
 * Exit-reason and hypercall histograms from the monitors' counters (`exit:<reason>`,
 * `hypercall:<op>`), with the rate per 1,000 guest instructions. Base-matrix rows only.
 */
export function eventsTable(e: Experiment): ColumnTable {
  const rows: Record<string, unknown>[] = [];
  for (const u of e.manifest.units) {
    const r = e.results.get(u.id);
    if (!r || r.status !== 'ok' || !r.record) continue;
    for (const m of u.memberships) {
      if (m.sweep !== null) continue;
      for (const [key, count] of Object.entries(r.record.monitor)) {
        const kind = key.startsWith('exit:') ? 'exit' : key.startsWith('hypercall:') ? 'hypercall' : null;
        if (kind === null || count === 0) continue;
        rows.push({
          workload: m.workload, mode: m.mode, profile: m.profile, seed: m.seed, kind, reason: key.slice(kind.length + 1), count,
          per1kInstructions: (1000 * count) / Math.max(1, r.record.instructions),
        });
      }
    }
  }
  return aq.from(rows.length ? rows : [], rows.length ? undefined : ['workload', 'mode', 'profile', 'seed', 'kind', 'reason', 'count', 'per1kInstructions']);
}

/** The monitors' other counters (traps, shadow-paging work, EPT walks...), long form. */
export function countersTable(e: Experiment): ColumnTable {
  const rows: Record<string, unknown>[] = [];
  for (const u of e.manifest.units) {
    const r = e.results.get(u.id);
    if (!r || r.status !== 'ok' || !r.record) continue;
    const m = u.memberships[0]!;
    if (m.sweep !== null) continue;
    for (const [counter, value] of Object.entries(r.record.monitor)) rows.push({ workload: m.workload, mode: m.mode, profile: m.profile, seed: m.seed, counter, value });
  }
  return aq.from(rows);
}

/** Reads a JSON results file written by the report (for notebooks). */
export function readResultsJson(file: string): ColumnTable {
  return aq.from(JSON.parse(readFileSync(file, 'utf8')) as object[]);
}
