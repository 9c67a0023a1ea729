#!/usr/bin/env node
// The `virtlab` command. Bad input gives one line on stderr and exit status 2, never a stack
// trace (set VIRTLAB_DEBUG=1 to see one for an internal error).
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ImageError } from '../guest/elf.js';
import { ProfileError } from '../profiles/index.js';
import { UsageError } from './errors.js';
import { buildGuestCommand } from './build-guest.js';
import { STATUS_ERROR, execCommand } from './exec.js';
import { workloadsCommand } from './workloads.js';
import { profilesCommand } from './profiles.js';
import { recordCommand } from './record.js';
import { replayCommand } from './replay.js';
import { inspectCommand } from './inspect.js';
import { verifyCommand } from './verify.js';
import { runChunkCommand } from './run-chunk.js';

const HELP = `usage: virtlab <command> [options]

commands:
  exec <image>                 run a Multiboot ELF (or, with --flat, a raw binary) and report the run
  build-guest <module.ts|NAME> build a guest image (.vlg) and/or a Multiboot ELF
  workloads                    list the workload suite (run one: exec workload:NAME --param k=v)
  profiles [show ID]           list the CPU cost profiles, or print one's figures with their sources
  record <image> -o FILE       run a guest natively and write its trace (inputs, control flow, checkpoints)
  replay FILE --mode MODE      re-execute a trace under a mode, every input from the trace
  inspect FILE                 a trace's header, chunks, event counts and checksum integrity
  experiment <scenario.json>   run an experiment (workloads x modes x profiles) and write its report
  report <dir>                 re-render an experiment's report from its stored results
  run-chunk --manifest M --chunk K   run one chunk of an experiment (what a Slurm array task runs)
  verify --property NAME       property-based verification of the monitors (--mutants: against injected bugs)

Run "virtlab <command> --help" for a command's options.
`;

/** Where the CLI writes: the process's streams, or a test's buffers. */
export interface CliIo {
  stdout(b: Uint8Array | string): void;
  stderr(s: string): void;
}

const processIo: CliIo = {
  stdout: (b) => { process.stdout.write(b); },
  stderr: (s) => { process.stderr.write(s); },
};

/** Runs the CLI on `argv` (without node and script); returns the exit status. */
export function main(argv: string[], io: CliIo = processIo): number {
  const [cmd, ...rest] = argv;
  const stdout = (b: Uint8Array): void => io.stdout(b);
  const stderr = (s: string): void => io.stderr(s);
  try {
    switch (cmd) {
      case undefined:
        stderr(HELP);
        return STATUS_ERROR;
      case '-h': case '--help': case 'help':
        io.stdout(HELP);
        return 0;
      case 'exec':
        return execCommand(rest, { stdout, stderr, help: (s) => io.stdout(s) });
      case 'workloads':
        return workloadsCommand(rest, { stdout: (s) => io.stdout(s) });
      case 'profiles':
        return profilesCommand(rest, { stdout: (s) => io.stdout(s) });
      case 'record':
        return recordCommand(rest, { stdout, stderr, help: (s) => io.stdout(s) });
      case 'replay':
        return replayCommand(rest, { stdout, stderr, help: (s) => io.stdout(s) });
      case 'inspect':
        return inspectCommand(rest, { stdout: (s) => io.stdout(s), stderr });
      case 'verify':
        return verifyCommand(rest, { stdout: (s) => io.stdout(s), stderr });
      case 'run-chunk':
        return runChunkCommand(rest, { stdout: (s) => io.stdout(s), stderr });
      default:
        stderr(`virtlab: unknown command "${cmd}" (commands: exec, build-guest, workloads, profiles, record, replay, inspect, verify, run-chunk; see virtlab --help)\n`);
        return STATUS_ERROR;
    }
  } catch (e) {
    if (e instanceof UsageError || e instanceof ImageError || e instanceof ProfileError) {
      stderr(`virtlab: ${e.message}\n`);
      if (e instanceof UsageError && (cmd === 'exec' || cmd === 'record' || cmd === 'replay')) stderr(`(see virtlab ${cmd} --help)\n`);
      return STATUS_ERROR;
    }
    stderr(`virtlab: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.VIRTLAB_DEBUG) stderr(`${e instanceof Error ? e.stack : ''}\n`);
    return 70;
  }
}

/** True when this module is the program being run (not imported, e.g. by a test). */
function isEntry(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

/** Like `main`, for commands that must await (build-guest imports a module). */
export async function mainAsync(argv: string[], io: CliIo = processIo): Promise<number> {
  if (argv[0] === 'build-guest') {
    return buildGuestCommand(argv.slice(1), { stdout: (s) => io.stdout(s), stderr: (s) => io.stderr(s) });
  }
  if (argv[0] === 'experiment' || argv[0] === 'report') {
    // Loaded on demand: the analysis stack (vega, arquero, resvg) would slow every other command.
    const cmdIo = { stdout: (s: string) => io.stdout(s), stderr: (s: string) => io.stderr(s) };
    try {
      if (argv[0] === 'experiment') return await (await import('./experiment.js')).experimentCommand(argv.slice(1), cmdIo);
      return await (await import('./report.js')).reportCommand(argv.slice(1), cmdIo);
    } catch (e) {
      io.stderr(`virtlab: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
      if (process.env.VIRTLAB_DEBUG) io.stderr(`${e instanceof Error ? e.stack : ''}\n`);
      return 70;
    }
  }
  return main(argv, io);
}

if (isEntry()) {
  // A closed stdout (`virtlab exec ... | head`) must not crash the run: the exit status and
  // the run record still matter. Later writes are dropped.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
  void mainAsync(process.argv.slice(2)).then((status) => { process.exitCode = status; });
}
