/**
 * `virtlab record`: runs a guest natively (or a paravirtualized one under pv) and writes its trace (docs/trace-format.md).
 */
import { parseArgs } from 'node:util';
import { writeFileAtomicSync } from '../guest/image-format.js';
import { loadProfile, DEFAULT_PROFILE, DEFAULT_VMM_PROFILE } from '../profiles/index.js';
import { recordTrace, RECORD_MODES, type RecordMode } from '../trace/recorder.js';
import { serializeRunRecord, writeFileAtomic } from '../trace/run-record.js';
import { UsageError } from './errors.js';
import { parseImageArgs, parseNumber, readImage } from './args.js';
import { parseParamList, WORKLOAD_PREFIX } from './workloads.js';

export const RECORD_USAGE = `usage: virtlab record <image> -o FILE [options]
       virtlab record workload:NAME -o FILE [--param k=v ...] [--seed N] [options]

Runs the guest natively (as virtlab exec does) and writes a trace: the guest image, the
machine, and every nondeterministic input at its logical position (interrupts, device
register reads, disk completions, frame arrivals, RDTSC values), with checkpoints of the
guest's state. Replay it under any mode but pv with virtlab replay. With --mode pv the
guest runs under the pv hypervisor (a paravirtualized kernel, as in Xen: another guest)
and the trace holds pv's inputs (timer VIRQs, back-end completions, frame arrivals, RDTSC);
it replays under --mode pv only. The same command gives the same bytes. The console goes
to stdout; the exit status is the guest's, as for exec.

options:
  -o, --output FILE      the trace file to write (atomically)
  --mode native|pv       what runs the guest while recording (default native)
  --seed N               seed of the devices' timing and traffic generators (disk latency
                         jitter, frame arrivals, echo jitter); default: the workload's
  --param k=v            with workload:NAME: a workload parameter (repeatable)
  --max-instructions N   stop after N instructions (default 1000000000; a workload's own budget)
  --memory MiB           RAM size (default 64)
  --profile NAME|FILE    cost profile of the recording run (default ${DEFAULT_PROFILE}; with --mode pv
                         ${DEFAULT_VMM_PROFILE}, as exec and replay use): it decides
                         when, in instructions, the timer and devices interrupt
  --flat ADDR            the image is a raw binary loaded at ADDR (--entry ADDR, --real-mode)
  --cmdline TEXT         Multiboot command line
  --json FILE            also write the recording run's record (virtlab.run/1)
  --checkpoint-interval N  instructions between state checkpoints (default 1048576)
  -h, --help             this help
`;


/** `virtlab record`: returns the guest's exit status (UsageError/ImageError/ProfileError for bad input). */
export function recordCommand(argv: string[], out: { stdout: (b: Uint8Array) => void; stderr: (s: string) => void; help: (s: string) => void }): number {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv, allowPositionals: true, strict: true,
        options: {
          output: { type: 'string', short: 'o' },
          mode: { type: 'string' },
          seed: { type: 'string' },
          param: { type: 'string', multiple: true },
          'max-instructions': { type: 'string' },
          memory: { type: 'string' },
          profile: { type: 'string' },
          flat: { type: 'string' },
          entry: { type: 'string' },
          'real-mode': { type: 'boolean' },
          cmdline: { type: 'string' },
          json: { type: 'string' },
          'checkpoint-interval': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (e) {
      throw new UsageError(`record: ${(e as Error).message}`);
    }
  })();
  if (values.help) { out.help(RECORD_USAGE); return 0; }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'record: missing <image>' : `record: expected one image, got ${positionals.length}: ${positionals.join(' ')}`);
  if (values.output === undefined) throw new UsageError('record: -o FILE is required (where to write the trace)');
  const mode = values.mode ?? 'native';
  if (!(RECORD_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`--mode: a guest is recorded with --mode native or pv, got "${mode}" (record natively, then replay under ${mode})`);
  }
  const seed = values.seed !== undefined ? parseNumber('--seed', values.seed, 0, 0xffffffff) : null;
  const maxGiven = values['max-instructions'] !== undefined ? parseNumber('--max-instructions', values['max-instructions'], 1, Number.MAX_SAFE_INTEGER) : undefined;
  const ck = values['checkpoint-interval'] !== undefined ? parseNumber('--checkpoint-interval', values['checkpoint-interval'], 1024, 1 << 30) : undefined;
  const img = parseImageArgs(positionals[0]!, values);
  const { imagePath, memoryMiB, workload } = img;
  if (mode === 'pv' && img.flat !== undefined) throw new UsageError('--mode pv needs a paravirtualized Multiboot kernel (its PV note), not a raw binary (--flat)');
  const workloadInfo = workload !== null ? { name: imagePath.slice(WORKLOAD_PREFIX.length), params: parseParamList(values.param ?? []) } : null;
  const profile = loadProfile(values.profile ?? (mode === 'pv' ? DEFAULT_VMM_PROFILE : DEFAULT_PROFILE));
  const bytes = workload ? workload.bytes : readImage(imagePath);
  const rec = recordTrace({
    image: { bytes, path: imagePath },
    flat: img.flat,
    cmdline: img.cmdline,
    memoryMiB,
    devices: workload?.machine,
    workload: workloadInfo,
    seed,
    profile,
    maxInstructions: maxGiven ?? workload?.maxInstructions ?? 1_000_000_000,
    checkpointInterval: ck,
    ramDigestEvery: ck !== undefined ? ck * 64 : undefined,
    onConsole: (chunk) => out.stdout(chunk),
    mode: mode as RecordMode,
  });
  if (rec.run.message !== null) out.stderr(`virtlab: ${imagePath}: ${rec.run.message}\n`);
  try {
    writeFileAtomicSync(values.output, rec.bytes);
  } catch (e) {
    throw new UsageError(`-o ${values.output}: cannot write the trace (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (values.json !== undefined) {
    try {
      writeFileAtomic(values.json, serializeRunRecord(rec.run.record));
    } catch (e) {
      throw new UsageError(`--json ${values.json}: cannot write the run record (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return rec.run.status;
}

