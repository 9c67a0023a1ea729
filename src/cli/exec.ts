import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ImageError } from '../guest/elf.js';
import { loadProfile, DEFAULT_PROFILE, DEFAULT_VMM_PROFILE } from '../profiles/index.js';
import { serializeRunRecord, writeFileAtomic } from '../trace/run-record.js';
import { runGuest } from '../trace/run-guest.js';
import { UsageError } from './errors.js';
import { WORKLOAD_PREFIX, workloadForExec, type ExecWorkload } from './workloads.js';
import { createMonitor, HW_DEFAULTS, MONITOR_MODES, type MonitorMode } from '../vmm/index.js';

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

function parseNumber(flag: string, text: string, min: number, max: number): number {
  const t = text.replace(/_/g, '');
  const v = /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : /^[0-9]+$/.test(t) ? Number(t) : /^[0-9.]+e[0-9]+$/i.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new UsageError(`${flag}: expected an integer in ${min}..${max}, got "${text}"`);
  return v;
}

function readImage(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : `cannot read (${code ?? String(e)})`;
    throw new ImageError(path, why);
  }
}

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
  const imagePath = positionals[0]!;
  const maxGiven = values['max-instructions'] !== undefined ? parseNumber('--max-instructions', values['max-instructions'], 1, Number.MAX_SAFE_INTEGER) : undefined;
  const memoryMiB = values.memory !== undefined ? parseNumber('--memory', values.memory, 1, 2048) : 64;
  const flat = values.flat !== undefined ? parseNumber('--flat', values.flat, 0, 0xffffffff) : undefined;
  if (flat === undefined && (values.entry !== undefined || values['real-mode'])) throw new UsageError('--entry and --real-mode need --flat ADDR');
  if (flat !== undefined && values.cmdline !== undefined) throw new UsageError('--cmdline is for Multiboot images, not with --flat');
  const entry = values.entry !== undefined ? parseNumber('--entry', values.entry, 0, 0xffffffff) : undefined;

  let workload: ExecWorkload | null = null;
  if (imagePath.startsWith(WORKLOAD_PREFIX)) {
    if (flat !== undefined) throw new UsageError('--flat is for raw binaries, not workload:NAME');
    workload = workloadForExec(imagePath, values.param ?? []);
  } else if (values.param !== undefined) {
    throw new UsageError('--param is for workload:NAME images');
  }
  // A workload that hangs (e.g. waiting for input that never comes) stops at its own budget.
  const maxInstructions = maxGiven ?? workload?.maxInstructions ?? 1_000_000_000;
  const modeName = values.mode ?? 'native';
  if (!(MONITOR_MODES as readonly string[]).includes(modeName)) throw new UsageError(`--mode: unknown mode "${modeName}" (known: ${MONITOR_MODES.join(', ')})`);
  const mode = modeName as MonitorMode;
  if (mode !== 'hw' && (values.paging !== undefined || values.vpid !== undefined)) {
    throw new UsageError(`${values.paging !== undefined ? '--paging' : '--vpid'} is only valid with --mode hw`);
  }
  const paging = values.paging ?? HW_DEFAULTS.paging;
  if (paging !== 'nested' && paging !== 'shadow') throw new UsageError(`--paging: expected nested or shadow, got "${paging}"`);
  const vpidText = values.vpid ?? (HW_DEFAULTS.vpid ? 'on' : 'off');
  if (vpidText !== 'on' && vpidText !== 'off') throw new UsageError(`--vpid: expected on or off, got "${vpidText}"`);
  const vpid = vpidText === 'on';
  const loaded = loadProfile(values.profile ?? (mode === 'native' ? DEFAULT_PROFILE : DEFAULT_VMM_PROFILE));
  // Checked before the image is read so that a profile without the figures or features fails fast.
  try {
    createMonitor(mode, { profile: loaded.profile, paging, vpid });
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message);
    throw e;
  }
  const bytes = workload ? workload.bytes : readImage(imagePath);
  if (mode !== 'native' && flat !== undefined && values['real-mode']) throw new UsageError(`--mode ${mode} needs a protected-mode start (not --real-mode)`);
  const run = runGuest({
    image: { bytes, path: imagePath },
    flat: flat !== undefined ? { loadAddress: flat, entry, mode: values['real-mode'] ? 'real' : 'protected32' } : undefined,
    cmdline: values.cmdline ?? '',
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
