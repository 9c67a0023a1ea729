/**
 * Differential fuzzing CLI (docs/fuzzing.md): generates programs from seeds (gen.ts), runs
 * each under QEMU (qemu-system-i386, deterministic with -icount) and on virtlab (JIT off
 * and on), compares, and records the corpus replayed by differential.test.ts.
 *
 *   node --import ./scripts/ts-register.mjs test/fuzz/fuzz.ts campaign FROM COUNT [--every]
 *   node --import ./scripts/ts-register.mjs test/fuzz/fuzz.ts show SEED   (side by side, checkpoint after every instruction)
 *   node --import ./scripts/ts-register.mjs test/fuzz/fuzz.ts record FROM COUNT   (writes corpus.json)
 *   node --import ./scripts/ts-register.mjs test/fuzz/fuzz.ts prefix SEED N  (the program cut after N instructions)
 *
 * QEMU's raw outputs are cached in scratch/fuzz-qemu/ (keyed by the ELF's sha256).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generate, type GenOptions, type Program } from './gen.js';
import { digest, elfOf, lines, runVirtlab } from './harness.js';
import { KNOWN_QEMU_DIFFERENCES } from './known.js';

const CACHE = join(process.cwd(), 'scratch', 'fuzz-qemu');
const QEMU_ARGS = ['-M', 'pc', '-m', '128', '-display', 'none', '-nodefaults', '-no-reboot', '-icount', 'shift=0,sleep=off',
  '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04'];

/** QEMU's 0xE9 bytes for a program (cached). */
async function qemu(p: Program): Promise<Uint8Array> {
  mkdirSync(CACHE, { recursive: true });
  const elf = elfOf(p);
  const key = createHash('sha256').update(elf).digest('hex').slice(0, 24);
  const out = join(CACHE, key + '.bin');
  if (existsSync(out)) return new Uint8Array(readFileSync(out));
  const kernel = join(CACHE, key + '.elf');
  writeFileSync(kernel, elf);
  const tmp = out + '.tmp';
  await new Promise<void>((resolve, reject) => {
    const q = spawn('qemu-system-i386', [...QEMU_ARGS, '-debugcon', 'file:' + tmp, '-kernel', kernel], { stdio: 'ignore' });
    const t = setTimeout(() => q.kill('SIGKILL'), 30_000);
    q.on('exit', () => { clearTimeout(t); resolve(); });
    q.on('error', reject);
  });
  const bytes = new Uint8Array(readFileSync(tmp));
  writeFileSync(out, bytes);
  rmSync(tmp); rmSync(kernel);
  return bytes;
}

interface Verdict { seed: string; kind: string; q: string[]; v: string[]; j: string[]; firstDiff: number; jitDiff: number; exitV: string }

async function check(seed: string, options: GenOptions = {}): Promise<Verdict> {
  const p = generate(seed, options);
  const q = lines(p, await qemu(p), true);
  const rv = runVirtlab(p, false);
  const v = lines(p, rv.bytes);
  const j = lines(p, runVirtlab(p, true).bytes);
  const first = (a: string[], b: string[]): number => { for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i; return -1; };
  return { seed, kind: p.kind, q, v, j, firstDiff: first(q, v), jitDiff: first(v, j), exitV: rv.exit };
}

async function pool<T>(items: T[], n: number, f: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => { while (i < items.length) await f(items[i++]!); }));
}

function describe(seed: string, i: number, a: string[], b: string[], labelA: string, labelB: string): string {
  const p = generate(seed, { everyInstruction: true });
  const line = a[i] ?? b[i] ?? '';
  const m = /after#(\d+)|\(#(\d+)\)/.exec(line);
  const k = m ? Number(m[1] ?? m[2]) : -1;
  return [`seed ${seed}: line ${i}`, `  ${labelA}: ${a[i] ?? '(none)'}`, `  ${labelB}: ${b[i] ?? '(none)'}`,
    `  prev  : ${a[i - 1] ?? '(none)'}`, k >= 0 ? `  instruction #${k}: ${p.instrBytes[k]}` : ''].join('\n');
}

