/**
 * `virtlab replay`: re-executes a trace under a mode, every input from the trace.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_PROFILE, DEFAULT_VMM_PROFILE } from '../profiles/index.js';
import { TraceFormatError } from '../trace/format.js';
import { formatDivergence, replayTrace, TraceModeError } from '../trace/replayer.js';
import { serializeRunRecord, writeFileAtomic } from '../trace/run-record.js';
import { STATUS_ERROR } from '../trace/exit-status.js';
import { MONITOR_MODES } from '../vmm/index.js';
import { parseModeArgs } from './args.js';
import { UsageError } from './errors.js';

export const REPLAY_USAGE = `usage: virtlab replay FILE --mode MODE [options]

Re-executes the trace's guest under MODE with every input taken from the trace at its
logical position, checking the guest's state at every checkpoint. A native trace replays
under any mode but pv; a trace recorded with --mode pv (a paravirtualized guest) under pv
only. The console goes to
stdout; the exit status is the guest's (the recording's, unless the replay diverged).
A divergence stops the replay with one line on stderr — the logical position, what was
expected and what was found, and the instruction there — and exit status 2.

options:
  --mode MODE            ${MONITOR_MODES.join(', ')} (required)
  --profile NAME|FILE    cost profile (default ${DEFAULT_PROFILE}; ${DEFAULT_VMM_PROFILE} with any other --mode)
  --paging nested|shadow with --mode hw (default nested)
  --vpid on|off          with --mode hw (default on)
  --json FILE            write the run record (virtlab.run/1); not written after a divergence
  --no-ram-check         do not compare guest-RAM digests at the checkpoints that have one
  --check-branches       check the control-flow log branch by branch (runs in the interpreter;
                         by default only a divergence is re-run this way, to pinpoint it)
  -h, --help             this help
`;

/** Reads a trace file (UsageError when it cannot be read). */
export function readTraceFile(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(`${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot read (${code ?? String(e)})`}`);
  }
}

/** `virtlab replay`: returns the exit status. */
export function replayCommand(argv: string[], out: { stdout: (b: Uint8Array) => void; stderr: (s: string) => void; help: (s: string) => void }): number {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv, allowPositionals: true, strict: true,
        options: {
          mode: { type: 'string' },
          profile: { type: 'string' },
          paging: { type: 'string' },
          vpid: { type: 'string' },
          json: { type: 'string' },
          'no-ram-check': { type: 'boolean' },
          'check-branches': { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (e) {
      throw new UsageError(`replay: ${(e as Error).message}`);
    }
  })();
  if (values.help) { out.help(REPLAY_USAGE); return 0; }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'replay: missing FILE (a trace)' : `replay: expected one trace, got ${positionals.length}`);
  if (values.mode === undefined) throw new UsageError(`replay: --mode is required (${MONITOR_MODES.join(', ')})`);
  const { mode, paging, vpid, profile } = parseModeArgs(values, null);
  const file = positionals[0]!;
  const bytes = readTraceFile(file);
  let run;
  try {
    run = replayTrace(bytes, {
      mode, modeOptions: { paging, vpid }, profile, file,
      checkRam: !values['no-ram-check'],
      checkBranches: values['check-branches'] ?? false,
      onConsole: (chunk) => out.stdout(chunk),
    });
  } catch (e) {
    if (e instanceof TraceFormatError) { out.stderr(`virtlab: ${e.message}\n`); return STATUS_ERROR; }
    // The trace's recording mode refuses this one: one line, before anything runs.
    if (e instanceof TraceModeError) { out.stderr(`virtlab: ${file}: ${e.message}\n`); return STATUS_ERROR; }
    if (e instanceof RangeError) throw new UsageError(`${file}: ${e.message}`);
    throw e;
  }
  if (run.divergence !== null) {
    out.stderr(`virtlab: ${file}: ${formatDivergence(run.divergence)}\n`);
    return STATUS_ERROR;
  }
  if (run.message !== null) out.stderr(`virtlab: ${file}: ${run.message}\n`);
  if (values.json !== undefined) {
    try {
      writeFileAtomic(values.json, serializeRunRecord(run.record));
    } catch (e) {
      throw new UsageError(`--json ${values.json}: cannot write the run record (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return run.status;
}
