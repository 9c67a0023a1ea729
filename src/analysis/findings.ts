/**
 * The generated summary of a report: findings computed from the tables (nothing canned), as
 * Markdown bullet lines.
 */
type Row = Record<string, unknown>;

const geomean = (xs: number[]): number => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);
const pct = (s: number): string => `${s >= 1 ? '+' : '−'}${Math.abs((s - 1) * 100).toFixed(s < 1.1 && s > 0.9 ? 1 : 0)}%`;
const uniq = (rows: Row[], f: string): string[] => [...new Set(rows.map((r) => String(r[f])))];

/** Least-squares slope of y on x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) { sxy += (xs[i]! - mx) * (ys[i]! - my); sxx += (xs[i]! - mx) ** 2; }
  return sxx === 0 ? 0 : sxy / sxx;
}

/**
 * Findings from the summary table (mean slowdown per workload/mode/profile/sweep point), the
 * breakdown table, the events table and the results (failures, checksums).
 */
export function findings(summary: Row[], breakdown: Row[], events: Row[], results: Row[], sweeps: readonly { name: string; path: string }[]): string[] {
  const out: string[] = [];
  const base = summary.filter((r) => r.sweep === null);
  for (const profile of uniq(base, 'profile')) {
    const rows = base.filter((r) => r.profile === profile && r.modeName !== 'native');
    const modes = uniq(rows, 'mode');
    const gm = modes.map((m) => {
      const xs = rows.filter((r) => r.mode === m).map((r) => Number(r.slowdown)).filter((x) => x > 0);
      return { mode: m, gm: xs.length ? geomean(xs) : NaN, n: xs.length };
    }).filter((g) => g.n > 0).sort((a, b) => a.gm - b.gm);
    if (gm.length === 0) continue;
    // Whole runs (boot included), secondary: boot is not comparable across modes (pv's domain
    // builder does the boot's page-table work uncharged).
    const whole = gm.map((g) => {
      const xs = rows.filter((r) => r.mode === g.mode).map((r) => Number(r.totalSlowdown)).filter((x) => x > 0);
      return xs.length ? `${g.mode} ${geomean(xs).toFixed(2)}×` : null;
    }).filter((x) => x !== null);
    out.push(`**${profile}**: geometric-mean slowdown in cycles after boot over ${gm[0]!.n} workloads — ${gm.map((g) => `${g.mode} ${g.gm.toFixed(2)}× (${pct(g.gm)})`).join(', ')}; fastest: ${gm[0]!.mode}, slowest: ${gm[gm.length - 1]!.mode}${whole.length ? ` (whole runs, boot included: ${whole.join(', ')})` : ''}.`);
    for (const { mode } of gm) {
      const worst = rows.filter((r) => r.mode === mode).sort((a, b) => Number(b.slowdown) - Number(a.slowdown))[0]!;
      const cats = breakdown.filter((b) => b.profile === profile && b.mode === mode && b.workload === worst.workload && b.sweep === null && b.category !== 'guest');
      const byCat = new Map<string, number>();
      for (const c of cats) byCat.set(String(c.category), (byCat.get(String(c.category)) ?? 0) + Number(c.cycles));
      const top = [...byCat.entries()].sort((a, b) => b[1] - a[1])[0];
      const total = breakdown.filter((b) => b.profile === profile && b.mode === mode && b.workload === worst.workload && b.sweep === null).reduce((a, b) => a + Number(b.cycles), 0);
      const ev = events.filter((x) => x.profile === profile && x.mode === mode);
      const evBy = new Map<string, number>();
      for (const x of ev) evBy.set(`${x.kind}:${x.reason}`, (evBy.get(`${x.kind}:${x.reason}`) ?? 0) + Number(x.count));
      const topEv = [...evBy.entries()].sort((a, b) => b[1] - a[1])[0];
      out.push(`  - ${mode}: worst on **${worst.workload}** (${Number(worst.slowdown).toFixed(2)}× native)${top && total ? `, where the largest overhead category is \`${top[0]}\` (${((100 * top[1]) / total).toFixed(0)}% of its cycles after boot)` : ''}${topEv ? `; most frequent monitor event over all workloads: \`${topEv[0]}\` (${topEv[1].toLocaleString('en-US')})` : ''}.`);
    }
  }
  // Equivalence: the guest-visible result (the workload's checksum) against native.
  const mism = base.filter((r) => Number(r.checksumMismatches) > 0);
  if (mism.length) {
    out.push(`Guest-visible results differ from native (workload checksum) in ${mism.length} case(s): ${mism.map((r) => `${r.workload} under ${r.mode} on ${r.profile}`).join('; ')}.`);
  } else if (base.length) {
    out.push('Every run that finished printed the same workload checksum as native: the guest-visible results agree across modes.');
  }
  for (const s of sweeps) {
    const rows = summary.filter((r) => r.sweep === s.name && r.modeName !== 'native');
    for (const profile of uniq(rows, 'profile')) {
      for (const mode of uniq(rows.filter((r) => r.profile === profile), 'mode')) {
        const sl: number[] = [];
        for (const w of uniq(rows, 'workload')) {
          const pts = rows.filter((r) => r.profile === profile && r.mode === mode && r.workload === w);
          if (pts.length >= 2) sl.push(slope(pts.map((p) => Number(p.sweepValue)), pts.map((p) => Number(p.slowdown))));
        }
        if (!sl.length) continue;
        const mean = sl.reduce((a, b) => a + b, 0) / sl.length;
        const maxW = Math.max(...sl);
        if (sl.every((x) => Math.abs(x) < 1e-9)) { out.push(`Sweep ${s.name} (${s.path}) on ${profile}, ${mode}: no effect on the slowdown (${sl.length} workload(s)).`); continue; }
        out.push(`Sweep ${s.name} (${s.path}) on ${profile}, ${mode}: each +100 of the swept value changes the slowdown by ${(100 * mean).toFixed(3)}× on average over ${sl.length} workload(s) (steepest ${(100 * maxW).toFixed(3)}×).`);
      }
    }
  }
  const seeded = base.filter((r) => Number(r.n) > 1);
  if (seeded.length) {
    const widest = seeded.sort((a, b) => Number(b.ci) - Number(a.ci))[0]!;
    out.push(`Seeds vary for ${uniq(seeded, 'workload').length} workload(s); the widest 95% confidence interval of a slowdown is ±${Number(widest.ci).toFixed(3)} (${widest.workload}, ${widest.mode}, ${widest.profile}).`);
  }
  const failed = results.filter((r) => r.status !== 'ok');
  if (failed.length) {
    out.push(`${failed.length} run(s) failed or are missing: ${failed.slice(0, 8).map((r) => `${r.workload} / ${r.mode} / ${r.profile}: ${r.error ?? r.status}`).join('; ')}${failed.length > 8 ? '; …' : ''}.`);
  }
  return out;
}
