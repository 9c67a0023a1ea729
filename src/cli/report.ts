/** `virtlab report DIR`: re-renders an experiment's report from its stored results. */
import { parseArgs } from 'node:util';
import { writeReport } from '../analysis/report.js';
import { StoreError } from '../experiment/store.js';
import type { CommandIo } from './experiment.js';

export const REPORT_USAGE = `usage: virtlab report DIR

Writes DIR/index.html (self-contained, offline), summary.md, the CSV/JSON tables and
charts/ (Vega-Lite specs, SVG, PNG) from the results stored in DIR by virtlab experiment.
`;

/** `virtlab report`: resolves to the exit status. */
export async function reportCommand(argv: string[], io: CommandIo): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { help: { type: 'boolean', short: 'h' } } }));
  } catch (e) {
    io.stderr(`virtlab: report: ${(e as Error).message}\n`);
    return 2;
  }
  if (values.help) { io.stdout(REPORT_USAGE); return 0; }
  if (positionals.length !== 1) { io.stderr('virtlab: report: expected one experiment directory (see virtlab report --help)\n'); return 2; }
  try {
    const rep = await writeReport(positionals[0]!);
    io.stdout(`${positionals[0]}/index.html (${rep.charts.length} charts, ${rep.files.length} files)\n`);
    return 0;
  } catch (e) {
    if (e instanceof StoreError) { io.stderr(`virtlab: ${e.message}\n`); return 2; }
    throw e;
  }
}
