import { main } from '../../src/cli/main.js';

/** What one in-process `virtlab` run gave: status, stdout (latin-1, as guests' bytes are), stderr. */
export interface CliRun {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the `virtlab` command in this process (no spawn), capturing its output. */
export function virtlab(...args: string[]): CliRun {
  const out: Buffer[] = [];
  let err = '';
  const status = main(args, {
    stdout: (b) => { out.push(typeof b === 'string' ? Buffer.from(b) : Buffer.from(b)); },
    stderr: (t) => { err += t; },
  });
  return { status, stdout: Buffer.concat(out).toString('latin1'), stderr: err };
}
