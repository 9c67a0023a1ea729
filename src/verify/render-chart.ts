/**
 * Renders one Vega-Lite spec to SVG and PNG with the experiment reports' renderer
 * (src/analysis/render.ts). Run as a child process by `writeMutantReport`, because
 * `virtlab verify` runs inside the synchronous CLI and vega's renderer is asynchronous:
 *   node render-chart.js SPEC.vl.json OUT-PREFIX   →  OUT-PREFIX.svg, OUT-PREFIX.png
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { TopLevelSpec } from 'vega-lite';
import { renderChart } from '../analysis/render.js';

const [specFile, out] = process.argv.slice(2);
if (specFile === undefined || out === undefined) {
  process.stderr.write('usage: render-chart SPEC.vl.json OUT-PREFIX\n');
  process.exitCode = 2;
} else {
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as TopLevelSpec;
  void renderChart(spec).then(({ svg, png }) => {
    writeFileSync(`${out}.svg`, svg);
    writeFileSync(`${out}.png`, png);
  }, (e: unknown) => {
    process.stderr.write(`render-chart ${specFile}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