/** Seeds that found virtlab bugs (docs/fuzzing.md), always in the corpus. */
const REGRESSIONS = ['1399'];

const [cmd, a1, a2] = process.argv.slice(2);
if (cmd === 'prefix') {
  // The program of SEED cut after N random instructions (same prefix): QEMU's and virtlab's lines.
  const s = await check(a1!, { count: Number(a2) });
  console.log(s.q.join('\n')); console.log('--- virtlab'); console.log(s.v.join('\n'));
} else if (cmd === 'campaign') {
  const from = Number(a1 ?? 0), count = Number(a2 ?? 50);
  const seeds = Array.from({ length: count }, (_, k) => String(from + k));
  let bad = 0, jbad = 0;
  await pool(seeds, 2, async (s) => {
    const r = await check(s);
    if (r.firstDiff >= 0 && process.argv.includes('--sparse')) console.log(describe(s, r.firstDiff, r.q, r.v, 'qemu   ', 'virtlab').replace(/instruction #\d+: \w+/, ''));
    if (r.firstDiff >= 0) {
      // Localize: rerun with a checkpoint after every instruction.
      const e = await check(s, { everyInstruction: true });
      bad++;
      const known = KNOWN_QEMU_DIFFERENCES[s];
      console.log((known ? '[known] ' : '') + describe(s, e.firstDiff, e.q, e.v, 'qemu   ', 'virtlab'));
    }
    if (r.jitDiff >= 0) { jbad++; console.log('JIT ' + describe(s, r.jitDiff, r.v, r.j, 'interp ', 'jit    ')); }
  });
  console.log(`${count} programs: ${bad} differ from QEMU, ${jbad} JIT differs from the interpreter`);
} else if (cmd === 'show') {
  const r = await check(a1!, { everyInstruction: true });
  const p = generate(a1!, { everyInstruction: true });
  for (let i = 0; i < Math.max(r.q.length, r.v.length); i++) {
    const same = r.q[i] === r.v[i];
    console.log(`${same ? ' ' : '!'} ${i} q: ${r.q[i]}`);
    if (!same) console.log(`  ${i} v: ${r.v[i]}`);
  }
  p.instrBytes.forEach((b, k) => console.log(`#${k} ${b}`));
  console.log(r.exitV);
} else if (cmd === 'record') {
  const from = Number(a1 ?? 0), count = Number(a2 ?? 300);
  const seeds = Array.from({ length: count }, (_, k) => String(from + k));
  const corpus: { seed: string; kind: string; lines: number; digests: string; last: string }[] = [];
  for (const k of Object.keys(KNOWN_QEMU_DIFFERENCES)) if (!seeds.includes(k)) seeds.push(k);
  for (const k of REGRESSIONS) if (!seeds.includes(k)) seeds.push(k);
  await pool(seeds, 2, async (s) => {
    const p = generate(s);
    // Known QEMU errors: the SDM result, which is virtlab's (checked by hand).
    const q = KNOWN_QEMU_DIFFERENCES[s] !== undefined ? lines(p, runVirtlab(p, false).bytes) : lines(p, await qemu(p), true);
    corpus.push({ seed: s, kind: p.kind, lines: q.length, digests: q.map(digest).join(' '), last: q[q.length - 1] ?? '' });
  });
  corpus.sort((x, y) => Number(x.seed) - Number(y.seed));
  const file = join('test', 'fuzz', 'corpus.json');
  writeFileSync(file, JSON.stringify({ generator: 'test/fuzz/gen.ts', note: 'lines digests: sha1(line).slice(0, 8), see harness.ts', regressions: REGRESSIONS, known: Object.keys(KNOWN_QEMU_DIFFERENCES), qemu: 'qemu-system-i386 7.2 ' + QEMU_ARGS.join(' '), programs: corpus }, null, 0).replace(/\},\{/g, '},\n{') + '\n');
  console.log(`recorded ${corpus.length} programs in ${file}`);
} else {
  console.error('usage: fuzz.ts campaign FROM COUNT | show SEED | record FROM COUNT');
  process.exit(2);
}
