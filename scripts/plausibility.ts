// Plausibility study (issue 4, item 8): the ASPLOS 2006 nanobenchmarks and forkwait under
// native, full (binary translation) and hw (VT-x style) with the P4 profile of Adams & Agesen,
// and with Nehalem and Skylake profiles (nested and shadow paging). Runs the compiled CLI
// (`npm run build` first) and prints cycles per op, ratios to native and, per cell, the top
// accounting categories per operation.
//
// Per-op categories come from a difference of two runs (n = lo and n = hi, same everything
// else): (record(hi) - record(lo)) / (hi - lo), which removes boot and set-up. The
// cycles_per_op column is the workload's own figure (RDTSC around the timed loop) at n = hi.
//
//   node --import ./scripts/ts-register.mjs scripts/plausibility.ts [--json FILE] [--jobs N]
//
// Deterministic: the machine is; runs are independent processes and results are keyed, not
// ordered by completion.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';

const CLI = 'dist/src/cli/main.js';

interface Bench {
  /** Column label. */
  label: string;
  workload: string;
  params: Record<string, string>;
  /** The two operation counts whose difference gives per-op categories. */
  lo: number;
  hi: number;
}

const BENCHES: Bench[] = [
  { label: 'syscall', workload: 'syscall', params: {}, lo: 200, hi: 1200 },
  { label: 'in', workload: 'in', params: {}, lo: 200, hi: 1200 },
  { label: 'cr8wr', workload: 'cr8wr', params: {}, lo: 200, hi: 1200 },
  { label: 'cr8wr-cli', workload: 'cr8wr', params: { via: 'cli' }, lo: 200, hi: 1200 },
  { label: 'callret', workload: 'callret', params: {}, lo: 1000, hi: 11000 },
  { label: 'pgfault', workload: 'pgfault', params: {}, lo: 100, hi: 500 },
  { label: 'divzero', workload: 'divzero', params: {}, lo: 200, hi: 1200 },
  { label: 'ptemod', workload: 'ptemod', params: {}, lo: 200, hi: 1200 },
  { label: 'forkwait', workload: 'forkwait', params: {}, lo: 10, hi: 50 },
];

interface Config {
  label: string;
  profile: string;
  args: string[];
}

const CONFIGS: Config[] = [
  { label: 'p4 native', profile: 'p4-2005', args: ['--mode', 'native'] },
  { label: 'p4 full', profile: 'p4-2005', args: ['--mode', 'full'] },
  { label: 'p4 hw-shadow', profile: 'p4-2005', args: ['--mode', 'hw', '--paging', 'shadow', '--vpid', 'off'] },
  ...['nehalem-2009', 'skylake-2015'].flatMap((p) => {
    const s = p.startsWith('nehalem') ? 'nhm' : 'skl';
    return [
      { label: `${s} native`, profile: p, args: ['--mode', 'native'] },
      { label: `${s} full`, profile: p, args: ['--mode', 'full'] },
      { label: `${s} hw-nested`, profile: p, args: ['--mode', 'hw', '--paging', 'nested', '--vpid', 'on'] },
      { label: `${s} hw-shadow`, profile: p, args: ['--mode', 'hw', '--paging', 'shadow', '--vpid', 'on'] },
    ];
  }),
];

interface RunResult {
  cyclesPerOp: number;
  ops: number;
  checksum: string;
  cycles: number;
  categories: Record<string, { cycles: number; count: number }>;
}

function runOne(b: Bench, c: Config, n: number, dir: string): Promise<RunResult> {
  const json = join(dir, `${b.label}-${c.label.replace(/ /g, '_')}-${n}.json`);
  const args = [CLI, 'exec', `workload:${b.workload}`, '--param', `n=${n}`];
  for (const [k, v] of Object.entries(b.params)) args.push('--param', `${k}=${v}`);
  args.push(...c.args, '--profile', c.profile, '--json', json);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const m = /bench: name=\S+ ops=(\d+) cycles=(\d+) cycles_per_op=(\d+)/.exec(out);
      const ck = /checksum: (0x[0-9a-f]{8})/.exec(out);
      if (code !== 1 || !m || !ck || !existsSync(json)) {
        reject(new Error(`${b.label} / ${c.label} n=${n}: status ${code}\n${out}\n${err}`));
        return;
      }
      const rec = JSON.parse(readFileSync(json, 'utf8'));
      resolve({
        ops: Number(m[1]),
        cyclesPerOp: Number(m[3]),
        checksum: ck[1],
        cycles: rec.cycles,
        categories: rec.accounting.categories,
      });
    });
  });
}

async function pool<T>(tasks: (() => Promise<T>)[], jobs: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  return results;
}

