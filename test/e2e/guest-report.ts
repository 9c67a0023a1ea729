/**
 * Status report of the test guests on virtlab against the QEMU recordings: which pass, how
 * each failing one ended (address and disassembly of an unsupported instruction), the
 * first differing console lines, and for `isa` the failing instruction groups with the
 * first differing cases from `isa-verbose` (inputs a b flags -> results flags).
 *
 *   node --import ./scripts/ts-register.mjs test/e2e/guest-report.ts [guest...]
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GUESTS, describeExit, lineDiff, qemuStatusOf, readExpected, runGuest } from './guest-harness.js';

const BIG = new Set(['compute-bench', 'sys-heavy']);
const names = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(join(GUESTS, 'expected')).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).filter((n) => !BIG.has(n)).sort();

/** Group name → differing verbose lines, from isa-verbose. */
function isaCases(): Map<string, string[]> {
  const q = readExpected('isa-verbose');
  const r = runGuest('isa-verbose', 50_000_000);
  const a = q.debugcon.split('\n');
  const b = r.debugcon.split('\n');
  const groups = new Map<string, string[]>();
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    const g = (a[i] ?? '').split(' ')[0]!;
    const list = groups.get(g) ?? [];
    if (list.length < 3) list.push(`qemu    ${a[i]}\n      virtlab ${b[i] ?? '(none: ' + describeExit(r.outcome) + ')'}`);
    groups.set(g, list);
    if (b[i] === undefined) break;
  }
  return groups;
}

let pass = 0;
for (const name of names) {
  const q = readExpected(name);
  const t0 = performance.now();
  let line: string;
  let details: string[] = [];
  try {
    const r = runGuest(name, BIG.has(name) ? 1_000_000_000 : 50_000_000);
    const ms = performance.now() - t0;
    const ok = r.debugcon === q.debugcon && r.serial === q.serial && qemuStatusOf(r.outcome) === q.exitStatus;
    if (ok) pass++;
    line = `${ok ? 'PASS' : 'FAIL'} ${name}: ${describeExit(r.outcome)}; ${r.outcome.instructions} instructions, ${ms.toFixed(0)} ms`;
    details = lineDiff(q.debugcon, r.debugcon, 6);
    if (r.serial !== q.serial) details.push(`COM1: qemu ${JSON.stringify(q.serial)} virtlab ${JSON.stringify(r.serial)}`);
    if (qemuStatusOf(r.outcome) !== q.exitStatus) details.push(`exit status: qemu ${q.exitStatus} virtlab ${qemuStatusOf(r.outcome)}`);
    if (name === 'isa' && !ok) {
      for (const [g, cases] of isaCases()) details.push(`group ${g}:\n      ${cases.join('\n      ')}`);
    }
  } catch (e) {
    line = `FAIL ${name}: threw ${(e as Error).stack ?? String(e)}`;
  }
  console.log(line);
  for (const d of details) console.log('    ' + d);
}
console.log(`${pass} of ${names.length} guests match QEMU`);
