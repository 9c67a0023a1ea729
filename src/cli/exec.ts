import { parseArgs } from 'node:util';
import { DEFAULT_PROFILE, DEFAULT_VMM_PROFILE } from '../profiles/index.js';
import { serializeRunRecord, writeFileAtomic } from '../trace/run-record.js';
import { runGuest } from '../trace/run-guest.js';
import { parseImageArgs, parseModeArgs, parseNumber, readImage } from './args.js';
import { UsageError } from './errors.js';
import { MONITOR_MODES } from '../vmm/index.js';

export const EXEC_USAGE = `usage: virtlab exec <image> [options]
       virtlab exec workload:NAME [--param k=v ...] [options]

Runs a guest image on the emulated PC, natively or under a monitor (--mode): the guest's
console (port 0xE9 and COM1) goes to stdout as it is produced. workload:NAME builds a
workload of the suite (see virtlab workloads) with the devices it needs.

options:
  --max-instructions N   stop after N retired instructions (default 1000000000; for
                         workload:NAME a budget computed from its parameters)
  --memory MiB           RAM size (default 64)
  --profile NAME|FILE    cost profile: a built-in name or a JSON file (default ${DEFAULT_PROFILE};
                         ${DEFAULT_VMM_PROFILE} with any other --mode)
  --mode MODE            execution mode: ${MONITOR_MODES.join(', ')} (default native; trap: naive
                         trap-and-emulate, the kernel in ring 1 on shadow page tables; hw:
                         VT-x style hardware-assisted virtualization; pv: Xen-style
                         paravirtualization, the kernel's pv-op sites patched to hypercalls,
                         direct paging; needs a paravirtualized image such as the virtlab
                         kernel, and charges the profile's paravirtualization figures
                         (core2-2008's, marked provisional, for a profile without them))
  --paging nested|shadow with --mode hw: EPT (default nested) or shadow page tables
  --vpid on|off          with --mode hw: VPID-tagged TLB (default on; off flushes at every exit and entry)
  --json FILE            write the run record (virtlab.run/1) to FILE, atomically
  --flat ADDR            the image is a raw binary: load it at ADDR (hex 0x... or decimal)
  --entry ADDR           with --flat: entry point (default: the load address)
  --real-mode            with --flat: start in real mode (default: flat 32-bit protected mode)
  --cmdline TEXT         Multiboot command line (the kernel sees "<image> TEXT", as under QEMU)
  --progress             report instructions and cycles on stderr after each slice of 10^7
  --param k=v            with workload:NAME: a workload parameter (repeatable)
  -h, --help             this help

exit status:
  (v << 1 | 1) & 0xff    the guest wrote v to the exit device (port 0xF4, as QEMU's isa-debug-exit)
  2                      bad input (missing file, not a loadable image, invalid profile, bad option),
                         an instruction virtlab does not implement, or a triple fault
  124                    the instruction limit was reached (even: never an exit-device status)
  4                      the guest halted with interrupts disabled, or asked for a reset
`;

export { STATUS_ERROR, STATUS_LIMIT, STATUS_STOPPED, statusFor } from '../trace/exit-status.js';

/**
 * `virtlab exec`: returns the process exit status. Throws UsageError, ImageError or
 * ProfileError for bad input (the caller prints the one-line message and exits 2).
 */
export function execCommand(argv: string[], out: { stdout: (b: Uint8Array) => void; stderr: (s: string) => void; help: (s: string) => void }): number {
  const { values, positionals } = (() => {
    try {
      return parseArgs({
        args: argv,
        allowPositionals: true,
        strict: true,
        options: {
          'max-instructions': { type: 'string' },
          memory: { type: 'string' },
          profile: { type: 'string' },
          mode: { type: 'string' },
          paging: { type: 'string' },
          vpid: { type: 'string' },
          json: { type: 'string' },
          flat: { type: 'string' },
          entry: { type: 'string' },
          'real-mode': { type: 'boolean' },
          cmdline: { type: 'string' },
          progress: { type: 'boolean' },
          param: { type: 'string', multiple: true },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  })();
  if (values.help) { out.help(EXEC_USAGE); return 0; }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'exec: missing <image>' : `exec: expected one image, got ${positionals.length}: ${positionals.join(' ')}`);
  const img = parseImageArgs(positionals[0]!, values);
  const { imagePath, memoryMiB, workload } = img;
  const maxGiven = values['max-instructions'] !== undefined ? parseNumber('--max-instructions', values['max-instructions'], 1, Number.MAX_SAFE_INTEGER) : undefined;
  // A workload that hangs (e.g. waiting for input that never comes) stops at its own budget.
  const maxInstructions = maxGiven ?? workload?.maxInstructions ?? 1_000_000_000;
  const { mode, paging, vpid, profile: loaded } = parseModeArgs(values, 'native');
  if (mode !== 'native' && img.flat?.mode === 'real') throw new UsageError(`--mode ${mode} needs a protected-mode start (not --real-mode)`);
  const bytes = workload ? workload.bytes : readImage(imagePath);
  const run = runGuest({
    image: { bytes, path: imagePath },
    flat: img.flat,
    cmdline: img.cmdline,
    memoryMiB,
    devices: workload?.machine,
    mode,
    modeOptions: { paging, vpid },
    profile: loaded,
    maxInstructions,
    sliceInstructions: values.progress ? 10_000_000 : 1_000_000,
    onProgress: values.progress ? (p) => out.stderr(`virtlab: ${p.instructions} instructions, ${p.cycles} cycles\n`) : undefined,
    onConsole: (chunk) => out.stdout(chunk),
  });
  const { status, message, record } = run;
  if (message !== null) out.stderr(`virtlab: ${imagePath}: ${message}\n`);
  if (values.json !== undefined) {
    try {
      writeFileAtomic(values.json, serializeRunRecord(record));
    } catch (e) {
      throw new UsageError(`--json ${values.json}: cannot write the run record (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }
  return status;
}