interface Cell {
  bench: string;
  config: string;
  cyclesPerOp: number;
  ratio: number;
  /** Marginal cycles per op: (total(hi) - total(lo)) / (hi - lo), free of boot and fixed costs. */
  marginal: number;
  marginalRatio: number;
  /** Per-op cycles by category, from the two-run difference, largest first. */
  perOp: [string, number][];
  /** Per-op counts of events by category (same difference). */
  countsPerOp: Record<string, number>;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : undefined;
  const jobs = argv.includes('--jobs') ? Number(argv[argv.indexOf('--jobs') + 1]) : Math.max(1, Math.min(8, cpus().length));
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run npm run build first`);
  const dir = mkdtempSync(join(tmpdir(), 'plaus-'));
  const keys: { b: Bench; c: Config; n: number }[] = [];
  for (const b of BENCHES) for (const c of CONFIGS) for (const n of [b.lo, b.hi]) keys.push({ b, c, n });
  const results = await pool(keys.map((k) => () => runOne(k.b, k.c, k.n, dir)), jobs);
  rmSync(dir, { recursive: true, force: true });
  const get = (b: Bench, c: Config, n: number): RunResult =>
    results[keys.findIndex((k) => k.b === b && k.c === c && k.n === n)];

  const cells: Cell[] = [];
  const checksumMismatch: string[] = [];
  for (const b of BENCHES) {
    for (const c of CONFIGS) {
      const lo = get(b, c, b.lo);
      const hi = get(b, c, b.hi);
      const natCfg = CONFIGS.find((x) => x.profile === c.profile && x.args[1] === 'native')!;
      const nat = get(b, natCfg, b.hi);
      const natLo = get(b, natCfg, b.lo);
      const marginal = (hi.cycles - lo.cycles) / (hi.ops - lo.ops);
      const natMarginal = (nat.cycles - natLo.cycles) / (nat.ops - natLo.ops);
      if (hi.checksum !== nat.checksum) checksumMismatch.push(`${b.label} ${c.label}`);
      const d = hi.ops - lo.ops;
      const perOp: [string, number][] = [];
      const countsPerOp: Record<string, number> = {};
      for (const [cat, v] of Object.entries(hi.categories)) {
        const w = lo.categories[cat] ?? { cycles: 0, count: 0 };
        const cy = (v.cycles - w.cycles) / d;
        if (Math.abs(cy) >= 0.5) perOp.push([cat, cy]);
        const cn = (v.count - w.count) / d;
        if (cat !== 'guest' && cn !== 0) countsPerOp[cat] = cn;
      }
      perOp.sort((x, y) => y[1] - x[1]);
      cells.push({
        bench: b.label,
        config: c.label,
        cyclesPerOp: hi.cyclesPerOp,
        ratio: hi.cyclesPerOp / nat.cyclesPerOp,
        marginal,
        marginalRatio: marginal / natMarginal,
        perOp,
        countsPerOp,
      });
    }
  }

  const cell = (b: string, c: string): Cell => cells.find((x) => x.bench === b && x.config === c)!;
  const w = 13;
  const pad = (s: string, n = w): string => s.padStart(n);
  console.log('cycles per op (workload RDTSC, n = hi) and ratio to native on the same profile\n');
  console.log(pad('', 14) + BENCHES.map((b) => pad(b.label)).join(''));
  for (const c of CONFIGS) {
    console.log(
      c.label.padEnd(14) +
        BENCHES.map((b) => {
          const x = cell(b.label, c.label);
          return pad(c.args[1] === 'native' ? String(x.cyclesPerOp) : `${x.cyclesPerOp} ${x.ratio.toFixed(2)}x`);
        }).join(''),
    );
  }
  console.log('\nmarginal cycles per op ((total(hi) - total(lo)) / (hi - lo): no boot, no fixed costs) and ratio to native\n');
  console.log(pad('', 14) + BENCHES.map((b) => pad(b.label)).join(''));
  for (const c of CONFIGS) {
    console.log(
      c.label.padEnd(14) +
        BENCHES.map((b) => {
          const x = cell(b.label, c.label);
          const m = Math.round(x.marginal);
          return pad(c.args[1] === 'native' ? String(m) : `${m} ${x.marginalRatio.toFixed(2)}x`);
        }).join(''),
    );
  }
  console.log('\ntop accounting categories per op (difference of n = lo and n = hi runs; count per op in brackets)\n');
  for (const b of BENCHES) {
    console.log(`${b.label} (n = ${b.lo} / ${b.hi})`);
    for (const c of CONFIGS) {
      const x = cell(b.label, c.label);
      const top = x.perOp
        .slice(0, 5)
        .map(([k, v]) => `${k} ${Math.round(v)}${x.countsPerOp[k] !== undefined ? ` [${+x.countsPerOp[k].toFixed(2)}]` : ''}`)
        .join(', ');
      console.log(`  ${c.label.padEnd(13)} ${top}`);
    }
  }
  if (checksumMismatch.length) console.log(`\nCHECKSUM MISMATCH vs native: ${checksumMismatch.join('; ')}`);
  else console.log('\nchecksums: every cell equals native on its profile');
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ schema: 'virtlab.plausibility/1', benches: BENCHES, configs: CONFIGS, cells }, null, 1));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
