// The HTML report in a real browser: Debian's headless Chromium, with every host name
// unresolvable (offline), must draw every chart (an SVG with marks in each chart element)
// without console errors. Skipped, with a notice, where no Chromium is installed, unless
// VIRTLAB_REQUIRE_CHROMIUM=1 (.ci/run sets it and installs Chromium): then a missing one fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeReport } from '../../src/analysis/report.js';
import { writeFakeExperiment, type FakeRun } from './fixture.js';

const chromium = ['chromium', 'chromium-browser', 'google-chrome'].find((b) => {
  try { execFileSync('which', [b], { stdio: 'ignore' }); return true; } catch { return false; }
});
const required = process.env.VIRTLAB_REQUIRE_CHROMIUM === '1';
if (!chromium && !required) console.warn('NOTICE: test/analysis/browser.test.ts skipped: no Chromium installed (apt-get install chromium)');

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

describe('HTML report in headless Chromium', () => {
  it.skipIf(!chromium && !required)('renders every chart offline, without console errors', async () => {
    expect(chromium, 'no Chromium installed (apt-get install chromium), and VIRTLAB_REQUIRE_CHROMIUM=1').toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'virtlab-browser-'));
    dirs.push(dir);
    const runs: FakeRun[] = [];
    for (const seed of [1, 2]) {
      runs.push({ workload: 'syscall', mode: 'native', seed, cycles: 1000 + seed });
      runs.push({ workload: 'syscall', mode: 'hw', seed, cycles: 1500 + seed, categories: { guest: 1000 + seed, 'exit:io': 500 }, monitor: { 'exit:io': 5 } });
    }
    const rep = await writeReport((writeFakeExperiment(dir, runs), dir));
    const r = spawnSync(chromium!, [
      '--headless', '--no-sandbox', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND', '--enable-logging=stderr', '--v=0',
      '--virtual-time-budget=10000', '--dump-dom', `file://${join(dir, 'index.html')}`,
    ], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
    expect(r.status).toBe(0);
    const dom = r.stdout;
    for (const c of rep.charts) {
      const at = dom.indexOf(`id="chart-${c.name}"`);
      expect(at, c.name).toBeGreaterThan(0);
      const el = dom.slice(at, dom.indexOf('</svg>', at));
      expect(el, c.name).toMatch(/<svg[^>]*class="marks"/);
      expect(el, c.name).toMatch(/<path|<rect|<line/);
    }
    expect(/class="chart render-error"/.test(dom)).toBe(false);
    expect(r.stderr.split('\n').filter((l) => /CONSOLE|Uncaught/.test(l))).toEqual([]);
  }, 90_000);
});
