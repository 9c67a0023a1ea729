/**
 * `reports/index.html`: one page linking every report under the project's `reports/` folder —
 * the experiment reports (`virtlab experiment`, `virtlab report`) and the verifier's mutant
 * report (`virtlab verify --mutants -o reports/verify`) — so they sit side by side. It is
 * rewritten whenever a report is written there; it lists what it finds, sorted, with no date,
 * so the same reports give the same bytes.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../trace/run-record.js';

/** One report found under the folder. */
export interface IndexedReport {
  readonly dir: string;
  readonly kind: 'experiment' | 'verification' | 'other';
  readonly title: string;
  readonly detail: string;
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function readJson(file: string): Record<string, unknown> | null {
  try { return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>; } catch { return null; }
}

/** What a report directory holds, from its own files (null when it has no index.html). */
export function describeReport(dir: string): IndexedReport | null {
  if (!existsSync(join(dir, 'index.html'))) return null;
  const name = basename(dir);
  const exp = readJson(join(dir, 'experiment.json'));
  if (exp !== null) {
    const sc = (exp.scenario ?? {}) as { name?: string; file?: string };
    const runs = existsSync(join(dir, 'runs')) ? readdirSync(join(dir, 'runs')).filter((f) => f.endsWith('.json')).length : 0;
    return { dir: name, kind: 'experiment', title: sc.name ?? name, detail: `${runs} stored runs; scenario ${sc.file !== undefined ? basename(sc.file) : '?'}` };
  }
  const mut = readJson(join(dir, 'mutants.json'));
  if (mut !== null && Array.isArray(mut.results)) {
    const rs = mut.results as { caught?: boolean }[];
    return { dir: name, kind: 'verification', title: 'mutation analysis', detail: `${rs.filter((r) => r.caught === true).length} of ${rs.length} mutants caught (${String(mut.seeds)} seeds, ${String(mut.runs)} runs per property)` };
  }
  return { dir: name, kind: 'other', title: name, detail: '' };
}

/** The index page of the reports under `parent`. */
export function reportsIndexHtml(reports: readonly IndexedReport[]): string {
  const rows = reports.map((r) => `<tr><td><a href="${esc(r.dir)}/index.html">${esc(r.dir)}</a></td><td>${r.kind}</td><td>${esc(r.title)}</td><td>${esc(r.detail)}</td></tr>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>virtlab reports</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ccc;padding:.3em .8em;text-align:left}</style>
</head><body>
<h1>virtlab reports</h1>
<p>Experiment reports (<code>virtlab experiment</code>) and the verifier's mutant report (<code>virtlab verify --mutants -o reports/verify</code>).</p>
<table><thead><tr><th>report</th><th>kind</th><th>title</th><th>contents</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}

/** Rewrites `parent/index.html` from the report directories it holds; returns them. */
export function writeReportsIndex(parent: string): IndexedReport[] {
  const found = existsSync(parent)
    ? readdirSync(parent).sort().filter((n) => statSync(join(parent, n)).isDirectory()).map((n) => describeReport(join(parent, n))).filter((r): r is IndexedReport => r !== null)
    : [];
  writeFileAtomic(join(parent, 'index.html'), reportsIndexHtml(found));
  return found;
}

/**
 * After a report was written to `dir`: refresh the index when `dir` is directly under the
 * project's `reports/` folder (cwd/reports). A report written anywhere else leaves its parent
 * folder alone.
 */
export function refreshReportsIndex(dir: string, cwd = process.cwd()): boolean {
  const parent = dirname(resolve(dir));
  if (parent !== resolve(cwd, 'reports')) return false;
  writeReportsIndex(parent);
  return true;
}
