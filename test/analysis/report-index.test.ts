import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { refreshReportsIndex, writeReportsIndex } from '../../src/analysis/report-index.js';

const dirs: string[] = [];
const tmp = (): string => { const d = mkdtempSync(join(tmpdir(), 'virtlab-index-')); dirs.push(d); return d; };
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

function fixture(): string {
  const root = tmp(), reports = join(root, 'reports');
  mkdirSync(join(reports, 'default/runs'), { recursive: true });
  writeFileSync(join(reports, 'default/index.html'), '<html></html>');
  writeFileSync(join(reports, 'default/experiment.json'), JSON.stringify({ scenario: { name: 'default', file: '/x/scenarios/default.json' } }));
  for (const id of ['a', 'b', 'c']) writeFileSync(join(reports, `default/runs/${id}.json`), '{}');
  mkdirSync(join(reports, 'verify'));
  writeFileSync(join(reports, 'verify/index.html'), '<html></html>');
  writeFileSync(join(reports, 'verify/mutants.json'), JSON.stringify({ seeds: 3, runs: 60, results: [{ caught: true }, { caught: false }] }));
  mkdirSync(join(reports, 'scratch')); // no index.html: not a report
  return root;
}

describe('reports/index.html', () => {
  it('links every report under the folder, with what each holds, and is the same bytes every time', () => {
    const root = fixture(), reports = join(root, 'reports');
    const found = writeReportsIndex(reports);
    expect(found.map((r) => [r.dir, r.kind])).toEqual([['default', 'experiment'], ['verify', 'verification']]);
    const html = readFileSync(join(reports, 'index.html'), 'utf8');
    expect(html).toContain('<a href="default/index.html">default</a>');
    expect(html).toContain('3 stored runs; scenario default.json');
    expect(html).toContain('1 of 2 mutants caught (3 seeds, 60 runs per property)');
    expect(html).not.toContain('scratch');
    writeReportsIndex(reports);
    expect(readFileSync(join(reports, 'index.html'), 'utf8')).toBe(html);
  });

  it('is refreshed only for a report directly under cwd/reports', () => {
    const root = fixture();
    expect(refreshReportsIndex(join(root, 'elsewhere/x'), root)).toBe(false);
    expect(existsSync(join(root, 'elsewhere/index.html'))).toBe(false);
    expect(refreshReportsIndex(join(root, 'reports/default'), root)).toBe(true);
    expect(readFileSync(join(root, 'reports/index.html'), 'utf8')).toContain('verify/index.html');
  });
});
